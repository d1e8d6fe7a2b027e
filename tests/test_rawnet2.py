"""RawNet2: official key layout, strict loading, fixed sinc bank, scores and input gradients."""
import json

import numpy as np
import pytest
import torch

from foundation.weights import WeightsError, read_state_dict
from models import CARDS, CheckpointMismatch, load_detector
from models.rawnet2 import CONFIG, RawNet2

N = 4000  # just over the shortest valid input (3211 samples): keeps the full-size model fast here

# A sample of the key names of the official model (asvspoof-challenge/2021 LA/Baseline-RawNet2).
OFFICIAL_KEYS = [
    "first_bn.running_var", "block0.0.conv1.weight", "block0.0.bn2.bias", "block1.0.bn1.weight",
    "block2.0.conv_downsample.weight", "block5.0.conv2.bias", "fc_attention0.0.weight",
    "fc_attention5.0.bias", "bn_before_gru.num_batches_tracked", "gru.weight_ih_l0", "gru.weight_hh_l2",
    "gru.bias_hh_l2", "fc1_gru.weight", "fc2_gru.bias",
]


@pytest.fixture(scope="module")
def official_conf(shared_dir):
    return json.loads((shared_dir / "weights" / "aasist" / "RawNet2_baseline.conf").read_text())


@pytest.fixture(scope="module")
def model(official_conf):
    torch.manual_seed(0)
    m = RawNet2.from_config(official_conf)  # the whole .conf: from_config picks model_config
    with torch.no_grad():  # non-trivial BatchNorm statistics so that a bad load would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
        for name, p in m.named_parameters():
            if "gru" in name or "fc" in name:
                p.mul_(3)  # less saturated outputs, so different inputs score differently
    return m.eval()


def _wav(batch=2, seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * torch.linspace(0.05, 0.5, batch).unsqueeze(1)


def test_config_matches_official_conf(official_conf):
    mc = dict(official_conf["model_config"])
    mc.pop("architecture")
    assert mc == CONFIG


def test_state_dict_has_official_names_and_no_sinc_bank(model):
    keys = set(model.state_dict())
    assert set(OFFICIAL_KEYS) <= keys
    assert not any(k.startswith("Sinc_conv") for k in keys)
    assert "block0.0.bn1.weight" not in keys  # the first block has no bn1, as officially


def test_strict_reload_from_file_gives_identical_scores(model, tmp_path):
    path = tmp_path / "rawnet2.pth"
    torch.save(model.state_dict(), path)
    fresh = RawNet2.from_config(CONFIG)
    fresh.load_checkpoint_state(read_state_dict(path))
    x = _wav()
    assert torch.equal(fresh.score(x), model.score(x))


def test_dataparallel_prefix_is_stripped(model):
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    fresh = RawNet2.from_config(CONFIG)
    fresh.load_checkpoint_state(state)
    assert torch.equal(fresh.state_dict()["fc2_gru.weight"], model.state_dict()["fc2_gru.weight"])


def test_renamed_key_is_named_in_the_mismatch(model):
    state = dict(model.state_dict())
    state["fc_attention9.0.weight"] = state.pop("fc_attention3.0.weight")
    with pytest.raises(CheckpointMismatch) as e:
        RawNet2.from_config(CONFIG).load_checkpoint_state(state)
    assert "fc_attention3.0.weight" in str(e.value) and "fc_attention9.0.weight" in str(e.value)


def test_scores_are_bona_fide_log_probabilities(model):
    x = _wav(batch=3, seed=1)
    with torch.inference_mode():
        logp = model.log_probs(x)
        s = model.score(x)
    assert logp.shape == (3, 2) and s.shape == (3,)
    assert torch.allclose(logp.exp().sum(1), torch.ones(3), atol=1e-5)
    assert torch.equal(s, model.infer(x)[:, 1])  # score: the inference path (tests/test_rawnet2_fast.py)
    torch.testing.assert_close(s, logp[:, 1], rtol=0, atol=1e-5)
    assert (s <= 0).all()
    assert s.unique().numel() == 3  # different inputs, different scores


def test_input_gradient_in_eval_mode(model):
    x = _wav(seed=2).requires_grad_(True)
    model.eval()
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(dim=1) > 0).all()


