"""A ``bench train`` folder as a model spec: ``--model DIR`` loads the trained detector with its architecture and
configuration (read from ``DIR/train.json``) and its dev-selected weights (``DIR/best.safetensors``; another file
of the folder with ``--checkpoint``). Only JSON and safetensors are read: nothing is unpickled or imported."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

TRAIN_JSON = "train.json"
BEST = "best.safetensors"


def is_training_folder(spec: Any) -> bool:
    try:
        p = Path(str(spec)).expanduser()
        return p.is_dir() and (p / TRAIN_JSON).is_file()
    except (OSError, ValueError):
        return False


def read_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder).expanduser() / TRAIN_JSON
    try:
        rec = json.loads(path.read_text())
        model = rec["model"]
        _ = model["architecture"], model["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a bench train record ({type(e).__name__}: {e}); "
                         "give a folder written by `bench train`") from e
    return rec


def architecture_class(folder: str | Path) -> type:
    from models.base import ARCHITECTURES

    arch = read_record(folder)["model"]["architecture"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"{folder}: its architecture {arch!r} is not one bench knows here "
                         "(a plug-in or user class? load it with --model package.module:Class --checkpoint "
                         f"{Path(folder) / BEST})")
    return ARCHITECTURES.get(arch)


def card_for(folder: str | Path):
    """A :class:`models.base.Card` describing the trained detector (its input policy is the base card's)."""
    from models.base import CARDS, Card

    rec = read_record(folder)
    model: Mapping[str, Any] = rec["model"]
    base = CARDS.get(model["spec"]) if model.get("spec") in CARDS else None
    best = rec.get("best") or {}
    return Card(name=str(folder), architecture=model["architecture"], config=dict(model["config"]),
                filename=None, sha256=best.get("sha256"), licence=base.licence if base else "unknown",
                training_data=f"bench train of {model.get('spec')} on {rec.get('config', {}).get('data')}",
                published_eer=(f"{100 * best['dev_eer']:.2f}% dev EER (epoch {best.get('epoch')})"
                               if isinstance(best.get("dev_eer"), (int, float)) else ""),
                input_policy=base.input_policy if base else ("whole" if model["architecture"] == "hf" else "official"),
                description=f"trained by bench train in {folder}")


def weights_path(folder: str | Path, checkpoint: str | Path | None = None) -> Path:
    path = Path(checkpoint) if checkpoint else Path(folder).expanduser() / BEST
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the training in {folder} has not finished an epoch yet")
    return path


def architecture(folder: str | Path) -> str:
    return str(read_record(folder)["model"]["architecture"])


def load_hf(folder: str | Path, checkpoint: str | Path | None, device: str, label_map: Any, config: Any):
    """A training folder of an ``hf:`` model: the base checkpoint's classes and feature extractor (its spec in
    train.json), the trained weights from the folder (strictly)."""
    from foundation.weights import read_state_dict, sha256_file
    from models import LoadedDetector
    from models.hf import load as load_base

    base = read_record(folder)["model"]["spec"]
    det, _card, _path, _digest = load_base(base, device=device, label_map=label_map, config=config)
    path = weights_path(folder, checkpoint)
    det.load_state_dict(read_state_dict(path), strict=True)
    det.eval().to(device)
    return LoadedDetector(name=str(folder), detector=det, card=card_for(folder), checkpoint=str(path),
                          sha256=sha256_file(path))
