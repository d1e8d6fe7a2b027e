"""What a run's results depend on, made into its identity before any work.

A run folder is bound to the *content* of what scores: each model's checkpoint digest (sha256), and
for a user's own class (``package.module:Class``) the module's file path and digest too. Giving the
same command after a checkpoint file was overwritten with other weights is then refused, never
resumed into (see :func:`bench.runner._check_identity`).
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

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


def model_identity(name: str, checkpoint: str | None) -> dict[str, Any]:
    """``{"model", "checkpoint", "checkpoint_sha256"[, "class", "class_file", "class_sha256"]}``."""
    from foundation.weights import resolve

    out: dict[str, Any] = {"model": name}
    if name.startswith(("http://", "https://")):
        return out   # a remote detector: its weights are the server's (its /health may say more)
    if name.startswith("hf:"):
        ref = name[3:].split("@", 1)[0]
        p = Path(ref)
        if p.exists():
            out.update(checkpoint=str(p), checkpoint_sha256=_digest_path(p))
        else:
            out["revision"] = name   # a hub id: the revision in the spec pins it
        return out
    if ":" in name:
        from models import _user_class

        cls = _user_class(name)
        mod = sys.modules.get(cls.__module__)
        try:
            src = Path(inspect.getsourcefile(cls) or getattr(mod, "__file__", "") or "")
        except TypeError:
            src = Path("")
        out.update({"class": f"{cls.__module__}:{cls.__qualname__}",
                    "class_file": str(src.resolve()) if src.is_file() else None,
                    "class_sha256": _digest_path(src) if src.is_file() else None})
        if checkpoint is None:
            raise ValueError(f"model {name} needs --checkpoint PATH")
        p = Path(checkpoint)
        if not p.is_file():
            raise ValueError(f"checkpoint {p} does not exist")
        out.update(checkpoint=str(p.resolve()), checkpoint_sha256=_digest_path(p))
        return out
    from models import CARDS

    card = CARDS.get(name)
    path = resolve(card, checkpoint)   # verifies a card's own file against its sha256
    explicit = checkpoint is not None
    out.update(checkpoint=str(Path(path).resolve()),
               checkpoint_sha256=card.sha256 if (card.sha256 and not explicit) else _digest_path(Path(path)))
    return out


def models_identity(models: tuple[str, ...] | list[str], checkpoint: str | None) -> list[dict[str, Any]]:
    return [model_identity(m, checkpoint) for m in models]
