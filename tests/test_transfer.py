"""Transfer attacks, attacks through perturbations, and the attack tables."""
import numpy as np
import pandas as pd
import pytest
import torch

from bench import api
from bench.run.adversarial import attack_summary, transfer_matrix
from bench.suites.suite import SuiteError, load_suite

SUITE = """name: transfer
conditions:
  - {attack: pgd-linf, severities: [5], source: aasist-l, params: {steps: 2}}
  - {attack: pgd-linf, severities: [5], source: aasist-l, through: {family: mp3, severity: 3}, params: {steps: 1}}
"""


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    import bench.run.adversarial as adv

    folder = tmp_path_factory.mktemp("transfer")
    (folder / "s.yaml").write_text(SUITE)
    calls = []
    real = adv.attack_batch

    def counting(detector, cond, *a, **k):
        calls.append((type(detector).__name__, cond.family))
        return real(detector, cond, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(adv, "attack_batch", counting)
    try:
        res = api.run(str(folder / "s.yaml"), models=("aasist", "aasist-l"), limit=4, batch_size=4, workers=0,
                      out=str(folder / "run"))
    finally:
        mp.undo()
    return res, calls


def test_transfer_is_crafted_once_and_white_box_eer_rises(transfer_run):
    res, calls = transfer_run
    # one crafting per unit and condition, not one per scored model
    assert sorted(f for _, f in calls) == ["pgd-linf<-aasist-l", "pgd-linf<-aasist-l|mp3@3"]
    r = res.results.set_index(["model", "family"])
    assert r.loc[("aasist-l", "clean"), "eer"] < r.loc[("aasist-l", "pgd-linf<-aasist-l"), "eer"]
    # both models scored the same crafted audio for every utterance
    s = res.scores
    for fam in ("pgd-linf<-aasist-l", "pgd-linf<-aasist-l|mp3@3"):
        per_model = s[s.family == fam].groupby("model")["utt_id"].apply(set)
        assert per_model["aasist"] == per_model["aasist-l"] and len(per_model["aasist"]) == 4


def test_transfer_matrix_from_a_run(transfer_run):
    res, _ = transfer_run
    with pytest.raises(ValueError, match="several transfer settings"):
        transfer_matrix(res.results)
    plain = transfer_matrix(res.results, through="")
    assert plain.shape == (1, 2)
    assert list(plain.index) == ["aasist-l"] and list(plain.columns) == ["aasist", "aasist-l"]
    r = res.results.set_index(["model", "family"])
    assert plain.loc["aasist-l", "aasist"] == r.loc[("aasist", "pgd-linf<-aasist-l"), "eer"]
    through = transfer_matrix(res.results, through="mp3@3")
    assert through.loc["aasist-l", "aasist-l"] == r.loc[("aasist-l", "pgd-linf<-aasist-l|mp3@3"), "eer"]


def test_suite_labels_and_keys_carry_source_and_through(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SUITE)
    conds = load_suite(str(p)).expand()
    assert [c.family for c in conds] == ["clean", "pgd-linf<-aasist-l", "pgd-linf<-aasist-l|mp3@3"]
    assert conds[1].source == "aasist-l" and conds[1].through is None
    assert conds[2].through["family"] == "mp3" and conds[2].build_through().severity == 3
    assert conds[1].key() != conds[2].key()
    assert conds[1].build().steps == 2


@pytest.mark.parametrize("cond, needle", [
    ("{attack: pgd-linf, severities: [1], source: no-such-model}", "no-such-model"),
    ("{attack: pgd-linf, severities: [1], through: {family: mp3}}", "through"),
    ("{attack: pgd-linf, severities: [1], through: {family: mp3, severity: 9}}", "severity 9"),
    ("{attack: pgd-linf, severities: [1], through: {family: mp3, severity: 2, eot: 0}}", "eot"),
    ("{attack: pgd-linf, severities: [1], through: {family: mp3, severity: 2, bogus: 1}}", "bogus"),
    ("{family: mp3, severities: [1], source: aasist}", "source"),
])
def test_bad_transfer_and_through_fields_name_the_field(tmp_path, cond, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(f"name: t\nconditions:\n  - {cond}\n")
    with pytest.raises(SuiteError) as e:
        load_suite(str(p))
    assert needle in str(e.value) and "bad.yaml" in str(e.value)


def test_conditions_carry_attack_source_and_through_as_columns(transfer_run, tmp_path):
    res, _ = transfer_run
    r = res.results.set_index(["model", "family"])
    row = r.loc[("aasist", "pgd-linf<-aasist-l|mp3@3")]
    assert (row["adv_attack"], row["source"], row["through"]) == ("pgd-linf", "aasist-l", "mp3@3")
    assert (r.loc[("aasist", "clean"), ["adv_attack", "source", "through"]] == "").all()
    s = res.scores
    assert set(s.loc[s.family == "pgd-linf<-aasist-l", "source"]) == {"aasist-l"}
    assert set(s.loc[s.family == "pgd-linf<-aasist-l", "through"].fillna("")) == {""}
    # a results.csv from before these columns: the report loader rebuilds them from run.json
    import shutil

    from reports.load import load_run
    old = tmp_path / "old"
    shutil.copytree(res.out, old)
    pd.read_csv(old / "results.csv").drop(columns=["adv_attack", "source", "through"]).to_csv(
        old / "results.csv", index=False)
    legacy = load_run(old).results.set_index(["model", "family"])
    assert legacy.loc[("aasist", "pgd-linf<-aasist-l|mp3@3"), "through"] == "mp3@3"
    assert transfer_matrix(legacy.reset_index(), through="").equals(transfer_matrix(res.results, through=""))


def test_through_wrapper_forward_is_detector_of_perturbed_and_gradient_flows():
    from attacks._through import Through
    from bench.data import load_dataset
    from bench.scoring.windows import fix_length
    from models import load_detector
    from perturbations import PERTURBATIONS

    det = load_detector("aasist-l").detector
    utts = load_dataset("demo", limit=2, seed=0).utterances
    from foundation.audio import load_audio
    x = torch.from_numpy(np.stack([fix_length(load_audio(str(u.path), target_sr=16000)[0], det.nb_samp)
                                   for u in utts]).astype(np.float32))
    mp3 = PERTURBATIONS.get("mp3").at(3)
    wrap = Through(det, mp3, [np.random.default_rng(i) for i in range(2)])
    assert wrap.nb_samp == det.nb_samp and not wrap.training
    xg = x.clone().requires_grad_(True)
    s = wrap(xg)
    perturbed = np.stack([mp3(r, 16000, np.random.default_rng(i)) for i, r in enumerate(x.numpy())])
    assert not np.allclose(perturbed, x.numpy(), atol=1e-3)  # mp3 really changed the input
    with torch.no_grad():
        ref = det(torch.from_numpy(perturbed))
    torch.testing.assert_close(s.detach(), ref, atol=1e-4, rtol=1e-4)
    (g,) = torch.autograd.grad(s.sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(ValueError, match="per-utterance generators"):
        wrap(x[:1])


def test_through_with_eot_averages_draws():
    from attacks._through import Through
    from perturbations import PERTURBATIONS

    class Energy(torch.nn.Module):   # a tiny differentiable "detector": mean energy
        nb_samp = 800
        sample_rate = 16000

        def forward(self, w):
            return (w ** 2).mean(dim=1)

    noise = PERTURBATIONS.get("white-noise").at(1)
    x = 0.1 * torch.from_numpy(np.random.default_rng(0).standard_normal((2, 800)).astype(np.float32))
    wrap = Through(Energy(), noise, [np.random.default_rng(i) for i in range(2)], eot=3)
    got = wrap(x)
    rngs = [np.random.default_rng(i) for i in range(2)]
    draws = [Energy()(torch.from_numpy(np.stack([noise(r, 16000, g) for r, g in zip(x.numpy(), rngs)])))
             for _ in range(3)]
    torch.testing.assert_close(got, sum(draws) / 3)
    assert not torch.allclose(draws[0], draws[1])  # the draws differ


def test_attack_summary_on_a_hand_built_table():
    results = pd.DataFrame([
        {"model": "m", "family": "clean", "severity": 0, "eer_threshold": 0.5, "kind": "perturbation"},
        {"model": "m", "family": "pgd-linf<-n", "severity": 5, "eer_threshold": 9.0, "kind": "attack",
         "adv_attack": "pgd-linf", "source": "n"},
        {"model": "n", "family": "clean", "severity": 0, "eer_threshold": -1.0, "kind": "perturbation"},
        {"model": "n", "family": "pgd-linf<-n", "severity": 5, "eer_threshold": 9.0, "kind": "attack",
         "adv_attack": "pgd-linf", "source": "n"},
        {"model": "m", "family": "mp3", "severity": 1, "eer_threshold": 0.0, "kind": "perturbation"},
    ]).assign(through="").fillna({"adv_attack": "", "source": ""})
    rows = [("a", "spoof", 0.7), ("b", "spoof", 0.2), ("c", "spoof", 0.5), ("d", "bonafide", 0.1),
            ("e", "bonafide", 0.9)]
    scores = pd.DataFrame([{"utt_id": u, "model": m, "family": "pgd-linf<-n", "severity": 5, "label": lab,
                            "score": sc} for m in ("m", "n") for u, lab, sc in rows]
                          + [{"utt_id": "a", "model": "m", "family": "mp3", "severity": 1, "label": "spoof",
                              "score": 3.0}])
    t = attack_summary(scores, results).set_index("model")
    assert list(t.index) == ["m", "n"]          # attack rows only; mp3 is not an attack
    m, n = t.loc["m"], t.loc["n"]
    assert m["threshold"] == 0.5 and (m["n_spoof"], m["n_bonafide"]) == (3, 2)
    assert m["success_spoof_to_bonafide"] == pytest.approx(2 / 3)   # 0.7 and 0.5 reach >= 0.5
    assert m["success_bonafide_to_spoof"] == pytest.approx(1 / 2)   # 0.1 < 0.5
    assert m["success"] == pytest.approx(3 / 5)
    assert n["success_spoof_to_bonafide"] == 1.0 and n["success_bonafide_to_spoof"] == 0.0
    assert m["attack"] == "pgd-linf" and m["source"] == "n"
    with pytest.raises(ValueError, match="no clean row"):
        attack_summary(scores, results[~((results.model == "n") & (results.family == "clean"))])


def test_transfer_matrix_on_a_hand_built_table():
    results = pd.DataFrame([{"model": t, "family": f"fgsm<-{s}", "severity": 2, "eer": e, "kind": "attack",
                             "adv_attack": "fgsm", "source": s, "through": ""}
                            for (s, t), e in {("a", "a"): 0.9, ("a", "b"): 0.3, ("b", "a"): 0.2,
                                              ("b", "b"): 0.8}.items()]
                           + [{"model": "a", "family": "fgsm", "severity": 2, "eer": 0.95, "kind": "attack",
                               "adv_attack": "fgsm", "source": "", "through": ""}])
    m = transfer_matrix(results)
    assert m.shape == (2, 2) and m.loc["a", "b"] == 0.3 and m.loc["b", "a"] == 0.2
    assert m.index.name == "source" and m.columns.name == "target"
    with pytest.raises(ValueError, match="no transfer conditions"):
        transfer_matrix(results, severity=3)
    with pytest.raises(ValueError, match="condition column"):   # no label parsing: the columns are needed
        transfer_matrix(results.drop(columns=["source"]))


def test_scorer_loads_a_source_outside_the_run():
    from bench.run.units import Scorer, ScorerSpec

    sc = Scorer(ScorerSpec(("aasist-l",), None, "cpu", "official", 1, 0))
    assert sc.source("aasist-l") is sc.by_name["aasist-l"]
    ld = sc.source("aasist")
    assert ld.name == "aasist" and "aasist" not in sc.by_name and sc.source("aasist") is ld
