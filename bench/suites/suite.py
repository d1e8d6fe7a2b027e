"""Suites: YAML files parsed into frozen dataclasses and validated before any audio is read.

A suite lists conditions. Each condition is one of
- ``{family: mp3, severities: [1, 2, 3]}``: a registered perturbation family at those levels;
  optional ``params: {...}`` overrides the table's parameters for every level (refused where two
  severities would then be identical); ``levels: [{bitrate: 32000}, {bitrate: 16000}]`` gives the family
  its own ladder, severities 1..n with exactly those parameters (validated like the built-in table);
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
Any condition may carry ``name:``, its label in the results (so one family can appear twice, e.g. with
two ladders); two conditions with one label and severity but different content are refused with a
message naming both (identical ones, e.g. from overlapping includes, are kept once).
The clean condition (family ``clean``, severity 0) is always added, so every degradation is
relative to a measured baseline. ``include: [other, suites]`` merges built-in suites.

A ``source:`` naming a Python class (``package.module:Class``) imports and runs that module's code, so a
suite file holding one is refused unless the caller trusts it (``load_suite(..., trust_code=True)``,
``bench run --trust-code``).

A suite file is untrusted input: its size, includes and YAML alias expansion are bounded before it is
parsed (:mod:`bench.suites.untrusted`). ``severities: [0]`` is refused: severity 0 is the clean input, which
every run measures once as the condition ``clean``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from bench.suites.conditions import Condition, ConditionSpec, SuiteError, attack_label  # noqa: F401 (the suite's API)
from bench.suites.untrusted import MAX_SUITE_FILES, parse_yaml as _parse_yaml, read_bounded


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
        """Every (label, severity) condition, clean first, validated by building each one.

        Refused: two severities of one condition that build the same audio (``params:`` overriding
        every level alike), and two conditions with one label and severity but different content
        (the message names both; give one a ``name:``)."""
        from perturbations import Identity
        out = [Condition("clean", 0, "perturbation", Identity().to_dict())]
        have: dict[tuple[str, int], tuple[Condition, str]] = {("clean", 0): (out[0], "the clean condition")}
        for spec in self.conditions:
            origin = spec.origin or f"{self.source}: condition {spec.label!r}"
            built = [_build_condition(self.source, spec, sev) for sev in spec.severities
                     if sev != 0]  # severity 0 is the clean condition
            same: dict[str, int] = {}
            for c in built:
                sig = json.dumps(_without_severity(c.spec), sort_keys=True, default=str)
                if sig in same and same[sig] != c.severity:
                    raise SuiteError(f"{origin}: severities {same[sig]} and {c.severity} of {spec.label!r} give "
                                     f"identical conditions ({sig}); 'params:' overrides every level alike, so "
                                     "give one severity, or a ladder of your own with 'levels:'")
                same.setdefault(sig, c.severity)
            for c in built:
                k = (c.family, c.severity)
                if k in have:
                    prev, where = have[k]
                    if prev.key() == c.key():
                        continue   # the same condition declared twice (e.g. overlapping includes)
                    raise SuiteError(f"two different conditions are labelled {c.family}@{c.severity}: {where} and "
                                     f"{origin}; give one of them a 'name:' so both can exist")
                have[k] = (c, origin)
                out.append(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": self.description,
                "policy": self.policy, "metrics": list(self.metrics), "source": self.source,
                "sha256": self.sha256,
                "conditions": [{"label": c.label, "kind": c.kind, "severities": list(c.severities),
                                "steps": list(c.steps), "params": dict(c.params),
                                **({"family": c.family} if c.family and c.family != c.label else {}),
                                **({"levels": [dict(x) for x in c.levels]} if c.levels else {}),
                                **({"step_params": [dict(p) for p in c.step_params]}
                                   if any(c.step_params) else {}),
                                **({"attack": c.attack} if c.attack else {}),
                                **({"source": c.source} if c.source else {}),
                                **({"through": dict(c.through)} if c.through else {})}
                               for c in self.conditions]}


def _without_severity(obj: Any) -> Any:
    """A condition's spec without its severity fields (two severities with equal rests are the same audio)."""
    if isinstance(obj, Mapping):
        return {k: _without_severity(v) for k, v in obj.items() if k != "severity"}
    if isinstance(obj, (list, tuple)):
        return [_without_severity(v) for v in obj]
    return obj


