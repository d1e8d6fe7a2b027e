"""Finding, verifying and safely reading checkpoint files.

Resolution order for a card's file: an explicit path, then ``$BENCH_WEIGHTS_DIR/<card.filename>``,
then the user cache (``$BENCH_CACHE_DIR`` or ``~/.cache/deepfake-bench``), downloading into the
cache from ``card.url`` when online. ``bench weights`` (:func:`install`) fills the cache ahead of
time, from the release or from a folder of the official files, for machines that are offline later. A downloaded file whose sha256 differs from the card is
refused and deleted. Checkpoints are never unpickled as arbitrary objects: ``.pt``/``.pth`` go
through ``torch.load(weights_only=True)``, ``.safetensors`` through safetensors.
:func:`read_checkpoint` reads a checkpoint's bytes once and both hashes and parses that one buffer, so the
digest a run records is the digest of the weights it loaded, even if the file is replaced meanwhile (the
price: the file's bytes and its tensors are in memory together while it loads).

Folders (a neural codec's ``save_pretrained`` layout: ``config.json`` + ``model.safetensors``) resolve the
same way with :class:`FolderCard`, :func:`resolve_folder` and :func:`install_folder`: an explicit folder,
then ``$BENCH_WEIGHTS_DIR/<folder>``, then the cache, then a download from the Hugging Face hub into the
cache. ``BENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) forbids every download; the tests set it.

A checkpoint published only inside a zip with no digest (RawNet2's) is downloaded, unzipped and trusted on first
use by :mod:`foundation.tofu`; :func:`availability` says where each card's weights are, for ``bench models``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Protocol

from foundation.cache import WeightsError, cache_dir, offline, sha256_file  # noqa: F401 (this module's API)

log = logging.getLogger(__name__)


class Card(Protocol):
    """What resolution needs of a checkpoint card (``models.base.Card`` satisfies it)."""
    name: str
    filename: str | None
    url: str | None
    sha256: str | None


def _download(url: str, dest: Path, sha256: str | None) -> Path:
    # urllib rather than requests/pooch: one GET of a release file, streamed into a temporary file beside the
    # destination and checked before it is moved in; a library would add a dependency for these lines.
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    os.close(fd)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
        if sha256:
            got = sha256_file(tmp)
            if got != sha256:
                raise WeightsError(f"download of {url} has sha256 {got}, expected {sha256}; refused "
                                   "(the file changed upstream or the transfer was corrupted)")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve(card: "Card", explicit: str | os.PathLike | None = None, download: bool = True,
            verify: bool = True) -> Path:
    """The local path of a card's checkpoint, verified against its sha256 where it has one (``verify=False``:
    the caller verifies the bytes it loads, see :func:`check_card_digest`)."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise WeightsError(f"checkpoint {p} does not exist")
        return p
    if not card.filename:
        raise WeightsError(f"model {card.name!r} has no published checkpoint; "
                           f"pass one with --checkpoint PATH")
    candidates = []
    if os.environ.get("BENCH_WEIGHTS_DIR"):
        candidates.append(Path(os.environ["BENCH_WEIGHTS_DIR"]) / card.filename)
    cached = cache_dir() / "weights" / card.filename
    candidates.append(cached)
    for p in candidates:
        if p.is_file():
            if verify and (card.sha256 or _archive(card)):
                check_card_digest(card, p, sha256_file(p))
            return p
    if download and _archive(card):   # a zip with no published digest: foundation/tofu.py
        from foundation.tofu import download as download_archive

        return download_archive(card)[0]
    if download and card.url:
        try:
            return _download(card.url, cached, card.sha256)
        except OSError as e:  # URLError is an OSError: offline, DNS, HTTP errors
            raise WeightsError(f"could not download the {card.name!r} checkpoint from {card.url} ({e}); "
                               f"offline? set BENCH_WEIGHTS_DIR to a folder holding {card.filename}, "
                               "or pass --checkpoint PATH") from e
    where = " or ".join(str(c) for c in candidates)
    raise WeightsError(f"no checkpoint for {card.name!r} at {where}; set BENCH_WEIGHTS_DIR to a folder "
                       f"holding {card.filename} (or install it once: bench weights --from FOLDER), "
                       "pass --checkpoint PATH"
                       + (f", or go online to download {card.url}" if card.url else "") + _page(card))


def _page(card: "Card") -> str:
    """Where a card's files are published by hand (``extra["weights_page"]``), as the end of an error."""
    page = (getattr(card, "extra", None) or {}).get("weights_page")
    return f" (the authors publish {Path(card.filename or '').name} at {page}; download it there)" if page else ""


