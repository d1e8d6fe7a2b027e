"""What perturbation families and attacks share: a literal ladder of levels and one way to build them.

A leveled class is a frozen dataclass whose fields are its parameters, with a literal ``LEVELS`` table
(mildest first) at the top of its own file. ``Cls.at(k)`` builds level ``k`` (``k`` validated, never an
unchecked ``LEVELS[k - 1]``), ``Cls.from_params(k, params)`` builds any parameters (unknown names are
refused, then ``validate()`` runs), ``to_dict()``/``from_dict()`` round-trip through plain JSON data.
:class:`perturbations.base.Perturbation` and :class:`attacks.base.Attack` both derive from it, so the two
cannot drift apart.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping


class SeverityError(ValueError):
    """A severity that is not an integer of the ladder."""


class Leveled:
    """Mixin for frozen dataclasses with a ``severity`` field and a ``LEVELS`` table."""

    LEVELS: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    #: bump when the output for the same parameters changes, so caches stay honest
    version: ClassVar[int] = 1
    #: the name of the class attribute holding the registered name ("family", "name")
    NAME_FIELD: ClassVar[str] = "name"

    @classmethod
    def registered_name(cls) -> str:
        return str(getattr(cls, cls.NAME_FIELD, "") or cls.__name__)

    @classmethod
    def at(cls, severity: int, **overrides: Any):
        """Level ``severity`` of the ladder (1..len(LEVELS)), with ``overrides`` replacing its parameters."""
        name = cls.registered_name()
        if isinstance(severity, bool) or not isinstance(severity, int) and not hasattr(severity, "__index__"):
            raise SeverityError(f"{name}: severity must be an integer, got {severity!r}")
        severity = int(severity)
        if severity == 0:
            return cls.at_zero()
        if not 1 <= severity <= len(cls.LEVELS):
            raise SeverityError(f"{name}: severity {severity} is outside {cls.lowest()}..{len(cls.LEVELS)}")
        return cls.from_params(severity, {**cls.LEVELS[severity - 1], **overrides})

    @classmethod
    def lowest(cls) -> int:
        return 1

    @classmethod
    def at_zero(cls):
        raise SeverityError(f"{cls.registered_name()}: severity 0 is not a level; give 1..{len(cls.LEVELS)}")

    @classmethod
    def parameter_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)} - {"severity"}

    @classmethod
    def from_params(cls, severity: int, params: Mapping[str, Any]):
        names = cls.parameter_names()
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"{cls.registered_name()}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(names)) or '(none)'}")
        obj = cls(severity=int(severity), **params)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Raise ValueError naming the field when a parameter is out of range."""

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "severity"}

    def to_dict(self) -> dict[str, Any]:
        return {self.NAME_FIELD: self.registered_name(), "severity": self.severity, "params": self.params(),
                "version": self.version}

    @classmethod
    def levels(cls) -> list[dict[str, Any]]:
        return [{"severity": i + 1, "params": dict(p)} for i, p in enumerate(cls.LEVELS)]

    @classmethod
    def describe(cls) -> str:
        """The first paragraph of the class docstring (dataclasses invent a signature when there is none)."""
        import sys

        doc = cls.__doc__ or ""
        if doc.startswith(cls.__name__ + "("):   # no class docstring: the module's says what the file defines
            doc = getattr(sys.modules.get(cls.__module__), "__doc__", None) or ""
        return doc.strip().split("\n\n")[0].replace("\n", " ").strip()
