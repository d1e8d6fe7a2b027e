"""The attack contract.

An attack is a frozen dataclass registered with ``@register`` in its own file, with a literal
budget ladder ``LEVELS`` at the top of that file (severity 1 = smallest budget). Budgets are either
a waveform amplitude ``eps`` or the perturbation's SNR in dB against each utterance (``snr_db``).

``attack(detector, wav, label, generator) -> adversarial wav``:
- ``wav``: ``[B, T]`` float tensor on the detector's device, already in the detector's input form
  (e.g. the official 64600-sample crop), values in [-1, 1];
- ``label``: ``[B]`` long tensor, 1 = bona fide, 0 = spoof. The attack pushes each utterance
  towards the other class (spoof -> judged bona fide is evasion, the main threat; bona fide ->
  judged spoof is the reverse);
- ``generator``: a ``torch.Generator`` on the device, derived from (seed, utterance, condition), or a
  list of one generator per utterance (row i draws only from generator i: batch-independent results).
The detector stays in eval mode; waveforms stay in [-1, 1] (never [0, 1]).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from foundation.registry import Registry

ATTACKS: Registry[type["Attack"]] = Registry("attack")


@dataclass(frozen=True)
class Attack:
    name: ClassVar[str] = ""
    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    version: ClassVar[int] = 1
    severity: int = 0

    @classmethod
    def at(cls, severity: int, **overrides: Any) -> "Attack":
        if isinstance(severity, bool) or not isinstance(severity, int):
            raise ValueError(f"{cls.name}: severity must be an integer, got {severity!r}")
        if not 1 <= severity <= len(cls.LEVELS):
            raise ValueError(f"{cls.name}: severity {severity} is outside 1..{len(cls.LEVELS)}")
        params = {**cls.LEVELS[severity - 1], **overrides}
        names = {f.name for f in dataclasses.fields(cls)} - {"severity"}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"{cls.name}: unknown parameter(s) {', '.join(unknown)}")
        obj = cls(severity=severity, **params)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Raise ValueError naming the field when a parameter is out of range."""

    def __call__(self, detector, wav, label, generator):
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "severity"}

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.name, "severity": self.severity, "params": self.params(), "version": self.version}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Attack":
        cls = ATTACKS.get(d["attack"])
        params = dict(d.get("params", {}))
        obj = cls(severity=int(d.get("severity", 0)), **params)
        obj.validate()
        return obj

    @classmethod
    def levels(cls) -> list[dict[str, Any]]:
        return [{"severity": i + 1, "params": dict(p)} for i, p in enumerate(cls.LEVELS)]


def register(cls: type[Attack]) -> type[Attack]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no attack name")
    ATTACKS.add(cls.name, cls)
    return cls
