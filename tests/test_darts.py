"""The DARTS family (models/darts.py): genotypes, the release's key layout and numbers, front ends, cards.

The reference is tests/darts_reference.py, a transcription of the Raw PC-DARTS release's modules: its
state dicts are the official layout (what ``epoch_N.pth`` holds), and its eval forward is what we compare
features and scores with. Tiny configurations (4 cells, 8 channels, small GRU, 0.25 s) keep this fast;
the full card is built for its key layout and shapes and runs one 64000-sample forward.
"""
import copy
import json
from collections import namedtuple
from types import SimpleNamespace

import pytest
import torch

import darts_reference as ref
from foundation.weights import WeightsError
from models import ARCHITECTURES, CARDS, CheckpointMismatch, load_detector
from models._darts_genotype import RAW_PC_DARTS, GenotypeError, parse_genotype
from models.darts import DARTS, RAW_PC_DARTS_CONFIG, n_params

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")  # the release's utils/genotypes.py
README_ARCH = ("Genotype(normal=[('dil_conv_5', 1), ('dil_conv_3', 0), ('dil_conv_5', 1), ('dil_conv_5', 2), "
               "('std_conv_5', 2), ('skip_connect', 3), ('std_conv_5', 2), ('skip_connect', 4)], "
               "normal_concat=range(2, 6), reduce=[('max_pool_3', 0), ('std_conv_3', 1), ('dil_conv_3', 0), "
               "('dil_conv_3', 2), ('skip_connect', 0), ('dil_conv_5', 2), ('dil_conv_3', 0), ('avg_pool_3', 1)], "
               "reduce_concat=range(2, 6))")
TINY = {"layers": 4, "init_channels": 8, "gru_hsize": 16, "gru_layers": 2}
N = 4000  # 0.25 s

# Where each key family of an official state dict comes from (eurecom-asp/raw-pc-darts-anti-spoofing):
KEY_FAMILIES = [
    "sinc.low_hz_", "sinc.band_hz_",               # func/sinc.py SincConv_fast: nn.Parameter, [C + 4, 1]
    "bn.running_var",                              # models/model.py Network.bn = BatchNorm1d(C)
    "stem.0.weight", "stem.1.bias",                # Network.stem = Sequential(Conv1d, BatchNorm1d, LeakyReLU)
    "cells.0.preprocess0.op.1.weight",             # ReLUConvBN_half.op = (LReLU, Conv1d, MaxPool1d, BN)
    "cells.0.preprocess0.op.3.running_mean",       # ... its BN, affine=False: running stats only
    "cells.0.preprocess1.op.2.running_var",        # ReLUConvBN_same.op = (LReLU, Conv1d, BN)
    "cells.2.preprocess0.conv_1.weight",           # FactorizedReduce after a reduction cell (conv_1, conv_2, bn)
    "cells.2.preprocess0.bn.running_mean",
    "cells.0._ops.0.op.1.weight",                  # DilConv.op = (LReLU, depthwise Conv1d, pointwise Conv1d, BN)
    "cells.0._ops.0.op.3.weight",                  # ... affine BN in the derived cells
    "cells.0._ops.4.op.2.running_mean",            # StdConv1d.op = (LReLU, Conv1d, BN)
    "gru.weight_ih_l0", "gru.bias_hh_l1",          # Network.gru = GRU(C_prev, gru_hsize, gru_layers)
    "fc_gru.weight",                               # Network.fc_gru = Linear(gru_hsize, gru_hsize)
    "l_layer.weight",                              # func/p2sgrad.py P2SActivationLayer.weight, [in_dim, 2]
]


