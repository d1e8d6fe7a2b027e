"""Tables derived from the store: results.csv, scores.csv, problems.csv. Always recomputable."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.run.store import Store

log = logging.getLogger(__name__)

SCORE_COLUMNS = list(Store.SCORE_COLUMNS)
#: results.csv's columns of ``bench run --operating-point`` (empty / NaN without one)
OP_COLUMNS = ["operating_point", "op_threshold", "far_at_op", "far_at_op_ci_low", "far_at_op_ci_high", "frr_at_op",
              "frr_at_op_ci_low", "frr_at_op_ci_high"]
RESULT_COLUMNS = ["model", "suite", "family", "severity", "n_bonafide", "n_spoof", "eer", "eer_ci_low",
                  "eer_ci_high", "auc", "eer_threshold", "kind", "params", "level_label", "adv_attack", "source",
                  "through", "snr_db", "pesq", "stoi",
                  # the deployed operating point: the clean condition's EER threshold of the same model
                  "clean_threshold", "far_at_clean_threshold", "far_ci_low", "far_ci_high",
                  "frr_at_clean_threshold", "frr_ci_low", "frr_ci_high",
                  # ASVspoof 5 costs (scores taken as log-likelihood ratios)
                  "cllr", "actdcf", "min_dcf",
                  # black-box attacks: the median of the detector calls spent per utterance
                  "queries",
                  # scored clips of the condition with a level warning (silent, too short, channels that cancel,
                  # far above full scale, left unchanged by the perturbation): problems.csv, stage "level"
                  "n_warnings",
                  # bench run --operating-point: FAR/FRR at the threshold it chose on the model's clean condition
                  *OP_COLUMNS]
#: a condition's structure (bench.suites.suite.Condition.columns), in results.csv and scores.csv
CONDITION_COLUMNS = ["adv_attack", "source", "through"]
#: fewer distinct speakers than this and CIs resample utterances (a cluster bootstrap needs many clusters)
MIN_SPEAKERS = 10
#: manifest columns copied into scores.csv (when the data has them) and offered as breakdowns
INFO_COLUMNS = ("speaker", "attack", "language")
#: results_by_attack.csv: ``attack`` is the manifest's spoof generator (A07..A19), not an adversarial attack
BY_ATTACK_COLUMNS = ["model", "suite", "family", "severity", "level_label", "attack", "n_bonafide", "n_spoof",
                     "eer", "eer_ci_low", "eer_ci_high", "auc"]


def condition_labels(conditions: Sequence) -> dict[tuple[str, int], str]:
    """(family, severity) -> the level's human label (``16 kb/s``, ``10 dB SNR``; ``clean`` for clean),
    each family's ladder labelled together (see :mod:`bench.suites.labels`)."""
    from bench.suites.labels import level_labels

    ladders: dict[str, dict[int, Any]] = {}
    kinds: dict[str, str] = {}
    for c in conditions:
        ladders.setdefault(c.family, {})[int(c.severity)] = dict(c.spec.get("params", {}) or {})
        kinds[c.family] = c.kind
    out = {}
    for fam, lv in ladders.items():
        if fam == "clean":
            out.update({(fam, s): "clean" for s in lv})
            continue
        out.update({(fam, s): lab for s, lab in level_labels(lv, kinds[fam]).items()})
    return out


