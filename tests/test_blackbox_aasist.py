"""Black-box attacks against AASIST-L on the demo set, inside `bench run`, at the largest SNR budgets with small
query budgets (each query is one AASIST-L forward, 0.3-1 s on this project's shared 2-core CPU): 16 clips,
square-linf with 6 queries per clip, the universal filter learned with 20 queries on each of 4 training spoofs."""
import numpy as np
import pytest

from bench import api, metrics

SUITE = """name: blackbox-aasist
conditions:
  - {attack: square-linf, severities: [5], params: {queries: 6}}
  - {attack: universal-filter, severities: [5], params: {queries: 20}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bb-aasist")
    (folder / "s.yaml").write_text(SUITE)
    return api.run(str(folder / "s.yaml"), models=("aasist-l",), limit=16, workers=0, device="cpu", batch_size=8,
                   out=str(folder / "run"))


def _eer(g):
    return metrics.eer(g.loc[g.label == "bonafide", "score"].to_numpy(),
                       g.loc[g.label == "spoof", "score"].to_numpy())[0]


def test_square_linf_raises_spoof_scores_and_the_eer(run):
    s = run.scores
    clean = s[s.family == "clean"].set_index("utt_id")
    adv = s[s.family == "square-linf"].set_index("utt_id")
    spoof = clean.index[clean.label == "spoof"]
    assert (adv.loc[spoof, "score"] > clean.loc[spoof, "score"]).all()
    assert _eer(adv) > _eer(clean)
    assert (adv["queries"] == 6).all()
    r = run.results.set_index("family")
    assert r.loc["square-linf", "queries"] == 6 and r.loc["square-linf", "eer"] > r.loc["clean", "eer"]


def test_universal_filter_learned_on_half_lifts_the_eer_on_the_other_half(run):
    s = run.scores
    uni = s[s.family == "universal-filter<-aasist-l"].set_index("utt_id")
    clean = s[s.family == "clean"].set_index("utt_id").loc[uni.index]
    assert len(uni) == 8 and (uni["queries"] == 20).all()   # the held-out half of 16
    spoof = uni.index[uni.label == "spoof"]
    assert (uni.loc[spoof, "score"] > clean.loc[spoof, "score"]).all()
    assert _eer(uni) > _eer(clean)
    bona = uni.index[uni.label == "bonafide"]
    np.testing.assert_allclose(uni.loc[bona, "score"], clean.loc[bona, "score"], atol=1e-5)   # left alone
