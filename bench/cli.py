"""`bench`: the command line, a thin layer over :mod:`bench.api`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from bench.run.options import (add_max_seconds, add_reliability_options, incomplete_exit, max_seconds as _max_seconds,
                                reliability_kwargs, resources as _resources)
from bench.terminal import print_json as _print_json, strict_json, table as _table

log = logging.getLogger("bench")

EPILOG = """examples:
  bench models                                  list detectors and checkpoint cards
  bench score --model aasist clip.wav           score a file (higher = more bona fide)
  bench perturbations                           list perturbation families and ladders
  bench perturb --family mp3 --severity 3 in.wav out.wav
  bench perturb --family encodec --severity 5 --param checkpoint=FOLDER in.wav out.wav
  bench weights encodec dac                     fetch the neural codecs' weights ahead
  bench weights rawnet2                         download the ASVspoof 2021 RawNet2 (sha256 recorded on first use)
  bench run --suite compression                 the main job, on the built-in demo set
  bench run --suite noise --model aasist,aasist-l --data manifest.csv --limit 200
  bench report runs/<folder>                    tables, plots and an HTML page
  bench serve --model aasist-l --port 8000      serve a detector over HTTP (127.0.0.1 only)
  bench run --suite blackbox --model http://127.0.0.1:8000 --limit 8
                                                black-box attacks against a served detector

Checkpoints are looked up in --checkpoint, then $BENCH_WEIGHTS_DIR, then the user cache
(~/.cache/deepfake-bench, downloaded with sha256 verification when online; `bench weights` fills it
ahead of time, e.g. `bench weights --from ../shared/weights`)."""


LABEL_MAP_HELP = ("names the bona fide and spoof classes of hf: models whose config.id2label does not (or that "
                  "have more than two classes), e.g. bonafide=LABEL_1,spoof=LABEL_0 (a label or a class index); "
                  "other models ignore it")


def cmd_models(a: argparse.Namespace) -> int:
    from bench import api

    df = api.models()
    if a.json:
        _print_json(df.to_dict(orient="records"))
    else:
        rows = df.to_dict(orient="records")
        hf = [r for r in rows if str(r.get("name", "")).startswith("hf:")]
        _table([r for r in rows if r not in hf],
               ["name", "architecture", "params", "training_data", "published_eer", "licence", "checkpoint",
                "weights"],
               "Detectors and checkpoints")
        if hf:
            _table(hf, ["name", "architecture", "revision", "labels", "checkpoint"],
                   "Hugging Face models in the user cache (--model hf:ID@REVISION)")
    return 0


def _remote(models: str, output: str | None) -> str:
    """``--remote-output decision``: the same as ``?output=decision`` on every http(s):// model spec."""
    if not output:
        return models
    out = []
    for m in (x.strip() for x in models.split(",")):
        if m.lower().startswith(("http://", "https://")) and "output=" not in m:
            m += ("&" if "?" in m else "?") + f"output={output}"
        out.append(m)
    return ",".join(out)


def cmd_score(a: argparse.Namespace) -> int:
    from bench import api

    if getattr(a, "timeline", False):   # bench score --timeline: bench/commands/timeline.py
        from bench.commands.timeline import cmd_timeline

        a.model = _remote(a.model, a.remote_output)
        return cmd_timeline(a)

    if a.label_map:   # models.hf imports torch: only when there is a map to check
        from models.hf import check_label_map

        check_label_map(a.label_map, [a.model])
    df = api.score_files(_remote(a.model, a.remote_output), a.files, checkpoint=a.checkpoint, policy=a.policy,
                         device=a.device, batch_size=a.batch_size, label_map=a.label_map,
                         precision=a.precision, compile=a.compile, max_seconds=_max_seconds(a.max_seconds))
    rows = [{**r, "error": r["error"] if isinstance(r["error"], str) and r["error"] else None}
            for r in df.to_dict(orient="records")]   # a missing error may come back as NaN (truthy)
    if a.calibration:   # llr and decision at the calibration's Bayes threshold
        from bench.commands.calibrate import with_llr

        rows = with_llr(rows, a.calibration, a.model)
    for r in rows:
        if r["error"]:
            log.error("%s", r["error"])
    if a.json:
        _print_json(rows)
    else:
        for r in rows:
            extra = f"\t{r['llr']:.6f}\t{r['decision']}" if r.get("llr") is not None else ""
            sys.stdout.write(f"{r['path']}\t{'ERROR' if r['error'] else format(r['score'], '.6f')}{extra}\n")
    return 1 if any(r["error"] for r in rows) else 0