def results_table(scores: pd.DataFrame, suite: str, conditions: Sequence, n_boot: int = 1000,
                  seed: int = 0, speakers: Mapping[str, str] | None = None, operating=None) -> pd.DataFrame:
    """One row per model x condition, in the suite's condition order (clean first); no quality columns
    (they come from the store, see :func:`results_from_store`). ``speakers`` (utt_id -> speaker, at least
    :data:`MIN_SPEAKERS` of them): CIs resample whole speakers. ``queries``: the median of the per-utterance
    query counts of black-box attacks (NaN where none were recorded). ``operating``: ``(OperatingPoint, {model:
    Bayes score threshold})`` fills the ``OP_COLUMNS`` (a threshold per model from its clean condition)."""
    def queries(g: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(g["queries"], errors="coerce").dropna().to_numpy(float) if "queries" in g else np.array([])

    groups = [(model, family, int(severity), g["label"].to_numpy(), g["score"].to_numpy(float), (),
               g["utt_id"].to_numpy() if "utt_id" in g else None, queries(g))
              for (model, family, severity), g in scores.groupby(["model", "family", "severity"], sort=False)]
    clean = {g[0]: _clean_threshold(g[3], g[4]) for g in groups if (g[1], g[2]) == ("clean", 0)}
    ops = {g[0]: _op_threshold(operating, g[0], g[3], g[4]) for g in groups if (g[1], g[2]) == ("clean", 0)}
    return _table(groups, suite, conditions, n_boot, seed, speakers, clean, _op(operating, ops))


def results_from_store(store, suite: str, conditions: Sequence, n_boot: int = 1000, seed: int = 0,
                       speakers: Mapping[str, str] | None = None, operating=None) -> pd.DataFrame:
    """:func:`results_table` of a run's store, reading one condition's scores at a time."""
    def groups():
        for model, family, severity in store.groups():
            rows = store.group_rows(model, family, severity)
            ids = np.asarray([r[0] for r in rows], dtype=object)
            yield (model, family, int(severity), np.asarray([r[1] for r in rows]),
                   np.asarray([r[2] for r in rows], float), store.group_quality(model, family, severity), ids,
                   np.asarray(store.group_queries(model, family, severity), float))
    clean, ops = {}, {}
    for model in dict.fromkeys(m for m, _f, _s in store.groups()):
        labels, scores = store.group_scores(model, "clean", 0)
        clean[model] = _clean_threshold(np.asarray(labels), np.asarray(scores, float))
        ops[model] = _op_threshold(operating, model, np.asarray(labels), np.asarray(scores, float))
    return _table(groups(), suite, conditions, n_boot, seed, speakers, clean, _op(operating, ops),
                  warned=store.warned)


def _op_threshold(operating, model: str, labels: np.ndarray, scores: np.ndarray) -> float:
    """The operating point's threshold on a model's clean scores (NaN without both classes or without one)."""
    if operating is None:
        return float("nan")
    point, bayes = operating
    bona, spoof = scores[labels == "bonafide"], scores[labels == "spoof"]
    bona, spoof = bona[np.isfinite(bona)], spoof[np.isfinite(spoof)]
    if point.kind in ("threshold", "bayes"):
        return point.threshold(bona, spoof, bayes=bayes.get(model))
    return point.threshold(bona, spoof) if len(bona) and len(spoof) else float("nan")


def _op(operating, thresholds: Mapping[str, float]) -> tuple[str, Mapping[str, float]] | None:
    return None if operating is None else (str(operating[0]), thresholds)


def _clean_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    from bench import metrics

    bona, spoof = scores[labels == "bonafide"], scores[labels == "spoof"]
    return metrics.eer(bona, spoof)[1] if len(bona) and len(spoof) else float("nan")


def _table(groups: Iterable[tuple], suite: str, conditions: Sequence, n_boot: int, seed: int,
           speakers: Mapping[str, str] | None, clean_thr: Mapping[str, float],
           op: tuple[str, Mapping[str, float]] | None = None, warned=None) -> pd.DataFrame:
    from bench import metrics
    from bench.metrics import costs
    from bench.metrics.quality import medians

    if speakers is not None and len(set(speakers.values())) < MIN_SPEAKERS:
        log.info("only %d speakers: bootstrap CIs resample utterances, not speakers", len(set(speakers.values())))
        speakers = None
    order = {(c.family, c.severity): i for i, c in enumerate(conditions)}
    info = {(c.family, c.severity): c for c in conditions}
    level_labels = condition_labels(conditions)
    rows, models = [], {}
    for model, family, severity, labels, scores, quality, ids, queries in groups:
        models.setdefault(model, len(models))
        bona, spoof = scores[labels == "bonafide"], scores[labels == "spoof"]
        gb = gs = None
        if speakers is not None and ids is not None:
            sp = np.asarray([speakers.get(u, "-") for u in ids])
            gb, gs = sp[labels == "bonafide"], sp[labels == "spoof"]
        eer = thr = auc = lo = hi = cllr = actdcf = mindcf = float("nan")
        if len(bona) and len(spoof):
            eer, thr = metrics.eer(bona, spoof)
            auc = metrics.auc(bona, spoof)
            lo, hi = metrics.bootstrap_eer_ci(bona, spoof, n_boot=n_boot, seed=seed,
                                              groups=(gb, gs) if gb is not None else None)
            cllr, actdcf = costs.cllr(bona, spoof), costs.act_dcf(bona, spoof)
            mindcf = costs.min_dcf(bona, spoof)
        ct = clean_thr.get(model, float("nan"))
        far = frr = far_lo = far_hi = frr_lo = frr_hi = float("nan")
        if np.isfinite(ct):
            if len(spoof):
                far = float(np.mean(spoof > ct))
                far_lo, far_hi = costs.bootstrap_rate_ci(spoof > ct, n_boot=n_boot, seed=seed, groups=gs)
            if len(bona):
                frr = float(np.mean(bona <= ct))
                frr_lo, frr_hi = costs.bootstrap_rate_ci(bona <= ct, n_boot=n_boot, seed=seed + 1, groups=gb)
        c = info.get((family, severity))
        at_op = _at_op(op, model, bona, spoof, gb, gs, n_boot, seed)
        rows.append({"model": model, "suite": suite, "family": family, "severity": severity,
                     "n_bonafide": len(bona), "n_spoof": len(spoof), "eer": float(eer),
                     "eer_ci_low": float(lo), "eer_ci_high": float(hi), "auc": float(auc),
                     "eer_threshold": float(thr), "kind": c.kind if c else "",
                     "params": json.dumps(c.spec.get("params", {}), sort_keys=True, default=str) if c else "",
                     "level_label": level_labels.get((family, severity), f"s{severity}"),
                     **(c.columns() if c else dict.fromkeys(CONDITION_COLUMNS, "")),
                     **medians(quality),
                     "clean_threshold": float(ct), "far_at_clean_threshold": far, "far_ci_low": far_lo,
                     "far_ci_high": far_hi, "frr_at_clean_threshold": frr, "frr_ci_low": frr_lo,
                     "frr_ci_high": frr_hi, "cllr": float(cllr), "actdcf": float(actdcf), "min_dcf": float(mindcf),
                     "queries": float(np.median(queries)) if len(queries) else float("nan"), **at_op,
                     "n_warnings": len(set(ids) & warned(family, severity)) if warned and ids is not None else 0,
                     "_order": order.get((family, severity), len(order)), "_m": models[model]})
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS + ["_order", "_m"])
    return df.sort_values(["_m", "_order"]).drop(columns=["_order", "_m"]).reset_index(drop=True)


