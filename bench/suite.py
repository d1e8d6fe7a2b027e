"""Suites: YAML files parsed into frozen dataclasses and validated before any audio is read.

A suite lists conditions. Each condition is one of
- ``{family: mp3, severities: [1, 2, 3]}``: a registered perturbation family at those levels;
  optional ``params: {...}`` overrides the table's parameters for every level;
- ``{name: room+noise, chain: [room, pink-noise], severities: [1, 3]}``: a chain, every step at
  the same severity, applied in order (configuration, not code); a step may be a mapping
  ``{family: encodec, params: {checkpoint: FOLDER}}`` to override that step's parameters;
- ``{attack: pgd-linf, severities: [1, 2]}``: a gradient attack against each detector (white box);
  optional ``source: MODEL`` crafts it once on that model and scores it on every model of the run
  (a transfer attack; white box where a model is its own source), results family ``pgd-linf<-MODEL``;
  optional ``through: {family: mp3, severity: 3, params: {...}, eot: 1}`` attacks
  ``detector(perturb(x))`` (straight-through gradients, ``eot`` perturbation draws averaged per step)
  and scores the adversarial audio after one more pass through the perturbation, family
  ``pgd-linf|mp3@3`` (both: ``pgd-linf<-MODEL|mp3@3``). See attacks/_through.py.
The clean condition (family ``clean``, severity 0) is always added, so every degradation is
relative to a measured baseline. ``include: [other, suites]`` merges built-in suites.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml


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


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    conditions: tuple[ConditionSpec, ...]
    policy: str = "official"
    metrics: tuple[str, ...] = ("eer", "auc")
    source: str = ""          # the file it came from
    sha256: str = ""          # of the file's bytes (and included files)

    def expand(self) -> list[Condition]:
        """Every (family, severity) condition, clean first, validated by building each one."""
        from perturbations import Identity
        out = [Condition("clean", 0, "perturbation", Identity().to_dict())]
        seen = {("clean", 0)}
        for spec in self.conditions:
            for sev in spec.severities:
                if sev == 0 or (spec.label, sev) in seen:  # severity 0 is the clean condition
                    continue
                seen.add((spec.label, sev))
                out.append(_build_condition(self.source, spec, sev))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": self.description,
                "policy": self.policy, "metrics": list(self.metrics), "source": self.source,
                "sha256": self.sha256,
                "conditions": [{"label": c.label, "kind": c.kind, "severities": list(c.severities),
                                "steps": list(c.steps), "params": dict(c.params),
                                **({"step_params": [dict(p) for p in c.step_params]}
                                   if any(c.step_params) else {}),
                                **({"attack": c.attack} if c.attack else {}),
                                **({"source": c.source} if c.source else {}),
                                **({"through": dict(c.through)} if c.through else {})}
                               for c in self.conditions]}


def _build_condition(source: str, spec: ConditionSpec, sev: int) -> Condition:
    where = f"{source}: condition {spec.label!r} severity {sev}"
    try:
        from perturbations import PERTURBATIONS, Chain
        if spec.kind == "attack":
            from attacks import ATTACKS
            att = ATTACKS.get(spec.attack or spec.label).at(sev, **spec.params)
            d = att.to_dict()
            if spec.source:
                d["source"] = spec.source
            if spec.through:
                t = spec.through
                pert = PERTURBATIONS.get(t["family"]).at(t["severity"], **dict(t.get("params") or {}))
                if pert.severity == 0:
                    raise ValueError("through: severity 0 is the identity; give 1..5 or drop 'through'")
                d["through"] = {**pert.to_dict(), "eot": int(t.get("eot", 1))}
            return Condition(spec.label, sev, "attack", d)
        if spec.kind == "chain":
            overrides = spec.step_params or tuple({} for _ in spec.steps)
            steps = tuple(PERTURBATIONS.get(s).at(sev, **dict(o)) for s, o in zip(spec.steps, overrides))
            return Condition(spec.label, sev, "chain", Chain(severity=sev, steps=steps).to_dict())
        p = PERTURBATIONS.get(spec.label).at(sev, **spec.params)
        return Condition(spec.label, sev, "perturbation", p.to_dict())
    except (KeyError, ValueError, TypeError) as e:
        raise SuiteError(f"{where}: {e}") from e


def builtin_names() -> list[str]:
    folder = resources.files("bench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str) -> tuple[str, bytes]:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise SuiteError(f"suite file {p} does not exist")
        return str(p), p.read_bytes()
    res = resources.files("bench") / "suites" / f"{name_or_path}.yaml"
    if not res.is_file():
        raise SuiteError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(builtin_names())}, "
                         "or give a path to a YAML suite")
    return f"bench/suites/{name_or_path}.yaml", res.read_bytes()


_TOP = {"name", "version", "description", "conditions", "policy", "metrics", "include"}
_COND = {"family", "name", "chain", "attack", "severities", "params", "source", "through"}
_THROUGH = {"family", "severity", "params", "eot"}


def load_suite(name_or_path: str, _stack: tuple[str, ...] = ()) -> Suite:
    source, raw = _read(name_or_path)
    if source in _stack:
        raise SuiteError(f"{source}: include cycle {' -> '.join(_stack + (source,))}")
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: not valid YAML ({e})") from e
    if not isinstance(doc, dict):
        raise SuiteError(f"{source}: the top level must be a mapping with name and conditions")
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise SuiteError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP))}")
    digest = hashlib.sha256(raw)
    conds: list[ConditionSpec] = []
    for inc in doc.get("include") or []:
        sub = load_suite(str(inc), _stack + (source,))
        conds.extend(sub.conditions)
        digest.update(sub.sha256.encode())
    items = doc.get("conditions") or []
    if not isinstance(items, list):
        raise SuiteError(f"{source}: 'conditions' must be a list")
    for i, item in enumerate(items):
        conds.append(_parse_condition(source, i, item))
    policy = str(doc.get("policy", "official"))
    metrics = tuple(doc.get("metrics") or ("eer", "auc"))
    suite = Suite(name=str(doc.get("name") or Path(source).stem), version=int(doc.get("version", 1)),
                  description=str(doc.get("description", "")), conditions=tuple(conds), policy=policy,
                  metrics=metrics, source=source, sha256=digest.hexdigest())
    suite.expand()  # validate every condition now, before any audio is touched
    return suite


def _parse_condition(source: str, i: int, item: Any) -> ConditionSpec:
    where = f"{source}: conditions[{i}]"
    if not isinstance(item, dict):
        raise SuiteError(f"{where}: expected a mapping like {{family: mp3, severities: [1, 2]}}")
    unknown = sorted(set(item) - _COND)
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_COND))}")
    sev = item.get("severities", [1, 2, 3, 4, 5])
    if not isinstance(sev, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sev):
        raise SuiteError(f"{where}: 'severities' must be a list of integers, got {sev!r}")
    params = item.get("params") or {}
    if not isinstance(params, dict):
        raise SuiteError(f"{where}: 'params' must be a mapping")
    if "chain" in item:
        steps = item["chain"]
        if not isinstance(steps, list) or not steps:
            raise SuiteError(f"{where}: 'chain' must be a non-empty list of family names")
        names, overrides = [], []
        for j, st in enumerate(steps):
            if isinstance(st, dict) and isinstance(st.get("family"), str) and set(st) <= {"family", "params"} \
                    and isinstance(st.get("params") or {}, dict):
                names.append(st["family"])
                overrides.append(dict(st.get("params") or {}))
            elif isinstance(st, str):
                names.append(st)
                overrides.append({})
            else:
                raise SuiteError(f"{where}: chain[{j}] must be a family name or {{family: F, params: {{...}}}}, "
                                 f"got {st!r}")
        label = str(item.get("name") or "+".join(names))
        return ConditionSpec(label, tuple(sev), "chain", tuple(names),
                             step_params=tuple(overrides) if any(overrides) else ())
    if "attack" not in item:
        for f in ("source", "through"):
            if f in item:
                raise SuiteError(f"{where}: '{f}' applies only to attack conditions ({{attack: pgd-linf, {f}: ...}})")
    if "attack" in item:
        attack = str(item["attack"])
        source = _parse_source(where, item.get("source"))
        through = _parse_through(where, item.get("through"))
        return ConditionSpec(attack_label(attack, source, through), tuple(sev), "attack", params=params,
                             attack=attack, source=source, through=through)
    if "family" not in item:
        raise SuiteError(f"{where}: needs 'family' (or 'chain' or 'attack')")
    return ConditionSpec(str(item["family"]), tuple(sev), "perturbation", params=params)


def _parse_source(where: str, source: Any) -> str | None:
    if source is None:
        return None
    if not isinstance(source, str) or not source:
        raise SuiteError(f"{where}: 'source' must be a model name (e.g. aasist-l), got {source!r}")
    if ":" not in source:
        from models import CARDS
        if source not in CARDS:
            raise SuiteError(f"{where}: source: unknown model {source!r}; known: {', '.join(sorted(CARDS))}")
    return source


def _parse_through(where: str, through: Any) -> dict[str, Any] | None:
    if through is None:
        return None
    if not isinstance(through, dict) or "family" not in through or "severity" not in through:
        raise SuiteError(f"{where}: 'through' must be a mapping like {{family: mp3, severity: 3}}, got {through!r}")
    unknown = sorted(set(through) - _THROUGH)
    if unknown:
        raise SuiteError(f"{where}: through: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_THROUGH))}")
    sev, eot = through["severity"], through.get("eot", 1)
    if isinstance(sev, bool) or not isinstance(sev, int):
        raise SuiteError(f"{where}: through: 'severity' must be an integer 1..5, got {sev!r}")
    if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
        raise SuiteError(f"{where}: through: 'eot' must be a positive integer (perturbation draws per step), "
                         f"got {eot!r}")
    if not isinstance(through.get("params") or {}, dict):
        raise SuiteError(f"{where}: through: 'params' must be a mapping")
    return {"family": str(through["family"]), "severity": sev, "params": dict(through.get("params") or {}),
            "eot": eot}
