"""Randomness derived from (seed, utterance id, condition), never from global state.

The same triple gives the same stream in any order, process or machine, so sharding,
resuming and distributed executors cannot change the audio.
"""
from __future__ import annotations

import zlib

import numpy as np


def crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def rng_for(seed: int, utt_id: str, condition: str) -> np.random.Generator:
    """A numpy Generator for one utterance under one condition."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, crc(utt_id), crc(condition)])


def torch_generator_for(seed: int, utt_id: str, condition: str, device: str = "cpu"):
    """A torch.Generator seeded from the same triple (for attacks and device-side noise)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(rng_for(seed, utt_id, condition).integers(0, 2**63 - 1)))
    return g
