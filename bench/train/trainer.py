"""``bench train``: fine-tune or train a detector with the benchmark's own perturbations and attacks.

The loop (per epoch): the seeded order of the training examples -> batches made by :class:`ExampleMaker` (in
``--workers`` processes that prepare the next batches while the current one trains) -> optionally replaced by an
attack crafted against the current weights (eval mode) -> weighted cross-entropy on the detector's two logits in
train mode -> the recipe's optimiser and per-step schedule -> a resumable step checkpoint every
``checkpoint_every`` steps. After each epoch: the dev EER (the official EER of the first window of every dev clip,
scored by :mod:`bench.scoring`), ``last.safetensors``, ``best.safetensors`` (lowest dev EER), metrics.csv,
train.json and the training curve. The setup (data, split, recipe, model, identity) is :mod:`bench.train.setup`.

Dropout draws from torch's generator, which the loop seeds from (seed, epoch, step) inside ``fork_rng`` before
every step: with the data drawn from (seed, utterance, epoch) and every state saved, a training killed at any
moment and resumed ends with the weights of an uninterrupted one, bit for bit on the CPU.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.train import state as st
from bench.train.config import TrainConfig
from bench.train.data import epoch_batches, make_batch
from bench.train.setup import Setup, prepare

log = logging.getLogger(__name__)

MAX_NAN_STREAK = 3


class _Batches:
    """Batch k of one epoch, made from (seed, utterance, epoch): the same in any worker process."""

    def __init__(self, setup: Setup, epoch: int, batches: list[np.ndarray]):
        self.maker, self.examples, self.epoch = setup.maker, setup.train, epoch
        self.batches = [setup.dist.share(b) for b in batches]   # this process's rows of every global batch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int):
        return make_batch(self.maker, self.examples, self.batches[k], self.epoch)


def _loader(ds: _Batches, start: int, workers: int):
    from torch.utils.data import DataLoader

    kwargs: dict[str, Any] = {}
    if workers:
        kwargs.update(num_workers=workers, multiprocessing_context="spawn", prefetch_factor=2)
    return DataLoader(ds, batch_size=None, sampler=range(start, len(ds)), **kwargs)


def _step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    from foundation.seeding import rng_for

    tag = f"epoch={epoch}|step={step}" + (f"|rank={rank}" if rank else "")
    return int(rng_for(seed, "#dropout", tag).integers(0, 2**62))


def _dev_eer(setup: Setup) -> float:
    from bench.metrics import eer
    from bench.scoring.score import score_batch

    det = setup.detector
    scores = score_batch(det, setup.dev_wavs, "official", batch_size=setup.recipe.batch_size, device=setup.device)
    det.train()
    bona = [s for s, lab in zip(scores, setup.dev_labels) if lab == 1]
    spoof = [s for s, lab in zip(scores, setup.dev_labels) if lab == 0]
    if not np.all(np.isfinite(scores)):
        log.warning("dev scores are not all finite; the dev EER of this epoch is not defined")
        return math.nan
    return float(eer(bona, spoof)[0])


def _adversarial(setup: Setup, x: Any, y: Any, ids: list[str], epoch: int, step: int) -> tuple[Any, bool]:
    """With probability --adversarial-prob (drawn from (seed, epoch, step)) the batch is replaced by the attack
    crafted against the current weights in eval mode (Madry et al.); else it is returned unchanged."""
    from foundation.seeding import rng_for, torch_generator_for

    if setup.attack is None:
        return x, False
    if rng_for(setup.cfg.seed, "#adversarial", f"epoch={epoch}|step={step}").random() >= setup.cfg.adversarial_prob:
        return x, False
    det = setup.detector
    det.eval()
    gdev = setup.device if str(setup.device).startswith("cuda") else "cpu"
    gens = [torch_generator_for(setup.cfg.seed, u, f"#adversarial|epoch={epoch}", gdev) for u in ids]
    frozen = [p for p in det.parameters() if p.requires_grad]
    for p in frozen:   # the attack takes input gradients only: no parameter gradient may accumulate
        p.requires_grad_(False)
    try:
        adv = setup.attack(det, x, y, gens if len(gens) > 1 else gens[0]).detach()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        det.train()
    return adv, True


def train(cfg: TrainConfig, progress: bool = True):
    """Runs (or resumes) the training ``cfg`` describes; returns metrics.csv as a DataFrame. Under torchrun (several
    processes, see :mod:`bench.train.dist`) every process calls this; rank 0 holds the lock and writes."""
    import pandas as pd

    from bench.run.store import RunBusy, RunLock
    from bench.train import dist as D
    from foundation.device import resolve_device

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    d = D.init(resolve_device(cfg.device))
    lock = None
    try:
        if d.main:
            try:
                lock = RunLock(out, "train.lock").__enter__()
            except RunBusy as e:
                raise RunBusy(str(e).replace("--out folder", "--out folder for this training")) from None
        if cfg.search:
            if d.world > 1:
                raise ValueError("--search runs in one process; train the derived network with torchrun after it")
            from bench.train.search import derived_model_config, run_search

            run_search(cfg, out, progress)
            if cfg.search_only:
                return pd.read_csv(out / "search" / "alphas.csv")
            cfg = dataclasses.replace(cfg, search=False, search_epochs=None, layers=None, channels=None,
                                      model_config={**dict(cfg.model_config or {}), **derived_model_config(out)})
        setup = prepare(cfg, out, d)
        _loop(setup, out, progress and d.main)
        d.barrier()
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
        D.close(d)
    if not (out / st.METRICS_CSV).is_file():   # stopped before an epoch ended
        return pd.DataFrame(columns=list(st.METRIC_COLUMNS))
    return pd.read_csv(out / st.METRICS_CSV)


def _loop(setup: Setup, out: Path, progress: bool) -> None:
    import torch

    from bench.run.progress import Progress
    from bench.train.recipes import optimizer_for, scheduler_for
    from bench.train.step import Stepper

    cfg, recipe, det, d = setup.cfg, setup.recipe, setup.detector, setup.dist
    n_batches = len(epoch_batches(len(setup.train), recipe.batch_size, cfg.seed, 0))
    opt = optimizer_for(recipe, [p for p in det.parameters() if p.requires_grad])
    sched = scheduler_for(recipe, opt, n_batches)
    saved = st.load_state(out)
    s: dict[str, Any] = {"epoch": 0, "step": 0, "global_step": 0, "loss_sum": 0.0, "loss_n": 0, "skipped": 0,
                         "adversarial": 0, "examples": 0, "nan_streak": 0, "history": [], "best_eer": math.inf,
                         "best_epoch": None, "bad_epochs": 0, "status": "running", "seconds": 0.0}
    if saved is not None:
        s.update(st.restore(saved, det, optimizer=opt, scheduler=sched))
        log.info("resuming %s at epoch %d, step %d", out, s["epoch"] + 1, s["step"])
    if s["status"] != "running":
        log.info("%s: this training has ended (%s); nothing to do", out, s["status"])
        return
    stepper = Stepper(det, recipe, opt, setup.device, cfg.precision, d)

    def checkpoint() -> None:
        if d.main:
            st.save_state(out, {**st.snapshot(det, optimizer=opt, scheduler=sched), **s})

    total = (recipe.epochs - s["epoch"]) * n_batches - s["step"]
    det.train()
    with Progress(progress, max(total, 0)) as bar:
        while s["epoch"] < recipe.epochs and s["status"] == "running":
            epoch = s["epoch"]
            t0 = time.monotonic()
            batches = epoch_batches(len(setup.train), recipe.batch_size, cfg.seed, epoch)
            for x, y, ids, problems in _loader(_Batches(setup, epoch, batches), s["step"], cfg.workers):
                setup.problems.extend(problems)
                step = s["step"]
                s["step"] += 1
                bar.advance(1)
                n = int(d.sum(torch.tensor(len(ids))))   # the global batch's usable examples
                if n == 0:
                    continue
                acc = recipe.accumulate
                last_micro = step % acc == acc - 1 or s["step"] == len(batches)
                x, y = x.to(setup.device), y.to(setup.device)
                x, was_adv = _adversarial(setup, x, y, ids, epoch, step)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_step_seed(cfg.seed, epoch, step, d.rank))
                    loss = stepper.step(x, y, first=step % acc == 0, last=last_micro)
                if not math.isfinite(loss):
                    s["skipped"] += 1
                    s["nan_streak"] += 1
                    log.warning("epoch %d step %d: the loss is %s; the step is skipped", epoch + 1, step + 1, loss)
                    if s["nan_streak"] >= MAX_NAN_STREAK:
                        s["status"] = (f"stopped: {MAX_NAN_STREAK} non-finite losses in a row (epoch {epoch + 1}, "
                                       f"step {step + 1}); the last good checkpoint is kept")
                        log.error("%s", s["status"])
                        break
                    continue
                if last_micro:
                    sched.step()
                    s["global_step"] += 1
                s["nan_streak"] = 0
                s["loss_sum"] += loss * n
                s["loss_n"] += n
                s["examples"] += n
                s["adversarial"] += n if was_adv else 0
                bar.describe(f"epoch {epoch + 1}/{recipe.epochs} loss {s['loss_sum'] / max(s['loss_n'], 1):.4f}")
                if last_micro and s["global_step"] % cfg.checkpoint_every == 0:
                    s["seconds"] += time.monotonic() - t0
                    t0 = time.monotonic()
                    checkpoint()
            if s["status"] != "running":   # stopped: the state says so, so the same command does not go on
                checkpoint()
                break
            s["seconds"] += time.monotonic() - t0
            _end_epoch(setup, out, s, opt)
            bar.describe(f"epoch {epoch + 1}/{recipe.epochs} dev EER {100 * s['history'][-1]['dev_eer']:.2f}%")
            checkpoint()
    if d.main:
        setup.write_record(s)


def _end_epoch(setup: Setup, out: Path, s: dict[str, Any], opt: Any) -> None:
    """Dev EER, weights, selection, early stopping and the tables of one finished epoch (rank 0 evaluates and
    writes; the others receive the dev EER, so that every process takes the same decisions)."""
    d = setup.dist
    dev_eer = d.broadcast_float(_dev_eer(setup) if d.main else math.nan, setup.device)
    epoch = s["epoch"]
    improved = math.isfinite(dev_eer) and dev_eer < s["best_eer"]
    if d.main:
        st.save_weights(out / st.LAST, setup.detector)
    if improved or s["best_epoch"] is None:
        if d.main:
            st.save_weights(out / st.BEST, setup.detector)
        s["best_eer"], s["best_epoch"], s["bad_epochs"] = dev_eer if math.isfinite(dev_eer) else math.inf, \
            epoch + 1, 0
    else:
        s["bad_epochs"] += 1
    row = {"epoch": epoch + 1, "train_loss": s["loss_sum"] / s["loss_n"] if s["loss_n"] else math.nan,
           "dev_eer": dev_eer, "lr": float(opt.param_groups[0]["lr"]), "seconds": round(s["seconds"], 3),
           "steps": s["step"], "examples": s["examples"], "skipped_steps": s["skipped"],
           "adversarial": s["adversarial"], "best": s["best_epoch"] == epoch + 1}
    s["history"] = [*s["history"], row]
    log.info("epoch %d: training loss %.4f, dev EER %.2f%%%s", epoch + 1, row["train_loss"], 100 * dev_eer,
             " (best so far)" if row["best"] else "")
    s.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0, examples=0, skipped=0, adversarial=0, seconds=0.0)
    if setup.cfg.patience and s["bad_epochs"] >= setup.cfg.patience:
        s["status"] = f"early stop after epoch {epoch + 1}: no better dev EER in {setup.cfg.patience} epochs"
        log.info("%s", s["status"])
    elif s["epoch"] >= setup.recipe.epochs:
        s["status"] = "finished"
    if d.main:
        st.write_metrics(out, s["history"])
        st.plot_curves(out, s["history"])
        setup.write_record(s)
