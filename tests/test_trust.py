"""Issue 13: a verdict you can trust. Runs bound to the checkpoint's content, non-finite scores as
per-utterance problems, every option validated before work, unusable data failing loudly, workers that
die with their parent, and the small failure cases. Tiny user detectors keep these fast."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from bench import api
from bench.cli import main as bench_main
from bench.data import load_dataset

TESTS_DIR = str(Path(__file__).resolve().parent)
ROOT = str(Path(__file__).resolve().parents[1])

NAN_DETECTOR = '''
import torch
from torch import nn
from models.base import Detector


class NaNDetector(Detector):
    """Scores like a tiny CNN, but the first utterance of every batch gets NaN (the second +inf)."""
    nb_samp = 16000

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 64, stride=32)
        self.out = nn.Linear(4, 1)

    @classmethod
    def from_config(cls, config):
        return cls()

    def forward(self, wav):
        s = self.out(torch.relu(self.conv(wav.float().unsqueeze(1))).mean(-1)).squeeze(-1)
        bad = torch.zeros_like(s)
        bad[0::3] = float("nan")
        bad[1::3] = float("inf")
        return s + bad
'''


def _save_tiny(path: Path, seed: int) -> Path:
    from userplugin.tiny_detector import TinyDetector

    torch.manual_seed(seed)
    torch.save(TinyDetector().state_dict(), path)
    return path


def _run(tmp_path, **kw):
    args = dict(models=("userplugin.tiny_detector:TinyDetector",), data="demo", limit=6, workers=0, n_boot=20)
    args.update(kw)
    return api.run(args.pop("suite", "clean"), **args)


# ---------------------------------------------------------------- 1. run identity = content
def test_overwritten_checkpoint_is_refused_not_mixed(tmp_path):
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    out = tmp_path / "run"
    first = _run(tmp_path, checkpoint=str(ckpt), out=str(out))
    sha0 = first.provenance["models"][0]["sha256"]
    _save_tiny(ckpt, 1)                                   # other weights under the same path
    with pytest.raises(ValueError) as e:
        _run(tmp_path, checkpoint=str(ckpt), out=str(out))
    msg = str(e.value)
    assert str(ckpt.resolve()) in msg and "sha256" in msg and "changed" in msg
    stored = pd.read_csv(out / "scores.csv")
    assert len(stored) == 6                                # nothing of the new weights went in
    assert json.loads((out / "run.json").read_text())["models"][0]["sha256"] == sha0


def test_a_moved_checkpoint_with_the_same_bytes_resumes(tmp_path):
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    out = tmp_path / "run"
    _run(tmp_path, checkpoint=str(ckpt), out=str(out))
    moved = tmp_path / "elsewhere" / "same.pth"
    moved.parent.mkdir()
    ckpt.rename(moved)
    again = _run(tmp_path, checkpoint=str(moved), out=str(out))   # no error: same content
    assert len(pd.read_csv(out / "scores.csv")) == 6 and again.provenance["status"] == "complete"


def test_default_folder_follows_the_checkpoint_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    a = _run(tmp_path, checkpoint=str(ckpt)).out
    _save_tiny(ckpt, 1)
    b = _run(tmp_path, checkpoint=str(ckpt)).out
    assert a != b                                          # a fresh run, not a resume into the old one
    sa, sb = pd.read_csv(a / "scores.csv"), pd.read_csv(b / "scores.csv")
    assert not np.allclose(sa["score"], sb["score"])


def test_changed_user_class_file_is_refused(tmp_path, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    src = Path(TESTS_DIR, "userplugin", "tiny_detector.py").read_text()
    (mod / "mydet_trust.py").write_text(src)
    monkeypatch.syspath_prepend(str(mod))
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    out = tmp_path / "run"
    _run(tmp_path, models=("mydet_trust:TinyDetector",), checkpoint=str(ckpt), out=str(out))
    (mod / "mydet_trust.py").write_text(src + "\n# edited: the forward could differ now\n")
    with pytest.raises(ValueError, match="class_file.*mydet_trust.py"):
        _run(tmp_path, models=("mydet_trust:TinyDetector",), checkpoint=str(ckpt), out=str(out))


# ---------------------------------------------------------------- 2. non-finite scores
def test_nan_detector_finishes_with_its_nan_clips_in_problems(tmp_path, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "nandet_trust.py").write_text(NAN_DETECTOR)
    monkeypatch.syspath_prepend(str(mod))
    from nandet_trust import NaNDetector

    ckpt = tmp_path / "nan.pth"
    torch.save(NaNDetector().state_dict(), ckpt)
    out = tmp_path / "run"
    from bench.run.runner import RunFailed

    # the two finite scores are both spoof: no condition has an EER, which fails the run (issue 26, item 16),
    # with every table written
    with pytest.raises(RunFailed, match="no condition has an EER"):
        _run(tmp_path, models=("nandet_trust:NaNDetector",), checkpoint=str(ckpt), out=str(out), batch_size=6)
    probs = pd.read_csv(out / "problems.csv")
    bad = probs[probs["stage"] == "nonfinite"]
    assert len(bad) == 4 and set(bad["model"]) == {"nandet_trust:NaNDetector"}   # 2 NaN + 2 inf of 6
    assert bad["reason"].str.contains("non-finite score").all()
    assert {"nan", "inf"} <= {r.split("(")[-1].rstrip(")") for r in bad["reason"]}
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 2 and np.isfinite(scores["score"]).all()
    assert set(scores["utt_id"]).isdisjoint(bad["utt_id"])
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    with pytest.raises(RunFailed):
        _run(tmp_path, models=("nandet_trust:NaNDetector",), checkpoint=str(ckpt), out=str(out), batch_size=6)
    assert len(pd.read_csv(out / "problems.csv")) == len(probs)   # a resume does not re-score the NaN clips


# ---------------------------------------------------------------- 3. options validated before work
@pytest.mark.parametrize("args, needle", [
    (["--seed", "-7"], "--seed"),
    (["--batch-size", "0"], "--batch-size"),
    (["--workers", "-1"], "--workers"),
    (["--limit", "0"], "--limit"),
    (["--out", ""], "--out is empty"),
    (["--model", "aasist,aasist"], "twice"),
])
def test_bad_run_options_fail_before_any_work(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--suite", "clean", "--model", "aasist-l", "--limit", "4"] + args
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "never")]
    assert bench_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0           # one line
    assert not (tmp_path / "never").exists() and not (tmp_path / "runs").exists()


def test_bad_perturb_options_fail_before_any_work(tmp_path, capsys):
    src = next(u.path for u in load_dataset("demo").utterances)
    for args, needle in ((["--seed", "-7"], "--seed"), (["--sample-rate", "0"], "--sample-rate")):
        assert bench_main(["perturb", "--family", "white-noise", "--severity", "1", *args, str(src),
                           str(tmp_path / "o.wav")]) == 1
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


# ---------------------------------------------------------------- 7. nothing usable = a failure
def test_all_unreadable_manifest_exits_non_zero(tmp_path, capsys):
    rows = []
    for i in range(4):
        p = tmp_path / f"junk{i}.wav"
        p.write_bytes(os.urandom(200))
        rows.append({"path": p.name, "label": "bonafide" if i % 2 else "spoof"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    code = bench_main(["run", "--suite", "clean", "--model", "userplugin.tiny_detector:TinyDetector",
                       "--checkpoint", str(ckpt), "--data", str(tmp_path / "m.csv"), "--workers", "0",
                       "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "nothing could be scored" in err[-1] and "problems.csv" in err[-1]
    assert len(pd.read_csv(tmp_path / "run" / "problems.csv")) == 4


# ---------------------------------------------------------------- 8. workers die with their parent
def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_soon_after_the_parent_is_killed(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nconditions:\n  - {family: white-noise, severities: [1, 2, 3, 4, 5]}\n"
                     "  - {family: pink-noise, severities: [1, 2, 3, 4, 5]}\n")
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--suite", str(suite), "--model", "aasist-l",
                             "--limit", "20", "--workers", "2", "--batch-size", "1", "--out", str(tmp_path / "r")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS_DIR])})
    kids: list[int] = []
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(kids) < 2:
        time.sleep(0.2)
        kids = _children(proc.pid)
    assert proc.poll() is None and kids, "the run ended before its workers could be observed"
    time.sleep(1.0)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 10 and any(_alive(k) for k in kids):
        time.sleep(0.2)
    left = [k for k in kids if _alive(k)]
    for k in left:   # do not leave them behind even when the test fails
        os.kill(k, signal.SIGKILL)
    assert not left, f"children {left} of the killed run were still alive 10 s later"


# ---------------------------------------------------------------- 10. the small ones
def test_non_utf8_manifest_names_file_and_line(tmp_path):
    from bench.data.manifest import ManifestError, read_manifest

    p = tmp_path / "m.csv"
    p.write_bytes(b"path,label\na.wav,bonafide\nb\xe9\xff.wav,spoof\n")
    with pytest.raises(ManifestError, match=r"m.csv, line 3: not UTF-8"):
        read_manifest(p)


def test_corrupted_store_is_a_clear_error(tmp_path):
    from bench.run.store import Store, StoreError

    (tmp_path / "store.sqlite").write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="store.sqlite is not a readable run store"):
        Store(tmp_path / "store.sqlite")


def test_random_bytes_as_safetensors_name_the_file(tmp_path):
    from foundation.weights import WeightsError
    from models import load_detector

    p = tmp_path / "w.safetensors"
    p.write_bytes(os.urandom(1000))
    with pytest.raises(WeightsError, match="w.safetensors as safetensors"):
        load_detector("userplugin.tiny_detector:TinyDetector", checkpoint=p)


def test_duplicate_missing_file_counted_once(tmp_path):
    from bench.data.manifest import read_manifest

    good = next(u.path for u in load_dataset("demo").utterances)
    (tmp_path / "m.csv").write_text(f"path,label,utt_id\n{good},bonafide,a\ngone.wav,spoof,b\ngone.wav,spoof,c\n")
    ds = read_manifest(tmp_path / "m.csv")
    assert len(ds.problems) == 1 and "b, c" in ds.problems[0][1]


def _manifest(tmp_path, n=3):
    demo = load_dataset("demo").utterances
    rows = [{"path": str(u.path), "label": u.label, "utt_id": u.utt_id}
            for u in [u for u in demo if u.label == "bonafide"][:n] + [u for u in demo if u.label == "spoof"][:n]]
    return rows


def test_loud_float_wav_is_scored_with_its_peak_recorded(tmp_path):
    rows = _manifest(tmp_path)
    wav, sr = sf.read(rows[0]["path"], dtype="float32")
    loud = tmp_path / "loud.wav"
    sf.write(loud, 40.0 * wav / np.max(np.abs(wav)), sr, subtype="FLOAT")
    rows[0] = {**rows[0], "path": str(loud)}
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    res = _run(tmp_path, data=str(tmp_path / "m.csv"), limit=None, checkpoint=str(ckpt), out=str(tmp_path / "r"))
    lv = res.problems[res.problems["stage"] == "level"]
    assert list(lv["utt_id"]) == [rows[0]["utt_id"]] and "peak 40" in lv["reason"].iloc[0]
    assert len(pd.read_csv(tmp_path / "r" / "scores.csv")) == 6     # still scored


def test_repaired_file_is_retried_with_retry_problems(tmp_path):
    rows = _manifest(tmp_path)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....junk")
    orig = rows[0]["path"]
    rows[0] = {**rows[0], "path": str(broken)}
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    kw = dict(data=str(tmp_path / "m.csv"), limit=None, checkpoint=str(ckpt), out=str(tmp_path / "r"))
    first = _run(tmp_path, **kw)
    assert list(first.problems["stage"]) == ["read"]
    broken.write_bytes(Path(orig).read_bytes())                         # repaired
    again = _run(tmp_path, **kw)
    assert list(again.problems["stage"]) == ["read"]                    # a plain resume skips it
    fixed = _run(tmp_path, retry_problems=True, **kw)
    assert fixed.problems.empty and len(pd.read_csv(tmp_path / "r" / "scores.csv")) == 6


def test_score_shows_good_file_and_error_without_nan(tmp_path):
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    good = next(u.path for u in load_dataset("demo").utterances)
    p = subprocess.run([sys.executable, "-m", "bench.cli", "score", "--model", "userplugin.tiny_detector:TinyDetector",
                        "--checkpoint", str(ckpt), str(good), str(tmp_path / "missing.wav")],
                       capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS_DIR])})
    assert p.returncode == 1
    lines = dict(line.split("\t") for line in p.stdout.strip().splitlines())
    assert lines[str(tmp_path / "missing.wav")] == "ERROR"
    float(lines[str(good)])                                             # the good file has its score
    assert "nan" not in p.stderr.lower() and "missing.wav" in p.stderr


def _strict(text: str):
    def bad(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=bad)


def test_every_json_output_passes_a_strict_parser(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS_DIR])}
    ckpt = _save_tiny(tmp_path / "tiny.pth", 0)
    good = next(u.path for u in load_dataset("demo").utterances)
    weights = os.environ.get("BENCH_WEIGHTS_DIR", "/work/shared/weights")
    cmds = [["models", "--json"], ["perturbations", "--json"], ["suites", "--json"],
            ["score", "--model", "userplugin.tiny_detector:TinyDetector", "--checkpoint", str(ckpt), "--json",
             str(good), str(tmp_path / "missing.wav")],
            ["weights", "aasist-l", "--from", weights, "--json"],
            ["perturb", "--json", "--family", "white-noise", "--severity", "1", str(good), str(tmp_path / "o.wav")]]
    for c in cmds:
        p = subprocess.run([sys.executable, "-m", "bench.cli", *c], capture_output=True, text=True, env=env)
        assert "NaN" not in p.stdout and "Infinity" not in p.stdout, c
        doc = _strict(p.stdout)
        assert doc, c
    models = _strict(subprocess.run([sys.executable, "-m", "bench.cli", "models", "--json"], capture_output=True,
                                    text=True, env=env).stdout)
    assert any(v is None for m in models for v in m.values())          # missing fields are null


def test_a_folder_bound_to_a_checkpoint_path_by_an_older_version_is_refused(tmp_path):
    from bench.run.runner import _check_identity
    from bench.run.store import Store

    legacy = {"suite": "clean", "models": ["aasist"], "checkpoint": "/old/new.pth", "seed": 0}
    with Store(tmp_path / "store.sqlite") as st:
        st.set_meta("identity", json.dumps(legacy))
        with pytest.raises(ValueError, match="earlier version.*/old/new.pth"):
            _check_identity(st, tmp_path, {"suite": "clean", "models": [{"model": "aasist"}], "seed": 0})


def test_an_older_folder_of_built_in_models_on_their_card_files_resumes(tmp_path):
    """Card files are pinned by the cards' sha256 (checked on loading), so an identity written by an earlier
    version without --checkpoint is re-bound and resumed; anything else in it must still match."""
    from bench.run.identity import model_identity
    from bench.run.runner import _check_identity
    from bench.run.store import Store

    legacy = {"suite": "clean", "models": ["aasist"], "checkpoint": None, "seed": 0}
    new = {"suite": "clean", "models": [model_identity("aasist", None)], "seed": 0}
    with Store(tmp_path / "store.sqlite") as st:
        st.set_meta("identity", json.dumps(legacy))
        with pytest.raises(ValueError, match="earlier version"):
            _check_identity(st, tmp_path, {**new, "seed": 1})       # another seed: refused
        _check_identity(st, tmp_path, new)
        assert json.loads(st.get_meta("identity")) == new           # re-bound to the new identity
        _check_identity(st, tmp_path, new)
