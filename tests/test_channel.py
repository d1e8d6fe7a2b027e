"""Channel families: length, determinism, identity at 0, alignment, and that each level's
parameter is what comes out (band limits, loss rate, clip level, codes, gain, tempo, pitch).

Alignment (the contract's cross-correlation lag) is checked for every family except
time-stretch (tempo changes, anchored at the start) and pitch-shift (checked on envelopes)."""
import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from perturbations import PERTURBATIONS, make
from perturbations._measure import alignment_lag, rms, snr_db

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
SR = 16000
ALIGNED = ["telephone", "packet-loss", "clipping", "quantization", "gain", "resample"]
ALL = [*ALIGNED, "time-stretch", "pitch-shift"]


@pytest.fixture(scope="module")
def speech():
    """Two bona fide utterances of the demo set (16 kHz float32)."""
    manifest = DEMO / "manifest.csv"
    if not manifest.is_file():
        pytest.fail(f"{manifest} is missing: the tests need the built-in demo set")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in ("bonafide", "bona-fide")][:2]
    out = []
    for r in rows:
        wav, sr = sf.read(DEMO / r["path"], dtype="float32")
        assert sr == SR, r["path"]
        out.append(wav)
    return out


def _band_fraction(y, lo, hi):
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum() / spec.sum()


def _envelope(x, ms=5):
    h = int(SR * ms / 1000)
    e = np.sqrt(np.convolve(np.asarray(x, dtype=np.float64) ** 2, np.ones(h) / h, "same"))
    return e - e.mean()


@pytest.mark.parametrize("family", ALL)
def test_length_determinism_and_identity(family, speech):
    wav = speech[0]
    assert family in PERTURBATIONS and len(PERTURBATIONS.get(family).LEVELS) == 5
    assert np.array_equal(make(family, 0)(wav, SR, np.random.default_rng(0)), wav)
    for k in range(1, 6):
        p = make(family, k)
        y = p(wav, SR, np.random.default_rng(k))
        assert y.dtype == np.float32 and y.shape == wav.shape and np.all(np.isfinite(y))
        assert np.array_equal(y, p(wav, SR, np.random.default_rng(k)))
    short = make(family, 3)(wav[:1000], SR, np.random.default_rng(0))
    assert short.shape == (1000,)


@pytest.mark.parametrize("family", ALIGNED)
def test_aligned_and_quality_does_not_improve_with_severity(family, speech):
    for wav in speech:
        measured = []
        for k in range(1, 6):
            y = make(family, k)(wav, SR, np.random.default_rng(5))
            assert alignment_lag(wav, y, 2000) == 0, (family, k)
            measured.append(snr_db(wav, y))
        assert all(b <= a + 0.05 for a, b in zip(measured, measured[1:])), measured


@pytest.mark.parametrize("k", range(1, 6))
def test_telephone_band_limits(k, speech):
    p = make("telephone", k)
    y = p(speech[0], SR, np.random.default_rng(0))
    assert _band_fraction(speech[0], p.high_hz + 200, SR / 2) > 1e-3  # there was energy to remove
    assert _band_fraction(y, p.high_hz + 200, SR / 2) < 1e-4
    assert _band_fraction(y, 0, p.low_hz - 100) < 1e-4


def test_packet_loss_rate_positions_and_concealment(speech):
    wav = speech[0]
    n, xf = wav.size, 40  # 2.5 ms crossfades at 16 kHz
    for k in range(1, 6):
        p = make("packet-loss", k)
        F = p.frame_length(SR)
        mask = p.lost_frames(n, SR, np.random.default_rng(k))
        assert mask.sum() == round(p.loss_rate * mask.size)
        y = p(wav, SR, np.random.default_rng(k))
        changed = [not np.array_equal(y[i * F + xf:min(i * F + F, n) - xf], wav[i * F + xf:min(i * F + F, n) - xf])
                   for i in range(mask.size)]
        assert np.array_equal(np.array(changed), mask)
        # concealment is smooth: no step larger than the speech's own largest one
        assert np.max(np.abs(np.diff(y))) <= 1.2 * np.max(np.abs(np.diff(wav)))
    low, high = (make("packet-loss", k).lost_frames(n, SR, np.random.default_rng(0)) for k in (2, 5))
    assert np.all(high[low])  # the same rng loses a superset at a higher rate
    z = make("packet-loss", 3, concealment="zero")
    mask = z.lost_frames(n, SR, np.random.default_rng(2))
    y = z(wav, SR, np.random.default_rng(2))
    F = z.frame_length(SR)
    assert all(not np.any(y[i * F:(i + 1) * F]) for i in np.flatnonzero(mask))


