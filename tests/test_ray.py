"""The Ray executor on a private 2-CPU, dashboard-less Ray instance, with the real AASIST-L weights:
the same scores as the local executor, bounded work in flight, results streamed as they complete,
a scorer actor killed mid-run costs only a retry, and without Ray the error says how to install it."""
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from bench import api
from bench.run.executors import make_executor

ray = pytest.importorskip("ray")  # a guard only: CI installs the [ray] extra so these tests run

SUITE = "name: mini\nconditions:\n  - {family: white-noise, severities: [1, 3]}\n"
COMMON = {"models": "aasist-l", "limit": 6, "batch_size": 1, "seed": 0}
KEYS = ["model", "family", "severity", "utt_id"]
MARK = "BENCH_RAY_TEST_RUN"  # forwarded by the executor to its job's workers: finds one run's actors


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=256 * 2**20)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("suite") / "mini.yaml"
    p.write_text(SUITE)
    return p


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, suite_file):
    import torch

    # A scorer actor scores with the one thread it reserves; with the same thread count the float
    # reductions run in the same order, so the two executors must agree to the last bit.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return api.run(str(suite_file), executor="local", workers=0,
                       out=str(tmp_path_factory.mktemp("runs") / "local"), **COMMON)
    finally:
        torch.set_num_threads(n)


def assert_same_scores(local: pd.DataFrame, other: pd.DataFrame) -> None:
    assert len(local) == 18 and len(other) == len(local)
    m = local.merge(other, on=KEYS, suffixes=("_local", "_ray"), validate="one_to_one")
    assert len(m) == len(local)
    assert (m.label_local == m.label_ray).all()
    diff = (m.score_local - m.score_ray).abs().max()
    assert diff == 0.0, f"scores differ between executors by up to {diff}"


def test_ray_run_scores_equal_local_run(cluster, local_run, suite_file, tmp_path):
    res = api.run(str(suite_file), executor="ray", out=str(tmp_path / "ray"), **COMMON)
    assert res.provenance["config"]["executor"] == "ray"
    assert_same_scores(local_run.scores, res.scores)
    cols = ["family", "severity", "n_bonafide", "n_spoof", "eer", "auc"]
    pd.testing.assert_frame_equal(local_run.results[cols].reset_index(drop=True),
                                  res.results[cols].reset_index(drop=True))
    # Resuming a finished run computes nothing and changes nothing (no actors are even started).
    again = api.run(str(suite_file), executor="ray", out=str(tmp_path / "ray"), **COMMON)
    assert_same_scores(local_run.scores, again.scores)


def _units(suite_file, shard: int):
    from bench.data import load_dataset
    from bench.run.prepare import Task
    from bench.suites.suite import load_suite
    from bench.run.units import Unit

    conds = load_suite(str(suite_file)).expand()
    utts = load_dataset("demo", limit=6, seed=0).utterances
    for c in conds:
        for i in range(0, len(utts), shard):
            part = utts[i:i + shard]
            tasks = tuple(Task(u.utt_id, str(u.path), u.label, c.key(), c.spec, c.kind) for u in part)
            yield Unit(c, tasks, (("aasist-l", tuple(u.utt_id for u in part)),))


def test_work_in_flight_is_bounded_and_results_stream(cluster, suite_file, local_run):
    from bench.data import load_dataset
    from bench.run.units import ScorerSpec

    pulled = []

    def counted(units):
        for u in units:
            pulled.append(u)
            yield u

    bona = [(u.utt_id, str(u.path)) for u in load_dataset("demo", limit=6, seed=0).utterances
            if u.label == "bonafide"]
    spec = ScorerSpec(("aasist-l",), None, "cpu", local_run.scores.policy.iloc[0], 1, 0)
    with make_executor("ray", workers=1, seed=0, sr=16000, bonafide=bona, resources={}, scorer_spec=spec,
                       address=None, inflight_per_scorer=2) as ex:
        gen = ex.run(counted(_units(suite_file, shard=2)), None)
        first = next(gen)
        n_actors = len(ex._actors)
        gen.close()
    assert n_actors == 1                       # 2 CPUs: one scorer, one CPU kept for preparation
    assert len(pulled) == 2 * n_actors < 9     # 9 units exist; only the window was submitted
    assert first.unit in pulled and not first.problems
    want = local_run.scores.set_index(KEYS).score
    got = {(m, f, s, u): sc for m, f, s, u, _l, sc, *_rest in first.scores}   # rows: Store.add_scores
    assert len(got) == 2 and all(want[k] == v for k, v in got.items())


