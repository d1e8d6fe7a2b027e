"""The contract's commands, through the installed console script's module."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

CONTRACT_FAMILIES = ["mp3", "aac", "opus", "vorbis", "amr-nb", "amr-wb", "gsm", "g711-mulaw", "g711-alaw", "g722",
                     "g726", "room", "rir", "white-noise", "pink-noise", "brown-noise", "background-noise", "babble",
                     "telephone", "packet-loss", "clipping", "quantization"]


def bench(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_listings_are_json_with_the_contract_names():
    models = json.loads(bench("models", "--json").stdout)
    assert {"aasist", "aasist-l", "rawnet2", "ssl-aasist", "raw-pc-darts", "light-darts"} <= {m["name"] for m in models}
    fams = json.loads(bench("perturbations", "--json").stdout)
    by = {f["family"]: f for f in fams}
    assert set(CONTRACT_FAMILIES) <= set(by)
    for f in fams:
        assert [lv["severity"] for lv in f["levels"]] == [1, 2, 3, 4, 5], f["family"]
    for name in ("white-noise", "pink-noise", "brown-noise", "babble", "background-noise"):
        assert all("snr_db" in lv["params"] for lv in by[name]["levels"])
    assert all("rt60" in lv["params"] for lv in by["room"]["levels"])
    assert all("bitrate" in lv["params"] for lv in by["mp3"]["levels"])
    suites = json.loads(bench("suites", "--json").stdout)
    assert {"clean", "compression", "reverb", "noise", "channel", "realworld", "adversarial", "all"} <= \
        {s["name"] for s in suites}


def test_score_reproduces_the_official_logits_on_files_of_any_format(tmp_path, shared_dir):
    fx = np.load(shared_dir / "fixtures" / "aasist_parity.npz")
    paths = []
    for i in range(3):
        p = tmp_path / f"parity{i}.flac"
        sf.write(p, fx[f"wav{i}"], 16000, subtype="PCM_16")
        paths.append(str(p))
    for model, key in (("aasist", "logits_aasist"), ("aasist-l", "logits_aasist_l")):
        out = bench("score", "--model", model, "--json", *paths)
        assert out.returncode == 0, out.stderr
        got = {r["path"]: r["score"] for r in json.loads(out.stdout)}
        for i, p in enumerate(paths):
            assert abs(got[p] - float(fx[key][i, 1])) <= 1e-4


def test_score_names_an_unreadable_file_and_scores_the_rest(tmp_path, shared_dir):
    fx = np.load(shared_dir / "fixtures" / "aasist_parity.npz")
    good = tmp_path / "good.wav"
    sf.write(good, fx["wav1"], 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    out = bench("score", "--model", "aasist-l", "--json", str(good), str(bad))
    assert out.returncode == 1
    rows = {r["path"]: r for r in json.loads(out.stdout)}
    assert rows[str(good)]["score"] == pytest.approx(float(fx["logits_aasist_l"][1, 1]), abs=1e-4)
    assert rows[str(bad)]["score"] is None and "bad.wav" in rows[str(bad)]["error"]


def test_perturb_writes_a_listenable_file(tmp_path):
    from bench.data import load_dataset

    src = next(u.path for u in load_dataset("demo").utterances if u.label == "bonafide")
    out = tmp_path / "mp3-5.wav"
    p = bench("perturb", "--family", "mp3", "--severity", "5", "--seed", "3", str(src), str(out))
    assert p.returncode == 0, p.stderr
    y, sr = sf.read(out)
    x, _ = sf.read(src)
    assert sr == 16000 and len(y) == len(x) and np.abs(y).max() > 0.01
    assert not np.allclose(x, y, atol=1e-3)


def test_bad_severity_is_a_clear_error(tmp_path):
    p = bench("perturb", "--family", "mp3", "--severity", "9", "x.wav", str(tmp_path / "y.wav"))
    assert p.returncode == 1 and "severity 9" in p.stderr


def test_help_explains_every_command():
    for cmd in ("models", "score", "perturbations", "perturb", "suites", "run", "report", "compare", "check"):
        p = bench(cmd, "--help")
        assert p.returncode == 0 and "usage: bench" in p.stdout


def test_one_checkpoint_for_several_models_is_refused(tmp_path, shared_dir):
    ckpt = shared_dir / "weights" / "aasist" / "AASIST-L.pth"
    p = bench("run", "--suite", "clean", "--model", "aasist,aasist-l", "--checkpoint", str(ckpt), "--limit", "2",
              "--out", str(tmp_path / "r"))
    assert p.returncode != 0 and "--checkpoint" in p.stderr and "aasist-l" in p.stderr
    assert not (tmp_path / "r" / "scores.csv").exists()


def test_every_family_has_a_description_not_a_signature():
    fams = json.loads(bench("perturbations", "--json").stdout)
    for f in fams:
        assert f["description"] and "(" not in f["description"].split()[0], f["family"]
