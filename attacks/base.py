"""The attack contract.

An attack is a frozen dataclass registered with ``@register`` in its own file, with a literal
budget ladder ``LEVELS`` at the top of that file (severity 1 = smallest budget). Budgets are either
a waveform amplitude ``eps`` or the perturbation's SNR in dB against each utterance (``snr_db``).

``attack(detector, wav, label, generator) -> adversarial wav``:
- ``wav``: ``[B, T]`` float tensor on the detector's device, already in the detector's input form
  (e.g. the official 64600-sample crop), values in [-1, 1];
- ``label``: ``[B]`` long tensor, 1 = bona fide, 0 = spoof. The attack pushes each utterance
  towards the other class (spoof -> judged bona fide is evasion, the main threat; bona fide ->
  judged spoof is the reverse);
- ``generator``: a ``torch.Generator`` on the device, derived from (seed, utterance, condition), or a
  list of one generator per utterance (row i draws only from generator i: batch-independent results).
The detector stays in eval mode; waveforms stay in [-1, 1] (never [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from foundation.leveled import Leveled
from foundation.registry import Registry

ATTACKS: Registry[type["Attack"]] = Registry("attack")


@dataclass(frozen=True)
class Attack(Leveled):
    name: ClassVar[str] = ""
    NAME_FIELD: ClassVar[str] = "attack"
    severity: int = 0

    @classmethod
    def registered_name(cls) -> str:
        return cls.name or cls.__name__

    def __call__(self, detector, wav, label, generator):
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Attack":
        return ATTACKS.get(d["attack"]).from_params(int(d.get("severity", 0)), dict(d.get("params", {})))


def check_inputs(where: str, wav, label):
    """The contract's inputs, checked alike by every attack: ``wav`` a float tensor [B, T] that is finite and
    within [-1, 1] (an empty batch passes), ``label`` [B] of 0/1. Returns ``label`` as a tensor."""
    import torch

    if not isinstance(wav, torch.Tensor) or wav.dim() != 2 or not wav.is_floating_point():
        raise ValueError(f"{where}: wav must be a float tensor [B, T], got "
                         f"{getattr(wav, 'shape', type(wav).__name__)}")
    label = torch.as_tensor(label)
    if label.shape != (wav.shape[0],) or not bool(((label == 0) | (label == 1)).all()):
        raise ValueError(f"{where}: label must be [B] = [{wav.shape[0]}] with 1 = bona fide, 0 = spoof")
    if wav.numel() and (not bool(torch.isfinite(wav).all()) or float(wav.abs().amax()) > 1.0):
        raise ValueError(f"{where}: wav must be finite and within [-1, 1] (float PCM); rescale the input")
    return label


def register(cls: type[Attack]) -> type[Attack]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no attack name")
    ATTACKS.add(cls.name, cls)
    return cls
