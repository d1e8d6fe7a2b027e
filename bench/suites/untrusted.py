"""Reading a suite file as untrusted input: bounded before and while it is parsed.

A suite comes from anyone (a colleague's repository, a CI job's checkout), and YAML can describe far more
than it spells out: nested anchors and aliases ("billion laughs": 389 bytes that expand into an 80 MB
run.json, one level more into 8 GB) and nesting deep enough to exhaust the parser's stack. So a suite may
have at most :data:`MAX_SUITE_BYTES` per file and :data:`MAX_SUITE_FILES` files through ``include:``, and its
document, with every alias counted at each of its uses, at most :data:`MAX_SUITE_NODES` values nested at
most :data:`MAX_DEPTH` deep. Aliases themselves stay allowed (sharing one ``params:`` mapping is what they
are for); only their expansion is bounded, measured in time linear in the document.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.suites.conditions import SuiteError

#: what one suite may take: bytes per file, files through include:, values after alias expansion, nesting
MAX_SUITE_BYTES = 1 << 20
MAX_SUITE_FILES = 64
MAX_SUITE_NODES = 100_000
MAX_DEPTH = 64


def read_bounded(p: Path) -> bytes:
    """The bytes of suite file ``p``, refused past :data:`MAX_SUITE_BYTES` (checked before and while reading)."""
    if not p.is_file():
        raise SuiteError(f"suite file {p} does not exist")
    size = p.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise SuiteError(f"suite file {p} has {size} bytes; a suite may have at most {MAX_SUITE_BYTES} "
                         "(a list of conditions is a few KB; is this the right file?)")
    with open(p, "rb") as f:
        raw = f.read(MAX_SUITE_BYTES + 1)   # a file growing after the check is still bounded
    if len(raw) > MAX_SUITE_BYTES:
        raise SuiteError(f"suite file {p} has more than {MAX_SUITE_BYTES} bytes")
    return raw


def _expanded_size(source: str, obj: Any, memo: dict[int, int], depth: int = 0) -> int:
    """How many values ``obj`` holds with every alias expanded (an aliased mapping counts at each use), in time
    linear in the document (each distinct container is measured once); refuses cycles and deep nesting."""
    if not isinstance(obj, (dict, list)):
        return 1
    if depth > MAX_DEPTH:
        raise SuiteError(f"{source}: nested deeper than {MAX_DEPTH} levels; a suite is a flat list of conditions")
    key = id(obj)
    if key in memo:
        if memo[key] < 0:
            raise SuiteError(f"{source}: a YAML alias refers to a mapping or list that contains it (a cycle)")
        return memo[key]
    memo[key] = -1
    items = [v for kv in obj.items() for v in kv] if isinstance(obj, dict) else obj
    n = 1
    for v in items:
        n += _expanded_size(source, v, memo, depth + 1)
        if n > MAX_SUITE_NODES:
            raise SuiteError(f"{source}: the document expands to more than {MAX_SUITE_NODES} values (YAML "
                             "aliases are counted at every use, so nested aliases multiply); refused as a "
                             "resource bomb. Write the conditions out, or alias only small parts")
    memo[key] = n
    return n


def parse_yaml(source: str, raw: bytes) -> Any:
    """The YAML document of suite file ``source`` (safe_load), refused when it expands past the bounds."""
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: not valid YAML ({e})") from e
    except RecursionError:
        raise SuiteError(f"{source}: nested too deeply to parse; a suite is a flat list of conditions") from None
    _expanded_size(source, doc, {})
    return doc
