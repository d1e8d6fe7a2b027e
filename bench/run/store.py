"""The run's durable store: one SQLite file per run folder.

Every score is committed as soon as its batch is computed (WAL, synchronous=FULL), keyed by
(model, family, severity, utt_id), so a killed run loses at most the batch in flight and a resumed
run computes only what is missing. Inputs that could not be used are kept in ``problems``.
``results.csv`` and ``scores.csv`` are always derived from here.

``queries`` (nullable) holds the detector calls a black-box attack spent on the utterance (NULL for
everything else); a store from before that column gets it added (``ALTER TABLE``) when opened, its old
rows NULL, so old run folders still read and resume.

One writer per folder: :class:`RunLock` takes an exclusive ``flock`` on ``run.lock``; a second
process is refused with a message naming the holder's pid. The holder removes ``run.lock`` when it
lets go, so a finished run leaves none.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Iterable

import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    model TEXT NOT NULL, family TEXT NOT NULL, severity INTEGER NOT NULL, utt_id TEXT NOT NULL,
    label TEXT NOT NULL, score REAL NOT NULL, policy TEXT NOT NULL, condition_key TEXT NOT NULL,
    queries INTEGER,
    PRIMARY KEY (model, family, severity, utt_id)
);
CREATE TABLE IF NOT EXISTS problems (
    utt_id TEXT NOT NULL, path TEXT NOT NULL, stage TEXT NOT NULL, family TEXT NOT NULL,
    severity INTEGER NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (utt_id, stage, family, severity, model)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    utt_id TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quality (
    model TEXT NOT NULL, family TEXT NOT NULL, severity INTEGER NOT NULL, utt_id TEXT NOT NULL,
    snr_db REAL, pesq REAL, stoi REAL,
    PRIMARY KEY (model, family, severity, utt_id)
);
CREATE TABLE IF NOT EXISTS segments (
    model TEXT NOT NULL, family TEXT NOT NULL, severity INTEGER NOT NULL, utt_id TEXT NOT NULL,
    start_s REAL NOT NULL, end_s REAL NOT NULL, spoofed INTEGER NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (model, family, severity, utt_id, start_s)
);
"""
# ``files`` (added later; empty in older run folders, filled as they resume): the content each utterance's
# scores were computed from, (size, mtime_ns, sha256) of its file (bench/run/inputs.py).
# ``quality`` (added later; created in older run folders when they are opened, left empty for what
# they had already scored): the measured quality of a condition's audio against its clean input
# (bench/metrics/quality.py); model "" for perturbations (one audio for every model), the scored model for
# white-box attacks. ``segments`` (added later, likewise): the window scores of partially spoofed data with their
# labels (bench/run/segments.py), written in the same commit as the utterance's score.


class RunBusy(RuntimeError):
    pass


