"""`bench run`: suite x data x detectors -> durable scores -> results.

Flow: validate the suite (before any audio) -> load the data set -> lock the run folder and open
its store -> count what the store still misses (a finished run stops here and only rewrites its
tables) -> the executor starts preparing audio (read + perturb) in workers for units (condition x
shard) made lazily from that gap, while this process loads the detectors and then scores batches on
the device -> each batch is committed to the store -> results.csv / scores.csv / problems.csv and
run.json are derived from the store, one condition at a time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bench.run.config import RunConfig
from bench.run.executors import make_executor
from bench.run.identity import by_content as _by_content, check_identity as _check_identity, check_loaded
from bench.run.inputs import check_contents
from bench.run.outage import after_outage, wait_seconds
from bench.run.plan import _count_scores, _units
from bench.run.resources import check_resources, drop_unavailable, write_skipped
from bench.run.progress import Progress as _Progress
from bench.run.provenance import data_digest, run_provenance, timing_summary
from bench.run.store import RunLock, Store
from bench.run.units import Scorer, ScorerSpec, unavailable
from foundation.device import resolve_device

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out: Path
    results: pd.DataFrame
    problems: pd.DataFrame
    provenance: dict[str, Any]

    @property
    def scores(self) -> pd.DataFrame:
        """scores.csv, read when asked for (a large run's scores are not held in memory)."""
        from bench.run.results import read_scores_csv

        return read_scores_csv(self.out / "scores.csv")


def default_out(cfg: RunConfig, ident: Mapping[str, Any]) -> Path:
    """runs/<suite>-<models>-<data>-<hash>: the same command gives the same folder, so it resumes."""
    digest = hashlib.sha256(json.dumps(_by_content(ident), sort_keys=True, default=str).encode()).hexdigest()[:8]
    data = Path(cfg.data.split(":", 1)[-1]).name or cfg.data
    name = f"{Path(cfg.suite).stem}-{'+'.join(cfg.models)}-{data}-{digest}"
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def run(cfg: RunConfig, show_progress: bool = True, progress=None) -> RunResult:
    """Runs (or resumes) ``cfg``. ``progress(done, total, condition)`` is called after every unit of work.
    A run that fails before it stored any score removes the folder it created."""
    from bench.data import load_dataset
    from bench.scoring.windows import parse_policy
    from bench.suites.suite import load_suite

    from bench.run.identity import models_identity

    cfg.validate()
    _check_suite_name(cfg.suite)
    suite = load_suite(cfg.suite, trust_code=cfg.trust_code)
    from bench.suites.universal import universal_conditions

    conditions = universal_conditions(suite.expand(), cfg.models)   # universal attacks: one per source model
    skipped: list[dict[str, Any]] = []
    if cfg.skip_unavailable:   # families that cannot run here are named in every output, not silently left out
        conditions, skipped = drop_unavailable(conditions)
        if not conditions:
            raise RuntimeError("no family of suite " + repr(cfg.suite) + " can run here: "
                               + "; ".join(f"{s['family']}: {s['reason']}" for s in skipped))
    resources_used = check_resources(conditions)   # e.g. a neural codec's weights: refused before any audio is read
    policy = parse_policy(cfg.policy or suite.policy)
    model_ids = models_identity(cfg.models, cfg.checkpoint, wait_seconds(cfg))
    dataset = load_dataset(cfg.data, limit=cfg.limit, seed=cfg.seed)
    if not dataset.utterances:
        raise ValueError(f"data set {cfg.data!r} has no usable utterances"
                         + (f" ({len(dataset.problems)} listed inputs missing, e.g. {dataset.problems[0][0]})"
                            if dataset.problems else ""))
    from bench.run.segments import check_dataset

    check_dataset(dataset.utterances)   # a bad spoof_segments cell stops the run here, naming the utterance
    ident = cfg.identity(suite.sha256, data_digest(dataset), model_ids)
    out = Path(cfg.out) if cfg.out else default_out(cfg, ident)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_in(out, cfg, suite, conditions, policy, dataset, ident, show_progress, progress,
                       resources_used, skipped)
    except BaseException:
        if created:
            _remove_if_empty(out)
        raise


def _check_suite_name(name: str) -> None:
    """A misspelt built-in suite name is refused with the closest names (a path is left to load_suite)."""
    from bench.suites.suite import SuiteError, builtin_names
    from foundation.registry import did_you_mean

    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists() or name in builtin_names():
        return
    raise SuiteError(f"unknown suite {name!r}{did_you_mean(name, builtin_names())}; built-in suites: "
                     f"{', '.join(builtin_names())}, or give a path to a YAML suite")


#: what a run puts in its folder before its first score
_SCAFFOLD = ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "store.sqlite-journal", "run.lock", "run.json",
             "run.tmp")


