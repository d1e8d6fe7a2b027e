"""What every gradient attack shares: the budget fields, input checks, the detector guard, the loss.

Loss (maximised by every attack): ``s_i * score_i`` with ``s = +1`` for spoof (label 0: push the score
up, towards bona fide) and ``s = -1`` for bona fide (label 1: push it down). It uses only the
detector's ``[B]`` score, so it fits any :class:`models.base.Detector`. The loss is per utterance
(detectors run in eval mode, so utterances in a batch do not interact); gradients are taken with
``torch.autograd.grad`` on the input only, with every parameter's ``requires_grad`` switched off
for the duration (and restored after), so no parameter ever gets a ``.grad``.

The attack runs on the device of the detector's parameters; the result comes back on the input's
device and dtype. On CUDA, a detector that contains an RNN (``nn.RNNBase``, e.g. RawNet2's GRU) runs its
forward/backward with cuDNN disabled, since cuDNN's RNN backward refuses eval mode; others keep cuDNN.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from attacks import _budget
from attacks.base import Attack, check_inputs

log = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen(detector: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients while attacking; the caller's flags come back after."""
    was_training = detector.training
    flags = [(p, p.requires_grad) for p in detector.parameters()]
    detector.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        detector.train(was_training)


class Objective:
    """``loss(adv) = sign * detector(adv)`` per utterance, and its input gradient."""

    def __init__(self, detector: torch.nn.Module, sign: torch.Tensor, where: str):
        self.detector, self.sign, self.where = detector, sign, where
        self.calls = 0
        # only where an RNN needs it: cuDNN-less convolutions are several times slower
        self.has_rnn = any(isinstance(m, torch.nn.RNNBase) for m in detector.modules())

    def _cudnn(self, x: torch.Tensor):
        if x.device.type == "cuda" and self.has_rnn:
            return torch.backends.cudnn.flags(enabled=False)
        return contextlib.nullcontext()

    def score(self, adv: torch.Tensor) -> torch.Tensor:
        s = self.detector(adv)
        if s.shape != (adv.shape[0],):
            raise ValueError(f"{self.where}: the detector returned a score of shape {tuple(s.shape)} for a "
                             f"batch of {adv.shape[0]}; a Detector's forward must map [B, T] -> [B]")
        self.calls += 1
        return s

    def loss(self, adv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._cudnn(adv):
            return self.sign * self.score(adv).float()

    def loss_and_grad(self, adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad(), self._cudnn(adv):
            loss = self.sign * self.score(adv).float()
            if not loss.requires_grad:
                raise ValueError(f"{self.where}: {type(self.detector).__name__}'s score does not depend "
                                 "differentiably on its input (no_grad, inference_mode, detach or numpy "
                                 "inside forward?); gradient attacks need a differentiable forward")
            (grad,) = torch.autograd.grad(loss.sum(), adv)
        return loss.detach(), torch.nan_to_num(grad.detach(), nan=0.0, posinf=0.0, neginf=0.0)


def _check_generator(gen, where: str) -> torch.Generator:
    if not isinstance(gen, torch.Generator):
        raise ValueError(f"{where}: a random start needs a torch.Generator (foundation.seeding.torch_generator_for), "
                         f"or one per utterance; got {type(gen).__name__}. Pass one, or set random_start=False")
    return gen


def _draw(fn, gen, shape, like: torch.Tensor, where: str) -> torch.Tensor:
    """Draws from one generator, or row by row from one generator per utterance (a list), so that an
    utterance's random start does not depend on which others share its batch."""
    if isinstance(gen, (list, tuple)):
        if len(gen) != shape[0]:
            raise ValueError(f"{where}: {len(gen)} generators for a batch of {shape[0]}")
        return torch.stack([_draw(fn, g, tuple(shape[1:]), like, where) for g in gen])
    gen = _check_generator(gen, where)
    return fn(shape, generator=gen, device=gen.device, dtype=torch.float32).to(like.device, like.dtype)


def uniform(gen, shape, like: torch.Tensor, where: str) -> torch.Tensor:
    """U[0, 1) draws from the passed generator(s) only (on the generator's device, then moved)."""
    return _draw(torch.rand, gen, shape, like, where)


def normal(gen, shape, like: torch.Tensor, where: str) -> torch.Tensor:
    """N(0, 1) draws from the passed generator(s) only."""
    return _draw(torch.randn, gen, shape, like, where)


#: bounds on attack parameters: beyond them a typo (eps: 1e6, snr_db: -500, steps: 1e9) rather than a budget
SNR_DB_RANGE = (-20.0, 120.0)
MAX_ITERATIONS = {"steps": 10_000, "restarts": 100, "search_steps": 100}


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class GradientAttack(Attack):
    """Base of the gradient attacks: budget fields, checks, and ``__call__`` -> ``self.run``."""

    snr_db: float | None = None
    eps: float | None = None

    #: ball geometry of the budget, "linf" or "l2" (APGD makes it a field)
    def budget_norm(self) -> str:
        return getattr(self, "norm", "linf")

    @classmethod
    def at(cls, severity: int, **overrides: Any) -> "GradientAttack":
        # an override of one budget field replaces the ladder's other one
        if overrides.get("eps") is not None and "snr_db" not in overrides:
            overrides["snr_db"] = None
        if overrides.get("snr_db") is not None and "eps" not in overrides:
            overrides["eps"] = None
        return super().at(severity, **overrides)

    def validate(self) -> None:
        if (self.snr_db is None) == (self.eps is None):
            raise ValueError(f"{self.name}: give exactly one budget field, snr_db (dB) or eps (amplitude); "
                             f"got snr_db={self.snr_db!r}, eps={self.eps!r}")
        lo, hi = SNR_DB_RANGE
        if self.snr_db is not None and not (is_number(self.snr_db) and lo <= self.snr_db <= hi):
            raise ValueError(f"{self.name}: snr_db must be a number of dB in {lo:g}..{hi:g} (the perturbation's SNR "
                             f"against each utterance), got {self.snr_db!r}")
        if self.eps is not None and not (is_number(self.eps) and 0 < self.eps <= 1.0):
            raise ValueError(f"{self.name}: eps must be an amplitude in (0, 1] (full scale 1.0; waveforms stay in "
                             f"[-1, 1]), got {self.eps!r}")
        _budget.check_norm(self.budget_norm(), f"{self.name}: norm")

    def _positive(self, field: str, integer: bool = False, allow_zero: bool = False) -> None:
        v = getattr(self, field)
        ok = (isinstance(v, int) and not isinstance(v, bool)) if integer else is_number(v)
        if not ok or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
            kind = "integer" if integer else "number"
            raise ValueError(f"{self.name}: {field} must be a {'non-negative' if allow_zero else 'positive'} "
                             f"{kind}, got {v!r}")
        if field in MAX_ITERATIONS and v > MAX_ITERATIONS[field]:
            raise ValueError(f"{self.name}: {field} must be at most {MAX_ITERATIONS[field]} (a cost bound: each "
                             f"one is a forward and backward pass per utterance), got {v!r}")

    def _check_loop(self) -> None:
        """Checks the iteration fields an attack has: steps, restarts, step, schedule, random_start."""
        for f in ("steps", "restarts"):
            if hasattr(self, f):
                self._positive(f, integer=True)
        if getattr(self, "step", None) is not None:
            self._positive("step")
        if hasattr(self, "schedule") and self.schedule not in SCHEDULES:
            raise ValueError(f"{self.name}: schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if hasattr(self, "random_start") and not isinstance(self.random_start, bool):
            raise ValueError(f"{self.name}: random_start must be true or false, got {self.random_start!r}")

    def run(self, obj: Objective, x: torch.Tensor, bound: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, detector, wav, label, generator=None):
        where = f"attack {self.name}"
        label = check_inputs(where, wav, label)
        if wav.numel() == 0:
            return wav.clone()
        param = next(detector.parameters(), None)
        device = param.device if param is not None else wav.device
        with torch.inference_mode(False):
            x = wav.detach().clone().to(device=device, dtype=torch.float32)
            sign = torch.where(label.to(device) == 1, -1.0, 1.0)
            bound = _budget.radius(x, self.budget_norm(), self.snr_db, self.eps)
            obj = Objective(detector, sign, where)
            with frozen(detector):
                adv = self.run(obj, x, bound, generator)
            # the contract, enforced whatever the loop did
            adv = _budget.to_wave(x, adv.detach() - x, bound, self.budget_norm())
        log.debug("%s: %d detector calls for %d utterances", where, obj.calls, x.shape[0])
        return adv.to(device=wav.device, dtype=wav.dtype)


def best_of(restarts: int, one_run) -> torch.Tensor:
    """Run ``one_run() -> (adv, loss)`` ``restarts`` times, keeping the best per utterance."""
    best, best_loss = None, None
    for _ in range(restarts):
        adv, loss = one_run()
        if best is None:
            best, best_loss = adv, loss
        else:
            better = loss > best_loss
            best = torch.where(better[:, None], adv, best)
            best_loss = torch.where(better, loss, best_loss)
    return best


class Tracker:
    """Keeps each utterance's highest-loss iterate."""

    def __init__(self, adv: torch.Tensor, loss: torch.Tensor):
        self.adv, self.loss = adv.clone(), loss.clone()

    def update(self, adv: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        better = loss > self.loss
        self.adv = torch.where(better[:, None], adv, self.adv)
        self.loss = torch.where(better, loss, self.loss)
        return better


SCHEDULES = ("constant", "cosine")


def step_sizes(steps: int, step: float | None, schedule: str) -> list[float]:
    """Per-iteration step, as a fraction of the budget radius. Default: 2.5 / steps (Madry et al.) for
    ``constant``; ``cosine`` starts at twice that and decays as ``(1 + cos(pi k / steps)) / 2``,
    so both walk the same total distance."""
    if schedule == "constant":
        return [step if step is not None else 2.5 / steps] * steps
    first = step if step is not None else 5.0 / steps
    return [first * 0.5 * (1.0 + math.cos(math.pi * k / steps)) for k in range(steps)]
