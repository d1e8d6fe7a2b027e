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
import numbers
import os
from typing import Any, ClassVar, Mapping


#: simple annotations checked before a level is built: name -> (accepts(value), what it is called in a message)
_SIMPLE: dict[str, tuple[Any, str]] = {
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    "int": (lambda v: (isinstance(v, numbers.Integral) and not isinstance(v, bool))
            or (isinstance(v, float) and v.is_integer()), "an integer"),
    "str": (lambda v: isinstance(v, (str, os.PathLike)), "text"),
    "bool": (lambda v: isinstance(v, bool) or v in (0, 1), "true or false"),
    "None": (lambda v: v is None, "null"),
}


def _field_types(cls: type) -> dict[str, tuple[str, ...] | None]:
    """Each field's annotation as its simple type names (``"float | None"`` -> ``("float", "None")``), or None
    for annotations this check does not understand (those values are left to ``validate()``)."""
    out: dict[str, tuple[str, ...] | None] = {}
    for f in dataclasses.fields(cls):
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        parts = tuple(p.strip() for p in str(ann).replace("Optional[", "None | ").rstrip("]").split("|"))
        out[f.name] = parts if parts and all(p in _SIMPLE for p in parts) else None
    return out


def _type_name(value: Any) -> str:
    return {str: "text", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _check_type(owner: str, name: str, value: Any, kinds: tuple[str, ...] | None) -> None:
    """A parameter of the wrong type is refused naming the field and the expected type (never a raw Python
    comparison error from deep inside ``validate``)."""
    if kinds is None or any(_SIMPLE[k][0](value) for k in kinds):
        return
    want = " or ".join(_SIMPLE[k][1] for k in kinds)
    raise ValueError(f"{owner}: parameter {name!r} must be {want}, got {value!r} ({_type_name(value)})")


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
        for key, value in params.items():
            _check_type(cls.registered_name(), key, value, _field_types(cls).get(key))
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