def _remove_if_empty(out: Path) -> None:
    """Removes a run folder this process created when it holds no score (a run that failed at its start)."""
    import sqlite3

    try:
        if (out / "store.sqlite").exists():
            db = sqlite3.connect(out / "store.sqlite")
            try:
                if db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]:
                    return
            finally:
                db.close()
        if any(p.name not in _SCAFFOLD for p in out.iterdir()):
            return
        for name in _SCAFFOLD:
            (out / name).unlink(missing_ok=True)
        out.rmdir()
        log.info("removed %s: the run failed before it stored any score", out)
    except (OSError, sqlite3.Error) as e:
        log.warning("could not remove the empty run folder %s: %s", out, e)


def _run_in(out: Path, cfg: RunConfig, suite, conditions, policy, dataset, ident, show_progress: bool,
            progress, resources_used: Mapping[str, Any] | None = None, skipped=()) -> RunResult:
    from bench.suites.universal import universal_training_split

    started = time.time()
    split = universal_training_split(conditions, dataset)
    with RunLock(out), Store(out / "store.sqlite") as store:
        _check_identity(store, out, ident)
        check_contents(store, dataset, out, cfg.rescore_changed)   # the files' bytes, not only their names
        store.clear_problems("manifest")   # the manifest's missing files are re-listed from this reading
        for path, reason in dict.fromkeys(dataset.problems):   # a file listed twice is one problem
            store.add_problem(path, path, "manifest", reason)
        if cfg.retry_problems:
            n = store.clear_problems("read", "perturb", "nonfinite", "score")
            log.info("--retry-problems: %d recorded problems will be tried again", n)
        models = list(cfg.models)
        speakers = _speakers(dataset)
        total = _count_scores(conditions, dataset, store, models, split)
        prev = _read_json(out / "run.json")
        if not total and prev.get("status") == "complete":
            # a finished run given again: nothing to score, so no detector is loaded (warm re-runs are cheap)
            log.info("%s: every score is already stored; rewriting the tables", out)
            return _finish(out, store, suite, conditions, cfg, prev, dataset, speakers, skipped)
        # Under Ray the scoring device is the workers' (they resolve "auto" themselves); the driver only
        # loads the detectors on its CPU for provenance.
        device = resolve_device(cfg.device) if cfg.executor == "local" else cfg.device
        sr = _sample_rate(models)
        workers = cfg.workers if cfg.workers is not None else default_workers(device)
        on_device = cfg.executor == "local" and (
            cfg.prepare_on == "device" or (cfg.prepare_on == "auto" and str(device).startswith("cuda")))
        if cfg.prepare_on == "device" and not on_device:
            log.warning("--prepare-on device applies to the local executor; Ray's CPU tasks prepare the audio")
        spec = ScorerSpec(tuple(cfg.models), cfg.checkpoint, device, str(policy), cfg.batch_size, cfg.seed,
                          label_map=cfg.label_map, precision=cfg.precision, compile=cfg.compile)
        if cfg.executor == "local":
            spec.inference.check_device(device)   # fp16 on a CPU: refused before the workers start
        prov: dict[str, Any] = {}
        scorers: list[Scorer] = []

        def build_scorer() -> Scorer:
            """Loads the detectors; the local executor calls this once its workers are busy preparing."""
            scorer = Scorer(spec if cfg.executor == "local" else replace(spec, device="cpu", precision="fp32",
                                                                           compile="off"))
            check_loaded(ident, scorer.loaded)   # the weights loaded are those the run is bound to
            for ld in scorer.loaded:
                if ld.detector.sample_rate != sr:
                    raise ValueError(f"model {ld.name}: its class declares sample_rate {sr} but the loaded "
                                     f"detector runs at {ld.detector.sample_rate} Hz; declare the rate as the "
                                     "class attribute `sample_rate`")
            prov.update(run_provenance(cfg, suite, policy, dataset, scorer.loaded, device, out, workers),
                        perturbation_weights=list((resources_used or {}).values()))
            prov["config"]["resolved_prepare_on"] = "device" if on_device else "cpu"
            prov["config"]["resolved_shard_size"] = size
            _write_json(out / "run.json", {**prov, "status": "running"})
            scorers.append(scorer)
            log.info("%s: %d conditions x %d utterances x %d models; %d scores to compute", out,
                     len(conditions), len(dataset.utterances), len(scorer.loaded), total)
            return scorer

        bona = [(u.utt_id, str(u.path)) for u in dataset.utterances if u.label == "bonafide"]
        size = cfg.shard_size or (256 if str(device).startswith("cuda") else 32)   # GPU batches can fill
        seen: set[tuple] = set()
        timing: dict[str, float] = {}
        while True:   # once, or again after a served detector that went away answers again (--wait-for-service)
            # lazy: memory does not grow with the set
            units = _units(cfg, conditions, dataset, store, models, on_device=on_device, split=split, size=size)
            try:
                with _Progress(show_progress, total, progress) as bar, make_executor(
                        cfg.executor, workers=workers, seed=cfg.seed, sr=sr, bonafide=bona,
                        resources=cfg.resources, scorer_spec=spec, address=cfg.address, cache_dir=cfg.cache_dir,
                        codec_device=device if cfg.executor == "local" else None, max_seconds=cfg.max_seconds) as ex:
                    # local: the detectors load while the workers start; Ray scores remotely and the driver's
                    # copy (on its CPU) only gives the provenance
                    scorer = scorers[0] if scorers else build_scorer if cfg.executor == "local" else build_scorer()
                    try:
                        for res in ex.run(units, scorer):
                            _store_result(store, res, seen)
                            bar.describe(f"{res.unit.condition.family}@{res.unit.condition.severity}")
                            bar.advance(res.unit.n_scores)
                    finally:
                        for k, v in getattr(ex, "timing", {}).items():
                            timing[k] = timing.get(k, 0.0) + v
                break
            except Exception as e:
                if not unavailable(e):
                    raise
                after_outage(e, cfg, ident, out, {**prev, **prov}, store.n_scores(),   # waits, or raises
                             _count_scores(conditions, dataset, store, models, split))
                total = _count_scores(conditions, dataset, store, models, split)
        if cfg.executor == "local" and scorers:   # what the engines chose and measured (Ray: in its actors)
            prov["inference"] = scorers[0].inference_report()
            prov["timing"] = timing_summary(timing, prev.get("timing"))
        result = _finish(out, store, suite, conditions, cfg, {**prov, "status": "complete",
                                                              "elapsed_s": round(time.time() - started, 2)},
                         dataset, speakers, skipped)
    return result


