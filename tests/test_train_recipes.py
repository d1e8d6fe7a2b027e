"""Training recipes, learning-rate schedules and crops (bench/train/recipes.py, bench/train/schedule.py)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from bench.train.recipes import (RECIPES, Recipe, get_recipe, optimizer_for, recipe_for_architecture,
                                 scheduler_for, steps_per_epoch)
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


def test_every_official_recipe_is_valid_cites_its_files_and_round_trips_through_json():
    assert set(RECIPES) == {"aasist", "aasist-l", "ssl-aasist", "rawnet2", "hf", "darts"}
    repos = {"aasist": "clovaai/aasist", "aasist-l": "clovaai/aasist", "ssl-aasist": "TakHemlata/SSL_Anti-spoofing",
             "rawnet2": "asvspoof-challenge/2021", "hf": "huggingface/transformers",
             "darts": "eurecom-asp/raw-pc-darts-anti-spoofing"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name
        assert recipe.source.startswith(repos[name] + ": ")
        assert re.search(r"\w+\.(py|conf|yaml|md)\b", recipe.source), recipe.source  # names a file
        again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
        assert again == recipe and hash(again) == hash(recipe)
        assert get_recipe(name) is recipe


def test_recipes_for_architectures():
    for arch in ("aasist", "rawnet2", "ssl-aasist", "hf", "darts", "aasist-l"):
        assert recipe_for_architecture(arch).name == arch
    with pytest.raises(ValueError, match="no training recipe for architecture 'remote'.*--recipe"):
        recipe_for_architecture("remote")
    with pytest.raises(ValueError, match="unknown --recipe 'aasist2'"):
        get_recipe("aasist2")


def test_aasist_recipe_drives_the_per_batch_cosine_to_its_floor():
    recipe = get_recipe("aasist").replace(epochs=2)
    opt = optimizer_for(recipe, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["weight_decay"] == 1e-4
    seen = lrs_of(scheduler_for(recipe, opt, batches_per_epoch=5), opt, 10)
    assert seen[0] == pytest.approx(1e-4) and seen[5] < seen[4]  # still decaying inside the second epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-6)


def test_hf_recipe_schedule_matches_the_trainer_with_accumulation():
    from transformers import get_linear_schedule_with_warmup

    recipe = get_recipe("hf").replace(epochs=2)
    batches = 10  # 32-clip batches; 4 per optimiser step -> 3 steps an epoch (the last one partial)
    assert steps_per_epoch(recipe, batches) == 3
    opt = optimizer_for(recipe, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.0
    ref_opt = optimizer(recipe.lr)
    ref = get_linear_schedule_with_warmup(ref_opt, num_warmup_steps=math.ceil(6 * 0.1), num_training_steps=6)
    np.testing.assert_allclose(lrs_of(scheduler_for(recipe, opt, batches), opt, 6), lrs_of(ref, ref_opt, 6),
                               rtol=1e-12)


def test_constant_and_per_epoch_recipes():
    ssl = get_recipe("ssl-aasist")
    opt = optimizer_for(ssl, [torch.nn.Parameter(torch.zeros(2))])
    assert set(lrs_of(scheduler_for(ssl, opt, 3), opt, 9)) == {1e-6}
    darts = get_recipe("darts").replace(epochs=4)
    opt = optimizer_for(darts, [torch.nn.Parameter(torch.zeros(2))])
    seen = lrs_of(scheduler_for(darts, opt, 3), opt, 12)
    assert seen[0] == seen[1] == seen[2] > seen[3]  # one value per epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-5)
    with pytest.raises(ValueError, match="--batch-size 14"):
        steps_per_epoch(ssl, 0)


@pytest.mark.parametrize("overrides, option", [
    ({"lr": 0}, "--lr"), ({"lr": float("nan")}, "--lr"), ({"epochs": 0}, "--epochs"),
    ({"epochs": 2.5}, "--epochs"), ({"batch_size": 0}, "--batch-size"), ({"rawboost": 9}, "--rawboost"),
    ({"class_weights": (-0.1, 0.9)}, "--class-weights"), ({"class_weights": (0.1,)}, "--class-weights"),
    ({"class_weights": None}, "--class-weights"), ({"optimizer": "sgd"}, "--optimizer"),
    ({"schedule": "step"}, "--schedule"), ({"loss": "focal"}, "--loss"), ({"min_lr": 1.0}, "--min-lr"),
    ({"warmup": 0.1}, "--warmup"), ({"crop": "middle"}, "--crop"), ({"crop_samples": 0}, "--crop-samples"),
    ({"betas": (0.9, 1.5)}, "--betas"), ({"max_grad_norm": -1.0}, "--max-grad-norm"), ({"swa": "yes"}, "--swa"),
    ({"loss": "p2sgrad"}, "--class-weights"), ({"accumulate": 0}, "--accumulate"),
])
def test_replace_validates_and_names_the_option(overrides, option):
    with pytest.raises(ValueError, match=re.escape(option)):
        get_recipe("aasist").replace(**overrides)


def test_replace_keeps_the_original_and_refuses_unknown_options():
    base = get_recipe("ssl-aasist")
    tuned = base.replace(lr=2e-6, epochs=3, rawboost=None, class_weights=[0.5, 0.5])
    assert (tuned.lr, tuned.epochs, tuned.rawboost, tuned.class_weights) == (2e-6, 3, None, (0.5, 0.5))
    assert (base.lr, base.epochs, base.rawboost) == (1e-6, 100, 5)
    with pytest.raises(ValueError, match="unknown recipe option.*--learning-rate"):
        base.replace(learning_rate=1e-3)
    with pytest.raises(ValueError, match="unknown recipe option.*--foo"):
        Recipe.from_dict({**base.to_dict(), "foo": 1})
    data = base.to_dict()
    del data["lr"]
    with pytest.raises(ValueError, match="misses --lr"):
        Recipe.from_dict(data)
