"""Calibration of the codec families on real speech (a bona fide clip of the demo set).

For every codec family and level: the output keeps the input's length, is aligned with it
within one sample (the lag maximising their cross-correlation), and its payload's bitrate is
within 10% of the level's nominal one; quality (SNR) does not improve with severity. Also:
determinism, severity 0 and out-of-range severities, validation and serialisation.

The clip is the first bona fide file of ``bench/data/demo/manifest.csv`` (3 s of it); set
``BENCH_CODEC_SPEECH`` to another speech file to calibrate against it instead.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from perturbations import PERTURBATIONS, Identity, Perturbation, SeverityError, make
from perturbations._measure import alignment_lag, snr_db
from perturbations.codecs._base import CodecPerturbation

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "bench" / "data" / "demo"

CODECS = ["mp3", "aac", "opus", "vorbis", "amr-nb", "amr-wb", "gsm", "g711-mulaw", "g711-alaw",
          "g722", "g726"]
ALL = CODECS + ["tandem", "la-transmission"]
LEVELS = [1, 2, 3, 4, 5]
CLIP_S = 3.0
# "does not improve" allows this much between adjacent levels (over the 48 bona fide clips of the
# demo set, SNR never rose by more than 0.9 dB from one level to the next, nor the spectral
# distance fell by more than 0.42 dB)
SNR_TOLERANCE_DB = 1.0
LSD_TOLERANCE_DB = 0.5
#: codecs with a minimum-phase high-pass pre-filter (AMR-NB's 80 Hz, AMR-WB's 50 Hz, Opus's VoIP
#: high-pass). Its phase lead at low frequencies biases the full-band cross-correlation by 2-4
#: samples (by a whole pitch period on speech whose energy sits below 300 Hz), so their delay is
#: checked in the 300-3400 Hz band, where the codec's own delay shows; every other codec is
#: checked on the full band as well.
HIGH_PASS = {"amr-nb", "amr-wb", "opus"}


def _bonafide_path() -> Path:
    override = os.environ.get("BENCH_CODEC_SPEECH")
    if override:
        return Path(override)
    manifest = DEMO / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} does not exist yet: the demo set is not built "
                    "(scripts/build_demo.py), so there is no real speech to calibrate against")
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("label", "").strip().lower() in ("bonafide", "bona-fide"):
                path = (manifest.parent / row["path"]).resolve()
                if path.is_file():
                    return path
    pytest.skip(f"{manifest} lists no bona fide file that exists under {DEMO}")


def _needs(family: str) -> None:
    """The one rule (shared with test_registry_contract): a family whose check_resources() says a library or
    encoder is not installed here is skipped with that reason; any other error fails the test."""
    from perturbations import unavailable

    why = unavailable(make(family, 1))
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    import soundfile as sf

    path = _bonafide_path()
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    n = int(CLIP_S * sr)
    if x.size > n:  # the 3 s with the most energy
        energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
        hop = sr // 10
        starts = np.arange(0, x.size - n + 1, hop)
        start = int(starts[np.argmax(energy[starts + n] - energy[starts])])
        x = x[start:start + n]
    assert x.size >= sr, f"{path}: need at least 1 s of speech, got {x.size / sr:.2f} s"
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3, f"{path}: the clip is silent"
    return np.ascontiguousarray(x), int(sr)


@pytest.fixture(scope="module")
def encoded(speech):
    """``encoded(family, k)``: the family's level ``k`` encoding of the clip, computed once."""
    x, sr = speech
    cache: dict = {}

    def get(family: str, k: int):
        if (family, k) not in cache:
            cache[family, k] = make(family, k).encode(x, sr)
        return cache[family, k]

    return get


