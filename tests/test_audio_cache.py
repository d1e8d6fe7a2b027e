"""The perturbed-audio cache: filled by one run, used by the next (even for another output folder)."""
import numpy as np

from bench import api

SUITE = "name: c\nconditions:\n  - {family: white-noise, severities: [2]}\n"


def test_cache_is_filled_and_reused(tmp_path):
    suite = tmp_path / "c.yaml"
    suite.write_text(SUITE)
    cache = tmp_path / "cache"
    kw = dict(models=("aasist-l",), limit=4, workers=0, cache_dir=str(cache))
    a = api.run(str(suite), out=str(tmp_path / "a"), **kw)
    files = sorted(cache.rglob("*.npy"))
    assert len(files) == 4  # one per utterance for the perturbed condition; clean is never cached
    b = api.run(str(suite), out=str(tmp_path / "b"), **kw)
    np.testing.assert_array_equal(a.scores["score"].to_numpy(), b.scores["score"].to_numpy())
    # Prove the second run reads the cache: silence one entry and score again.
    wav = np.load(files[0])
    np.save(files[0], np.zeros_like(wav))
    c = api.run(str(suite), out=str(tmp_path / "c"), **kw)
    noisy_a = a.scores[a.scores.family == "white-noise"].set_index("utt_id")["score"]
    noisy_c = c.scores[c.scores.family == "white-noise"].set_index("utt_id")["score"]
    assert (noisy_a != noisy_c).sum() == 1
