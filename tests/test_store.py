"""The durable store: commits, resume bookkeeping, and the one-writer lock."""
import subprocess
import sys

import pytest

from bench.run.store import RunBusy, RunLock, Store


def test_scores_survive_reopen_and_done_sets(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        st.add_scores([("m", "mp3", 1, "u1", "bonafide", 1.5, "official", "k"),
                       ("m", "mp3", 1, "u2", "spoof", -2.0, "official", "k")])
        st.add_problem("u3", "/x/u3.wav", "read", "AudioError: empty")
    with Store(tmp_path / "s.sqlite") as st:
        assert st.done("m", "mp3", 1) == {"u1", "u2"}
        assert st.done("m", "mp3", 2) == set()
        assert st.failed("read") == {"u3"}
        df = st.scores()
        assert list(df["utt_id"]) == ["u1", "u2"] and df["score"].tolist() == [1.5, -2.0]


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with RunLock(tmp_path):
        code = ("import sys; from bench.run.store import RunLock, RunBusy\n"
                f"try:\n    RunLock(r'{tmp_path}').__enter__()\nexcept RunBusy as e:\n"
                "    print(e); sys.exit(3)\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert p.returncode == 3, p.stderr
        assert "in use by pid" in p.stdout and str(tmp_path) in p.stdout
    with RunLock(tmp_path):  # released: can be taken again
        pass


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunBusy):
            RunLock(tmp_path).__enter__()