def _build_condition(source: str, spec: ConditionSpec, sev: int) -> Condition:
    where = spec.origin or f"{source}: condition {spec.label!r}"
    where = f"{where} severity {sev}"
    try:
        from perturbations import PERTURBATIONS, Chain
        if spec.levels and not 1 <= sev <= len(spec.levels):
            raise ValueError(f"severity {sev} is outside its own ladder 1..{len(spec.levels)} ('levels:')")
        level = {**spec.params, **spec.levels[sev - 1]} if spec.levels else None
        if spec.kind == "attack":
            from attacks import ATTACKS
            cls = ATTACKS.get(spec.attack or spec.label)
            att = cls.at(sev, **spec.params) if level is None else cls.from_params(sev, level)
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
        cls = PERTURBATIONS.get(spec.family or spec.label)
        p = cls.at(sev, **spec.params) if level is None else cls.from_params(sev, level)
        return Condition(spec.label, sev, "perturbation", p.to_dict())
    except (KeyError, ValueError, TypeError) as e:
        raise SuiteError(f"{where}: {e}") from e


def builtin_names() -> list[str]:
    folder = resources.files("bench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str) -> tuple[str, bytes]:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return str(p), read_bounded(p)
    res = resources.files("bench") / "suites" / f"{name_or_path}.yaml"
    if not res.is_file():
        raise SuiteError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(builtin_names())}, "
                         "or give a path to a YAML suite")
    return f"bench/suites/{name_or_path}.yaml", res.read_bytes()


_TOP = {"name", "version", "description", "conditions", "policy", "metrics", "include"}
_COND = {"family", "name", "chain", "attack", "severities", "params", "levels", "source", "through"}
#: what a suite's ``metrics:`` may list (results.csv computes all of them; the list documents intent)
KNOWN_METRICS = ("eer", "auc", "far_at_clean_threshold", "frr_at_clean_threshold", "cllr", "actdcf", "min_dcf")
_THROUGH = {"family", "severity", "params", "eot"}


def load_suite(name_or_path: str, _stack: tuple[str, ...] = (), *, trust_code: bool = False,
               _files: list[str] | None = None) -> Suite:
    """Parse and validate a suite. ``trust_code``: allow ``source: package.module:Class`` (imports code)."""
    source, raw = _read(name_or_path)
    if source in _stack:
        raise SuiteError(f"{source}: include cycle {' -> '.join(_stack + (source,))}")
    _files = [] if _files is None else _files
    _files.append(source)
    if len(_files) > MAX_SUITE_FILES:
        raise SuiteError(f"{_stack[0] if _stack else source}: loads more than {MAX_SUITE_FILES} suite files "
                         "through include:; refused (does an include list repeat a suite?)")
    doc = _parse_yaml(source, raw)
    if not isinstance(doc, dict):
        raise SuiteError(f"{source}: the top level must be a mapping with name and conditions")
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise SuiteError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP))}")
    digest = hashlib.sha256(raw)
    conds: list[ConditionSpec] = []
    includes = doc.get("include") or []
    if not isinstance(includes, list):
        raise SuiteError(f"{source}: 'include' must be a list of suite names or paths, got {includes!r}")
    for inc in includes:
        sub = load_suite(str(inc), _stack + (source,), trust_code=trust_code, _files=_files)
        conds.extend(sub.conditions)
        digest.update(sub.sha256.encode())
    items = doc.get("conditions") or []
    if not isinstance(items, list):
        raise SuiteError(f"{source}: 'conditions' must be a list")
    for i, item in enumerate(items):
        conds.append(_parse_condition(source, i, item, trust_code))
    policy = str(doc.get("policy", "official"))
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SuiteError(f"{source}: 'version' must be a positive integer (the suite's own revision), "
                         f"got {version!r}")
    metrics = doc.get("metrics") or ["eer", "auc"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise SuiteError(f"{source}: 'metrics' must be a list of names, got {metrics!r}")
    bad = [m for m in metrics if m not in KNOWN_METRICS]
    if bad:
        raise SuiteError(f"{source}: metrics: unknown {', '.join(map(repr, bad))}; known: {', '.join(KNOWN_METRICS)}")
    suite = Suite(name=str(doc.get("name") or Path(source).stem), version=version,
                  description=str(doc.get("description", "")), conditions=tuple(conds), policy=policy,
                  metrics=tuple(metrics), source=source, sha256=digest.hexdigest())
    suite.expand()  # validate every condition now, before any audio is touched
    return suite


def _parse_condition(source: str, i: int, item: Any, trust_code: bool = False) -> ConditionSpec:
    where = f"{source}: conditions[{i}]"
    if not isinstance(item, dict):
        raise SuiteError(f"{where}: expected a mapping like {{family: mp3, severities: [1, 2]}}")
    unknown = sorted(set(item) - _COND)
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_COND))}")
    kinds = [k for k in ("family", "chain", "attack") if k in item]
    if len(kinds) > 1:
        raise SuiteError(f"{where}: give one of 'family', 'chain' or 'attack', not {' and '.join(kinds)}")
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SuiteError(f"{where}: 'name' must be a non-empty label, got {name!r}")
    if name is not None and name.strip() == "clean":
        raise SuiteError(f"{where}: 'clean' is the unperturbed condition's label; choose another name")
    params = item.get("params") or {}
    if not isinstance(params, dict):
        raise SuiteError(f"{where}: 'params' must be a mapping")
    levels = _parse_levels(where, item.get("levels"))
    sev = item.get("severities", list(range(1, len(levels) + 1)) if levels else [1, 2, 3, 4, 5])
    if not isinstance(sev, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sev):
        raise SuiteError(f"{where}: 'severities' must be a list of integers, got {sev!r}")
    if len(set(sev)) != len(sev):
        raise SuiteError(f"{where}: 'severities' lists a severity twice: {sev!r}")
    if 0 in sev:
        raise SuiteError(f"{where}: severity 0 is the clean input, which every run measures once (condition "
                         "'clean'); list severities from 1, e.g. [1, 3, 5]")
    if not sev:
        raise SuiteError(f"{where}: 'severities' is empty; list at least one, e.g. [1, 3, 5]")
    if "chain" in item:
        steps = item["chain"]
        if not isinstance(steps, list) or not steps:
            raise SuiteError(f"{where}: 'chain' must be a non-empty list of family names")
        for f in ("params", "levels"):
            if item.get(f):
                raise SuiteError(f"{where}: '{f}' is not supported on a chain (its steps are different families, "
                                 "each at the chain's severity); give a step its own parameters as "
                                 "{family: F, params: {...}}, or declare a family condition with 'levels:'")
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
        label = str(name or "+".join(names)).strip()
        return ConditionSpec(label, tuple(sev), "chain", tuple(names),
                             step_params=tuple(overrides) if any(overrides) else (), origin=where)
    if "attack" not in item:
        for f in ("source", "through"):
            if f in item:
                raise SuiteError(f"{where}: '{f}' applies only to attack conditions ({{attack: pgd-linf, {f}: ...}})")
    if "attack" in item:
        attack = str(item["attack"])
        source = _parse_source(where, item.get("source"), trust_code)
        through = _parse_through(where, item.get("through"))
        label = str(name).strip() if name else attack_label(attack, source, through)
        return ConditionSpec(label, tuple(sev), "attack", params=params, attack=attack, source=source,
                             through=through, levels=levels, origin=where)
    if "family" not in item:
        raise SuiteError(f"{where}: needs 'family' (or 'chain' or 'attack')")
    family = str(item["family"])
    return ConditionSpec(str(name).strip() if name else family, tuple(sev), "perturbation", params=params,
                         family=family, levels=levels, origin=where)


