"""Room (simulated) and rir (measured) reverberation: calibration against the measured T20,
alignment, level, determinism; plus the measurement helpers they are checked with."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from perturbations import Context, _measure, make
from perturbations.rir import Rir, catalog
from perturbations.room import LEVELS, Room, _RirBuilder

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
SR = 16000


@pytest.fixture(scope="module")
def speech():
    """Three real bona fide utterances of the demo set: (utt_id, wav, sr)."""
    manifest = DEMO / "manifest.csv"
    if not manifest.is_file():
        pytest.fail(f"{manifest} is missing: the tests need the built-in demo set")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("bonafide", "bona-fide")][:3]
    out = []
    for r in rows:
        wav, sr = sf.read(DEMO / r["path"], dtype="float32")
        out.append((r["utt_id"], wav, sr))
    return out


# --- measurement helpers ----------------------------------------------------------------------
def test_t20_of_an_ideal_exponential_decay():
    for t60 in (0.3, 1.2):
        t = np.arange(int(1.5 * t60 * SR)) / SR
        h = np.concatenate([np.zeros(30), 10 ** (-3 * t / t60)])  # amplitude falls 60 dB in t60
        assert _measure.rt60_t20(h, SR) == pytest.approx(t60, rel=0.01)


def test_t20_refuses_a_response_that_does_not_decay_enough():
    with pytest.raises(ValueError, match="-25 dB"):
        _measure.rt60_t20(np.ones(100), SR)


def test_alignment_lag_finds_a_known_shift():
    x = np.random.default_rng(0).standard_normal(4000)
    assert _measure.alignment_lag(x, x) == 0
    assert _measure.alignment_lag(x, np.roll(x, 17)) == 17
    assert _measure.alignment_lag(x, np.roll(x, -5)) == -5


# --- room -------------------------------------------------------------------------------------
def test_room_ladder_grows_and_is_listed():
    rt = [lv["rt60"] for lv in LEVELS]
    assert len(LEVELS) == 5 and rt == sorted(rt) and len(set(rt)) == 5
    assert [lv["params"]["rt60"] for lv in Room.levels()] == rt


@pytest.mark.parametrize("severity", range(1, 6))
def test_room_t20_is_calibrated(severity):
    room = Room.at(severity)
    for seed in range(3):
        h, direct, facts = room.impulse_response(SR, np.random.default_rng(seed))
        t20 = _measure.rt60_t20(h, SR)
        assert abs(t20 / room.rt60 - 1) < 0.05, (seed, t20, facts)
        distance = np.linalg.norm(facts["src"] - facts["mic"])
        assert direct == int(distance / 343.0 * SR)  # the direct path sits on a whole sample


def test_room_model_matches_pyroomacoustics():
    """Same geometry and absorption as a full-order pyroomacoustics ShoeBox: same decay."""
    import pyroomacoustics as pra  # a declared dependency
    dims, src, mic = np.array([5.0, 4.0, 3.0]), np.array([1.3, 1.6, 1.5]), np.array([3.9, 2.5, 1.2])
    length = 0.25
    ours = _RirBuilder(dims, src, mic, SR, length).rir(0.5)
    order = int(length * 343 * np.sqrt(np.sum(1 / dims ** 2))) + 2  # the diamond covers the sphere
    room = pra.ShoeBox(dims, fs=SR, materials=pra.Material(0.5), max_order=order)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    theirs = room.rir[0][0]
    p = _measure.direct_path_index(theirs) - _measure.direct_path_index(ours)
    theirs = theirs[p:p + ours.size]
    assert _measure.rt60_t20(ours, SR) == pytest.approx(_measure.rt60_t20(theirs, SR), rel=0.03)
    corr = np.dot(ours, theirs) / np.linalg.norm(ours) / np.linalg.norm(theirs)
    assert corr > 0.95


@pytest.mark.parametrize("severity", range(1, 6))
def test_room_apply_keeps_length_level_and_alignment(severity, speech):
    room = make("room", severity)
    _, wav, sr = speech[0]
    y = room(wav, sr, np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == wav.shape
    assert _measure.rms(y) == pytest.approx(_measure.rms(wav), rel=0.01)
    assert np.array_equal(y, room(wav, sr, np.random.default_rng(0)))
    assert not np.array_equal(y, room(wav, sr, np.random.default_rng(1)))
    # white noise through the room: the cross-correlation is the response, peaking at the direct path
    noise = np.random.default_rng(9).standard_normal(sr).astype(np.float32)
    for seed in range(3):
        assert _measure.alignment_lag(noise, room(noise, sr, np.random.default_rng(seed)), 4000) == 0
    for seed in range(3):  # speech: the cross-correlation peak (the contract's alignment) is at 0
        assert abs(_measure.alignment_lag(wav, room(wav, sr, np.random.default_rng(seed)), 4000)) <= 1


def test_room_short_input_and_serialisation():
    room = Room.at(3)
    y = room(np.ones(50, dtype=np.float32) * 0.1, SR, np.random.default_rng(0))
    assert y.shape == (50,)
    again = Room.from_dict(json.loads(json.dumps(room.to_dict())))
    assert again == room and again.key() == room.key()


@pytest.mark.parametrize("params, field", [({"rt60": -1.0}, "rt60"), ({"dims_min": (1.0, 3.0, 3.0)}, "dims_min"),
                                           ({"dims_min": (9.0, 9.0, 4.0)}, "dims_min")])
def test_room_rejects_bad_parameters(params, field):
    with pytest.raises(ValueError, match=field):
        Room.at(2, **params)


# --- rir --------------------------------------------------------------------------------------
NOMINAL = {"a.wav": (0.15, SR), "b.flac": (0.35, SR), "c.wav": (0.45, 48000), "sub/d.wav": (0.7, SR),
           "sub/e.flac": (0.75, 8000), "f.wav": (1.0, SR), "g.wav": (1.6, SR)}


@pytest.fixture(scope="module")
def rir_dir(tmp_path_factory):
    """Impulse responses written here: a direct spike after some silence, then exponentially
    decaying noise with a known T60 as energetic as the spike (several rates, formats and a
    subfolder)."""
    root = tmp_path_factory.mktemp("rirs")
    rng = np.random.default_rng(123)
    for name, (t60, sr) in NOMINAL.items():
        t = np.arange(int(1.2 * t60 * sr)) / sr
        tail = rng.standard_normal(t.size) * 10 ** (-3 * t / t60)
        tail /= np.sqrt(np.sum(tail ** 2))  # direct-to-reverberant ratio 0 dB
        h = np.concatenate([np.zeros(int(0.004 * sr)), [1.0], tail])
        path = root / name
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (h / np.max(np.abs(h)) * 0.9).astype(np.float32), sr, subtype="FLOAT"
                 if path.suffix == ".wav" else "PCM_24")
    (root / "notes.txt").write_text("not audio")
    return root


def test_rir_catalog_measures_each_response(rir_dir):
    measured = {Path(p).relative_to(rir_dir).as_posix(): t for p, t in catalog(str(rir_dir.resolve()))}
    assert set(measured) == set(NOMINAL)
    for name, (t60, _) in NOMINAL.items():
        assert measured[name] == pytest.approx(t60, rel=0.1), name


@pytest.mark.parametrize("severity", range(1, 6))
def test_rir_picks_in_band_and_stays_aligned(severity, rir_dir, speech):
    rir = Rir.at(severity)
    ctx = Context(resources={"rir_dir": str(rir_dir)})
    picks = {rir.choose(np.random.default_rng(s), ctx) for s in range(12)}
    in_band = [t for _, t in catalog(str(rir_dir.resolve())) if rir.rt60_min <= t < rir.rt60_max]
    if in_band:
        assert {t for _, t in picks} <= set(in_band) and len(picks) == len(in_band)
        assert not ctx.report
    else:  # nearest, with a note
        assert len(picks) == 1 and ctx.report
    _, wav, sr = speech[1]
    y = rir(wav, sr, np.random.default_rng(0), ctx)
    assert y.dtype == np.float32 and y.shape == wav.shape
    assert np.array_equal(y, rir(wav, sr, np.random.default_rng(0), ctx))
    assert _measure.rms(y) == pytest.approx(_measure.rms(wav), rel=0.01)
    assert abs(_measure.alignment_lag(wav, y, 4000)) <= 1
    noise = np.random.default_rng(5).standard_normal(sr).astype(np.float32)
    assert _measure.alignment_lag(noise, rir(noise, sr, np.random.default_rng(0), ctx), 4000) == 0


def test_rir_folder_from_environment_and_clear_errors(rir_dir, tmp_path, monkeypatch):
    wav = np.random.default_rng(0).standard_normal(2000).astype(np.float32)
    monkeypatch.delenv("BENCH_RIR_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="--rir-dir.*BENCH_RIR_DIR"):
        make("rir", 2)(wav, SR, np.random.default_rng(0), Context())
    monkeypatch.setenv("BENCH_RIR_DIR", str(rir_dir))
    assert make("rir", 2)(wav, SR, np.random.default_rng(0)).shape == wav.shape
    monkeypatch.setenv("BENCH_RIR_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no usable impulse responses"):
        make("rir", 2)(wav, SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rt60_min"):
        Rir.at(1, rt60_min=2.0)
