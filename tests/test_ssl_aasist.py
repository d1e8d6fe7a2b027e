"""SSL (wav2vec 2.0 / HuBERT / WavLM) + AASIST back end, on tiny random front ends.

The fairseq-layout checkpoints of the release are imitated by renaming a tiny transformers model's
keys with an inverse mapping written here from fairseq's module layout (independent of the one in
models/ssl_aasist.py), plus the pre-training-only tensors the release's files carry.
"""
import re

import pytest
import torch

pytest.importorskip("transformers")

from foundation.weights import WeightsError, read_state_dict  # noqa: E402
from models import CARDS, CheckpointMismatch, load_detector  # noqa: E402
from models.ssl_aasist import XLSR_300M, SSLAASIST  # noqa: E402

N = 2400  # samples: 119 frames of the tiny front ends below

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=[16, 16, 16], conv_kernel=[10, 3, 3], conv_stride=[5, 2, 2],
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
            hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, feat_proj_dropout=0.1)
# XLS-R style (layer-norm conv stack, pre-LN encoder) and wav2vec2-base style (group norm, post-LN)
TINY_W2V = {
    "layer": {**TINY, "conv_bias": True, "feat_extract_norm": "layer", "do_stable_layer_norm": True},
    "group": {**TINY, "conv_bias": False, "feat_extract_norm": "group", "do_stable_layer_norm": False},
}


def _config(norm="layer", frontend="wav2vec2"):
    return {"frontend": frontend, "frontend_config": TINY_W2V[norm]}


def _build(config, seed=0):
    torch.manual_seed(seed)
    m = SSLAASIST.from_config(config)
    with torch.no_grad():  # non-trivial BatchNorm statistics so that a bad load would show
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _wav(batch=2, seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * torch.linspace(0.05, 0.5, batch).unsqueeze(1)


_TO_FAIRSEQ = [
    (r"^masked_spec_embed$", "mask_emb"),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.weight_g$", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.weight_v$", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
    (r"\.attention\.(k|v|q|out)_proj\.", r".self_attn.\1_proj."),
    (r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
]


def to_fairseq(state, norm):
    """Our state dict -> the layout of the release (fairseq Wav2Vec2Model under ssl_model.model)."""
    out = {}
    for k, v in state.items():
        if k.startswith("ssl_model.model."):
            sub = k[len("ssl_model.model."):]
            # fairseq conv block: Sequential(conv, dropout, Sequential(T, LayerNorm, T), GELU) or
            # Sequential(conv, dropout, GroupNorm, GELU) for layer 0 in "default" (group) mode
            norm_idx = "2.1" if norm == "layer" else "2"
            sub = re.sub(r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.",
                         rf"feature_extractor.conv_layers.\1.{norm_idx}.", sub)
            for pat, rep in _TO_FAIRSEQ:
                sub = re.sub(pat, rep, sub)
            k = "ssl_model.model." + sub
        out[k] = v.clone()
    hidden = TINY["hidden_size"]
    out["ssl_model.model.quantizer.vars"] = torch.randn(1, 640, 16)
    out["ssl_model.model.quantizer.weight_proj.weight"] = torch.randn(640, 16)
    out["ssl_model.model.project_q.weight"] = torch.randn(hidden, 16)
    out["ssl_model.model.final_proj.bias"] = torch.randn(hidden)
    return out


@pytest.fixture(scope="module")
def model():
    return _build(_config("layer"))


def test_backend_keys_follow_the_release(model):
    keys = set(model.state_dict())
    for k in ["LL.weight", "first_bn.running_mean", "first_bn1.weight", "encoder.0.0.conv1.weight",
              "encoder.2.0.conv_downsample.weight", "encoder.5.0.bn1.weight", "attention.0.weight",
              "attention.2.running_var", "attention.3.bias", "pos_S", "master1", "master2",
              "GAT_layer_S.att_weight", "GAT_layer_T.proj_without_att.bias", "HtrgGAT_layer_ST11.att_weight12",
              "HtrgGAT_layer_ST22.proj_with_attM.weight", "pool_hT2.proj.weight", "out_layer.weight"]:
        assert k in keys, k
    assert "encoder.0.0.bn1.weight" not in keys
    assert model.state_dict()["pos_S"].shape == (1, 42, 64)
    backend = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("ssl_model."))
    ll = model.LL.weight.numel() + model.LL.bias.numel()
    assert backend - ll + 1024 * 128 + 128 == 447242  # the release's back end with a 1024-d XLS-R


@pytest.mark.parametrize("norm,prefix", [("layer", ""), ("group", "module.")])
def test_fairseq_layout_loads_strictly_with_identical_scores(norm, prefix):
    src = _build(_config(norm), seed=1)
    state = {prefix + k: v for k, v in to_fairseq(src.state_dict(), norm).items()}
    assert any(".self_attn." in k for k in state) and any("pos_conv.0.weight_g" in k for k in state)
    dst = _build(_config(norm), seed=2)
    x = _wav()
    assert not torch.equal(dst.score(x), src.score(x))
    dst.load_checkpoint_state(state)
    assert torch.equal(dst.score(x), src.score(x))


def test_fairseq_renamed_key_is_named_in_the_mismatch(model):
    state = to_fairseq(model.state_dict(), "layer")
    state["ssl_model.model.encoder.layers.0.self_attn.z_proj.weight"] = state.pop(
        "ssl_model.model.encoder.layers.0.self_attn.k_proj.weight")
    with pytest.raises(CheckpointMismatch) as e:
        _build(_config("layer")).load_checkpoint_state(state)
    assert "encoder.layers.0.attention.k_proj.weight" in str(e.value)
    assert "self_attn.z_proj.weight" in str(e.value)


def test_own_layout_round_trips_through_a_file(model, tmp_path):
    path = tmp_path / "ssl.pth"
    torch.save(model.state_dict(), path)
    fresh = _build(_config("layer"), seed=3)
    fresh.load_checkpoint_state(read_state_dict(path))
    x = _wav(seed=1)
    assert torch.equal(fresh.score(x), model.score(x))


def test_scoring_is_deterministic_and_in_eval_mode(model):
    x = _wav(seed=2)
    model.train()  # dropout on in the front end (0.1) and the back end
    train_out = model(x)
    s1, s2 = model.score(x), model.score(x)
    assert not model.training and not model.ssl_model.model.training
    assert torch.equal(s1, s2)
    assert not torch.allclose(train_out, s1)  # the test would notice dropout left on
    # a dtype mismatch made the release's wrapper call .train(): here the input is cast instead
    s64 = model.score(x.double())
    assert not model.ssl_model.model.training and model.LL.weight.dtype == torch.float32
    assert torch.allclose(s64, s1, atol=1e-5)


def test_raw_waveform_is_not_normalised(model):
    x = _wav(batch=1, seed=3)
    assert not torch.allclose(model.score(x), model.score(3 * x), atol=1e-4)


def test_input_gradient_in_eval_mode(model):
    x = _wav(seed=4).requires_grad_(True)
    model.eval()
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=1) > 0).all()


