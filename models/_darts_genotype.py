"""DARTS genotypes as data: parsing and validation.

A genotype describes the two cell types of a DARTS network as JSON::

    {"normal": [[op, input], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [[op, input], ...], "reduce_concat": [2, 3, 4, 5]}

Each cell has two inputs (states 0 and 1) and ``len(entries) / 2`` intermediate nodes; entries ``2i`` and
``2i + 1`` are the two operations summed into node ``i`` (state ``i + 2``), each applied to an earlier
state, so its input index is below ``i + 2``. The cell's output concatenates the states in ``*_concat``.

:func:`parse_genotype` takes that dict, a JSON string, a path to a JSON file, or the release's
``Genotype(normal=[('dil_conv_5', 1), ...], normal_concat=range(2, 6), ...)`` string (read with
:mod:`ast`, never evaluated). Every problem is reported with the field and entry it concerns.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Mapping

from models._darts_ops import OPS

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

#: the architecture of the Raw PC-DARTS paper (README of eurecom-asp/raw-pc-darts-anti-spoofing)
RAW_PC_DARTS: dict[str, Any] = {
    "normal": [["dil_conv_5", 1], ["dil_conv_3", 0], ["dil_conv_5", 1], ["dil_conv_5", 2],
               ["std_conv_5", 2], ["skip_connect", 3], ["std_conv_5", 2], ["skip_connect", 4]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3", 0], ["std_conv_3", 1], ["dil_conv_3", 0], ["dil_conv_3", 2],
               ["skip_connect", 0], ["dil_conv_5", 2], ["dil_conv_3", 0], ["avg_pool_3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}


class GenotypeError(ValueError):
    """A genotype that cannot describe a DARTS cell; the message names the field and entry."""


def _official_string(text: str) -> dict[str, Any]:
    """``Genotype(normal=[...], normal_concat=range(2, 6), ...)`` -> dict, without evaluating code."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise GenotypeError(f"genotype string is neither JSON nor a Genotype(...) expression: {e}") from e
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Genotype"
            and not node.args):
        raise GenotypeError("genotype string: expected Genotype(normal=..., normal_concat=..., reduce=..., "
                            "reduce_concat=...) with keyword arguments, or JSON")
    out: dict[str, Any] = {}
    for kw in node.keywords:
        v = kw.value
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "range":
            out[kw.arg] = list(range(*[ast.literal_eval(a) for a in v.args]))
        else:
            try:
                out[kw.arg] = ast.literal_eval(v)
            except ValueError as e:
                raise GenotypeError(f"genotype string: the value of {kw.arg} is not a literal ({e})") from e
    return out


def _load(spec: Any) -> Mapping[str, Any]:
    if isinstance(spec, Mapping):
        return spec
    if hasattr(spec, "_asdict"):          # the release's namedtuple
        return spec._asdict()
    if isinstance(spec, Path) or (isinstance(spec, str) and not spec.lstrip().startswith(("{", "Genotype"))):
        path = Path(spec)
        if not path.is_file():
            raise GenotypeError(f"genotype file {path} does not exist; give a JSON file, a dict or a JSON string")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise GenotypeError(f"genotype file {path} is not valid JSON: {e}") from e
    if isinstance(spec, str):
        if spec.lstrip().startswith("Genotype"):
            return _official_string(spec)
        try:
            return json.loads(spec)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"genotype string is not valid JSON: {e}") from e
    raise GenotypeError(f"genotype must be a dict, a JSON string or a path to a JSON file, got {type(spec).__name__}")


def _cell(g: Mapping[str, Any], kind: str, ops: Mapping[str, Any]) -> tuple[list[list[Any]], list[int]]:
    entries, concat = g[kind], g[f"{kind}_concat"]
    if not isinstance(entries, (list, tuple)) or len(entries) < 2 or len(entries) % 2:
        n = len(entries) if isinstance(entries, (list, tuple)) else type(entries).__name__
        raise GenotypeError(f"genotype {kind}: needs an even number (>= 2) of [op, input] entries, two per "
                            f"intermediate node (8 for the usual four nodes); got {n}")
    steps = len(entries) // 2
    out = []
    for k, e in enumerate(entries):
        if not (isinstance(e, (list, tuple)) and len(e) == 2):
            raise GenotypeError(f"genotype {kind}[{k}]: expected [op, input], got {e!r}")
        op, idx = e
        if op not in ops:
            raise GenotypeError(f"genotype {kind}[{k}]: unknown op {op!r}; known: {', '.join(ops)}")
        node = k // 2
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < node + 2:
            raise GenotypeError(f"genotype {kind}[{k}]: input index {idx!r} out of range for node {node} "
                                f"(state {node + 2}); it must be one of 0..{node + 1} (0, 1: the cell's inputs)")
        out.append([str(op), int(idx)])
    if not isinstance(concat, (list, tuple, range)) or len(concat) == 0:
        raise GenotypeError(f"genotype {kind}_concat: a non-empty list of state indices, got {concat!r}")
    concat = list(concat)
    bad = [c for c in concat if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < steps + 2]
    if bad:
        raise GenotypeError(f"genotype {kind}_concat: {bad} out of range; states are 0..{steps + 1}")
    return out, concat


def parse_genotype(spec: Any, ops: Mapping[str, Any] = OPS) -> dict[str, Any]:
    """A validated genotype dict (lists, JSON-serialisable) from any accepted form (see the module)."""
    g = _load(spec)
    missing = [f for f in FIELDS if f not in g]
    extra = sorted(set(g) - set(FIELDS))
    if missing or extra:
        raise GenotypeError("genotype: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown field(s) {', '.join(extra)}"]
                                                                      if extra else []))
            + f" (expected exactly {', '.join(FIELDS)})")
    normal, normal_concat = _cell(g, "normal", ops)
    reduce, reduce_concat = _cell(g, "reduce", ops)
    return {"normal": normal, "normal_concat": normal_concat, "reduce": reduce, "reduce_concat": reduce_concat}