def _busy_scorer(mark: str) -> int | None:
    """The pid of a scorer actor of the run marked ``mark``, while it is scoring a unit (actors of
    earlier runs can take seconds to exit after ray.kill, so the title alone is not enough)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "cmdline").read_bytes().startswith(b"ray::_ScorerActor.score"):
                continue
            if f"{MARK}={mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    return None


def test_killed_scorer_is_replaced_and_the_cli_run_completes(cluster, local_run, suite_file, tmp_path):
    address, mark = cluster, uuid.uuid4().hex
    out = tmp_path / "killed"
    err = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", str(suite_file), "--model", "aasist-l",
           "--limit", "6", "--batch-size", "1", "--executor", "ray", "--address", address, "--out", str(out)]
    with open(err, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env={**os.environ, MARK: mark})
        try:
            victim = None
            deadline = time.time() + 240
            while victim is None and proc.poll() is None and time.time() < deadline:
                victim = _busy_scorer(mark)
                time.sleep(0.05)
            assert victim is not None, "no scorer actor of this run was ever seen scoring"
            os.kill(victim, signal.SIGKILL)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = err.read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "submitting it again" in log, log[-3000:]
    assert_same_scores(local_run.scores, pd.read_csv(out / "scores.csv"))
    problems = out / "problems.csv"
    assert not problems.exists() or pd.read_csv(problems).empty


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)               # import ray -> ImportError
    monkeypatch.delitem(sys.modules, "bench.run.ray_executor", raising=False)
    with pytest.raises(RuntimeError, match=r"pip install 'deepfake-bench\[ray\]'"):
        make_executor("ray", workers=1, seed=0, sr=16000, bonafide=[], resources={}, scorer_spec=None)


def test_an_address_nobody_answers_at_fails_fast_with_a_hint():
    import socket

    from bench.run.ray_executor import _check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        _check_reachable(f"127.0.0.1:{port}")            # something listens: no error
    with pytest.raises(RuntimeError, match=r"ray start --head"):
        _check_reachable(f"127.0.0.1:{port}", timeout=5)  # closed now: refused


def test_units_of_a_universal_attack_go_to_the_actor_that_learned_its_filter():
    """Scorer._learned caches the filter per actor: without affinity every actor would learn it again."""
    from bench.run.prepare import Task
    from bench.run.ray_executor import RayExecutor, _Job
    from bench.suites.suite import load_suite
    from bench.run.units import ScorerSpec, Unit

    class Actor:
        def __init__(self, name):
            self.name, self.score = name, self

        def remote(self, unit, *chunks):
            return self.name

    conds = load_suite("noise").expand()[:3]
    spec = ScorerSpec(("aasist-l",), None, "cpu", "official", 1, 0)
    ex = RayExecutor(workers=1, seed=0, sr=16000, bonafide=[], resources={}, scorer_spec=spec)
    ex._actors, ex._generation = [Actor("a"), Actor("b")], [0, 0]
    train = (Task("t", "t.wav", "bonafide", conds[0].key(), conds[0].spec, "attack"),)
    load = [0, 0]
    universal = [ex._submit(_Job(Unit(conds[0], (), (), train)), load) for _ in range(4)]
    plain = [ex._submit(_Job(Unit(conds[1], (), ())), load) for _ in range(5)]
    assert universal == ["a"] * 4                      # all where the first was placed, though "a" got busier
    assert plain == ["b"] * 4 + ["a"]                  # other units balance by load (ties: the first actor)
