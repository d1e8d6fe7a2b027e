"""Learning-rate schedules as pure functions of the optimiser step, the torch `LambdaLR` built on them, and crops.

Schedules (`SCHEDULES`), each a factor of the base learning rate at optimiser step `step` (stepped once per
batch, or per optimiser step when gradients accumulate):

- `constant`: 1 (TakHemlata/SSL_Anti-spoofing, the ASVspoof 2021 RawNet2 baseline: no scheduler);
- `cosine`: clovaai/aasist `utils.py` `cosine_annealing(step, total_steps, 1, lr_min / base_lr)` in a `LambdaLR`
  stepped after every batch, total_steps = epochs x batches per epoch; it reaches lr_min at the last step;
- `cosine-epoch`: torch's `CosineAnnealingLR(T_max=epochs, eta_min=lr_min)` stepped once per epoch
  (eurecom-asp/raw-pc-darts-anti-spoofing `train_model.py`), written per batch as the same curve over
  `step // steps_per_epoch`;
- `linear-warmup`: transformers' `get_linear_schedule_with_warmup`: 0 -> 1 linearly over the warm-up steps, then
  linearly down to 0 at total_steps (the Trainer's `lr_scheduler_type="linear"`).

Steps past the end hold the last value (the official loops never get there; a resumed or extended run should not
climb back up the cosine).

Crops: `crop(x, n, rng)` is clovaai's training crop `pad_random` (a random n-sample window, short clips tiled from
the start) with its two faults fixed: a clip of exactly n samples crashed (`np.random.randint(0)`), and the last
start position (len - n) was never drawn. `first_window(x, n)` is the official dev/eval `pad`: the first n
samples, short clips tiled.
"""

from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("constant", "cosine", "cosine-epoch", "linear-warmup")


def cosine_factor(step: int, total_steps: int, min_ratio: float) -> float:
    """clovaai's `cosine_annealing(step, total_steps, 1, min_ratio)`, held at `min_ratio` after `total_steps`."""
    step = min(step, total_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(step / total_steps * math.pi))


def linear_warmup_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """transformers' linear schedule with warm-up: the factor at optimiser step `step`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def warmup_steps_for(total_steps: int, ratio: float) -> int:
    """The Trainer's warm-up from a ratio: ceil(total_steps x ratio)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"warm-up ratio must be in [0, 1), got {ratio}")
    return math.ceil(total_steps * ratio)


def lr_factor(schedule: str, step: int, *, total_steps: int, steps_per_epoch: int = 1, warmup_steps: int = 0,
              min_ratio: float = 0.0) -> float:
    """The factor of the base learning rate at optimiser step `step` (0 = the first step) of `schedule`."""
    _check(schedule, total_steps, steps_per_epoch, warmup_steps, min_ratio)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return cosine_factor(step, total_steps, min_ratio)
    if schedule == "cosine-epoch":
        epochs = math.ceil(total_steps / steps_per_epoch)
        return cosine_factor(step // steps_per_epoch, epochs, min_ratio)
    return linear_warmup_factor(step, total_steps, warmup_steps)


def build_scheduler(optimizer, schedule: str, *, total_steps: int, steps_per_epoch: int = 1, warmup_steps: int = 0,
                    min_lr: float = 0.0):
    """A torch `LambdaLR` over `optimizer` for `schedule`; call its `step()` after every optimiser step.

    `min_lr` is absolute (as in the official configurations) and becomes a ratio of each group's initial lr.
    """
    import torch

    _check(schedule, total_steps, steps_per_epoch, warmup_steps, 0.0)
    lambdas = []
    for group in optimizer.param_groups:
        base = float(group.get("initial_lr", group["lr"]))
        if base <= 0:
            raise ValueError(f"the optimiser's learning rate must be positive to schedule it, got {base}")
        if not 0 <= min_lr <= base:
            raise ValueError(f"min_lr ({min_lr}) must lie in [0, lr] (lr = {base})")
        lambdas.append(_factor_fn(schedule, total_steps, steps_per_epoch, warmup_steps, min_lr / base))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambdas)


def _factor_fn(schedule: str, total_steps: int, steps_per_epoch: int, warmup_steps: int, min_ratio: float):
    def factor(step: int) -> float:
        return lr_factor(schedule, step, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                         warmup_steps=warmup_steps, min_ratio=min_ratio)
    return factor


def _check(schedule: str, total_steps: int, steps_per_epoch: int, warmup_steps: int, min_ratio: float) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"total_steps and steps_per_epoch must be >= 1, got {total_steps}, {steps_per_epoch}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must lie in [0, total_steps={total_steps}], got {warmup_steps}")
    if not 0 <= min_ratio <= 1:
        raise ValueError(f"min_ratio (min_lr / lr) must lie in [0, 1], got {min_ratio}")


def crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random n-sample window of `x` (every start 0..len-n equally likely); a shorter clip tiled to n."""
    x = _check_clip(x, n)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"crop needs a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if x.shape[0] < n:
        return _tile(x, n)
    start = int(rng.integers(0, x.shape[0] - n + 1))
    return x[start: start + n].copy()


def first_window(x: np.ndarray, n: int) -> np.ndarray:
    """The first n samples of `x`; a shorter clip tiled to n (the official dev/eval input)."""
    x = _check_clip(x, n)
    return _tile(x, n) if x.shape[0] < n else x[:n].copy()


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    return np.tile(x, n // x.shape[0] + 1)[:n]


def _check_clip(x: np.ndarray, n: int) -> np.ndarray:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"crop length must be a positive number of samples, got {n!r}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"crop takes one mono waveform (1-D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("cannot crop an empty clip: it has no samples to tile")
    return x
