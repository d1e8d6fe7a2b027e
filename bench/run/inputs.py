"""What a run checks about each input file besides decoding it: its content digest and its level.

* Content: a run is bound to the bytes of every file it scored, not only to the manifest's (id, label, path).
  A worker reading a file takes ``(size, mtime_ns, sha256)`` of it (:func:`read_input`), checks that size and
  mtime are unchanged after decoding (a file rewritten while it was read is refused, not half-used), and the
  digest is stored with the file's scores (``files`` in the store). On resume, :func:`changed_files` compares
  the files of the data with the stored digests: the same size and mtime count as unchanged without reading
  the file; otherwise its sha256 decides. A changed file is refused naming it, or its scores are dropped and
  computed again (``--rescore-changed``).
* Level: silence, a clip too short to hold speech, a multichannel file whose channels cancel in the mono mix,
  and a float file far above full scale are scored (the detector's answer is still its answer) but recorded
  as warnings with the measured level (stage ``level`` in problems.csv; results.csv counts them per condition
  in ``n_warnings``), as is a perturbation that left a clip unchanged (e.g. noise "at 10 dB SNR" scaled to a
  silent clip: no perturbation at all).
"""
from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

log = logging.getLogger(__name__)

#: a clip whose RMS is below this (dBFS) is recorded as silent
SILENT_DBFS = -60.0
#: a clip shorter than this (seconds) is recorded as too short to hold speech
MIN_SECONDS = 0.1
#: a float file whose peak exceeds this many times full scale is scored as read, with a warning recorded
LOUD_PEAK = 2.0


@dataclass(frozen=True)
class FileDigest:
    size: int
    mtime_ns: int
    sha256: str


def dbfs(rms: float) -> float:
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _fmt_db(x: float) -> str:
    return "-inf" if x == -math.inf else f"{x:.1f}"


def level_notes(wav: np.ndarray, sr: int, channel_rms: Iterable[float] = ()) -> list[str]:
    """Warnings about a clip's level and length (empty for ordinary speech), each with what was measured."""
    notes = []
    x = np.asarray(wav, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    chans = [float(c) for c in channel_rms]
    if dbfs(rms) < SILENT_DBFS:
        loud_chans = [c for c in chans if dbfs(c) >= SILENT_DBFS]
        if len(chans) > 1 and loud_chans:
            notes.append(f"the channels cancel in the mono mix (channels at "
                         f"{', '.join(_fmt_db(dbfs(c)) for c in chans)} dBFS RMS, the mix at {_fmt_db(dbfs(rms))} "
                         "dBFS): scored as silence")
        else:
            notes.append(f"silent: RMS {_fmt_db(dbfs(rms))} dBFS (below {SILENT_DBFS:g})"
                         + (" -- every sample is zero" if rms == 0 else ""))
    if x.size < MIN_SECONDS * sr:
        notes.append(f"only {x.size} samples ({1000 * x.size / sr:.1f} ms): too short to hold speech "
                     f"(under {MIN_SECONDS:g} s); the input policy repeats or pads it")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > LOUD_PEAK:
        notes.append(f"peak {peak:.4g} is far above full scale (1.0): a float file that is not normalised? "
                     "Scored as read, not rescaled")
    return notes


def unchanged_note(clean: np.ndarray, out: np.ndarray, family: str, severity: int) -> str | None:
    """A warning when a perturbation left the clip exactly as it was (nothing was measured under it)."""
    if np.shape(clean) == np.shape(out) and np.array_equal(clean, out):
        return (f"{family}@{severity} left this clip unchanged (measured SNR inf): the condition perturbed nothing "
                "here (a silent clip?)")
    return None


def digest_file(path: str) -> FileDigest:
    from foundation.weights import sha256_file

    st = os.stat(path)
    return FileDigest(int(st.st_size), int(st.st_mtime_ns), sha256_file(path))


@functools.lru_cache(maxsize=64)
def read_input(path: str, sr: int, max_seconds: float | None) -> tuple[np.ndarray, FileDigest, tuple[str, ...]]:
    """``(waveform at sr, digest of the file, level notes)``; raises ``AudioError`` (a file changed while it was
    read included). Cached per process, like the decoded audio before it."""
    from foundation.audio import AudioError, load_audio

    before = digest_file(path)
    wav, info = load_audio(path, target_sr=sr, max_seconds=max_seconds)
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != (before.size, before.mtime_ns):
        raise AudioError(path, "the file changed while it was being read; give the command again")
    wav.setflags(write=False)
    return wav, before, tuple(level_notes(wav, sr, info.channel_rms))


def changed_files(stored: Mapping[str, tuple[str, int, int, str]], utterances) -> tuple[list[str], dict]:
    """Utterances whose file differs from the digest stored with their scores, and the digests to refresh
    (``utt_id -> (path, size, mtime_ns, sha256)``: a file touched or copied with the same bytes)."""
    changed, refresh = [], {}
    for u in utterances:
        have = stored.get(u.utt_id)
        if have is None:
            continue
        path, size, mtime, sha = have
        try:
            st = os.stat(u.path)
        except OSError:
            changed.append(u.utt_id)
            continue
        if (st.st_size, st.st_mtime_ns) == (size, mtime) and str(u.path) == path:
            continue
        now = digest_file(str(u.path))
        if now.sha256 == sha:
            refresh[u.utt_id] = (str(u.path), now.size, now.mtime_ns, now.sha256)
        else:
            changed.append(u.utt_id)
    return changed, refresh


def check_contents(store, dataset, out, rescore: bool) -> None:
    """Binds the run to its files' contents on resume (see the module docstring): refuses changed files naming
    them, or with ``rescore`` forgets their scores so they are computed again."""
    changed, refresh = changed_files(store.file_digests(), dataset.utterances)
    if refresh:
        store.add_files([(u, *row) for u, row in refresh.items()])
    if not changed:
        return
    paths = {u.utt_id: str(u.path) for u in dataset.utterances}
    if rescore:
        n = store.forget(changed)
        log.warning("--rescore-changed: %d files changed since they were scored (e.g. %s); their %d scores are "
                    "computed again", len(changed), paths[changed[0]], n)
        return
    shown = ", ".join(paths[u] for u in changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise ValueError(f"{out} holds scores of {len(changed)} files whose content has changed since ({shown}): "
                     "their scores are of other audio. Give --rescore-changed to score the new content, or choose "
                     "another --out folder")
