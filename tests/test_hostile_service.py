"""A run against a served detector that goes away or changes (issue 26, items 1, 2 and 13), with real `bench serve`
processes on 127.0.0.1: other weights served at the same URL are refused naming both digests, a service that dies
mid-run leaves an incomplete run (never "complete", no clip blamed) that the same command finishes, or that
--wait-for-service waits out; a score that is not a JSON number is refused."""
import json
import threading

import numpy as np
import pytest

from _served import Served, free_port
from bench import api
from bench.cli import main
from bench.run.outage import RunIncomplete

TINY = "benchmarks.tiny_detector:TinyDetector"
SUITE = "name: svc\nconditions:\n  - {family: white-noise, severities: [1, 3]}\n  - {family: gain, severities: [2]}\n"
LIMIT = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("svc")
    ckpts = {}
    for name, scale in (("a", 1000.0), ("b", -500.0)):
        ckpts[name] = str(folder / f"{name}.pth")
        torch.save({"scale": torch.tensor(scale)}, ckpts[name])
    (folder / "s.yaml").write_text(SUITE)
    return folder, ckpts


def _serve(folder, ckpt, port=None, tag="a"):
    return Served("--model", TINY, "--checkpoint", ckpt, log=folder / f"serve-{tag}-{port}.log", port=port)


def _run(folder, url, out, **kw):
    # one retry after 0.1 s: an outage is declared within a second, not after the default 3.5 s of backoff
    return api.run(str(folder / "s.yaml"), models=(f"{url}?retries=1&backoff=0.1",), limit=LIMIT, workers=0,
                   device="cpu", n_boot=20, out=str(out), shard_size=LIMIT, **kw)


def _stop_after_first_unit(served, then=None):
    calls = []

    def progress(done, total, cond):
        calls.append(done)
        if len(calls) == 1:
            served.stop()
            if then is not None:
                threading.Thread(target=then, daemon=True).start()
    return progress


def test_outage_leaves_an_incomplete_run_that_other_weights_cannot_resume(setup):
    folder, ckpts = setup
    port = free_port()
    a = _serve(folder, ckpts["a"], port)
    out = folder / "run"
    try:
        with pytest.raises(RunIncomplete, match=r"incomplete: the detector service at .* cannot be reached.*"
                                                r"6 scores are stored and kept.*give the same command"):
            _run(folder, a.url, out, progress=_stop_after_first_unit(a))
    finally:
        a.stop()
    assert len(a.health["config_sha256"]) == 64 and a.health["nb_samp"] == 1600   # /health digests what it serves
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "incomplete" and "cannot be reached" in doc["incomplete_reason"]
    assert not (out / "results.csv").exists()
    import sqlite3

    with sqlite3.connect(out / "store.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == LIMIT   # the first unit, kept
        assert db.execute("SELECT COUNT(*) FROM problems WHERE stage != 'level'").fetchone()[0] == 0  # nobody blamed

    # item 1: other weights served at the same URL: the resume is refused naming both digests
    b = _serve(folder, ckpts["b"], port, tag="b")
    try:
        with pytest.raises(ValueError) as e:
            _run(folder, b.url, out)
        msg = str(e.value)
        assert a.health["checkpoint_sha256"][:16] in msg and b.health["checkpoint_sha256"][:16] in msg
        assert a.health["config_sha256"] != b.health["config_sha256"]
    finally:
        b.stop()

    # the original weights served again: the same command finishes the run, equal to the local model's
    a2 = _serve(folder, ckpts["a"], port, tag="a2")
    try:
        res = _run(folder, a2.url, out)
    finally:
        a2.stop()
    assert res.provenance["status"] == "complete" and len(res.scores) == 4 * LIMIT
    local = api.run(str(folder / "s.yaml"), models=(TINY,), checkpoint=ckpts["a"], limit=LIMIT, workers=0,
                    device="cpu", n_boot=20, out=str(folder / "local"))
    r = res.scores.set_index(["family", "severity", "utt_id"]).sort_index()["score"]
    lo = local.scores.set_index(["family", "severity", "utt_id"]).sort_index()["score"]
    assert list(r.index) == list(lo.index)
    np.testing.assert_allclose(r.to_numpy(), lo.to_numpy(), atol=1e-4)


def test_wait_for_service_waits_out_an_outage(setup):
    folder, ckpts = setup
    port = free_port()
    a = _serve(folder, ckpts["a"], port)
    back = []

    def restart():
        back.append(_serve(folder, ckpts["a"], port, tag="back"))

    try:
        res = _run(folder, a.url, folder / "waited", wait_for_service=120, progress=_stop_after_first_unit(a, restart))
    finally:
        a.stop()
        for s in back:
            s.stop()
    assert back, "the service was not restarted"
    assert res.provenance["status"] == "complete" and len(res.scores) == 4 * LIMIT
    assert not (res.problems["stage"] != "level").any()


def test_a_service_down_at_the_start_exits_75(setup, capsys):
    folder, _ = setup
    url = f"http://127.0.0.1:{free_port()}?retries=0"
    rc = main(["run", "--suite", str(folder / "s.yaml"), "--model", url, "--limit", "2", "--out",
               str(folder / "down")])
    assert rc == 75 and "cannot be reached" in capsys.readouterr().err


@pytest.mark.parametrize("answer", [b'{"score": "0.5"}', b'{"score": true}', b'{"score": [1]}', b'{"score": null}'])
def test_a_score_that_is_not_a_json_number_is_refused(answer):
    from models.remote import RemoteError, parse_answer

    with pytest.raises(RemoteError, match="not a JSON number"):
        parse_answer(answer, "score", "http://x/score")
    assert parse_answer(b'{"score": 2}', "score", "http://x/score") == 2.0
