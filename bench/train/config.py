"""What ``bench train`` is asked to do (:class:`TrainConfig`): every option checked before any work, and the part
that binds a training folder (its identity: the same command resumes; another one is refused)."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

PRECISIONS = ("fp32", "bf16")


def _positive_int(value: Any, option: str, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a whole number >= 1, got {value!r}")


def _probability(value: Any, option: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{option} must be a probability in [0, 1], got {value!r}")


def parse_adversarial(spec: str | None) -> tuple[str, int] | None:
    """``ATTACK[@SEVERITY]`` -> (attack, severity); severity 3 (the middle of the ladder) when not given."""
    if not spec:
        return None
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(?:@\s*(\d+))?\s*", str(spec))
    if not m:
        raise ValueError(f"--adversarial must be ATTACK or ATTACK@SEVERITY (e.g. pgd-linf@2), got {spec!r}")
    return m.group(1), int(m.group(2) or 3)


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: str
    out: str
    checkpoint: str | None = None
    dev: str | None = None
    limit: int | None = None
    epochs: int | None = None            # None: the recipe's
    seed: int = 0
    recipe: str | None = None            # None: the architecture's
    batch_size: int | None = None        # None: the recipe's
    lr: float | None = None              # None: the recipe's
    augment: str | None = None           # a suite whose perturbation conditions augment the training audio
    augment_prob: float = 0.8
    rawboost: int | None = None          # None: the recipe's; 0: off
    adversarial: str | None = None       # ATTACK[@SEVERITY]
    adversarial_prob: float = 0.5
    device: str = "auto"
    precision: str = "fp32"
    workers: int = 0                     # processes preparing the next batches (0: in the training process)
    patience: int | None = None          # epochs without a better dev EER before stopping (None: never)
    checkpoint_every: int = 50           # optimiser steps between resumable step checkpoints
    dev_share: float = 0.2               # without --dev: the share of TRAIN held out
    search: bool = False                 # DARTS: architecture search first (bench/train/search.py)
    search_only: bool = False
    search_epochs: int | None = None     # None: the release's 30
    layers: int | None = None            # DARTS: cells (search and derived network)
    channels: int | None = None          # DARTS: initial channels
    model_config: Any = None             # configuration overrides of the architecture (a mapping; JSON)
    from_scratch: bool = False           # a seeded random initialisation even where published weights exist

    def validate(self) -> None:
        for name in ("model", "data", "out"):
            if not str(getattr(self, name) or "").strip():
                raise ValueError(f"--{name} is required")
        _positive_int(self.limit, "--limit")
        _positive_int(self.epochs, "--epochs")
        _positive_int(self.batch_size, "--batch-size")
        _positive_int(self.patience, "--patience")
        _positive_int(self.checkpoint_every, "--checkpoint-every", allow_none=False)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be an integer 0..{2**32 - 1}, got {self.seed!r}")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not math.isfinite(self.lr) or self.lr <= 0):
            raise ValueError(f"--lr must be a positive number, got {self.lr!r}")
        _probability(self.augment_prob, "--augment-prob")
        _probability(self.adversarial_prob, "--adversarial-prob")
        if not 0.0 < float(self.dev_share) < 1.0:
            raise ValueError(f"--dev-share must be in (0, 1), got {self.dev_share!r}")
        if self.rawboost is not None and (isinstance(self.rawboost, bool) or self.rawboost not in range(0, 9)):
            raise ValueError(f"--rawboost must be an algorithm 1..8 (0: off), got {self.rawboost!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)} for training, got "
                             f"{self.precision!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"--workers must be a whole number >= 0, got {self.workers!r}")
        parse_adversarial(self.adversarial)
        _positive_int(self.search_epochs, "--search-epochs")
        _positive_int(self.layers, "--layers")
        _positive_int(self.channels, "--channels")
        if (self.search_only or self.search_epochs or self.layers or self.channels) and not self.search:
            raise ValueError("--search-only, --search-epochs, --layers and --channels belong to --search")
        if self.from_scratch and self.checkpoint:
            raise ValueError("--from-scratch and --checkpoint exclude each other: choose the starting weights")
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise ValueError(f"model_config must be a mapping, got {type(self.model_config).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
