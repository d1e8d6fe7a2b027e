"""Gradient attacks: budgets, waveform range, strength against textbook PGD, determinism, eval mode.

Most checks use a tiny differentiable stand-in detector (conv -> BatchNorm -> dropout -> conv -> linear;
it has eval-sensitive layers on purpose). The strength checks also run on the real AASIST-L official
weights, on 1 s clips by default (AASIST-L forward+backward of a 64600-sample clip takes seconds on
this shared CPU) and on the official 64600-sample crop under ``-m slow``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attacks import ATTACKS
from attacks._budget import achieved_snr_db, amplitude, linf
from attacks._gradient import GradientAttack
from models.base import Detector

#: every registered gradient (white-box) attack; the contract of all attacks is in test_registry_contract.py
NAMES = tuple(n for n, c in ATTACKS.items() if issubclass(c, GradientAttack))
FAST = {"fgsm": {}, "pgd-linf": {"steps": 4}, "pgd-l2": {"steps": 4}, "apgd": {"steps": 5},
        "cw": {"steps": 4, "kappa": 1e3}}  # a margin never reached: cw keeps pushing


class TinyDetector(Detector):
    """Conv front end, BatchNorm and dropout: a cheap stand-in with the layers that eval mode matters for."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, kernel_size=64, stride=16)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv1d(8, 8, kernel_size=5)
        self.out = nn.Linear(8, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            self.bn.running_mean.copy_(torch.randn(8, generator=g) * 0.1)
            self.bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
        self.eval()

    def forward(self, wav):
        h = self.drop(torch.tanh(self.bn(self.conv(wav[:, None, :] * 20.0))))
        h = torch.tanh(self.conv2(h))
        return self.out(h.mean(dim=2))[:, 0] * 3.0


def clips(n: int, length: int, seed: int = 0) -> torch.Tensor:
    """Synthetic clips: tone + chirp + noise around rms 0.1, centred (half the samples negative)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000.0
    rows = []
    for i in range(n):
        f0, f1 = rng.uniform(100, 400), rng.uniform(1000, 3000)
        w = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / t[-1] / 2) * t)
        rows.append(w + 0.02 * rng.standard_normal(length))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def objective(det, wav, label) -> torch.Tensor:
    """The loss every attack maximises: +score for spoof (0), -score for bona fide (1)."""
    return torch.where(label == 1, -1.0, 1.0) * det.score(wav)


def textbook_pgd(det, x, label, eps, alpha, steps, start=None):
    """torchattacks' PGD (Madry et al.) with the clamp moved from [0, 1] to [-1, 1]; returns the last iterate."""
    adv = x.clone() if start is None else (x + start).clamp(-1, 1)
    sign = torch.where(label == 1, -1.0, 1.0)
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((sign * det(adv)).sum(), adv)
        adv = adv.detach() + alpha * g.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=-1, max=1).detach()
    return adv


@pytest.fixture(scope="module")
def tiny():
    return TinyDetector()


@pytest.fixture(scope="module")
def data():
    return clips(4, 2048), torch.tensor([0, 1, 0, 1])


# ---- contract ---------------------------------------------------------------------------------
def test_registered_with_snr_ladders():
    for name in NAMES:
        cls = ATTACKS.get(name)
        snrs = [lvl["snr_db"] for lvl in cls.LEVELS]
        assert snrs == sorted(snrs, reverse=True) and len(snrs) == 5, name
        a = cls.at(5)
        assert a.snr_db == snrs[-1] and a.eps is None
        assert ATTACKS.get(a.to_dict()["attack"]).from_dict(a.to_dict()) == a
        b = cls.at(2, eps=0.01)  # an eps override replaces the ladder's snr_db
        assert b.eps == 0.01 and b.snr_db is None
        with pytest.raises(ValueError, match="severity"):
            cls.at(0)
        with pytest.raises(ValueError, match="exactly one budget"):
            cls(snr_db=30.0, eps=0.01).validate()
        with pytest.raises(ValueError, match="unknown"):
            cls.at(1, bogus=1)
        with pytest.raises(ValueError, match="snr_db"):
            cls.at(1, snr_db="loud")
    with pytest.raises(ValueError, match="steps"):
        ATTACKS.get("pgd-linf").at(1, steps=0)
    with pytest.raises(ValueError, match="schedule"):
        ATTACKS.get("pgd-l2").at(1, schedule="linear")
    with pytest.raises(ValueError, match="norm"):
        ATTACKS.get("apgd").at(1, norm="l1")


