"""RawBoost data augmentation (Tak et al., ICASSP 2022), algorithms 1-8, drawing from an explicit generator.

The algorithms and their numbering follow the reference implementation, `RawBoost.py` and
`process_Rawboost_feature` in `data_utils_SSL.py` of TakHemlata/SSL_Anti-spoofing (MIT):

1. linear and non-linear convolutive noise (LnL): a bank of random notch (band-stop) FIR filters applied to
   x, x^2, ..., x^N_f and summed, the non-linear terms 5-20 dB down; mean removed; divided by its peak when the
   peak exceeds 1;
2. impulsive signal-dependent noise (ISD): up to P % of the samples, chosen at random, get
   x + g_sd * x * u1 * u2 (u1, u2 uniform in [-1, 1]); divided by the peak when it exceeds 1;
3. stationary signal-independent noise (SSI): white Gaussian noise through a random notch filter bank, added at
   an SNR drawn uniformly from [SNRmin, SNRmax] dB (no normalisation after);
4. 1, 2, 3 in series; 5. 1 then 2; 6. 1 then 3; 7. 2 then 3;
8. 1 and 2 in parallel on the same input, summed, divided by the peak when it exceeds 1.

Every draw the reference takes from the global `np.random` state is taken here, in the same order, from the
generator passed in. Given a legacy `np.random.RandomState` seeded like the reference's global state, the
internal `_apply` reproduces the reference's output to 1e-15 (checked while writing this; the reference itself
needs `randRange` patched to run on numpy 2: it calls `int()` and `float()` on size-1 arrays).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import signal

ALGORITHMS: dict[int, str] = {
    1: "linear and non-linear convolutive noise (LnL)",
    2: "impulsive signal-dependent noise (ISD)",
    3: "stationary signal-independent noise (SSI)",
    4: "1 + 2 + 3 in series",
    5: "1 + 2 in series",
    6: "1 + 3 in series",
    7: "2 + 3 in series",
    8: "1 and 2 in parallel",
}

# this module's field name -> the reference scripts' option name (accepted by RawBoostParams.from_dict)
REFERENCE_NAMES: dict[str, str] = {
    "n_f": "N_f", "n_bands": "nBands", "min_f": "minF", "max_f": "maxF", "min_bw": "minBW", "max_bw": "maxBW",
    "min_coeff": "minCoeff", "max_coeff": "maxCoeff", "min_g": "minG", "max_g": "maxG",
    "min_bias_lin_nonlin": "minBiasLinNonLin", "max_bias_lin_nonlin": "maxBiasLinNonLin",
    "p": "P", "g_sd": "g_sd", "snr_min": "SNRmin", "snr_max": "SNRmax",
}


@dataclass(frozen=True)
class RawBoostParams:
    """RawBoost's parameters; the defaults are those of the reference scripts (main_SSL_LA.py, main_SSL_DF.py)."""

    n_f: int = 5  # order of the (non-)linearity: 1 is linear only
    n_bands: int = 5  # notch filters per filter bank
    min_f: float = 20.0  # centre frequency range of a notch, Hz
    max_f: float = 8000.0
    min_bw: float = 100.0  # notch width range, Hz
    max_bw: float = 1000.0
    min_coeff: int = 10  # filter length range, taps (made odd)
    max_coeff: int = 100
    min_g: float = 0.0  # gain range of the linear component, dB
    max_g: float = 0.0
    min_bias_lin_nonlin: float = 5.0  # how far the non-linear components sit below the linear one, dB
    max_bias_lin_nonlin: float = 20.0
    p: float = 10.0  # ISD: the most samples touched, percent
    g_sd: float = 2.0  # ISD: gain of the impulsive noise
    snr_min: float = 10.0  # SSI: SNR range, dB
    snr_max: float = 40.0

    def __post_init__(self) -> None:
        for name in ("n_f", "n_bands", "min_coeff", "max_coeff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RawBoost parameter {name} must be an integer >= 1, got {value!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"RawBoost parameter {f.name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"RawBoost parameter {f.name} must be finite, got {value!r}")
        pairs = (("min_f", "max_f"), ("min_bw", "max_bw"), ("min_coeff", "max_coeff"), ("min_g", "max_g"),
                 ("snr_min", "snr_max"))
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"RawBoost parameters: {low} ({getattr(self, low)}) exceeds {high} "
                                 f"({getattr(self, high)})")
        if self.min_f < 0 or self.min_bw <= 0:
            raise ValueError(f"RawBoost parameters: min_f must be >= 0 and min_bw > 0, got {self.min_f}, "
                             f"{self.min_bw}")
        if not 0 <= self.p <= 100:
            raise ValueError(f"RawBoost parameter p is a percentage in [0, 100], got {self.p}")
        if self.g_sd < 0:
            raise ValueError(f"RawBoost parameter g_sd must be >= 0, got {self.g_sd}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RawBoostParams":
        """Build from this module's field names or the reference scripts' option names (`nBands`, `SNRmin`...)."""
        by_reference = {ref: ours for ours, ref in REFERENCE_NAMES.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = key if key in known else by_reference.get(key)
            if name is None:
                raise ValueError(f"unknown RawBoost parameter {key!r}; known: {', '.join(sorted(known))}")
            if name in values:
                raise ValueError(f"RawBoost parameter {name!r} given twice (as {key!r} and another spelling)")
            values[name] = value
        return cls(**values)


def rawboost(x: np.ndarray, sr: int, algo: int, rng: np.random.Generator,
             params: RawBoostParams = RawBoostParams()) -> np.ndarray:
    """Apply RawBoost algorithm `algo` (1..8) to the mono waveform `x` at `sr` Hz; float32, same length."""
    if isinstance(algo, bool) or not isinstance(algo, (int, np.integer)) or algo not in ALGORITHMS:
        choices = "; ".join(f"{k}: {v}" for k, v in ALGORITHMS.items())
        raise ValueError(f"RawBoost algorithm must be one of 1..8 ({choices}), got {algo!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rawboost needs a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if not isinstance(params, RawBoostParams):
        raise TypeError(f"params must be RawBoostParams, got {type(params).__name__}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    if params.max_f > sr / 2:
        raise ValueError(f"RawBoost max_f ({params.max_f} Hz) is above the Nyquist frequency of {sr} Hz audio; "
                         f"pass RawBoostParams(max_f=...) <= {sr / 2:g}")
    wav = np.asarray(x)
    if wav.ndim != 1:
        raise ValueError(f"rawboost takes one mono waveform (1-D), got shape {wav.shape}")
    if wav.size == 0:
        raise ValueError("rawboost got an empty waveform")
    if not np.issubdtype(wav.dtype, np.floating):
        raise ValueError(f"rawboost needs floating-point samples in [-1, 1] (integer PCM: divide by its full scale "
                         f"first), got dtype {wav.dtype}")
    wav = wav.astype(np.float64)
    if not np.all(np.isfinite(wav)):
        raise ValueError("rawboost got a waveform with NaN or infinite samples")
    return _apply(wav, sr, int(algo), rng, params).astype(np.float32)


def _apply(x: np.ndarray, sr: int, algo: int, rng, p: RawBoostParams) -> np.ndarray:
    """The dispatch of the reference's `process_Rawboost_feature`; `rng` needs uniform draws in the order there."""
    if algo == 8:
        parallel = lnl_convolutive_noise(x, sr, rng, p) + isd_additive_noise(x, rng, p)
        return _norm_wav(parallel, always=False)
    steps = {1: "1", 2: "2", 3: "3", 4: "123", 5: "12", 6: "13", 7: "23"}[algo]
    for step in steps:
        if step == "1":
            x = lnl_convolutive_noise(x, sr, rng, p)
        elif step == "2":
            x = isd_additive_noise(x, rng, p)
        else:
            x = ssi_additive_noise(x, sr, rng, p)
    return x


def _uniform(rng, low: float, high: float) -> float:
    # the reference's np.random.uniform(low, high), which also runs with low > high (the non-linear gain range
    # [-5, -20] dB); Generator.uniform refuses that, so the affine map is written out (the same single draw)
    return low + (high - low) * float(rng.random())


def _norm_wav(x: np.ndarray, always: bool) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    if (always and peak > 0) or peak > 1:
        return x / peak
    return x


def notch_filter_bank(sr: int, rng, p: RawBoostParams, min_g: float, max_g: float) -> np.ndarray:
    """The reference's `genNotchCoeffs`: `n_bands` random band-stop FIRs in cascade, peak gain set to G dB."""
    b = np.ones(1)
    for _ in range(p.n_bands):
        fc = _uniform(rng, p.min_f, p.max_f)
        bw = _uniform(rng, p.min_bw, p.max_bw)
        taps = int(_uniform(rng, p.min_coeff, p.max_coeff))
        if taps % 2 == 0:  # a band-stop FIR needs an odd length
            taps += 1
        f1 = max(fc - bw / 2, 1 / 1000)
        f2 = min(fc + bw / 2, sr / 2 - 1 / 1000)
        b = np.convolve(signal.firwin(taps, [f1, f2], window="hamming", fs=sr), b)
    gain_db = _uniform(rng, min_g, max_g)
    _, h = signal.freqz(b, 1, fs=sr)
    return 10 ** (gain_db / 20) * b / np.max(np.abs(h))


def _filter_fir(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The reference's `filterFIR`: filter the input padded with len(b)+1 zeros, drop (len(b)+1)/2 at each end."""
    n = b.shape[0] + 1
    padded = np.pad(x, (0, n))
    y = signal.lfilter(b, 1, padded)
    return y[int(n / 2): int(y.shape[0] - n / 2)]


def lnl_convolutive_noise(x: np.ndarray, sr: int, rng, p: RawBoostParams) -> np.ndarray:
    """Algorithm 1: sum over k = 1..n_f of a random notch filter bank applied to x**k."""
    y = np.zeros_like(x)
    min_g, max_g = p.min_g, p.max_g
    for i in range(p.n_f):
        if i == 1:  # the reference shifts the gain range once, before the first non-linear term
            min_g, max_g = min_g - p.min_bias_lin_nonlin, max_g - p.max_bias_lin_nonlin
        b = notch_filter_bank(sr, rng, p, min_g, max_g)
        y = y + _filter_fir(np.power(x, i + 1), b)
    y = y - np.mean(y)
    return _norm_wav(y, always=False)


def isd_additive_noise(x: np.ndarray, rng, p: RawBoostParams) -> np.ndarray:
    """Algorithm 2: up to p % of the samples become x + g_sd * x * u1 * u2."""
    beta = _uniform(rng, 0, p.p)
    y = x.copy()
    n = int(x.shape[0] * (beta / 100))
    chosen = rng.permutation(x.shape[0])[:n]
    f_r = (2 * rng.random(chosen.shape[0]) - 1) * (2 * rng.random(chosen.shape[0]) - 1)
    y[chosen] = x[chosen] + p.g_sd * x[chosen] * f_r
    return _norm_wav(y, always=False)


def ssi_additive_noise(x: np.ndarray, sr: int, rng, p: RawBoostParams) -> np.ndarray:
    """Algorithm 3: coloured Gaussian noise added at an SNR uniform in [snr_min, snr_max] dB."""
    noise = rng.normal(0, 1, x.shape[0])
    b = notch_filter_bank(sr, rng, p, p.min_g, p.max_g)
    noise = _norm_wav(_filter_fir(noise, b), always=True)
    snr = _uniform(rng, p.snr_min, p.snr_max)
    noise_norm = np.linalg.norm(noise, 2)
    if noise_norm == 0:  # a one-sample clip filtered to nothing: no noise to scale
        return x
    noise = noise / noise_norm * np.linalg.norm(x, 2) / 10.0 ** (0.05 * snr)
    return x + noise