def default_workers(device: str) -> int:
    """Preparation workers when --workers is not given. On the CPU scoring needs the cores and preparation
    is light beside it (5-30% of a score's CPU), so at most 4; with a GPU scoring the CPU only prepares,
    so every core but the scoring process's one."""
    cores = os.cpu_count() or 2
    if str(device).startswith("cuda"):
        return max(1, min(32, cores - 1))
    return max(1, min(4, cores - 1))


def _store_result(store: Store, res, seen: set[tuple]) -> None:
    """Commits one unit's rows; logs each distinct failure reason once (every one is in problems.csv)."""
    changed = store.conflicting_files(res.files)
    if changed:
        raise ValueError(f"{', '.join(changed[:5])}: the audio changed while this run was scoring it (another "
                         "sha256 than when it was first read); give the command again (--rescore-changed scores "
                         "the new content)")
    for prob in res.problems:
        store.add_problem(*prob)
        if prob[2] == "level":   # a usable input with a warning (logged by its worker)
            continue
        if (prob[2], prob[4], prob[5], prob[3]) not in seen:
            seen.add((prob[2], prob[4], prob[5], prob[3]))
            log.warning("%s failed for %s (%s@%s): %s (further such inputs: see problems.csv)",
                        prob[2], prob[0], prob[4] or "-", prob[5], prob[3])
    store.add_scores(res.scores, res.quality, res.segments, res.files)


def _sample_rate(models: list[str]) -> int:
    from models import declared_sample_rate

    rates = {m: declared_sample_rate(m) for m in models}
    if len(set(rates.values())) != 1:
        raise ValueError(f"models with different sample rates in one run are not supported: {rates}")
    return next(iter(rates.values()))


