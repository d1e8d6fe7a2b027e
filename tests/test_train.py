"""bench train: the loop, its files, resume after kill -9 (bit-identical weights), refusals, adversarial training,
and a trained folder as a model for the other commands."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from bench.train.config import TrainConfig
from bench.train.trainer import train

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY = "userplugin.train_tiny:TrainTiny"


def _manifest(tmp: Path, n: int = 12, labels=("bonafide", "spoof"), seconds: float = 0.4) -> Path:
    """Clips whose class is audible to a small model: bona fide a low tone, spoof a high one, each with noise."""
    rng = np.random.default_rng(0)
    rows = []
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(n):
        lab = labels[i % len(labels)]
        f = 220.0 if lab == "bonafide" else 3000.0
        wav = 0.3 * np.sin(2 * np.pi * (f + 10 * i) * t) + 0.02 * rng.standard_normal(t.size)
        p = tmp / f"c{i}.wav"
        sf.write(p, wav.astype(np.float32), 16000)
        rows.append({"path": p.name, "label": lab, "utt_id": f"c{i}", "speaker": f"s{i % 3}"})
    path = tmp / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _tiny(tmp: Path, out: str = "tr", **kw) -> TrainConfig:
    opts = dict(model=TINY, out=str(tmp / out), recipe="aasist", epochs=2, batch_size=4, checkpoint_every=1,
                device="cpu")
    opts.update(kw)
    if "data" not in opts:
        opts["data"] = str(_manifest(tmp))
    return TrainConfig(**opts)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_tiny_training_writes_its_folder_and_learns(tmp_path):
    cfg = _tiny(tmp_path, epochs=3, lr=3e-3)
    df = train(cfg, progress=False)
    out = Path(cfg.out)
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "train.json", "training_curve.png",
                 "training_curve.svg", "problems.csv", "state.pt"):
        assert (out / name).is_file(), name
    assert list(df["epoch"]) == [1, 2, 3]
    assert {"epoch", "train_loss", "dev_eer", "lr", "seconds"} <= set(df.columns)
    assert df["train_loss"].iloc[-1] < df["train_loss"].iloc[0]           # it learns the two tones
    rec = json.loads((out / "train.json").read_text())
    assert rec["status"] == "finished"
    assert rec["recipe"]["name"] == "aasist" and rec["recipe"]["lr"] == 3e-3 and rec["recipe"]["epochs"] == 3
    assert rec["recipe"]["crop_samples"] == 4000                           # a borrowed recipe crops to nb_samp
    assert "clovaai/aasist" in rec["recipe"]["source"]
    assert rec["model"]["start"]["from"] == "random initialisation"
    assert rec["split"]["by"] == "speaker" and rec["split"]["n_dev"] > 0   # seeded, no speaker in both halves
    assert rec["split"]["dev_speakers"] and rec["split"]["n_dev"] + rec["split"]["n_train"] == 12
    best = int(df.loc[df["dev_eer"].idxmin(), "epoch"]) if df["dev_eer"].notna().any() else 1
    assert rec["best"]["epoch"] == best
    # the same command again: nothing to do, nothing changes
    before = (out / "best.safetensors").read_bytes()
    assert list(train(cfg, progress=False)["epoch"]) == [1, 2, 3]
    assert (out / "best.safetensors").read_bytes() == before


def test_data_order_and_augmentation_do_not_depend_on_workers(tmp_path):
    a = train(_tiny(tmp_path, out="a", epochs=1, augment="noise", rawboost=3), progress=False)
    b = train(_tiny(tmp_path, out="b", epochs=1, augment="noise", rawboost=3, workers=2), progress=False)
    wa, wb = _weights(tmp_path / "a" / "last.safetensors"), _weights(tmp_path / "b" / "last.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["train_loss"].tolist() == b["train_loss"].tolist()
    c = train(_tiny(tmp_path, out="c", epochs=1, augment="noise", rawboost=3, seed=1), progress=False)
    assert c["train_loss"].tolist() != a["train_loss"].tolist()          # the seed does matter
    rec = json.loads((tmp_path / "a" / "train.json").read_text())
    assert rec["augmentation"]["suite"] == "noise" and rec["augmentation"]["rawboost"] == 3
    assert len(rec["augmentation"]["conditions"]) > 5


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from bench.train import data
from bench.train.config import TrainConfig
from bench.train.trainer import train
made = [0]
make = data.ExampleMaker.make
def counted(self, utt, epoch):   # kill -9 while the third batch of the second epoch is being made
    made[0] += 1
    if made[0] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
    return make(self, utt, epoch)
data.ExampleMaker.make = counted
train(TrainConfig(**{cfg!r}), progress=False)
"""


