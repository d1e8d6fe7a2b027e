"""`bench calibrate` and the deployment options of `bench run` / `bench score` (``--calibration``,
``--operating-point``): parsers and handlers, thin over :func:`bench.api.calibrate` and :mod:`bench.run.calibrated`.

bench/cli.py calls :func:`add_parser` once, :func:`add_run_options` on the run parser and
:func:`add_score_options` on the score parser.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """Fits a map from a detector's scores to natural-log likelihood ratios (llr = a * score + b) on one
condition of a finished run (the clean one by default: calibrated on clean data, deployed into the wild), by
prior-weighted logistic regression (BOSARIS's objective), and writes it as JSON (--out). With --fuse it fits a
linear fusion of two or more of the run's models instead (llr = w1 s1 + w2 s2 + ... + b; every member must have
scored the same utterances), usable as the detector --model fuse:M1+M2@FILE.json.

The application is ASVspoof 5's cost model: --prior is P(spoof) (ASVspoof 5's Pspoof, default 0.05), --c-miss
the cost of rejecting a bona fide trial (1), --c-fa the cost of accepting a spoof (10). The map is fitted at the
bona fide effective prior of that application, (1-P) Cmiss / ((1-P) Cmiss + P Cfa) = 0.655 by default, whose Bayes
threshold (-ln 1.9) is where ASVspoof 5 reads actDCF; the file records all of them.

