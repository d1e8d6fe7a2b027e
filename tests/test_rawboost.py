"""RawBoost (bench/train/rawboost.py): what each algorithm promises, measured on its output."""

from __future__ import annotations

import numpy as np
import pytest

from bench.train.rawboost import ALGORITHMS, RawBoostParams, rawboost

SR = 16000
N = 8000  # half a second keeps the many-seed loops fast


def speech_like(seed: int, peak: float = 0.3, n: int = N) -> np.ndarray:
    """Noise with a slow envelope, scaled to `peak`: what RawBoost sees, without needing a corpus."""
    rng = np.random.default_rng(seed)
    envelope = 0.2 + np.abs(np.sin(np.linspace(0, 6 * np.pi, n)))
    x = rng.standard_normal(n) * envelope
    return (peak * x / np.max(np.abs(x))).astype(np.float32)


def tone(freq: float, amplitude: float, n: int = 16000) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def band_energy(y: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64) * np.hanning(y.shape[0]))) ** 2
    k = int(round(freq * y.shape[0] / SR))
    return float(spectrum[k - 3: k + 4].sum())


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    return 10 * np.log10(np.sum(x ** 2) / np.sum((y.astype(np.float64) - x) ** 2))


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_algorithm_keeps_length_dtype_and_finiteness(algo):
    for x in (speech_like(algo), speech_like(algo, peak=1.0).astype(np.float64)):
        y = rawboost(x, SR, algo, np.random.default_rng(7))
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.all(np.isfinite(y))
        assert not np.allclose(y, x, atol=1e-6), "the augmentation left the clip unchanged"


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_the_generator_alone_decides_the_output(algo):
    x = speech_like(3)
    copy = x.copy()
    a = rawboost(x, SR, algo, np.random.default_rng(11))
    b = rawboost(x, SR, algo, np.random.default_rng(11))
    c = rawboost(x, SR, algo, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, copy)  # the input is not modified


def test_ssi_adds_noise_at_an_snr_between_10_and_40_db():
    snrs = []
    for seed in range(150):
        x = speech_like(seed, peak=0.1 + 0.8 * (seed % 5) / 4)
        snrs.append(snr_db(x, rawboost(x, SR, 3, np.random.default_rng(seed))))
    snrs = np.array(snrs)
    assert snrs.min() >= 10 - 1e-3 and snrs.max() <= 40 + 1e-3, (snrs.min(), snrs.max())
    # drawn uniformly over the range, not pinned to one end
    assert snrs.min() < 13 and snrs.max() > 37
    assert 20 < np.median(snrs) < 30