class StoreError(RuntimeError):
    """A store file that is not a usable SQLite database; the message names it and what to do."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``run.lock`` holding the owner's pid.

    fcntl directly rather than the ``filelock`` package: the refusal must name the holder's pid (read from
    the locked file), and the lock must vanish with its process (a killed run never leaves it held)."""

    def __init__(self, folder: Path, name: str = "run.lock"):
        self.path = Path(folder) / name
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunBusy(f"{self.path.parent} is in use by pid {holder}; wait for it to finish "
                              "or choose another --out folder") from None
            # the holder removes the file when it finishes: a lock on a removed file locks nothing
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)   # while still held: a finished run leaves no run.lock
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Store:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            if "queries" not in {r[1] for r in self.db.execute("PRAGMA table_info(scores)")}:
                self.db.execute("ALTER TABLE scores ADD COLUMN queries INTEGER")   # a store from before the column
            self.db.commit()
            self.db.execute("SELECT COUNT(*) FROM scores").fetchone()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise StoreError(f"{self.path} is not a readable run store ({e}): the file is damaged or not "
                             "written by `bench run`. Move it away to start this run afresh, or choose "
                             "another --out folder") from e

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- scores ----------------------------------------------------------------------------
    def done(self, model: str, family: str, severity: int) -> set[str]:
        rows = self.db.execute("SELECT utt_id FROM scores WHERE model=? AND family=? AND severity=?",
                               (model, family, severity))
        return {r[0] for r in rows}

    def add_scores(self, rows: Iterable[tuple], quality: Iterable[tuple] = (), segments: Iterable[tuple] = (),
                   files: Iterable[tuple] = ()) -> None:
        """rows: (model, family, severity, utt_id, label, score, policy, condition_key[, queries]); quality:
        (model, family, severity, utt_id, snr_db, pesq, stoi); segments: (model, family, severity, utt_id, start_s,
        end_s, spoofed, score); files: (utt_id, path, size, mtime_ns, sha256) of the audio the scores came from;
        one commit for all."""
        rows = [tuple(r) + (None,) * (9 - len(r)) for r in rows]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", [tuple(f) for f in files])
            self.db.executemany("INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(segments))
            self.db.executemany("INSERT OR REPLACE INTO quality VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [tuple(q[:4]) + tuple(_real(v) for v in q[4:]) for q in quality])
            self.db.executemany("INSERT OR REPLACE INTO scores (model, family, severity, utt_id, label, score, policy, "
                                "condition_key, queries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            # a scoring failure that a resume has since mended is no longer a problem
            self.db.executemany("DELETE FROM problems WHERE stage='score' AND model=? AND family=? AND severity=? "
                                "AND utt_id=?", [(r[0], r[1], r[2], r[3]) for r in rows])

    def add_problem(self, utt_id: str, path: str, stage: str, reason: str, family: str = "",
                    severity: int = -1, model: str = "") -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO problems VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (utt_id, path, stage, family, severity, model, reason))

    def failed_for(self, stage: str, model: str, family: str, severity: int) -> set[str]:
        """Utterances with a problem of ``stage`` for one model under one condition."""
        rows = self.db.execute("SELECT utt_id FROM problems WHERE stage=? AND model=? AND family=? AND severity=?",
                               (stage, model, family, severity))
        return {r[0] for r in rows}

    def clear_problems(self, *stages: str) -> int:
        """Forget the problems of these stages (so they are tried again); returns how many."""
        with self.db:
            cur = self.db.execute(f"DELETE FROM problems WHERE stage IN ({','.join('?' * len(stages))})", stages)
        return cur.rowcount

    # --- file contents (bench/run/inputs.py) ------------------------------------------------------
    def file_digests(self) -> dict[str, tuple[str, int, int, str]]:
        """utt_id -> (path, size, mtime_ns, sha256) of the file its scores were computed from."""
        return {r[0]: tuple(r[1:]) for r in self.db.execute("SELECT utt_id, path, size, mtime_ns, sha256 FROM files")}

    def add_files(self, rows: Iterable[tuple]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", [tuple(r) for r in rows])

    def conflicting_files(self, rows: Iterable[tuple]) -> list[str]:
        """Paths of ``rows`` (utt_id, path, size, mtime_ns, sha256) whose stored sha256 is another one."""
        out = []
        for r in rows:
            have = self.db.execute("SELECT sha256 FROM files WHERE utt_id=?", (r[0],)).fetchone()
            if have is not None and have[0] != r[4]:
                out.append(str(r[1]))
        return out

    def forget(self, utt_ids: Iterable[str]) -> int:
        """Drops everything stored about these utterances (scores, quality, problems, digests), so they are
        computed again; returns how many scores were dropped."""
        ids = [(u,) for u in utt_ids]
        with self.db:
            before = self.n_scores()
            for table in ("scores", "quality", "problems", "files"):
                self.db.executemany(f"DELETE FROM {table} WHERE utt_id=?", ids)
        return before - self.n_scores()

    def warned(self, family: str, severity: int) -> set[str]:
        """Utterances with a level warning that applies to this condition (the clip's own, or the condition's)."""
        rows = self.db.execute("SELECT DISTINCT utt_id FROM problems WHERE stage='level' AND ((family='' AND "
                               "severity=-1) OR (family=? AND severity=?))", (family, severity))
        return {r[0] for r in rows}

    def failed(self, stage: str, family: str = "", severity: int = -1) -> set[str]:
        rows = self.db.execute("SELECT utt_id FROM problems WHERE stage=? AND family=? AND severity=?",
                               (stage, family, severity))
        return {r[0] for r in rows}

    SCORE_COLUMNS = ("utt_id", "model", "family", "severity", "label", "score", "policy", "queries")

    def scores(self) -> pd.DataFrame:
        """Every score (for small runs and tests; the runner streams with :meth:`iter_scores`)."""
        return _typed(pd.read_sql_query(f"SELECT {', '.join(self.SCORE_COLUMNS)} FROM scores "
                                        "ORDER BY model, family, severity, utt_id", self.db))

    def iter_scores(self, rows: int = 200_000):
        """The scores table in key order, ``rows`` at a time (DataFrames), so memory stays bounded."""
        cur = self.db.execute(f"SELECT {', '.join(self.SCORE_COLUMNS)} FROM scores "
                              "ORDER BY model, family, severity, utt_id")
        while batch := cur.fetchmany(rows):
            yield _typed(pd.DataFrame(batch, columns=list(self.SCORE_COLUMNS)))

    def n_scores(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def groups(self) -> list[tuple[str, str, int]]:
        """The (model, family, severity) combinations that hold scores, in key order."""
        return [tuple(r) for r in self.db.execute(
            "SELECT DISTINCT model, family, severity FROM scores ORDER BY model, family, severity")]

    def group_scores(self, model: str, family: str, severity: int) -> tuple[list[str], list[float]]:
        """Labels and scores of one model under one condition."""
        rows = self.db.execute("SELECT label, score FROM scores WHERE model=? AND family=? AND severity=? "
                               "ORDER BY utt_id", (model, family, severity)).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def group_queries(self, model: str, family: str, severity: int) -> list[int]:
        """The recorded query counts of one model under one condition (empty when none were recorded)."""
        rows = self.db.execute("SELECT queries FROM scores WHERE model=? AND family=? AND severity=? "
                               "AND queries IS NOT NULL", (model, family, severity)).fetchall()
        return [int(r[0]) for r in rows]

    def group_ids(self, model: str, family: str, severity: int) -> list[str]:
        """Utterance ids of :meth:`group_scores`, in the same order."""
        rows = self.db.execute("SELECT utt_id FROM scores WHERE model=? AND family=? AND severity=? "
                               "ORDER BY utt_id", (model, family, severity)).fetchall()
        return [r[0] for r in rows]

    def group_rows(self, model: str, family: str, severity: int) -> list[tuple[str, str, float]]:
        """(utt_id, label, score) of one model under one condition, by utt_id."""
        return self.db.execute("SELECT utt_id, label, score FROM scores WHERE model=? AND family=? AND severity=? "
                               "ORDER BY utt_id", (model, family, severity)).fetchall()

    def group_quality(self, model: str, family: str, severity: int) -> list[tuple[float, float, float]]:
        """(snr_db, pesq, stoi) rows of one condition: the model's own (attacks) or the shared ones ("")."""
        rows = self.db.execute("SELECT snr_db, pesq, stoi FROM quality WHERE model IN (?, '') AND family=? "
                               "AND severity=? ORDER BY utt_id", (model, family, severity)).fetchall()
        return [tuple(float("nan") if v is None else float(v) for v in r) for r in rows]

    def segment_groups(self) -> dict[tuple[str, str, int], tuple]:
        """(model, family, severity) -> (window labels, window scores) as arrays (1 = spoofed); empty when the
        run's data has no segment labels."""
        import numpy as np

        out: dict[tuple[str, str, int], tuple] = {}
        for model, family, severity in self.db.execute(
                "SELECT DISTINCT model, family, severity FROM segments ORDER BY model, family, severity").fetchall():
            rows = self.db.execute("SELECT spoofed, score FROM segments WHERE model=? AND family=? AND severity=? "
                                   "ORDER BY utt_id, start_s", (model, family, severity)).fetchall()
            out[(model, family, int(severity))] = (np.array([r[0] for r in rows], np.int64),
                                                   np.array([r[1] for r in rows], float))
        return out

    def problems(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM problems ORDER BY stage, utt_id, family, severity", self.db)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Query counts as nullable integers (written as ``100`` or an empty field, never ``100.0``)."""
    df["queries"] = pd.to_numeric(df["queries"], errors="coerce").astype("Int64")
    return df


def _real(v) -> float | None:
    """SQLite stores NaN as NULL; infinities as they are."""
    v = float(v)
    return None if v != v else v
