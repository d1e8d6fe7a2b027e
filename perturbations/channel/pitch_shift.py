"""Pitch change without tempo change (``librosa.effects.pitch_shift``: phase-vocoder stretch,
then resampling with soxr), same length.

``semitones`` is the size of the shift; with ``direction="random"`` (the ladder) the rng picks
up or down for each clip, ``"up"``/``"down"`` fix it.

Alignment: no delay is added (the vocoder's stretch is anchored at the start and undone by the
resampling), but the waveform cross-correlation of a pitch-shifted clip with the original is not
meaningful (the harmonics moved), so the contract's sample-exact check does not apply here, as
for time-stretch. What holds, and is tested, is that the energy envelopes (5 ms) of input and
output are aligned within 5 ms (the vocoder smears speech by 1–3 ms).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations.base import Perturbation, register

LEVELS = (
    {"semitones": 1.0, "direction": "random"},
    {"semitones": 2.0, "direction": "random"},
    {"semitones": 3.0, "direction": "random"},
    {"semitones": 4.0, "direction": "random"},
    {"semitones": 6.0, "direction": "random"},
)

DIRECTIONS = ("random", "up", "down")


def stft_size(sr: int) -> int:
    """Phase-vocoder window: the power of two nearest 32 ms (512 at 16 kHz), a speech-sized
    window (librosa's default 2048 smears speech by up to ~10 ms)."""
    return int(2 ** round(np.log2(0.032 * sr)))


@register
@dataclass(frozen=True)
class PitchShift(Perturbation):
    family: ClassVar[str] = "pitch-shift"
    LEVELS: ClassVar[tuple] = LEVELS
    semitones: float = 2.0
    direction: str = "random"

    def validate(self) -> None:
        if not 0.0 <= self.semitones <= 24.0:
            raise ValueError(f"pitch-shift: semitones must be within 0..24, got {self.semitones}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"pitch-shift: direction must be one of {DIRECTIONS}, "
                             f"got {self.direction!r}")

    def steps(self, rng: np.random.Generator) -> float:
        """The signed shift in semitones for one clip."""
        if self.direction == "random":
            return float(self.semitones) * (1.0 if rng.random() < 0.5 else -1.0)
        return float(self.semitones) * (1.0 if self.direction == "up" else -1.0)

    def apply(self, wav, sr, rng, context=None):
        try:
            import librosa
        except ImportError as exc:  # pragma: no cover - librosa comes with audiomentations
            raise ImportError("pitch-shift needs librosa: pip install librosa") from exc
        n_steps = self.steps(rng)
        if n_steps == 0 or len(wav) == 0:
            return np.asarray(wav, dtype=np.float32).copy()
        n_fft = stft_size(sr)
        y = librosa.effects.pitch_shift(np.asarray(wav, dtype=np.float32), sr=int(sr), n_steps=n_steps,
                                        n_fft=n_fft, hop_length=n_fft // 4)
        n = len(wav)
        return np.pad(y, (0, max(0, n - y.size)))[:n]