def lags(x: np.ndarray, y: np.ndarray, sr: int) -> tuple[int, int]:
    """Alignment lag (INTERFACE.md) on the full band, and on the 300-3400 Hz band (zero-phase)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [300, 3400], "bandpass", fs=sr, output="sos")
    return (alignment_lag(x, y, max_lag=4000),
            alignment_lag(sosfiltfilt(sos, x), sosfiltfilt(sos, y), max_lag=4000))


def check_aligned(x, y, sr, codec: str, what: str) -> None:
    full, band = lags(x, y, sr)
    assert abs(band) <= 1, f"{what}: output is {band} samples late in 300-3400 Hz (delay not removed)"
    if codec not in HIGH_PASS:
        assert abs(full) <= 1, f"{what}: output is {full} samples late (delay not removed)"


# --- the ladder ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ALL)
def test_family_is_registered_with_five_levels(family):
    cls = PERTURBATIONS.get(family)
    assert issubclass(cls, CodecPerturbation)
    assert len(cls.LEVELS) == 5
    for params in cls.LEVELS:
        assert any("bitrate" in key for key in params), f"{family}: a level without its bitrate"
    assert [lv["severity"] for lv in cls.levels()] == LEVELS


@pytest.mark.parametrize("k", LEVELS)
@pytest.mark.parametrize("family", CODECS + ["la-transmission"])
def test_level_is_aligned_and_keeps_length_and_bitrate(family, k, speech, encoded):
    p = make(family, k)
    codec = getattr(p, "codec", family)
    _needs(codec)
    x, sr = speech
    enc = encoded(family, k)
    y = enc.decoded
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    check_aligned(x, y, sr, codec, f"{family} level {k}")
    nominal = p.bitrate
    assert enc.bitrate == pytest.approx(nominal, rel=0.10), \
        f"{family} level {k}: {enc.bitrate:.0f} b/s measured, nominal {nominal}"
    # the decoded output differs from the input (a codec ran) but still carries it
    assert not np.allclose(x, y, atol=1e-4)
    assert np.corrcoef(x, y)[0, 1] > 0.3


@pytest.mark.parametrize("k", LEVELS)
def test_tandem_hops_are_aligned_at_their_bitrates(k, speech):
    x, sr = speech
    p = make("tandem", k)
    hops = p.hops(x, sr)
    assert [h.bitrate for h in hops] == pytest.approx([p.first_bitrate, p.second_bitrate], rel=0.10)
    y = p(x, sr, np.random.default_rng(0))
    assert y.shape == x.shape
    check_aligned(x, y, sr, "tandem", f"tandem level {k}")
    np.testing.assert_array_equal(y, hops[-1].decoded)


def log_spectral_distance(x: np.ndarray, y: np.ndarray, sr: int) -> float:
    """Mean over active 32 ms frames of the RMS difference of the log power spectra (dB)."""
    n = 1 << int(np.ceil(np.log2(0.032 * sr)))
    w = np.hanning(n)
    px = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2] * w)) ** 2
    py = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(y, n)[:: n // 2] * w)) ** 2
    energy = px.sum(axis=1)
    keep = energy > energy.max() * 1e-4
    floor = px[keep].max() * 1e-8
    d = 10 * np.log10(px[keep] + floor) - 10 * np.log10(py[keep] + floor)
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=1))))


@pytest.mark.parametrize("family", CODECS + ["tandem"])
def test_quality_does_not_improve_with_severity(family, speech, encoded):
    _needs(family)
    x, sr = speech
    snrs = [snr_db(x, encoded(family, k).decoded) for k in LEVELS]
    for k in range(1, 5):
        assert snrs[k] <= snrs[k - 1] + SNR_TOLERANCE_DB, \
            f"{family}: SNR rises from level {k} to {k + 1}: {np.round(snrs, 2).tolist()} dB"
    # SNR barely moves for parametric codecs (AMR's waveform match is poor at every mode), so the
    # spectral distance, which they do preserve, must grow too
    lsd = [log_spectral_distance(x, encoded(family, k).decoded, sr) for k in LEVELS]
    assert snrs[-1] < snrs[0] or lsd[-1] > lsd[0] + 0.5, \
        f"{family}: the harshest level is no worse than the mildest (SNR {snrs}, LSD {lsd})"
    for k in range(1, 5):
        assert lsd[k] >= lsd[k - 1] - LSD_TOLERANCE_DB, \
            f"{family}: spectral distance falls from level {k} to {k + 1}: {np.round(lsd, 2).tolist()} dB"


# --- the Perturbation contract -----------------------------------------------------------------
@pytest.mark.parametrize("family", ALL)
def test_deterministic_and_independent_of_rng(family, speech):
    _needs(family)
    x, sr = speech
    x = x[: sr]  # 1 s is enough here
    p = make(family, 3)
    a = p(x, sr, np.random.default_rng(7))
    b = p(x, sr, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    c = make(family, 3)(x, sr, np.random.default_rng(8))
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("family", ALL)
def test_severity_zero_is_identity_and_out_of_range_raises(family, speech):
    x, sr = speech
    p0 = PERTURBATIONS.get(family).at(0)
    assert isinstance(p0, Identity)
    np.testing.assert_array_equal(p0(x, sr, np.random.default_rng(0)), x)
    for bad in (-1, 6, 2.0, True):
        with pytest.raises(SeverityError):
            PERTURBATIONS.get(family).at(bad)


@pytest.mark.parametrize("family", ALL)
def test_to_dict_round_trip(family):
    for k in LEVELS:
        p = make(family, k)
        d = json.loads(json.dumps(p.to_dict()))
        assert d["family"] == family and d["severity"] == k
        q = Perturbation.from_dict(d)
        assert q == p and q.key() == p.key()


@pytest.mark.parametrize("family,field,bad", [
    ("mp3", "bitrate", 50000), ("aac", "bitrate", 1000), ("opus", "bitrate", 1000),
    ("opus", "application", "music"), ("vorbis", "bitrate", 10**7), ("amr-nb", "bitrate", 12000),
    ("amr-wb", "bitrate", 24000), ("gsm", "bitrate", 6500), ("g711-alaw", "bitrate", 32000),
    ("g711-mulaw", "input_level_dbov", 3.0), ("g722", "bitrate", 32000), ("g726", "bitrate", 64000),
    ("g726", "passes", 0), ("tandem", "first", "room"), ("tandem", "second_bitrate", 2),
])
def test_validate_names_the_field(family, field, bad):
    with pytest.raises(ValueError, match=field):
        make(family, 1, **{field: bad})


def test_bad_waveforms_are_refused():
    p = make("mp3", 1)
    with pytest.raises(ValueError, match="NaN"):
        p.encode(np.array([0.0, np.nan, 0.1], np.float32), 16000)
    with pytest.raises(ValueError, match="mono"):
        p(np.zeros((2, 100), np.float32), 16000, np.random.default_rng(0))


# --- resampling, levels, failures ------------------------------------------------------------------
@pytest.mark.parametrize("family,sr", [("amr-nb", 48000), ("g722", 22050), ("mp3", 44100),
                                       ("opus", 44100)])
def test_other_input_rates_stay_aligned(family, sr, speech):
    from perturbations.codecs._base import resample

    x16, sr16 = speech
    x = resample(x16[: 2 * sr16], sr16, sr).astype(np.float32)
    enc = make(family, 2).encode(x, sr)
    assert enc.decoded.shape == x.shape
    check_aligned(x, enc.decoded, sr, family, f"{family} at {sr} Hz")
    assert enc.bitrate == pytest.approx(make(family, 2).bitrate, rel=0.10)


def test_decoded_overshoot_is_not_clipped(speech):
    x, sr = speech
    # hard-clipped speech: band-limiting its flat tops rings past full scale (Gibbs)
    x = np.clip(x * (8.0 / np.max(np.abs(x))), -1.0, 1.0).astype(np.float32)
    for family in ("mp3", "aac"):
        y = make(family, 3).encode(x, sr).decoded
        assert np.max(np.abs(y)) > 1.0, f"{family}: the decoded overshoot was clipped away"


def test_input_level_changes_only_the_codec_distortion(speech):
    x, sr = speech
    loud = make("g711-alaw", 1).encode(x, sr).decoded
    quiet = make("g711-alaw", 5).encode(x, sr).decoded
    # the level is restored (same RMS within 1 dB) but the quiet path carries more noise
    assert 20 * np.log10(np.std(quiet) / np.std(loud)) == pytest.approx(0.0, abs=1.0)
    assert snr_db(x, quiet) < snr_db(x, loud) - 3.0


def test_amrwb_without_its_library_names_the_package(monkeypatch):
    from perturbations.codecs import amr_wb

    amr_wb._encoder_lib.cache_clear()
    monkeypatch.setattr(amr_wb.ctypes.util, "find_library", lambda name: "libnot-there-amrwb.so")
    try:
        with pytest.raises(RuntimeError, match="libvo-amrwbenc0"):
            make("amr-wb", 1).encode(np.zeros(3200, np.float32), 16000)
    finally:
        amr_wb._encoder_lib.cache_clear()


def test_empty_and_tiny_inputs():
    for family in ("mp3", "g726", "gsm"):
        p = make(family, 1)
        assert p(np.zeros(0, np.float32), 16000, np.random.default_rng(0)).shape == (0,)
        assert p(np.full(37, 0.1, np.float32), 16000, np.random.default_rng(0)).shape == (37,)


def test_unreachable_bitrate_is_reported():
    from perturbations import Context

    ctx = Context()
    make("vorbis", 1)(np.zeros(16000, np.float32), 16000, np.random.default_rng(0), ctx)
    assert any("vorbis" in note and "nominal 64.0 kb/s" in note for note in ctx.report), ctx.report