def test_bad_inputs_are_refused(tiny, data):
    x, y = data
    a = ATTACKS.get("pgd-linf").at(3, steps=1)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        a(tiny, x * 20, y, gen())
    with pytest.raises(ValueError, match="label"):
        a(tiny, x, torch.tensor([0, 2, 0, 1]), gen())
    with pytest.raises(ValueError, match="Generator"):
        a(tiny, x, y, None)

    class Frozen(TinyDetector):
        def forward(self, wav):
            return super().forward(wav.detach())

    with pytest.raises(ValueError, match="differentiabl"):
        a(Frozen(), x, y, gen())


# ---- budgets and range --------------------------------------------------------------------------
@pytest.mark.parametrize("name,over", [("fgsm", {}), ("pgd-linf", {"schedule": "cosine", "restarts": 2}),
                                       ("apgd", {})])
@pytest.mark.parametrize("budget", [{"snr_db": 20.0}, {"eps": 0.004}])
def test_linf_budget_exact(tiny, data, name, over, budget):
    x, y = data
    a = ATTACKS.get(name).at(4, **{**FAST.get(name, {}), **over, **budget})
    adv = a(tiny, x, y, gen())
    eps = budget.get("eps")
    if eps is None:
        eps = x.pow(2).mean(1).sqrt() * 10 ** (-budget["snr_db"] / 20)
        assert (achieved_snr_db(x, adv) >= budget["snr_db"] - 0.01).all()
    assert (linf(x, adv) <= eps + 1e-7).all()
    assert (linf(x, adv) >= 0.5 * eps).all()  # and the budget is actually used


@pytest.mark.parametrize("name,over", [("pgd-l2", {"steps": 20}), ("apgd", {"norm": "l2", "steps": 10}),
                                       ("cw", {"steps": 6})])
@pytest.mark.parametrize("snr", [40.0, 10.0])
def test_l2_snr_budget(tiny, data, name, over, snr):
    x, y = data
    adv = ATTACKS.get(name).at(1, snr_db=snr, **over)(tiny, x, y, gen())
    got = achieved_snr_db(x, adv)
    assert (got >= snr - 0.01).all(), got
    if name != "cw":  # cw stops spending budget once the margin is reached
        assert (got <= snr + 0.5).all(), got


def test_l2_eps_is_rms(tiny, data):
    x, y = data
    adv = ATTACKS.get("pgd-l2").at(1, eps=0.003, steps=10)(tiny, x, y, gen())
    rms = (adv - x).pow(2).mean(1).sqrt()
    assert (rms <= 0.003 * (1 + 1e-5)).all() and (rms >= 0.0025).all()


@pytest.mark.parametrize("name", NAMES)
def test_range_and_negative_half(tiny, name):
    x = clips(2, 2048, seed=3)
    x = x / x.abs().amax(dim=1, keepdim=True) * 0.98  # peaks near full scale, so the clamp must act
    y = torch.tensor([0, 1])
    adv = ATTACKS.get(name).at(5, **FAST.get(name, {}))(tiny, x, y, gen())  # 10 dB: large perturbations
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    assert adv.min() < -0.9  # a [0, 1] clamp would have zeroed this half
    deep = x < -0.5
    assert (adv[deep] < 0).float().mean() > 0.95
    assert ((adv < 0).float().mean() - (x < 0).float().mean()).abs() < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_silent_utterance_unchanged(tiny, name):
    x = torch.cat([torch.zeros(1, 2048), clips(1, 2048)])
    adv = ATTACKS.get(name).at(3, **FAST.get(name, {}))(tiny, x, torch.tensor([0, 0]), gen())
    assert torch.isfinite(adv).all()
    assert torch.equal(adv[0], x[0])


# ---- determinism and detector hygiene -----------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(tiny, data, name):
    x, y = data
    a = ATTACKS.get(name).at(3, **FAST.get(name, {}))
    one, two = a(tiny, x, y, gen(7)), a(tiny, x, y, gen(7))
    assert torch.equal(one, two)
    if name in ("pgd-linf", "pgd-l2", "apgd"):
        assert not torch.equal(one, a(tiny, x, y, gen(8)))


