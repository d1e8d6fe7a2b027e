"""The PC-DARTS search network (models/darts_search.py) against the release's search code.

The reference (tests/darts_reference.py) transcribes the release's ``MixedOp``, search ``Cell``, the edge
normalisation of ``Network.forward`` and ``Network.genotype``'s ``_parse``.
"""
import pytest
import torch
import torch.nn.functional as F

import darts_reference as ref
from models._darts_genotype import parse_genotype
from models._darts_ops import PRIMITIVES
from models.darts import DARTS
from models.darts_search import DARTSSearch, first_order_step, search_optimizers

TINY = {"layers": 3, "init_channels": 8, "gru_hsize": 16, "gru_layers": 1}


def _wav(batch=2, seed=0, n=1000):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * 0.2


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DARTSSearch(TINY)


def _randomise_arch(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.arch_parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def test_search_space_is_the_release_s():
    assert list(PRIMITIVES) == ref.PRIMITIVES


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_genotype_derivation_equals_the_release(net, seed):
    _randomise_arch(net, seed)
    g = net.genotype()
    for kind, alphas, betas in (("normal", net.alphas_normal, net.betas_normal),
                                ("reduce", net.alphas_reduce, net.betas_reduce)):
        expected = ref.parse(F.softmax(alphas, dim=-1).detach().numpy(), ref.edge_weights(betas).detach().numpy())
        assert g[kind] == [list(e) for e in expected]
        assert all(op != "none" for op, _ in g[kind])
    assert g["normal_concat"] == g["reduce_concat"] == [2, 3, 4, 5]
    assert parse_genotype(g) == g


def test_derived_network_accepts_the_searched_genotype(net):
    _randomise_arch(net, 4)
    cfg = net.derived_config()
    assert cfg["genotype"] == net.genotype() and "primitives" not in cfg and "partial_k" not in cfg
    det = DARTS(cfg).eval()
    s = det.score(_wav())
    assert s.shape == (2,) and torch.isfinite(s).all()


# (C_prev_prev, C_prev, C, reduction, reduction_prev) of the 3 cells: reduction cells at 3 // 3 and 2 * 3 // 3
CELLS = [(8, 8, 8, False, False), (8, 32, 16, True, False), (32, 64, 32, True, True)]


@pytest.mark.parametrize("index", [0, 1, 2])   # a normal cell, a reduction cell, one after a reduction
def test_search_cell_equals_the_release(net, index):
    cell = net.cells[index]
    c_pp, c_p, c, reduction, reduction_prev = CELLS[index]
    assert cell.reduction == reduction
    theirs = ref.SearchCell(4, 4, c_pp, c_p, c, reduction, reduction_prev)
    theirs.load_state_dict(cell.state_dict(), strict=True)
    _randomise_arch(net, 5)
    alphas, betas = (net.alphas_reduce, net.betas_reduce) if cell.reduction else (net.alphas_normal, net.betas_normal)
    w, e = F.softmax(alphas, dim=-1), net.edge_weights(betas)
    torch.testing.assert_close(e, ref.edge_weights(betas), rtol=0, atol=0)
    g = torch.Generator().manual_seed(index)
    s0, s1 = torch.randn(2, c_pp, 64, generator=g), torch.randn(2, c_p, 32, generator=g)
    cell.train(), theirs.train()
    with torch.no_grad():
        got, expected = cell(s0, s1, w, e), theirs(s0, s1, w, e)
    assert got.shape == (2, 4 * c, 16)
    assert float((got - expected).abs().max()) <= 1e-6 * float(expected.abs().max())


def test_parameters_split_and_are_saved(net):
    arch, weights = net.arch_parameters(), net.weights()
    assert len(arch) == 4 and net.alphas_normal.shape == (14, len(PRIMITIVES)) and net.betas_reduce.shape == (14,)
    assert {id(p) for p in arch} | {id(p) for p in weights} == {id(p) for p in net.parameters()}
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    assert {"alphas_normal", "betas_reduce"} <= set(net.state_dict())
    again = DARTSSearch(TINY)
    assert torch.equal(again.alphas_normal, DARTSSearch(TINY).alphas_normal)  # from alpha_seed, not global state
    assert not torch.equal(again.alphas_normal, DARTSSearch({**TINY, "alpha_seed": 1}).alphas_normal)


def test_first_order_step_updates_what_it_should():
    torch.manual_seed(1)
    m = DARTSSearch({**TINY, "freq_mask": False})
    w_opt, a_opt = search_optimizers(m)
    assert {id(p) for g in a_opt.param_groups for p in g["params"]} == {id(p) for p in m.arch_parameters()}
    train = (_wav(seed=1), torch.tensor([0, 1]))
    val = (_wav(seed=2), torch.tensor([1, 0]))
    alphas, stem = m.alphas_normal.detach().clone(), m.stem[0].weight.detach().clone()
    out = first_order_step(m, w_opt, a_opt, train, val, update_arch=False)   # a warm-up step
    assert set(out) == {"train_loss"} and torch.equal(m.alphas_normal, alphas)
    assert not torch.equal(m.stem[0].weight, stem)
    out = first_order_step(m, w_opt, a_opt, train, val)
    assert set(out) == {"train_loss", "val_loss"} and all(v == v for v in out.values())
    assert not torch.equal(m.alphas_normal, alphas) and m.training


def test_search_network_is_a_differentiable_detector(net):
    net.eval()
    x = _wav(seed=3).requires_grad_(True)
    net(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=1) > 0).all()


def test_bad_search_config_is_explained():
    with pytest.raises(ValueError, match="primitives.*sep_conv_3"):
        DARTSSearch({**TINY, "primitives": ["none", "sep_conv_3"]})
    with pytest.raises(ValueError, match="partial_k must be a positive integer dividing init_channels"):
        DARTSSearch({**TINY, "partial_k": 3})
    with pytest.raises(ValueError, match="unknown key.*genotype"):
        DARTSSearch({**TINY, "genotype": {}})
