"""Detectors: the architectures, their checkpoint cards, and the loader.

``load_detector("aasist")`` resolves the card's checkpoint (see :mod:`foundation.weights`), builds the
architecture from the card's config and loads the weights strictly. A user's own model is
``load_detector("package.module:Class", checkpoint="path.pth")``; the class must subclass
:class:`models.base.Detector` (or at least map ``[B, T]`` waveforms to ``[B]`` scores) and
provide ``from_config``. ``load_detector("hf:ORG/NAME@REV")`` or ``load_detector("hf:FOLDER")`` loads a
Hugging Face audio classifier (see :mod:`models.hf`); ``label_map`` names its classes when its labels
do not. A remote service is ``load_detector("http://HOST:PORT")`` (models/remote.py, registered by prefix).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from foundation.registry import PLUGIN_GROUPS, PluginError, import_submodules
from models.base import (ARCHITECTURES, CARDS, Card, CheckpointMismatch, Detector, DetectorUnavailable, register_card,
                         spec_prefix)

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES", "CARDS", "Card", "CheckpointMismatch", "Detector", "DetectorUnavailable", "register_card",
           "load_detector", "LoadedDetector", "list_cards", "declared_sample_rate"]

import_submodules(__name__)

HF_PREFIX = "hf:"


def _register_plugin(name: str, cls: object) -> None:
    """A detector plug-in: its class under the entry point's name, with the class's ``CARD`` (a
    :class:`Card`) when it declares one, else a card without a published checkpoint (``--checkpoint``)."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise PluginError(f"{cls!r} is not a subclass of models.base.Detector")
    if name in ARCHITECTURES:
        raise PluginError(f"an architecture named {name!r} exists already")
    card = getattr(cls, "CARD", None) or Card(name=name, architecture=name, config={},
                                              description=f"plug-in {cls.__module__}.{cls.__qualname__}")
    if card.name != name or card.architecture != name:
        raise PluginError(f"its CARD names model {card.name!r} / architecture {card.architecture!r}; "
                          f"both must be the entry point's name {name!r}")
    ARCHITECTURES.add(name, cls)
    register_card(card)


# models are looked up by card name first (load_detector, bench models), so the cards trigger the loading
CARDS.plugins(PLUGIN_GROUPS["detectors"], _register_plugin)


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
    if (prefixed := spec_prefix(name)) is not None:   # a class may know its rate from the spec (fuse:)
        rate_of = getattr(prefixed[1], "declared_sample_rate", None)
        return int(rate_of(name)) if callable(rate_of) else int(getattr(prefixed[1], "sample_rate", 16000))
    from models.trained import architecture_class, is_training_folder

    if is_training_folder(name):
        from models.trained import read_record

        base = read_record(name)["model"]
        if base["architecture"] == "hf":
            from models.hf import declared_sample_rate as hf_rate

            return hf_rate(base["spec"])
        return int(getattr(architecture_class(name), "sample_rate", 16000))
    if name.startswith(HF_PREFIX):
        from models.hf import declared_sample_rate as hf_rate

        return hf_rate(name)
    cls = _user_class(name) if ":" in name else ARCHITECTURES.get(CARDS.get(name).architecture)
    return int(getattr(cls, "sample_rate", 16000))


def load_detector(name: str, checkpoint: str | Path | None = None, device: str = "cpu",
                  config: Mapping[str, Any] | None = None, fast_inference: bool = True,
                  label_map: Any = None) -> LoadedDetector:
    """Build a detector by card name (``aasist``), class spec (``pkg.mod:Class``) or Hugging Face spec
    (``hf:ID_OR_FOLDER[@REVISION]``) and load its weights; a spec with a registered prefix
    (``http://HOST:PORT``: models/remote.py; ``fuse:M1+M2@FILE``: models/fusion.py) goes to that prefix's loader.

    ``fast_inference=False`` makes ``score`` use the reference ``forward`` path of detectors that have a
    separate CPU inference path (the application reads ``BENCH_FAST_INFERENCE``; models read no environment).
    ``label_map`` (``"bonafide=L,spoof=L"`` or a mapping) names an ``hf:`` model's classes; detectors with
    fixed classes ignore it."""
    from foundation.weights import check_card_digest, read_checkpoint, resolve

    if (prefixed := spec_prefix(name)) is not None:
        return prefixed[0](name, checkpoint=checkpoint, device=device, config=config, fast_inference=fast_inference,
                           label_map=label_map)
    if name.startswith(HF_PREFIX):
        from models.hf import load as load_hf

        if checkpoint is not None:
            raise ValueError(f"{name}: an hf: model's weights are its folder or hub snapshot; --checkpoint does "
                             "not apply (give hf:FOLDER instead)")
        det, card, folder, digest = load_hf(name, device=device, label_map=label_map, config=config)
        return LoadedDetector(name=name, detector=det, card=card, checkpoint=folder, sha256=digest)
    from models.trained import architecture_class, card_for, is_training_folder, weights_path
    from models.trained import architecture as _trained_arch
    from models.trained import load_hf as load_trained_hf

    if is_training_folder(name) and _trained_arch(name) == "hf":
        return load_trained_hf(name, checkpoint, device, label_map, config)
    if is_training_folder(name):   # a bench train folder: its architecture, configuration and best weights
        cls, card = architecture_class(name), card_for(name)
        checkpoint = weights_path(name, checkpoint)
    elif ":" in name:
        cls = _user_class(name)
        card = Card(name=name, architecture=name, config=dict(config or {}), description="user model")
        if checkpoint is None:
            raise ValueError(f"model {name} needs --checkpoint PATH")
    else:
        card = CARDS.get(name)
        cls = ARCHITECTURES.get(card.architecture)
        if config:
            card = Card(**{**card.to_dict(), "config": {**card.config, **config}})
    path = resolve(card, checkpoint, verify=False)
    state, digest = read_checkpoint(path)   # one read: the digest is of the weights loaded (issue 26, item 4)
    if checkpoint is None:
        check_card_digest(card, path, digest)
    det = cls.from_config(card.config)
    det.load_checkpoint_state(state)
    det.eval().to(device)
    if hasattr(det, "fast_inference"):
        det.fast_inference = bool(fast_inference)
    return LoadedDetector(name=name, detector=det, card=card, checkpoint=str(path), sha256=digest)