@pytest.mark.parametrize("name", NAMES)
def test_detector_kept_in_eval_without_grads(data, name):
    x, y = data
    det = TinyDetector()
    det.out.bias.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in det.named_parameters()}
    seen = []
    det.bn.register_forward_hook(lambda m, i, o: seen.append(m.training))
    det.drop.register_forward_hook(lambda m, i, o: seen.append(m.training))
    before = {k: v.clone() for k, v in det.state_dict().items()}
    for mode in (False, True):  # an eval detector stays eval; a train one is attacked in eval, then restored
        det.train(mode)
        ATTACKS.get(name).at(3, **FAST.get(name, {}))(det, x, y, gen())
        assert det.training is mode
    assert seen and not any(seen)
    assert all(p.grad is None for p in det.parameters())
    assert {n: p.requires_grad for n, p in det.named_parameters()} == flags
    assert all(torch.equal(before[k], v) for k, v in det.state_dict().items())  # BN statistics untouched


def test_runs_on_the_detectors_device_and_keeps_input_dtype(tiny, data):
    x, y = data
    adv = ATTACKS.get("fgsm").at(3)(tiny, x.double(), y, gen())
    assert adv.dtype == torch.float64 and adv.device == x.device
    with torch.inference_mode():  # callers scoring under inference mode can still attack
        adv2 = ATTACKS.get("fgsm").at(3)(tiny, x, y, gen())
    assert torch.allclose(adv2, adv.float(), atol=1e-6)