def test_clipping_level(speech):
    wav = speech[0]
    peak = np.max(np.abs(wav))
    fractions = []
    for k in range(1, 6):
        p = make("clipping", k)
        y = p(wav, SR, None)
        assert np.max(np.abs(y)) == pytest.approx(p.threshold * peak, rel=1e-6)
        fractions.append(np.mean(np.abs(y) < np.abs(wav)))
    assert all(a < b for a, b in zip(fractions, fractions[1:])) and fractions[0] > 0


def test_quantization_codes_and_six_db_per_bit(speech):
    wav = speech[0]
    snrs = {}
    for k in range(1, 6):
        p = make("quantization", k)
        y = p(wav, SR, None)
        levels = np.unique(y).size
        assert levels <= 2 ** p.bits - 1
        if p.bits <= 8:
            assert levels >= 2 ** (p.bits - 1)
        snrs[p.bits] = snr_db(wav, y)
    for hi, lo in ((12, 10), (10, 8), (8, 6), (6, 4)):
        assert snrs[hi] - snrs[lo] == pytest.approx(12.04, abs=2.0)
    quiet = make("quantization", 5, full_scale="absolute")(wav * 0.01, SR, None)
    assert not np.any(quiet)  # a converter's fixed range: a quiet clip vanishes at 4 bits


def test_gain_level(speech):
    for k in range(1, 6):
        p = make("gain", k)
        y = p(speech[0], SR, None)
        assert 20 * np.log10(rms(y) / rms(speech[0])) == pytest.approx(p.gain_db, abs=0.01)


def test_resample_removes_the_band_above_half_the_rate(speech):
    for k in range(1, 6):
        p = make("resample", k)
        y = p(speech[0], SR, None)
        assert _band_fraction(y, 0.55 * p.rate, SR / 2) < 1e-4
        assert _band_fraction(y, 0, 0.4 * p.rate) > 0.9


def test_time_stretch_tempo():
    """Tone bursts at known times come out at time / rate (the stretch is anchored at 0): the
    burst centroids fit a line of slope 1/rate through the origin (the vocoder jitters each one
    by up to ~20 ms)."""
    t = np.arange(3 * SR) / SR
    centers = np.array([0.2, 0.55, 0.9, 1.25, 1.6, 1.9])
    x = sum(np.exp(-0.5 * ((t - c) / 0.02) ** 2) * np.sin(2 * np.pi * 500 * t) for c in centers)
    x = x.astype(np.float32)
    for k in range(1, 6):
        p = make("time-stretch", k)
        y = np.asarray(p(x, SR, None), dtype=np.float64)
        found = []
        for c in centers:
            lo, hi = int((c / p.rate - 0.1) * SR), int((c / p.rate + 0.1) * SR)
            e2 = y[lo:hi] ** 2
            found.append(np.sum(np.arange(lo, hi) / SR * e2) / np.sum(e2))
        slope, intercept = np.polyfit(centers, found, 1)
        assert slope == pytest.approx(1 / p.rate, rel=0.02) and abs(intercept) < 0.015, (k, slope, intercept)


def test_pitch_shift_moves_a_tone_and_keeps_the_timing(speech):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    signs = set()
    for k in range(1, 6):
        p = make("pitch-shift", k)
        steps = p.steps(np.random.default_rng(k))
        signs.add(np.sign(steps))
        assert abs(steps) == p.semitones
        y = p(tone, SR, np.random.default_rng(k))
        spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
        peak = np.fft.rfftfreq(y.size, 1 / SR)[np.argmax(spec)]
        assert peak == pytest.approx(440 * 2 ** (steps / 12), rel=0.01)
        # speech: the energy envelopes stay aligned within 5 ms
        y = p(speech[0], SR, np.random.default_rng(k))
        assert abs(alignment_lag(_envelope(speech[0]), _envelope(y), 2000)) <= 80
    assert signs == {-1.0, 1.0}


@pytest.mark.parametrize("family, params, field", [
    ("telephone", {"high_hz": 5000.0}, "high_hz"),
    ("telephone", {"mulaw_bits": 1}, "mulaw_bits"),
    ("packet-loss", {"loss_rate": 1.5}, "loss_rate"),
    ("packet-loss", {"concealment": "magic"}, "concealment"),
    ("clipping", {"threshold": 0.0}, "threshold"),
    ("quantization", {"bits": 1}, "bits"),
    ("quantization", {"full_scale": "db"}, "full_scale"),
    ("gain", {"gain_db": 500.0}, "gain_db"),
    ("resample", {"rate": 10}, "rate"),
    ("time-stretch", {"rate": 0.0}, "rate"),
    ("pitch-shift", {"direction": "sideways"}, "direction"),
])
def test_bad_parameters_name_the_field(family, params, field):
    with pytest.raises(ValueError, match=field):
        make(family, 1, **params)
