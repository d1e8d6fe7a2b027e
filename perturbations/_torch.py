"""Device-side arithmetic of the perturbations: the same maths as the numpy helpers (``_mix``, ``_measure``)
in torch, on whatever device the waveform tensor lives on (the scoring GPU in a run with
``--prepare-on device``).

Random draws never move here: a family draws from its numpy ``rng`` exactly as on the CPU path (white noise,
room geometry, which impulse response or noise file), so both paths consume the same generator stream and
differ only by floating-point rounding (float64 throughout, measured within 1e-6 of the numpy path; see
tests/test_device_prepare.py). What moves to the device is the heavy part: FFT shaping of coloured noise,
FFT convolution with impulse responses and the cross-correlation that aligns them, SNR mixing, polyphase
resampling, and zero-phase IIR filtering (``sosfiltfilt``) as FFT convolutions with the truncated impulse response.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


def tensor(x, like: torch.Tensor) -> torch.Tensor:
    """``x`` (numpy or tensor) as float64 on ``like``'s device."""
    if isinstance(x, torch.Tensor):
        return x.to(device=like.device, dtype=torch.float64)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(like.device)


def add_at_snr(x: torch.Tensor, noise: torch.Tensor, snr_db: float, context=None, family: str = "") -> torch.Tensor:
    """``x + g·noise`` at exactly ``snr_db`` (``_mix.add_at_snr`` on the device); float32 out."""
    from perturbations.noise._mix import _note

    x64, n64 = x.double(), noise.double()
    if not bool(torch.any(x64 != 0)):
        _note(context, f"{family}: silent input, no noise added (SNR undefined)")
        return x64.float()
    if n64.shape != x64.shape:
        raise ValueError(f"{family}: noise shape {tuple(n64.shape)} differs from the input's {tuple(x64.shape)}")
    pn = float(torch.sum(n64 * n64))
    if pn <= 0:
        raise ValueError("the noise is silent: cannot scale it to an SNR")
    g = float(np.sqrt(float(torch.sum(x64 * x64)) / (pn * 10.0 ** (snr_db / 10.0))))
    y = (x64 + g * n64).float()
    peak = float(y.abs().max())
    if peak > 1.0:
        _note(context, f"{family}: peak {peak:.2f} above full scale after adding noise (not clipped)")
    return y


def shape_colored(white: torch.Tensor, beta: float, sr: int, f_min: float) -> torch.Tensor:
    """``_mix.colored_noise`` after its draw: PSD ∝ 1/f^beta by FFT over the clip, unit RMS."""
    n = white.numel()
    noise = white
    if beta != 0 and n > 0:
        f = torch.fft.rfftfreq(n, 1.0 / sr, dtype=torch.float64, device=white.device)
        shape = torch.clamp(f, min=f_min) ** (-beta / 2.0)
        shape[0] = 0.0
        shaped = torch.fft.irfft(torch.fft.rfft(white) * shape, n)
        if bool(torch.any(shaped != 0)):
            noise = shaped
    return noise / torch.sqrt(torch.mean(noise * noise))


def _fftconv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    n = a.numel() + b.numel() - 1
    size = 1 << max(0, (n - 1).bit_length())
    return torch.fft.irfft(torch.fft.rfft(a, size) * torch.fft.rfft(b, size), size)[:n]


def convolve_aligned(wav: torch.Tensor, h: torch.Tensor, start: int | None = None, search: int = 0) -> torch.Tensor:
    """``_measure.convolve_aligned`` on the device: full FFT convolution, the cut at the direct path or at
    the cross-correlation peak within ``search`` samples after it."""
    x, h = wav.double(), h.double()
    d = int(torch.argmax(h.abs())) if start is None else int(start)
    y = _fftconv(x, h)
    if search > 0 and x.numel() and bool(torch.any(x != 0)):
        seg = y[d:d + x.numel() + search]
        seg = torch.nn.functional.pad(seg, (0, x.numel() + search - seg.numel()))
        xc = _fftconv(seg, torch.flip(x, (0,)))[x.numel() - 1:x.numel() + search]   # the "valid" part
        d += int(torch.argmax(xc[:search + 1]))
    out = y[d:d + x.numel()]
    return torch.nn.functional.pad(out, (0, x.numel() - out.numel()))


def match_rms(y: torch.Tensor, reference: torch.Tensor, context=None, family: str = "") -> torch.Tensor:
    """``_measure.match_rms`` on the device: the reference's RMS, scaled down (and noted) rather than clipped."""
    y = y.double()
    r_in = float(torch.sqrt(torch.mean(reference.double() ** 2))) if reference.numel() else 0.0
    r_out = float(torch.sqrt(torch.mean(y * y))) if y.numel() else 0.0
    if r_out > 0:
        y = y * (r_in / r_out)
    peak = float(y.abs().max()) if y.numel() else 0.0
    if peak > 0.999:
        y = y * (0.999 / peak)
        if context is not None:
            context.report.append(f"{family}: output scaled down by {20 * np.log10(peak / 0.999):.1f} dB "
                                  "to avoid clipping")
    return y


