"""Training data: the held-out dev split, the order of an epoch, and one example's audio.

Everything random is drawn from generators derived from (seed, utterance, epoch) (:func:`foundation.seeding.rng_for`),
so an example's audio and an epoch's order depend on nothing else: not on the worker that makes it, the order in
which batches are made, or whether the training was interrupted and resumed.

An example: the clean clip at the detector's rate -> with probability ``augment_prob`` one condition of the
``--augment`` suite, applied by the same code ``bench run`` uses (:meth:`bench.run.prepare.WorkerContext.prepare`,
so every ladder is the calibrated one) -> RawBoost (``--rawboost``) -> the recipe's crop (random or first window).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from bench.data.manifest import BONAFIDE, SPOOF, UNKNOWN, Utterance
from foundation.seeding import rng_for

log = logging.getLogger(__name__)

DEV_SHARE = 0.2   # share of the utterances held out for dev when no --dev is given


def label_index(label: str) -> int:
    """The official class index: 1 bona fide, 0 spoof."""
    return 1 if label == BONAFIDE else 0


def _order_key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{int(seed)}|{text}".encode()).hexdigest()


def split_dev(utts: Sequence[Utterance], seed: int, share: float = DEV_SHARE
              ) -> tuple[list[Utterance], list[Utterance], dict[str, Any]]:
    """A seeded held-out split: by speaker when the data names at least three speakers (no speaker in both
    halves), else by utterance, per class. Returns (train, dev, a record of how it was made)."""
    speakers = sorted({u.speaker for u in utts if u.speaker != UNKNOWN})
    if len(speakers) >= 3 and all(u.speaker != UNKNOWN for u in utts):
        order = sorted(speakers, key=lambda s: _order_key(seed, "speaker|" + s))
        dev_spk: set[str] = set()
        for s in order:   # speakers in seeded order until the dev half holds its share and both classes
            dev = [u for u in utts if u.speaker in dev_spk]
            labels = {u.label for u in dev}
            if len(dev) >= share * len(utts) and labels == {BONAFIDE, SPOOF}:
                break
            if len(dev_spk) + 1 >= len(speakers):
                break
            dev_spk.add(s)
        dev = [u for u in utts if u.speaker in dev_spk]
        train = [u for u in utts if u.speaker not in dev_spk]
        if {u.label for u in dev} == {BONAFIDE, SPOOF} and {u.label for u in train} == {BONAFIDE, SPOOF}:
            return train, dev, {"by": "speaker", "seed": int(seed), "share": share,
                                "dev_speakers": sorted(dev_spk)}
    dev_ids: set[str] = set()
    for lab in (BONAFIDE, SPOOF):
        of = sorted((u for u in utts if u.label == lab), key=lambda u: _order_key(seed, "utt|" + u.utt_id))
        k = min(len(of) - 1, max(1, int(round(share * len(of))))) if len(of) > 1 else 0
        dev_ids.update(u.utt_id for u in of[:k])
    dev = [u for u in utts if u.utt_id in dev_ids]
    train = [u for u in utts if u.utt_id not in dev_ids]
    return train, dev, {"by": "utterance", "seed": int(seed), "share": share}


def epoch_order(n: int, seed: int, epoch: int, tag: str = "") -> np.ndarray:
    """The order of the training examples in ``epoch`` (a permutation drawn from (seed, epoch[, tag]))."""
    return rng_for(seed, "#order" + (f"|{tag}" if tag else ""), f"epoch={int(epoch)}").permutation(n)


def epoch_batches(n: int, batch: int, seed: int, epoch: int, tag: str = "") -> list[np.ndarray]:
    """The batches of an epoch: the seeded order cut into ``batch``-sized pieces, the last partial one dropped
    (as the official loaders' ``drop_last=True``) unless it would be the only one."""
    order = epoch_order(n, seed, epoch, tag)
    full = n // batch
    if full == 0:
        return [order]
    return [order[i * batch:(i + 1) * batch] for i in range(full)]


@dataclass(frozen=True)
class Augmentation:
    """What happens to a training example before the crop (all of it recorded in train.json)."""

    conditions: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()   # (key, kind, spec) of the --augment suite
    prob: float = 0.8
    suite: str | None = None
    rawboost: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "prob": self.prob, "rawboost": self.rawboost,
                "conditions": [{"key": k, "kind": kind} for k, kind, _ in self.conditions]}


