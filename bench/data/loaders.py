"""``--data`` specs -> :class:`~bench.data.manifest.Dataset`.

Supported specs (``load_dataset``):

``demo``
    The built-in demo set (``bench.data.demo.load_demo()``).
``PATH.csv`` (or ``.tsv``)
    A manifest, see :func:`bench.data.manifest.read_manifest`.
``asvspoof2019-la:ROOT[?part=eval]``
    ROOT is the ``LA`` folder of the ASVspoof 2019 release (or its parent), holding
    ``ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt`` and
    ``ASVspoof2019_LA_{train,dev,eval}/flac/``. ``part`` is ``train``, ``dev`` or ``eval``
    (default), or a comma list such as ``dev,eval``. attrs: ``part``.
``asvspoof2021-la:ROOT[?subset=eval]`` / ``asvspoof2021-df:ROOT[?subset=eval]``
    The keys of the full key release, ``keys/{LA,DF}/CM/trial_metadata.txt``, looked up under
    ROOT, ``ROOT/{LA,DF}-keys-full/`` or ROOT itself (``trial_metadata.txt``, ``CM/...``); audio
    (``<UTT>.flac``) in ``ROOT/ASVspoof2021_{LA,DF}_eval/flac/``, in the DF part folders
    ``ROOT/ASVspoof2021_DF_eval_part0*/`` (``flac/`` or ``ASVspoof2021_DF_eval/flac/`` inside),
    or ``ROOT/flac/``. ``subset`` is ``eval`` (default, the final evaluation subset of the
    official package), ``progress``, ``hidden``, ``all`` or a comma list. LA lines are
    ``SPEAKER UTT CODEC TRANSMISSION ATTACK LABEL TRIM SUBSET``; DF lines are
    ``SPEAKER UTT CODEC SOURCE ATTACK LABEL TRIM SUBSET`` optionally followed by ``VOCODER TASK
    TEAM GENDER_PAIR LANGUAGE`` (full keys). attrs: ``codec``, ``transmission`` (LA) or
    ``source`` and the optional DF fields, ``trim``, ``subset``.
``inthewild:ROOT``
    ROOT holds ``meta.csv`` (``file,speaker,label`` with ``bona-fide``/``spoof``) and the wav
    files beside it, or is the parent of ``release_in_the_wild/``.
``FOLDER``
    A folder with ``bonafide/`` and ``spoof/`` subfolders; audio files found recursively, id =
    file stem (two files with one stem is a :class:`ManifestError`), attrs ``subdir``.

Every loader drops listed files that do not exist into ``Dataset.problems`` (before ``limit``).
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Callable

from bench.data.manifest import (UNKNOWN, Dataset, DataSpecError, ManifestError, Utterance,
                                 drop_missing, normalize_label, read_manifest)
from foundation.registry import Registry

log = logging.getLogger(__name__)

#: corpus prefix -> loader(root: Path, options: dict, check_files: bool) -> Dataset
CORPORA: Registry[Callable[..., Dataset]] = Registry("corpus")
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4",
                    ".webm", ".wma", ".aiff", ".aif", ".au"}


def _options(spec_root: str) -> tuple[str, dict[str, str]]:
    root, sep, query = spec_root.rpartition("?")
    if not sep or not query:
        return spec_root, {}
    pairs = [p.split("=", 1) for p in query.split("&")]
    if not all(len(p) == 2 for p in pairs):
        return spec_root, {}      # a '?' that is part of the path
    return root, {k.strip().lower(): v.strip() for k, v in pairs}


def _check_options(corpus: str, options: dict, allowed: set[str]) -> None:
    bad = sorted(set(options) - allowed)
    if bad:
        raise DataSpecError(f"{corpus}: unknown option(s) {bad}; allowed: {sorted(allowed)}")


def _choices(corpus: str, key: str, value: str, allowed: tuple[str, ...]) -> list[str]:
    vals = [v.strip().lower() for v in value.split(",") if v.strip()]
    if vals == ["all"]:
        return list(allowed)
    bad = [v for v in vals if v not in allowed]
    if bad or not vals:
        raise DataSpecError(f"{corpus}: {key}={value!r} is not one of {', '.join(allowed)} or all")
    return vals


def _listing(*dirs: Path) -> dict[str, Path]:
    """stem -> path for the audio files directly inside each existing folder (one scandir each)."""
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for e in it:
                stem, ext = os.path.splitext(e.name)
                if ext.lower() in AUDIO_EXTENSIONS and stem not in found:
                    found[stem] = d / e.name
    return found


def _protocol_lines(file: Path, min_fields: int):
    """(line number, fields) of a whitespace-separated protocol, blank lines skipped."""
    with open(file, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < min_fields:
                raise ManifestError(file, f"expected at least {min_fields} space-separated fields, found "
                                          f"{len(fields)}: {line.strip()!r}", line=no)
            yield no, fields


def _label(file: Path, no: int, value: str, column: str) -> str:
    lab = normalize_label(value)
    if lab is None:
        raise ManifestError(file, f"unknown label {value!r}", line=no, column=column)
    return lab


def _unique(file: Path, no: int, uid: str, seen: dict[str, int], column: str = "utt_id") -> None:
    if uid in seen:
        raise ManifestError(file, f"duplicate id {uid!r}, first on line {seen[uid]}", line=no, column=column)
    seen[uid] = no


def _finish(name: str, utts: list[Utterance], check_files: bool, existing: set[str] | None = None) -> Dataset:
    problems: list[tuple[str, str]] = []
    if check_files:
        utts = drop_missing(utts, problems, existing)
    return Dataset(name, utts, problems)


# ---------------------------------------------------------------- ASVspoof 2019 LA
PARTS_2019 = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


@CORPORA.register("asvspoof2019-la")
def load_asvspoof2019_la(root: Path, options: dict, check_files: bool = True) -> Dataset:
    _check_options("asvspoof2019-la", options, {"part"})
    base = next((r for r in (root, root / "LA") if (r / "ASVspoof2019_LA_cm_protocols").is_dir()), None)
    if base is None:
        raise DataSpecError(f"asvspoof2019-la: {root} has no ASVspoof2019_LA_cm_protocols/ folder; ROOT must "
                            "be the LA folder of the ASVspoof 2019 release (or its parent)")
    parts = _choices("asvspoof2019-la", "part", options.get("part", "eval"), tuple(PARTS_2019))
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    existing: set[str] = set()
    for part in parts:
        proto = base / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{PARTS_2019[part]}.txt"
        if not proto.is_file():
            raise DataSpecError(f"asvspoof2019-la: protocol {proto} not found")
        audio = base / f"ASVspoof2019_LA_{part}" / "flac"
        existing |= {str(p) for p in _listing(audio).values()}
        for no, f in _protocol_lines(proto, 5):
            spk, uid, _, attack, label = f[:5]
            _unique(proto, no, uid, seen)
            utts.append(Utterance(uid, audio / f"{uid}.flac", _label(proto, no, label, "label (field 5)"),
                                  spk, attack, {"part": part}))
    return _finish(f"asvspoof2019-la:{'+'.join(parts)}", utts, check_files, existing)


# ---------------------------------------------------------------- ASVspoof 2021 LA / DF
SUBSETS_2021 = ("eval", "progress", "hidden")
FIELDS_2021 = {
    "LA": ("speaker", "utt_id", "codec", "transmission", "attack", "label", "trim", "subset"),
    "DF": ("speaker", "utt_id", "codec", "source", "attack", "label", "trim", "subset",
           "vocoder", "task", "team", "gender_pair", "language"),
}


def _keys_file(root: Path, track: str) -> Path:
    rel = Path("keys") / track / "CM" / "trial_metadata.txt"
    cands = [root / rel, root / f"{track}-keys-full" / rel, root / track / "CM" / "trial_metadata.txt",
             root / "CM" / "trial_metadata.txt", root / "trial_metadata.txt"]
    for c in cands:
        if c.is_file():
            return c
    raise DataSpecError(f"asvspoof2021-{track.lower()}: no CM keys under {root}; looked for "
                        + ", ".join(str(c.relative_to(root)) for c in cands)
                        + f" (the {track}-keys-full release of the ASVspoof 2021 keys and metadata)")


def _audio_dirs_2021(root: Path, track: str) -> list[Path]:
    name = f"ASVspoof2021_{track}_eval"
    dirs = [root / name / "flac"]
    for part in sorted(root.glob(f"{name}_part*")):
        dirs += [part / "flac", part / name / "flac", part]
    dirs.append(root / "flac")
    return [d for d in dirs if d.is_dir()]


def _load_asvspoof2021(track: str, root: Path, options: dict, check_files: bool) -> Dataset:
    corpus = f"asvspoof2021-{track.lower()}"
    _check_options(corpus, options, {"subset"})
    subsets = set(_choices(corpus, "subset", options.get("subset", "eval"), SUBSETS_2021))
    keys = _keys_file(root, track)
    dirs = _audio_dirs_2021(root, track)
    if not dirs:
        raise DataSpecError(f"{corpus}: no audio folder under {root} (expected ASVspoof2021_{track}_eval/flac/)")
    audio = _listing(*dirs)
    names = FIELDS_2021[track]
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    for no, f in _protocol_lines(keys, 8):
        rec = dict(zip(names, f))
        if rec["subset"].lower() not in subsets:
            continue
        uid = rec["utt_id"]
        _unique(keys, no, uid, seen)
        label = _label(keys, no, rec["label"], "label (field 6)")
        attrs = {k: v for k, v in rec.items() if k not in ("speaker", "utt_id", "attack", "label")}
        path = audio.get(uid, dirs[0] / f"{uid}.flac")
        utts.append(Utterance(uid, path, label, rec["speaker"], rec["attack"], attrs))
    if not utts:
        raise DataSpecError(f"{corpus}: {keys} lists no trial of subset {sorted(subsets)}")
    return _finish(f"{corpus}:{'+'.join(s for s in SUBSETS_2021 if s in subsets)}", utts, check_files,
                   {str(p) for p in audio.values()})


@CORPORA.register("asvspoof2021-la")
def load_asvspoof2021_la(root: Path, options: dict, check_files: bool = True) -> Dataset:
    return _load_asvspoof2021("LA", root, options, check_files)


@CORPORA.register("asvspoof2021-df")
def load_asvspoof2021_df(root: Path, options: dict, check_files: bool = True) -> Dataset:
    return _load_asvspoof2021("DF", root, options, check_files)


# ---------------------------------------------------------------- In-the-Wild
@CORPORA.register("inthewild")
def load_inthewild(root: Path, options: dict, check_files: bool = True) -> Dataset:
    _check_options("inthewild", options, set())
    meta = next((m for m in (root / "meta.csv", root / "release_in_the_wild" / "meta.csv") if m.is_file()), None)
    if meta is None:
        raise DataSpecError(f"inthewild: no meta.csv in {root} or {root / 'release_in_the_wild'}")
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    with open(meta, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        for col in ("file", "speaker", "label"):
            if col not in header:
                raise ManifestError(meta, f"missing column; the header has {header}", line=1, column=col)
        ix = {c: header.index(c) for c in ("file", "speaker", "label")}
        for row in reader:
            no = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ManifestError(meta, f"expected {len(header)} fields, found {len(row)}", line=no)
            file = row[ix["file"]].strip()
            if not file:
                raise ManifestError(meta, "empty file name", line=no, column="file")
            uid = Path(file).stem
            _unique(meta, no, uid, seen, "file")
            utts.append(Utterance(uid, meta.parent / file, _label(meta, no, row[ix["label"]], "label"),
                                  row[ix["speaker"]].strip() or UNKNOWN, UNKNOWN, {}))
    if not utts:
        raise ManifestError(meta, "no utterances listed")
    return _finish("inthewild", utts, check_files, {str(p) for p in _listing(meta.parent).values()})


# ---------------------------------------------------------------- bonafide/ + spoof/ folder
def load_folder(root: Path, check_files: bool = True) -> Dataset:
    utts: list[Utterance] = []
    where: dict[str, Path] = {}
    for label in ("bonafide", "spoof"):
        sub = root / label
        if not sub.is_dir():
            log.warning("%s has no %s/ subfolder: the set holds one class only", root, label)
            continue
        for p in sorted(q for q in sub.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file()):
            if p.stem in where:
                raise ManifestError(root, f"two files share the id {p.stem!r}: {where[p.stem]} and {p}; rename "
                                          "one or list them in a CSV manifest with a utt_id column")
            where[p.stem] = p
            rel = p.parent.relative_to(sub).as_posix()
            utts.append(Utterance(p.stem, p, label, UNKNOWN, UNKNOWN, {"subdir": "" if rel == "." else rel}))
    if not utts:
        raise DataSpecError(f"{root}: no audio files under bonafide/ or spoof/ "
                            f"(extensions {', '.join(sorted(AUDIO_EXTENSIONS))})")
    return Dataset(f"folder:{root.name}", utts, [])


# ---------------------------------------------------------------- demo
def load_demo_dataset() -> Dataset:
    try:
        from bench.data.demo import load_demo
    except ImportError as e:
        if e.name not in ("bench.data.demo", "bench.data"):
            raise
        raise DataSpecError("the built-in demo set (bench/data/demo) is not installed in this checkout; "
                            "reinstall the package or pass --data with a manifest or corpus spec") from e
    got = load_demo()
    if isinstance(got, Dataset):
        return got
    return Dataset("demo", list(got), [])


# ---------------------------------------------------------------- dispatch
FORMS = ("demo", "PATH.csv", "asvspoof2019-la:ROOT[?part=eval|dev|train]",
         "asvspoof2021-la:ROOT[?subset=eval|progress|hidden|all]",
         "asvspoof2021-df:ROOT[?subset=eval|progress|hidden|all]", "inthewild:ROOT",
         "FOLDER with bonafide/ and spoof/")


def load_dataset(spec, limit: int | None = None, seed: int = 0, check_files: bool = True) -> Dataset:
    """Resolve a data spec (see the module docstring) and apply a stratified ``limit``."""
    text = str(spec).strip()
    prefix, sep, rest = text.partition(":")
    if text.lower() == "demo":
        ds = load_demo_dataset()
    elif sep and prefix.lower() in CORPORA:
        root_text, options = _options(rest)
        root = Path(root_text).expanduser()
        if not root.is_dir():
            raise DataSpecError(f"{prefix.lower()}: root folder {root} does not exist")
        ds = CORPORA.get(prefix.lower())(root, options, check_files)
    else:
        p = Path(text).expanduser()
        if p.is_file():
            ds = read_manifest(p, check_files=check_files)
        elif p.is_dir() and ((p / "bonafide").is_dir() or (p / "spoof").is_dir()):
            ds = load_folder(p, check_files=check_files)
        elif p.is_dir():
            raise DataSpecError(f"{p} is a folder without bonafide/ or spoof/ subfolders; a data spec is one "
                                f"of: {'; '.join(FORMS)}")
        else:
            raise DataSpecError(f"unknown data spec {text!r}: no such file or folder, and not one of: "
                                f"{'; '.join(FORMS)}")
    if not ds.utterances:
        eg = "; ".join(f"{w}: {r}" for w, r in ds.problems[:3])
        raise DataSpecError(f"{text}: no usable utterances ({len(ds.problems)} problems, e.g. {eg})")
    if limit is not None:
        ds = ds.select(limit, seed)
    log.info("data %s: %d bona fide, %d spoof, %d left out", ds.name, *ds.counts().values(), len(ds.problems))
    return ds
