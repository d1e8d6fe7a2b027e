"""What conditions need beyond their parameters (a neural codec's weights folder, noise and impulse-response
folders), checked before any audio is read so that a condition that cannot run fails the run up front."""
from __future__ import annotations

from typing import Any


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
            raise RuntimeError(f"condition {cond.family}@{cond.severity}: {e}") from e
        for step in getattr(pert, "steps", None) or (pert,):
            if hasattr(step, "weights_folder"):
                folder = step.weights_folder()
                if str(folder) not in (v["folder"] for v in found.values()):
                    found[f"{step.family}:{folder}"] = {
                        "family": step.family, "folder": str(folder),
                        "sha256": {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}}
    return found
