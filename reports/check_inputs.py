"""What `bench check` compares, and whether two runs can be compared: each run's folder, checkpoint digests and
utterance counts (:func:`describe_inputs`), refusals for other data or another suite (:func:`same_inputs`), and the
scoring differences worth a note (:func:`scoring_differences`: precision, input policy)."""
from __future__ import annotations

from typing import Any

from reports.load import Run


def describe_inputs(run: Run) -> dict[str, Any]:
    """The folder, each model's checkpoint digest and the utterance counts of a run (from run.json)."""
    data = run.meta.get("data") if isinstance(run.meta.get("data"), dict) else {}
    models = []
    for m in run.meta.get("models", []) if isinstance(run.meta.get("models"), list) else []:
        if isinstance(m, dict):
            models.append({"name": m.get("name"), "checkpoint": m.get("checkpoint"), "sha256": m.get("sha256")})
    return {"path": str(run.path), "models": models or [{"name": m} for m in run.models],
            "data": data.get("spec"), "n_utterances": data.get("n_utterances"), "n_bonafide": data.get("n_bonafide")}


def same_inputs(new: Run, base: Run) -> list[str]:
    """What makes two runs incomparable: ``["data: ...", "suite: ..."]`` (empty when they match)."""
    out = []
    dn, db = new.meta.get("data") or {}, base.meta.get("data") or {}
    if not isinstance(dn, dict) or not isinstance(db, dict) or not dn or not db:
        out.append("data: a run.json has no data record, so the data cannot be verified")
    elif dn.get("sha256") and db.get("sha256"):
        if dn["sha256"] != db["sha256"]:
            out.append(f"data: the utterances differ ({dn.get('spec')!r}, {dn.get('n_utterances')} utterances vs "
                       f"{db.get('spec')!r}, {db.get('n_utterances')})")
    else:
        diff = [k for k in ("spec", "n_utterances", "n_bonafide") if dn.get(k) != db.get(k)]
        if diff:
            out.append("data: " + ", ".join(f"{k} {dn.get(k)!r} vs {db.get(k)!r}" for k in diff))
    sn, sb = new.meta.get("suite") or {}, base.meta.get("suite") or {}
    if isinstance(sn, dict) and isinstance(sb, dict) and sn and sb:
        if (sn.get("name"), sn.get("sha256")) != (sb.get("name"), sb.get("sha256")):
            out.append(f"suite: {sn.get('name')!r} ({str(sn.get('sha256'))[:12]}) vs {sb.get('name')!r} "
                       f"({str(sb.get('sha256'))[:12]})")
    return out


def scoring_differences(new: Run, base: Run) -> list[str]:
    """How the two runs scored, where it differs (arithmetic, input policy): said, not refused, since checking
    e.g. a bf16 run against its fp32 baseline is a legitimate question."""
    def how(run: Run) -> dict[str, str]:
        cfg = run.meta.get("config") if isinstance(run.meta.get("config"), dict) else {}
        pol = run.meta.get("policy") if isinstance(run.meta.get("policy"), dict) else {}
        return {"precision": str(cfg.get("precision") or "fp32"), "input policy": str(pol.get("name") or "")}

    hn, hb = how(new), how(base)
    return [f"the runs differ in {k}: {hn[k]} (new) vs {hb[k]} (baseline)" for k in hn
            if hn[k] != hb[k] and hn[k] and hb[k]]