def _official_bank(n_filt: int, k: int, sr: int) -> torch.Tensor:
    """The official SincConv.__init__ + forward arithmetic, statement for statement (hsupp is a float32
    torch tensor, so the sinc argument is float32 and np.sinc evaluates it in float32)."""
    f = int(sr / 2) * np.linspace(0, 1, int(512 / 2) + 1)
    fmel = 2595 * np.log10(1 + f / 700)
    mel = 700 * (10 ** (np.linspace(np.min(fmel), np.max(fmel), n_filt + 1) / 2595) - 1)
    hsupp = torch.arange(-(k - 1) / 2, (k - 1) / 2 + 1)
    band_pass = torch.zeros(n_filt, k)
    for i in range(len(mel) - 1):
        fmin, fmax = mel[i], mel[i + 1]
        h_high = (2 * fmax / sr) * np.sinc(2 * fmax * hsupp / sr)
        h_low = (2 * fmin / sr) * np.sinc(2 * fmin * hsupp / sr)
        band_pass[i, :] = torch.Tensor(np.hamming(k)) * torch.Tensor(h_high - h_low)
    return band_pass


def test_sinc_bank_is_the_official_float32_arithmetic(model):
    k, sr, n_filt = 1025, 16000, CONFIG["filts"][0]
    bank = model.Sinc_conv.band_pass.squeeze(1)
    assert bank.dtype == torch.float32 and bank.shape == (n_filt, k)
    assert torch.equal(bank, _official_bank(n_filt, k, sr))  # bit-identical, not merely close
    # the float64 textbook formula is close but not equal (the official argument is float32)
    f = int(sr / 2) * np.linspace(0, 1, 257)
    fmel = 2595 * np.log10(1 + f / 700)
    edges = 700 * (10 ** (np.linspace(fmel.min(), fmel.max(), n_filt + 1) / 2595) - 1)
    hsupp = np.arange(-(k - 1) / 2, (k - 1) / 2 + 1)
    ref64 = np.stack([np.hamming(k) * ((2 * edges[i + 1] / sr) * np.sinc(2 * edges[i + 1] * hsupp / sr)
                                       - (2 * edges[i] / sr) * np.sinc(2 * edges[i] * hsupp / sr))
                      for i in range(n_filt)])
    np.testing.assert_allclose(bank.double().numpy(), ref64, atol=1e-6)
    # each filter passes its own band: the peak of its response lies between its edges
    freqs = np.fft.rfftfreq(8192, 1 / sr)
    peaks = freqs[np.abs(np.fft.rfft(bank.double().numpy(), 8192, axis=1)).argmax(axis=1)]
    assert ((peaks >= edges[:-1] - 20) & (peaks <= edges[1:] + 20)).all()


def test_scores_equal_the_official_bank_convolution(model):
    """With the official bank the sinc layer's output is the official one exactly (same conv input)."""
    x = _wav(seed=5)[:, None, :]
    got = model.Sinc_conv(x)
    want = torch.nn.functional.conv1d(x, _official_bank(20, 1025, 16000).view(20, 1, 1025))
    assert torch.equal(got, want)


def test_too_short_input_is_refused_with_the_minimum(model):
    with pytest.raises(ValueError, match=str(model.min_samples)):
        model.score(torch.zeros(1, model.min_samples - 1))
    assert model.score(torch.zeros(1, model.min_samples)).shape == (1,)  # the minimum itself is enough


def test_card_and_loader(model, tmp_path):
    card = CARDS.get("rawnet2")
    # the organisers' DF-track zip (tests/test_weights_archive.py runs its download over loopback)
    assert card.architecture == "rawnet2" and card.sha256 is None and card.extra["archive"] == "zip"
    assert card.url == "https://www.asvspoof.org/asvspoof2021/pre_trained_DF_RawNet2.zip"
    assert card.published_eer.startswith("22.38% EER (ASVspoof 2021 DF eval")
    assert card.params == sum(p.numel() for p in model.parameters())
    assert "--checkpoint" in card.description
    with pytest.raises(WeightsError, match="--checkpoint"):   # the tests are offline (conftest)
        load_detector("rawnet2")
    path = tmp_path / "mine.pth"
    torch.save(model.state_dict(), path)
    loaded = load_detector("rawnet2", checkpoint=path)
    assert not loaded.detector.training
    x = _wav(seed=3)
    assert torch.equal(loaded.detector.score(x), model.score(x))


@pytest.mark.gpu
def test_input_gradient_in_eval_mode_on_cuda(model):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    m = RawNet2.from_config(CONFIG)
    m.load_state_dict(model.state_dict())
    m = m.cuda().eval()
    x = _wav().cuda().requires_grad_(True)
    m(x).sum().backward()  # cuDNN's RNN backward would refuse eval mode
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.inference_mode():
        assert torch.allclose(m.score(x.detach()).cpu(), model.score(x.detach().cpu()), atol=1e-4)
