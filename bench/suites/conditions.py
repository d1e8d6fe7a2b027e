"""The data model of a suite's conditions: what a suite file declares (:class:`ConditionSpec`) and one
(family, severity) cell of the results built from it (:class:`Condition`, with its structure as columns).
bench/suites/suite.py reads YAML into these."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping


class SuiteError(ValueError):
    """A suite file that is wrong; the message names the file and the field."""


@dataclass(frozen=True)
class ConditionSpec:
    label: str                                # family name in results (mp3, room+noise, pgd-linf)
    severities: tuple[int, ...]
    kind: str = "perturbation"                # perturbation | chain | attack
    steps: tuple[str, ...] = ()               # for chains: family names in order
    step_params: tuple[Mapping[str, Any], ...] = ()  # for chains: each step's parameter overrides (or empty)
    params: Mapping[str, Any] = field(default_factory=dict)
    attack: str = ""                          # for attacks: the registered attack name
    source: str | None = None                 # transfer: the model the attack is crafted on
    through: Mapping[str, Any] | None = None  # {family, severity, params, eot}: attack through a perturbation
    family: str = ""                          # for perturbations: the registered family (label may be a name:)
    levels: tuple[Mapping[str, Any], ...] = ()  # the condition's own ladder: severity k = levels[k - 1]
    origin: str = field(default="", compare=False)  # where it was declared (file: conditions[i]), for messages


def attack_label(attack: str, source: str | None = None, through: Mapping[str, Any] | None = None) -> str:
    """The results family of an attack condition: ``pgd-linf``, ``pgd-linf<-aasist-l`` (crafted on
    aasist-l), ``pgd-linf|mp3@3`` (through mp3 severity 3), or both ``pgd-linf<-aasist-l|mp3@3``."""
    label = attack + (f"<-{source}" if source else "")
    if through:
        label += f"|{through['family']}@{int(through.get('severity', 0))}"
    return label


@dataclass(frozen=True)
class Condition:
    """One (family, severity) cell of the results table, with what builds it."""

    family: str
    severity: int
    kind: str
    spec: Mapping[str, Any]   # perturbation.to_dict() or attack.to_dict(); JSON-serialisable

    def key(self) -> str:
        return json.dumps({"family": self.family, "severity": self.severity, "kind": self.kind,
                           "spec": self.spec}, sort_keys=True, separators=(",", ":"), default=str)

    @property
    def adv_attack(self) -> str:
        """The adversarial attack of an attack condition (``pgd-linf``); "" for perturbations."""
        return str(self.spec.get("attack", "")) if self.kind == "attack" else ""

    @property
    def source(self) -> str | None:
        """The model a transfer attack is crafted on (None: white box against each scored model)."""
        return self.spec.get("source") if self.kind == "attack" else None

    @property
    def through(self) -> Mapping[str, Any] | None:
        """``{family, severity, params, version, eot}`` of an attack through a perturbation, or None."""
        return self.spec.get("through") if self.kind == "attack" else None

    def columns(self) -> dict[str, str]:
        """The condition's structure as table columns: ``adv_attack``, ``source`` (transfer) and ``through``
        (``FAMILY@SEVERITY``), each "" when it does not apply. Tables are filtered on these, never on the
        display label in ``family``."""
        t = self.through
        return {"adv_attack": self.adv_attack, "source": self.source or "",
                "through": f"{t['family']}@{int(t['severity'])}" if t else ""}

    def build_through(self):
        """The perturbation an attack goes through (None when it does not)."""
        t = self.through
        if not t:
            return None
        from perturbations import Perturbation
        return Perturbation.from_dict({k: v for k, v in t.items() if k != "eot"})

    def build(self):
        if self.kind == "attack":
            from attacks import Attack
            return Attack.from_dict(self.spec)
        from perturbations import Perturbation
        return Perturbation.from_dict(self.spec)