def _at_op(op, model: str, bona: np.ndarray, spoof: np.ndarray, gb, gs, n_boot: int, seed: int) -> dict:
    """The ``OP_COLUMNS`` of one condition: FAR (``spoof >= t``) and FRR (``bona < t``) at the model's operating
    threshold, with the same bootstrap as the clean-EER-threshold columns (speaker clusters when given)."""
    from bench.metrics import costs

    out: dict[str, Any] = {**dict.fromkeys(OP_COLUMNS, float("nan")), "operating_point": ""}
    if op is None:
        return out
    t = float(op[1].get(model, float("nan")))
    out.update(operating_point=op[0], op_threshold=t)
    if not np.isfinite(t):
        return out
    if len(spoof):
        out["far_at_op"] = float(np.mean(spoof >= t))
        out["far_at_op_ci_low"], out["far_at_op_ci_high"] = costs.bootstrap_rate_ci(spoof >= t, n_boot=n_boot,
                                                                                    seed=seed, groups=gs)
    if len(bona):
        out["frr_at_op"] = float(np.mean(bona < t))
        out["frr_at_op_ci_low"], out["frr_at_op_ci_high"] = costs.bootstrap_rate_ci(bona < t, n_boot=n_boot,
                                                                                    seed=seed + 1, groups=gb)
    return out


def utterance_info(utterances: Iterable) -> pd.DataFrame:
    """The manifest's speaker, attack (spoof generator) and language per utt_id (index), for the columns
    the data has (a column whose every value is unknown is left out)."""
    from bench.data.manifest import UNKNOWN

    rows = {u.utt_id: {"speaker": u.speaker, "attack": u.attack,
                       "language": (u.attrs or {}).get("language", UNKNOWN)} for u in utterances}
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(INFO_COLUMNS)).fillna(UNKNOWN)
    keep = [c for c in INFO_COLUMNS if c in ("speaker", "attack") or (df[c].astype(str) != UNKNOWN).any()]
    return df[keep].astype(str)


def with_info(chunks: pd.DataFrame | Iterable[pd.DataFrame], info: pd.DataFrame | None):
    """Score chunks with the manifest's columns (``speaker``, ``attack``...) joined on utt_id."""
    from bench.data.manifest import UNKNOWN

    if info is None or info.empty:
        yield from ([chunks] if isinstance(chunks, pd.DataFrame) else chunks)
        return
    for chunk in ([chunks] if isinstance(chunks, pd.DataFrame) else chunks):
        chunk = chunk.copy()
        for c in info.columns:
            chunk[c] = chunk["utt_id"].map(info[c]).fillna(UNKNOWN)
        yield chunk


