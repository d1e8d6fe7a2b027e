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

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from foundation.registry import Registry

PERTURBATIONS: Registry[type["Perturbation"]] = Registry("perturbation family")


class SeverityError(ValueError):
    pass


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


@dataclass(frozen=True)
class Perturbation:
    family: ClassVar[str] = ""
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    #: bump when the output for the same parameters changes, so caches stay honest
    version: ClassVar[int] = 1
    #: the parameter that the contract's level listing names (snr_db, rt60, bitrate, ...)
    severity: int = field(default=0, compare=True)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def at(cls, severity: int, **overrides: Any) -> "Perturbation":
        if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
            raise SeverityError(f"{cls.family}: severity must be an integer, got {severity!r}")
        severity = int(severity)
        if severity == 0:
            return Identity()
        if not 1 <= severity <= len(cls.LEVELS):
            raise SeverityError(f"{cls.family}: severity {severity} is outside 0..{len(cls.LEVELS)}")
        params = {**cls.LEVELS[severity - 1], **overrides}
        return cls.from_params(severity, params)

    @classmethod
    def from_params(cls, severity: int, params: Mapping[str, Any]) -> "Perturbation":
        names = {f.name for f in dataclasses.fields(cls)} - {"severity"}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"{cls.family}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(names))}")
        obj = cls(severity=severity, **params)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Raise ValueError naming the field when a parameter is out of range."""

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

    # --- serialisation ---------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "severity"}

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "severity": self.severity, "params": self.params(),
                "version": self.version}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Perturbation":
        cls = PERTURBATIONS.get(d["family"])
        if cls is Identity:
            return Identity()
        return cls.from_params(int(d.get("severity", 0)), dict(d.get("params", {})))

    def key(self) -> str:
        """A stable string naming this exact condition (used for seeding and caching)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    @classmethod
    def levels(cls) -> list[dict[str, Any]]:
        return [{"severity": i + 1, "params": dict(p)} for i, p in enumerate(cls.LEVELS)]


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


@dataclass(frozen=True)
class Chain(Perturbation):
    """Perturbations applied in order (e.g. room, then noise, then codec), declared as data."""

    family: ClassVar[str] = "chain"
    steps: tuple[Perturbation, ...] = ()

    def apply(self, wav, sr, rng, context=None):
        for step in self.steps:
            wav = step(wav, sr, rng, context)
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
