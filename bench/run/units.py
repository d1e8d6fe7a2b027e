"""Units of work and the scorer that turns a unit's prepared audio into stored rows.

A :class:`Unit` is (condition, shard of utterances, which models still lack which utterances). It
is plain picklable data, so any executor can move it: the local one scores in the main process,
a distributed one in remote workers. :class:`Scorer` holds the detectors on one device; it is
built from a :class:`ScorerSpec` so that a remote worker can build its own.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.run.prepare import Prepared, Task

log = logging.getLogger(__name__)


def unavailable(e: BaseException) -> bool:
    """A :class:`models.base.DetectorUnavailable` (a detector that stopped answering), told without importing
    torch: an exception from a detector means its package is loaded."""
    base = sys.modules.get("models.base")
    return base is not None and isinstance(e, base.DetectorUnavailable)


@dataclass(frozen=True)
class Unit:
    condition: Any                                  # bench.suites.suite.Condition
    tasks: tuple[Task, ...]
    needs: tuple[tuple[str, tuple[str, ...]], ...]  # (model, utterance ids still to score)
    train: tuple[Task, ...] = ()                    # universal attacks: the clips the filter is learned on

    @property
    def n_scores(self) -> int:
        return sum(len(ids) for _, ids in self.needs)


@dataclass
class UnitResult:
    unit: Unit
    scores: list[tuple] = field(default_factory=list)    # rows for Store.add_scores
    problems: list[tuple] = field(default_factory=list)  # (utt_id, path, stage, reason, family, severity, model)
    quality: list[tuple] = field(default_factory=list)   # rows for Store.add_quality
    segments: list[tuple] = field(default_factory=list)  # window rows of partially spoofed data (run/segments.py)
    files: list[tuple] = field(default_factory=list)     # (utt_id, path, size, mtime_ns, sha256): what was read


@dataclass(frozen=True)
class ScorerSpec:
    models: tuple[str, ...]
    checkpoint: str | None
    device: str
    policy: str
    batch_size: int | str               # windows per batch, or "auto" (bench/scoring/engine.py)
    seed: int
    label_map: str | None = None        # names the classes of hf: models (models/hf.py); others ignore it
    precision: str = "fp32"             # scoring arithmetic: fp32 | bf16 | fp16 (bench/scoring/engine.py)
    compile: str = "off"                # torch.compile for scoring: off | on | a torch.compile mode

    @property
    def inference(self):
        from bench.scoring.engine import InferenceOptions

        return InferenceOptions(self.batch_size, self.precision, self.compile)

    def build(self) -> "Scorer":
        return Scorer(self)


class Scorer:
    def __init__(self, spec: ScorerSpec, loaded: list | None = None):
        from bench.scoring.windows import parse_policy
        from foundation.device import fast_inference_enabled, resolve_device
        from models import load_detector

        if spec.device == "auto":
            from dataclasses import replace

            spec = replace(spec, device=resolve_device("auto"))
        self.spec = spec
        self.policy = parse_policy(spec.policy)
        self.fast = fast_inference_enabled()
        self.loaded = loaded or [load_detector(m, checkpoint=spec.checkpoint, device=spec.device,
                                               fast_inference=self.fast, label_map=spec.label_map)
                                 for m in spec.models]
        self.by_name = {ld.name: ld for ld in self.loaded}
        from bench.scoring.engine import Engine

        options = spec.inference
        options.check_device(spec.device)
        self.attack_batch = options.attack_batch(spec.device)
        self.engines = {ld.name: Engine(ld.detector, options, spec.device, ld.name) for ld in self.loaded}
        self._sources: dict[str, Any] = {}   # transfer sources that are not among the run's models
        self._universal: dict[tuple[str, str], tuple] = {}   # (source, condition key) -> (filter, queries)

    def inference_report(self) -> dict[str, Any]:
        """Per model: the batch sizes, precision and compilation its engine used, and what it measured."""
        return {name: e.report() for name, e in self.engines.items()}

    def source(self, name: str):
        """The detector a transfer attack is crafted on: a run model, or loaded once (default checkpoint)."""
        if name in self.by_name:
            return self.by_name[name]
        if name not in self._sources:
            from models import load_detector

            ld = load_detector(name, checkpoint=None, device=self.spec.device, fast_inference=self.fast,
                               label_map=self.spec.label_map)
            rates = {x.detector.sample_rate for x in self.loaded}
            if rates and ld.detector.sample_rate not in rates:
                raise ValueError(f"transfer source {name} runs at {ld.detector.sample_rate} Hz but the run's "
                                 f"models at {sorted(rates)} Hz; pick a source at the same rate")
            log.info("loaded transfer source %s (%s) on %s", name, ld.checkpoint, self.spec.device)
            self._sources[name] = ld
        return self._sources[name]

    def __call__(self, unit: Unit, prepared: list[Prepared]) -> UnitResult:
        cond = unit.condition
        res = UnitResult(unit)
        paths = {t.utt_id: t.path for t in unit.tasks}
        labels = {t.utt_id: t.label for t in unit.tasks}
        ok = {}
        for p in prepared:
            if getattr(p, "note", None):   # scored, but worth knowing (e.g. a float file far above full scale)
                res.problems.append((p.utt_id, paths[p.utt_id], "level", p.note, "", -1, ""))
            if getattr(p, "cond_note", None):   # e.g. the perturbation left this clip unchanged
                res.problems.append((p.utt_id, paths[p.utt_id], "level", p.cond_note, cond.family, cond.severity, ""))
            if getattr(p, "digest", None) is not None and p.wav is not None:
                d = p.digest
                res.files.append((p.utt_id, paths[p.utt_id], d.size, d.mtime_ns, d.sha256))
            if p.wav is None:
                read = p.stage == "read"
                res.problems.append((p.utt_id, paths[p.utt_id], p.stage, p.error or "",
                                     "" if read else cond.family, -1 if read else cond.severity, ""))
            else:
                ok[p.utt_id] = p.wav
                if p.quality is not None:   # a perturbation's quality: the same for every model ("")
                    res.quality.append(("", cond.family, cond.severity, p.utt_id, *p.quality))
        if unit.tasks and unit.tasks[0].kind == "device":
            ok = self._perturb_on_device(cond, ok, paths, res)
        crafted_q: dict[str, int | None] = {}
        if getattr(cond, "source", None):
            # transfer: craft once on the source for every utterance any model still needs
            want = [u for u in dict.fromkeys(u for _, ids in unit.needs for u in ids) if u in ok]
            try:
                crafted, crafted_q = self._craft(cond.source, self.source(cond.source).detector, cond, want, ok,
                                                 labels, unit)
            except Exception as e:  # noqa: BLE001 - recorded for every model that needed these utterances
                if unavailable(e):
                    raise   # the detector, not these clips: the run stops (bench/run/outage.py)
                log.error("%s@%d: crafting on %s failed: %s", cond.family, cond.severity, cond.source, e)
                res.problems.extend((u, paths[u], "score", f"crafting on {cond.source}: {type(e).__name__}: {e}",
                                     cond.family, cond.severity, name) for name, ids in unit.needs
                                    for u in ids if u in ok)
                return res
            res.quality.extend(_attack_quality("", cond, {u: ok[u] for u in want}, crafted,
                                               self.source(cond.source).detector))
            ok = {u: crafted[u] for u in want}
        for name, ids in unit.needs:
            todo = [u for u in ids if u in ok]
            if not todo:
                continue
            try:
                scores, queries = self._score(self.by_name[name], cond, [ok[u] for u in todo],
                                              [labels[u] for u in todo], todo, unit, res.quality)
            except Exception as e:  # noqa: BLE001 - a failing batch is recorded, the run goes on
                if unavailable(e):
                    raise   # the detector, not these clips: the run stops (bench/run/outage.py)
                log.error("%s %s@%d: scoring failed: %s", name, cond.family, cond.severity, e)
                res.problems.extend((u, paths[u], "score", f"{type(e).__name__}: {e}", cond.family,
                                     cond.severity, name) for u in todo)
                continue
            if any(t.segments is not None for t in unit.tasks):   # partially spoofed data: where, not only if
                from bench.run.segments import segment_rows

                res.segments.extend(segment_rows(name, cond, todo, ok, {t.utt_id: t.segments for t in unit.tasks},
                                                 self.by_name[name].detector, self.engines[name]))
            if queries is None:
                queries = [crafted_q.get(u) for u in todo]
            for u, s, q in zip(todo, scores, queries):
                s = float(s)
                if np.isfinite(s):
                    res.scores.append((name, cond.family, cond.severity, u, labels[u], s, str(self.policy),
                                       cond.key(), q))
                else:   # one NaN/inf is this utterance's problem, not the run's: recorded, the rest scored
                    res.problems.append((u, paths[u], "nonfinite", f"the detector returned a non-finite score "
                                         f"({s})", cond.family, cond.severity, name))
        return res

    def _perturb_on_device(self, cond, clean: dict[str, np.ndarray], paths, res: UnitResult) -> dict[str, np.ndarray]:
        """The condition's perturbation on the scoring device, per utterance with its own generator
        (``rng_for(seed, utt, key)``, as in the CPU workers); a failure is that utterance's problem."""
        import torch

        from bench.run.inputs import unchanged_note
        from bench.run.prepare import quality_of, worker_context
        from foundation.seeding import rng_for

        pert, key, ctx = cond.build(), cond.key(), worker_context()
        out = {}
        for u, wav in clean.items():
            try:
                y = pert.device_call(torch.from_numpy(np.asarray(wav, np.float32)).to(self.spec.device), ctx.sr,
                                     rng_for(self.spec.seed, u, key), ctx.perturbation_context(u))
                if not bool(torch.all(torch.isfinite(y))):
                    raise ValueError("the perturbation produced non-finite samples")
                out[u] = y.cpu().numpy()
            except Exception as e:  # noqa: BLE001 - recorded per utterance and condition, like the workers'
                res.problems.append((u, paths[u], "perturb", f"{type(e).__name__}: {e}", cond.family,
                                     cond.severity, ""))
                continue
            q = quality_of(Task(u, paths[u], "", key, cond.spec, "device"), wav, out[u], ctx.sr)
            if q is not None:
                res.quality.append(("", cond.family, cond.severity, u, *q))
            if cond.severity and (note := unchanged_note(wav, out[u], cond.family, cond.severity)):
                res.problems.append((u, paths[u], "level", note, cond.family, cond.severity, ""))
        return out

    def _learned(self, name: str, detector, cond, unit: Unit):
        """A universal attack's (filter, queries) against ``name``, learned once on the unit's training clips."""
        from bench.run.adversarial import learn_universal
        from bench.suites.universal import is_universal

        if not is_universal(cond):
            return None
        key = (name, cond.key())
        if key not in self._universal:
            from bench.run.prepare import read_clean

            ids, wavs, labels = [], [], []
            for t in unit.train:
                try:
                    wavs.append(read_clean(t.path, int(detector.sample_rate)))
                except Exception as e:  # noqa: BLE001 - an unreadable training clip is left out, not fatal
                    log.warning("universal training clip %s left out: %s", t.path, e)
                    continue
                ids.append(t.utt_id)
                labels.append(t.label)
            self._universal[key] = learn_universal(detector, cond, ids, wavs, labels, self.spec.seed, self.spec.device)
        return self._universal[key]

    def _craft(self, name, detector, cond, utt_ids, wavs, labels, unit) -> tuple[dict, dict]:
        from bench.run.adversarial import attack_batch

        adv, queries = attack_batch(detector, cond, [wavs[u] for u in utt_ids], [labels[u] for u in utt_ids],
                                    utt_ids, self.spec.seed, self.attack_batch, self.spec.device,
                                    universal=self._learned(name, detector, cond, unit), with_queries=True)
        return dict(zip(utt_ids, adv)), dict(zip(utt_ids, queries))

    def _score(self, ld, cond, wavs, labels, utt_ids, unit, quality: list | None = None
               ) -> tuple[np.ndarray, list | None]:
        """Scores one model; a white-box attack condition is crafted against that model first (a
        transfer condition arrives already crafted, see ``__call__``), and its quality measured into
        ``quality`` (rows for this model). Also the queries a black-box attack spent per utterance (None
        when not crafted here)."""
        from bench.scoring.score import score_batch

        queries = None
        if cond.kind == "attack" and not getattr(cond, "source", None):
            from bench.run.adversarial import attack_batch

            clean = dict(zip(utt_ids, wavs))
            wavs, queries = attack_batch(ld.detector, cond, wavs, labels, utt_ids, self.spec.seed,
                                         self.attack_batch, self.spec.device,
                                         universal=self._learned(ld.name, ld.detector, cond, unit), with_queries=True)
            if quality is not None:
                quality.extend(_attack_quality(ld.name, cond, clean, dict(zip(utt_ids, wavs)), ld.detector))
        return np.asarray(score_batch(ld.detector, wavs, self.policy, engine=self.engines[ld.name])), queries


def _attack_quality(model: str, cond, clean: dict, adversarial: dict, detector) -> list[tuple]:
    """Quality rows of crafted audio against the clean crop it was crafted from (the detector's
    official-length input); ``model`` is the scored model for white-box attacks, "" for transfer."""
    from bench.scoring.windows import fix_length
    from bench.metrics.quality import measure

    rows = []
    sr = int(getattr(detector, "sample_rate", 16000))
    for u, adv in adversarial.items():
        ref = fix_length(np.asarray(clean[u], np.float32), len(adv))
        try:
            rows.append((model, cond.family, cond.severity, u, *measure(ref, np.asarray(adv), sr, u)))
        except Exception as e:  # noqa: BLE001 - a quality measure must never cost a score
            log.warning("%s: quality not measured: %s", u, e)
    return rows