def by_attack_from_store(store, suite: str, conditions: Sequence, info: pd.DataFrame | None, n_boot: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """results_by_attack.csv of a run's store (one condition's scores read at a time); see :func:`by_attack_table`."""
    from bench.data.manifest import UNKNOWN

    gen = info["attack"] if info is not None and "attack" in info else pd.Series(dtype=str)

    def groups():
        for model, family, severity in store.groups():
            df = pd.DataFrame(store.group_rows(model, family, severity), columns=["utt_id", "label", "score"])
            df["attack"] = df["utt_id"].map(gen).fillna(UNKNOWN).astype(str)
            yield model, family, int(severity), df
    return _by_attack(groups(), suite, conditions, n_boot, seed)


def by_attack_table(scores: pd.DataFrame, suite: str, conditions: Sequence, n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Per model x condition x spoof generator (the manifest's ``attack`` column of ``scores``), the EER of
    all bona fide clips against that generator's spoofs, with n and a bootstrap CI (as ASVspoof reports
    A07-A19). Without an ``attack`` column every spoof counts as generator ``-`` (unknown)."""
    if "attack" not in scores:
        scores = scores.assign(attack="-")
    groups = ((m, f, int(s), g) for (m, f, s), g in scores.groupby(["model", "family", "severity"], sort=False))
    return _by_attack(groups, suite, conditions, n_boot, seed)


def _by_attack(groups: Iterable[tuple], suite: str, conditions: Sequence, n_boot: int, seed: int) -> pd.DataFrame:
    from bench import metrics

    order = {(c.family, c.severity): i for i, c in enumerate(conditions)}
    labels = condition_labels(conditions)
    parts, models = [], {}
    for model, family, severity, df in groups:
        models.setdefault(model, len(models))
        t = metrics.summarize(df[["label", "score", "attack"]].astype({"attack": str}), ["attack"],
                              n_boot=n_boot, seed=seed)
        parts.append(t.assign(model=model, suite=suite, family=family, severity=severity,
                              level_label=labels.get((family, severity), f"s{severity}"),
                              _order=order.get((family, severity), len(order)), _m=models[model]))
    if not parts:
        return pd.DataFrame(columns=BY_ATTACK_COLUMNS)
    out = pd.concat(parts, ignore_index=True).sort_values(["_m", "_order", "attack"], kind="stable")
    return out[BY_ATTACK_COLUMNS].reset_index(drop=True)


def with_condition_columns(chunks: Iterable[pd.DataFrame], conditions: Sequence) -> Iterator[pd.DataFrame]:
    """Score chunks with the condition's structure (``adv_attack``, ``source``, ``through``) added."""
    cols = {(c.family, int(c.severity)): c.columns() for c in conditions}
    empty = dict.fromkeys(CONDITION_COLUMNS, "")
    for chunk in chunks:
        keys = list(zip(chunk["family"], chunk["severity"].astype(int)))
        for name in CONDITION_COLUMNS:
            chunk[name] = [cols.get(k, empty)[name] for k in keys]
        yield chunk


def write_tables(folder: Path, results: pd.DataFrame, scores: pd.DataFrame | Iterable[pd.DataFrame],
                 problems: pd.DataFrame, by_attack: pd.DataFrame | None = None) -> None:
    """Writes the tables atomically; ``scores`` may be an iterable of chunks (streamed to disk)."""
    folder = Path(folder)
    tables = [("results.csv", results), ("scores.csv", scores), ("problems.csv", problems)]
    if by_attack is not None:
        tables.append(("results_by_attack.csv", by_attack))
    for name, df in tables:
        tmp = folder / (name + ".tmp")
        if isinstance(df, pd.DataFrame):
            df.to_csv(tmp, index=False)
        else:
            with open(tmp, "w", newline="") as f:
                header = True
                for chunk in df:
                    chunk.to_csv(f, index=False, header=header)
                    header = False
                if header:   # no scores at all: still a table with its columns
                    f.write(",".join(SCORE_COLUMNS + CONDITION_COLUMNS) + "\n")
        tmp.replace(folder / name)


def read_scores_csv(path: Path) -> pd.DataFrame:
    """scores.csv as written by :func:`write_tables` (ids stay strings, scores round-trip exactly)."""
    # pandas 3 parses floats exactly by default and deprecates the option; pandas 2 needs it
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    df = pd.read_csv(path, dtype={c: str for c in ("utt_id", "model", "family", "label", "policy",
                                                   *CONDITION_COLUMNS, *INFO_COLUMNS)},
                     keep_default_na=False, **exact)
    if "queries" in df.columns:   # absent from runs written before the column existed
        df["queries"] = pd.to_numeric(df["queries"], errors="coerce").astype("Int64")
    return df


def summary_pivot(results: pd.DataFrame) -> pd.DataFrame:
    """EER (%) with families as rows and severities as columns (clean first); one row per model x family."""
    if results.empty:
        return pd.DataFrame()
    r = results.assign(eer_pct=(100 * results["eer"]).round(2))
    clean = r[r["family"] == "clean"].set_index("model")["eer_pct"]
    rest = r[r["family"] != "clean"]
    if rest.empty:
        return pd.DataFrame({"family": "clean", "model": clean.index, "clean": clean.to_numpy()})
    t = rest.pivot_table(index=["family", "model"], columns="severity", values="eer_pct", sort=False)
    t.columns = [str(c) for c in t.columns]
    t = t.reset_index()
    t.insert(2, "clean", t["model"].map(clean))
    return t.astype(object).where(t.notna(), None)
