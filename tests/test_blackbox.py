"""Black-box attacks on a cheap local detector: ladders, budgets (SNR and queries), batch independence."""
import math

import numpy as np
import pytest
import torch

from attacks import ATTACKS, _budget
from attacks.universal_filter import GRID, apply_filter
from foundation.audio import load_audio
from foundation.seeding import torch_generator_for
from models.base import Detector

NAMES = ["square-linf", "hsja", "universal-filter"]


class Tilt(Detector):
    """Score = log of high-band over total energy (a spectral tilt): nonlinear, cheap, input-dependent."""
    nb_samp = 4000

    def forward(self, wav):
        d = wav[:, 1:] - wav[:, :-1]
        return torch.log(d.pow(2).mean(1) + 1e-8) - torch.log(wav.pow(2).mean(1) + 1e-8)


@pytest.fixture(scope="module")
def data():
    from bench.data import load_dataset

    utts = load_dataset("demo").utterances[:3]
    x = torch.from_numpy(np.stack([load_audio(u.path)[0][8000:12000] for u in utts]))
    return x, torch.tensor([0, 1, 0])


def gens(n, key="k"):
    return [torch_generator_for(0, f"u{i}", key) for i in range(n)]


def test_registered_with_snr_and_query_ladders():
    for name in NAMES:
        cls = ATTACKS.get(name)
        snrs = [lvl["snr_db"] for lvl in cls.LEVELS]
        qs = [lvl["queries"] for lvl in cls.LEVELS]
        assert len(snrs) == 5 and snrs == sorted(snrs, reverse=True) and qs == sorted(qs), name
        a = cls.at(5)
        assert ATTACKS.get(name).from_dict(a.to_dict()) == a
        with pytest.raises(ValueError, match="severity"):
            cls.at(6)
        with pytest.raises(ValueError, match="queries"):
            cls.at(1, queries=1)
        with pytest.raises(ValueError, match="snr_db"):
            cls.at(1, snr_db="loud")
        with pytest.raises(ValueError, match="unknown"):
            cls.at(1, bogus=1)
    with pytest.raises(ValueError, match="taps must be odd"):
        ATTACKS.get("universal-filter").at(1, taps=64)
    with pytest.raises(ValueError, match="proposal"):
        ATTACKS.get("square-linf").at(1, proposal="zigzag")
    with pytest.raises(ValueError, match="threshold"):
        ATTACKS.get("hsja").at(1, threshold="half")


@pytest.mark.parametrize("name,queries", [("square-linf", 30), ("hsja", 120), ("universal-filter", 15)])
def test_budgets_hold_and_queries_are_counted(data, name, queries):
    x, y = data
    a = ATTACKS.get(name).at(5, queries=queries)
    adv, q = a.craft(Tilt(), x, y, gens(3))
    assert adv.shape == x.shape and float(adv.abs().max()) <= 1.0
    assert q.shape == (3,) and int(q.max()) <= queries and int(q.min()) >= 1
    snr = _budget.achieved_snr_db(x, adv).numpy()
    moved = ~np.isinf(snr)
    assert np.all(snr[moved] >= a.snr_db - 1e-3), snr
    if name == "square-linf":
        assert q.tolist() == [queries] * 3                      # no success test: it spends the whole budget
        assert float(((adv - x).abs().amax(1) / _budget.amplitude(x, snr_db=a.snr_db)).max()) <= 1 + 1e-5
    if name == "universal-filter":
        assert torch.equal(adv[1], x[1]) and moved[0] and moved[2]   # bona fide clips are not the attacker's


@pytest.mark.parametrize("name", ["square-linf", "hsja"])
def test_batch_independent_and_seeded(data, name):
    x, y = data
    a = ATTACKS.get(name).at(4, queries=40)
    det = Tilt()
    adv, q = a.craft(det, x, y, gens(3))
    for i in range(3):
        one, qi = a.craft(det, x[i:i + 1], y[i:i + 1], [torch_generator_for(0, f"u{i}", "k")])
        torch.testing.assert_close(one[0], adv[i], atol=1e-6, rtol=0)
        assert int(qi[0]) == int(q[i])
    other, _ = a.craft(det, x, y, gens(3, key="another condition"))
    assert not torch.equal(other, adv) or name == "hsja"


def test_square_linf_moves_scores_the_intended_way(data):
    x, y = data
    det = Tilt()
    adv = ATTACKS.get("square-linf").at(3, queries=40)(det, x, y, gens(3))
    moved = det.score(adv) - det.score(x)
    assert moved[0] > 0 and moved[2] > 0 and moved[1] < 0, moved


def test_hsja_crosses_the_decision_within_budget(data):
    x, y = data
    det = Tilt()
    clean = det.score(x)
    thr = float(clean[[0, 2]].max()) + 0.3          # both spoofs judged spoof at this threshold
    a = ATTACKS.get("hsja").at(5, queries=300, threshold=thr)
    adv, q = a.craft(det, x, y, gens(3))
    s = det.score(adv)
    assert bool((s[[0, 2]] >= thr).all()), (clean, s, thr)             # spoofs now judged bona fide
    if clean[1] < thr:                                                 # bona fide already "spoof": one query
        assert int(q[1]) == 1 and torch.equal(adv[1], x[1])
    assert int(q.max()) <= 300


def test_universal_filter_response_is_within_budget(data):
    x, y = data
    a = ATTACKS.get("universal-filter").at(3, queries=20)
    h, q = a.learn(Tilt(), x, y, torch.Generator().manual_seed(1))
    assert q == 20 and h.shape == (a.taps,)
    dev = np.fft.rfft(h - a.identity().numpy(), n=4 * GRID)           # finer than the projection's grid
    assert 0 < np.abs(dev).max() <= 10 ** (-a.snr_db / 20) + 1e-9
    out = apply_filter(x, torch.from_numpy(h).float())
    assert torch.allclose(apply_filter(x, a.identity().float()), x)   # the identity filter is exact and aligned
    assert not torch.allclose(out, x)
    assert math.isfinite(float(_budget.achieved_snr_db(x, out).min()))


def test_hsja_starts_from_a_clip_of_the_other_class(data):
    """A decision-based evasion needs a start judged bona fide; noise (here too quiet to flip anything) fails at
    once, a bona-fide-judged clip the attacker owns lets the search run."""
    x, y = data
    det = Tilt()
    thr = float(det.score(x)[0]) + 1.0
    start = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(5)) * 0.1   # white: high tilt
    assert float(det.score(start[None])[0]) >= thr
    a = ATTACKS.get("hsja").at(3, queries=80, threshold=thr, init_snrs=[80.0])
    adv, q = a.craft(det, x[:1], y[:1], gens(1))
    assert int(q[0]) == 2 and torch.equal(adv[0], x[0])                 # clean check + one noise try, failed
    adv, q = a.craft(det, x[:1], y[:1], gens(1), starts=[start])
    assert 2 < int(q[0]) <= 80 and not torch.equal(adv[0], x[0])
    assert float(_budget.achieved_snr_db(x[:1], adv)[0]) >= a.snr_db - 1e-3


def test_level_labels_show_both_budgets():
    from bench.suites.labels import family_axis, level_labels

    levels = {i + 1: dict(p) for i, p in enumerate(ATTACKS.get("square-linf").LEVELS)}
    assert level_labels(levels, "attack")[5] == "ε = 10 dB SNR, 1000 queries"
    assert "SNR" in str(family_axis(levels, "attack"))