def check_card_digest(card: "Card", path: str | os.PathLike, got: str) -> None:
    """Refuses a card's file whose bytes (digest ``got``) are not the card's."""
    if card.sha256 and got != card.sha256:
        raise WeightsError(f"{path} has sha256 {got}, but the card of {card.name!r} says "
                           f"{card.sha256}; refusing to load it (delete or replace the file)")
    if _archive(card):   # no digest on the card: the one recorded at the first download
        from foundation.tofu import check_recorded

        check_recorded(card, path, got)


def _archive(card: "Card") -> bool:
    from foundation.tofu import is_archive_card

    return is_archive_card(card)


def install(card: "Card", source_dir: str | os.PathLike | None = None,
            accept_new: bool = False) -> tuple[Path, str]:
    """Puts a card's checkpoint into the user cache (for machines that will be offline later).

    From ``source_dir/<card.filename>`` when given (copied only if its sha256 matches the card), else
    downloaded from the card's address. Returns ``(path in the cache, "present" | "copied" | "downloaded")``.
    A card whose checkpoint is in a zip with no published digest goes through :mod:`foundation.tofu`
    (``accept_new``: download again and trust a zip other than the one recorded at the first download).
    """
    if not card.filename:
        raise WeightsError(f"model {card.name!r} has no published checkpoint; pass one with --checkpoint PATH")
    cached = cache_dir() / "weights" / card.filename
    if _archive(card):
        from foundation import tofu

        if cached.is_file() and tofu.recorded(card) and not accept_new:
            check_card_digest(card, cached, sha256_file(cached))
            return cached, "present"
        if source_dir is not None:
            return tofu.install_from(card, source_dir, accept_new)
        return tofu.download(card, accept_new)
    if cached.is_file() and (not card.sha256 or sha256_file(cached) == card.sha256):
        return cached, "present"
    if source_dir is None:
        if not card.url:
            raise WeightsError(f"model {card.name!r} has no download address; give --from DIR, a folder holding "
                               f"{card.filename}" + _page(card))
        try:
            return _download(card.url, cached, card.sha256), "downloaded"
        except OSError as e:
            raise WeightsError(f"could not download the {card.name!r} checkpoint from {card.url} ({e}); "
                               f"give --from DIR, a folder holding {card.filename}") from e
    src = Path(source_dir) / card.filename
    if not src.is_file():
        raise WeightsError(f"{src} does not exist; --from must be a folder holding {card.filename}" + _page(card))
    got = sha256_file(src)
    if card.sha256 and got != card.sha256:
        raise WeightsError(f"{src} has sha256 {got}, but the card of {card.name!r} says {card.sha256}; "
                           "not installed (is it the official file?)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, open(src, "rb") as r:
            while block := r.read(1 << 20):
                f.write(block)
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return cached, "copied"


def read_state_dict(path: str | os.PathLike) -> dict:
    """Read tensors only: safetensors, or torch.load with weights_only=True (never arbitrary pickles)."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, str]:
    """``(state_dict, sha256)`` of one read of the file: the digest is of the very bytes that were parsed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"cannot read checkpoint {path} ({e.strerror or e})") from e
    digest = hashlib.sha256(data).hexdigest()
    return _parse_state(path, data), digest


def _parse_state(path: Path, data: bytes) -> dict:
    import io

    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load

        try:
            return load(data)
        except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ...: re-raised naming the file
            raise WeightsError(f"cannot read checkpoint {path} as safetensors ({type(e).__name__}: {e}); "
                               "the file is damaged or not a .safetensors file") from e
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise WeightsError(f"cannot read checkpoint {path} as tensors only ({type(e).__name__}: {e}); "
                           "it may contain pickled objects, which are refused for safety. "
                           "Re-save it as a plain state_dict or .safetensors") from e
    # Common wrappers: {"state_dict": ...}, {"model": ...}
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightsError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    return obj


# --- folders of files (Hugging Face save_pretrained layout) ---------------------------------------
class FolderCard:
    """A checkpoint that is a folder of files (``config.json``, ``model.safetensors``, ...), as
    ``save_pretrained`` writes it: ``folder`` is its name under ``$BENCH_WEIGHTS_DIR`` and the cache,
    ``repo``/``revision`` where the files are downloaded from (``https://huggingface.co/<repo>/resolve/
    <revision>/<file>``), ``files`` the (name, sha256 or None) pairs it must hold."""

    def __init__(self, name: str, folder: str, repo: str, revision: str,
                 files: tuple[tuple[str, str | None], ...], licence: str = "", description: str = ""):
        self.name, self.folder, self.repo, self.revision = name, folder, repo, revision
        self.files, self.licence, self.description = tuple(files), licence, description

    def url(self, filename: str) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision}/{filename}"

    def required(self) -> list[str]:
        return [f for f, _ in self.files]

    def candidates(self) -> list[Path]:
        out = []
        if os.environ.get("BENCH_WEIGHTS_DIR"):
            out.append(Path(os.environ["BENCH_WEIGHTS_DIR"]) / self.folder)
        out.append(cache_dir() / "weights" / self.folder)
        return out

    def where(self) -> str:
        """One line saying where the folder may be put."""
        return (f"put the {self.name} weights ({', '.join(self.required())} from https://huggingface.co/"
                f"{self.repo}) in {' or '.join(str(c) for c in self.candidates())}, run `bench weights "
                f"{self.name}` on a machine with network (or `bench weights {self.name} --from DIR`), or "
                "give the family parameter checkpoint=FOLDER")


