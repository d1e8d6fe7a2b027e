"""The importable API behind the CLI; every function returns plain data or pandas DataFrames."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.run.runner import RunConfig, RunResult
from bench.run.runner import run as _run
from foundation.device import fast_inference_enabled, resolve_device

log = logging.getLogger(__name__)

__all__ = ["models", "perturbations", "suites", "score_files", "score_timeline", "perturb_file", "run", "train",
           "calibrate", "RunConfig", "RunResult"]


def models() -> pd.DataFrame:
    """Detectors and known checkpoints (one row per card)."""
    from models import list_cards

    from foundation.weights import availability

    rows = []
    for c in list_cards():
        where, recorded = availability(c)   # no hashing, no network
        rows.append({"name": c.name, "architecture": c.architecture, "params": c.params,
                     "training_data": c.training_data, "published_eer": c.published_eer,
                     "licence": c.licence, "checkpoint": c.filename, "url": c.url, "sha256": c.sha256,
                     "input_policy": c.input_policy, "description": c.description,
                     "weights": where + (f" (sha256 {recorded[:12]}..., recorded at first download)"
                                         if recorded else ""),
                     "recorded_sha256": recorded})
    from models.hf import cached_models

    for r in cached_models():   # hf: models seen in the user cache, with their revision and labels
        rows.append({"params": None, "training_data": "", "published_eer": "", "licence": "", "url": None,
                     "weights": "cached",
                     "input_policy": "whole", "description": f"Hugging Face checkpoint; labels {r['labels']}",
                     **r})
    df = pd.DataFrame(rows).astype(object)
    return df.where(df.notna(), None)   # card rows have no revision/labels: null, not NaN, in --json


def perturbations() -> list[dict[str, Any]]:
    """Families with their severity ladders: ``[{"family", "levels": [{"severity", "params"}], ...}]``."""
    from perturbations import PERTURBATIONS, families

    out = []
    for name in families():
        cls = PERTURBATIONS.get(name)
        out.append({"family": name, "version": cls.version, "description": cls.describe(),
                    "levels": cls.levels()})
    return out


def suites() -> list[dict[str, Any]]:
    from bench.suites.suite import builtin_names, load_suite

    out = []
    for name in builtin_names():
        s = load_suite(name)
        conds = s.expand()
        out.append({"name": s.name, "description": s.description, "policy": s.policy,
                    "families": list(dict.fromkeys(c.family for c in conds)),
                    "n_conditions": len(conds), "sha256": s.sha256})
    return out


def score_files(model: str, files: Sequence[str | Path], checkpoint: str | None = None,
                policy: str | None = None, device: str = "auto", batch_size: int | str = "auto",
                label_map: str | None = None, precision: str = "fp32", compile: str = "off",
                max_seconds: float | None = 600.0) -> pd.DataFrame:
    """Scores audio files (any rate, channels, common formats). Unreadable files, and files the detector gives a
    non-finite score, get a NaN score and an ``error``; a usable file with a level warning (silent, too short,
    channels that cancel, far above full scale: as ``bench run`` records them) gets a ``warning``. Files longer
    than ``max_seconds`` are refused before decoding (None: no limit). ``batch_size``, ``precision`` and
    ``compile`` as in :mod:`bench.scoring.engine`."""
    from foundation.audio import AudioError, load_audio
    from foundation.device import check_inference_options
    from models import load_detector

    from bench.run.inputs import level_notes
    from bench.scoring.score import score_clips

    dev = resolve_device(device)
    check_inference_options(batch_size, precision, compile, dev)
    ld = load_detector(model, checkpoint=checkpoint, device=dev, fast_inference=fast_inference_enabled(),
                       label_map=label_map)
    wavs, rows = [], []
    for f in files:
        try:
            wav, info = load_audio(f, target_sr=ld.detector.sample_rate, max_seconds=max_seconds)
            wavs.append(wav)
            warning = "; ".join(level_notes(wav, ld.detector.sample_rate, info.channel_rms)) or None
            if warning:
                log.warning("%s: %s", f, warning)
            rows.append({"path": str(f), "duration_s": info.duration_s, "orig_sr": info.orig_sr, "error": None,
                         "warning": warning})
        except AudioError as e:
            rows.append({"path": str(f), "duration_s": None, "orig_sr": None, "error": str(e), "warning": None})
    # one pass through the scoring part: windows -> batches -> scores
    values, pol = score_clips(ld.detector, wavs, policy or ld.card.input_policy, batch_size=batch_size,
                              precision=precision, compile=compile, device=dev, name=ld.name)
    scores = iter(values)
    for r in rows:
        r["score"] = float(next(scores)) if r["error"] is None else float("nan")
        if r["error"] is None and not np.isfinite(r["score"]):   # as bench run records it: never a silent "nan"
            r["error"] = f"{r['path']}: the detector returned a non-finite score ({r['score']})"
        r.update(model=ld.name, policy=str(pol), checkpoint_sha256=ld.sha256)
    df = pd.DataFrame(rows, columns=["path", "score", "model", "policy", "duration_s", "orig_sr",
                                     "checkpoint_sha256", "error", "warning"])
    for col in ("error", "warning"):   # None, never NaN
        df[col] = pd.Series([r[col] for r in rows], index=df.index, dtype=object)
    return df


def score_timeline(model: str, files: Sequence[str | Path], window: float | None = None, hop: float = 0.5,
                   checkpoint: str | None = None, device: str = "auto", batch_size: int | str = "auto",
                   label_map: str | None = None, precision: str = "fp32", compile: str = "off",
                   threshold: float | None = None, max_seconds: float | None = 600.0) -> pd.DataFrame:
    """Scores of sliding windows over each file (``bench score --timeline``): one row per window with ``path``,
    ``start_s``, ``end_s``, ``score`` (and ``decision``, bona fide iff score >= ``threshold``, when one is given),
    ``model``, ``error``. ``window``/``hop`` in seconds (window default: the detector's input length); windows
    are placed as :mod:`bench.scoring.timeline` says. An unreadable file (or one longer than ``max_seconds``,
    None: no limit) is one row with its error."""
    from foundation.audio import AudioError, load_audio
    from foundation.device import check_inference_options
    from models import load_detector

    from bench.scoring.engine import Engine, InferenceOptions
    from bench.scoring.timeline import DEFAULT_HOP_S, score_timeline as _timeline, seconds_to_samples, window_samples

    if threshold is not None and not (isinstance(threshold, (int, float)) and np.isfinite(threshold)):
        raise ValueError(f"--threshold must be a finite number, got {threshold!r}")
    dev = resolve_device(device)
    check_inference_options(batch_size, precision, compile, dev)
    ld = load_detector(model, checkpoint=checkpoint, device=dev, fast_inference=fast_inference_enabled(),
                       label_map=label_map)
    sr = int(ld.detector.sample_rate)
    win = window_samples(ld.detector, window)
    step = seconds_to_samples(DEFAULT_HOP_S if hop is None else hop, sr, "--hop")
    engine = Engine(ld.detector, InferenceOptions(batch_size, precision, compile), dev, ld.name)
    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            wav, _info = load_audio(f, target_sr=sr, max_seconds=max_seconds)
        except AudioError as e:
            rows.append({"path": str(f), "start_s": float("nan"), "end_s": float("nan"), "score": float("nan"),
                         "error": str(e)})
            continue
        for r in _timeline(ld.detector, wav, win, step, engine=engine).rows():
            bad = None if np.isfinite(r["score"]) else (f"{f}: the detector returned a non-finite score "
                                                          f"({r['score']}) for the window at {r['start_s']} s")
            rows.append({"path": str(f), **r, "error": bad})
    df = pd.DataFrame(rows, columns=["path", "start_s", "end_s", "score", "error"])
    if threshold is not None:
        df.insert(4, "decision", [None if not np.isfinite(v) else ("bonafide" if v >= threshold else "spoof")
                                  for v in df["score"]])
    df.insert(len(df.columns) - 1, "model", ld.name)
    df["error"] = pd.Series([r["error"] for r in rows], index=df.index, dtype=object)   # None, never NaN
    return df


def perturb_file(family: str, severity: int, src: str | Path, dst: str | Path, seed: int = 0,
                 resources: dict[str, str] | None = None, sample_rate: int = 16000,
                 pool_data: str = "demo", params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Applies one perturbation level to one file and writes the result (so a person can listen).

    The input is first brought to ``sample_rate`` (the detectors' 16 kHz by default), so the file
    is what a detector would hear under that condition. Babble draws its talkers from the bona
    fide utterances of ``pool_data`` (a data spec; the built-in demo set by default). ``params``
    overrides the level's parameters (``bench perturb --param NAME=VALUE``).
    """
    from foundation.audio import load_audio, save_audio
    from bench.run.prepare import WorkerContext
    from foundation.seeding import rng_for
    from perturbations import make

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer 0..{2**32 - 1}, got {seed!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 1000 <= sample_rate <= 384000:
        raise ValueError(f"--sample-rate must be an integer number of Hz in 1000..384000, got {sample_rate!r}")
    if not str(dst).strip():
        raise ValueError("OUT is empty; give the file to write")
    check_lossless(dst)
    # a bad family, severity or parameter, or missing weights, are reported before any audio is read
    if params and int(severity) == 0:
        raise ValueError(f"{family}: severity 0 is the clean input and takes no --param")
    pert = make(family, severity, **(params or {}))
    pert.check_resources()
    wav, _info = load_audio(src, target_sr=sample_rate)
    utt = Path(src).stem
    bonafide: list[tuple[str, str]] = []
    if pert.needs_pool:
        from bench.data import load_dataset

        data = load_dataset(pool_data)
        bonafide = [(u.utt_id, str(u.path)) for u in data.utterances if u.label == "bonafide"]
    ctx = WorkerContext(seed, sample_rate, tuple(bonafide), dict(resources or {})).perturbation_context(utt)
    out = pert(wav, sample_rate, rng_for(seed, utt, pert.key()), ctx)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        log.warning("the output peaks at %.2f; it is scaled down by that factor for the file", peak)
        out = out / peak
    save_audio(dst, out, sample_rate)
    from bench.suites.labels import level_label

    spec = pert.to_dict()
    return {"in": str(src), "out": str(dst), "perturbation": spec, "sample_rate": sample_rate,
            "duration_s": round(len(out) / sample_rate, 3),
            "level_label": level_label(spec.get("params", {})) if severity else "clean"}


#: output formats written without loss (anything else would encode the perturbed audio once more)
LOSSLESS = (".wav", ".flac", ".aiff", ".aif")


def check_lossless(dst: str | Path) -> None:
    """Refuses an output file whose format is lossy (mp3, ogg, m4a, ...) or unknown, naming the way out."""
    suffix = Path(dst).suffix.lower()
    if suffix not in LOSSLESS:
        what = f"{suffix[1:]} is a lossy or unsupported format" if suffix else "it has no extension"
        raise ValueError(f"{dst}: {what}, and writing it would change the perturbed audio again; "
                         f"give a lossless file ({', '.join(LOSSLESS[:2])}), e.g. {Path(dst).with_suffix('.wav')}")


def run(suite: str = "compression", *, models: Sequence[str] | str = ("aasist",), checkpoint: str | None = None,
        data: str = "demo", out: str | Path | None = None, limit: int | None = None, seed: int = 0,
        device: str = "auto", batch_size: int | str = "auto", executor: str = "local", workers: int | None = None,
        policy: str | None = None, shard_size: int | None = None, n_boot: int = 1000, address: str | None = None,
        cache_dir: str | None = None, resources: Mapping[str, str] | None = None, prepare_on: str = "auto",
        label_map: str | None = None, trust_code: bool = False, retry_problems: bool = False,
        precision: str = "fp32", compile: str = "off", calibration: Sequence[str | Path] | str | None = None,
        operating_point: str | None = None, max_seconds: float | None = 600.0,
        rescore_changed: bool = False, wait_for_service: float | None = None, skip_unavailable: bool = False,
        progress: bool | Callable[[int, int, str], None] = True) -> RunResult:
    """Python mirror of ``bench run``; returns a :class:`RunResult` (``.results`` DataFrame, ``.scores``,
    ``.problems``, ``.provenance``, ``.out`` the run folder).

    Example: ``api.run("compression", models=("aasist", "aasist-l"), limit=16)``.

    Keyword arguments (as the CLI's options):
      models      detector names or specs (a comma-separated string also works); default ("aasist",)
      checkpoint  a checkpoint file for the (single) model
      data        demo (built in), a CSV manifest, asvspoof2019-la:ROOT, ..., or a folder
      out         run folder (default runs/<suite>-<models>-<data>-<hash>; the same call resumes)
      limit       use N utterances, stratified by label with the seed
      seed, device ("auto", "cpu", "cuda:1"), batch_size (windows, or "auto"), executor ("local" or "ray"),
      address (Ray)
      precision   scoring arithmetic "fp32" (default), "bf16" or "fp16" (GPU); part of the run's identity
      compile     "off" (default), "on" or a torch.compile mode, for scoring; checked against eager
      calibration CAL.json files from ``calibrate`` (one per model, or a fusion of run models): the run also
                  writes results_calibrated.csv (calibrated cllr, min_cllr, actdcf, min_dcf, eer per condition)
      operating_point  "far=1%", "frr=0.05", "eer", "threshold=T" or "bayes" (needs each model's calibration, or
                  a fuse: model): results.csv's operating_point, op_threshold, far_at_op, frr_at_op (+ CIs)
      workers     audio preparation processes (default from the device; 0 = in this process)
      policy      input policy overriding the suite's; shard_size (utterances per unit; default 32 on a CPU, 256 on a GPU, so
                  GPU batches can fill); n_boot (CI resamples)
      cache_dir   perturbed-audio cache shared by runs; resources ({"noise_dir": ..., "rir_dir": ...})
      prepare_on  where perturbations run: "device" (the scoring GPU, where a family can), "cpu", or "auto"
      label_map   for hf: models whose labels are not recognised: "bonafide=LABEL,spoof=LABEL"
      trust_code  allow a suite file to name Python classes (source: package.module:Class), which imports
                  and runs their code; refused otherwise
      retry_problems  try again the inputs recorded in problems.csv (e.g. after repairing files)
      max_seconds     audio files longer than this are refused before decoding (None: no limit)
      rescore_changed files whose content changed since they were scored are scored again (else refused)
      wait_for_service  seconds to wait for a served detector that stops answering (inf: no limit); None
                  (default): the run stops as incomplete (:class:`bench.run.outage.RunIncomplete`)
      skip_unavailable  a family that cannot run here (a missing system library or weights) is skipped and
                  named (run.json "skipped", skipped.csv, summary, report, check); False (default): refused
      progress    True: a progress bar on a terminal, log lines otherwise; False: quiet; or a function
                  ``progress(done, total, condition)`` called after every unit of work.

    Every option is validated before any work. Raises :class:`bench.run.runner.RunFailed` (the tables written)
    when nothing could be scored for a model.

    Safe at the top level of a script: the worker processes it spawns do not re-run your script, so no
    ``if __name__ == "__main__":`` guard is needed (one does no harm).
    """
    if isinstance(models, str):
        models = tuple(m for m in models.split(",") if m)
    from bench.scoring.engine import parse_batch_size

    batch_size = parse_batch_size(batch_size)   # "8" from the command line becomes 8 in run.json
    cfg = RunConfig(suite=suite, models=tuple(models), checkpoint=checkpoint, data=data,
                    out=str(out) if out is not None else None, limit=limit, seed=seed, device=device,
                    batch_size=batch_size, executor=executor, workers=workers, policy=policy, shard_size=shard_size,
                    n_boot=n_boot, address=address, cache_dir=cache_dir, resources=dict(resources or {}),
                    prepare_on=prepare_on, label_map=label_map, trust_code=trust_code,
                    retry_problems=retry_problems, precision=precision, compile=compile,
                    calibration=(calibration,) if isinstance(calibration, (str, Path)) else tuple(calibration or ()),
                    operating_point=operating_point, max_seconds=max_seconds,
                    rescore_changed=rescore_changed, wait_for_service=wait_for_service,
                    skip_unavailable=skip_unavailable)
    callback = progress if callable(progress) else None
    return _run(cfg, show_progress=progress is True, progress=callback)


def train(model: str, data: str, out: str | Path, *, progress: bool = True, **options: Any) -> pd.DataFrame:
    """``bench train``: trains or fine-tunes ``model`` on ``data`` into the folder ``out`` and returns metrics.csv
    (one row per epoch: ``epoch``, ``train_loss``, ``dev_eer``, ``lr``, ``seconds``, ...). ``options`` are
    :class:`bench.train.config.TrainConfig`'s fields (``epochs``, ``augment``, ``rawboost``, ``adversarial``,
    ``dev``, ``limit``, ``seed``, ...); the same call on the same folder resumes an interrupted training."""
    from bench.train.config import TrainConfig
    from bench.train.trainer import train as _train

    return _train(TrainConfig(model=model, data=str(data), out=str(out), **options), progress=progress)


def calibrate(run_dir: str | Path, model: str | Sequence[str] | None = None, condition: str = "clean",
              prior: float = 0.05, c_miss: float = 1.0, c_fa: float = 10.0, penalty: float | str = "auto",
              fuse: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """``bench calibrate``: fits ``llr = a * score + b`` for ``model`` (or, with ``fuse``, a linear fusion of the
    models ``model`` lists, all of the run's by default) on one condition of a finished run; returns the CAL.json
    content and writes it to ``out`` when given.

    ``prior`` is P(spoof) of the application (ASVspoof 5's Pspoof), with the costs ``c_miss`` (bona fide rejected)
    and ``c_fa`` (spoof accepted); the map is fitted at the bona fide effective prior of those three numbers
    (see :mod:`bench.run.calibrate`). ``penalty``: ``"auto"`` (none unless the condition is separable, then
    :data:`bench.run.calibrate.AUTO_PENALTY`, recorded) or a number >= 0."""
    from bench.run.calibrate import fit_calibration, fit_fusion, save_calibration

    if fuse:
        members = [model] if isinstance(model, str) else (list(model) if model is not None else None)
        if members is not None:
            members = [m.strip() for x in members for m in str(x).split(",") if m.strip()]
        cal = fit_fusion(run_dir, models=members, condition=condition, p_spoof=prior, c_miss=c_miss, c_fa=c_fa,
                         penalty=penalty)
    else:
        if model is not None and not isinstance(model, str):
            raise ValueError(f"model: name one model to calibrate (or pass fuse=True for several), got {model!r}")
        cal = fit_calibration(run_dir, model=model, condition=condition, p_spoof=prior, c_miss=c_miss, c_fa=c_fa,
                              penalty=penalty)
    if out is not None:
        save_calibration(cal, out)
    return cal
