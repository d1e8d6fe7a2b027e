"""What keeps `bench run` bounded and overlapped: results computed from the store a condition at a
time equal the in-memory table, scores.csv streamed in chunks equals the one-shot write, the units
are made as the executor asks for them, and the local executor's workers start preparing before the
detectors are loaded."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.run.results import read_scores_csv, results_from_store, results_table, write_tables
from bench.run.store import Store
from bench.suites.suite import load_suite


@pytest.fixture()
def filled_store(tmp_path):
    rng = np.random.default_rng(7)
    conds = load_suite("compression").expand()[:4]
    rows = []
    for model, shift in (("m-b", 1.0), ("m-a", 0.3)):
        for c in conds:
            for i in range(23):
                label = "bonafide" if i % 3 else "spoof"
                s = rng.normal(shift if label == "bonafide" else -shift, 1)
                rows.append((model, c.family, c.severity, f"{i:04d}", label, float(s), "official", c.key()))
    rows.append(("m-a", "only-bona", 1, "0001", "bonafide", 0.5, "official", "{}"))  # no spoof: NaN EER
    with Store(tmp_path / "store.sqlite") as st:
        st.add_scores(rows)
        yield st, conds


def test_results_from_store_equal_the_in_memory_table(filled_store):
    store, conds = filled_store
    want = results_table(store.scores(), "compression", conds, n_boot=50, seed=3)
    got = results_from_store(store, "compression", conds, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(got, want)
    assert got["model"].iloc[0] == "m-a" and got["family"].iloc[0] == "clean"
    assert np.isnan(got.loc[got.family == "only-bona", "eer"]).all()


def test_scores_csv_streamed_in_chunks_equals_the_whole_table(filled_store, tmp_path):
    store, conds = filled_store
    results = results_from_store(store, "compression", conds, n_boot=5)
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    whole.mkdir(), chunked.mkdir()
    write_tables(whole, results, store.scores(), store.problems())
    write_tables(chunked, results, store.iter_scores(rows=7), store.problems())
    assert (whole / "scores.csv").read_bytes() == (chunked / "scores.csv").read_bytes()
    back = read_scores_csv(chunked / "scores.csv")
    assert back["utt_id"].iloc[0] == "0000" and back["utt_id"].map(type).eq(str).all()  # ids stay strings
    np.testing.assert_array_equal(back["score"].to_numpy(), store.scores()["score"].to_numpy())


def test_units_are_made_lazily_and_counted_exactly(tmp_path):
    from bench.run import runner
    from bench.data import load_dataset

    conds = load_suite("compression").expand()[:3]
    data = load_dataset("demo", limit=10, seed=0)
    cfg = runner.RunConfig(shard_size=4)
    with Store(tmp_path / "s.sqlite") as st:
        cond = conds[1]
        st.add_scores([("aasist", cond.family, cond.severity, u.utt_id, u.label, 0.0, "official", cond.key())
                       for u in data.utterances[:5]])
        units = runner._units(cfg, conds, data, st, ["aasist", "aasist-l"])
        assert not isinstance(units, (list, tuple))
        first = next(units)
        assert first.condition == conds[0] and len(first.tasks) == 4
        rest = list(units)
        total = runner._count_scores(conds, data, st, ["aasist", "aasist-l"])
    assert total == sum(u.n_scores for u in [first, *rest]) == 3 * 10 * 2 - 5
    half = [u for u in rest if u.condition == conds[1]]
    assert dict(half[0].needs)["aasist-l"] and "aasist" not in dict(half[0].needs)  # 0-3 stored for aasist


def test_local_workers_prepare_while_the_detectors_load(tmp_path):
    from bench.data import load_dataset
    from bench.run.executors import LocalExecutor
    from bench.run.prepare import Task
    from bench.run.units import Scorer, Unit, UnitResult

    cond = next(c for c in load_suite("noise").expand() if c.family == "white-noise")
    utts = load_dataset("demo", limit=2, seed=0).utterances
    tasks = tuple(Task(u.utt_id, str(u.path), u.label, cond.key(), cond.spec, cond.kind) for u in utts)
    cache = tmp_path / "cache"

    class Recorder(Scorer):
        def __init__(self):   # no detector: records what it was given
            self.seen = []

        def __call__(self, unit, prepared):
            self.seen.append([p.wav is not None for p in prepared])
            return UnitResult(unit)

    def load_detectors():   # stands for the model load: the worker must finish a preparation meanwhile
        deadline = time.monotonic() + 120
        while not list(cache.rglob("*.npy")):
            assert time.monotonic() < deadline, "the workers did not start before the scorer was built"
            time.sleep(0.05)
        return recorder

    recorder = Recorder()
    with LocalExecutor(workers=1, seed=0, sr=16000, bonafide=[], resources={}, cache_dir=str(cache)) as ex:
        out = list(ex.run([Unit(cond, tasks, (("x", tuple(u.utt_id for u in utts)),))], load_detectors))
    assert len(out) == 1 and recorder.seen == [[True, True]]
    assert len(list(Path(cache).rglob("*.npy"))) == 2


def test_the_next_unit_is_submitted_before_the_current_one_is_scored(monkeypatch):
    """A unit bigger than the prefetch window (GPU shards of 256) must not leave the workers idle while it
    is scored: the next unit's tasks are in flight when the current one is handed out."""
    from concurrent.futures import ThreadPoolExecutor

    from bench.run import executors
    from bench.run.executors import _Prefetch
    from bench.run.units import Unit

    monkeypatch.setattr(executors, "prepare", lambda task: task)   # the bookkeeping, not the audio, is tested

    units = [Unit(f"c{i}", tuple(range(4)), ()) for i in range(3)]
    with ThreadPoolExecutor(2) as pool:
        pre = _Prefetch(pool, units, prefetch=2)
        it = iter(pre)
        unit, _ = next(it)
        assert unit.condition == "c0"
        assert [u.condition for u, _ in pre.window] == ["c1"]
        assert [u.condition for u, _ in it] == ["c1", "c2"]