def _wav(batch=3, seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * torch.linspace(0.05, 0.5, batch).unsqueeze(1)


def _official(cfg, seed=0):
    """The release's Network with random weights and BatchNorm statistics measured on a batch of noise.

    With the default statistics (mean 0, variance 1) every clip scores nearly the same: each cell shrinks
    the signal, and what reaches the GRU is mostly the BN offsets. Measured statistics keep the features
    at unit scale, so features and scores differ from clip to clip and the comparison means something."""
    torch.manual_seed(seed)
    args = SimpleNamespace(sinc_kernel=128, sinc_scale=cfg.get("sinc_scale", "mel"), is_trainable=False,
                           gru_hsize=cfg["gru_hsize"], gru_layers=cfg["gru_layers"])
    g = parse_genotype(cfg.get("genotype", RAW_PC_DARTS))
    net = ref.Network(cfg["init_channels"], cfg["layers"], args, 2, Genotype(**g))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.reset_running_stats()
                m.momentum = None          # a cumulative average: the statistics of the calibration batch
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
        net.train()(_wav(batch=8, seed=99))
    return net.eval()


@pytest.fixture(scope="module")
def official():
    return _official(TINY)


@pytest.fixture(scope="module")
def model(official):
    m = DARTS({**TINY})
    m.load_checkpoint_state(official.state_dict())
    return m.eval()


# ---------------------------------------------------------------------------------------------- genotypes
def test_genotype_forms_agree(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(RAW_PC_DARTS))
    assert parse_genotype(README_ARCH) == parse_genotype(str(path)) == parse_genotype(json.dumps(RAW_PC_DARTS))
    assert parse_genotype(Genotype(**RAW_PC_DARTS)) == RAW_PC_DARTS
    assert DARTS({**TINY, "genotype": str(path)}).genotype == RAW_PC_DARTS


@pytest.mark.parametrize("edit,message", [
    (lambda g: g["normal"].__setitem__(3, ["sep_conv_3", 2]), r"normal\[3\]: unknown op 'sep_conv_3'"),
    (lambda g: g["reduce"].pop(), r"reduce: needs an even number .* got 7"),
    (lambda g: g["normal"].__setitem__(2, ["std_conv_3", 3]), r"normal\[2\]: input index 3 out of range for node 1"),
    (lambda g: g["reduce"].__setitem__(0, ["max_pool_3", -1]), r"reduce\[0\]: input index -1"),
    (lambda g: g.pop("reduce_concat"), "missing reduce_concat"),
    (lambda g: g.__setitem__("normal_concat", [2, 6]), r"normal_concat: \[6\] out of range"),
    (lambda g: g.__setitem__("extra", 1), r"unknown field\(s\) extra"),
])
def test_genotype_errors_name_the_entry(edit, message):
    g = copy.deepcopy(RAW_PC_DARTS)
    edit(g)
    with pytest.raises(GenotypeError, match=message):
        parse_genotype(g)
    with pytest.raises(ValueError, match=message):   # a GenotypeError is a ValueError for the config's caller
        DARTS({**TINY, "genotype": g})


def test_genotype_file_errors(tmp_path):
    with pytest.raises(GenotypeError, match="does not exist"):
        parse_genotype(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="not valid JSON"):
        parse_genotype(str(bad))
    with pytest.raises(GenotypeError, match="not a literal"):
        parse_genotype("Genotype(normal=__import__('os'), normal_concat=[2], reduce=[], reduce_concat=[2])")


def test_bad_config_is_explained():
    with pytest.raises(ValueError, match="unknown key.*layer_count"):
        DARTS({**TINY, "layer_count": 3})
    with pytest.raises(ValueError, match="frontend must be one of sinc, ssl"):
        DARTS({**TINY, "frontend": "lfcc"})
    with pytest.raises(ValueError, match="init_channels must be even"):
        DARTS({**TINY, "init_channels": 7})
    with pytest.raises(ValueError, match="ssl_layer must be an index"):
        DARTS({**TINY, "ssl_layer": "last"})
    with pytest.raises(ValueError, match="darts config needs frontend_path"):
        DARTS({**TINY, "frontend": "ssl"})


# ------------------------------------------------------------------------------ official layout and numbers
def test_official_layout_loads_strictly_and_matches_the_release(official, model):
    mine, theirs = model.state_dict(), official.state_dict()
    assert set(mine) == set(theirs) and set(KEY_FAMILIES) <= set(mine)
    x = _wav(batch=4)
    with torch.no_grad():
        emb, cells = official(x)
        cos = official.forward_classifier(emb)
        s0, s1 = model.stem_states(x)
        got_cells = model.run_cells(s0, s1)
        got_emb = model.embeddings(got_cells)
    score = model.score(x)
    diffs = {"cells": (got_cells - cells).abs().max() / cells.abs().max(),
             "embeddings": (got_emb - emb).abs().max() / emb.abs().max(), "score": (score - cos[:, 1]).abs().max()}
    assert all(float(d) <= 1e-6 for d in diffs.values()), diffs   # measured: 0 (the same operations)
    assert float(cos[:, 1].max() - cos[:, 1].min()) > 0.05      # the scores depend on the input
    assert got_cells.shape == (4, 4 * 4 * 8, (N - 124) // 3 // 2 ** 5)


def test_renamed_key_is_named_and_module_prefix_stripped(official):
    state = {f"module.{k}": v for k, v in official.state_dict().items()}
    DARTS(TINY).load_checkpoint_state(state)
    state = dict(official.state_dict())
    state["cells.2.preprocess0.conv_3.weight"] = state.pop("cells.2.preprocess0.conv_1.weight")
    with pytest.raises(CheckpointMismatch, match="cells.2.preprocess0.conv_1.weight"):
        DARTS(TINY).load_checkpoint_state(state)


def test_checkpoint_file_through_the_loader(official, tmp_path):
    path = tmp_path / "epoch_3.pth"
    torch.save(official.state_dict(), path)
    det = load_detector("raw-pc-darts", checkpoint=path, config=TINY).detector
    x = _wav(seed=1)
    with torch.no_grad():
        expected = official.forward_classifier(official(x)[0])[:, 1]
    torch.testing.assert_close(det.score(x), expected, rtol=0, atol=1e-6)
    with pytest.raises(WeightsError, match="raw-pc-darts/fixed_mel.pth"):
        load_detector("raw-pc-darts")


def test_odd_frame_count_is_cropped_where_the_release_fails(official, model):
    x = _wav(batch=2, n=N + 3)        # (N + 3 - 124) // 3 is odd: the stem keeps one frame more
    with pytest.raises(RuntimeError), torch.no_grad():
        official(x)
    assert torch.isfinite(model.score(x)).all()
    with pytest.raises(ValueError, match=r"at least 220 samples"):
        model.score(torch.zeros(1, 219))


@pytest.mark.parametrize("scale", ["mel", "linear", "lem"])
def test_sinc_filters_equal_the_release(scale):
    theirs = ref.SincConv_fast(8, 128, freq_scale=scale)
    theirs(torch.zeros(1, 1, 200))
    mine = DARTS({**TINY, "sinc_scale": scale}).sinc
    assert torch.equal(mine.filters(), theirs.filters)
    assert torch.equal(mine.low_hz_, theirs.low_hz_) and not mine.low_hz_.requires_grad


def test_learnable_sinc_gets_gradients():
    m = DARTS({**TINY, "sinc_learnable": True, "freq_mask": False}).train()
    m(_wav()).sum().backward()
    assert m.sinc.low_hz_.grad is not None and m.sinc.low_hz_.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ masking, eval, gradients
def test_frequency_mask_only_in_training(model):
    x = _wav(seed=2)
    state = model.mask_generator.get_state()
    s1, s2 = model.score(x), model.score(x)
    assert torch.equal(s1, s2) and torch.equal(model.mask_generator.get_state(), state)  # eval draws nothing
    gen = torch.Generator().manual_seed(5)
    mask = model.sinc.draw_mask(gen)
    assert 0 < int((mask == 0).sum()) <= 15
    with torch.no_grad():
        out = model.sinc(x.unsqueeze(1), mask)
        assert out[:, mask == 0].abs().max() == 0 and out[:, mask == 1].abs().min(dim=-1).values.max() > 0
    a, b = copy.deepcopy(model).train(), copy.deepcopy(model).train()
    a.mask_generator.manual_seed(5)
    b.mask_generator.manual_seed(5)
    assert torch.equal(a(x), b(x))                       # the same generator, the same masks
    a.mask_generator.manual_seed(5)
    b.freq_mask = False
    assert not torch.allclose(a(x), b(x))                # ... and the mask changes the training output


def test_input_gradient_sinc(model):
    x = _wav(seed=3).requires_grad_(True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=1) > 0).all()
    assert not model.training


def test_linear_head():
    torch.manual_seed(1)
    m = DARTS({**TINY, "head": "linear"}).eval()
    x = _wav(seed=4)
    with torch.no_grad():
        logits = m.class_scores(x)
    torch.testing.assert_close(m.score(x), logits[:, 1] - logits[:, 0])
    loss = m.loss(logits, torch.tensor([0, 1, 1]))
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1])))


