"""Attack conditions inside `bench run`: scores move the intended way and do not depend on batching."""
import numpy as np
import pytest

from bench import api

SUITE = "name: adv\nconditions:\n  - {attack: pgd-linf, severities: [5], params: {steps: 2}}\n"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    p = tmp_path_factory.mktemp("adv") / "adv.yaml"
    p.write_text(SUITE)
    return str(p)


def run(suite, out, batch):
    return api.run(suite, models=("aasist-l",), limit=4, batch_size=batch, workers=0, out=str(out))


def test_attack_raises_eer_and_is_batch_independent(suite, tmp_path):
    a = run(suite, tmp_path / "b1", 1)
    b = run(suite, tmp_path / "b4", 4)
    res = a.results.set_index("family")
    assert res.loc["clean", "eer"] < res.loc["pgd-linf", "eer"]
    sa = a.scores.set_index(["family", "utt_id"])["score"]
    sb = b.scores.set_index(["family", "utt_id"])["score"]
    np.testing.assert_allclose(sa.sort_index().to_numpy(), sb.sort_index().to_numpy(), atol=1e-4)
    clean = sa.loc["clean"]
    adv = sa.loc["pgd-linf"]
    labels = a.scores[a.scores.family == "clean"].set_index("utt_id")["label"]
    for utt, lab in labels.items():
        moved = adv[utt] - clean[utt]
        assert (moved > 0) if lab == "spoof" else (moved < 0), (utt, lab, moved)