def _parse_levels(where: str, levels: Any) -> tuple[dict[str, Any], ...]:
    if levels is None:
        return ()
    if not isinstance(levels, list) or not levels or not all(isinstance(x, dict) for x in levels):
        raise SuiteError(f"{where}: 'levels' must be a non-empty list of parameter mappings, one per severity "
                         f"(e.g. [{{bitrate: 32000}}, {{bitrate: 16000}}]), got {levels!r}")
    seen: dict[str, int] = {}
    for k, lv in enumerate(levels, 1):
        sig = json.dumps(lv, sort_keys=True, default=str)
        if sig in seen:
            raise SuiteError(f"{where}: levels {seen[sig]} and {k} are identical ({sig})")
        seen[sig] = k
    return tuple(dict(x) for x in levels)


def is_code_spec(spec: str) -> bool:
    """A ``package.module:Class`` spec (importing it runs code), as opposed to a card name or a URL; a fusion
    (``fuse:M1+M2@FILE``) is one when a member is."""
    if spec.lower().startswith("fuse:"):
        return any(is_code_spec(m) for m in spec[5:].rpartition("@")[0].split("+"))
    return ":" in spec and not spec.startswith(("hf:", "http://", "https://"))


def _parse_source(where: str, source: Any, trust_code: bool = False) -> str | None:
    if source is None:
        return None
    if not isinstance(source, str) or not source:
        raise SuiteError(f"{where}: 'source' must be a model name (e.g. aasist-l), got {source!r}")
    if is_code_spec(source):
        if not trust_code:
            raise SuiteError(f"{where}: source {source!r} is a Python class: loading it imports and runs that "
                             "module's code. Refused in a suite file unless you trust it: pass --trust-code "
                             "(bench run) or trust_code=True (bench.api.run)")
    elif ":" not in source:
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
