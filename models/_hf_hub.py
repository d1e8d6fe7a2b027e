"""Where an ``hf:`` model's files come from: a local folder, the user cache, or the Hugging Face hub.

Spelling: ``hf:FOLDER`` (a ``save_pretrained`` folder on disk) or ``hf:ORG/NAME[@REVISION]`` (a hub
id, pinned to a revision: a commit sha, a tag or a branch). A hub model lives in the user cache,
``<cache_dir()>/hf/ORG--NAME/<commit sha>/``, beside ``bench-hf.json`` (repo id, the requested
reference, the resolved commit, when it was fetched, and the sha256 of every weight file). A hub
id not in the cache is fetched (on a machine with network) at the revision's commit, so the files
never change under a name; offline, or with ``HF_HUB_OFFLINE=1``, it is an error that says how to
get the files. Nothing downloads in tests.

Only weights are fetched: ``*.safetensors`` when the repository has them, else ``pytorch_model*.bin``
(read by transformers with ``weights_only=True``); configs (``*.json``) always. Pickled training
state (``training_args.bin``) is never fetched or read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.weights import WeightsError, cache_dir, sha256_file

log = logging.getLogger(__name__)

PREFIX = "hf:"
META = "bench-hf.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
NOT_WEIGHTS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


@dataclass(frozen=True)
class HFSpec:
    target: str              # a folder path or a hub id
    revision: str | None     # only for hub ids

    @property
    def is_folder(self) -> bool:
        return Path(self.target).expanduser().is_dir()


def parse_spec(name: str) -> HFSpec:
    """``hf:FOLDER``, ``hf:ORG/NAME`` or ``hf:ORG/NAME@REVISION``."""
    if not name.startswith(PREFIX) or not name[len(PREFIX):].strip():
        raise ValueError(f"model spec {name!r}: expected hf:FOLDER or hf:ORG/NAME[@REVISION]")
    body = name[len(PREFIX):].strip()
    if Path(body).expanduser().is_dir():
        return HFSpec(body, None)
    target, at, rev = body.rpartition("@")
    if at and target and rev:
        if Path(target).expanduser().is_dir():
            raise ValueError(f"model spec {name!r}: @{rev} pins a hub revision, but {target} is a local folder "
                             "(a folder is used as it is; drop the @REVISION)")
        return HFSpec(target, rev)
    return HFSpec(body, None)


def _looks_like_path(target: str) -> bool:
    return target.startswith((".", "/", "~")) or not _HUB_ID.match(target)


def repo_dir(repo_id: str) -> Path:
    return cache_dir() / "hf" / repo_id.replace("/", "--")


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder (what is loaded; not training state)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
                  and p.name not in NOT_WEIGHTS)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every weight file, by file name."""
    return {p.name: sha256_file(p) for p in weight_files(folder)}


def combined_digest(files: dict[str, str]) -> str | None:
    """One digest for a set of files: the file's own sha256 when there is one file, else the sha256 of
    the sorted ``name  sha256`` lines (as ``sha256sum`` prints them)."""
    if not files:
        return None
    if len(files) == 1:
        return next(iter(files.values()))
    lines = "".join(f"{v}  {k}\n" for k, v in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return {}


def _cached(repo_id: str, revision: str | None) -> Path | None:
    """A cached snapshot: the revision's folder (by commit or by the reference it was fetched as), or
    without a revision the most recently fetched one."""
    base = repo_dir(repo_id)
    if not base.is_dir():
        return None
    snaps = [(d, read_meta(d)) for d in base.iterdir() if d.is_dir() and (d / META).is_file()]
    if revision is not None:
        for d, meta in snaps:
            if revision in (d.name, meta.get("revision"), meta.get("ref")) or \
                    (len(revision) >= 7 and str(meta.get("revision", "")).startswith(revision)):
                return d
        return None
    if not snaps:
        return None
    return max(snaps, key=lambda dm: str(dm[1].get("fetched", "")))[0]


def resolve(spec: HFSpec, download: bool = True) -> tuple[Path, dict[str, Any]]:
    """(local folder, source info: ``source`` folder|cache|hub, ``repo_id``, ``revision``)."""
    if spec.is_folder:
        folder = Path(spec.target).expanduser()
        meta = read_meta(folder)
        return folder, {"source": "folder", "folder": str(folder.resolve()), "repo_id": meta.get("repo_id"),
                        "revision": meta.get("revision")}
    if _looks_like_path(spec.target):
        raise WeightsError(f"hf:{spec.target}: no such folder (a local model is a folder written by "
                           "save_pretrained, holding config.json and the weights)")
    hit = _cached(spec.target, spec.revision)
    if hit is not None:
        meta = read_meta(hit)
        return hit, {"source": "cache", "folder": str(hit), "repo_id": spec.target,
                     "revision": meta.get("revision", hit.name), "ref": meta.get("ref")}
    if not download or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise WeightsError(f"hf:{spec.target}{'@' + spec.revision if spec.revision else ''} is not in the cache "
                           f"({repo_dir(spec.target)}), there is no folder of that name, and downloading is off; run once on a machine with network, "
                           "or save the model with save_pretrained and give hf:FOLDER")
    folder = fetch(spec.target, spec.revision)
    meta = read_meta(folder)
    return folder, {"source": "hub", "folder": str(folder), "repo_id": spec.target,
                    "revision": meta.get("revision"), "ref": meta.get("ref")}


def fetch(repo_id: str, revision: str | None = None) -> Path:
    """Downloads a hub model at one commit into the user cache and writes ``bench-hf.json``.
    Needs network and ``huggingface_hub`` (installed with transformers)."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as e:  # pragma: no cover - transformers depends on it
        raise ImportError("hf: hub models need huggingface_hub: pip install huggingface_hub") from e
    ref = revision or "main"
    try:
        info = HfApi().model_info(repo_id, revision=ref, files_metadata=False)
    except Exception as e:  # noqa: BLE001 - network, unknown repo, gated model: one clear message
        raise WeightsError(f"cannot look up {repo_id}@{ref} on the Hugging Face hub ({type(e).__name__}: {e}); "
                           "offline? save the model with save_pretrained and give hf:FOLDER") from e
    sha = info.sha
    names = [s.rfilename for s in (info.siblings or [])]
    if any(n.endswith(".safetensors") for n in names):
        weights = ["*.safetensors"]
    else:
        weights = ["pytorch_model*.bin", "*.ckpt", "*.pt", "*.pth"]
    dest = repo_dir(repo_id) / sha
    log.info("fetching %s@%s (commit %s) into %s", repo_id, ref, sha, dest)
    snapshot_download(repo_id, revision=sha, local_dir=str(dest), allow_patterns=["*.json", *weights],
                      ignore_patterns=list(NOT_WEIGHTS))
    meta = {"repo_id": repo_id, "ref": ref, "revision": sha, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": digests(dest)}
    (dest / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return dest


def cached_snapshots() -> list[tuple[Path, dict[str, Any]]]:
    """Every hub model snapshot in the user cache, with its ``bench-hf.json``."""
    root = cache_dir() / "hf"
    if not root.is_dir():
        return []
    out = []
    for repo in sorted(root.iterdir()):
        if repo.is_dir():
            out.extend((d, read_meta(d)) for d in sorted(repo.iterdir()) if d.is_dir() and (d / META).is_file())
    return out