@pytest.mark.gpu
def test_gru_detector_on_cuda():
    """cuDNN's RNN backward refuses eval mode; the attack must still work on a GRU detector on CUDA."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")

    class GRUDetector(TinyDetector):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(8, 8, batch_first=True)

        def forward(self, wav):
            h = torch.tanh(self.bn(self.conv(wav[:, None, :] * 20.0)))
            h, _ = self.gru(h.transpose(1, 2))
            return self.out(h.mean(dim=1))[:, 0]

    det = GRUDetector().cuda().eval()
    x, y = clips(4, 2048).cuda(), torch.tensor([0, 1, 0, 1], device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    adv = ATTACKS.get("pgd-linf").at(3, steps=3)(det, x, y, g)
    assert adv.is_cuda and (achieved_snr_db(x, adv) >= 30.0 - 0.01).all()
    assert not det.training and all(p.grad is None for p in det.parameters())


# ---- strength -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_moves_scores_the_intended_way(tiny, data, name):
    x, y = data
    adv = ATTACKS.get(name).at(3, **FAST.get(name, {}))(tiny, x, y, gen())
    shift = tiny.score(adv) - tiny.score(x)
    assert (shift[y == 0] > 0).all() and (shift[y == 1] < 0).all(), shift


def test_pgd_linf_at_least_textbook_pgd(tiny, data):
    x, y = data
    eps, steps = 0.005, 6
    # the same random start (our first draw from a generator seeded alike) and torchattacks' alpha = eps/4
    start = (2 * torch.rand(x.shape, generator=gen(5)) - 1) * eps
    ref = textbook_pgd(tiny, x, y, eps, eps / 4, steps, start=start)
    pgd = ATTACKS.get("pgd-linf")
    adv = pgd.at(1, eps=eps, steps=steps, step=0.25, schedule="constant")(tiny, x, y, gen(5))
    assert (objective(tiny, adv, y) >= objective(tiny, ref, y) - 1e-5).all()
    more = pgd.at(1, eps=eps, steps=steps, step=0.25, schedule="constant", restarts=2)(tiny, x, y, gen(5))
    assert (objective(tiny, more, y) >= objective(tiny, adv, y) - 1e-5).all()
    # our defaults (cosine steps) against the textbook defaults, on average
    default = pgd.at(1, eps=eps, steps=steps)(tiny, x, y, gen(5))
    assert objective(tiny, default, y).mean() >= objective(tiny, ref, y).mean() - 1e-5


def test_pgd_linf_at_least_torchattacks(tiny, data):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = data
    eps, steps = 0.005, 6

    class TwoLogits(nn.Module):
        """torchattacks clamps to [0, 1]: feed it u = (x + 1) / 2 and map back, logits (0, score)."""

        def __init__(self, det):
            super().__init__()
            self.det = det

        def forward(self, u):
            s = self.det(2.0 * u - 1.0)
            return torch.stack([torch.zeros_like(s), s], dim=1)

    ta = torchattacks.PGD(TwoLogits(tiny), eps=eps / 2, alpha=eps / 8, steps=steps, random_start=False)
    ref = 2.0 * ta((x + 1) / 2, y) - 1.0
    ours = ATTACKS.get("pgd-linf").at(1, eps=eps, steps=steps, step=0.25, schedule="constant", random_start=False)
    adv = ours(tiny, x, y, gen())
    assert (linf(x, ref) <= eps + 1e-6).all()
    assert (objective(tiny, adv, y) >= objective(tiny, ref, y) - 1e-4).all()


# ---- the real detector ----------------------------------------------------------------------------
def fixture_clips(shared_dir, length: int) -> torch.Tensor:
    d = np.load(shared_dir / "fixtures" / "aasist_parity.npz")
    rows = [np.tile(d[f"wav{i}"], -(-length // len(d[f"wav{i}"])))[:length] for i in range(3)]
    rows.append(-0.7 * rows[1])
    return torch.tensor(np.stack(rows), dtype=torch.float32)


@pytest.fixture(scope="module")
def aasist_l():
    from models import load_detector

    return load_detector("aasist-l").detector


def test_aasist_l_pgd_beats_textbook(aasist_l, shared_dir):
    x, y = fixture_clips(shared_dir, 16000), torch.tensor([0, 1, 0, 1])
    snr, steps = 40.0, 2
    eps = amplitude(x, snr_db=snr)[:, None]
    adv = ATTACKS.get("pgd-linf").at(2, steps=steps, schedule="constant", random_start=False)(aasist_l, x, y, gen())
    ref = textbook_pgd(aasist_l, x, y, eps, 2.5 / steps * eps, steps)
    assert (linf(x, adv) <= eps[:, 0] + 1e-7).all() and (achieved_snr_db(x, adv) >= snr - 0.01).all()
    clean, ours, theirs = (objective(aasist_l, w, y) for w in (x, adv, ref))
    assert (ours > clean + 0.5).all(), (clean, ours)  # spoof scores up, bona fide down, all of them
    assert (ours >= theirs - 1e-4).all(), (ours, theirs)
    assert not aasist_l.training and all(p.grad is None for p in aasist_l.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name,over", [("pgd-linf", {}), ("pgd-l2", {"steps": 5})])
def test_aasist_l_official_crop_ladder(aasist_l, shared_dir, name, over):
    x, y = fixture_clips(shared_dir, 64600), torch.tensor([0, 1, 0, 1])
    clean = objective(aasist_l, x, y)
    cls = ATTACKS.get(name)
    for sev in range(1, 6):
        adv = cls.at(sev, **over)(aasist_l, x, y, gen(sev))
        snr = cls.LEVELS[sev - 1]["snr_db"]
        got = achieved_snr_db(x, adv)
        assert (got >= snr - 0.01).all(), (sev, got)
        if name == "pgd-l2":
            assert (got <= snr + 0.5).all(), (sev, got)
        assert (objective(aasist_l, adv, y) > clean).all(), sev


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fgsm", "apgd", "cw"])
def test_aasist_l_official_crop_other_attacks(aasist_l, shared_dir, name):
    x, y = fixture_clips(shared_dir, 64600), torch.tensor([0, 1, 0, 1])
    adv = ATTACKS.get(name).at(2, **FAST.get(name, {}))(aasist_l, x, y, gen())
    assert (achieved_snr_db(x, adv) >= 40.0 - 0.01).all()
    assert (objective(aasist_l, adv, y) > objective(aasist_l, x, y)).all()


@pytest.mark.slow
def test_aasist_l_pgd_at_least_torchattacks(aasist_l, shared_dir):
    """Our default PGD-Linf against torchattacks' PGD (its defaults: alpha = eps/4, here without its
    global-RNG random start), at equal eps and steps. The [0, 1] remap costs float32 rounding, and
    AASIST's max-pooling/top-k turn that into different trajectories, so only our default cosine schedule
    (not a bit-for-bit replay) is expected to come out ahead."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = fixture_clips(shared_dir, 64600), torch.tensor([0, 1, 0, 1])
    eps, steps = 0.002, 10

    class TwoLogits(nn.Module):
        def __init__(self, det):
            super().__init__()
            self.det = det

        def forward(self, u):  # torchattacks works in [0, 1]: u = (x + 1) / 2
            s = self.det(2.0 * u - 1.0)
            return torch.stack([torch.zeros_like(s), s], dim=1)

    ta = torchattacks.PGD(TwoLogits(aasist_l), eps=eps / 2, alpha=eps / 8, steps=steps, random_start=False)
    ref = 2.0 * ta((x + 1) / 2, y) - 1.0
    adv = ATTACKS.get("pgd-linf").at(1, eps=eps, steps=steps)(aasist_l, x, y, gen())
    ours, theirs = objective(aasist_l, adv, y), objective(aasist_l, ref, y)
    assert ours.mean() >= theirs.mean() and (ours >= theirs - 0.1).all(), (ours, theirs)
