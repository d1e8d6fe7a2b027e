"""The `bench report`, `bench compare` and `bench check` subcommands (thin over reports.*).

bench/cli.py calls :func:`add_parser` once per name. Exit codes: 0 done / passed, 1 the check failed,
2 unusable inputs (a missing or malformed run folder, runs that cannot be compared, no common condition).
"""
from __future__ import annotations

import argparse
import sys

from reports.load import RunError

REPORT_DESC = """Tables, plots and one self-contained HTML page for a finished run.
Writes into DIR/report/ (or --out): report.md and report.tex (EER against severity, one table per
family: rows = models, columns = clean then each level in its unit (16 kb/s, 10 dB SNR), cells
EER % [95% CI]; mean EER increase; mCE against a reference model when the run has several; EER per
spoof generator from results_by_attack.csv), report.html (every table and plot embedded, sortable
tables), degradation.csv and plots/*.png with .svg and .pdf beside each."""

COMPARE_DESC = """Several runs side by side (columns model@run), with differences against the first run.
A difference is marked * when significant: a paired bootstrap over utterances when both runs scored the
same utterances (scores.csv), else non-overlapping bootstrap CIs of the two EERs. Runs whose data or
conditions differ are refused unless --force. Writes compare.md, compare.html, compare.csv."""

CHECK_DESC = """Pass/fail gate: exit 0 when no condition's EER rose by more than X over the baseline run,
1 when some did or a baseline condition is missing from the new run (--allow-missing relaxes that),
2 when the inputs are unusable or not comparable (different data or suite, unless allowed).
Prints a table of every condition: baseline EER, new EER, the difference with its 95% paired-bootstrap
CI, and the verdict; the mode (threshold, or --significant) is named. Conditions are matched on
(family, severity) with the same level parameters; models by name, or in order when no name is shared."""


def _err(e: Exception) -> int:
    sys.stderr.write(f"bench: error: {e}\n")
    return 2


def cmd_report(a: argparse.Namespace) -> int:
    from reports.report import build_report

    try:
        rep = build_report(a.dir, out=a.out, reference=a.reference, plots=not a.no_plots, by=a.by or (),
                           style=a.style, calibration=a.calibration)
    except RunError as e:
        return _err(e)
    for n in rep.notes:
        sys.stderr.write(f"note: {n}\n")
    sys.stdout.write(f"{rep.files['report.html']}\n")
    n_plots = sum(k.startswith("plots/") and k.endswith(".png") for k in rep.files)
    sys.stderr.write(f"report written to {rep.out} (report.html, report.md, report.tex, degradation.csv, "
                     f"{n_plots} plots as PNG, SVG and PDF)\n")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from reports.compare import compare_runs, default_out, write_compare

    try:
        cmp = compare_runs(a.dirs, force=a.force, n_boot=a.n_boot, seed=a.seed)
        out = a.out or default_out(a.dirs)
        files = write_compare(cmp, out, plots=not a.no_plots, style=a.style)
    except RunError as e:
        return _err(e)
    for d in cmp.differences:
        sys.stderr.write(f"warning: compared with --force although {d}\n")
    for n in cmp.notes:
        sys.stderr.write(f"note: {n}\n")
    sys.stdout.write(f"{files['compare.html']}\n")
    sys.stderr.write(f"comparison written to {out} (compare.html, compare.md, compare.csv)\n")
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    from reports.check import check_runs
    from reports.check_format import format_result

    from bench.terminal import strict_json

    try:
        res = check_runs(a.dir, a.baseline, a.max_eer_increase, families=a.families, exclude=a.exclude_families,
                         max_far_increase=a.max_far_increase, mode="significant" if a.significant else "threshold",
                         allow_missing=a.allow_missing, allow_data_change=a.allow_data_change,
                         allow_suite_change=a.allow_suite_change, n_boot=a.n_boot, seed=a.seed)
    except RunError as e:
        return _err(e)
    if a.json:
        sys.stdout.write(strict_json(res.to_dict()) + "\n")
    else:
        sys.stdout.write(format_result(res) + "\n")
    return 0 if res.ok else 1