def test_resume_after_kill_9_gives_the_uninterrupted_weights(tmp_path):
    ref = _tiny(tmp_path, out="ref", epochs=3, checkpoint_every=3, data=str(_manifest(tmp_path, n=24)))
    train(ref, progress=False)
    steps = json.loads((tmp_path / "ref" / "train.json").read_text())["epochs"][0]["steps"]
    assert steps == 4                           # 16 training clips in batches of 4
    out = tmp_path / "killed"
    cfg = {**ref.to_dict(), "out": str(out)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    rc = subprocess.run([sys.executable, "-c", KILLER.format(tests=str(TESTS), kill_at=4 * 4 + 3 * 4 + 1, cfg=cfg)],
                        env=env, cwd=str(ROOT), timeout=300).returncode
    assert rc == -signal.SIGKILL
    st = torch.load(out / "state.pt", weights_only=True)
    assert (st["epoch"], st["step"], st["global_step"]) == (1, 2, 6)   # the last step checkpoint; a step is lost
    assert len(pd.read_csv(out / "metrics.csv")) == 1
    df = train(TrainConfig(**cfg), progress=False)
    assert list(df["epoch"]) == [1, 2, 3]
    for name in ("last.safetensors", "best.safetensors"):
        a, b = _weights(tmp_path / "ref" / name), _weights(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ref_df = pd.read_csv(tmp_path / "ref" / "metrics.csv")
    assert ref_df["train_loss"].tolist() == df["train_loss"].tolist()


def test_a_folder_in_use_or_of_another_training_is_refused(tmp_path):
    cfg = _tiny(tmp_path, epochs=1)
    train(cfg, progress=False)
    with pytest.raises(ValueError, match=r"holds another training \(it differs in: .*seed"):
        train(TrainConfig(**{**cfg.to_dict(), "seed": 5}), progress=False)
    from bench.run.store import RunBusy, RunLock

    with RunLock(Path(cfg.out), "train.lock"):
        with pytest.raises(RunBusy, match=f"in use by pid {os.getpid()}"):
            train(TrainConfig(**{**cfg.to_dict(), "epochs": 2}), progress=False)


@pytest.mark.parametrize("change, match", [
    ({"epochs": 0}, "--epochs must be a whole number >= 1"),
    ({"lr": -1.0}, "--lr must be a positive number"),
    ({"lr": float("nan")}, "--lr must be a positive number"),
    ({"recipe": "fast"}, "unknown --recipe 'fast'"),
    ({"augment": "nosuchsuite"}, "nosuchsuite"),
    ({"rawboost": 9}, "--rawboost must be an algorithm 1..8"),
    ({"adversarial": "square-linf@1"}, "needs a white-box attack"),
    ({"adversarial": "pgd linf"}, "--adversarial must be ATTACK or ATTACK@SEVERITY"),
    ({"augment_prob": 1.5}, "--augment-prob must be a probability"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, change, match):
    with pytest.raises(Exception, match=match):
        train(_tiny(tmp_path, **change), progress=False)
    assert not (tmp_path / "tr" / "state.pt").exists()


def test_one_class_or_an_empty_dev_split_is_refused(tmp_path):
    only = _manifest(tmp_path, labels=("bonafide",))
    with pytest.raises(ValueError, match="--data: the training set has only bonafide clips"):
        train(_tiny(tmp_path, data=str(only)), progress=False)
    sub = tmp_path / "dev"
    sub.mkdir()
    dev = _manifest(sub, n=3, labels=("spoof",))
    with pytest.raises(ValueError, match="--dev: the dev set has only spoof clips"):
        train(_tiny(tmp_path, dev=str(dev)), progress=False)


def test_non_finite_losses_stop_training_keeping_the_last_good_state(tmp_path, caplog):
    cfg = _tiny(tmp_path, model="userplugin.train_tiny:NanTiny", epochs=2)
    df = train(cfg, progress=False)
    assert len(df) == 1 and int(df["skipped_steps"].iloc[0]) == 2     # epoch 1: both steps skipped
    rec = json.loads((Path(cfg.out) / "train.json").read_text())
    assert rec["status"].startswith("stopped: 3 non-finite losses in a row (epoch 2, step 1)")
    st = torch.load(Path(cfg.out) / "state.pt", weights_only=True)
    assert st["status"] == rec["status"]                             # the same command again does nothing
    assert len(train(cfg, progress=False)) == 1
    assert "the step is skipped" in caplog.text


def test_adversarial_training_replaces_batches_with_attacks(tmp_path):
    df = train(_tiny(tmp_path, epochs=1, adversarial="fgsm@1", adversarial_prob=1.0), progress=False)
    assert int(df["adversarial"].iloc[0]) == int(df["examples"].iloc[0]) > 0
    plain = train(_tiny(tmp_path, out="plain", epochs=1), progress=False)
    assert df["train_loss"].iloc[0] != plain["train_loss"].iloc[0]


def test_finetuned_aasist_l_folder_is_a_model_for_score_and_run(tmp_path):
    from bench import api
    from bench.run.identity import model_identity
    from models import CARDS

    out = tmp_path / "ft"
    df = api.train("aasist-l", "demo", out, limit=8, epochs=1, batch_size=4, device="cpu", progress=False)
    assert len(df) == 1
    rec = json.loads((out / "train.json").read_text())
    assert rec["model"]["start"] == {"from": "published weights", "path": rec["model"]["start"]["path"],
                                     "sha256": CARDS.get("aasist-l").sha256}
    assert rec["recipe"]["name"] == "aasist-l" and rec["recipe"]["crop_samples"] == 64600
    clip = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio"
    files = sorted(clip.iterdir())[:2]
    by_folder = api.score_files(str(out), files, device="cpu")
    by_file = api.score_files("aasist-l", files, checkpoint=str(out / "best.safetensors"), device="cpu")
    base = api.score_files("aasist-l", files, device="cpu")
    assert np.allclose(by_folder["score"], by_file["score"], atol=1e-6)
    assert not np.allclose(by_folder["score"], base["score"], atol=1e-6)   # the weights did change
    ident = model_identity(str(out), None)
    assert ident["checkpoint_sha256"] == rec["best"]["sha256"] and len(ident["training_sha256"]) == 64


def test_two_processes_on_gloo_train_like_one(tmp_path):
    """torchrun, 2 CPU processes (gloo): each makes and trains on half of every global batch of 4; the loss curve
    and the weights equal one process's up to float rounding."""
    data = _manifest(tmp_path, n=24)
    args = ["train", "--model", "userplugin.train_tiny:PlainTiny", "--recipe", "aasist", "--data", str(data),
            "--epochs", "2", "--batch-size", "4", "--lr", "3e-3", "--device", "cpu", "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "bench.cli", *args, "--out", str(tmp_path / "one")], env=env,
                         cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "bench.cli", *args, "--out", str(tmp_path / "two")], env=env, cwd=str(ROOT),
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = pd.read_csv(tmp_path / "one" / "metrics.csv"), pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert list(b["epoch"]) == [1, 2] and list(b["examples"]) == list(a["examples"])
    assert np.allclose(a["train_loss"], b["train_loss"], rtol=0, atol=1e-4)
    assert a["train_loss"].iloc[0] != a["train_loss"].iloc[1]          # it did train
    wa, wb = _weights(tmp_path / "one" / "last.safetensors"), _weights(tmp_path / "two" / "last.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert not (tmp_path / "two" / "train.lock").exists()
