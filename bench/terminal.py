"""What the commands print: strict JSON (null, never NaN) and rich tables. Shared by bench/cli.py and
reports/cli.py, so neither imports the other for it."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf as None and numpy scalars as Python numbers: what a strict parser (jq,
    JavaScript's JSON.parse) accepts."""
    import math

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()   # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    try:
        import pandas as pd
        if pd.isna(obj):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    return str(obj)


def strict_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text that every strict parser reads (no NaN, no Infinity: null)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def print_json(obj: Any) -> None:
    sys.stdout.write(strict_json(obj) + "\n")


#: the width of a console that is not a terminal (a file, a pipe, a `nohup` log): wide enough for any table
UNLIMITED = 100_000


def console(file: Any = None, stderr: bool = False, width: int | None = None):
    """A rich Console for tables. On a terminal it fits the terminal; written to a file or a pipe it does not cut
    anything at 80 columns (rich's default there): the lines are as long as the table needs, unless COLUMNS
    is set in the environment or ``width`` is given."""
    import os

    from rich.console import Console

    c = Console(file=file, stderr=stderr, width=width)
    if width is None and not c.is_terminal and not os.environ.get("COLUMNS"):
        c = Console(file=file, stderr=stderr, width=UNLIMITED)
    return c


def table(rows: list[dict], columns: Sequence[str], title: str | None = None, file: Any = None,
          out: Any = None) -> None:
    """Prints rows as a table: full width to a file or pipe; on a narrow terminal long cells wrap onto more
    lines rather than being cut. ``out`` is a Console to print to (else one for ``file``, default stdout)."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if r.get(c) is None or r.get(c) != r.get(c) else str(r.get(c)) for c in columns])
    (out or console(file)).print(t)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused at start, naming the value)."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v
