"""Checkpoints published inside a zip archive with no digest: download, unzip, trust on first use.

Some official weights (the ASVspoof 2021 organisers' ``pre_trained_DF_RawNet2.zip``) come as a zip at a fixed
address with no published sha256, so nothing can be pinned on the card. A card marks such a file with
``extra={"archive": "zip", "archive_member": NAME}``: its ``url`` is the zip, its ``filename`` the checkpoint's
place under ``$BENCH_WEIGHTS_DIR`` and the cache. The first download records the zip's and the checkpoint's
sha256 in ``<cache>/weights/<filename>.sha256.json`` beside the unzipped file; from then on a downloaded zip that
differs is refused, naming both digests, unless the caller accepts it (``bench weights MODEL --accept-new``),
and the cached checkpoint is checked against the recorded digest when it is loaded.

Only the one member is read out of the zip (never ``extractall``: no paths from the archive reach the disk).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from foundation.cache import WeightsError, cache_dir, offline, sha256_file

log = logging.getLogger(__name__)


def is_archive_card(card: Any) -> bool:
    """True for a card whose ``url`` is a zip holding its checkpoint (``extra["archive"] == "zip"``)."""
    return (getattr(card, "extra", None) or {}).get("archive") == "zip" and bool(card.filename and card.url)


def cached_path(card: Any) -> Path:
    return cache_dir() / "weights" / card.filename


def record_path(card: Any) -> Path:
    """The JSON beside the cached checkpoint holding the digests recorded at first download."""
    p = cached_path(card)
    return p.with_name(p.name + ".sha256.json")


def recorded(card: Any) -> dict | None:
    """The record of a card's first download (``url``, ``archive_sha256``, ``member``, ``sha256``,
    ``recorded_at``), or None when there is none yet."""
    p = record_path(card)
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{p} (the digests recorded at the first download of {card.name!r}) cannot be read "
                           f"({e}); delete it and run `bench weights {card.name} --accept-new`") from e
    if not isinstance(rec, dict) or not isinstance(rec.get("archive_sha256"), str) \
            or not isinstance(rec.get("sha256"), str):
        raise WeightsError(f"{p} lacks archive_sha256/sha256; delete it and run "
                           f"`bench weights {card.name} --accept-new`")
    return rec


def check_recorded(card: Any, path: str | os.PathLike, got: str) -> None:
    """Refuses the cached checkpoint of an archive card whose bytes (digest ``got``) are not the recorded ones.
    Files elsewhere (``$BENCH_WEIGHTS_DIR``, ``--checkpoint``) are the user's and are not compared."""
    if Path(path) != cached_path(card):
        return
    rec = recorded(card)
    if rec and got != rec["sha256"]:
        raise WeightsError(f"{path} has sha256 {got}, but {record_path(card)} recorded {rec['sha256']} at the "
                           f"first download; refusing to load it (run `bench weights {card.name} --accept-new` "
                           "to download and trust the current file)")


def _fetch(url: str, folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".zip.part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as r, os.fdopen(fd, "wb") as f:
            while block := r.read(1 << 20):
                h.update(block)
                f.write(block)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp), h.hexdigest()


def _member(card: Any, zf: zipfile.ZipFile) -> str:
    """The checkpoint's name in the zip: the card's ``archive_member`` (at any depth), else its only .pth/.pt."""
    want = card.extra.get("archive_member") or Path(card.filename).name
    names = [n for n in zf.namelist() if not n.endswith("/")]
    hits = [n for n in names if n == want or n.endswith("/" + want)]
    if not hits:
        hits = [n for n in names if n.endswith((".pth", ".pt")) and not n.startswith("__MACOSX/")]
    if len(hits) != 1:
        raise WeightsError(f"the {card.name!r} archive from {card.url} holds {', '.join(names) or 'nothing'}: "
                           f"expected one {want} (or one .pth); not installed")
    return hits[0]