def _verify_folder(card: FolderCard, folder: Path) -> None:
    for fname, digest in card.files:
        if digest:
            got = sha256_file(folder / fname)
            if got != digest:
                raise WeightsError(f"{folder / fname} has sha256 {got}, but the {card.name} card says {digest}; "
                                   "refusing to load it (delete or replace the file)")


def _complete(card: FolderCard, folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in card.required())


def resolve_folder(card: FolderCard, explicit: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The local folder of a folder card: ``explicit`` (any save_pretrained folder, not verified against
    the card), else ``$BENCH_WEIGHTS_DIR/<folder>``, else the cache, else downloaded into the cache
    (sha256-checked where the card pins a digest) unless offline. Raises :class:`WeightsError` with one
    line saying where to put the files."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not (p / "config.json").is_file():
            raise WeightsError(f"checkpoint folder {p} holds no config.json; give a folder written by "
                               "save_pretrained (config.json + model.safetensors)")
        return p
    for p in card.candidates():
        if _complete(card, p):
            _verify_folder(card, p)
            return p
    if download and not offline():
        try:
            return _download_folder(card)
        except OSError as e:
            raise WeightsError(f"could not download the {card.name} weights from https://huggingface.co/"
                               f"{card.repo} ({e}); {card.where()}") from e
    raise WeightsError(f"no {card.name} weights: {card.where()}")


def _download_folder(card: FolderCard) -> Path:
    dest = cache_dir() / "weights" / card.folder
    for fname, digest in card.files:
        if not (dest / fname).is_file():
            _download(card.url(fname), dest / fname, digest)
            if not digest:
                log.warning("%s: %s has no pinned sha256 on its card; downloaded sha256 %s", card.name, fname,
                            sha256_file(dest / fname))
    return dest


def install_folder(card: FolderCard, source_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """``bench weights`` for a folder card: into the cache from ``source_dir`` (a folder holding
    ``<card.folder>/`` or the files themselves) or downloaded. Returns ``(folder, how)``."""
    import shutil

    cached = cache_dir() / "weights" / card.folder
    if _complete(card, cached):
        _verify_folder(card, cached)
        return cached, "present"
    if source_dir is None:
        if offline():
            raise WeightsError(f"downloads are off (BENCH_OFFLINE/HF_HUB_OFFLINE); {card.where()}")
        try:
            return _download_folder(card), "downloaded"
        except OSError as e:
            raise WeightsError(f"could not download the {card.name} weights ({e}); {card.where()}") from e
    src = Path(source_dir)
    if _complete(card, src / card.folder):
        src = src / card.folder
    if not _complete(card, src):
        raise WeightsError(f"{src} does not hold {', '.join(card.required())}; --from must be a folder holding "
                           f"{card.folder}/ or those files")
    _verify_folder(card, src)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, suffix=".part"))
    try:
        for fname in card.required():
            shutil.copyfile(src / fname, tmp / fname)
        if cached.exists():        # an incomplete folder from an interrupted copy
            shutil.rmtree(cached)
        os.replace(tmp, cached)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return cached, "copied"


# --- what `bench models` says about a card's weights ------------------------------------------------
def availability(card: "Card") -> tuple[str, str | None]:
    """Where a card's trained weights are on this machine, cheaply (no hashing, no network):
    ``("BENCH_WEIGHTS_DIR" | "cached" | "downloadable" | "bring your own", digest recorded at first download)``."""
    recorded_digest = None
    if card.filename and _archive(card):
        from foundation.tofu import recorded

        try:
            rec = recorded(card)
        except WeightsError as e:
            log.warning("%s", e)
            rec = None
        recorded_digest = rec["sha256"] if rec else None
    if card.filename:
        if os.environ.get("BENCH_WEIGHTS_DIR") and (Path(os.environ["BENCH_WEIGHTS_DIR"]) / card.filename).is_file():
            return "BENCH_WEIGHTS_DIR", recorded_digest
        if (cache_dir() / "weights" / card.filename).is_file():
            return "cached", recorded_digest
        if card.url:
            return "downloadable", recorded_digest
    return "bring your own", recorded_digest
