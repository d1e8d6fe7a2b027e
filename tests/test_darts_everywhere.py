"""The DARTS family wherever a detector goes: a small raw-pc-darts (sinc front end) and light-darts (a tiny random
wav2vec 2.0 front end) trained by bench train, then scored by `bench score`, run under white-box attacks in a suite
(gradients through both front ends), and served by `bench serve` with the served score equal to the local one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _served import Served, post
from bench import api
from test_ssl_aasist import TINY_W2V

SMALL = {"layers": 3, "init_channels": 4, "gru_hsize": 8, "gru_layers": 1, "nb_samp": 2400}
DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("darts")
    light = {**SMALL, "nb_samp": 6400, "frontend": "ssl",
             "frontend_config": {**TINY_W2V["layer"], "conv_kernel": [10, 8, 8], "conv_stride": [5, 8, 8]}}
    out = {}
    for name, mc in (("raw-pc-darts", SMALL), ("light-darts", light)):
        out[name] = tmp / name
        api.train(name, "demo", out[name], limit=8, epochs=1, batch_size=4, model_config=mc, device="cpu",
                  progress=False)
    return out


@pytest.mark.parametrize("name", ["raw-pc-darts", "light-darts"])
def test_trained_darts_runs_under_white_box_attacks(folders, tmp_path, name):
    suite = tmp_path / "attacks.yaml"
    suite.write_text("name: tiny-attacks\nconditions:\n  - {attack: fgsm, severities: [3]}\n"
                     "  - {attack: pgd-linf, severities: [3]}\n")
    res = api.run(str(suite), models=(str(folders[name]),), limit=4, device="cpu", workers=0, out=tmp_path / "r",
                  progress=False)
    scores = res.scores
    assert set(scores["family"]) == {"clean", "fgsm", "pgd-linf"}
    assert np.isfinite(scores["score"]).all()
    clean = scores[scores["family"] == "clean"].set_index("utt_id")["score"]
    pgd = scores[scores["family"] == "pgd-linf"].set_index("utt_id")["score"]
    assert (pgd - clean).abs().max() > 1e-4           # the attack's gradient reached the input through the front end


def test_served_darts_answers_the_local_score(folders, tmp_path):
    clip = sorted(DEMO.iterdir())[0]
    local = api.score_files(str(folders["raw-pc-darts"]), [clip], device="cpu")["score"].iloc[0]
    srv = Served("--model", str(folders["raw-pc-darts"]), log=tmp_path / "serve.log")
    try:
        status, answer = post(srv.url + "/score", clip.read_bytes())
    finally:
        srv.stop()
    assert status == 200 and abs(answer["score"] - local) < 1e-5
    assert pd.notna(srv.health.get("model"))