def test_ssi_noise_is_coloured_by_notch_filters():
    x = speech_like(5)
    spectra = []
    for seed in range(4):
        noise = rawboost(x, SR, 3, np.random.default_rng(seed)).astype(np.float64) - x
        spectrum = np.abs(np.fft.rfft(noise)) ** 2
        bands = spectrum[: spectrum.shape[0] // 64 * 64].reshape(64, -1).mean(axis=1)
        spectra.append(bands / bands.max())
    # white noise would be flat within a few dB; the notch bank carves bands 20+ dB deep
    assert all(10 * np.log10(s.min()) < -20 for s in spectra)


def test_isd_touches_at_most_p_percent_of_the_samples():
    params = RawBoostParams()
    shares = []
    for seed in range(100):
        x = speech_like(seed, peak=0.3)  # quiet enough that the noise cannot push the peak over 1
        y = rawboost(x, SR, 2, np.random.default_rng(seed), params)
        changed = y != x
        assert changed.sum() <= int(N * params.p / 100)
        # the impulses scale the sample itself: |y - x| <= g_sd |x|
        assert np.all(np.abs(y - x) <= params.g_sd * np.abs(x) + 1e-7)
        shares.append(changed.mean() * 100)
    shares = np.array(shares)
    assert shares.max() > 0.8 * params.p and shares.min() < 0.2 * params.p  # beta uniform in [0, P]
    tighter = RawBoostParams(p=2)
    x = speech_like(1)
    for seed in range(20):
        assert (rawboost(x, SR, 2, np.random.default_rng(seed), tighter) != x).sum() <= int(N * 0.02)


def test_isd_rescales_only_when_the_peak_would_pass_one():
    loud = speech_like(4, peak=1.0)
    peaks = [np.max(np.abs(rawboost(loud, SR, 2, np.random.default_rng(s)))) for s in range(20)]
    assert max(peaks) <= 1 + 1e-6
    assert any(p > 1 - 1e-6 for p in peaks)  # rescaled to a peak of exactly one


def test_lnl_is_zero_mean_and_never_peaks_above_one():
    for seed in range(10):
        for peak in (0.05, 1.0):
            y = rawboost(speech_like(seed, peak=peak), SR, 1, np.random.default_rng(seed)).astype(np.float64)
            assert abs(y.mean()) < 1e-6
            assert np.max(np.abs(y)) <= 1 + 1e-6


def test_lnl_linear_part_is_a_notch_filter_bank():
    linear = RawBoostParams(n_f=1)
    x = speech_like(2, peak=0.2)
    for seed in range(5):
        y = rawboost(x, SR, 1, np.random.default_rng(seed), linear).astype(np.float64)
        # with n_f = 1 the augmentation is linear: the same draws scale with the input
        y2 = rawboost(2 * x, SR, 1, np.random.default_rng(seed), linear).astype(np.float64)
        np.testing.assert_allclose(y2, 2 * y, atol=1e-6)
        # unity peak gain (G = 0 dB): notches remove energy, never add it
        ratio = np.sum(y ** 2) / np.sum(x.astype(np.float64) ** 2)
        assert 0.05 < ratio < 1.0
    gains = [np.sqrt(band_energy(rawboost(tone(1000, 0.01), SR, 1, np.random.default_rng(s)), 1000)
                     / band_energy(tone(1000, 0.01), 1000)) for s in range(30)]
    assert max(gains) <= 1.01  # a quiet tone passes at most at unity gain
    assert min(gains) < 0.5  # and some draws put a notch on it


def test_lnl_non_linear_terms_add_harmonics():
    loud = tone(1000, 0.9)
    for seed in range(5):
        linear = rawboost(loud, SR, 1, np.random.default_rng(seed), RawBoostParams(n_f=1))
        full = rawboost(loud, SR, 1, np.random.default_rng(seed))
        for y, expect_harmonics in ((linear, False), (full, True)):
            fundamental = band_energy(y, 1000)
            harmonics = max(band_energy(y, 2000), band_energy(y, 3000))
            level = 10 * np.log10(harmonics / fundamental + 1e-30)
            assert (level > -60) if expect_harmonics else (level < -100), (seed, expect_harmonics, level)


@pytest.mark.parametrize("algo, steps", [(4, (1, 2, 3)), (5, (1, 2)), (6, (1, 3)), (7, (2, 3))])
def test_series_algorithms_chain_the_single_ones_in_order(algo, steps):
    x = speech_like(8)
    for seed in range(3):
        combined = rawboost(x, SR, algo, np.random.default_rng(seed))
        shared = np.random.default_rng(seed)  # one generator: the draws continue from step to step
        y = x
        for step in steps:
            y = rawboost(y, SR, step, shared)
        np.testing.assert_allclose(combined, y, rtol=1e-5, atol=1e-6)
        for step in steps:
            assert not np.allclose(combined, rawboost(x, SR, step, np.random.default_rng(seed)), atol=1e-4)


def test_parallel_algorithm_sums_lnl_and_isd_of_the_same_input():
    for seed in range(3):
        for peak in (0.2, 1.0):
            x = speech_like(seed, peak=peak)
            combined = rawboost(x, SR, 8, np.random.default_rng(seed))
            shared = np.random.default_rng(seed)
            total = rawboost(x, SR, 1, shared).astype(np.float64) + rawboost(x, SR, 2, shared)
            expected = total / max(1.0, np.max(np.abs(total)))
            np.testing.assert_allclose(combined, expected, rtol=1e-5, atol=1e-6)
            assert np.max(np.abs(combined)) <= 1 + 1e-6


@pytest.mark.parametrize("algo", [0, 9, -1, 1.0, True, "5", None])
def test_unknown_algorithms_are_refused(algo):
    with pytest.raises(ValueError, match="1..8"):
        rawboost(speech_like(0), SR, algo, np.random.default_rng(0))


def test_bad_inputs_are_refused_with_the_reason():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="1-D"):
        rawboost(np.zeros((2, 100), np.float32), SR, 1, rng)
    with pytest.raises(ValueError, match="empty"):
        rawboost(np.zeros(0, np.float32), SR, 1, rng)
    bad = speech_like(0)
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rawboost(bad, SR, 3, rng)
    with pytest.raises(ValueError, match="floating-point"):
        rawboost(np.ones(100, np.int16), SR, 2, rng)
    with pytest.raises(TypeError, match="Generator"):
        rawboost(speech_like(0), SR, 1, np.random.RandomState(0))
    with pytest.raises(ValueError, match="max_f"):
        rawboost(speech_like(0), 8000, 1, rng)  # the default 8 kHz notch ceiling is above 8 kHz audio's Nyquist
    y = rawboost(speech_like(0), 8000, 1, rng, RawBoostParams(max_f=4000))
    assert y.shape == (N,) and np.all(np.isfinite(y))


def test_params_round_trip_and_validation():
    params = RawBoostParams(n_bands=3, snr_min=5, snr_max=20)
    assert RawBoostParams.from_dict(params.to_dict()) == params
    assert RawBoostParams().to_dict()["max_bias_lin_nonlin"] == 20
    # the reference scripts' option names are accepted too
    assert RawBoostParams.from_dict({"nBands": 3, "SNRmin": 5, "SNRmax": 20}) == params
    with pytest.raises(ValueError, match="unknown RawBoost parameter 'bands'"):
        RawBoostParams.from_dict({"bands": 3})
    with pytest.raises(ValueError, match="given twice"):
        RawBoostParams.from_dict({"nBands": 3, "n_bands": 4})
    with pytest.raises(ValueError, match="snr_min"):
        RawBoostParams(snr_min=50)
    with pytest.raises(ValueError, match="percentage"):
        RawBoostParams(p=150)
    with pytest.raises(ValueError, match="n_f"):
        RawBoostParams(n_f=0)
    with pytest.raises(ValueError, match="min_coeff"):
        RawBoostParams(min_coeff=2.5)
