"""Attacking through a perturbation: the detector an attack sees is ``detector(perturb(x))``.

Used for conditions like ``{attack: pgd-linf, through: {family: mp3, severity: 3}}``: the question
is whether an adversarial example survives a codec, a room or noise on its way to the detector.

* Forward: each row of the batch goes through the (numpy) perturbation with that utterance's own
  numpy generator, so a row never draws from another row's stream (batch-independent results).
* Backward: straight-through, i.e. BPDA with the identity (Athalye et al., 2018):
  ``y = x + (p(x) - x).detach()``, so ``dy/dx = I`` whatever ``p`` is (codecs are not differentiable).
* Stochastic perturbations (noise, rooms): expectation over transformation (EOT), ``eot`` draws per
  forward, their scores averaged. The attacks' loss ``sign * score`` is linear in the score, so the
  mean score gives the mean loss and its gradient. Each draw advances the row's generator, so
  successive attack steps see fresh draws; deterministic codecs need ``eot = 1``.

:class:`Through` is an ``nn.Module`` that keeps the wrapped detector's ``nb_samp``, ``sample_rate``
and parameters (so the attacks find its device), and stays in eval mode.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


class Through(torch.nn.Module):
    """``forward(x) = mean_k detector(x + (p_k(x) - x).detach())`` over ``eot`` perturbation draws.

    ``rngs``: one ``np.random.Generator`` per row of every batch this module will see (row ``i`` of
    the input draws only from ``rngs[i]``); ``contexts``: optional per-row
    :class:`perturbations.base.Context` (utterance id, babble pool, resource folders).
    """

    def __init__(self, detector: torch.nn.Module, perturbation, rngs: Sequence[np.random.Generator],
                 eot: int = 1, contexts: Sequence | None = None):
        super().__init__()
        if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
            raise ValueError(f"through: eot must be a positive integer (perturbation draws per step), got {eot!r}")
        if contexts is not None and len(contexts) != len(rngs):
            raise ValueError(f"through: {len(contexts)} contexts for {len(rngs)} generators")
        self.detector = detector
        self.perturbation = perturbation
        self.rngs = list(rngs)
        self.contexts = list(contexts) if contexts is not None else [None] * len(self.rngs)
        self.eot = eot
        self.nb_samp = getattr(detector, "nb_samp", None)
        self.sample_rate = int(getattr(detector, "sample_rate", 16000))
        self.eval()

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the perturbation, row by row, with straight-through (identity) gradients."""
        if x.dim() != 2 or x.shape[0] != len(self.rngs):
            raise ValueError(f"through {getattr(self.perturbation, 'family', '?')}: got a batch of shape "
                             f"{tuple(x.shape)} but {len(self.rngs)} per-utterance generators; the wrapper is "
                             "built for one batch and every call must pass all of its rows")
        rows = x.detach().float().cpu().numpy()
        out = np.stack([self.perturbation(r, self.sample_rate, g, c)
                        for r, g, c in zip(rows, self.rngs, self.contexts)])
        if not np.all(np.isfinite(out)):
            raise ValueError(f"through {self.perturbation.family}: the perturbation produced non-finite samples")
        y = torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
        return x + (y - x).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for _ in range(self.eot):
            s = self.detector(self.perturb(x))
            total = s if total is None else total + s
        return total / self.eot

    def score(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            self.eval()
            return self.forward(x)


__all__ = ["Through"]
