"""What a run's results depend on, made into its identity before any work.

A run folder is bound to the *content* of what scores: each model's checkpoint digest (sha256), and
for a user's own class (``package.module:Class``) the module's file path and digest too. Giving the
same command after a checkpoint file was overwritten with other weights is then refused, never
resumed into (see :func:`bench.run.runner._check_identity`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)


def _digest_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in name order)."""
    from foundation.weights import sha256_file

    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\n{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _module_file(module: str) -> Path | None:
    """The file a module would be imported from, found without running it (parent packages may be)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None


def _is_training_folder(name: str) -> bool:
    try:
        return Path(name).expanduser().is_dir() and (Path(name).expanduser() / "train.json").is_file()
    except (OSError, ValueError):
        return False


def model_identity(name: str, checkpoint: str | None) -> dict[str, Any]:
    """``{"model", "checkpoint", "checkpoint_sha256"[, "class_file", "class_sha256"]}``, computed without
    importing torch or the user's module (a finished run given again stays cheap).

    A card's own file (no ``--checkpoint``) is pinned by the card's sha256, which loading verifies, so its
    name suffices; an explicit checkpoint is digested; a user class adds its module file and digest."""
    out: dict[str, Any] = {"model": name}
    if name.startswith(("http://", "https://")):
        return out   # a remote detector: its weights are the server's
    if name.lower().startswith("fuse:"):   # a fusion: its file and its members, each by content
        return fusion_identity(name, checkpoint)
    if _is_training_folder(name):   # a bench train folder: its weights and its record, by content
        folder = Path(name).expanduser()
        weights = Path(checkpoint) if checkpoint is not None else folder / "best.safetensors"
        if not weights.is_file():
            raise ValueError(f"{weights} does not exist: the training in {folder} has not finished an epoch yet")
        out.update(checkpoint=str(weights.resolve()), checkpoint_sha256=_digest_path(weights),
                   training_folder=str(folder.resolve()), training_sha256=_digest_path(folder / "train.json"))
        return out
    if name.startswith("hf:"):
        ref = name[3:].split("@", 1)[0]
        p = Path(ref)
        if p.exists():
            out.update(checkpoint=str(p.resolve()), checkpoint_sha256=_digest_path(p))
        return out   # a hub id: the revision in the spec pins it
    if ":" in name:
        module = name.split(":", 1)[0]
        src = _module_file(module)
        if src is None:
            raise ValueError(f"cannot find the module of model spec {name!r}; expected 'package.module:Class' "
                             "importable from the current environment (is its folder on PYTHONPATH?)")
        out.update(class_file=str(src.resolve()), class_sha256=_digest_path(src))
    if checkpoint is not None:
        p = Path(checkpoint)
        if not p.is_file():
            raise ValueError(f"checkpoint {p} does not exist")
        out.update(checkpoint=str(p.resolve()), checkpoint_sha256=_digest_path(p))
    return out


def fusion_identity(name: str, checkpoint: str | None) -> dict[str, Any]:
    """A ``fuse:M1+M2@FILE`` model: the fusion file's digest and each member's identity (without file paths)."""
    from models.fusion import parse_spec

    if checkpoint is not None:
        raise ValueError(f"model {name} is a fusion: its members load their own checkpoints (drop --checkpoint)")
    members, path = parse_spec(name)
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"fusion file {p} does not exist (write it with `bench calibrate --fuse RUN --out {p.name}`)")
    return {"model": name, "fusion_file": str(p.resolve()), "fusion_sha256": _digest_path(p),
            "members": [{k: v for k, v in model_identity(m, None).items() if k not in _PATHS} for m in members]}


def models_identity(models: tuple[str, ...] | list[str], checkpoint: str | None) -> list[dict[str, Any]]:
    return [model_identity(m, checkpoint) for m in models]


#: where a model's files were: recorded for messages, not compared
_PATHS = ("checkpoint", "class_file", "training_folder", "fusion_file")


def by_content(ident: Mapping[str, Any]) -> dict[str, Any]:
    """The identity without file locations: a moved checkpoint with the same bytes is the same run."""
    models = [{k: v for k, v in m.items() if k not in _PATHS} if isinstance(m, dict) else m
              for m in ident.get("models") or []]
    return {**ident, "models": models}


def check_identity(store, out: Path, ident: Mapping[str, Any]) -> None:
    """Binds a new store to ``ident``; refuses (ValueError naming what changed) a store bound to other content:
    a checkpoint or class file whose digest changed, another configuration, or an older path-bound identity."""
    have = store.get_meta("identity")
    want = json.dumps(ident, sort_keys=True, default=str)
    if have is None:
        store.set_meta("identity", want)
        return
    old = json.loads(have)
    if "checkpoint" in old and all(isinstance(m, str) for m in old.get("models") or []) \
            and _upgrade_card_identity(store, old, ident):
        log.info("resuming the run in %s (its identity, from an earlier version, now names the models by content)",
                 out)
        return
    if "checkpoint" in old and all(isinstance(m, str) for m in old.get("models") or []):
        raise ValueError(f"{out} was started by an earlier version of bench, which bound runs to checkpoint paths "
                         f"({old.get('checkpoint') or 'card files'}), not contents: its scores cannot be verified "
                         "against the weights now. Choose another --out folder (or move this one away)")
    if by_content(old) != json.loads(json.dumps(by_content(ident), default=str)):
        for a, b in zip(old.get("models") or [], ident.get("models") or []):
            if not (isinstance(a, dict) and isinstance(b, dict)):
                continue
            for key, what in (("checkpoint_sha256", "checkpoint"), ("class_sha256", "class_file"),
                              ("fusion_sha256", "fusion_file")):
                if a.get(key) != b.get(key):
                    raise ValueError(
                        f"{out} holds scores of {a.get('model')} with {what} {a.get(what)} (sha256 "
                        f"{str(a.get(key))[:16]}...), but {b.get(what)} now has sha256 {str(b.get(key))[:16]}...: "
                        "the weights or code changed, and mixing scores of two models would give a wrong "
                        "verdict. Choose another --out folder (without --out a new folder is derived)")
        a, b = by_content(old), json.loads(json.dumps(by_content(ident), default=str))
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{out} holds a run with a different configuration (differs in: {', '.join(diff)}); "
                         "choose another --out folder to start a new run")
    log.info("resuming the run in %s", out)


def _upgrade_card_identity(store, old: Mapping[str, Any], ident: Mapping[str, Any]) -> bool:
    """An identity written before runs were bound to contents, for built-in models on their own card files
    (no ``--checkpoint``, no user class): those files are pinned by the cards' sha256, which loading verifies,
    so the scores already in the store came from the same weights. If the rest of the configuration matches,
    the store is re-bound to the new identity and the run resumes; otherwise (False) it is refused."""
    if old.get("checkpoint") is not None or any(":" in str(m) for m in old.get("models") or []):
        return False
    upgraded = {k: v for k, v in old.items() if k != "checkpoint"}
    upgraded["models"] = [model_identity(str(m), None) for m in old.get("models") or []]
    want = json.loads(json.dumps(by_content(ident), default=str))
    if by_content(upgraded) != want:
        return False
    store.set_meta("identity", json.dumps(ident, sort_keys=True, default=str))
    return True
