"""Per-condition rows from a scores table: :func:`summarize` (EER, its bootstrap CI, AUC per group) and
:func:`breakdowns` (by spoof generator, codec, speaker, ...)."""
from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

from bench.metrics.bootstrap import bootstrap_eer_ci
from bench.metrics.detection import BONAFIDE, SPOOF, auc, eer

SUMMARY_COLUMNS = ("n_bonafide", "n_spoof", "eer", "eer_threshold", "eer_ci_low", "eer_ci_high", "auc")
#: grouping columns whose value describes the spoof only (bona fide rows carry "-"): a group is
#: that value's spoofs against all bona fide of the enclosing group, as in the official packages.
SPOOF_ONLY = ("attack",)


def _seed_for(seed: int, key) -> int:
    h = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
    return int(seed) * 1_000_003 + int.from_bytes(h, "little")


def _row(sub, n_boot: int, alpha: float, seed: int, cluster: str | None) -> dict:
    lab = sub["label"].to_numpy()
    sc = sub["score"].to_numpy(dtype=np.float64)
    ok = np.isfinite(sc)
    bmask, smask = (lab == BONAFIDE) & ok, (lab == SPOOF) & ok
    b, s = sc[bmask], sc[smask]
    row = {"n_bonafide": int(b.size), "n_spoof": int(s.size), "eer": np.nan, "eer_threshold": np.nan,
           "eer_ci_low": np.nan, "eer_ci_high": np.nan, "auc": np.nan}
    if b.size and s.size:
        row["eer"], row["eer_threshold"] = eer(b, s)
        row["auc"] = auc(b, s)
        if n_boot > 0:
            groups = None
            if cluster is not None:
                g = sub[cluster].astype(str).to_numpy()
                groups = (g[bmask], g[smask])
            row["eer_ci_low"], row["eer_ci_high"] = bootstrap_eer_ci(
                b, s, n_boot=n_boot, alpha=alpha, seed=seed, groups=groups)
    return row


def summarize(df, by: Iterable[str] | None = None, *, n_boot: int = 1000, alpha: float = 0.05,
              seed: int = 0, cluster: str | None = None, spoof_only: Iterable[str] = SPOOF_ONLY):
    """Per-group metrics of a scores table.

    ``df`` has a ``label`` column (``bonafide``/``spoof``), a ``score`` column and the grouping
    columns ``by``. Returns one row per group with the ``by`` columns and ``n_bonafide``,
    ``n_spoof``, ``eer``, ``eer_threshold``, ``eer_ci_low``, ``eer_ci_high``, ``auc``; with no
    ``by`` a single pooled row. Groups lacking a class get NaN metrics. Columns listed in
    ``spoof_only`` (default ``attack``) are grouped on the spoof rows only and each group is
    scored against all bona fide rows that share the other ``by`` values. ``cluster`` names a
    column (for example ``speaker``) for the cluster bootstrap. Non-finite scores are left out
    of the counts. The bootstrap seed of each group derives from ``seed`` and the group key, so
    a group's interval does not depend on which other groups are present.
    """
    import pandas as pd

    by = list(by or [])
    need = {"label", "score", *by} | ({cluster} if cluster else set())
    missing = sorted(need - set(df.columns))
    if missing:
        raise KeyError(f"scores table lacks column(s) {missing}; it has {list(df.columns)}")
    bad = sorted(set(df["label"].unique()) - {BONAFIDE, SPOOF})
    if bad:
        raise ValueError(f"label column must hold 'bonafide'/'spoof', found {bad}")
    so = [c for c in by if c in set(spoof_only)]
    plain = [c for c in by if c not in so]
    rows = []
    outer = [((), df)] if not plain else [
        (k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(plain, sort=True, dropna=False)]
    for pkey, g in outer:
        base = dict(zip(plain, pkey))
        if not so:
            rows.append({**base, **_row(g, n_boot, alpha, _seed_for(seed, pkey), cluster)})
            continue
        bona = g[g["label"] == BONAFIDE]
        spoofs = g[g["label"] == SPOOF]
        for skey, sg in spoofs.groupby(so, sort=True, dropna=False):
            skey = skey if isinstance(skey, tuple) else (skey,)
            sub = pd.concat([bona, sg])
            rows.append({**base, **dict(zip(so, skey)),
                         **_row(sub, n_boot, alpha, _seed_for(seed, pkey + skey), cluster)})
    out = pd.DataFrame(rows, columns=by + list(SUMMARY_COLUMNS))
    return out.astype({"n_bonafide": int, "n_spoof": int})


def breakdowns(df, by: Iterable[str] = (), factors: Iterable[str] = ("attack", "codec", "speaker", "source"),
               **kwargs):
    """Pooled and per-factor rows in one long table.

    For every group of ``by`` (for example model, family, severity): one ``factor="pooled"``,
    ``level="all"`` row, then one row per level of each factor column present in ``df``
    (missing factor columns are skipped). Keyword arguments go to :func:`summarize`.
    """
    import pandas as pd

    by = list(by)
    parts = []
    pooled = summarize(df, by, **kwargs)
    pooled.insert(len(by), "factor", "pooled")
    pooled.insert(len(by) + 1, "level", "all")
    parts.append(pooled)
    for f in factors:
        if f not in df.columns or f in by:
            continue
        t = summarize(df, by + [f], **kwargs).rename(columns={f: "level"})
        t.insert(len(by), "factor", f)
        t["level"] = t["level"].astype(str)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)