def _style_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--style", choices=["screen", "paper"], default="screen",
                   help="figure sizes: screen (default; for the HTML page) or paper (every figure one column of a "
                   "two-column article wide, 8.5 cm, no text under 6 pt; the PDFs go straight into a paper)")


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if name == "report":
        s = subparsers.add_parser("report", help="tables, plots and one HTML page for a run",
                                  description=REPORT_DESC, formatter_class=fmt)
        s.add_argument("dir", metavar="DIR", help="a run folder (results.csv, scores.csv, run.json)")
        s.add_argument("--out", help="output folder (default DIR/report)")
        s.add_argument("--reference", metavar="M",
                       help="reference model of the mCE (default: the run's first model)")
        s.add_argument("--no-plots", action="store_true", help="tables only (faster)")
        s.add_argument("--by", action="append", choices=["speaker", "language"], metavar="COLUMN",
                       help="add EER per speaker or language (manifest columns carried in scores.csv); repeatable")
        _style_option(s)
        s.add_argument("--calibration", action="append", metavar="FILE.json",
                       help="a file from `bench calibrate` (repeatable, one per model; or a fusion): writes "
                       "report/results_calibrated.csv (calibrated cllr, min_cllr, actdcf, min_dcf, eer per condition) "
                       "and plots actDCF and Cllr against severity beside the EER")
        s.set_defaults(func=cmd_report)
    elif name == "compare":
        s = subparsers.add_parser("compare", help="compare runs side by side", description=COMPARE_DESC,
                                  formatter_class=fmt)
        s.add_argument("dirs", nargs="+", metavar="DIR", help="run folders; the first is the reference")
        s.add_argument("--out", help="output folder (default: compare-<hash> beside the first run)")
        s.add_argument("--force", action="store_true", help="compare even when data or conditions differ")
        s.add_argument("--n-boot", type=int, default=200,
                       help="paired bootstrap resamples per condition (default 200; time grows with resamples x "
                       "utterances)")
        s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        s.add_argument("--no-plots", action="store_true", help="tables only (faster)")
        _style_option(s)
        s.set_defaults(func=cmd_compare)
    elif name == "check":
        s = subparsers.add_parser("check", help="pass/fail gate against a baseline run", description=CHECK_DESC,
                                  formatter_class=fmt)
        s.add_argument("dir", metavar="DIR", help="the new run folder")
        s.add_argument("--baseline", required=True, metavar="DIR0", help="the baseline run folder")
        s.add_argument("--max-eer-increase", required=True, type=float, metavar="X",
                       help="largest allowed EER rise, a fraction (0.01 = one EER point)")
        s.add_argument("--families", metavar="F1,F2",
                       help="check only these families (add clean for the clean condition)")
        s.add_argument("--exclude-families", metavar="F1,F2", help="skip these families")
        s.add_argument("--max-far-increase", type=float, metavar="Y",
                       help="also fail when the false-acceptance rate at the deployed threshold rose by more than Y "
                       "(a fraction): at the operating point both runs were given (bench run --operating-point, "
                       "e.g. far=1%%), else at each model's clean EER threshold")
        s.add_argument("--significant", action="store_true",
                       help="fail only when the lower bound of the 95%% paired-bootstrap CI of the increase exceeds "
                       "the limit (default: the point estimate is compared)")
        s.add_argument("--allow-missing", action="store_true",
                       help="do not fail on baseline conditions missing from the new run (they are still listed)")
        s.add_argument("--allow-data-change", action="store_true",
                       help="check even though the runs scored different data")
        s.add_argument("--allow-suite-change", action="store_true",
                       help="check even though the runs used different suites")
        s.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per condition (default 1000)")
        s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        s.add_argument("--json", action="store_true", help="print every checked condition as JSON")
        s.set_defaults(func=cmd_check)
    else:
        raise ValueError(f"reports.cli has no subcommand {name!r}")
    return s
