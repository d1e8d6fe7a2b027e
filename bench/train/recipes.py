"""Training recipes as data: each official training set-up's numbers, with the files they were read from.

A `Recipe` is a frozen, validated record (optimiser, learning rate and schedule, batch, epochs, loss, crop,
RawBoost, SWA); `RECIPES` holds the official ones by name and `recipe_for_architecture` picks an architecture's;
`optimizer_for` and `scheduler_for` turn a recipe into the torch optimiser and per-step `LambdaLR`.
Every number was read from the file named in the recipe's `source` (repository: file); `notes` records what the
official loop does around those numbers that a trainer has to know (dev selection, quirks).

Conventions: class index 0 is spoof and 1 bona fide in every official loop, so `class_weights` is
(spoof, bona fide); crop lengths are samples at 16 kHz; `warmup` is a fraction of the optimiser steps;
`min_lr` is absolute; `accumulate` batches make one optimiser step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from bench.train.rawboost import ALGORITHMS
from bench.train.schedule import SCHEDULES, build_scheduler, warmup_steps_for

OPTIMIZERS = ("adam", "adamw")
LOSSES = ("weighted-ce", "p2sgrad")  # p2sgrad: MSE between cos(theta) and the one-hot target (raw PC-DARTS)
CROPS = ("random", "first")  # training window: random (clovaai pad_random) or the first samples (official pad)


def option(field: str) -> str:
    """The command-line spelling of a recipe field: `batch_size` -> `--batch-size`."""
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class Recipe:
    """One training set-up; validated on construction, so a bad `replace(--option=...)` fails before training."""

    name: str
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    batch_size: int
    epochs: int
    loss: str
    crop_samples: int
    source: str
    betas: tuple[float, float] = (0.9, 0.999)
    min_lr: float = 0.0
    warmup: float = 0.0
    accumulate: int = 1
    class_weights: tuple[float, float] | None = None
    crop: str = "random"
    rawboost: int | None = None
    swa: bool = False
    max_grad_norm: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        # JSON gives lists; keep the record hashable and comparable
        for name in ("betas", "class_weights"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown recipe option(s) {', '.join(option(k) for k in unknown)}; "
                             f"known: {', '.join(option(k) for k in known)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"recipe misses {', '.join(option(k) for k in missing)}")
        return cls(**dict(data))

    def replace(self, **overrides: Any) -> "Recipe":
        """A copy with `overrides` applied and validated (e.g. `--lr`, `--epochs` from the command line)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown recipe option(s) {', '.join(option(k) for k in unknown)}; "
                             f"known: {', '.join(option(k) for k in sorted(known))}")
        return dataclasses.replace(self, **overrides)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(r: Recipe) -> None:
    def fail(field: str, what: str) -> None:
        raise ValueError(f"recipe {r.name!r}: {option(field)} {what}, got {getattr(r, field)!r}")

    if not isinstance(r.name, str) or not r.name:
        fail("name", "must be a non-empty string")
    if r.optimizer not in OPTIMIZERS:
        fail("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
    if not _number(r.lr) or r.lr <= 0:
        fail("lr", "must be a positive number")
    if not _number(r.weight_decay) or r.weight_decay < 0:
        fail("weight_decay", "must be a number >= 0")
    if (not isinstance(r.betas, tuple) or len(r.betas) != 2
            or not all(_number(b) and 0 <= b < 1 for b in r.betas)):
        fail("betas", "must be two numbers in [0, 1)")
    if r.schedule not in SCHEDULES:
        fail("schedule", f"must be one of {', '.join(SCHEDULES)}")
    if not _number(r.min_lr) or not 0 <= r.min_lr <= r.lr:
        fail("min_lr", f"must lie in [0, lr = {r.lr}]")
    if not _number(r.warmup) or not 0 <= r.warmup < 1:
        fail("warmup", "is a fraction of the optimiser steps in [0, 1)")
    if r.warmup and r.schedule != "linear-warmup":
        fail("warmup", f"only applies to the linear-warmup schedule, not {r.schedule!r}")
    for field in ("batch_size", "epochs", "accumulate", "crop_samples"):
        value = getattr(r, field)
        if not _integer(value) or value < 1:
            fail(field, "must be an integer >= 1")
    if r.loss not in LOSSES:
        fail("loss", f"must be one of {', '.join(LOSSES)}")
    if r.loss == "weighted-ce":
        w = r.class_weights
        if (not isinstance(w, tuple) or len(w) != 2 or not all(_number(v) and v >= 0 for v in w)
                or sum(w) <= 0):
            fail("class_weights", "must be two weights >= 0 (spoof, bona fide), not both zero")
    elif r.class_weights is not None:
        fail("class_weights", f"does not apply to the {r.loss} loss; leave it out")
    if r.crop not in CROPS:
        fail("crop", f"must be one of {', '.join(CROPS)}")
    if r.rawboost is not None and (not _integer(r.rawboost) or r.rawboost not in ALGORITHMS):
        fail("rawboost", "must be a RawBoost algorithm 1..8 or None (off)")
    if not isinstance(r.swa, bool):
        fail("swa", "must be true or false")
    if r.max_grad_norm is not None and (not _number(r.max_grad_norm) or r.max_grad_norm <= 0):
        fail("max_grad_norm", "must be a positive number or None (no clipping)")
    if not isinstance(r.source, str) or not r.source:
        fail("source", "must name the file and repository the numbers come from")
    if not isinstance(r.notes, str):
        fail("notes", "must be a string")


def _aasist(name: str, conf: str) -> Recipe:
    return Recipe(
        name=name, optimizer="adam", lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4,
        schedule="cosine", min_lr=5e-6, batch_size=24, epochs=100,
        loss="weighted-ce", class_weights=(0.1, 0.9), crop_samples=64600, crop="random", swa=True,
        source=(f"clovaai/aasist: {conf} (optim_config: adam, base_lr 0.0001, lr_min 0.000005, betas, "
                "weight_decay 0.0001, amsgrad False, scheduler cosine; batch_size 24; num_epochs 100); main.py "
                "(CrossEntropyLoss weight [0.1, 0.9]; scheduler.step() after every batch; torchcontrib SWA); "
                "utils.py (cosine_annealing, LambdaLR, total_steps = epochs x len(trn_loader)); data_utils.py "
                "(pad_random: random 64600-sample crop for training, pad: first 64600 for dev/eval)"),
        notes=("dev: first 64600 samples (short clips tiled), selection by dev EER (<= best); SWA: a snapshot "
               "after every epoch whose dev EER ties or beats the best, swapped in with a BatchNorm update at the "
               "end; train loader shuffles with drop_last"),
    )


RECIPES: dict[str, Recipe] = {
    "aasist": _aasist("aasist", "config/AASIST.conf"),
    "aasist-l": _aasist("aasist-l", "config/AASIST-L.conf"),
    "ssl-aasist": Recipe(
        name="ssl-aasist", optimizer="adam", lr=1e-6, weight_decay=1e-4, schedule="constant",
        batch_size=14, epochs=100, loss="weighted-ce", class_weights=(0.1, 0.9),
        crop_samples=64600, crop="first", rawboost=5,
        source=("TakHemlata/SSL_Anti-spoofing: main_SSL_LA.py (argparse defaults: batch_size 14, num_epochs 100, "
                "lr 0.000001, weight_decay 0.0001, algo 5; torch.optim.Adam with default betas, no scheduler; "
                "CrossEntropyLoss weight [0.1, 0.9]); data_utils_SSL.py (RawBoost, then pad: first 64600 "
                "samples, short clips tiled)"),
        notes=("main_SSL_DF.py is identical but for RawBoost algo 3 (DF); the official dev set also gets RawBoost "
               "(it is built with Dataset_ASVspoof2019_train and algo) and only its loss is logged, every epoch "
               "saved; train loader shuffles with drop_last"),
    ),
    "rawnet2": Recipe(
        name="rawnet2", optimizer="adam", lr=1e-4, weight_decay=1e-4, schedule="constant",
        batch_size=32, epochs=100, loss="weighted-ce", class_weights=(0.1, 0.9),
        crop_samples=64600, crop="first",
        source=("asvspoof-challenge/2021: LA/Baseline-RawNet2/main.py (argparse defaults: batch_size 32, "
                "num_epochs 100, lr 0.0001, weight_decay 0.0001; torch.optim.Adam, no scheduler; "
                "CrossEntropyLoss weight [0.1, 0.9]); LA/Baseline-RawNet2/model_config_RawNet.yaml (optimizer "
                "Adam, nb_samp 64600); LA/Baseline-RawNet2/data_utils.py (pad: first 64600 samples, train too)"),
        notes=("the yaml's 'amsgrad: 1' is never passed to Adam (off); dev: accuracy logged, every epoch saved; "
               "the README trains with --lr=0.0001 --batch_size=32"),
    ),
    "hf": Recipe(
        name="hf", optimizer="adamw", lr=3e-5, betas=(0.9, 0.999), weight_decay=0.0,
        schedule="linear-warmup", warmup=0.1, min_lr=0.0, batch_size=32, accumulate=4, epochs=5,
        loss="weighted-ce", class_weights=(1.0, 1.0), crop_samples=320000, crop="random",
        max_grad_norm=1.0,
        source=("huggingface/transformers: examples/pytorch/audio-classification/README.md (single-GPU run: "
                "--learning_rate 3e-5 --warmup_ratio 0.1 --num_train_epochs 5 --per_device_train_batch_size 32 "
                "--gradient_accumulation_steps 4); run_audio_classification.py (max_length_seconds default 20: "
                "random_subsample crop; Trainer); transformers TrainingArguments defaults (AdamW betas 0.9/0.999, "
                "weight_decay 0.0, lr_scheduler_type linear, max_grad_norm 1.0)"),
        notes=("the model's own cross-entropy, unweighted (class_weights 1, 1); the convolutional feature encoder "
               "frozen (freeze_feature_extractor defaults to True); clips shorter than the crop are padded there, "
               "tiled here; the README's keyword-spotting run crops 1 s; dev: selection by accuracy "
               "(load_best_model_at_end)"),
    ),
    "darts": Recipe(
        name="darts", optimizer="adam", lr=5e-5, weight_decay=3e-4, schedule="cosine-epoch", min_lr=2e-5,
        batch_size=32, epochs=100, loss="p2sgrad", crop_samples=64000, crop="first",
        source=("eurecom-asp/raw-pc-darts-anti-spoofing: train_model.py (argparse defaults: batch_size 32, "
                "num_epochs 100, lr 5e-5, lr_min 2e-5, weight_decay 3e-4, drop_path_prob 0; torch.optim.Adam with "
                "default betas; CosineAnnealingLR(T_max=num_epochs, eta_min=lr_min) stepped per epoch; "
                "P2SGradLoss); ASVRawDataset.py (first 4 s = 64000 samples, is_rand False; short clips repeated)"),
        notes=("the frequency mask (is_mask, on by default) belongs to the model; dev: accuracy logged, every "
               "epoch saved; the dev loader shuffles with drop_last; the search stage (train_search.py) has its "
               "own numbers: batch 14, 30 epochs, 10 warm-up epochs, architecture Adam lr 6e-4 betas (0.5, 0.999) "
               "weight_decay 1e-3"),
    ),
}

_BY_ARCHITECTURE = {"aasist": "aasist", "aasist-l": "aasist-l", "rawnet2": "rawnet2", "ssl-aasist": "ssl-aasist",
                    "hf": "hf", "darts": "darts"}


def get_recipe(name: str) -> Recipe:
    """The official recipe `name` (`--recipe`)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown --recipe {name!r}; known: {', '.join(RECIPES)}") from None


def recipe_for_architecture(arch: str) -> Recipe:
    """The official recipe of an architecture (aasist, aasist-l, rawnet2, ssl-aasist, hf, darts)."""
    try:
        return RECIPES[_BY_ARCHITECTURE[arch]]
    except KeyError:
        raise ValueError(f"no training recipe for architecture {arch!r}; known: {', '.join(_BY_ARCHITECTURE)} "
                         f"(pass --recipe NAME to use one of {', '.join(RECIPES)})") from None


def steps_per_epoch(recipe: Recipe, batches_per_epoch: int) -> int:
    """Optimiser steps in an epoch of `batches_per_epoch` batches: a last partial accumulation still steps."""
    if not _integer(batches_per_epoch) or batches_per_epoch < 1:
        raise ValueError(f"an epoch needs at least one batch, got {batches_per_epoch!r} (fewer clips than "
                         f"{option('batch_size')} {recipe.batch_size}?)")
    return math.ceil(batches_per_epoch / recipe.accumulate)


def optimizer_for(recipe: Recipe, parameters):
    """The recipe's torch optimiser (Adam or AdamW) over `parameters`."""
    import torch

    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[recipe.optimizer]
    return cls(parameters, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)


def scheduler_for(recipe: Recipe, optimizer, batches_per_epoch: int):
    """The recipe's `LambdaLR`; call its `step()` after every optimiser step (per batch without accumulation)."""
    per_epoch = steps_per_epoch(recipe, batches_per_epoch)
    total = per_epoch * recipe.epochs
    return build_scheduler(optimizer, recipe.schedule, total_steps=total, steps_per_epoch=per_epoch,
                           warmup_steps=warmup_steps_for(total, recipe.warmup), min_lr=recipe.min_lr)
