"""Additive noise families: exact SNR on real speech at every level, spectra, determinism,
resources (noise folder, bona fide pool) and their errors."""
import csv
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from perturbations import Context, make
from perturbations._measure import alignment_lag, snr_db
from perturbations.noise import _mix

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
SR = 16000
COLOURS = {"white-noise": 0.0, "pink-noise": -3.01, "brown-noise": -6.02}  # PSD slope, dB/octave
ALL = [*COLOURS, "background-noise", "babble"]


@pytest.fixture(scope="module")
def bonafide():
    """Bona fide utterances of the demo set: [(utt_id, wav)], all 16 kHz."""
    manifest = DEMO / "manifest.csv"
    if not manifest.is_file():
        pytest.fail(f"{manifest} is missing: the tests need the built-in demo set")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("bonafide", "bona-fide")][:10]
    out = []
    for r in rows:
        wav, sr = sf.read(DEMO / r["path"], dtype="float32")
        assert sr == SR, r["path"]
        out.append((r["utt_id"], wav))
    return out


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    """A noise folder written here: a long stereo 48 kHz hum+noise, a short mono flac
    (looped), a silent file (skipped by drawing again) and a non-audio file (ignored)."""
    root = tmp_path_factory.mktemp("noises")
    rng = np.random.default_rng(7)
    t = np.arange(10 * 48000) / 48000
    hum = 0.1 * np.sin(2 * np.pi * 120 * t)[:, None] + 0.05 * rng.standard_normal((t.size, 2))
    sf.write(root / "street.wav", hum.astype(np.float32), 48000)
    (root / "sub").mkdir()
    sf.write(root / "sub" / "fan.flac", 0.2 * rng.standard_normal(8000), SR)
    sf.write(root / "sub" / "quiet.wav", np.zeros(SR, dtype=np.float32), SR)
    (root / "README.txt").write_text("not audio")
    return root


def _pool_from(bonafide):
    calls = []

    def pool(rng, n, exclude=""):
        calls.append((n, exclude))
        cands = [w for u, w in bonafide if u != exclude]
        return [cands[i] for i in rng.choice(len(cands), size=n, replace=len(cands) < n)]

    pool.calls = calls
    return pool


def _context(family, bonafide, noise_dir, utt_id):
    return Context(utt_id=utt_id, pool=_pool_from(bonafide), resources={"noise_dir": str(noise_dir)})


@pytest.mark.parametrize("family", ALL)
def test_snr_is_met_at_every_level_and_falls_with_severity(family, bonafide, noise_dir):
    for utt, wav in bonafide[:3]:
        measured = []
        for k in range(1, 6):
            p = make(family, k)
            ctx = _context(family, bonafide, noise_dir, utt)
            y = p(wav, SR, np.random.default_rng([k, 1]), ctx)
            assert y.dtype == np.float32 and y.shape == wav.shape
            measured.append(snr_db(wav, y))
            assert measured[-1] == pytest.approx(p.snr_db, abs=0.5), (family, utt, k)
            assert alignment_lag(wav, y, 2000) == 0
        assert all(a > b for a, b in zip(measured, measured[1:]))


@pytest.mark.parametrize("family", ALL)
def test_deterministic_by_rng_only(family, bonafide, noise_dir):
    utt, wav = bonafide[0]
    p = make(family, 3)
    np_state, py_state = np.random.get_state(), random.getstate()
    a = p(wav, SR, np.random.default_rng(11), _context(family, bonafide, noise_dir, utt))
    b = p(wav, SR, np.random.default_rng(11), _context(family, bonafide, noise_dir, utt))
    c = p(wav, SR, np.random.default_rng(12), _context(family, bonafide, noise_dir, utt))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the global generators were neither used nor reseeded
    assert random.getstate() == py_state
    assert all(np.array_equal(s, t) for s, t in zip(np.random.get_state(), np_state))


@pytest.mark.parametrize("family, slope", COLOURS.items())
def test_colour_has_its_spectral_slope(family, slope):
    from scipy.signal import welch

    noise = _mix.colored_noise(2 ** 17, -slope / (10 * np.log10(2)), np.random.default_rng(0), SR)
    f, psd = welch(noise, fs=SR, nperseg=4096)
    band = (f >= 100) & (f <= 6000)
    fitted = np.polyfit(np.log2(f[band]), 10 * np.log10(psd[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.5)
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0)


def test_silent_input_is_left_alone_with_a_note():
    ctx = Context()
    y = make("pink-noise", 5)(np.zeros(800, dtype=np.float32), SR, np.random.default_rng(0), ctx)
    assert not np.any(y) and any("silent" in note for note in ctx.report)


def test_background_noise_needs_a_folder(noise_dir, tmp_path, monkeypatch):
    wav = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    monkeypatch.delenv("BENCH_NOISE_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="--noise-dir or set BENCH_NOISE_DIR"):
        make("background-noise", 1)(wav, SR, np.random.default_rng(0), Context())
    monkeypatch.setenv("BENCH_NOISE_DIR", str(noise_dir))
    y = make("background-noise", 1)(wav, SR, np.random.default_rng(0))
    assert snr_db(wav, y) == pytest.approx(30.0, abs=0.01)
    monkeypatch.setenv("BENCH_NOISE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no wav/flac/ogg files"):
        make("background-noise", 1)(wav, SR, np.random.default_rng(0))
    sf.write(tmp_path / "silence.wav", np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(ValueError, match="all silent"):
        make("background-noise", 1)(wav, SR, np.random.default_rng(0))
    monkeypatch.setenv("BENCH_NOISE_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make("background-noise", 1)(wav, SR, np.random.default_rng(0))


def test_short_noise_files_are_looped():
    seg = np.arange(10.0)
    out = _mix.fit_length(seg, 35, np.random.default_rng(3))
    start = int(out[0])
    assert np.array_equal(out, (np.arange(35) + start) % 10)


def test_babble_uses_the_pool_and_says_when_it_cannot(bonafide):
    utt, wav = bonafide[0]
    pool = _pool_from(bonafide)
    make("babble", 4)(wav, SR, np.random.default_rng(0), Context(utt_id=utt, pool=pool))
    assert pool.calls == [(6, utt)]  # level 4: six talkers, never the utterance itself
    with pytest.raises(ValueError, match="pool"):
        make("babble", 1)(wav, SR, np.random.default_rng(0), Context(utt_id=utt))
    ctx = Context(utt_id=utt, pool=lambda rng, n, exclude="": [bonafide[1][1]])
    y = make("babble", 2)(wav, SR, np.random.default_rng(0), ctx)
    assert snr_db(wav, y) == pytest.approx(20.0, abs=0.01)
    assert any("1 of 4 talkers" in note for note in ctx.report)


@pytest.mark.parametrize("family, params, field", [
    ("white-noise", {"snr_db": 200.0}, "snr_db"),
    ("background-noise", {"snr_db": -50.0}, "snr_db"),
    ("babble", {"talkers": 0}, "talkers"),
    ("babble", {"talkers": 2.5}, "talkers"),
])
def test_bad_parameters_name_the_field(family, params, field):
    with pytest.raises(ValueError, match=field):
        make(family, 1, **params)