@dataclass
class ExampleMaker:
    """Makes a training example's audio from (utterance, epoch) alone; picklable, so worker processes can use it.

    Returns ``(wav, None)`` or ``(None, reason)``: one unreadable file is skipped and recorded, never fatal."""

    seed: int
    sr: int
    crop_samples: int
    crop: str                                  # random | first
    augmentation: Augmentation = field(default_factory=Augmentation)
    bonafide: tuple[tuple[str, str], ...] = ()  # (utt_id, path) for babble
    resources: Mapping[str, str] = field(default_factory=dict)

    def _context(self):
        from bench.run.prepare import WorkerContext

        ctx = getattr(self, "_ctx", None)
        if ctx is None:
            ctx = WorkerContext(self.seed, self.sr, self.bonafide, dict(self.resources))
            self._ctx = ctx
        return ctx

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_ctx", None)
        return state

    def make(self, utt: Utterance, epoch: int) -> tuple[np.ndarray | None, str | None]:
        from bench.run.prepare import Task
        from bench.train.schedule import crop, first_window

        ctx = self._context()
        tag = f"epoch={int(epoch)}"
        aug = self.augmentation
        try:
            wav = np.array(ctx.read_clean(str(utt.path)), dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - one bad file is recorded and skipped
            return None, f"read: {type(e).__name__}: {e}"
        if wav.size == 0:
            return None, "read: the file holds no samples"
        if aug.conditions:
            rng = rng_for(self.seed, utt.utt_id, "#augment|" + tag)
            if rng.random() < aug.prob:
                i = int(rng.integers(len(aug.conditions)))
                key, kind, spec = aug.conditions[i]
                got = ctx.prepare(Task(utt.utt_id, str(utt.path), utt.label, f"{key}|{tag}", spec, kind))
                if got.wav is None:
                    return None, f"augment ({spec.get('family')}@{spec.get('severity')}): {got.error}"
                wav = np.asarray(got.wav, dtype=np.float32)
        if aug.rawboost:
            from bench.train.rawboost import rawboost

            wav = rawboost(wav, self.sr, aug.rawboost, rng_for(self.seed, utt.utt_id, "#rawboost|" + tag))
        if self.crop == "random":
            wav = crop(wav, self.crop_samples, rng_for(self.seed, utt.utt_id, "#crop|" + tag))
        else:
            wav = first_window(wav, self.crop_samples)
        return np.asarray(wav, dtype=np.float32), None


def augmentation_from_suite(suite: str | None, prob: float, rawboost: int | None) -> Augmentation:
    """The ``--augment`` suite's perturbation conditions (not its clean row, not its attacks: adversarial
    training is ``--adversarial``), drawn uniformly."""
    if not suite:
        return Augmentation(prob=prob, rawboost=rawboost)
    from bench.suites.suite import load_suite

    s = load_suite(suite)
    conds = [c for c in s.expand() if c.kind != "attack" and c.severity > 0]
    if not conds:
        raise ValueError(f"--augment {suite}: the suite has no perturbation conditions to train with")
    return Augmentation(conditions=tuple((c.key(), c.kind, c.spec) for c in conds), prob=prob,
                        suite=suite, rawboost=rawboost)


def make_batch(maker: ExampleMaker, utts: Sequence[Utterance], idx: Any, epoch: int):
    """The examples ``idx`` of ``utts`` for ``epoch``: ``(x[B, T], y[B], utt_ids, problems)``; an example that
    cannot be made is left out and listed in ``problems`` as (utt_id, path, reason)."""
    import torch

    wavs, labels, ids, problems = [], [], [], []
    for i in idx:
        u = utts[int(i)]
        wav, err = maker.make(u, epoch)
        if wav is None:
            problems.append((u.utt_id, str(u.path), err))
            continue
        wavs.append(wav)
        labels.append(label_index(u.label))
        ids.append(u.utt_id)
    x = torch.from_numpy(np.stack(wavs)) if wavs else torch.zeros(0, maker.crop_samples)
    return x, torch.tensor(labels, dtype=torch.long), ids, problems
