"""A small trainable detector for the training tests: a strided convolution, batch norm (running statistics that
resume must restore), dropout (randomness that resume must redraw identically) and two logits, as AASIST has.
`--model userplugin.train_tiny:TrainTiny --recipe aasist` (with tests/ on PYTHONPATH)."""
import torch
from torch import nn

from models.base import Detector


class TrainTiny(Detector):
    nb_samp = 4000

    def __init__(self, hidden: int = 8, nan: bool = False):
        super().__init__()
        self.conv = nn.Conv1d(1, hidden, 64, stride=16)
        self.bn = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(hidden, 2)
        self.nan = nan

    @classmethod
    def from_config(cls, config):
        return cls(**dict(config))

    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(wav.float().unsqueeze(1)))).mean(-1)
        out = self.out(self.drop(h))
        return out * float("nan") if self.nan else out

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.logits(wav)[:, 1]


class NanTiny(TrainTiny):
    """Its loss is never finite: training must stop after three such steps, keeping what it had."""

    @classmethod
    def from_config(cls, config):
        return cls(nan=True)


class PlainTiny(TrainTiny):
    """No batch norm, no dropout: nothing per process, so two processes train exactly as one (the DDP test)."""

    def __init__(self, hidden: int = 8):
        super().__init__(hidden)
        self.bn = nn.Identity()
        self.drop = nn.Identity()
