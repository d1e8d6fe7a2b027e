"""What a run still has to compute: the gap between the store and the suite x data x models, as lazy units.

:func:`_todo` lists per condition the utterances some model still lacks (utterances that failed to read or
perturb are not retried; a universal attack scores only its held-out half); :func:`_units` cuts that gap
into :class:`bench.run.units.Unit` s as the executor asks for them, so memory does not grow with the data.
Recomputed from the store, the gap is the same after a kill, a resume or an outage of a served detector.
"""
from __future__ import annotations

from bench.run.config import RunConfig
from bench.run.prepare import Task
from bench.run.store import Store
from bench.run.units import Unit


def _todo(conditions, dataset, store: Store, models: list[str], split=None):
    """Per condition: the utterances some model still lacks, and what each model has (from the store).
    Utterances that failed to read or perturb are not retried; a universal attack scores only the held-out half."""
    from bench.suites.universal import is_universal

    bad_read = store.failed("read")
    for cond in conditions:
        bad = bad_read | store.failed("perturb", cond.family, cond.severity)
        # a non-finite score is that model's answer: recorded in problems, not recomputed on resume
        done = {m: store.done(m, cond.family, cond.severity) | store.failed_for("nonfinite", m, cond.family,
                                                                                 cond.severity)
                for m in models}
        held = split[1] if split is not None and is_universal(cond) else None
        todo = [u for u in dataset.utterances if u.utt_id not in bad and (held is None or u.utt_id in held)
                and any(u.utt_id not in done[m] for m in models)]
        yield cond, todo, done


def _count_scores(conditions, dataset, store: Store, models: list[str], split=None) -> int:
    return sum(sum(u.utt_id not in done[m] for u in todo for m in models)
               for _cond, todo, done in _todo(conditions, dataset, store, models, split))


def _units(cfg: RunConfig, conditions, dataset, store: Store, models: list[str], on_device: bool = False,
           split=None, size: int | None = None):
    """Units for what the store still lacks, made as the executor asks for them (never all at once).
    With ``on_device``, a perturbation that can run on the scoring device gets tasks of kind ``device``:
    workers only read the clean audio and the scorer perturbs it there (see ``Scorer._perturb_on_device``).
    A universal attack's units carry its training clips (``Unit.train``, see
    :func:`bench.suites.universal.universal_training_split`)."""
    from bench.run.segments import segments_of
    from bench.suites.universal import is_universal

    for cond, todo, done in _todo(conditions, dataset, store, models, split):
        kind = "device" if on_device and cond.kind != "attack" and cond.build().on_device else cond.kind
        train: tuple[Task, ...] = ()
        if split is not None and is_universal(cond):
            cap = int(cond.build().train_clips)
            train = tuple(Task(u.utt_id, str(u.path), u.label, cond.key(), cond.spec, cond.kind)
                          for u in split[0][:cap])
        size = size or cfg.shard_size or 32
        for i in range(0, len(todo), size):
            shard = todo[i:i + size]
            needs = tuple((m, ids) for m in models
                          if (ids := tuple(u.utt_id for u in shard if u.utt_id not in done[m])))
            tasks = tuple(Task(u.utt_id, str(u.path), u.label, cond.key(), cond.spec, kind, segments_of(u))
                          for u in shard)
            yield Unit(cond, tasks, needs, train)
