"""A linear fusion of detectors: ``--model fuse:M1+M2[+...]@FUSION.json``.

Its score is ``sum_i w_i * s_i(wav) + bias``, the members' scores weighted as the fusion file says (written by
``bench calibrate --fuse`` on a run that scored every member; with its weights it is a log-likelihood ratio).
``forward`` sums the members' differentiable forwards, so a white-box attack's gradient flows through every
member (an attacker must fool the fusion); ``score`` sums the members' own inference paths.

* The spec: members are separated by ``+`` and the fusion file follows the last ``@`` (a member may itself
  contain ``@``, e.g. ``hf:ID@REVISION``). Each member is loaded by :func:`models.load_detector` with its default
  checkpoint; ``--checkpoint`` does not apply. The spec must name the file's members (any order).
* The file is plain JSON, checked here: ``format`` ``deepfake-bench/calibration``, ``kind`` ``fusion``,
  ``members`` (names), ``weights`` (one finite number per member), ``bias``; other fields are kept as they are.
* The members must run at one sample rate. The fusion's ``nb_samp`` is the largest member's; a member whose
  ``nb_samp`` is smaller sees the first ``nb_samp`` samples of each input (for the ``official`` policy this is
  exactly that member's own crop, since tiling and cutting keep the prefix). Its card's input policy is the
  first member's.
* ``sha256`` of the loaded detector: a digest of the fusion file's sha256 and the members' (identity of a run
  that scores it: :func:`bench.run.identity.model_identity`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from models.base import Card, Detector, register_spec_prefix

log = logging.getLogger(__name__)

PREFIX = "fuse:"
FORMAT = "deepfake-bench/calibration"


def parse_spec(spec: str) -> tuple[list[str], str]:
    """``fuse:M1+M2@FILE`` -> ``([M1, M2], FILE)``; a malformed spec raises ValueError showing the form."""
    body = spec[len(PREFIX):] if spec.lower().startswith(PREFIX) else None
    if body is None or "@" not in body:
        raise ValueError(f"fusion model spec {spec!r}: expected fuse:M1+M2[+...]@FUSION.json (the file from "
                         "`bench calibrate --fuse RUN --out FUSION.json`)")
    names, _, path = body.rpartition("@")
    members = [m.strip() for m in names.split("+")]
    if not path.strip() or len(members) < 2 or not all(members):
        raise ValueError(f"fusion model spec {spec!r}: name two or more members separated by '+' and the fusion "
                         "file after '@', e.g. fuse:aasist+aasist-l@fusion.json")
    if len(set(members)) != len(members):
        raise ValueError(f"fusion model spec {spec!r}: a member is named twice")
    if any(m.lower().startswith(PREFIX) for m in members):
        raise ValueError(f"fusion model spec {spec!r}: a member cannot itself be a fusion")
    return members, path.strip()


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_fusion(path: str | Path) -> dict[str, Any]:
    """The fusion file, checked (errors name the file and the field)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"fusion file {path} does not exist (write it with `bench calibrate --fuse RUN --out "
                         f"{path.name}`)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"fusion file {path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"fusion file {path}: field 'format' must be {FORMAT!r} (a file from bench calibrate)")
    if doc.get("kind") != "fusion":
        raise ValueError(f"fusion file {path}: field 'kind' is {doc.get('kind')!r}; a fusion needs a file from "
                         "`bench calibrate --fuse` (kind 'fusion')")
    members, weights = doc.get("members"), doc.get("weights")
    if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) and m for m in members) \
            or len(set(members)) != len(members):
        raise ValueError(f"fusion file {path}: field 'members' must list two or more distinct names, got {members!r}")
    if not isinstance(weights, list) or len(weights) != len(members) or not all(map(_finite, weights)):
        raise ValueError(f"fusion file {path}: field 'weights' must hold one finite number per member, "
                         f"got {weights!r}")
    if not _finite(doc.get("bias")):
        raise ValueError(f"fusion file {path}: field 'bias' must be a finite number, got {doc.get('bias')!r}")
    return doc


