"""CSV files of a report that a person opens in a spreadsheet: text cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, as OWASP's CSV-injection guidance lists) are
written with a leading apostrophe, which spreadsheets show as text. Numbers, and the lone ``-`` placeholder of an
unknown speaker or attack, are written as they are. The run's own tables (scores.csv, results.csv) stay exact: they
are data for programs; only the report's downloads (degradation.csv, by_<column>.csv, compare.csv) pass through here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

_RISKY = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?$")


def safe_cell(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith(_RISKY) or value == "-" or _NUMBER.match(value):
        return value
    return "'" + value


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(safe_cell)
    out.to_csv(path, index=False)
