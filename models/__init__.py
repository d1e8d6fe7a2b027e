"""Detectors: the architectures, their checkpoint cards, and the loader.

``load_detector("aasist")`` resolves the card's checkpoint (see :mod:`foundation.weights`), builds the
architecture from the card's config and loads the weights strictly. A user's own model is
``load_detector("package.module:Class", checkpoint="path.pth")``; the class must subclass
:class:`models.base.Detector` (or at least map ``[B, T]`` waveforms to ``[B]`` scores) and
provide ``from_config``. ``load_detector("hf:ORG/NAME@REV")`` or ``load_detector("hf:FOLDER")`` loads a
Hugging Face audio classifier (see :mod:`models.hf`); ``label_map`` names its classes when its labels
do not.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from foundation.registry import import_submodules
from models.base import ARCHITECTURES, CARDS, Card, CheckpointMismatch, Detector, register_card

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES", "CARDS", "Card", "CheckpointMismatch", "Detector", "register_card",
           "load_detector", "LoadedDetector", "list_cards", "declared_sample_rate"]

import_submodules(__name__)

HF_PREFIX = "hf:"


@dataclass
class LoadedDetector:
    """A detector ready to score, with what provenance needs."""

    name: str
    detector: Detector
    card: Card
    checkpoint: str | None
    sha256: str | None


def list_cards() -> list[Card]:
    return [c for _, c in CARDS.items()]


def _user_class(spec: str) -> type:
    module, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import model spec {spec!r} ({e}); expected 'package.module:Class' "
                         "importable from the current environment") from e
    if not hasattr(cls, "from_config"):
        raise ValueError(f"{spec} has no from_config(config) classmethod; subclass models.base.Detector")
    return cls


def declared_sample_rate(name: str) -> int:
    """The sample rate a model's class declares (``Detector.sample_rate``), known without loading weights:
    the runner starts preparing audio at this rate while the detectors load. For ``hf:`` models, the rate
    of the checkpoint's feature extractor."""
    if name.startswith(HF_PREFIX):
        from models.hf import declared_sample_rate as hf_rate

        return hf_rate(name)
    cls = _user_class(name) if ":" in name else ARCHITECTURES.get(CARDS.get(name).architecture)
    return int(getattr(cls, "sample_rate", 16000))


def load_detector(name: str, checkpoint: str | Path | None = None, device: str = "cpu",
                  config: Mapping[str, Any] | None = None, label_map: Any = None) -> LoadedDetector:
    """Build a detector by card name (``aasist``), class spec (``pkg.mod:Class``) or Hugging Face spec
    (``hf:ID_OR_FOLDER[@REVISION]``) and load its weights. ``label_map`` (``"bonafide=L,spoof=L"`` or a
    mapping) names an ``hf:`` model's classes; detectors with fixed classes ignore it."""
    from foundation.weights import read_state_dict, resolve, sha256_file

    if name.startswith(HF_PREFIX):
        from models.hf import load as load_hf

        if checkpoint is not None:
            raise ValueError(f"{name}: an hf: model's weights are its folder or hub snapshot; --checkpoint does "
                             "not apply (give hf:FOLDER instead)")
        det, card, folder, digest = load_hf(name, device=device, label_map=label_map, config=config)
        return LoadedDetector(name=name, detector=det, card=card, checkpoint=folder, sha256=digest)
    if ":" in name:
        cls = _user_class(name)
        card = Card(name=name, architecture=name, config=dict(config or {}), description="user model")
        if checkpoint is None:
            raise ValueError(f"model {name} needs --checkpoint PATH")
    else:
        card = CARDS.get(name)
        cls = ARCHITECTURES.get(card.architecture)
        if config:
            card = Card(**{**card.to_dict(), "config": {**card.config, **config}})
    path = resolve(card, checkpoint)
    det = cls.from_config(card.config)
    state = read_state_dict(path)
    det.load_checkpoint_state(state)
    det.eval().to(device)
    return LoadedDetector(name=name, detector=det, card=card, checkpoint=str(path), sha256=sha256_file(path))
