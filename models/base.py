"""The detector contract and checkpoint cards.

Every detector is an ``nn.Module`` that maps a batch of mono float waveforms at
``sample_rate`` (shape ``[B, T]``, values in [-1, 1]) to one bona-fide score per utterance
(shape ``[B]``; higher = more bona fide; the value the official code writes). ``forward`` is
differentiable end to end, so attacks can take input gradients. ``score`` is the same under
``torch.inference_mode``.

An architecture registers itself with ``@ARCHITECTURES.register("name")`` in its own file;
the checkpoints known for it register :class:`Card` objects with ``register_card`` in that same
file. Key renaming for a checkpoint layout lives in the architecture's ``remap_state_dict``,
never in the loader.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from foundation.registry import Registry

class DetectorUnavailable(RuntimeError):
    """The detector stopped answering (a remote service that went away, or that now serves another model):
    a property of the detector, not of the clips it was given. ``bench run`` stops (status ``incomplete``,
    non-zero exit) instead of recording those clips as problems; ``retryable``: whether waiting for it may
    help (``--wait-for-service``)."""

    retryable: bool = True


ARCHITECTURES: Registry[type["Detector"]] = Registry("architecture")
CARDS: Registry["Card"] = Registry("model")


@dataclass(frozen=True)
class Card:
    """What is known about one checkpoint (or one architecture without published weights)."""

    name: str                       # the model name users type: `aasist`, `aasist-l`, ...
    architecture: str               # a key of ARCHITECTURES
    config: Mapping[str, Any]       # passed to the architecture's ``from_config``
    filename: str | None = None     # relative path under BENCH_WEIGHTS_DIR / the cache, e.g. "aasist/AASIST.pth"
    url: str | None = None          # official download address
    sha256: str | None = None       # digest of the file at ``url``; a mismatch is refused
    licence: str = "unknown"
    training_data: str = "unknown"
    published_eer: str = ""         # as published, with the evaluation set, e.g. "0.83% (ASVspoof 2019 LA eval)"
    params: int | None = None       # number of parameters
    description: str = ""
    input_policy: str = "official"  # the default input policy for scoring
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = dict(self.config)
        d["extra"] = dict(self.extra)
        return d


def register_card(card: Card) -> Card:
    return CARDS.add(card.name, card)


#: model specs that name no card or class but have a loader of their own, by prefix
#: (``http://`` -> models/remote.py, ``fuse:`` -> models/fusion.py): prefix -> (loader(spec, checkpoint, device,
#: config, fast_inference, label_map), detector class; a class may declare ``declared_sample_rate(spec)``)
SPEC_PREFIXES: dict[str, tuple[Callable[..., Any], type]] = {}


def register_spec_prefix(prefix: str, loader: Callable[..., Any], cls: type) -> None:
    """``load_detector(spec)`` hands a spec starting with ``prefix`` to ``loader``; ``cls`` declares its rate."""
    SPEC_PREFIXES[prefix.lower()] = (loader, cls)


def spec_prefix(spec: str) -> tuple[Callable[..., Any], type] | None:
    low = str(spec).lower()
    return next((v for p, v in SPEC_PREFIXES.items() if low.startswith(p)), None)


def strip_data_parallel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict saved from a ``DataParallel`` model (every key prefixed ``module.``) in the bare model's names."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


class CheckpointMismatch(ValueError):
    """A state dict that does not fit the architecture; names the missing and unexpected keys."""


class Detector(nn.Module):
    """Base class of every detector. Subclasses implement ``forward`` and ``from_config``."""

    sample_rate: ClassVar[int] = 16000
    #: samples the model was trained on (the `official` input policy cuts/tiles to this)
    nb_samp: ClassVar[int] = 64600
    default_policy: ClassVar[str] = "official"

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B]
        raise NotImplementedError

    @torch.inference_mode()
    def score(self, wav: torch.Tensor) -> torch.Tensor:
        """Scores without building a graph. Keeps eval mode explicit (BatchNorm, dropout off)."""
        self.eval()
        return self.forward(wav)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Detector":
        raise NotImplementedError

    @classmethod
    def remap_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename keys of a published checkpoint layout to this module's names (identity by default)."""
        return state

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Strict load after ``remap_state_dict``; a mismatch names the missing and unexpected keys."""
        state = self.remap_state_dict(dict(state))
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or shape:
            def short(keys: list[str]) -> str:
                return ", ".join(keys[:12]) + (f" ... ({len(keys)} in all)" if len(keys) > 12 else "")
            parts = []
            if missing:
                parts.append(f"missing keys: {short(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {short(unexpected)}")
            if shape:
                parts.append("shape mismatch: " + short(
                    [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shape]))
            raise CheckpointMismatch(f"checkpoint does not fit {type(self).__name__}: " + "; ".join(parts))
        self.load_state_dict(state, strict=True)
