"""What a run's results depend on, made into its identity before any work.

A run folder is bound to the *content* of what scores: each model's checkpoint digest (sha256), and
for a user's own class (``package.module:Class``) the module's file path and digest too; for a served
detector (``http://HOST:PORT``) what its ``/health`` says it serves (model, checkpoint sha256, the digest
of its whole configuration, rate, input length; :func:`models.remote.served_identity`), asked when the run
starts or resumes. Giving the same command after a checkpoint file was overwritten with other weights, or
after other weights were served at the same URL, is then refused naming both digests, never resumed into
(see :func:`check_identity`). :func:`check_loaded` then checks that the weights actually loaded are the
ones the run was bound to (a file swapped between the two is refused).
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
    """models.trained.is_training_folder's test, here because importing ``models`` imports torch and every
    architecture, which the identity of a finished run given again must not pay for."""
    try:
        return Path(name).expanduser().is_dir() and (Path(name).expanduser() / "train.json").is_file()
    except (OSError, ValueError):
        return False


def served(spec: str, wait_s: float | None = 0.0) -> dict[str, Any]:
    """What the service at ``spec`` says it serves (``GET /health``); ``wait_s``: how long to wait for it to answer
    (0: not at all; None: without limit)."""
    from models.remote import probe, served_identity, wait_until_up

    health = probe(spec) if wait_s == 0 else wait_until_up(spec, wait_s)
    ident = served_identity(health)
    if not (ident.get("checkpoint_sha256") or ident.get("config_sha256")):
        log.warning("the service at %s reports no digest of its weights or configuration: a run against it is "
                    "bound to its model name only (%s)", spec, ident.get("model", "none reported"))
    return ident


def model_identity(name: str, checkpoint: str | None, wait_s: float | None = 0.0) -> dict[str, Any]:
    """``{"model", "checkpoint", "checkpoint_sha256"[, "class_file", "class_sha256"]}``, computed without
    importing torch or the user's module (a finished run given again stays cheap).

    A card's own file (no ``--checkpoint``) is pinned by the card's sha256, which loading verifies, so its
    name suffices; an explicit checkpoint is digested; a user class adds its module file and digest. A served
    detector (``http://``) is ``{"model", "served"}``, asked of the service (its client imports torch; waiting
    ``wait_s`` seconds for it to answer, see :func:`served`)."""
    out: dict[str, Any] = {"model": name}
    if name.startswith(("http://", "https://")):   # a remote detector: what the server says it serves
        return {**out, "served": served(name, wait_s)}
    if name.lower().startswith("fuse:"):   # a fusion: its file and its members, each by content
        return fusion_identity(name, checkpoint, wait_s)
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


def fusion_identity(name: str, checkpoint: str | None, wait_s: float | None = 0.0) -> dict[str, Any]:
    """A ``fuse:M1+M2@FILE`` model: the fusion file's digest and each member's identity (without file paths)."""
    from models.fusion import parse_spec

    if checkpoint is not None:
        raise ValueError(f"model {name} is a fusion: its members load their own checkpoints (drop --checkpoint)")
    members, path = parse_spec(name)
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"fusion file {p} does not exist (write it with `bench calibrate --fuse RUN --out {p.name}`)")
    return {"model": name, "fusion_file": str(p.resolve()), "fusion_sha256": _digest_path(p),
            "members": [{k: v for k, v in model_identity(m, None, wait_s).items() if k not in _PATHS}
                        for m in members]}


def models_identity(models: tuple[str, ...] | list[str], checkpoint: str | None,
                    wait_s: float | None = 0.0) -> list[dict[str, Any]]:
    return [model_identity(m, checkpoint, wait_s) for m in models]


def check_loaded(ident: Mapping[str, Any], loaded) -> None:
    """The detectors loaded are those the run is bound to: a checkpoint's loaded bytes have the digest taken
    when the run started, a service still serves what it said then. Raises ValueError naming both digests."""
    from models.remote import describe_served, served_identity

    for want, ld in zip(ident.get("models") or [], loaded):
        if not isinstance(want, dict):
            continue
        if "served" in want:
            now = served_identity((ld.card.extra or {}).get("health") or {})
            if now != want["served"]:
                raise ValueError(f"{ld.name} served {describe_served(want['served'])} when this run started, but "
                                 f"now serves {describe_served(now)}; give the command again")
        elif want.get("checkpoint_sha256") and not str(want.get("model", "")).startswith("hf:") \
                and ld.sha256 and ld.sha256 != want["checkpoint_sha256"]:
            raise ValueError(f"model {ld.name}: the run is bound to {want.get('checkpoint')} with sha256 "
                             f"{want['checkpoint_sha256'][:16]}..., but the weights loaded from it have sha256 "
                             f"{ld.sha256[:16]}...: the file was replaced after the run started. Give the command "
                             "again (a checkpoint with other content is another run)")


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
            _check_served(out, a, b)
            for key, what in (("checkpoint_sha256", "checkpoint"), ("class_sha256", "class_file"),
                              ("fusion_sha256", "fusion_file")):
                if a.get(key) != b.get(key):
                    now = (f"that file's content changed (sha256 now {str(b.get(key))[:16]}...)"
                           if str(a.get(what)) == str(b.get(what)) else
                           f"this command names {what} {b.get(what)}, another file (sha256 {str(b.get(key))[:16]}...)")
                    raise ValueError(
                        f"{out} holds scores of {a.get('model')} with {what} {a.get(what)} (sha256 "
                        f"{str(a.get(key))[:16]}...), but {now}: "
                        "the weights or code changed, and mixing scores of two models would give a wrong "
                        "verdict. Choose another --out folder (without --out a new folder is derived)")
        a, b = by_content(old), json.loads(json.dumps(by_content(ident), default=str))
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{out} holds a run with a different configuration (differs in: {', '.join(diff)}); "
                         "choose another --out folder to start a new run")
    log.info("resuming the run in %s", out)


def _check_served(out: Path, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """A served detector's part of the identity: the stored one ``a`` against the service now, ``b``."""
    from models.remote import describe_served

    if "served" not in b or a.get("served") == b.get("served"):
        return
    if "served" not in a:
        raise ValueError(f"{out} was started by an earlier version of bench, which did not bind a run to what "
                         f"{b.get('model')} serves: its scores cannot be verified against the service now. Choose "
                         "another --out folder (or move this one away)")
    raise ValueError(f"{out} holds scores of {a.get('model')} serving {describe_served(a['served'])}, but it now "
                     f"serves {describe_served(b['served'])}: mixing scores of two models would give a wrong verdict. "
                     "Serve the original model there again to resume, or choose another --out folder (without "
                     "--out a new folder is derived)")


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
