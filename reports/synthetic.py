"""Synthetic run folders (results.csv, scores.csv, problems.csv, run.json) from Gaussian scores.

For tests and examples of the reports: no audio and no detector; the tables come from the real
:func:`bench.run.results.results_table`, so their columns are those of a real run. Every utterance has a
latent difficulty shared by all models and conditions, so paired comparisons between models/runs
behave like real ones; each severity step moves bona fide and spoof scores towards each other.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.suites.suite import Condition

DEFAULT_FAMILIES: Mapping[str, tuple[str, Sequence[int]]] = {
    "mp3": ("perturbation", (1, 2, 3)),
    "pink-noise": ("perturbation", (1, 2, 3)),
    "room+pink-noise+mp3": ("chain", (1, 2)),
    "pgd-linf": ("attack", (1, 2)),
}


#: a run the size of a paper's: 12 families x 5 levels and an attack, 66 conditions with clean
PAPER_FAMILIES: Mapping[str, tuple[str, Sequence[int]]] = {
    **{f: ("perturbation", (1, 2, 3, 4, 5)) for f in (
        "mp3", "aac", "opus", "g711-mulaw", "white-noise", "pink-noise", "babble", "room", "rir", "packet-loss",
        "clipping")},
    "room+pink-noise+mp3": ("chain", (1, 2, 3, 4, 5)),
    "pgd-linf": ("attack", (1, 2, 3, 4, 5)),
}


def level_params(family: str, kind: str, severity: int) -> dict[str, Any]:
    if kind == "attack":
        return {"snr_db": 50.0 - 10.0 * (severity - 1), "steps": 10, "restarts": 1}
    if kind == "chain":
        return {"steps": [{"family": s, "severity": severity, "params": level_params(s, "perturbation", severity),
                           "version": 1} for s in family.split("+")]}
    if family.startswith("room") or family == "rir":
        return {"rt60": round(0.3 * severity, 2)}
    if "noise" in family or family == "babble":
        return {"snr_db": 30.0 - 5.0 * severity}
    if family == "packet-loss":
        return {"loss_rate": round(0.05 * severity, 2)}
    if family == "clipping":
        return {"threshold": round(0.5 ** severity, 4)}
    if family.startswith("g711"):
        return {"bitrate": 64000, "input_level_dbov": -16.0 - 6.0 * severity}
    return {"bitrate": int(128000 // 2 ** severity)}


def conditions_for(fams: Mapping[str, tuple[str, Sequence[int]]]) -> list[Condition]:
    out = [Condition("clean", 0, "perturbation", {"family": "clean", "severity": 0, "params": {}})]
    for fam, (kind, sevs) in fams.items():
        for s in sevs:
            head = {"attack": fam} if kind == "attack" else {"family": fam}
            out.append(Condition(fam, int(s), kind, {**head, "severity": int(s),
                                                     "params": level_params(fam, kind, int(s))}))
    return out


def make_scores(models: Sequence[str], conds: Sequence[Condition], n_bonafide: int, n_spoof: int,
                rng: np.random.Generator, separation: Mapping[str, float] | None = None,
                drop: Mapping[str, float] | None = None, noise: float = 0.6) -> pd.DataFrame:
    """scores.csv rows: per model a separation (clean d'), per family a drop of separation per severity."""
    sep = {m: (separation or {}).get(m, 3.0 - 0.5 * i) for i, m in enumerate(models)}
    utt = [f"B{i:04d}" for i in range(n_bonafide)] + [f"S{i:04d}" for i in range(n_spoof)]
    label = np.array(["bonafide"] * n_bonafide + ["spoof"] * n_spoof)
    # the manifest's columns: four speakers; three spoof generators, A03 the hardest to detect
    speaker = [f"spk{i % 4}" for i in range(len(utt))]
    attack = np.array(["-"] * n_bonafide + [f"A0{1 + i % 3}" for i in range(n_spoof)])
    sign = np.where(label == "bonafide", 0.5, np.where(attack == "A03", -0.2, -0.5))
    latent = rng.normal(0.0, 1.0, len(utt))
    frames = []
    for m in models:
        for c in conds:
            d = max(sep[m] - (drop or {}).get(c.family, 0.6) * c.severity, 0.0)
            score = sign * d + latent + noise * rng.normal(0.0, 1.0, len(utt))
            frames.append(pd.DataFrame({"utt_id": utt, "model": m, "family": c.family, "severity": c.severity,
                                        "label": label, "score": score, "policy": "official",
                                        "speaker": speaker, "attack": attack}))
    return pd.concat(frames, ignore_index=True)


def add_quality(results: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Plausible measured quality (median snr_db, wide-band pesq, stoi) per condition, worse with severity;
    the clean condition has none (it is the reference), as in a real run."""
    out = results.copy()
    keys = list(dict.fromkeys(zip(out["family"], out["severity"])))
    drops = {f: 0.35 + 0.25 * rng.random() for f in dict.fromkeys(out["family"])}
    q = {}
    for fam, sev in keys:
        if sev == 0:
            q[(fam, sev)] = (np.nan, np.nan, np.nan)
            continue
        drop = drops[fam]
        q[(fam, sev)] = (35.0 - 5.0 * sev + rng.normal(0, 1.5), float(np.clip(4.6 - drop * sev, 1.02, 4.64)),
                         float(np.clip(0.99 - 0.06 * sev * drop, 0.3, 1.0)))
    for i, col in enumerate(("snr_db", "pesq", "stoi")):
        out[col] = [q[(f, s)][i] for f, s in zip(out["family"], out["severity"])]
    return out


def write_run(folder: str | Path, scores: pd.DataFrame, conds: Sequence[Condition], data_spec: str = "demo",
              n_boot: int = 50, seed: int = 0, suite: str = "synthetic",
              problems: pd.DataFrame | None = None, quality: bool = False,
              model_meta: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write a run folder from a scores table (results.csv through bench.run.results.results_table); with
    ``quality`` the results carry made-up PESQ/SNR/STOI columns; ``model_meta`` adds fields to a model's
    run.json record (a served model's ``health``)."""
    from bench.run.results import by_attack_table, results_table, write_tables

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = results_table(scores, suite, conds, n_boot=n_boot, seed=seed)
    if quality:
        results = add_quality(results, np.random.default_rng([seed, 7]))
    if problems is None:
        problems = pd.DataFrame(columns=["utt_id", "path", "stage", "family", "severity", "model", "reason"])
    write_tables(folder, results, scores, problems, by_attack_table(scores, suite, conds, n_boot=n_boot, seed=seed))
    models = list(dict.fromkeys(scores["model"]))
    n_utt = scores["utt_id"].nunique()
    meta = {"config": {"suite": suite, "models": models, "data": data_spec, "seed": seed},
            "suite": {"name": suite, "version": 1, "sha256": "0" * 64},
            "policy": {"name": "official"}, "seed": seed,
            "data": {"spec": data_spec, "name": data_spec, "n_utterances": int(n_utt),
                     "n_bonafide": int(scores.loc[scores["label"] == "bonafide", "utt_id"].nunique()),
                     "n_problems": len(problems)},
            "models": [{"name": m, "card": {}, "checkpoint": f"{m}.pth", "sha256": "f" * 64,
                        **dict((model_meta or {}).get(m, {}))} for m in models],
            "versions": {"python": "3.11"}, "status": "complete"}
    (folder / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return folder


def make_run(folder: str | Path, models: Sequence[str] = ("model-a", "model-b"),
             fams: Mapping[str, tuple[str, Sequence[int]]] | None = None, n_bonafide: int = 30,
             n_spoof: int = 40, seed: int = 0, data_spec: str = "demo", n_boot: int = 50, quality: bool = False,
             model_meta: Mapping[str, Mapping[str, Any]] | None = None, **kw: Any) -> Path:
    """A complete synthetic run folder; other keyword arguments go to :func:`make_scores`."""
    rng = np.random.default_rng(seed)
    conds = conditions_for(fams if fams is not None else DEFAULT_FAMILIES)
    scores = make_scores(models, conds, n_bonafide, n_spoof, rng, **kw)
    return write_run(folder, scores, conds, data_spec=data_spec, n_boot=n_boot, seed=seed, quality=quality,
                     model_meta=model_meta)
