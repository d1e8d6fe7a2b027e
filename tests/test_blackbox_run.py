"""Black-box suites inside `bench run`: against `bench serve` over HTTP (the local model is the oracle),
query counts in scores.csv / results.csv, the universal filter's split, and old stores without `queries`."""
import sqlite3

import numpy as np
import pandas as pd
import pytest

from _served import Served
from bench import api
from bench.suites.universal import universal_split
from bench.cli import main
from bench.data import load_dataset
from bench.run.results import read_scores_csv
from bench.run.store import Store

TINY = "benchmarks.tiny_detector:TinyDetector"
SUITE = """name: blackbox-fast
conditions:
  - {attack: square-linf, severities: [5], params: {queries: 8}}
  - {attack: hsja, severities: [5], params: {queries: 30}}
  - {attack: universal-filter, severities: [5], params: {queries: 6}}
"""


@pytest.fixture(scope="module")
def tiny(request, tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("bbrun")
    ckpt = str(folder / "tiny.pth")
    torch.save({"scale": torch.tensor(1000.0)}, ckpt)   # scores of order 0.1-1, far above float32 noise
    s = Served("--model", TINY, "--checkpoint", ckpt, log=folder / "serve.log")
    request.addfinalizer(s.stop)
    (folder / "s.yaml").write_text(SUITE)
    return s, ckpt, folder


def _by_attack(scores: pd.DataFrame) -> pd.DataFrame:
    s = scores.assign(family=scores["family"].str.replace(r"<-.*$", "", regex=True))
    return s.set_index(["family", "utt_id"]).sort_index()


def test_run_against_bench_serve_equals_the_local_model(tiny, capsys):
    served, ckpt, folder = tiny
    rc = main(["run", "--suite", str(folder / "s.yaml"), "--model", served.url, "--limit", "8", "--workers", "0",
               "--device", "cpu", "--out", str(folder / "remote")])
    assert rc == 0
    remote = read_scores_csv(folder / "remote" / "scores.csv")
    local = api.run(str(folder / "s.yaml"), models=(TINY,), checkpoint=ckpt, limit=8, workers=0, device="cpu",
                    out=str(folder / "local")).scores
    r, lo = _by_attack(remote), _by_attack(local)
    assert list(r.index) == list(lo.index)
    np.testing.assert_allclose(r["score"].to_numpy(), lo["score"].to_numpy(), atol=1e-4)
    assert r["queries"].astype("float").equals(lo["queries"].astype("float"))

    fams = set(remote["family"])
    assert fams == {"clean", "square-linf", "hsja", f"universal-filter<-{served.url}"}
    q = remote.set_index("family")["queries"]
    assert q.loc["clean"].isna().all()
    assert (q.loc["square-linf"] == 8).all() and (q.loc["hsja"] <= 30).all() and (q.loc["hsja"] >= 1).all()
    # universal: learned on the training half, scored on the other half only
    train, held = universal_split(load_dataset("demo", limit=8, seed=0).utterances)
    uni = remote[remote.family.str.startswith("universal-filter")]
    assert set(uni["utt_id"]) == {u.utt_id for u in held} and len(uni) == 4
    assert (uni["queries"] == 6).all()
    res = pd.read_csv(folder / "remote" / "results.csv").set_index("family")
    assert res.loc["square-linf", "queries"] == 8 and np.isnan(res.loc["clean", "queries"])
    # imperceptibility is measured for black-box attacks too (median SNR of the attacked crops)
    assert res.loc["square-linf", "snr_db"] >= 10.0 - 1e-3 and res.loc["hsja", "snr_db"] >= 10.0 - 1e-3


def test_universal_split_is_half_per_label_and_order_free():
    utts = load_dataset("demo").utterances
    train, held = universal_split(utts)
    train2, held2 = universal_split(list(reversed(utts)))
    assert {u.utt_id for u in train} == {u.utt_id for u in train2} and not {u.utt_id for u in train} & {
        u.utt_id for u in held}
    for lab in ("bonafide", "spoof"):
        n = sum(u.label == lab for u in utts)
        assert sum(u.label == lab for u in train) == n // 2


def test_store_from_before_the_queries_column_still_reads(tmp_path):
    old = tmp_path / "store.sqlite"
    db = sqlite3.connect(old)
    db.executescript("""CREATE TABLE scores (model TEXT NOT NULL, family TEXT NOT NULL, severity INTEGER NOT NULL,
        utt_id TEXT NOT NULL, label TEXT NOT NULL, score REAL NOT NULL, policy TEXT NOT NULL,
        condition_key TEXT NOT NULL, PRIMARY KEY (model, family, severity, utt_id));""")
    db.execute("INSERT INTO scores VALUES ('m', 'clean', 0, 'u1', 'spoof', -1.5, 'official', 'k')")
    db.commit()
    db.close()
    with Store(old) as st:
        st.add_scores([("m", "square-linf", 1, "u1", "spoof", 0.5, "official", "k2", 100)])
        df = st.scores().set_index("family")
        assert pd.isna(df.loc["clean", "queries"]) and df.loc["square-linf", "queries"] == 100
        assert st.group_queries("m", "clean", 0) == [] and st.group_queries("m", "square-linf", 1) == [100]
        from bench.run.results import write_tables
        write_tables(tmp_path, pd.DataFrame(), st.iter_scores(), st.problems())
    back = read_scores_csv(tmp_path / "scores.csv").set_index("family")
    assert back.loc["square-linf", "queries"] == 100 and pd.isna(back.loc["clean", "queries"])
    assert "100.0" not in (tmp_path / "scores.csv").read_text()


def test_builtin_blackbox_suite_against_bench_serve(tiny, tmp_path):
    """`bench run --suite blackbox` against a served detector (thousands of HTTP requests: slow)."""
    served, _, _ = tiny
    assert main(["run", "--suite", "blackbox", "--model", served.url, "--limit", "4", "--workers", "0",
                 "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    res = pd.read_csv(tmp_path / "run" / "results.csv")
    assert {"square-linf", "hsja", f"universal-filter<-{served.url}"} <= set(res["family"])
    assert (res.loc[res.family == "square-linf", "queries"].to_numpy() == [100, 400, 1000]).all()


def test_decision_only_service_through_bench_run(tiny, tmp_path):
    """`--remote-output decision` against a decision-only `bench serve`: scores are +1/-1 and hsja still runs."""
    _, ckpt, folder = tiny
    served = Served("--model", TINY, "--checkpoint", ckpt, "--output", "decision", log=tmp_path / "serve.log")
    try:
        (tmp_path / "s.yaml").write_text("name: d\nconditions:\n"
                                         "  - {attack: hsja, severities: [5], params: {queries: 40}}\n")
        assert main(["run", "--suite", str(tmp_path / "s.yaml"), "--model", served.url, "--remote-output", "decision",
                     "--limit", "6", "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    finally:
        served.stop()
    s = read_scores_csv(tmp_path / "run" / "scores.csv")
    assert set(s["model"]) == {served.url + "?output=decision"}
    assert set(s["score"]) <= {1.0, -1.0}
    h = s[s.family == "hsja"]
    assert len(h) == 6 and ((h["queries"] >= 1) & (h["queries"] <= 40)).all()