Use the file with: bench run ... --calibration FILE, bench report RUN --calibration FILE (both write
results_calibrated.csv: cllr, min_cllr, actdcf, min_dcf, eer per model x condition), bench score --calibration
FILE --json (adds llr and decision), bench run ... --operating-point bayes."""

OP_HELP = ("a deployed threshold, chosen on each model's clean condition and kept for every condition: far=1%% "
           "(the lowest threshold whose FAR is at most 1%%; also far=0.01), frr=5%%, eer, threshold=T (a fixed "
           "score), or bayes (the Bayes decision of the model's --calibration, or of a fuse: model's file). "
           "results.csv gains operating_point, op_threshold, far_at_op, frr_at_op and their bootstrap CIs")


def add_parser(subparsers) -> argparse.ArgumentParser:
    s = subparsers.add_parser("calibrate", help="fit a score -> log-likelihood-ratio map (or a fusion) on a run",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (scores.csv)")
    s.add_argument("--model", help="the model to calibrate (needed when the run has several); with --fuse, the "
                   "members, comma-separated (default: every model of the run)")
    s.add_argument("--condition", default="clean", help="the condition to fit on: clean (default), a family with "
                   "one severity in the run, or FAMILY@SEVERITY")
    s.add_argument("--prior", type=float, default=0.05, metavar="P_SPOOF",
                   help="the spoof prior P(spoof) of the application (ASVspoof 5's Pspoof; default 0.05): the prior "
                   "of the SPOOF class, not of bona fide")
    s.add_argument("--c-miss", type=float, default=1.0, help="cost of rejecting a bona fide trial (default 1)")
    s.add_argument("--c-fa", type=float, default=10.0, help="cost of accepting a spoof (default 10)")
    s.add_argument("--penalty", default="auto", metavar="auto|LAMBDA",
                   help="L2 penalty on the weights of standardised scores: auto (default) = none, unless the "
                   "condition separates the classes perfectly (then the fit has no finite optimum and 0.001 is used, "
                   "recorded as penalty_auto in the file); or a number >= 0")
    s.add_argument("--fuse", action="store_true", help="fit a linear fusion of the run's models (see above)")
    s.add_argument("--out", required=True, metavar="FILE.json", help="where to write the calibration")
    s.add_argument("--json", action="store_true", help="print the written file's content")
    s.set_defaults(func=cmd_calibrate)
    return s


def cmd_calibrate(a: argparse.Namespace) -> int:
    from bench import api
    from bench.terminal import strict_json

    models = [m.strip() for m in a.model.split(",") if m.strip()] if a.model else None
    cal = api.calibrate(a.run_dir, model=models if a.fuse else a.model, condition=a.condition, prior=a.prior,
                        c_miss=a.c_miss, c_fa=a.c_fa, penalty=a.penalty, fuse=a.fuse, out=a.out)
    if a.json:
        sys.stdout.write(strict_json(cal) + "\n")
        return 0
    where = f"{cal['condition']['family']}@{cal['condition']['severity']}"
    if cal["kind"] == "fusion":
        what = " + ".join(f"{w:.6g} * [{m}]" for m, w in zip(cal["members"], cal["weights"]))
        before = ", ".join(f"{m} {v:.3f}" for m, v in cal["cllr_before"].items())
        sys.stdout.write(f"fusion llr = {what} + {cal['bias']:.6g}\n")
    else:
        sys.stdout.write(f"{cal['model']}: llr = {cal['map']['a']:.6g} * score + {cal['map']['b']:.6g}\n")
        before = f"{cal['cllr_before']:.3f}"
    sys.stdout.write(f"fitted on {where} ({cal['n_bonafide']} bona fide, {cal['n_spoof']} spoof) at P(spoof) "
                     f"{cal['costs']['p_spoof']:g}, Cmiss {cal['costs']['c_miss']:g}, Cfa {cal['costs']['c_fa']:g} "
                     f"(effective bona fide prior {cal['prior']:.3f})\n"
                     f"Cllr (bits): before {before}, after {cal['cllr_after']:.3f}, min (PAV) {cal['min_cllr']:.3f}\n")
    if cal["penalty_auto"]:
        sys.stderr.write(f"note: the scores separate the classes perfectly on {where}; fitted with the L2 penalty "
                         f"{cal['penalty']:g} (an unpenalised fit has no finite optimum)\n")
    sys.stdout.write(f"wrote {a.out}\n")
    return 0


def add_run_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--calibration", action="append", metavar="FILE.json",
                   help="a file from `bench calibrate` (repeatable: one per model, or a fusion of run models): "
                   "writes results_calibrated.csv (calibrated cllr, min_cllr, actdcf, min_dcf, eer per condition)")
    s.add_argument("--operating-point", metavar="far=1%|frr=R|eer|threshold=T|bayes", help=OP_HELP)


def add_score_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--calibration", metavar="FILE.json",
                   help="a file from `bench calibrate` for this model: adds llr (the calibrated log-likelihood "
                   "ratio) and decision (bonafide/spoof at its Bayes threshold) per file")


def with_llr(rows: list[dict[str, Any]], path: str, model: str) -> list[dict[str, Any]]:
    """``bench score --calibration``: each row with ``llr`` and ``decision`` (None where the file had no score).
    A calibration of model M applies to ``--model M``; a fusion file to ``--model fuse:...@`` that file, whose
    scores already are its llrs."""
    from pathlib import Path

    from bench.run.calibrate import load_calibration
    from bench.run.calibrated import bayes_threshold

    cal = load_calibration(path)
    if cal["kind"] == "calibration":
        if cal["model"] != model:
            raise ValueError(f"--calibration {path} is for model {cal['model']!r}, not {model!r}")
        a, b = cal["map"]["a"], cal["map"]["b"]
    else:
        from models.fusion import parse_spec

        spec = parse_spec(model) if model.lower().startswith("fuse:") else None
        if spec is None or Path(spec[1]).resolve() != Path(path).resolve():
            raise ValueError(f"--calibration {path} is a fusion of {cal['members']}: its llrs are the scores of "
                             f"--model fuse:{'+'.join(cal['members'])}@{path}, which needs no --calibration")
        a, b = 1.0, 0.0
    t = bayes_threshold(cal)
    out = []
    for r in rows:
        ok = not r.get("error") and r.get("score") is not None and r["score"] == r["score"]
        llr = a * float(r["score"]) + b if ok else None
        out.append({**r, "llr": llr, "decision": None if llr is None else ("bonafide" if llr >= t else "spoof")})
    return out
