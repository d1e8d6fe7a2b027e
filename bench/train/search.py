"""``bench train --search``: PC-DARTS architecture search as Raw PC-DARTS runs it, then the derived network trained.

The training examples (after the dev split) are split once more, by a seeded hash of the utterance per class, into a
weights half and an architecture half (the release's ``train_search.py`` splits its training list in two). Each
search step, as the release's first-order ``train``: an Adam step of the architecture parameters on a batch of the
architecture half (after ``warm-up`` epochs), then an Adam step of the weights on a batch of the weights half
(:func:`models.darts_search.first_order_step`, the release's numbers in ``SEARCH_RECIPE``). Batches, augmentation and
dropout come from (seed, utterance, epoch) as in training, every state is saved at each epoch and every
``checkpoint_every`` steps, so the search resumes after kill -9 and gives the same genotype.

DIR/search/ keeps the search's state and ``alphas.csv`` (the architecture weights per epoch); DIR/genotype.json is
the result (per node the two strongest incoming edges and their strongest operation other than ``none``), drawn as
DIR/cell_normal and DIR/cell_reduce (PNG, SVG) with DIR/alphas (the weights' evolution). Then the derived network
(``darts`` with that genotype and the search's front end and sizes) is trained in DIR by the usual loop, unless
``--search-only``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.train import state as st
from bench.train.config import TrainConfig
from bench.train.data import epoch_batches, make_batch

log = logging.getLogger(__name__)

SEARCH_DIR = "search"
GENOTYPE = "genotype.json"


def _halves(utts: list, seed: int) -> tuple[list, list]:
    """Weights half and architecture half: per class, alternately by a seeded hash of the utterance id."""
    a, b = [], []
    for lab in sorted({u.label for u in utts}):
        of = sorted((u for u in utts if u.label == lab),
                    key=lambda u: hashlib.sha256(f"{seed}|search|{u.utt_id}".encode()).hexdigest())
        a += of[0::2]
        b += of[1::2]
    return a, b


def _search_config(cfg: TrainConfig, card_config: dict[str, Any]) -> dict[str, Any]:
    from models.darts_search import SEARCH_DEFAULTS

    config = {k: v for k, v in card_config.items() if k in SEARCH_DEFAULTS and k != "genotype"}
    config.update({k: v for k, v in dict(cfg.model_config or {}).items() if k in SEARCH_DEFAULTS})
    if cfg.layers:
        config["layers"] = cfg.layers
    if cfg.channels:
        config["init_channels"] = cfg.channels
    config["alpha_seed"] = int(cfg.seed)
    return config


def _batch(maker, utts: list, idx: np.ndarray, epoch: int, problems: list):
    x, y, _ids, bad = make_batch(maker, utts, idx, epoch)
    problems.extend(bad)
    return (x, y) if len(y) else None


def run_search(cfg: TrainConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Runs (or resumes) the search; returns the genotype (also written to DIR/genotype.json)."""
    import torch

    from bench.run.progress import Progress
    from bench.train.setup import prepare
    from foundation.seeding import rng_for
    from models.darts_search import SEARCH_RECIPE, DARTSSearch, first_order_step, search_optimizers

    folder = out / SEARCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if (out / GENOTYPE).is_file():
        return json.loads((out / GENOTYPE).read_text())["genotype"]
    setup = prepare(dataclasses.replace(cfg, search=False, search_only=False, search_epochs=None, layers=None,
                                        channels=None), folder)
    if setup.model["architecture"] != "darts":
        raise ValueError(f"--search: {cfg.model} is not of the darts architecture (use raw-pc-darts or light-darts)")
    config = _search_config(cfg, setup.model["config"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng_for(cfg.seed, "#init", "darts-search").integers(0, 2**62)))
        model = DARTSSearch(config).to(setup.device)
    recipe = {**SEARCH_RECIPE, **({"batch_size": cfg.batch_size} if cfg.batch_size else {})}
    epochs = cfg.search_epochs or int(SEARCH_RECIPE["num_epochs"])
    warm = int(SEARCH_RECIPE["warm_up_epoch"]) if not cfg.search_epochs else min(
        int(SEARCH_RECIPE["warm_up_epoch"]), epochs // 3)
    w_opt, a_opt = search_optimizers(model, recipe)
    half_w, half_a = _halves(setup.train, cfg.seed)
    if min(len(half_w), len(half_a)) < 1:
        raise ValueError("--search needs at least two training clips per class (one per half)")
    bs = int(recipe["batch_size"])
    s: dict[str, Any] = {"epoch": 0, "step": 0, "history": []}
    saved = st.load_state(folder)
    if saved is not None:
        s.update(st.restore(saved, model, w_opt=w_opt, a_opt=a_opt))

    def checkpoint() -> None:
        st.save_state(folder, {**st.snapshot(model, w_opt=w_opt, a_opt=a_opt), **s})

    record = {"config": config, "recipe": {**recipe, "epochs": epochs, "warm_up_epochs": warm},
              "halves": {"weights": len(half_w), "architecture": len(half_a)}, "seed": cfg.seed}
    problems: list = []
    with Progress(progress, max(epochs * max(len(half_w) // bs, 1) - s["step"], 0)) as bar:
        while s["epoch"] < epochs:
            e = s["epoch"]
            bw = epoch_batches(len(half_w), bs, cfg.seed, e, tag="search-weights")
            ba = epoch_batches(len(half_a), bs, cfg.seed, e, tag="search-arch")
            for k in range(s["step"], min(len(bw), len(ba))):
                tw = _batch(setup.maker, half_w, bw[k], e, problems)
                ta = _batch(setup.maker, half_a, ba[k], e, problems)
                s["step"] = k + 1
                bar.advance(1)
                if tw is None or ta is None:
                    continue
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(rng_for(cfg.seed, "#search", f"epoch={e}|step={k}").integers(0, 2**62)))
                    losses = first_order_step(model, w_opt, a_opt, tuple(t.to(setup.device) for t in tw),
                                              tuple(t.to(setup.device) for t in ta), update_arch=e >= warm)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise RuntimeError(f"search epoch {e + 1} step {k + 1}: non-finite loss {losses}")
                bar.describe(f"search epoch {e + 1}/{epochs} loss {losses['train_loss']:.4f}")
                if s["step"] % cfg.checkpoint_every == 0:
                    checkpoint()
            s["history"] = [*s["history"], _alphas_row(model, e + 1)]
            s.update(epoch=e + 1, step=0)
            checkpoint()
    genotype = model.genotype()
    derived = model.derived_config()
    _write_results(out, folder, genotype, derived, s["history"], model.primitives, record)
    return genotype


def _alphas_row(model, epoch: int) -> dict[str, Any]:
    import torch.nn.functional as F

    row: dict[str, Any] = {"epoch": epoch}
    for kind, alphas in (("normal", model.alphas_normal), ("reduce", model.alphas_reduce)):
        w = F.softmax(alphas.detach().float().cpu(), dim=-1).mean(0)   # mean weight of each op over the edges
        row.update({f"{kind}:{op}": float(v) for op, v in zip(model.primitives, w)})
    return row


def _write_results(out: Path, folder: Path, genotype: dict, derived: dict, history: list, primitives: list,
                   record: dict) -> None:
    import pandas as pd

    from bench.train.search_plots import plot_alphas, plot_cell

    st.write_text(folder / "alphas.csv", pd.DataFrame(history).to_csv(index=False))
    for kind in ("normal", "reduce"):
        plot_cell(out / f"cell_{kind}", genotype, kind)
    plot_alphas(out / "alphas", history, primitives)
    st.write_json(out / GENOTYPE, {"genotype": genotype, "derived_config": derived, "search": record})


def derived_model_config(out: Path) -> dict[str, Any]:
    """The derived network's configuration overrides (genotype, sizes, front end) from DIR/genotype.json."""
    return dict(json.loads((out / GENOTYPE).read_text())["derived_config"])
