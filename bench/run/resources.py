"""What conditions need beyond their parameters (a neural codec's weights folder, noise and impulse-response
folders), checked before any audio is read so that a condition that cannot run fails the run up front."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def check_resources(conditions) -> dict[str, Any]:
    """Every perturbation (and attack-through perturbation) has what it needs beyond its parameters;
    the first that does not stops the run with its own one-line message, naming the condition. Returns
    the weights folders found (family -> {folder, sha256 per file}) for the provenance."""
    from foundation.weights import sha256_file

    checked: set[str] = set()
    found: dict[str, Any] = {}
    for cond in conditions:
        pert = cond.build_through() if cond.kind == "attack" else cond.build()
        if pert is None:
            continue
        k = pert.key()
        if k in checked:
            continue
        checked.add(k)
        try:
            pert.check_resources()
        except Exception as e:  # noqa: BLE001 - re-raised as one line naming the condition
            raise RuntimeError(f"condition {cond.family}@{cond.severity}: {e} (or `bench run --skip-unavailable` "
                               f"runs the other families and names {cond.family} as skipped)") from e
        for step in getattr(pert, "steps", None) or (pert,):
            if hasattr(step, "weights_folder"):
                folder = step.weights_folder()
                if str(folder) not in (v["folder"] for v in found.values()):
                    found[f"{step.family}:{folder}"] = {
                        "family": step.family, "folder": str(folder),
                        "sha256": {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}}
    return found


def drop_unavailable(conditions) -> tuple[list, list[dict[str, Any]]]:
    """``--skip-unavailable``: the conditions whose family can run here, and one record per family that
    cannot ({family, severities, reason}: the first condition's one-line reason, which names the fix). A
    family is skipped whole when any of its levels cannot run (its curve would be cut otherwise)."""
    reasons: dict[str, str] = {}
    checked: set[str] = set()
    for cond in conditions:
        if cond.family in reasons:
            continue
        pert = cond.build_through() if cond.kind == "attack" else cond.build()
        if pert is None or pert.key() in checked:
            continue
        checked.add(pert.key())
        try:
            pert.check_resources()
        except Exception as e:  # noqa: BLE001 - the reason is kept, named in every output of the run
            reasons[cond.family] = str(e).splitlines()[0] if str(e) else type(e).__name__
    kept = [c for c in conditions if c.family not in reasons]
    skipped = [{"family": fam, "severities": sorted({int(c.severity) for c in conditions if c.family == fam}),
                "reason": why} for fam, why in reasons.items()]
    for rec in skipped:
        log.warning("skipped %s (--skip-unavailable): %s", rec["family"], rec["reason"])
    return kept, skipped


def write_skipped(out, skipped) -> None:
    """skipped.csv beside results.csv: one row per skipped family (family, severities, reason); removed when
    a later run of the folder skipped none (so the file never names a family that did run)."""
    import csv
    from pathlib import Path

    path = Path(out) / "skipped.csv"
    if not skipped:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["family", "severities", "reason"])
        for s in skipped:
            w.writerow([s["family"], " ".join(map(str, s["severities"])), s["reason"]])