def test_logits_and_score(model):
    x = _wav(batch=3, seed=5)
    with torch.inference_mode():
        logits = model.logits(x)
        s = model.score(x)
    assert logits.shape == (3, 2) and torch.equal(s, model.infer(x)[:, 1])
    torch.testing.assert_close(s, logits[:, 1], rtol=0, atol=1e-5)
    assert s.unique().numel() == 3


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_inference_path_equals_the_reference(norm):
    """``score``/``infer``: clips split among threads, the time-major feature encoder (layer norm
    only: the group-norm front end runs as it is)."""
    from models._ssl_aasist_blocks import wav2vec2_hidden_time_major

    m = _build(_config(norm), seed=7)
    x = _wav(batch=3, seed=8, n=N + 77)
    with torch.inference_mode():
        ref, got = m.logits(x), m.infer(x)
        hidden = wav2vec2_hidden_time_major(m.ssl_model.model, x)
        if norm == "layer":
            torch.testing.assert_close(hidden, m.ssl_model(x), rtol=0, atol=1e-5)
        else:
            assert hidden is None
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert ref[:, 1].unique().numel() == 3


def test_frontend_uses_sdpa_and_the_switch_turns_the_fast_path_off(model, monkeypatch):
    assert model.ssl_model.model.config._attn_implementation == "sdpa"
    x = _wav(seed=9)
    model.fast_inference = False
    try:
        assert torch.equal(model.score(x), model.logits(x)[:, 1].detach())
    finally:
        model.fast_inference = True
    # the switch is configuration read by the application, never the environment inside a constructor
    monkeypatch.setenv("BENCH_FAST_INFERENCE", "0")
    from foundation.device import fast_inference_enabled
    assert fast_inference_enabled() is False


def test_too_short_input_is_refused(model):
    with pytest.raises(ValueError, match="SSL frames"):
        model.score(torch.zeros(1, 40))


def test_frontend_from_a_saved_hf_folder(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(4)
    hf = Wav2Vec2Model(Wav2Vec2Config(**TINY_W2V["layer"]))
    hf.save_pretrained(tmp_path / "tiny-w2v")
    det = SSLAASIST.from_config({"frontend": "wav2vec2", "frontend_path": str(tmp_path / "tiny-w2v")})
    got, ref = det.ssl_model.model.state_dict(), hf.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    assert det.ssl_model.model.config.apply_spec_augment is False
    with pytest.raises(ValueError, match="frontend_path"):
        SSLAASIST.from_config({"frontend_path": str(tmp_path / "missing")})


@pytest.mark.parametrize("frontend", ["hubert", "wavlm"])
def test_other_frontends_are_selectable(frontend):
    m = _build({"frontend": frontend, "frontend_config": {**TINY, "num_buckets": 8, "max_bucket_distance": 50}
                if frontend == "wavlm" else TINY})
    cls = {"hubert": "HubertModel", "wavlm": "WavLMModel"}[frontend]
    assert type(m.ssl_model.model).__name__ == cls
    x = _wav(seed=6).requires_grad_(True)
    s = m(x)
    s.sum().backward()
    assert s.shape == (2,) and torch.isfinite(s).all() and x.grad.abs().sum() > 0
    assert torch.equal(m.score(x.detach()), m.score(x.detach()))


def test_bad_config_is_explained():
    with pytest.raises(ValueError, match="unknown frontend"):
        SSLAASIST.from_config({"frontend": "whisper", "frontend_config": TINY})
    with pytest.raises(ValueError, match="frontend_config"):
        SSLAASIST.from_config({"frontend": "wav2vec2"})


def test_card():
    card = CARDS.get("ssl-aasist")
    assert card.architecture == "ssl-aasist" and card.filename == "ssl-aasist/LA_model.pth"
    assert card.config["frontend_config"] == XLSR_300M
    assert "0.82%" in card.published_eer and "2.85%" in card.published_eer
    with pytest.raises(WeightsError, match="ssl-aasist/LA_model.pth"):
        load_detector("ssl-aasist")


@pytest.mark.slow
def test_full_size_card_model_builds_and_scores():
    card = CARDS.get("ssl-aasist")
    m = SSLAASIST.from_config(card.config).eval()
    assert sum(p.numel() for p in m.parameters()) == card.params
    keys = m.state_dict()
    assert "ssl_model.model.encoder.layers.23.feed_forward.output_dense.weight" in keys
    assert m.score(_wav(batch=1, n=16000)).shape == (1,)
