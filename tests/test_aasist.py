"""AASIST / AASIST-L: parity with the official release, strict loading, gradients, cards, batching."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import models
from bench.scoring.windows import Policy, fix_length
from bench.scoring.score import score_batch
from foundation.weights import WeightsError, read_state_dict, sha256_file
from models.aasist import AASIST, sinc_bank
from models.base import CheckpointMismatch

TOL = 1e-4  # absolute, on logits and on the 160-d embedding (the fixture README's tolerance)
NAMES = {"aasist": "aasist", "aasist-l": "aasist_l"}  # card name -> fixture key suffix


@pytest.fixture(scope="module")
def parity(shared_dir):
    return np.load(shared_dir / "fixtures" / "aasist_parity.npz")


@pytest.fixture(scope="module")
def loaded():
    return {name: models.load_detector(name) for name in NAMES}


@pytest.mark.parametrize("name", list(NAMES))
def test_parity_with_the_official_release(name, loaded, parity):
    det = loaded[name].detector
    wavs = [parity[f"wav{i}"] for i in range(3)]
    assert [len(w) for w in wavs] == list(parity["lengths"])
    x = torch.from_numpy(np.stack([fix_length(w, det.nb_samp) for w in wavs]))
    with torch.inference_mode():
        logits, hidden = det.logits_and_hidden(x)
    np.testing.assert_allclose(logits.numpy(), parity[f"logits_{NAMES[name]}"], rtol=0, atol=TOL)
    np.testing.assert_allclose(hidden.numpy(), parity[f"hidden_{NAMES[name]}"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", list(NAMES))
def test_card_digest_and_parameter_count(name, loaded, shared_dir):
    ld = loaded[name]
    card = models.CARDS.get(name)
    assert ld.sha256 == card.sha256 == sha256_file(shared_dir / "weights" / card.filename)
    assert isinstance(ld.detector, AASIST)
    assert ld.detector.num_parameters() == card.params
    assert card.extra["min_samples"] == ld.detector.min_samples
    # the sinc bank is rebuilt, not stored: the module's state is exactly the checkpoint's keys
    assert set(ld.detector.state_dict()) == set(read_state_dict(ld.checkpoint))
    assert "sinc_filters" not in ld.detector.state_dict()


def test_a_tampered_checkpoint_is_refused(tmp_path, monkeypatch, shared_dir):
    (tmp_path / "aasist").mkdir()
    bad = tmp_path / "aasist" / "AASIST-L.pth"
    shutil.copyfile(shared_dir / "weights" / "aasist" / "AASIST-L.pth", bad)
    with open(bad, "ab") as f:
        f.write(b"\0")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("tried the network"))
    with pytest.raises(WeightsError, match="sha256"):
        models.load_detector("aasist-l")


@pytest.fixture(scope="module")
def state_l(shared_dir):
    return read_state_dict(shared_dir / "weights" / "aasist" / "AASIST-L.pth")


def test_strict_loading_names_a_missing_key(state_l):
    det = AASIST.from_config(models.CARDS.get("aasist-l").config)
    state = dict(state_l)
    del state["encoder.3.0.bn1.running_var"]  # even a key the forward never reads must be there
    with pytest.raises(CheckpointMismatch, match=r"missing keys: encoder\.3\.0\.bn1\.running_var"):
        det.load_checkpoint_state(state)


def test_strict_loading_names_a_renamed_key(state_l):
    det = AASIST.from_config(models.CARDS.get("aasist-l").config)
    state = dict(state_l)
    state["master_1"] = state.pop("master1")
    with pytest.raises(CheckpointMismatch) as e:
        det.load_checkpoint_state(state)
    assert "missing keys: master1" in str(e.value) and "unexpected keys: master_1" in str(e.value)


def test_strict_loading_refuses_the_other_width(state_l):
    det = AASIST.from_config(models.CARDS.get("aasist").config)
    with pytest.raises(CheckpointMismatch, match="shape mismatch"):
        det.load_checkpoint_state(state_l)


@pytest.mark.parametrize("name", list(NAMES))
def test_input_gradients_are_finite_and_nonzero(name, loaded, parity):
    det = loaded[name].detector.eval()
    x = torch.from_numpy(parity["wav0"])[None].clone().requires_grad_(True)  # 1 s is enough here
    score = det(x)
    assert score.shape == (1,) and score.requires_grad
    (grad,) = torch.autograd.grad(score.sum(), x)
    assert torch.isfinite(grad).all()
    assert grad.abs().max() > 0
    assert (grad != 0).float().mean() > 0.5  # reaches most samples, not just a few


def test_batched_windows_match_one_by_one_and_the_release(loaded, parity):
    det = loaded["aasist-l"].detector
    release = parity["logits_aasist_l"][:, 1]  # the official score: bona-fide logit
    wavs = [parity["wav0"], parity["wav2"], parity["wav1"]]  # 16000 (tiled), 100000, exactly 64600
    policy = Policy("full", hop=35400)  # wav2 -> windows at 0 and 35400; the others -> one window
    batched = score_batch(det, wavs, policy, batch_size=3)  # batches [wav0, wav2 x2], [wav1]
    # one-window clips score exactly as the release scores its length-fixed input
    np.testing.assert_allclose(batched[[0, 2]], release[[0, 1]], rtol=0, atol=TOL)
    # the long clip, one window at a time: the first window is the official crop; the mean aggregates
    one_by_one = [det.score(torch.from_numpy(w)[None]).item() for w in policy.windows(wavs[1], det.nb_samp)]
    assert one_by_one[0] == pytest.approx(release[2], abs=TOL)
    assert batched[1] == pytest.approx(np.mean(one_by_one), abs=1e-5)
    assert abs(one_by_one[1] - one_by_one[0]) > 1e-3  # the second window really is different audio


def test_too_short_or_misshapen_input_is_refused(loaded):
    det = loaded["aasist-l"].detector
    with pytest.raises(ValueError, match=f"at least {det.min_samples}"):
        det.score(torch.zeros(1, det.min_samples - 1))
    assert det.score(torch.zeros(2, det.min_samples)).shape == (2,)  # the shortest input still runs
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        det.score(torch.zeros(det.nb_samp))


def test_sinc_bank_is_symmetric_band_pass():
    bank = sinc_bank(70, 128)
    assert bank.shape == (70, 1, 129) and bank.dtype == torch.float32
    torch.testing.assert_close(bank, bank.flip(-1), rtol=0, atol=1e-7)  # linear phase
    # centre tap of band [f_i, f_i+1] is 2 (f_i+1 - f_i) / sr; the bands tile 0..sr/2, so they sum to 1
    assert bank[:, 0, 64].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (bank[:, 0, 64] > 0).all()


def test_from_config_names_the_missing_field():
    cfg = dict(models.CARDS.get("aasist").config)
    del cfg["gat_dims"]
    with pytest.raises(ValueError, match="gat_dims"):
        AASIST.from_config(cfg)

