"""Packet loss on a VoIP-like stream: frames of ``frame_ms`` are dropped and concealed.

Exactly ``round(loss_rate · n_frames)`` frames are lost, at positions the rng draws uniformly
without replacement (so the level's loss rate is achieved on every clip, not just on average;
losses are independent of each other, no burst model).

Concealment ``repeat`` (as simple packet-loss concealment does): a lost frame repeats the last
good frame, fading linearly to silence over ``FADE_FRAMES`` consecutive losses; every junction is
smoothed by a raised-cosine crossfade of ``XFADE_MS`` into the samples that precede the repeated
frame (so the waveform stays continuous), and the next good frame fades in from the repeated
signal. ``zero``: lost frames are silent, with the same short fades at their edges. Only the
``XFADE_MS`` next to a lost frame are touched in good frames; the output stays aligned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

LEVELS = (
    {"loss_rate": 0.02, "frame_ms": 20.0, "concealment": "repeat"},
    {"loss_rate": 0.05, "frame_ms": 20.0, "concealment": "repeat"},
    {"loss_rate": 0.10, "frame_ms": 20.0, "concealment": "repeat"},
    {"loss_rate": 0.20, "frame_ms": 20.0, "concealment": "repeat"},
    {"loss_rate": 0.30, "frame_ms": 20.0, "concealment": "repeat"},
)

FADE_FRAMES = 3    # consecutive concealed frames until silence
XFADE_MS = 2.5
CONCEALMENTS = ("repeat", "zero")


@register
@dataclass(frozen=True)
class PacketLoss(Perturbation):
    family: ClassVar[str] = "packet-loss"
    LEVELS: ClassVar[tuple] = LEVELS
    loss_rate: float = 0.05
    frame_ms: float = 20.0
    concealment: str = "repeat"

    def validate(self) -> None:
        if not 0.0 <= self.loss_rate <= 1.0:
            raise ValueError(f"packet-loss: loss_rate must be within 0..1, got {self.loss_rate}")
        if not 5.0 <= self.frame_ms <= 200.0:
            raise ValueError(f"packet-loss: frame_ms must be within 5..200, got {self.frame_ms}")
        if self.concealment not in CONCEALMENTS:
            raise ValueError(f"packet-loss: concealment must be one of {CONCEALMENTS}, "
                             f"got {self.concealment!r}")

    def frame_length(self, sr: int) -> int:
        return max(1, int(round(self.frame_ms * sr / 1000.0)))

    def lost_frames(self, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask over the clip's frames (the last one may be partial): True = lost."""
        n_frames = int(np.ceil(n / self.frame_length(sr))) if n else 0
        k = int(round(self.loss_rate * n_frames))
        # each frame draws a priority; the k lowest are lost, so with the same rng a higher
        # loss rate loses a superset of the frames a lower one loses
        priority = rng.random(n_frames)
        mask = np.zeros(n_frames, dtype=bool)
        mask[np.argsort(priority, kind="stable")[:k]] = True
        return mask

    def apply(self, wav, sr, rng, context=None):
        x = np.asarray(wav, dtype=np.float64)
        lost = self.lost_frames(x.size, sr, rng)
        return self._conceal(x, sr, lost, np.copy, np.linspace).astype(np.float32)

    def apply_torch(self, wav, sr, rng, context=None):
        import torch

        x = wav.double()
        lost = self.lost_frames(x.numel(), sr, rng)   # the CPU path's draw
        up_like = lambda a: torch.as_tensor(a, dtype=torch.float64, device=x.device)  # noqa: E731
        lin = lambda a, b, n: torch.linspace(a, b, n, dtype=torch.float64, device=x.device)  # noqa: E731
        return self._conceal(x, sr, lost, torch.clone, lin, up_like).float()

    def _conceal(self, x, sr, lost, copy, linspace, as_array=np.asarray):
        """The concealment over ``x`` (a numpy array or a torch tensor: the same statements serve both)."""
        n, F = x.shape[0], self.frame_length(sr)
        xf = max(1, min(int(round(XFADE_MS * sr / 1000.0)), F // 2))
        up = as_array(0.5 - 0.5 * np.cos(np.pi * (np.arange(xf) + 0.5) / xf))  # 0 -> 1
        out = copy(x)
        pre = src = None
        run = 0
        for i in np.flatnonzero(lost):
            a, b = i * F, min(i * F + F, n)
            run = run + 1 if i > 0 and lost[i - 1] else 1
            if run == 1:
                if self.concealment == "repeat" and a >= F + xf:
                    pre, src = copy(out[a - F - xf:a - F]), copy(out[a - F:a])
                    out[a - xf:a] = (1 - up) * out[a - xf:a] + up * pre       # glide into the copy
                else:
                    pre = src = None
                    if a >= xf:
                        out[a - xf:a] *= 1 - up                                 # fade out
            g0 = max(0.0, 1.0 - (run - 1) / FADE_FRAMES)
            g1 = max(0.0, 1.0 - run / FADE_FRAMES)
            if src is None:
                out[a:b] = 0.0
            else:
                out[a:b] = src[:b - a] * linspace(g0, g1, b - a)
                if b - a >= xf:                                                 # glide into the next copy
                    out[b - xf:b] = (1 - up) * out[b - xf:b] + up * pre * g1
            nxt_good = b < n and not lost[i + 1]
            if nxt_good:
                m = min(xf, n - b)
                cont = 0.0 if src is None else src[:m] * g1
                out[b:b + m] = up[:m] * x[b:b + m] + (1 - up[:m]) * cont       # fade the good frame in
        return out