def _speakers(dataset) -> dict[str, str] | None:
    """utt_id -> speaker when the data names speakers (then CIs resample whole speakers), else None."""
    from bench.run.results import MIN_SPEAKERS

    sp = {u.utt_id: u.speaker for u in dataset.utterances}
    known = {s for s in sp.values() if s and s != "-"}
    if not known:
        return None
    if len(known) < MIN_SPEAKERS or not all(s and s != "-" for s in sp.values()):
        log.info("CIs resample utterances: the data names %d speakers%s (a speaker-cluster bootstrap needs %d, "
                 "named for every utterance)", len(known),
                 "" if all(s and s != "-" for s in sp.values()) else " and leaves some utterances without one",
                 MIN_SPEAKERS)
        return None
    return sp


class RunFailed(RuntimeError):
    """A run that finished without a usable result (nothing scored for some model); tables are written."""


def _finish(out: Path, store: Store, suite, conditions, cfg: RunConfig, prov: dict, dataset,
            speakers: Mapping[str, str] | None = None, skipped=()) -> RunResult:
    from bench.run.results import (by_attack_from_store, results_from_store, utterance_info, with_condition_columns,
                               with_info, write_tables)

    from bench.run.calibrated import deployment, write_calibrated_tables

    operating, cals = deployment(cfg.operating_point, cfg.calibration, cfg.models)
    problems = store.problems()
    from bench.run.segments import with_segment_eer

    results = with_segment_eer(results_from_store(store, suite.name, conditions, n_boot=cfg.n_boot, seed=cfg.seed,
                                                  speakers=speakers, operating=operating), store)
    info = utterance_info(dataset.utterances)
    by_attack = by_attack_from_store(store, suite.name, conditions, info, n_boot=cfg.n_boot, seed=cfg.seed)
    scores = with_info(with_condition_columns(store.iter_scores(), conditions), info)
    write_tables(out, results, scores, problems, by_attack)
    write_skipped(out, skipped)
    prov = {**{k: v for k, v in prov.items() if k not in ("calibration", "operating_point")},
            **write_calibrated_tables(out, cals, operating, results, cfg.calibration)}   # this command's own
    if isinstance(prov.get("config"), dict):   # a finished run given again keeps its config, but not these
        prov["config"] = {**prov["config"], "calibration": list(cfg.calibration),
                          "operating_point": cfg.operating_point}
    why = _failure(cfg, conditions, store, problems, results, out)
    prov = {**prov, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_scores": store.n_scores(), "n_problems": len(problems),
            "bootstrap": "speaker clusters" if speakers else "utterances", "skipped": list(skipped)}
    if why:
        prov.update(status="failed", failure=why)
    _write_json(out / "run.json", prov)
    if why:
        raise RunFailed(why)
    return RunResult(out, results, problems, prov)


def _failure(cfg: RunConfig, conditions, store: Store, problems: pd.DataFrame, results: pd.DataFrame,
             out: Path) -> str | None:
    """Why a run that went to its end has no usable result, or None: a model with no score at all, a condition
    that could not run for any clip (e.g. its perturbation failed on every one), or no condition with an EER."""
    groups = store.groups()
    bad = problems[problems["stage"] != "level"] if len(problems) else problems
    where = f"(every one is in {out / 'problems.csv'})"
    empty = [m for m in cfg.models if m not in {g[0] for g in groups}]
    if empty:
        first = f"; first reason: {bad.iloc[0]['reason']}" if len(bad) else ""
        return f"nothing could be scored for {', '.join(empty)}: {len(bad)} inputs failed{first} {where}"
    have = {(f, int(sev)) for _m, f, sev in groups}
    missing = [c for c in conditions if (c.family, int(c.severity)) not in have]
    if missing:
        c = missing[0]
        own = bad[(bad["family"] == c.family) & (bad["severity"] == c.severity)] if len(bad) else bad
        first = f": {own.iloc[0]['reason']}" if len(own) else ""
        names = ", ".join(f"{x.family}@{x.severity}" for x in missing[:5])
        return (f"{len(missing)} condition(s) could not run for any clip ({names}); {c.family}@{c.severity} "
                f"failed{first} {where}")
    if len(results) and not np.isfinite(results["eer"].astype(float)).any():
        nb, ns = int(results["n_bonafide"].max()), int(results["n_spoof"].max())
        return (f"no condition has an EER: the scored clips hold {nb} bona fide and {ns} spoof at most per "
                "condition, and an EER needs both classes (a larger --limit, or data with both labels)")
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
