"""The perturbation contract.

A perturbation family is a frozen dataclass whose fields are its parameters, with a literal
severity table ``LEVELS`` (five parameter dicts, mildest first) at the top of its own file, and
registered there with ``@register``. ``Family.at(k)`` builds severity ``k`` (0 gives
:class:`Identity`; anything outside 0..5 raises). ``apply(wav, sr, rng, context)`` returns a
float32 waveform of the same length, time-aligned with the input.

Randomness comes only from the ``rng`` argument, which the runner derives from
(seed, utterance id, condition) with :func:`foundation.seeding.rng_for`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

__all__ = ["PERTURBATIONS", "Context", "Perturbation", "Identity", "Chain", "SeverityError", "register",
           "make", "families"]

import numpy as np

from foundation.leveled import Leveled, SeverityError
from foundation.registry import Registry

PERTURBATIONS: Registry[type["Perturbation"]] = Registry("perturbation family")


class ResourceUnavailable(RuntimeError):
    """Something a family needs is not installed here (a system library such as libvo-amrwbenc, an encoder
    this PyAV build lacks): raised by ``check_resources`` with one line naming the family and the fix. The
    runner refuses the suite (or skips the family under --skip-unavailable); the tests skip the family."""


def unavailable(pert: "Perturbation") -> str | None:
    """Why ``pert`` cannot run here (its :class:`ResourceUnavailable` message), or None when it can. Any
    other error from ``check_resources`` is raised: a bug is not an absent library."""
    try:
        pert.check_resources()
    except ResourceUnavailable as e:
        return str(e)
    return None


@dataclass(frozen=True)
class Context:
    """What a perturbation may need beyond the waveform.

    ``utt_id``: the utterance being perturbed. ``pool``: callable returning bona fide waveforms of
    other utterances of the same set (for babble), as ``pool(rng, n, exclude=utt_id) -> list[np.ndarray]``
    at the same sample rate. ``resources``: user folders named in the suite or CLI
    (e.g. ``{"noise_dir": ..., "rir_dir": ...}``).
    """

    utt_id: str = ""
    pool: Callable[..., list[np.ndarray]] | None = None
    resources: Mapping[str, str] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)  # notes such as "level clamped", collected by the runner
    #: the torch device a family with a model (a neural codec) runs on in this process; None: cuda if present
    device: str | None = None


@dataclass(frozen=True)
class Perturbation(Leveled):
    family: ClassVar[str] = ""
    NAME_FIELD: ClassVar[str] = "family"
    #: True when ``apply`` draws other utterances from ``context.pool`` (babble): callers must provide one
    needs_pool: ClassVar[bool] = False
    severity: int = field(default=0, compare=True)

    @classmethod
    def lowest(cls) -> int:
        return 0

    @classmethod
    def at_zero(cls) -> "Perturbation":
        return Identity()

    def check_resources(self) -> None:
        """Raise (with one line saying what to do) when something the family needs beyond its parameters
        is missing, e.g. a neural codec's weights. The runner calls it before any audio is read; it may
        fetch what is missing when that is allowed (a pinned download)."""

    # --- behaviour -------------------------------------------------------------------------
    def apply(self, wav: np.ndarray, sr: int, rng: np.random.Generator,
              context: Context | None = None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, wav: np.ndarray, sr: int, rng: np.random.Generator,
                 context: Context | None = None) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"{self.family}: expected a mono waveform [T], got shape {wav.shape}")
        out = np.asarray(self.apply(wav, sr, rng, context), dtype=np.float32)
        if out.shape != wav.shape:
            raise RuntimeError(f"{self.family}: output length {out.shape} differs from input {wav.shape} "
                               "(a bug in the family: it must trim or pad to the input length)")
        return out

    # --- on the scoring device (``--prepare-on device``) -------------------------------------
    def apply_torch(self, wav, sr: int, rng: np.random.Generator, context: Context | None = None):
        """``apply`` on a 1-D float tensor on any device (see perturbations/_torch.py): the same draws from
        ``rng`` in the same order, the arithmetic in torch. Families that do not override it run on the CPU."""
        raise NotImplementedError

    @property
    def on_device(self) -> bool:
        """True when this perturbation can run on the scoring device (``apply_torch`` is implemented)."""
        return type(self).apply_torch is not Perturbation.apply_torch

    def device_call(self, wav, sr: int, rng: np.random.Generator, context: Context | None = None):
        """:meth:`apply_torch` with the checks of ``__call__``: a mono tensor in, float32 of its length out."""
        if wav.ndim != 1:
            raise ValueError(f"{self.family}: expected a mono waveform [T], got shape {tuple(wav.shape)}")
        out = self.apply_torch(wav.float(), sr, rng, context).float()
        if out.shape != wav.shape:
            raise RuntimeError(f"{self.family}: device output length {tuple(out.shape)} differs from input "
                               f"{tuple(wav.shape)}")
        return out

    # --- serialisation ---------------------------------------------------------------------
    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Perturbation":
        cls = PERTURBATIONS.get(d["family"])
        if cls is Identity:
            return Identity()
        return cls.from_params(int(d.get("severity", 0)), dict(d.get("params", {})))

    def key(self) -> str:
        """A stable string naming this exact condition (used for seeding and caching)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)


def register(cls: type[Perturbation]) -> type[Perturbation]:
    """Class decorator: registers a family under its ``family`` name."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} has no family name")
    PERTURBATIONS.add(cls.family, cls)
    return cls


@register
@dataclass(frozen=True)
class Identity(Perturbation):
    """The clean condition (severity 0 of every family)."""

    family: ClassVar[str] = "clean"
    LEVELS: ClassVar[tuple] = ()

    def apply(self, wav, sr, rng, context=None):
        return wav.copy()

    def apply_torch(self, wav, sr, rng, context=None):
        return wav.clone()


@dataclass(frozen=True)
class Chain(Perturbation):
    """Perturbations applied in order (e.g. room, then noise, then codec), declared as data."""

    family: ClassVar[str] = "chain"
    steps: tuple[Perturbation, ...] = ()

    @property
    def needs_pool(self) -> bool:  # type: ignore[override]
        return any(s.needs_pool for s in self.steps)

    def apply(self, wav, sr, rng, context=None):
        for step in self.steps:
            wav = step(wav, sr, rng, context)
        return wav

    @property
    def on_device(self) -> bool:
        return all(s.on_device for s in self.steps)

    def apply_torch(self, wav, sr, rng, context=None):
        for step in self.steps:
            wav = step.device_call(wav, sr, rng, context)
        return wav

    def params(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps]}

    def check_resources(self) -> None:
        for step in self.steps:
            step.check_resources()

    @classmethod
    def from_params(cls, severity: int, params: Mapping[str, Any]) -> "Chain":
        steps = tuple(Perturbation.from_dict(s) if isinstance(s, Mapping) else s
                      for s in params.get("steps", ()))
        return cls(severity=severity, steps=steps)


PERTURBATIONS.add("chain", Chain)


def make(family: str, severity: int, **overrides: Any) -> Perturbation:
    """``make("mp3", 3)``: the family's level 3 (0 = identity)."""
    return PERTURBATIONS.get(family).at(severity, **overrides)


def families() -> Sequence[str]:
    return [n for n in PERTURBATIONS if n not in ("clean", "chain")]
