"""Universal attacks inside a run (``universal-filter``): which conditions they are, how the utterances split.

No torch here (the runner consults it before anything is scored). Learning and applying the filter:
:func:`bench.run.adversarial.learn_universal` and the scorer (bench/run/units.py). See ARCHITECTURE.md, Decisions.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)


def is_universal(cond) -> bool:
    """An attack condition learned once on training clips and applied unchanged (``universal-filter``)."""
    if getattr(cond, "kind", "") != "attack":
        return False
    from attacks import ATTACKS

    name = cond.spec.get("attack", "")
    return name in ATTACKS and bool(getattr(ATTACKS.get(name), "universal", False))


def universal_split(utterances: Sequence) -> tuple[list, list]:
    """(training half, held-out half) of a data set's utterances, per label, by the sha256 of the utterance id:
    deterministic, independent of order and seed; the training half holds ``n // 2`` of each label."""
    train, held = [], []
    for label in sorted({u.label for u in utterances}):
        group = sorted((u for u in utterances if u.label == label),
                       key=lambda u: hashlib.sha256(u.utt_id.encode()).hexdigest())
        train.extend(group[:len(group) // 2])
        held.extend(group[len(group) // 2:])
    return train, held


def universal_conditions(conditions, models) -> list:
    """A universal attack without ``source`` (``{attack: universal-filter}``) becomes one condition per model
    of the run, ``universal-filter<-MODEL``: learned on that model, scored by every model (transfer)."""
    from bench.suites.suite import Condition, attack_label

    out = []
    for cond in conditions:
        if not is_universal(cond):
            out.append(cond)
            continue
        if cond.through:
            raise ValueError(f"condition {cond.family}@{cond.severity}: a universal attack cannot go 'through' a "
                             "perturbation; drop 'through'")
        for m in ([cond.source] if cond.source else models):
            label = attack_label(cond.spec["attack"], m)
            if not any(c.family == label and c.severity == cond.severity for c in out):
                out.append(Condition(label, cond.severity, "attack", {**cond.spec, "source": m}))
    return out


def universal_training_split(conditions, dataset) -> tuple[list, set[str]] | None:
    """Universal attacks: (training spoofs, held-out utterance ids), or None when the suite has none."""
    if not any(is_universal(c) for c in conditions):
        return None
    train, held = universal_split(dataset.utterances)
    log.info("universal attacks: learned on %d training utterances, scored on the %d others", len(train), len(held))
    return [u for u in train if u.label == "spoof"], {u.utt_id for u in held}
