"""bench train --search: PC-DARTS search end to end on the demo set with small settings, a valid genotype, the
figures, determinism from the seed, and the derived network trained and loaded as a model."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench import api
from models._darts_genotype import parse_genotype

SMALL = {"gru_hsize": 8, "gru_layers": 1, "nb_samp": 2400}


def _search(out, **kw):
    opts = dict(limit=16, epochs=1, batch_size=4, search=True, search_epochs=2, layers=3, channels=4,
                model_config=SMALL, device="cpu", progress=False)
    opts.update(kw)
    return api.train("raw-pc-darts", "demo", out, **opts)


def test_search_only_writes_a_valid_genotype_and_figures(tmp_path):
    a = _search(tmp_path / "a", search_only=True)
    g = json.loads((tmp_path / "a" / "genotype.json").read_text())
    assert parse_genotype(g["genotype"]) == g["genotype"]
    assert g["derived_config"]["layers"] == 3 and g["derived_config"]["init_channels"] == 4
    assert g["search"]["recipe"]["epochs"] == 2 and g["search"]["halves"]["weights"] > 0
    for stem in ("cell_normal", "cell_reduce", "alphas"):
        for ext in ("png", "svg"):
            assert (tmp_path / "a" / f"{stem}.{ext}").stat().st_size > 1000
    assert list(a["epoch"]) == [1, 2]
    assert abs(sum(v for k, v in a.iloc[-1].items() if k.startswith("normal:")) - 1.0) < 1e-5
    assert not (tmp_path / "a" / "best.safetensors").exists()            # --search-only stops there
    b = _search(tmp_path / "b", search_only=True)                       # the same seed: the same search
    pd.testing.assert_frame_equal(a, b)
    assert json.loads((tmp_path / "b" / "genotype.json").read_text())["genotype"] == g["genotype"]


def test_search_then_train_the_derived_network_and_score_it(tmp_path):
    out = tmp_path / "d"
    df = _search(out)
    assert list(df["epoch"]) == [1]
    rec = json.loads((out / "train.json").read_text())
    g = json.loads((out / "genotype.json").read_text())["genotype"]
    assert rec["model"]["architecture"] == "darts" and rec["model"]["config"]["genotype"] == g
    demo = sorted((Path(__file__).resolve().parents[1] / "bench" / "data" / "demo" / "audio").iterdir())[:3]
    scores = api.score_files(str(out), demo, device="cpu")
    assert scores["error"].isna().all() and scores["score"].between(-1, 1).all()   # cos theta of bona fide
    assert scores["model"].iloc[0] == str(out)


def test_search_refuses_other_architectures(tmp_path):
    with pytest.raises(ValueError, match="not of the darts architecture"):
        api.train("aasist-l", "demo", tmp_path / "x", limit=8, search=True, search_epochs=1, device="cpu",
                  progress=False)