def resample(x: torch.Tensor, sr_from: int, sr_to: int) -> torch.Tensor:
    """``scipy.signal.resample_poly`` (Kaiser window, beta 5; what ``foundation.audio.resample(method=
    "polyphase")`` calls) on the device: the same filter, designed by scipy on the CPU, applied as
    zero-stuffing, an FFT convolution and decimation, with scipy's padding and trimming."""
    from math import gcd

    from scipy.signal import firwin

    x = x.double()
    if sr_from == sr_to or x.numel() == 0:
        return x.clone()
    g = gcd(int(sr_from), int(sr_to))
    up, down = int(sr_to) // g, int(sr_from) // g
    n_in = x.numel()
    n_out = n_in * up // down + bool(n_in * up % down)
    half_len = 10 * max(up, down)
    h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) * up
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_post_pad = 0

    def out_len(n_h: int) -> int:
        return ((n_in - 1) * up + n_h - 1) // down + 1

    while out_len(h.size + n_pre_pad + n_post_pad) < n_out + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate((np.zeros(n_pre_pad), h, np.zeros(n_post_pad)))
    stuffed = torch.zeros((n_in - 1) * up + 1, dtype=torch.float64, device=x.device)
    stuffed[::up] = x
    y = _fftconv(stuffed, tensor(h, x))[::down]
    return y[n_pre_remove:n_pre_remove + n_out]


_IMPULSE_TOL = 1e-12          # the truncated tail of an IIR impulse response, relative to its absolute sum
_IMPULSE_MAX = 1 << 22        # the longest impulse response sosfiltfilt accepts (a filter that decays slower errs)


@lru_cache(maxsize=64)
def _sos_impulse(sos_bytes: bytes, n_sections: int) -> tuple[np.ndarray, np.ndarray]:
    """The cascade's impulse response ``h`` (numpy ``sosfilt`` on a unit impulse), cut at the smallest power of
    two ``L`` whose remaining absolute sum is below ``_IMPULSE_TOL`` of the whole, and its suffix sums
    ``s[k] = h[k:].sum()`` (what a constant prefix contributes; see :func:`sosfiltfilt`)."""
    from scipy.signal import sosfilt

    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6).copy()
    n = 4096
    while n <= _IMPULSE_MAX:
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = sosfilt(sos, impulse)
        a = np.abs(h)
        if not np.all(np.isfinite(a)):
            break
        tail = np.cumsum(a[::-1])[::-1]          # tail[k] = sum |h[k:]|
        total = tail[0]
        L = 1
        while L <= n // 2 and tail[L] >= _IMPULSE_TOL * total:  # L <= n/2: the tail past L was measured over L
            L *= 2
        if L <= n // 2:
            h = h[:L]
            return h, np.cumsum(h[::-1])[::-1]
        n *= 2
    raise ValueError(f"sosfiltfilt: the filter's impulse response does not decay below {_IMPULSE_TOL:g} of its "
                     f"sum within {_IMPULSE_MAX} samples (unstable or too close to the unit circle); "
                     "use scipy.signal.sosfiltfilt on the CPU")


def _filter_from_steady_state(x: torch.Tensor, h: torch.Tensor, suffix: torch.Tensor) -> torch.Tensor:
    """``sosfilt(sos, x, zi=sosfilt_zi(sos) * x[0])``: the filter in its steady state for a constant ``x[0]``,
    i.e. ``x`` preceded by an (effectively infinite) constant ``x[0]`` prefix -- the FFT convolution with ``h``
    plus what the prefix adds, ``x[0] * h[n+1:].sum()`` at output ``n``."""
    y = _fftconv(x, h)[:x.numel()]
    m = min(x.numel(), h.numel() - 1)
    if m > 0:
        y[:m] += x[0] * suffix[1:m + 1]
    return y


def sosfiltfilt(x: torch.Tensor, sos) -> torch.Tensor:
    """``scipy.signal.sosfiltfilt(sos, x)`` with its defaults (odd extension of ``3 * ntaps`` samples, each
    pass started from ``sosfilt_zi`` times its first sample) on the device, without a per-sample loop: each
    pass is an FFT convolution with the cascade's impulse response (computed once on the CPU, truncated where
    its tail is below 1e-12 of its absolute sum), the steady-state start being the contribution of a constant
    prefix. Float64; within ~1e-12 of scipy (tests/test_device_prepare.py)."""
    sos = np.ascontiguousarray(np.atleast_2d(np.asarray(sos, dtype=np.float64)))
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sosfiltfilt: sos must have shape (n_sections, 6), got {sos.shape}")
    x = x.double()
    if x.ndim != 1:
        raise ValueError(f"sosfiltfilt: expected a 1-D tensor, got shape {tuple(x.shape)}")
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * ntaps
    if x.numel() <= edge:
        raise ValueError(f"The length of the input vector x must be greater than padlen, which is {edge}.")
    h_np, suffix_np = _sos_impulse(sos.tobytes(), n_sections)
    h, suffix = tensor(h_np, x), tensor(suffix_np, x)
    if edge > 0:   # scipy's odd extension
        head = 2 * x[0] - torch.flip(x[1:edge + 1], (0,))
        tail = 2 * x[-1] - torch.flip(x[-edge - 1:-1], (0,))
        x = torch.cat((head, x, tail))
    y = _filter_from_steady_state(x, h, suffix)
    y = torch.flip(_filter_from_steady_state(torch.flip(y, (0,)), h, suffix), (0,))
    return y[edge:y.numel() - edge] if edge > 0 else y
