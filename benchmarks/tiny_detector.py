"""A trivially cheap detector for benchmarks of the pipeline itself (memory, bookkeeping):
``--model benchmarks.tiny_detector:TinyDetector --checkpoint tiny.pth`` (run from the repository root).
Its score is a learned scale times the mean of the first ``nb_samp`` samples."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from models.base import Detector


class TinyDetector(Detector):
    nb_samp = 1600  # 0.1 s at 16 kHz: the official policy tiles or cuts every clip to this

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TinyDetector":
        return cls()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.scale * wav.mean(dim=1)


def write_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    torch.save(TinyDetector().state_dict(), path)
    return path
