"""What the black-box attacks share: the budget (SNR dB and queries), input checks, the query oracle.

A black-box attack sees only ``detector.score(x) -> [B]`` (no gradients, no parameters), so it works the
same on a local model and on a remote service (``--model http://HOST:PORT``, models/remote.py); the
local model is the oracle that tests the remote path.

Budget, per utterance:
* ``snr_db``: the perturbation's loudness against the utterance (see attacks/_budget.py): an L-inf
  amplitude for ``square-linf``, an L2 ball for ``hsja``, a bound on the filter's deviation from the
  identity for ``universal-filter``; the achieved SNR is ``>= snr_db`` in every case.
* ``queries``: detector calls per utterance, every call counted, the first clean score included. An
  attack never exceeds it; :meth:`BlackBoxAttack.craft` returns the count of every utterance (the runner
  stores it in the ``queries`` column of scores.csv).

Loss (maximised): ``s_i * score_i`` with ``s = +1`` for spoof (push towards bona fide) and ``-1`` for bona
fide, as for the gradient attacks. Randomness: row ``i`` draws only from generator ``i`` (a list of one
``torch.Generator`` per utterance, as the runner passes), so results do not depend on the batch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from attacks.base import Attack, check_inputs

log = logging.getLogger(__name__)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def row_generators(generator, n: int, where: str) -> list[torch.Generator]:
    """One generator per row; a single generator is shared (then row i's draws depend on rows < i)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"{where}: {len(generator)} generators for a batch of {n}")
        gens = list(generator)
    else:
        gens = [generator] * n
    for g in gens:
        if not isinstance(g, torch.Generator):
            raise ValueError(f"{where}: needs a torch.Generator per utterance "
                             "(foundation.seeding.torch_generator_for), "
                             f"got {type(g).__name__}")
    return gens


def rand(gen: torch.Generator, shape, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=gen.device).to(like.device, like.dtype)


def randn(gen: torch.Generator, shape, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=gen.device).to(like.device, like.dtype)


def randint(gen: torch.Generator, high: int) -> int:
    return int(torch.randint(0, max(1, int(high)), (1,), generator=gen, device=gen.device).item())


class Oracle:
    """Counts queries per utterance and refuses to exceed the budget (a bug, never silently)."""

    def __init__(self, detector, sign: torch.Tensor, budget: int, where: str):
        self.detector, self.sign, self.budget, self.where = detector, sign, int(budget), where
        self.counts = torch.zeros(sign.shape[0], dtype=torch.long)

    def left(self, row: int) -> int:
        return self.budget - int(self.counts[row])

    def scores(self, adv: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """Scores ``adv[k]`` as a query of utterance ``rows[k]`` (``adv``: [len(rows), T])."""
        rows = list(rows)
        if not rows:
            return adv.new_zeros(0)
        idx = torch.as_tensor(rows, dtype=torch.long)
        self.counts.index_add_(0, idx, torch.ones_like(idx))
        over = [r for r in set(rows) if self.counts[r] > self.budget]
        if over:
            raise RuntimeError(f"{self.where}: utterance rows {sorted(over)} went over the query budget "
                               f"{self.budget} (a bug in the attack)")
        with torch.no_grad():
            fn = getattr(self.detector, "score", None) or self.detector
            s = fn(adv)
        if s.shape != (len(rows),):
            raise ValueError(f"{self.where}: the detector returned a score of shape {tuple(s.shape)} for "
                             f"{len(rows)} inputs; a Detector maps [B, T] -> [B]")
        return s.detach().float().to(adv.device)

    def loss(self, adv: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """``s * score`` for each row (higher = closer to the other class)."""
        return self.sign[list(rows)] * self.scores(adv, rows)


@dataclass(frozen=True)
class BlackBoxAttack(Attack):
    """Base of the black-box attacks: budget fields, checks, ``craft`` -> ``(adv, queries)``."""

    #: the smallest query budget that lets the attack try anything
    min_queries: ClassVar[int] = 2
    #: the attack can start from a clip of the other class (``craft(..., starts=)``; decision-based attacks)
    uses_starts: ClassVar[bool] = False

    snr_db: float = 30.0
    queries: int = 100

    def validate(self) -> None:
        if not (isinstance(self.snr_db, (int, float)) and not isinstance(self.snr_db, bool)
                and math.isfinite(self.snr_db)):
            raise ValueError(f"{self.name}: snr_db must be a finite number of dB, got {self.snr_db!r}")
        if not _is_int(self.queries) or self.queries < self.min_queries:
            raise ValueError(f"{self.name}: queries must be an integer >= {self.min_queries} (detector calls per "
                             f"utterance), got {self.queries!r}")

    def _positive(self, field: str, integer: bool = False) -> None:
        v = getattr(self, field)
        ok = _is_int(v) if integer else isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{self.name}: {field} must be a positive {'integer' if integer else 'number'}, "
                             f"got {v!r}")

    def run(self, oracle: Oracle, x: torch.Tensor, gens: list[torch.Generator], starts=None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, detector, wav, label, generator=None):
        return self.craft(detector, wav, label, generator)[0]

    def prepare(self, detector, wav, label, generator):
        """Checks the inputs; returns (x float32 on the detector's device, sign, per-row generators)."""
        where = f"attack {self.name}"
        label = check_inputs(where, wav, label)
        param = next(iter(detector.parameters()), None) if hasattr(detector, "parameters") else None
        device = param.device if param is not None else wav.device
        x = wav.detach().clone().to(device=device, dtype=torch.float32)
        sign = torch.where(label.to(device) == 1, -1.0, 1.0)
        return x, sign, row_generators(generator, wav.shape[0], where)

    def craft(self, detector, wav, label, generator=None, starts=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(adversarial wav [B, T] on the input's device and dtype, queries [B] used per utterance)``.
        ``starts``: for attacks with ``uses_starts``, one optional ``[T]`` clip per row that the attacker owns
        and expects to be judged the other class (e.g. a bona fide recording for a spoof); others ignore it."""
        x, sign, gens = self.prepare(detector, wav, label, generator)
        if starts is not None and len(starts) != x.shape[0]:
            raise ValueError(f"attack {self.name}: {len(starts)} starting points for a batch of {x.shape[0]}")
        oracle = Oracle(detector, sign, self.queries, f"attack {self.name}")
        if x.numel() == 0:
            return wav.clone(), oracle.counts
        with torch.inference_mode(False):
            adv = (self.run(oracle, x, gens, starts) if self.uses_starts else self.run(oracle, x, gens))
            adv = adv.detach().clamp(-1.0, 1.0)
        log.debug("attack %s: queries per utterance %s", self.name, oracle.counts.tolist())
        return adv.to(device=wav.device, dtype=wav.dtype), oracle.counts