def cmd_perturbations(a: argparse.Namespace) -> int:
    from bench import api

    fams = api.perturbations()
    if a.json:
        _print_json(fams)
        return 0
    rows = [{"family": f["family"], **{f"s{l['severity']}": ", ".join(f"{k}={v}" for k, v in l["params"].items())
                                       for l in f["levels"]}} for f in fams]
    _table(rows, ["family", "s1", "s2", "s3", "s4", "s5"], "Perturbation families (severity 0 = clean)")
    return 0


def cmd_perturb(a: argparse.Namespace) -> int:
    from bench import api

    info = api.perturb_file(a.family, a.severity, a.input, a.output, seed=a.seed, resources=_resources(a),
                            sample_rate=a.sample_rate, params=_params(a.param))
    if a.json:
        sys.stdout.write(strict_json(info, indent=None) + "\n")
    else:
        sys.stdout.write(f"wrote {info['out']}: {a.family} severity {a.severity} ({info['level_label']}), "
                         f"{info['duration_s']:.2f} s at {info['sample_rate']} Hz, seed {a.seed}\n")
    return 0


def cmd_suites(a: argparse.Namespace) -> int:
    from bench import api

    items = api.suites()
    if a.json:
        _print_json(items)
    else:
        _table([{**s, "families": ", ".join(s["families"])} for s in items],
               ["name", "n_conditions", "policy", "families", "description"], "Suites")
    return 0