def test_p2sgrad_loss_is_mse_to_one_hot(model):
    cos = torch.tensor([[0.2, -0.4], [0.9, 0.1]])
    expected = ((cos - torch.tensor([[0.0, 1.0], [1.0, 0.0]])) ** 2).mean()
    torch.testing.assert_close(model.loss(cos, torch.tensor([1, 0])), expected)


@pytest.fixture(scope="module")
def tiny_w2v(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(4)
    folder = tmp_path_factory.mktemp("w2v") / "tiny-w2v"
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 conv_dim=[16, 16, 16], conv_kernel=[10, 3, 3], conv_stride=[5, 2, 2],
                                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, conv_bias=True,
                                 feat_extract_norm="layer", do_stable_layer_norm=True)).save_pretrained(folder)
    return str(folder)


def test_ssl_front_end(tiny_w2v, tmp_path):
    pytest.importorskip("transformers")
    torch.manual_seed(2)
    cfg = {**TINY, "frontend": "ssl", "frontend_path": tiny_w2v, "layers": 3}
    m = DARTS(cfg).eval()
    keys = set(m.state_dict())
    assert "ssl_model.model.encoder.layers.1.feed_forward.output_dense.weight" in keys and "proj.weight" in keys
    assert not any(k.startswith("sinc.") for k in keys)
    x = _wav(seed=5, n=2400).requires_grad_(True)    # 119 frames
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=1) > 0).all()
    assert torch.equal(m.score(x.detach()), m.score(x.detach()))
    path = tmp_path / "light.pth"
    torch.save(m.state_dict(), path)
    again = load_detector("light-darts", checkpoint=path, config=cfg).detector
    assert torch.equal(again.score(x.detach()), m.score(x.detach()))
    layer1 = DARTS({**cfg, "ssl_layer": 1})
    layer1.load_state_dict(m.state_dict())
    assert not torch.allclose(layer1.score(x.detach()), m.score(x.detach()))
    with pytest.raises(ValueError, match="SSL frames"):
        m.score(torch.zeros(1, 200))   # 9 frames; 3 cells need 16


