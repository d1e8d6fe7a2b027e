"""A user's own detector, as someone would bring it: `--model userplugin.tiny_detector:TinyDetector`
(with tests/ on PYTHONPATH)."""
import torch
from torch import nn

from models.base import Detector


class TinyDetector(Detector):
    nb_samp = 16000

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.conv = nn.Conv1d(1, hidden, 64, stride=32)
        self.out = nn.Linear(hidden, 1)

    @classmethod
    def from_config(cls, config):
        return cls(**dict(config))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(wav.float().unsqueeze(1))).mean(-1)
        return self.out(h).squeeze(-1)
