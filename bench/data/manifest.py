"""Utterances, datasets, CSV manifests and stratified selection.

A :class:`Dataset` holds the usable :class:`Utterance` records and ``problems``: every input that
was left out while loading, as ``(path or "file:line", reason)``. Audio is not read here; the
runner reads it with :func:`foundation.audio.load_audio` and records its own ``AudioError``\\ s.

A manifest that is itself wrong (missing column, unknown label, duplicate id, malformed line)
raises :class:`ManifestError` naming the file, line and column. A listed audio file that does not
exist is not a manifest error: with ``check_files=True`` (the default of every loader) it is moved
to ``problems`` before any ``limit`` is applied, so ``--limit N`` yields N readable paths.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

log = logging.getLogger(__name__)

BONAFIDE, SPOOF = "bonafide", "spoof"
#: accepted spellings (after lower-casing and stripping) -> canonical label
LABELS = {"bonafide": BONAFIDE, "bona-fide": BONAFIDE, "bona fide": BONAFIDE, "bona_fide": BONAFIDE,
          "spoof": SPOOF, "spoofed": SPOOF}
UNKNOWN = "-"   # speaker or attack not given (the ASVspoof protocols' own placeholder)


class ManifestError(ValueError):
    """A list of utterances that cannot be parsed; names the file, line and column."""

    def __init__(self, file, reason: str, line: int | None = None, column: str | None = None):
        self.file, self.reason, self.line, self.column = str(file), reason, line, column
        where = self.file + (f", line {line}" if line is not None else "")
        where += f", column {column!r}" if column else ""
        super().__init__(f"{where}: {reason}")


class DataSpecError(ValueError):
    """A ``--data`` spec that names no known layout, or a corpus root that lacks its files."""


def normalize_label(value) -> str | None:
    """Canonical ``bonafide``/``spoof`` for an accepted spelling, else None."""
    return LABELS.get(str(value).strip().lower())


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    path: Path
    label: str
    speaker: str = UNKNOWN
    attack: str = UNKNOWN
    attrs: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if self.label not in (BONAFIDE, SPOOF):
            raise ValueError(f"utterance {self.utt_id!r}: label must be 'bonafide' or 'spoof', got {self.label!r}")
        if not self.utt_id:
            raise ValueError(f"utterance at {self.path}: empty utt_id")
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))


@dataclass
class Dataset:
    name: str
    utterances: list[Utterance]
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def counts(self) -> dict[str, int]:
        c = Counter(u.label for u in self.utterances)
        return {BONAFIDE: c.get(BONAFIDE, 0), SPOOF: c.get(SPOOF, 0)}

    def select(self, limit: int | None, seed: int = 0) -> "Dataset":
        """A stratified subset (see :func:`select_stratified`), problems kept."""
        return Dataset(self.name, select_stratified(self.utterances, limit, seed), list(self.problems))

    def to_frame(self):
        """One row per utterance: utt_id, path, label, speaker, attack and every attrs key."""
        import pandas as pd

        rows = [{"utt_id": u.utt_id, "path": str(u.path), "label": u.label, "speaker": u.speaker,
                 "attack": u.attack, **dict(u.attrs)} for u in self.utterances]
        base = ["utt_id", "path", "label", "speaker", "attack"]
        return pd.DataFrame(rows, columns=base + sorted({k for r in rows for k in r} - set(base)))


# ---------------------------------------------------------------- selection
def _hash_key(seed: int, utt_id: str) -> bytes:
    return hashlib.blake2b(f"{int(seed)}\0{utt_id}".encode(), digest_size=8).digest()


def _quotas(counts: dict[str, int], limit: int) -> dict[str, int]:
    total = sum(counts.values())
    exact = {k: limit * n / total for k, n in counts.items()}
    q = {k: int(v) for k, v in exact.items()}
    rest = sorted(counts, key=lambda k: (-(exact[k] - q[k]), k))
    for k in rest[: limit - sum(q.values())]:
        q[k] += 1
    # every label present keeps at least one utterance when the limit allows it
    if limit >= len(counts):
        for k in counts:
            if q[k] == 0:
                donor = max(q, key=lambda j: (q[j], j))
                q[donor] -= 1
                q[k] = 1
    return q


def select_stratified(utterances: list[Utterance], limit: int | None, seed: int = 0) -> list[Utterance]:
    """At most ``limit`` utterances, keeping the label proportions (largest remainder, at least one
    per label), chosen per label by a keyed hash of ``(seed, utt_id)``.

    Deterministic, independent of the input order, and nested: the selection for a smaller
    limit is contained in the one for a larger limit. The result keeps the input order.
    """
    if limit is None or limit >= len(utterances):
        return list(utterances)
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of utterances, got {limit}")
    by_label: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_label.setdefault(u.label, []).append(i)
    q = _quotas({k: len(v) for k, v in by_label.items()}, limit)
    keep: set[int] = set()
    for lab, idx in by_label.items():
        ranked = sorted(idx, key=lambda i: (_hash_key(seed, utterances[i].utt_id), utterances[i].utt_id))
        keep.update(ranked[: q[lab]])
    return [u for i, u in enumerate(utterances) if i in keep]


def drop_missing(utterances: Iterable[Utterance], problems: list[tuple[str, str]],
                 existing: set[str] | None = None) -> list[Utterance]:
    """Move utterances whose audio file does not exist to ``problems``.

    ``existing`` (a set of path strings from one directory listing) avoids a stat per file.
    """
    from foundation.audio import describe_path

    kept: list[Utterance] = []
    missing: dict[str, list[str]] = {}   # path -> the utterances naming it (a file listed twice is one problem)
    for u in utterances:
        ok = str(u.path) in existing if existing is not None else u.path.is_file()
        if ok:
            kept.append(u)
        else:
            missing.setdefault(str(u.path), []).append(u.utt_id)
    for path, ids in missing.items():
        what = describe_path(path) or "not a regular file"   # a directory, a broken link ... say which
        what = "audio file not found" if what == "file not found" else what
        problems.append((path, f"{what} (utterance{'s' if len(ids) > 1 else ''} {', '.join(ids)})"))
    if missing:
        log.warning("%d of %d listed audio files are missing", len(missing),
                    len(missing) + len({str(u.path) for u in kept}))
    return kept


# ---------------------------------------------------------------- CSV manifests
def _check_relisted(mpath: Path, by_path: dict, p: Path, line: int, label: str, uid: str) -> None:
    """One audio file listed twice: with two labels it is refused (the clip would be scored as both bona fide
    and spoof, which no detector can get right); with one label it is warned about (it weighs twice)."""
    if p not in by_path:
        by_path[p] = (line, label, uid)
        return
    first, first_label, first_id = by_path[p]
    if first_label != label:
        raise ManifestError(mpath, f"{p} is listed as {first_label} on line {first} (utterance {first_id!r}) and "
                                   f"as {label} here (utterance {uid!r}); one clip cannot be both: remove one row",
                            line=line, column="path")
    log.warning("%s: line %d lists %s again (utterance %r; first on line %d as %r): it is scored and counted twice",
                mpath, line, p, uid, first, first_id)
REQUIRED = ("path", "label")
KNOWN = ("utt_id", "path", "label", "speaker", "attack")


def read_manifest(path, check_files: bool = True, name: str | None = None) -> Dataset:
    """Parse a CSV manifest (columns ``path``, ``label``; optional ``utt_id``, ``speaker``,
    ``attack``; any other column goes into ``attrs``). A ``.tsv`` file is tab-separated.

    Header names are matched case-insensitively. Relative paths are relative to the manifest's
    folder (the joined path is normalised, ``..`` removed). Without ``utt_id`` the id is the
    file stem. Empty ``speaker``/``attack`` cells become ``"-"``.
    """
    mpath = Path(path).expanduser()
    if not mpath.is_file():
        raise DataSpecError(f"manifest {mpath} does not exist")
    base = mpath.resolve().parent
    delim = "\t" if mpath.suffix.lower() == ".tsv" else ","
    utts: list[Utterance] = []
    first_line: dict[str, int] = {}
    by_path: dict[Path, tuple[int, str, str]] = {}   # path -> (first line, label, utt_id) naming it
    try:
        text = mpath.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = mpath.read_bytes()[:e.start].count(b"\n") + 1
        raise ManifestError(mpath, f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                            "save the manifest as UTF-8", line=line) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f, delimiter=delim)
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(mpath, "empty file: expected a header with at least 'path' and 'label'",
                                line=1) from None
        header = [h.strip().lower() for h in header]
        for col in REQUIRED:
            if col not in header:
                raise ManifestError(mpath, f"missing required column; the header has {header}",
                                    line=1, column=col)
        dup = [h for h, n in Counter(header).items() if n > 1]
        if dup:
            raise ManifestError(mpath, "column appears more than once", line=1, column=dup[0])
        has_id = "utt_id" in header
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ManifestError(mpath, f"expected {len(header)} fields, found {len(row)}", line=line)
            rec = {h: c.strip() for h, c in zip(header, row)}
            label = normalize_label(rec["label"])
            if label is None:
                raise ManifestError(mpath, f"unknown label {rec['label']!r}; use bonafide, bona-fide or "
                                           "spoof", line=line, column="label")
            if not rec["path"]:
                raise ManifestError(mpath, "empty path", line=line, column="path")
            p = Path(rec["path"]).expanduser()
            p = Path(os.path.normpath(p if p.is_absolute() else base / p))
            uid = rec["utt_id"] if has_id else p.stem
            if not uid:
                raise ManifestError(mpath, "empty utt_id", line=line, column="utt_id")
            if uid in first_line:
                hint = "" if has_id else " (two files share a stem: add a utt_id column)"
                raise ManifestError(mpath, f"duplicate id {uid!r}, first on line {first_line[uid]}{hint}",
                                    line=line, column="utt_id" if has_id else "path")
            first_line[uid] = line
            _check_relisted(mpath, by_path, p, line, label, uid)
            attrs = {k: v for k, v in rec.items() if k not in KNOWN}
            utts.append(Utterance(uid, p, label, rec.get("speaker") or UNKNOWN,
                                  rec.get("attack") or UNKNOWN, attrs))
    if not utts:
        raise ManifestError(mpath, "no utterances listed (only a header)")
    problems: list[tuple[str, str]] = []
    if check_files:
        utts = drop_missing(utts, problems)
    return Dataset(name or f"manifest:{mpath.name}", utts, problems)
