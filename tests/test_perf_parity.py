"""The AASIST fast inference path (models/_aasist_fast.py, behind ``AASIST.score``/``infer``) computes
the same function as the reference formulation and the official release, leaves gradients alone,
and does not depend on how its slices are cut or shared among threads."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from bench.scoring.windows import fix_length
from models import _aasist_fast

TOL = 1e-4  # the fixture's tolerance, on logits and embeddings
NAMES = {"aasist": "aasist", "aasist-l": "aasist_l"}


@pytest.fixture(scope="module")
def parity(shared_dir):
    return np.load(shared_dir / "fixtures" / "aasist_parity.npz")


@pytest.fixture(scope="module")
def dets():
    return {name: models.load_detector(name).detector.eval() for name in NAMES}


@pytest.mark.parametrize("name", list(NAMES))
def test_fast_path_matches_the_official_release(name, dets, parity):
    det = dets[name]
    x = torch.from_numpy(np.stack([fix_length(parity[f"wav{i}"], det.nb_samp) for i in range(3)]))
    logits, hidden = _aasist_fast.logits_and_hidden(det, x)
    np.testing.assert_allclose(logits.numpy(), parity[f"logits_{NAMES[name]}"], rtol=0, atol=TOL)
    np.testing.assert_allclose(hidden.numpy(), parity[f"hidden_{NAMES[name]}"], rtol=0, atol=TOL)
    # and score() is that path: the bona-fide column
    np.testing.assert_allclose(det.score(x).numpy(), logits[:, 1].numpy(), rtol=0, atol=1e-6)


# 6689 = 128 + 3 * 3**7: every stage's width divides by 3, so the last slice ends on the clip's end
# (the edge where conv2's zero padding is re-imposed on the right); the others leave a remainder.
@pytest.mark.parametrize("length", [2315, 6689, 9001])
def test_fast_path_equals_the_reference_at_odd_lengths(length, dets):
    det = dets["aasist-l"]
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, generator=gen) * 0.2
    with torch.inference_mode():
        ref_logits, ref_hidden = det.logits_and_hidden(x)
    logits, hidden = det.infer(x)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=2e-5)
    torch.testing.assert_close(hidden, ref_hidden, rtol=0, atol=2e-5)


def test_slicing_and_threads_do_not_change_the_numbers(dets, monkeypatch):
    """Each slice computes its own outputs only: sharing the slices among threads gives bit-identical
    results, and cutting them finer changes only the kernels' rounding."""
    det = dets["aasist-l"]
    x = torch.randn(3, 20000, generator=torch.Generator().manual_seed(1)) * 0.2
    with torch.inference_mode():
        ref = det.logits_and_hidden(x)[0]
    np.testing.assert_allclose(_aasist_fast.logits_and_hidden(det, x)[0], ref, rtol=0, atol=2e-5)
    monkeypatch.setattr(_aasist_fast, "SLICE_ELEMENTS", 20_000)  # many narrow slices
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        base = _aasist_fast.logits_and_hidden(det, x)[0]
        np.testing.assert_allclose(base, ref, rtol=0, atol=2e-5)
        for threads in (2, 3):
            torch.set_num_threads(threads)
            got = _aasist_fast.logits_and_hidden(det, x)[0]
            assert torch.equal(got, base), f"{threads} threads"
            assert torch.get_num_threads() == threads  # the temporary cap is undone
    finally:
        torch.set_num_threads(old)


def test_scoring_leaves_gradients_for_attacks(dets, parity):
    det = dets["aasist-l"]
    x = torch.from_numpy(parity["wav0"])[None].clone()
    s = det.score(x)
    assert not s.requires_grad
    xg = x.clone().requires_grad_(True)
    out = det(xg)                       # forward is still the differentiable reference formulation
    (grad,) = torch.autograd.grad(out.sum(), xg)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    assert out.item() == pytest.approx(s.item(), abs=1e-5)
    assert all(p.grad is None for p in det.parameters())


def test_fast_path_can_be_turned_off(dets, monkeypatch):
    det = dets["aasist-l"]
    x = torch.randn(1, 5000, generator=torch.Generator().manual_seed(3)) * 0.2
    called = []
    monkeypatch.setattr(_aasist_fast, "logits_and_hidden", lambda m, w: called.append(1) or (_ for _ in ()).throw(
        AssertionError("fast path used")))
    monkeypatch.setattr(det, "fast_inference", False)
    assert det.score(x).shape == (1,)
    assert not called
    monkeypatch.setattr(det, "fast_inference", True)
    with pytest.raises(AssertionError, match="fast path used"):
        det.score(x)


def test_fast_path_refuses_bad_input_like_the_reference(dets):
    det = dets["aasist-l"]
    with pytest.raises(ValueError, match=f"at least {det.min_samples}"):
        det.infer(torch.zeros(1, det.min_samples - 1))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        det.infer(torch.zeros(det.nb_samp))