# ---------------------------------------------------------------------------------------------- the cards
def test_full_card_layout_and_one_forward():
    card = CARDS.get("raw-pc-darts")
    assert ARCHITECTURES.get(card.architecture) is DARTS and card.url is None and card.sha256 is None
    assert "1.77%" in card.published_eer and "nextcloud.eurecom.fr" in card.description
    torch.manual_seed(0)
    args = SimpleNamespace(sinc_kernel=128, sinc_scale="mel", is_trainable=False, gru_hsize=1024, gru_layers=3)
    theirs = {k: v.shape for k, v in ref.Network(64, 8, args, 2, Genotype(**RAW_PC_DARTS)).state_dict().items()}
    m = DARTS(card.config).eval()
    assert {k: v.shape for k, v in m.state_dict().items()} == theirs
    assert sum(p.numel() for p in m.parameters()) == card.params == n_params(RAW_PC_DARTS_CONFIG)
    assert m.nb_samp == 64000 and m.min_samples == 1660
    with torch.no_grad():
        s0, s1 = m.stem_states(_wav(batch=1, n=64000))
        feats = m.run_cells(s0, s1)
    assert feats.shape == (1, 1024, 41) and torch.isfinite(m.l_layer(m.embeddings(feats))).all()


def test_light_darts_card():
    card = CARDS.get("light-darts")
    assert card.config["frontend"] == "ssl" and card.filename is None
    assert "1.08%" in card.published_eer and "bench train" in card.training_data
    assert card.extra["pretrained_frontend"] == "facebook/wav2vec2-xls-r-300m"
    assert n_params(card.config) == card.params
    with pytest.raises(WeightsError, match="--checkpoint"):
        load_detector("light-darts")
