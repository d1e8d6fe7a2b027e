"""bench train fine-tunes every kind of detector bench loads (tiny budgets): RawNet2 from a random initialisation,
SSL-AASIST with a tiny random wav2vec 2.0 front end and its recipe's RawBoost, an hf: classifier (tiny, random, saved
with save_pretrained; the hf recipe's AdamW, warm-up and accumulation), and each training folder loads as a model.
(AASIST-L: test_train.py; a user class: test_train.py; the DARTS family: test_train_search.py.)"""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench import api
from test_hf import _tiny as tiny_hf
from test_ssl_aasist import TINY_W2V
from test_train import _manifest


def _check_folder(out, data_dir, arch):
    rec = json.loads((out / "train.json").read_text())
    assert rec["status"] == "finished" and rec["model"]["architecture"] == arch
    clips = sorted(data_dir.glob("c*.wav"))[:3]
    scores = api.score_files(str(out), clips, device="cpu")
    assert scores["error"].isna().all() and np.isfinite(scores["score"]).all()
    return rec


def test_rawnet2_from_random_initialisation(tmp_path):
    df = api.train("rawnet2", _manifest(tmp_path, n=8), tmp_path / "r", epochs=1, batch_size=4, device="cpu",
                   from_scratch=True, progress=False)
    assert len(df) == 1 and np.isfinite(df["train_loss"]).all()
    rec = _check_folder(tmp_path / "r", tmp_path, "rawnet2")
    assert rec["model"]["start"]["from"] == "random initialisation"
    assert rec["recipe"]["name"] == "rawnet2" and "asvspoof-challenge/2021" in rec["recipe"]["source"]


def test_ssl_aasist_with_a_tiny_front_end_and_rawboost(tmp_path):
    # the tiny front end with XLS-R's total stride (320), so the back end sees XLS-R's 201 frames, not 3230
    mc = {"frontend": "wav2vec2",
          "frontend_config": {**TINY_W2V["layer"], "conv_kernel": [10, 8, 8], "conv_stride": [5, 8, 8]}}
    df = api.train("ssl-aasist", _manifest(tmp_path, n=8), tmp_path / "s", epochs=1, batch_size=4, lr=1e-4,
                   model_config=mc, device="cpu", progress=False)
    assert len(df) == 1 and np.isfinite(df["train_loss"]).all()
    rec = _check_folder(tmp_path / "s", tmp_path, "ssl-aasist")
    assert rec["recipe"]["name"] == "ssl-aasist" and rec["augmentation"]["rawboost"] == 5   # the LA script's


def test_hf_classifier_with_the_transformers_recipe(tmp_path):
    folder = tiny_hf("wav2vec2", ["bonafide", "spoof"], tmp_path / "hf")
    df = api.train(f"hf:{folder}", _manifest(tmp_path, n=8), tmp_path / "h", epochs=2, batch_size=2,
                   device="cpu", progress=False)
    assert list(df["epoch"]) == [1, 2]
    rec = _check_folder(tmp_path / "h", tmp_path, "hf")
    assert rec["recipe"]["optimizer"] == "adamw" and rec["recipe"]["accumulate"] == 4
    assert df["lr"].iloc[0] > 0


def test_a_served_model_cannot_be_trained(tmp_path):
    with pytest.raises(ValueError, match="a served detector has no weights here to train"):
        api.train("http://127.0.0.1:9", _manifest(tmp_path), tmp_path / "x", device="cpu", progress=False)
