"""Everything a training needs before its first step, each part checked before any work: the data and its dev
split, the recipe with the command line's overrides, the starting model, the augmentation, the attack, and the
folder's identity (the same command resumes; a different one is refused, naming what differs)."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.manifest import BONAFIDE, SPOOF, Utterance
from bench.train import state as st
from bench.train.config import TrainConfig, parse_adversarial
from bench.train.dist import Dist
from bench.train.data import ExampleMaker, augmentation_from_suite, label_index, split_dev

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass
class Setup:
    cfg: TrainConfig
    out: Path
    recipe: Any
    detector: Any
    model: dict[str, Any]            # spec, name, architecture, config, start (what the weights started from)
    device: str
    train: list[Utterance]
    dev: list[Utterance]
    dev_wavs: list[np.ndarray]
    dev_labels: list[int]
    split: dict[str, Any]
    maker: ExampleMaker
    attack: Any
    identity: dict[str, Any]
    dist: Dist = field(default_factory=Dist)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def write_record(self, s: dict[str, Any]) -> None:
        """train.json (provenance and the per-epoch record) and problems.csv."""
        from bench.run.provenance import git_revision, numerics, versions

        best = self.out / st.BEST
        from foundation.weights import sha256_file

        record = {"format": FORMAT, "status": s["status"], "identity": self.identity, "model": self.model,
                  "recipe": self.recipe.to_dict(), "split": self.split,
                  "augmentation": self.maker.augmentation.to_dict(), "config": self.cfg.to_dict(),
                  "best": {"epoch": s["best_epoch"], "dev_eer": s["best_eer"],
                           "sha256": sha256_file(best) if best.is_file() else None},
                  "epochs": s["history"], "versions": versions(), "numerics": numerics(self.device),
                  "git": git_revision()}
        st.write_json(self.out / st.TRAIN_JSON, record)
        st.write_problems(self.out, self.problems)


def _both_classes(utts: list[Utterance], what: str, option: str) -> None:
    labels = {u.label for u in utts}
    if not utts:
        raise ValueError(f"{option}: the {what} set is empty")
    if labels != {BONAFIDE, SPOOF}:
        only = next(iter(labels))
        raise ValueError(f"{option}: the {what} set has only {only} clips ({len(utts)}); training needs both bona "
                         "fide and spoof clips")


def _start_model(cfg: TrainConfig, device: str) -> tuple[Any, dict[str, Any]]:
    """The detector to train and where its weights came from: --checkpoint, the card's published weights when
    they can be found, a training folder (``--model DIR``), or random initialisation (said in the log)."""
    from foundation.weights import WeightsError
    from models import ARCHITECTURES, CARDS, load_detector
    from models.trained import is_training_folder

    spec = cfg.model
    if spec.startswith(("http://", "https://")):
        raise ValueError(f"--model {spec}: a served detector has no weights here to train")
    if cfg.from_scratch and (spec.startswith("hf:") or is_training_folder(spec)):
        raise ValueError(f"--from-scratch: {spec} brings its own weights; it applies to cards and user classes")
    if (cfg.checkpoint or spec.startswith("hf:") or is_training_folder(spec)) and not cfg.from_scratch:
        ld = load_detector(spec, checkpoint=cfg.checkpoint, device=device, fast_inference=False)
        start = {"from": "checkpoint" if cfg.checkpoint else "model", "path": ld.checkpoint, "sha256": ld.sha256}
        return ld.detector, {"spec": spec, "name": ld.name, "architecture": ld.card.architecture,
                             "config": dict(ld.card.config), "start": start}
    card = CARDS.get(spec) if ":" not in spec else None
    if card is not None and card.filename and not cfg.model_config and not cfg.from_scratch:
        try:
            ld = load_detector(spec, device=device, fast_inference=False)
            start = {"from": "published weights", "path": ld.checkpoint, "sha256": ld.sha256}
            return ld.detector, {"spec": spec, "name": ld.name, "architecture": card.architecture,
                                 "config": dict(card.config), "start": start}
        except WeightsError as e:
            if card.url:   # downloadable, but not here: an error, never a silent fresh start
                raise ValueError(f"--model {spec}: its published weights are not available ({e}); give "
                                 "--checkpoint, fill the cache with `bench weights`, or train from a random "
                                 "initialisation with --from-scratch") from e
            log.warning("%s: its published weights are not here (%s)", spec, e)
    if card is None:
        from models import _user_class

        cls, config, arch = _user_class(spec), {}, spec
    else:
        cls, config, arch = ARCHITECTURES.get(card.architecture), dict(card.config), card.architecture
    if cfg.model_config:   # e.g. the network an architecture search derived
        config = {**config, **dict(cfg.model_config)}
    import torch

    from foundation.seeding import rng_for

    with torch.random.fork_rng(devices=[]):   # the initial weights from the seed, not from torch's global state
        torch.manual_seed(int(rng_for(cfg.seed, "#init", spec).integers(0, 2**62)))
        det = cls.from_config(config).to(device)
    log.info("%s: no published weights; training starts from a random initialisation (seed %d)", spec, cfg.seed)
    return det, {"spec": spec, "name": spec, "architecture": arch, "config": config,
                 "start": {"from": "random initialisation", "seed": cfg.seed}}


def _recipe(cfg: TrainConfig, architecture: str, nb_samp: int):
    """The official recipe of the architecture (or --recipe's), with the command line's overrides. The training
    crop is the detector's input length (its ``nb_samp``; the recipes' numbers are their own cards' lengths), except
    for ``hf:`` models, which take any length and train on the recipe's random 20 s crops."""
    from bench.train.recipes import RECIPES, get_recipe, recipe_for_architecture

    if cfg.recipe:
        base = get_recipe(cfg.recipe)
    elif cfg.model in RECIPES:   # a card with a recipe of its own (aasist-l's configuration file)
        base = get_recipe(cfg.model)
    else:
        base = recipe_for_architecture("hf" if architecture.startswith("hf") else architecture)
    over = {k: v for k, v in (("batch_size", cfg.batch_size), ("lr", cfg.lr), ("epochs", cfg.epochs))
            if v is not None}
    if cfg.rawboost is not None:
        over["rawboost"] = cfg.rawboost or None
    if base.name != "hf" and base.crop_samples != nb_samp:   # the crop is the input the detector scores:
        over["crop_samples"] = int(nb_samp)                  # a borrowed recipe, or a changed nb_samp
    return base.replace(**over) if over else base


def _attack(cfg: TrainConfig):
    spec = parse_adversarial(cfg.adversarial)
    if spec is None:
        return None
    from attacks import ATTACKS

    cls = ATTACKS.get(spec[0])
    if getattr(cls, "queries", None) is not None or getattr(cls, "universal", False):
        raise ValueError(f"--adversarial {cfg.adversarial}: adversarial training needs a white-box attack "
                         "(fgsm, pgd-linf, pgd-l2, apgd, cw)")
    return cls.at(spec[1])


def prepare(cfg: TrainConfig, out: Path, dist: Dist | None = None) -> Setup:
    from bench.data import load_dataset
    from bench.run.provenance import data_digest
    from foundation.device import resolve_device

    dist = dist or Dist()
    device = dist.device(resolve_device(cfg.device))
    ds = load_dataset(cfg.data, limit=cfg.limit, seed=cfg.seed)
    problems = [(str(p), str(p), str(r)) for p, r in ds.problems]
    if cfg.dev:
        dev_ds = load_dataset(cfg.dev, seed=cfg.seed)
        train_utts, dev_utts = list(ds.utterances), list(dev_ds.utterances)
        split = {"by": "--dev", "spec": cfg.dev, "digest": data_digest(dev_ds)}
    else:
        train_utts, dev_utts, split = split_dev(list(ds.utterances), cfg.seed, cfg.dev_share)
    _both_classes(train_utts, "training", "--data")
    _both_classes(dev_utts, "dev", "--dev" if cfg.dev else "--data (its held-out dev split)")
    split.update(n_train=len(train_utts), n_dev=len(dev_utts))
    aug = augmentation_from_suite(cfg.augment, cfg.augment_prob, None)   # the recipe's RawBoost is set below
    for _key, _kind, spec in aug.conditions:   # a neural codec without weights is refused before any work
        from perturbations import Perturbation

        Perturbation.from_dict(spec).check_resources()
    attack = _attack(cfg)
    det, model = _start_model(cfg, device)
    recipe = _recipe(cfg, model["architecture"], int(getattr(det, "nb_samp", 64600)))
    aug = dataclasses.replace(aug, rawboost=recipe.rawboost)
    sr = int(getattr(det, "sample_rate", 16000))
    bona = tuple((u.utt_id, str(u.path)) for u in train_utts if u.label == BONAFIDE)
    maker = ExampleMaker(cfg.seed, sr, recipe.crop_samples, recipe.crop, aug, bona)
    dev_wavs, dev_labels = [], []
    ctx = maker._context()
    for u in dev_utts:
        try:
            dev_wavs.append(np.array(ctx.read_clean(str(u.path)), dtype=np.float32))
            dev_labels.append(label_index(u.label))
        except Exception as e:  # noqa: BLE001 - recorded and skipped
            problems.append((u.utt_id, str(u.path), f"dev read: {type(e).__name__}: {e}"))
    identity = {"model": {k: model[k] for k in ("spec", "architecture", "config")},
                "start_sha256": model["start"].get("sha256"), "data": data_digest(ds),
                "dev": split.get("digest") or split, "seed": cfg.seed, "limit": cfg.limit,
                "recipe": recipe.to_dict(), "augmentation": aug.to_dict(), "adversarial": cfg.adversarial,
                "adversarial_prob": cfg.adversarial_prob if cfg.adversarial else None, "precision": cfg.precision}
    if dist.main:
        _check_identity(out, identity)
    return Setup(cfg, out, recipe, det, model, device, train_utts, dev_utts, dev_wavs, dev_labels, split, maker,
                 attack, identity, dist, problems)


def _check_identity(out: Path, identity: dict[str, Any]) -> None:
    import json

    path = out / st.TRAIN_JSON
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text()).get("identity")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({e}); choose another --out folder") from e
    if old is None:
        return
    new = json.loads(json.dumps(identity, default=str))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"{out} holds another training (it differs in: {', '.join(diff)}); give the same command "
                         "to resume it, or choose another --out folder")
