"""Budgets shared by the gradient attacks: SNR -> per-utterance radius, projections, achieved SNR.

Two budget fields, exactly one set per attack:

* ``snr_db`` (the suites' ladder): relative to each utterance ``x_i`` (its ``T`` samples as given,
  i.e. after the detector's length fix). The *amplitude* ``a_i = rms(x_i) * 10**(-snr_db / 20)``.
  - L-inf attacks: ``max|delta_i| <= a_i``. Then ``sum(delta**2) <= T a_i**2 = sum(x**2) 10**(-snr/10)``,
    so the achieved SNR is ``>= snr_db`` (equal only when every sample uses the whole budget).
  - L2 attacks: ``||delta_i||_2 <= ||x_i||_2 * 10**(-snr_db / 20)`` (the same ``a_i * sqrt(T)``), so the
    achieved SNR is ``>= snr_db``, and equal when the perturbation uses its whole ball.
* ``eps``: an absolute waveform amplitude, the same for every utterance (full scale = 1.0).
  - L-inf: ``max|delta_i| <= eps``;
  - L2: ``eps`` is the RMS of the perturbation, i.e. ``||delta_i||_2 <= eps * sqrt(T)``, so that ``eps``
    means the same loudness for either norm and any clip length.

The adversarial waveform is ``clamp(x + delta, -1, 1)`` (never [0, 1]); clamping only shrinks each
``|delta_t|`` (the input is in [-1, 1]), so it never breaks a budget. L2 projections scale by
``(1 - 1e-6)`` beyond the exact radius so float rounding cannot overshoot (8.7e-6 dB).
A silent utterance (``rms = 0``) under an SNR budget gets a zero budget: it comes back unchanged and
its achieved SNR is reported as NaN.
"""
from __future__ import annotations

import math

import torch

NORMS = ("linf", "l2")
_L2_SAFETY = 1.0 - 1e-6


def check_norm(norm: str, where: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"{where}: norm must be one of {', '.join(NORMS)}, got {norm!r}")


def amplitude(x: torch.Tensor, snr_db: float | None = None, eps: float | None = None) -> torch.Tensor:
    """Per-utterance budget amplitude ``a_i`` [B] (see the module docstring)."""
    if (snr_db is None) == (eps is None):
        raise ValueError("give exactly one budget: snr_db (dB, per utterance) or eps (absolute amplitude)")
    if eps is not None:
        return torch.full((x.shape[0],), float(eps), dtype=x.dtype, device=x.device)
    rms = x.double().pow(2).mean(dim=1).sqrt()
    return (rms * 10.0 ** (-float(snr_db) / 20.0)).to(x.dtype)


def radius(x: torch.Tensor, norm: str, snr_db: float | None = None, eps: float | None = None) -> torch.Tensor:
    """The budget in the norm's own units [B]: ``max|delta|`` for linf, ``||delta||_2`` for l2."""
    check_norm(norm, "budget")
    if norm == "linf":
        return amplitude(x, snr_db, eps)
    if eps is not None:
        return amplitude(x, None, eps) * math.sqrt(x.shape[1])
    l2 = x.double().pow(2).sum(dim=1).sqrt()
    return (l2 * 10.0 ** (-float(snr_db) / 20.0)).to(x.dtype)


def l2norm(v: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean norm, [B, T] -> [B, 1]."""
    return v.flatten(1).norm(dim=1, keepdim=True)


def project(delta: torch.Tensor, bound: torch.Tensor, norm: str) -> torch.Tensor:
    """Project each row of ``delta`` onto its ball of radius ``bound[i]`` (differentiable)."""
    b = bound.reshape(-1, 1).to(delta.dtype)
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, b), -b)
    n = l2norm(delta)
    scale = torch.where(n > b, b * _L2_SAFETY / n.clamp_min(1e-30), torch.ones_like(n))
    return delta * scale


def to_wave(x: torch.Tensor, delta: torch.Tensor, bound: torch.Tensor, norm: str) -> torch.Tensor:
    """``clamp(x + P(delta), -1, 1)``: the feasible waveform nearest to ``x + delta`` in the attack's sense."""
    return (x + project(delta, bound, norm)).clamp(-1.0, 1.0)


def achieved_snr_db(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """``10 log10(sum x^2 / sum (adv - x)^2)`` per utterance, in float64 (inf when unchanged)."""
    x = x.detach().double()
    num = x.pow(2).sum(dim=-1)
    den = (adv.detach().double() - x).pow(2).sum(dim=-1)
    out = 10.0 * torch.log10(num / den)
    return torch.where(num > 0, out, torch.full_like(out, float("nan")))


def linf(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Achieved ``max|adv - x|`` per utterance."""
    return (adv.detach() - x.detach()).abs().amax(dim=-1)