class FusionDetector(Detector):
    """``sum_i w_i * member_i(wav) + bias``, differentiable through every member."""

    sample_rate: ClassVar[int] = 16000

    def __init__(self, members: Sequence[Detector], weights: Sequence[float], bias: float,
                 names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(members) < 2 or len(weights) != len(members):
            raise ValueError(f"a fusion needs two or more members and one weight each, got {len(members)} members "
                             f"and {len(weights)} weights")
        rates = {int(getattr(m, "sample_rate", 16000)) for m in members}
        if len(rates) != 1:
            raise ValueError(f"the fusion's members run at different sample rates {sorted(rates)}; fuse detectors "
                             "of one rate")
        self.members = nn.ModuleList(members)
        self.names = list(names) if names is not None else [type(m).__name__ for m in members]
        self.register_buffer("weights", torch.tensor([float(w) for w in weights], dtype=torch.float32))
        self.bias = float(bias)
        self.sample_rate = rates.pop()                       # the instance's rate: its members'
        self.lengths = [int(getattr(m, "nb_samp", 64600)) for m in members]
        self.nb_samp = max(self.lengths)

    def _inputs(self, wav: torch.Tensor):
        if wav.dim() != 2:
            raise ValueError(f"fusion: expected a batch of waveforms [B, T], got shape {tuple(wav.shape)}")
        for member, n in zip(self.members, self.lengths):
            yield member, (wav[:, :n] if wav.size(1) > n and n < self.nb_samp else wav)

    def _fuse(self, scores: list[torch.Tensor]) -> torch.Tensor:
        w = self.weights.to(scores[0].device)
        return sum(w[i].to(s.dtype) * s for i, s in enumerate(scores)) + self.bias

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self._fuse([member(x) for member, x in self._inputs(wav)])

    @torch.inference_mode()
    def score(self, wav: torch.Tensor) -> torch.Tensor:
        """The members' own ``score`` (their inference paths), fused."""
        self.eval()
        return self._fuse([member.score(x).float() for member, x in self._inputs(wav)])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FusionDetector":
        raise ValueError("a fusion is built from its spec: load it with --model fuse:M1+M2@FUSION.json")

    @staticmethod
    def declared_sample_rate(spec: str) -> int:
        """The members' common rate, known without loading weights (:func:`models.declared_sample_rate`)."""
        return declared_sample_rate(spec)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(spec: str, checkpoint=None, device: str = "cpu", config: Mapping[str, Any] | None = None,
         fast_inference: bool = True, label_map: Any = None):
    """``models.load_detector`` for ``fuse:`` specs: reads the file, loads every member, checks they agree."""
    from models import LoadedDetector, load_detector

    if checkpoint is not None:
        raise ValueError(f"model {spec} is a fusion: its members load their own checkpoints (drop --checkpoint)")
    names, path = parse_spec(spec)
    doc = read_fusion(path)
    if sorted(names) != sorted(doc["members"]):
        raise ValueError(f"fusion model spec {spec!r} names members {names}, but {path} fuses {doc['members']}: "
                         f"use --model fuse:{'+'.join(doc['members'])}@{path}")
    weight = dict(zip(doc["members"], doc["weights"]))
    loaded = [load_detector(n, device=device, fast_inference=fast_inference, label_map=label_map) for n in names]
    det = FusionDetector([ld.detector for ld in loaded], [weight[n] for n in names], doc["bias"], names)
    if len({ld.card.input_policy for ld in loaded}) > 1 or len(set(det.lengths)) > 1:
        log.warning("fusion %s: the members differ in input policy or length (%s); each gets the first nb_samp "
                    "samples of the fusion's windows (the first member's policy, %s)", spec,
                    ", ".join(f"{ld.name}: {ld.card.input_policy}, {n}" for ld, n in zip(loaded, det.lengths)),
                    loaded[0].card.input_policy)
    file_sha = _digest(Path(path))
    h = hashlib.sha256(f"fusion {file_sha}\n".encode())
    for ld in loaded:
        h.update(f"{ld.name} {ld.sha256}\n".encode())
    card = Card(name=spec, architecture="fusion",
                config={"members": names, "weights": [weight[n] for n in names], "bias": doc["bias"],
                        "file": str(Path(path).resolve())},
                description=f"linear fusion of {', '.join(names)} ({path})",
                input_policy=loaded[0].card.input_policy,
                extra={"fusion_sha256": file_sha, "members": {ld.name: ld.sha256 for ld in loaded},
                       "costs": doc.get("costs")})
    return LoadedDetector(name=spec, detector=det.eval().to(device), card=card, checkpoint=str(Path(path).resolve()),
                          sha256=h.hexdigest())


def declared_sample_rate(spec: str) -> int:
    """The members' common rate, known without loading weights."""
    from models import declared_sample_rate as rate

    names, _ = parse_spec(spec)
    rates = {n: rate(n) for n in names}
    if len(set(rates.values())) != 1:
        raise ValueError(f"fusion {spec}: its members run at different sample rates {rates}; fuse detectors of one "
                         "rate")
    return next(iter(rates.values()))


register_spec_prefix(PREFIX, load, FusionDetector)
