"""A universal FIR filter (Malafide-style: Panariello et al., Interspeech 2023), learned black box.

One short filter ``h = identity + g`` (``taps`` taps, centred, so the output stays time-aligned) is learned
on training clips against one detector and then applied unchanged to other clips: the attacker filters
every spoof it sends; bona fide clips are not the attacker's and stay untouched.

Budget: ``max_f |G(f)| <= 10**(-snr_db/20)`` (``G`` the deviation's frequency response, checked on a
16384-point grid with a 1% margin), so ``||h * x - x|| <= 10**(-snr_db/20) ||x||`` for every clip: the
achieved SNR is ``>= snr_db`` whatever is filtered, and the filter never has to be rescaled per clip.

Learning (only scores, so it runs against a remote service too): ``g`` is parametrised by ``bands``
gains ``c`` in [-1, 1] of triangular mel-spaced bands (``G ~ 10**(-snr_db/20) * sum_k c_k B_k``, windowed to
``taps``, then projected onto the budget), and a (1+1) evolution strategy searches ``c`` with the
one-fifth success rule (8 numbers instead of 65 taps: far fewer queries for the same gain). The
objective is the mean score of the training spoofs (higher = more bona fide); one iteration = one query
per training clip; ``queries`` is the budget per training clip (the clean scores are the first).
Randomness: the generator passed to :meth:`learn`.

Inside ``bench run`` (see bench/run/adversarial.py and ARCHITECTURE.md): learned once per source model and
severity on a deterministic half of the utterances, the other half filtered and scored by every model.
Called as a plain attack on a batch, it learns on the batch's own spoofs and filters them (a per-batch
universal filter; no held-out clips).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from attacks._blackbox import BlackBoxAttack, Oracle, randn, row_generators
from attacks.base import register

LEVELS: tuple[Mapping[str, Any], ...] = (
    {"snr_db": 30.0, "queries": 100},
    {"snr_db": 20.0, "queries": 100},
    {"snr_db": 10.0, "queries": 100},
    {"snr_db": 5.0, "queries": 100},
    {"snr_db": 0.0, "queries": 100},
)

GRID = 16384
MARGIN = 0.99


def project(g: torch.Tensor, bound: float) -> torch.Tensor:
    """Scales ``g`` so that ``max |G(f)| <= MARGIN * bound`` on a dense grid."""
    peak = float(torch.fft.rfft(g.double(), n=GRID).abs().max())
    limit = MARGIN * bound
    return g * (limit / peak) if peak > limit else g


def band_basis(taps: int, bands: int, sr: int = 16000) -> torch.Tensor:
    """``[bands, taps]``: centred linear-phase FIR deviations whose responses are triangles (hats) over
    ``bands`` mel-spaced centres from 0 to Nyquist (they sum to 1 at every frequency), Hamming-windowed."""
    n_fft = 4096
    f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel = 2595 * np.log10(1 + f / 700)
    centres = np.linspace(0, mel[-1], bands)
    rows = []
    for k in range(bands):
        resp = np.interp(mel, centres, np.eye(bands)[k])
        imp = np.fft.irfft(resp, n=n_fft)
        imp = np.roll(imp, taps // 2)[:taps] * np.hamming(taps)
        rows.append(imp)
    return torch.from_numpy(np.stack(rows))


def apply_filter(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``x [B, T]`` convolved with the centred filter ``h [K]`` (K odd), same length, then clamped to [-1, 1]."""
    k = h.shape[0]
    y = torch.nn.functional.conv1d(x[:, None], h.flip(0).to(x)[None, None], padding=k // 2)[:, 0]
    return y.clamp(-1.0, 1.0)


@register
@dataclass(frozen=True)
class UniversalFilter(BlackBoxAttack):
    name: ClassVar[str] = "universal-filter"
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = LEVELS
    version: ClassVar[int] = 1
    #: the runner learns it on a training split and applies it to held-out clips
    universal: ClassVar[bool] = True

    taps: int = 65
    bands: int = 8              # the filter's deviation: gains of this many mel-spaced bands, each in [-1, 1]
    step: float = 0.5           # first step in band-gain units
    train_clips: int = 16       # at most this many training spoofs (the first by the runner's order)

    def validate(self) -> None:
        super().validate()
        self._positive("taps", integer=True)
        if self.taps % 2 == 0:
            raise ValueError(f"{self.name}: taps must be odd (a centred filter keeps the audio aligned), "
                             f"got {self.taps}")
        self._positive("step")
        self._positive("bands", integer=True)
        self._positive("train_clips", integer=True)

    def identity(self) -> torch.Tensor:
        h = torch.zeros(self.taps, dtype=torch.float64)
        h[self.taps // 2] = 1.0
        return h

    def learn(self, detector, wav: torch.Tensor, label, generator) -> tuple[np.ndarray, int]:
        """``(filter taps, queries spent)`` learned on the spoofs (label 0) among ``wav [N, T]``."""
        ident = self.identity()
        if wav.shape[0] == 0:
            return ident.numpy(), 0
        x, sign, (gen, *_) = self.prepare(detector, wav, label, [generator] * wav.shape[0])
        spoof = [i for i in range(x.shape[0]) if sign[i] > 0][: self.train_clips]
        if not spoof:
            return ident.numpy(), 0
        x = x[spoof]
        oracle = Oracle(detector, sign[spoof], self.queries, f"attack {self.name}")
        rows = list(range(len(spoof)))
        with torch.inference_mode(False):
            bound = 10 ** (-float(self.snr_db) / 20)
            basis = band_basis(self.taps, self.bands) * bound
            c = torch.zeros(self.bands, dtype=torch.float64)
            g = torch.zeros(self.taps, dtype=torch.float64)
            best = float(oracle.loss(x, rows).mean())
            sigma = float(self.step)
            for _ in range(self.queries - 1):
                u = randn(gen, (self.bands,), c)
                cand_c = (c + sigma * u / u.norm()).clamp(-1.0, 1.0)
                cand = project(cand_c @ basis, bound)
                loss = float(oracle.loss(apply_filter(x, (ident + cand).float()), rows).mean())
                if loss > best:
                    c, g, best, sigma = cand_c, cand, loss, min(sigma * 1.5, 2.0)
                else:
                    sigma = max(sigma * 0.9, 1e-3)
        return (ident + g).numpy(), int(oracle.counts.max())

    def apply(self, h, wav: torch.Tensor, label) -> torch.Tensor:
        """Filters the spoof rows of ``wav [B, T]`` with ``h``; bona fide rows come back unchanged."""
        label = torch.as_tensor(label).to(wav.device)
        y = apply_filter(wav.float(), torch.as_tensor(np.asarray(h), dtype=torch.float32, device=wav.device))
        return torch.where((label == 0)[:, None], y, wav.float()).to(wav.dtype)

    def craft(self, detector, wav, label, generator=None, starts=None):
        gens = row_generators(generator, wav.shape[0], f"attack {self.name}")
        h, q = self.learn(detector, wav, label, gens[0] if gens else None)
        return self.apply(h, wav, label), torch.full((wav.shape[0],), q, dtype=torch.long)


__all__ = ["UniversalFilter", "LEVELS", "apply_filter", "project"]