def _params(items: Sequence[str] | None) -> dict[str, Any]:
    """``--param NAME=VALUE`` (repeatable): values are YAML scalars (3, 0.5, true, null, text)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE, e.g. --param bitrate=32000")
        try:
            out[name.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as e:
            raise ValueError(f"--param {item!r}: the value is not a YAML scalar ({e})") from e
    return out


def cmd_run(a: argparse.Namespace) -> int:
    from bench import api
    from bench.commands.summary import render

    models = tuple(m.strip() for m in _remote(a.model, a.remote_output).split(",") if m.strip())
    if a.label_map:   # models.hf imports torch, which a finished run given again never needs
        from models.hf import check_label_map

        check_label_map(a.label_map, models)
    try:
        res = api.run(a.suite, models=models, checkpoint=a.checkpoint, data=a.data, out=a.out, limit=a.limit,
                      seed=a.seed, device=a.device, batch_size=a.batch_size, executor=a.executor, address=a.address,
                      workers=a.workers, policy=a.policy, resources=_resources(a),
                      cache_dir=a.cache, prepare_on=a.prepare_on, label_map=a.label_map,
                      trust_code=a.trust_code, retry_problems=a.retry_problems, precision=a.precision,
                      compile=a.compile, calibration=a.calibration, operating_point=a.operating_point,
                      **reliability_kwargs(a))
    except Exception as e:   # a detector that stopped answering: not a failure of the inputs; try again later
        return incomplete_exit(e)   # anything else is raised again
    render(res, {"data_name": res.provenance.get("data", {}).get("name", a.data), "demo": a.data == "demo"})
    return 0


REMOTE_HELP = ("for http(s):// models: what the service answers, score (default) or decision (bona fide / spoof "
               "only; scores become +1 / -1); the same as ?output=decision on the spec")


def add_inference_options(s: argparse.ArgumentParser) -> None:
    from bench.scoring.engine import COMPILE_MODES, PRECISIONS

    s.add_argument("--batch-size", default="auto", metavar="N|auto",
                   help="windows scored per batch; auto (default): 8 on a CPU, on a GPU the largest power of two "
                   "up to 256 that fits in 60%% of the free memory (measured by one probe batch); a batch that runs "
                   "out of memory is split and the smaller size kept (checked with the other options, before any work)")
    s.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="scoring arithmetic: fp32 (default, the reference), bf16 (autocast; CPU or GPU) or fp16 "
                   "(GPU); changes the scores, so it is part of the run's identity; the first batch's difference "
                   "to fp32 is measured and recorded in run.json. Attacks always craft in fp32")
    s.add_argument("--compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile the detectors for scoring: off (default); on = CUDA graphs "
                   "(reduce-overhead) on a GPU, inductor's default on a CPU (does not pay there); or a mode. "
                   "The first batch is checked against eager scoring (max difference 1e-4 in fp32), else the run "
                   "scores eagerly with a warning")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="Robustness and adversarial evaluation of audio "
                                "deepfake (anti-spoofing) detectors: EER under codecs, rooms, noise, "
                                "channels and attacks.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    from bench.commands.calibrate import add_run_options, add_score_options

    s = sub.add_parser("models", help="list detectors and known checkpoints")
    s.add_argument("--json", action="store_true", help="print a JSON array")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("score", help="score audio files with one detector")
    s.add_argument("--model", default="aasist", help="card name (see `bench models`), package.module:Class, or "
                   "hf:ID_OR_FOLDER[@REVISION] (a Hugging Face audio classifier), http://HOST:PORT (a detector "
                   "served by `bench serve`), or fuse:M1+M2@FILE.json (a linear fusion fitted by `bench calibrate "
                   "--fuse`); a class spec imports and runs that module: trusted code only")
    s.add_argument("--label-map", metavar="bonafide=LABEL,spoof=LABEL", help=LABEL_MAP_HELP)
    s.add_argument("--checkpoint", help="checkpoint file (.pth/.pt read with weights_only=True, or .safetensors)")
    s.add_argument("--remote-output", choices=["score", "decision"], help=REMOTE_HELP)
    s.add_argument("--policy", help="input policy: official (first 64600 samples, short clips tiled), full "
                   "(whole utterance by windows), e.g. full:hop=32000,agg=mean, or whole (the clip as it is up to "
                   "the model's maximum, hf: models); default: the card's")
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    add_inference_options(s)
    s.add_argument("--json", action="store_true", help="print a JSON array of {path, score, ...}")
    add_max_seconds(s)
    s.add_argument("files", nargs="+", metavar="FILE", help="wav, flac, mp3, ogg, m4a ... at any rate")
    add_score_options(s)
    from bench.commands.timeline import add_options as add_timeline_options

    add_timeline_options(s)
    s.set_defaults(func=cmd_score)

    from bench.commands.weights import add_parser as add_weights_parser

    add_weights_parser(sub)

    s = sub.add_parser("perturbations", help="list perturbation families and their severity ladders")
    s.add_argument("--json", action="store_true", help="print a JSON array")
    s.set_defaults(func=cmd_perturbations)

    s = sub.add_parser("perturb", help="apply one perturbation level to one file (to listen to it)")
    s.add_argument("--family", required=True)
    s.add_argument("--severity", type=int, required=True, help="0 (clean) .. 5 (harshest)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sample-rate", type=int, default=16000, help="rate the audio is processed and written at")
    s.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a parameter of the level (repeatable; YAML scalars), e.g. --param bitrate=32000 "
                   "or --param checkpoint=FOLDER for a neural codec")
    s.add_argument("--noise-dir", help="folder of noise files (background-noise); or $BENCH_NOISE_DIR")
    s.add_argument("--rir-dir", help="folder of measured impulse responses (rir); or $BENCH_RIR_DIR")
    s.add_argument("--device-ir-dir", help="folder of measured loudspeaker-to-microphone responses (replay with "
                   "measured: true); or $BENCH_DEVICE_IR_DIR")
    s.add_argument("--json", action="store_true", help="print what was done as JSON")
    s.add_argument("input", metavar="IN")
    s.add_argument("output", metavar="OUT", help="a lossless file (.wav, .flac); lossy formats are refused")
    s.set_defaults(func=cmd_perturb)

    s = sub.add_parser("suites", help="list suites and what they contain")
    s.add_argument("--json", action="store_true", help="print a JSON array")
    s.set_defaults(func=cmd_suites)

    s = sub.add_parser("run", help="the main job: a suite of conditions x data x detectors -> EER tables",
                       description="Runs a suite. The same command resumes an interrupted run: without --out the "
                       "folder name is derived from the configuration (runs/<suite>-<models>-<data>-<hash>).")
    s.add_argument("--suite", required=True, help="clean, compression, reverb, noise, channel, realworld, "
                   "neural-codec, adversarial, blackbox, all, or a YAML file")
    s.add_argument("--model", default="aasist", help="comma-separated models (default aasist): card names, "
                   "package.module:Class (imports and runs that module: trusted code only), "
                   "hf:ID_OR_FOLDER[@REVISION], fuse:M1+M2@FILE.json (a linear fusion from `bench calibrate --fuse`), "
                   "or http://HOST:PORT served by `bench serve` "
                   "(options: http://HOST:PORT?timeout=30&retries=3&budget=N&concurrency=4)")
    s.add_argument("--label-map", metavar="bonafide=LABEL,spoof=LABEL", help=LABEL_MAP_HELP)
    s.add_argument("--remote-output", choices=["score", "decision"], help=REMOTE_HELP)
    s.add_argument("--checkpoint", help="checkpoint for the model (one model only)")
    s.add_argument("--data", default="demo", help="demo (built in), a CSV manifest, asvspoof2019-la:ROOT, "
                   "asvspoof2021-la:ROOT, asvspoof2021-df:ROOT, inthewild:ROOT, or a folder with bonafide/ spoof/")
    s.add_argument("--out", help="run folder (default: derived from the configuration under runs/)")
    s.add_argument("--limit", type=int, help="use N utterances, stratified by label with the seed")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    add_inference_options(s)
    s.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local (default) or ray (pip install 'deepfake-bench[ray]')")
    s.add_argument("--address", help="Ray cluster address for --executor ray (auto, HOST:PORT; default: "
                   "start a local cluster)")
    s.add_argument("--workers", type=int, help="audio preparation processes (default: cores - 1, at most 4 when "
                   "scoring on the CPU and 32 on a GPU; 0 = in-process)")
    s.add_argument("--policy", help="input policy, overriding the suite's (official, full, full:hop=...,agg=...)")
    s.add_argument("--noise-dir", help="folder of noise files (background-noise); or $BENCH_NOISE_DIR")
    s.add_argument("--rir-dir", help="folder of measured impulse responses (rir); or $BENCH_RIR_DIR")
    s.add_argument("--device-ir-dir", help="folder of measured loudspeaker-to-microphone responses (replay with "
                   "measured: true); or $BENCH_DEVICE_IR_DIR")
    s.add_argument("--trust-code", action="store_true",
                   help="allow a suite file to name Python classes (source: package.module:Class), which imports "
                   "and runs their code; refused without this flag")
    s.add_argument("--retry-problems", action="store_true",
                   help="try again the inputs recorded in problems.csv (unreadable, failed perturbation, non-finite "
                   "score), e.g. after repairing the files; by default a resume skips them")
    s.add_argument("--cache", metavar="DIR", default=os.environ.get("BENCH_AUDIO_CACHE"),
                   help="cache perturbed audio here (keyed by utterance, condition, seed and perturbation "
                   "version) so re-runs and other detectors reuse it; or $BENCH_AUDIO_CACHE; default off")
    s.add_argument("--prepare-on", default="auto", choices=["auto", "device", "cpu"],
                   help="where perturbations that can run in torch (noise, rooms, impulse responses, gain, "
                   "clipping, quantisation, packet loss, resampling, the telephone channel) are applied: on the scoring device, or in the CPU workers; auto "
                   "(default) = device when scoring on a GPU. Codecs always run in the CPU workers.")
    add_reliability_options(s)
    add_run_options(s)
    s.set_defaults(func=cmd_run)

    from bench.serve.cli import add_parser as add_serve_parser

    add_serve_parser(sub, LABEL_MAP_HELP)

    from bench.train.cli import add_parser as add_train_parser

    add_train_parser(sub)

    from bench.commands.calibrate import add_parser as add_calibrate_parser

    add_calibrate_parser(sub)

    from reports.cli import add_parser as add_report_parser

    for name in ("report", "compare", "check"):
        add_report_parser(sub, name)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(a.verbose, 2)]
    if a.command == "run":
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not a.command:
        p.print_help()
        return 2
    try:
        return int(a.func(a) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; what was computed is kept: give the same command to resume\n")
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI turns errors into one clear line; -vv shows the trace
        if a.verbose >= 2:
            raise
        sys.stderr.write(f"bench: error: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
