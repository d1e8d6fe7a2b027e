"""Training recipes, learning-rate schedules and crops (bench/train/recipes.py, bench/train/schedule.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.train.schedule import SCHEDULES, build_scheduler, crop, first_window, lr_factor, warmup_steps_for


def optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def lrs_of(scheduler, opt, steps: int) -> list[float]:
    """The learning rate each of `steps` optimiser steps uses (read before the step, as the loops do)."""
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return seen


def test_cosine_follows_clovaai_formula_per_batch_and_ends_at_min_lr():
    base, low, epochs, per_epoch = 1e-4, 5e-6, 3, 7  # AASIST.conf's base_lr and lr_min
    total = epochs * per_epoch
    opt = optimizer(base)
    sched = build_scheduler(opt, "cosine", total_steps=total, steps_per_epoch=per_epoch, min_lr=low)
    seen = lrs_of(sched, opt, total)
    for step in (0, 1, 5, total // 2, total - 1):
        # clovaai utils.py: lr_min + (lr_max - lr_min) * 0.5 * (1 + cos(step / total_steps * pi)), as a factor
        official = base * (low / base + (1 - low / base) * 0.5 * (1 + np.cos(step / total * np.pi)))
        assert seen[step] == pytest.approx(official, rel=1e-12)
    assert seen[0] == pytest.approx(base)
    assert all(a > b for a, b in zip(seen, seen[1:]))  # decays every batch, not every epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(low, rel=1e-12)  # after the last batch
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(low, rel=1e-12)  # held, not climbing back


def test_linear_warmup_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    total = 50
    warmup = warmup_steps_for(total, 0.1)
    assert warmup == 5
    ours_opt, theirs_opt = optimizer(3e-5), optimizer(3e-5)
    ours = build_scheduler(ours_opt, "linear-warmup", total_steps=total, warmup_steps=warmup)
    theirs = get_linear_schedule_with_warmup(theirs_opt, num_warmup_steps=warmup, num_training_steps=total)
    np.testing.assert_allclose(lrs_of(ours, ours_opt, total + 3), lrs_of(theirs, theirs_opt, total + 3),
                               rtol=1e-12, atol=0)
    assert ours_opt.param_groups[0]["lr"] == 0.0
    assert warmup_steps_for(7, 0.1) == 1  # ceil, as the Trainer does


def test_cosine_epoch_matches_torch_cosine_annealing_stepped_per_epoch():
    base, low, epochs, per_epoch = 5e-5, 2e-5, 6, 4  # raw-pc-darts train_model.py defaults, fewer epochs
    opt = optimizer(base)
    ours = lrs_of(build_scheduler(opt, "cosine-epoch", total_steps=epochs * per_epoch, steps_per_epoch=per_epoch,
                                  min_lr=low), opt, epochs * per_epoch)
    ref_opt = optimizer(base)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, float(epochs), eta_min=low)
    for epoch in range(epochs):
        expected = ref_opt.param_groups[0]["lr"]
        assert ours[epoch * per_epoch: (epoch + 1) * per_epoch] == pytest.approx([expected] * per_epoch, rel=1e-9)
        ref_opt.step()
        ref.step()


def test_constant_schedule_and_bad_arguments():
    opt = optimizer(1e-6)
    assert set(lrs_of(build_scheduler(opt, "constant", total_steps=10), opt, 12)) == {1e-6}
    assert set(SCHEDULES) == {"constant", "cosine", "cosine-epoch", "linear-warmup"}
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor("step", 0, total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        lr_factor("cosine", 0, total_steps=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_factor("linear-warmup", 0, total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="min_lr"):
        build_scheduler(optimizer(1e-4), "cosine", total_steps=10, min_lr=1e-3)
    with pytest.raises(ValueError, match="warm-up ratio"):
        warmup_steps_for(10, 1.5)


def test_crop_length_exact_clip_and_tiling():
    rng = np.random.default_rng(0)
    long = np.arange(100, dtype=np.float32)
    for _ in range(20):
        window = crop(long, 30, rng)
        assert window.shape == (30,) and window.dtype == np.float32
        np.testing.assert_array_equal(np.diff(window), 1)  # one contiguous window of the clip
    exact = np.arange(64600, dtype=np.float32)
    np.testing.assert_array_equal(crop(exact, 64600, rng), exact)  # the official pad_random crashed here
    short = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(crop(short, 8, rng), [1, 2, 3, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(first_window(short, 8), [1, 2, 3, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(first_window(long, 10), long[:10])
    assert crop(np.ones(1), 5, rng).shape == (5,)


def test_crop_draws_every_start_from_the_generator():
    clip = np.arange(12, dtype=np.float64)
    starts = [int(crop(clip, 10, np.random.default_rng(s))[0]) for s in range(200)]
    assert set(starts) == {0, 1, 2}  # the last start (len - n) too, which pad_random never drew
    a = [crop(clip, 5, np.random.default_rng(9))[0] for _ in range(3)]
    assert len(set(a)) == 1
    window = crop(clip, 5, np.random.default_rng(1))
    window[:] = -1
    assert clip.min() == 0  # a copy, not a view into the clip


def test_crop_refuses_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="empty"):
        crop(np.zeros(0), 10, rng)
    with pytest.raises(ValueError, match="1-D"):
        first_window(np.zeros((2, 10)), 5)
    with pytest.raises(ValueError, match="positive"):
        crop(np.zeros(10), 0, rng)
    with pytest.raises(TypeError, match="Generator"):
        crop(np.zeros(10), 5, np.random.RandomState(0))
    assert math.isclose(lr_factor("cosine", 0, total_steps=4, min_ratio=0.05), 1.0)
