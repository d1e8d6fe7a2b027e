"""The fusion detector (``fuse:M1+M2@FILE``) with the real AASIST and AASIST-L: its score against the members'
scores combined by hand, a white-box attack whose gradient goes through both members, its identity, the spec and
file checks, and `bench serve` serving it."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.run.identity import model_identity
from bench.suites.suite import is_code_spec
from foundation.audio import load_audio
from models import declared_sample_rate, load_detector
from models.fusion import FusionDetector, parse_spec, read_fusion

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio"
W = {"aasist": 0.4, "aasist-l": -0.7}   # a negative weight too: the sum must follow the file, not look plausible
BIAS = 1.25


def _file(path: Path, **change) -> Path:
    doc = {"format": "deepfake-bench/calibration", "version": 1, "kind": "fusion", "members": list(W),
           "weights": list(W.values()), "bias": BIAS, "costs": {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0},
           **change}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    path = _file(tmp_path_factory.mktemp("fusion") / "fusion.json")
    return path, load_detector(f"fuse:aasist-l+aasist@{path}")          # spec order differs from the file's


@pytest.fixture(scope="module")
def members():
    return {m: load_detector(m).detector for m in W}


def _clips(n: int, length: int) -> torch.Tensor:
    wavs = [load_audio(DEMO / f"D00{i:02d}.flac", target_sr=16000)[0][:length] for i in range(1, n + 1)]
    return torch.from_numpy(np.stack([np.pad(w, (0, length - len(w))) for w in wavs]).astype(np.float32))


def test_score_is_the_weighted_sum_of_the_members(fusion, members):
    _, ld = fusion
    x = _clips(2, 64600)
    want = sum(W[m] * members[m].score(x) for m in W) + BIAS
    got = ld.detector.score(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    with torch.no_grad():                                                # the reference path agrees too
        torch.testing.assert_close(ld.detector(x), want, rtol=0, atol=1e-3)
    assert ld.detector.sample_rate == 16000 and ld.detector.nb_samp == 64600
    assert ld.card.architecture == "fusion" and ld.card.input_policy == "official"


def test_a_white_box_attack_takes_gradients_through_every_member(fusion, members):
    from attacks import ATTACKS

    _, ld = fusion
    x, label = _clips(4, 8000), torch.tensor([0, 1, 0, 1])
    adv = ATTACKS.get("fgsm").at(2)(ld.detector, x, label, None)
    sign = torch.where(label == 0, 1.0, -1.0)
    grads = {}
    for m, det in members.items():                                       # each member's input gradient, alone
        xi = x.clone().requires_grad_(True)
        (sign * det(xi)).sum().backward()
        grads[m] = xi.grad
    step = (adv - x).sign()
    moved = (adv - x).abs() > 0
    combined = (W["aasist"] * grads["aasist"] + W["aasist-l"] * grads["aasist-l"]).sign()
    assert moved.float().mean() > 0.9
    assert torch.equal(step[moved], combined[moved])                     # the fused gradient's sign, exactly
    for g in grads.values():                                             # and not either member's alone
        assert (step[moved] != (g * 1.0).sign()[moved]).any()
    # the attack works against the fusion: spoofs pushed up, bona fide down
    with torch.no_grad():
        before, after = ld.detector.score(x), ld.detector.score(adv)
    assert torch.all((after - before) * sign > 0)


def test_identity_is_the_file_and_the_members(fusion, tmp_path):
    path, ld = fusion
    spec = f"fuse:aasist-l+aasist@{path}"
    ident = model_identity(spec, None)
    import hashlib

    assert ident["fusion_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ident["members"] == [{"model": "aasist-l"}, {"model": "aasist"}]   # cards: pinned by their sha256
    other = _file(tmp_path / "other.json", bias=0.0)
    assert model_identity(f"fuse:aasist-l+aasist@{other}", None)["fusion_sha256"] != ident["fusion_sha256"]
    assert load_detector(f"fuse:aasist-l+aasist@{other}").sha256 != ld.sha256
    assert declared_sample_rate(spec) == 16000
    assert not is_code_spec(spec) and is_code_spec(f"fuse:pkg.mod:Cls+aasist@{path}")
    with pytest.raises(ValueError, match="drop --checkpoint"):
        model_identity(spec, "x.pth")


def test_specs_and_files_are_checked(tmp_path):
    assert parse_spec("fuse:hf:org/name@rev+aasist@/x/f.json") == (["hf:org/name@rev", "aasist"], "/x/f.json")
    for bad, msg in (("fuse:aasist@f.json", "two or more members"), ("fuse:aasist+aasist-l", "expected fuse:"),
                     ("fuse:aasist+aasist@f.json", "named twice"), ("fuse:a++b@f.json", "two or more members")):
        with pytest.raises(ValueError, match=msg):
            parse_spec(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_fusion(tmp_path / "none.json")
    cases = [({"kind": "calibration"}, "field 'kind'"), ({"format": "x"}, "field 'format'"),
             ({"weights": [1.0]}, "one finite number per member"), ({"bias": "x"}, "field 'bias'"),
             ({"members": ["aasist", "aasist"]}, "two or more distinct")]
    for change, msg in cases:
        with pytest.raises(ValueError, match=msg):
            read_fusion(_file(tmp_path / "bad.json", **change))
    ok = _file(tmp_path / "ok.json")
    with pytest.raises(ValueError, match=r"names members \['aasist', 'rawnet2'\], but .* fuses"):
        load_detector(f"fuse:aasist+rawnet2@{ok}")
    with pytest.raises(ValueError, match="drop --checkpoint"):
        load_detector(f"fuse:aasist+aasist-l@{ok}", checkpoint=str(ok))


def test_members_of_different_lengths_each_see_their_own_crop():
    class Last(torch.nn.Module):   # the score is the input's length and last sample: what the member saw
        def __init__(self, n):
            super().__init__()
            self.nb_samp, self.sample_rate = n, 16000

        def forward(self, x):
            return x.shape[1] * 1.0 + x[:, -1]

        score = forward

    fus = FusionDetector([Last(10), Last(6)], [1.0, 100.0], 0.0)
    x = torch.arange(20.0)[None]
    assert fus.nb_samp == 10
    assert float(fus(x[:, :10])) == (10 + 9) + 100 * (6 + 5)             # the shorter member: the first 6
    assert float(fus(x[:, :4])) == (4 + 3) + 100 * (4 + 3)               # shorter input: nothing to crop
    with pytest.raises(ValueError, match="different sample rates"):
        other = Last(10)
        other.sample_rate = 8000
        FusionDetector([Last(10), other], [1.0, 1.0], 0.0)


def test_bench_serve_serves_a_fusion(fusion, members, tmp_path):
    from _served import Served, post

    path, ld = fusion
    s = Served("--model", f"fuse:aasist-l+aasist@{path}", log=tmp_path / "serve.log")
    try:
        assert s.health["model"] == ld.name and s.health["checkpoint_sha256"] == ld.sha256
        f = DEMO / "D0004.flac"
        status, doc = post(s.url + "/score", f.read_bytes())
        assert status == 200
        from bench.scoring.score import score_batch
        from bench.scoring.windows import parse_policy

        wav = load_audio(f, target_sr=16000)[0]
        want = sum(W[m] * score_batch(det, [wav], parse_policy("official"))[0] for m, det in members.items()) + BIAS
        assert doc["score"] == pytest.approx(want, abs=1e-4)
    finally:
        s.stop()


def test_bench_run_scores_a_fusion_and_binds_the_run_to_its_file(fusion, members, tmp_path):
    from bench import api
    from bench.data import load_dataset
    from bench.scoring.score import score_batch

    path, ld = fusion
    spec = f"fuse:aasist-l+aasist@{path}"
    res = api.run("clean", models=(spec,), limit=4, out=tmp_path / "run", workers=0, progress=False,
                  operating_point="bayes")
    sc = res.scores.set_index("utt_id")["score"]
    data = load_dataset("demo", limit=4, seed=0)
    wavs = [load_audio(u.path, target_sr=16000)[0] for u in data.utterances]
    want = sum(W[m] * score_batch(det, wavs, "official") for m, det in members.items()) + BIAS
    np.testing.assert_allclose(sc.loc[[u.utt_id for u in data.utterances]].to_numpy(), want, atol=1e-4)
    assert res.results["op_threshold"].iloc[0] == pytest.approx(-np.log(1.9))   # the file's costs, as llrs
    prov = json.loads((res.out / "run.json").read_text())
    assert prov["models"][0]["sha256"] == ld.sha256
    _file(path, bias=BIAS + 1.0)                                         # the fusion file changes
    try:
        with pytest.raises(ValueError, match="fusion_file"):
            api.run("clean", models=(spec,), limit=4, out=tmp_path / "run", workers=0, progress=False)
    finally:
        _file(path)
