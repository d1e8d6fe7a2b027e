"""RawNet2's inference path (models/_rawnet2_fast.py, behind ``RawNet2.score``/``infer``) computes the
reference's function: the FFT sinc convolution, the explicit GRU loop, the whole model, the switch."""
import pytest
import torch
import torch.nn.functional as F

from models import _rawnet2_fast as fast
from models.rawnet2 import CONFIG, RawNet2, sinc_bank


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = RawNet2.from_config(CONFIG)
    with torch.no_grad():  # non-trivial BatchNorm statistics and less saturated outputs
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
        for name, p in m.named_parameters():
            if "gru" in name or "fc" in name:
                p.mul_(3)
    return m.eval()


def _wav(batch, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * torch.linspace(0.05, 0.5, batch).unsqueeze(1)


# one block; exactly three blocks of new output (4096-point FFT: 3072 new samples each); one more sample
@pytest.mark.parametrize("length", [3211, 1024 + 3 * 3072, 1025 + 3 * 3072, 12000])
def test_fft_sinc_matches_the_direct_convolution(length):
    bank = sinc_bank(20, 1024).float()
    x = _wav(2, length, seed=length)
    ref = F.max_pool1d(F.conv1d(x.unsqueeze(1).double(), bank.double()).abs(), 3)
    got = fast.sinc_pooled(bank, x, n_fft=4096)
    assert got.shape == ref.shape
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-6)
    cache: dict = {}
    fast.sinc_pooled(bank, x, n_fft=4096, cache=cache)
    assert torch.equal(got, fast.sinc_pooled(bank, x, n_fft=4096, cache=cache))  # cached spectra change nothing


@pytest.mark.parametrize("batch,onednn", [(1, True), (5, True), (13, True), (5, False)])
def test_gru_loop_matches_nn_gru(batch, onednn, monkeypatch):
    if not onednn:
        monkeypatch.setattr(fast, "ONEDNN_MAX_ROWS", 0)
    torch.manual_seed(batch)
    gru = torch.nn.GRU(8, 16, num_layers=3, batch_first=True).eval()
    x = torch.randn(batch, 7, 8)
    with torch.inference_mode():
        ref = gru(x)[0][:, -1]
        got = fast.gru_last(gru, x)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("length", [9001])  # two FFT blocks (4000 samples: tests/test_rawnet2.py)
def test_fast_path_equals_the_reference(model, length):
    x = _wav(3, length, seed=length)
    with torch.inference_mode():
        ref_feats, ref = model.features(x), model.log_probs(x)
        feats, got = fast.features(model, x), model.infer(x)
    torch.testing.assert_close(feats, ref_feats, rtol=0, atol=1e-5)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert ref[:, 1].unique().numel() == 3  # the scores differ, so the comparison means something


def test_clip_groups_keep_the_order():
    x = torch.arange(5.0).unsqueeze(1).expand(5, 4)
    seen = []

    def fn(part):
        seen.append(part.shape[0])
        return part * torch.get_num_threads()  # each group runs with one intra-op thread

    out = fast.in_clip_groups(fn, x, threads=3)
    assert sorted(seen) == [1, 2, 2] and torch.equal(out, x)


def test_switch_turns_the_fast_path_off(model, monkeypatch):
    x = _wav(2, 4000, seed=7)
    model.fast_inference = False
    try:
        with torch.inference_mode():
            assert torch.equal(model.score(x), model.log_probs(x)[:, 1])
    finally:
        model.fast_inference = True
    # the switch is configuration read by the application, never the environment inside a constructor
    monkeypatch.setenv("BENCH_FAST_INFERENCE", "0")
    from foundation.device import fast_inference_enabled
    assert fast_inference_enabled() is False


def test_an_empty_batch_scores_to_nothing(model):
    assert model.score(torch.zeros(0, 9001)).shape == (0,)