def _unzip_member(card: Any, archive: Path, dest: Path) -> tuple[str, str]:
    """Writes the checkpoint member of ``archive`` to ``dest`` (atomically); returns (member, its sha256)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            member = _member(card, zf)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
            h = hashlib.sha256()
            try:
                with zf.open(member) as r, os.fdopen(fd, "wb") as f:
                    while block := r.read(1 << 20):
                        h.update(block)
                        f.write(block)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except zipfile.BadZipFile as e:
        raise WeightsError(f"the {card.name!r} download from {card.url} is not a zip archive ({e}); "
                           "not installed") from e
    return member, h.hexdigest()


def install_archive(card: Any, archive: Path, archive_sha256: str, accept_new: bool = False) -> tuple[Path, str]:
    """Unzips ``archive`` (whose sha256 is ``archive_sha256``) into the cache, recording its digests on first
    use; a zip other than the recorded one is refused unless ``accept_new``. Returns (checkpoint, how)."""
    rec = recorded(card)
    how = "downloaded"
    if rec and rec["archive_sha256"] != archive_sha256:
        if not accept_new:
            raise WeightsError(
                f"the {card.name!r} archive now has sha256 {archive_sha256}, but {rec['archive_sha256']} was "
                f"recorded at its first download ({rec.get('recorded_at', '?')}, {record_path(card)}); refused "
                f"(the file changed upstream or was tampered with). If the new file is trusted, run "
                f"`bench weights {card.name} --accept-new`")
        log.warning("%s: accepting a new archive, sha256 %s (was %s)", card.name, archive_sha256,
                    rec["archive_sha256"])
        how = "downloaded (new digest accepted)"
    dest = cached_path(card)
    dest.parent.mkdir(parents=True, exist_ok=True)
    member, digest = _unzip_member(card, archive, dest)
    new = {"url": card.url, "archive_sha256": archive_sha256, "member": member, "sha256": digest,
           "recorded_at": rec["recorded_at"] if rec and rec["archive_sha256"] == archive_sha256
           else _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    tmp = record_path(card).with_suffix(".part")
    tmp.write_text(json.dumps(new, indent=1) + "\n")
    os.replace(tmp, record_path(card))
    if not rec:
        log.warning("%s: no digest is published for %s; recorded sha256 %s (zip) / %s (%s) in %s; a different "
                    "file later is refused", card.name, card.url, archive_sha256, digest, member, record_path(card))
    return dest, how


def download(card: Any, accept_new: bool = False) -> tuple[Path, str]:
    """Downloads the card's zip into the cache (trust on first use, see the module); returns (checkpoint, how)."""
    if offline():
        raise WeightsError(f"downloads are off (BENCH_OFFLINE/HF_HUB_OFFLINE); the {card.name!r} weights are "
                           f"the zip at {card.url}: run `bench weights {card.name}` online, or put "
                           f"{card.filename} in $BENCH_WEIGHTS_DIR, or pass --checkpoint PATH")
    folder = cached_path(card).parent
    log.info("downloading %s", card.url)
    try:
        archive, digest = _fetch(card.url, folder)
    except OSError as e:   # URLError is an OSError: offline, DNS, HTTP errors
        raise WeightsError(f"could not download the {card.name!r} weights from {card.url} ({e}); offline? put "
                           f"{card.filename} (unzipped) in $BENCH_WEIGHTS_DIR, give `bench weights {card.name} "
                           "--from DIR` a folder holding the zip, or pass --checkpoint PATH") from e
    try:
        return install_archive(card, archive, digest, accept_new)
    finally:
        archive.unlink(missing_ok=True)


def install_from(card: Any, source_dir: str | os.PathLike, accept_new: bool = False) -> tuple[Path, str]:
    """``bench weights MODEL --from DIR`` for an archive card: the zip (``DIR/<zip name>``, or beside
    ``DIR/<filename>``) goes through :func:`install_archive`, as a download would."""
    name = Path(card.url).name
    for p in (Path(source_dir) / name, Path(source_dir) / Path(card.filename).parent / name):
        if p.is_file():
            path, _ = install_archive(card, p, sha256_file(p), accept_new)
            return path, "copied"
    raise WeightsError(f"{Path(source_dir) / name} does not exist; --from must be a folder holding {name} "
                       f"(from {card.url})")
