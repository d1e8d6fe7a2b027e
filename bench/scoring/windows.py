"""Input policies: how an utterance of any length becomes the fixed-length input(s) a detector scores.

A policy is part of what a score means, so it is selectable (``--policy``) and recorded in provenance
(:meth:`Policy.to_dict`). Policies are model-agnostic: the window is the detector's ``nb_samp`` and the
clip is taken at the detector's ``sample_rate`` (resampling is the caller's job).

``official``
    The evaluation-time length fix of the AASIST / RawNet2 releases: a clip of ``nb_samp`` samples or
    more keeps its FIRST ``nb_samp`` samples; a shorter clip is tiled end to end (whole copies) and cut
    to ``nb_samp``. No normalisation, no pre-emphasis. Anything after the first ``nb_samp`` samples
    (4.04 s for AASIST) is never seen.
``full``
    Scores the whole utterance by windows of ``nb_samp`` samples every ``hop`` samples (default
    ``nb_samp // 2``, i.e. 50% overlap). Windows start at 0, hop, 2*hop, ... while they fit; when the
    last of them stops short of the end, one more window ending exactly at the last sample is added,
    so every sample is covered and nothing is padded. A clip shorter than ``nb_samp`` is tiled exactly
    as ``official`` does (one window), and a clip of exactly ``nb_samp`` is one window: for such clips
    ``full`` and ``official`` give the same score. The window scores of an utterance are reduced by
    ``agg``: ``mean`` (default), ``max``, ``min`` or ``median``.
``whole``
    The clip as it is, any length, up to the detector's ``max_samples`` (its ``nb_samp`` when it has
    none): nothing cut, tiled or padded. A longer clip is scored by windows of ``max_samples`` exactly
    as ``full`` windows it (``hop`` default half a window), reduced by ``agg``. For detectors that take
    any length (the ``hf:`` models' default). Batches only hold inputs of one length.

Spelling (``Policy.parse``): ``official``, ``full``, ``full:hop=32000``, ``full:hop=32000,agg=max``.
``str(policy)`` gives the canonical spelling back.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

POLICY_NAMES = ("official", "full", "whole")
AGGREGATES = ("mean", "max", "min", "median")
_AGG_FUNCS = {"mean": np.mean, "max": np.max, "min": np.min, "median": np.median}


@dataclass(frozen=True)
class Policy:
    """An input policy. ``hop`` and ``agg`` only apply to ``full``; ``hop=None`` means ``nb_samp // 2``."""

    name: str = "official"
    hop: int | None = None
    agg: str = "mean"

    def __post_init__(self) -> None:
        if self.name not in POLICY_NAMES:
            raise ValueError(f"unknown input policy {self.name!r}; known: {', '.join(POLICY_NAMES)}")
        if self.agg not in AGGREGATES:
            raise ValueError(f"unknown aggregation {self.agg!r} in policy {self.name!r}; "
                             f"known: {', '.join(AGGREGATES)}")
        if self.hop is not None:
            if isinstance(self.hop, bool) or not isinstance(self.hop, (int, np.integer)) or self.hop < 1:
                raise ValueError(f"policy hop must be a positive whole number of samples, got {self.hop!r}")
            object.__setattr__(self, "hop", int(self.hop))
        if self.name == "official" and (self.hop is not None or self.agg != "mean"):
            raise ValueError("policy 'official' scores one crop and takes no hop or agg; use 'full:...'")

    # ---- spelling and provenance -------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "str | Policy") -> "Policy":
        """``official`` | ``full`` | ``full:hop=32000,agg=max`` (options in any order)."""
        if isinstance(spec, Policy):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"input policy must be a string like 'official' or 'full:hop=32000,agg=max', "
                             f"got {spec!r}")
        name, _, rest = spec.strip().partition(":")
        kwargs: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not value:
                raise ValueError(f"policy option {item!r} in {spec!r} is not key=value")
            if key == "hop":
                try:
                    kwargs["hop"] = int(value)
                except ValueError:
                    raise ValueError(f"policy hop in {spec!r} must be a whole number of samples, "
                                     f"got {value!r}") from None
            elif key == "agg":
                kwargs["agg"] = value
            else:
                raise ValueError(f"unknown policy option {key!r} in {spec!r}; options: hop, agg")
        return cls(name=name.strip(), **kwargs)

    def __str__(self) -> str:
        opts = [f"hop={self.hop}"] if self.hop is not None else []
        if self.agg != "mean":
            opts.append(f"agg={self.agg}")
        return self.name + (":" + ",".join(opts) if opts else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Policy":
        unknown = set(d) - {"name", "hop", "agg"}
        if unknown:
            raise ValueError(f"unknown policy fields {sorted(unknown)}; expected name, hop, agg")
        return cls(**dict(d))

    def window_for(self, detector: Any) -> int:
        """The window length this policy uses for a detector: ``max_samples`` for ``whole``, else ``nb_samp``."""
        nb_samp = int(detector.nb_samp)
        return int(getattr(detector, "max_samples", nb_samp)) if self.name == "whole" else nb_samp

    def resolved(self, nb_samp: int) -> dict[str, Any]:
        """What was actually applied for a detector (the hop filled in), for provenance."""
        d = self.to_dict()
        d["window"] = int(nb_samp)
        if self.name in ("full", "whole"):
            d["hop"] = self.hop_for(nb_samp)
        return d

    def hop_for(self, nb_samp: int) -> int:
        return self.hop if self.hop is not None else max(int(nb_samp) // 2, 1)

    # ---- applying it ----------------------------------------------------------------------------
    def starts(self, length: int, nb_samp: int) -> list[int]:
        """Start samples of the windows of a clip of ``length`` samples (``[0]`` for one crop or tile)."""
        if self.name == "official" or length <= nb_samp:
            return [0]
        hop = self.hop_for(nb_samp)
        starts = list(range(0, length - nb_samp + 1, hop))
        if starts[-1] + nb_samp < length:
            starts.append(length - nb_samp)
        return starts

    def iter_windows(self, wav: np.ndarray, nb_samp: int) -> Iterator[np.ndarray]:
        """The inputs one utterance becomes, one ``nb_samp`` array at a time (views where possible)."""
        wav = as_mono(wav)
        if len(wav) <= nb_samp:
            yield wav if self.name == "whole" else fix_length(wav, nb_samp)
            return
        for s in self.starts(len(wav), nb_samp):
            yield wav[s:s + nb_samp]

    def windows(self, wav: np.ndarray, nb_samp: int) -> np.ndarray:
        """All inputs of one utterance as an array [n_windows, nb_samp]."""
        return np.stack(list(self.iter_windows(wav, nb_samp)))

    def cut(self, wavs: Sequence[np.ndarray], nb_samp: int) -> tuple[list[int], list[np.ndarray]]:
        """Every window of every clip, in order: ``(owners, windows)``, ``owners[k]`` the clip of window k
        (views of the clips where possible, so this costs no copy of long audio)."""
        owners: list[int] = []
        windows: list[np.ndarray] = []
        for i, wav in enumerate(wavs):
            try:
                as_mono(wav)
            except ValueError as e:
                raise ValueError(f"utterance {i} of the batch: {e}") from None
            for w in self.iter_windows(wav, nb_samp):
                owners.append(i)
                windows.append(w)
        return owners, windows

    def aggregate(self, window_scores: np.ndarray) -> float:
        return float(_AGG_FUNCS[self.agg](np.asarray(window_scores, dtype=np.float64)))


def parse_policy(spec: "str | Policy") -> Policy:
    """Same as :meth:`Policy.parse`."""
    return Policy.parse(spec)


def fix_length(wav: np.ndarray, nb_samp: int) -> np.ndarray:
    """The official length fix: the first ``nb_samp`` samples, or whole copies tiled and cut to ``nb_samp``.

    Unlike the release's training crop (``pad_random``), a clip of exactly ``nb_samp`` is fine.
    """
    wav = as_mono(wav)
    if len(wav) >= nb_samp:
        return wav[:nb_samp]
    return np.tile(wav, nb_samp // len(wav) + 1)[:nb_samp]


def as_mono(wav: np.ndarray, where: str = "waveform") -> np.ndarray:
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"{where} has shape {wav.shape}; expected mono 1-D samples (mix down first)")
    if len(wav) == 0:
        raise ValueError(f"{where} is empty (0 samples); there is nothing to score")
    if not np.issubdtype(wav.dtype, np.floating):
        raise ValueError(f"{where} has dtype {wav.dtype}; expected float samples in [-1, 1] "
                         "(read audio as float, or divide 16-bit integers by 32768)")
    return wav
