"""What the derived DARTS detector and the search network share: configuration, front ends, back end.

Facts from eurecom-asp/raw-pc-darts-anti-spoofing (MIT), ``func/sinc.py``, ``func/p2sgrad.py`` and the
``Network`` classes of ``models/model.py`` / ``models/model_search.py``:

- ``sinc`` front end (Raw PC-DARTS): ``SincConv_fast`` with ``C + 4`` band-pass filters of which the first
  ``C`` are used, 128 taps forced odd (129), padding 2, cut-offs from 0 to 7900 Hz equally spaced on the
  mel, linear or inverse-mel (``lem``) scale, stored as ``sinc.low_hz_`` / ``sinc.band_hz_`` (``[C + 4, 1]``,
  learnt only with ``sinc_learnable``); then max-pool 3, BN, LeakyReLU(0.3) and the ``stem`` (conv 3 with
  stride 2, BN, LeakyReLU). In training, a band of 0..15 adjacent filters is zeroed (frequency masking),
  drawn here from the detector's ``mask_generator`` (seeded by ``mask_seed``), never in eval mode.
- ``ssl`` front end (Light-DARTS): hidden states of a transformers wav2vec 2.0 / XLS-R model built as
  ``models.ssl_aasist`` builds its front end (keys ``ssl_model.model.*``), a linear projection ``proj`` to
  ``init_channels``, then the same BN, LeakyReLU and stem.
- Back end: GRU over time (last step), ``fc_gru`` (hidden -> hidden), and ``l_layer``: the P2SGrad layer
  (cos theta between the embedding and each class's unit-norm weight column; score = cos theta of the bona
  fide class 1, what the release's ``evaluate.py`` writes), or with ``head: linear`` a linear layer trained
  with cross-entropy, scored as ``logit_1 - logit_0``.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._darts_ops import SLOPE
from models.base import Detector

SINC_SCALES = ("mel", "linear", "lem")
HEADS = ("p2sgrad", "linear")
FRONTENDS = ("sinc", "ssl")
SINC_PADDING = 2
MASK_MAX = 16  # the release draws the masked band's width as int(uniform(0, 16))

#: configuration keys of the DARTS family and their defaults (the release's train_model.py defaults)
DEFAULTS: dict[str, Any] = {
    "frontend": "sinc", "layers": 8, "init_channels": 64, "gru_hsize": 1024, "gru_layers": 3,
    "head": "p2sgrad", "nb_samp": 64000,
    "sinc_scale": "mel", "sinc_kernel": 128, "sinc_learnable": False, "freq_mask": True, "mask_seed": 0,
    "ssl_frontend": "wav2vec2", "frontend_config": None, "frontend_path": None, "allow_download": False,
    "ssl_layer": None,
}


def merge_config(name: str, config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``config``; unknown keys and bad values are refused, naming the key."""
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"{name} config: unknown key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    cfg = {**copy.deepcopy(dict(defaults)), **copy.deepcopy(dict(config))}
    for key in ("layers", "init_channels", "gru_hsize", "gru_layers", "nb_samp", "sinc_kernel"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} config: {key} must be a positive integer, got {v!r}")
    for key, allowed in (("frontend", FRONTENDS), ("head", HEADS), ("sinc_scale", SINC_SCALES)):
        if cfg[key] not in allowed:
            raise ValueError(f"{name} config: {key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
    if cfg["ssl_layer"] is not None and (isinstance(cfg["ssl_layer"], bool) or not isinstance(cfg["ssl_layer"], int)):
        raise ValueError(f"{name} config: ssl_layer must be an index into the hidden states (0 = the feature "
                         f"projection, -1 = the last layer) or null, got {cfg['ssl_layer']!r}")
    if cfg["init_channels"] % 2:
        raise ValueError(f"{name} config: init_channels must be even (the cells halve it), got {cfg['init_channels']}")
    return cfg


class SincConvFast(nn.Module):
    """The release's ``SincConv_fast`` in its float32 arithmetic, with an out-of-place frequency mask."""

    def __init__(self, out_channels: int, kernel_size: int = 128, scale: str = "mel", learnable: bool = False,
                 sample_rate: int = 16000, min_low_hz: float = 50, min_band_hz: float = 50):
        super().__init__()
        self.channels = out_channels
        n_filt = out_channels + 4
        self.kernel_size = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
        self.sample_rate, self.min_low_hz, self.min_band_hz = sample_rate, min_low_hz, min_band_hz
        high_hz = sample_rate / 2 - (min_low_hz + min_band_hz)
        to_mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
        to_hz = lambda mel: 700 * (10 ** (mel / 2595) - 1)  # noqa: E731
        if scale == "linear":
            hz = np.linspace(0, high_hz, n_filt + 1)
        else:
            hz = to_hz(np.linspace(to_mel(0), to_mel(high_hz), n_filt + 1))
            if scale == "lem":
                hz = np.abs(np.flip(hz) - 1)
        self.low_hz_ = nn.Parameter(torch.tensor(hz[:-1], dtype=torch.float32).view(-1, 1), requires_grad=learnable)
        self.band_hz_ = nn.Parameter(torch.tensor(np.diff(hz), dtype=torch.float32).view(-1, 1),
                                     requires_grad=learnable)
        k = self.kernel_size
        # half a Hamming window on the release's grid: int(k / 2) points from 0 to k / 2 - 1
        n_lin = torch.linspace(0, (k / 2) - 1, steps=int(k / 2))
        self.register_buffer("window_", 0.54 - 0.46 * torch.cos(2 * math.pi * n_lin / k), persistent=False)
        n = (k - 1) / 2.0
        self.register_buffer("n_", 2 * math.pi * torch.arange(-n, 0).view(1, -1) / sample_rate, persistent=False)

    def filters(self) -> torch.Tensor:
        """``[C, 1, K]`` band-pass filters (the first ``C`` of ``C + 4``)."""
        low = self.min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(low + self.min_band_hz + torch.abs(self.band_hz_), self.min_low_hz, self.sample_rate / 2)
        band = (high - low)[:, 0]
        left = ((torch.sin(torch.matmul(high, self.n_)) - torch.sin(torch.matmul(low, self.n_)))
                / (self.n_ / 2)) * self.window_
        bp = torch.cat([left, 2 * band.view(-1, 1), torch.flip(left, dims=[1])], dim=1) / (2 * band[:, None])
        return bp.view(-1, 1, self.kernel_size)[:self.channels]

    def draw_mask(self, generator: torch.Generator) -> torch.Tensor:
        """``[C]`` of ones with a run of ``f`` zeros at ``f0``: ``f = int(uniform(0, 16))`` (at most C - 1),
        ``f0`` uniform in ``0 .. C - f - 1``, as the release draws them (one band for the whole batch)."""
        c = self.channels
        f = min(int(torch.rand((), generator=generator) * MASK_MAX), c - 1)
        f0 = int(torch.randint(0, c - f, (), generator=generator))
        mask = torch.ones(c)
        mask[f0:f0 + f] = 0
        return mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        filt = self.filters().to(x.dtype)
        if mask is not None:
            filt = filt * mask.to(device=filt.device, dtype=filt.dtype).view(-1, 1, 1)
        return F.conv1d(x, filt, stride=1, padding=SINC_PADDING)


class P2SActivation(nn.Module):
    """P2SGrad output layer: ``cos theta`` between the input and each class's weight column."""

    def __init__(self, in_dim: int, out_dim: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.renorm(2, 1, 1e-5).mul(1e5)
        x_modulus = x.pow(2).sum(1).pow(0.5)
        return (x.mm(w) / x_modulus.view(-1, 1)).clamp(-1, 1)


def p2sgrad_loss(cos_theta: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The release's ``P2SGradLoss``: mean squared error between cos theta and the one-hot target."""
    return F.mse_loss(cos_theta, F.one_hot(target.long(), cos_theta.shape[1]).to(cos_theta.dtype))


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (1/3 and 2/3 of the depth, as the release places them)."""
    return layers // 3, 2 * layers // 3


class DARTSBase(Detector):
    """Front end, stem and back end of the DARTS family; subclasses build ``self.cells`` and ``run_cells``."""

    nb_samp = 64000   # the release evaluates the first 4 s (shorter clips repeated)
    NAME = "darts"

    def _build_front(self, cfg: Mapping[str, Any]) -> int:
        c = cfg["init_channels"]
        self.frontend = cfg["frontend"]
        self.freq_mask = bool(cfg["freq_mask"])
        self.mask_generator = torch.Generator().manual_seed(int(cfg["mask_seed"]))
        self.nb_samp = int(cfg["nb_samp"])
        if self.frontend == "sinc":
            self.sinc = SincConvFast(c, cfg["sinc_kernel"], cfg["sinc_scale"], bool(cfg["sinc_learnable"]),
                                     self.sample_rate)
            self.mp = nn.MaxPool1d(3)
        else:
            from models.ssl_aasist import SSLModel, build_frontend

            spec = {"frontend": cfg["ssl_frontend"], "frontend_config": cfg["frontend_config"],
                    "frontend_path": cfg["frontend_path"], "allow_download": cfg["allow_download"]}
            self.ssl_model = SSLModel(build_frontend(spec, owner=self.NAME))
            self.ssl_layer = cfg["ssl_layer"]
            self.proj = nn.Linear(int(self.ssl_model.model.config.hidden_size), c)
        self.bn = nn.BatchNorm1d(c)
        self.lrelu = nn.LeakyReLU(negative_slope=SLOPE)
        self.stem = nn.Sequential(nn.Conv1d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(c),
                                  nn.LeakyReLU(negative_slope=SLOPE))
        return c

    def _build_cells(self, c: int, layers: int, make: Any) -> int:
        """The release's cell stack after a stem of ``c`` channels: reduction cells double the channels, each cell
        takes the outputs of the two before it. ``make(c_prev_prev, c_prev, c, reduction, reduction_prev)`` returns
        ``(cell, multiplier)`` (the states a cell concatenates). Returns the last cell's output channels."""
        c_prev_prev, c_prev, c_curr = c, c, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cell, multiplier = make(c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, multiplier * c_curr
        return c_prev

    def _build_back(self, c_prev: int, cfg: Mapping[str, Any]) -> None:
        h = cfg["gru_hsize"]
        self.head = cfg["head"]
        self.gru = nn.GRU(input_size=c_prev, hidden_size=h, num_layers=cfg["gru_layers"], batch_first=True)
        self.fc_gru = nn.Linear(h, h)
        self.l_layer = P2SActivation(h, 2) if self.head == "p2sgrad" else nn.Linear(h, 2)

    @property
    def min_samples(self) -> int:
        """Shortest input leaving one frame after the cells (sinc front end; the SSL one is checked in frames)."""
        if self.frontend != "sinc":
            return 1
        return 3 * 2 ** (len(self.cells) + 1) + self.sinc.kernel_size - 1 - 2 * SINC_PADDING

    def _check_input(self, wav: torch.Tensor) -> None:
        if wav.dim() != 2:
            raise ValueError(f"{self.NAME} expects waveforms shaped [batch, samples], got {tuple(wav.shape)}")
        if wav.shape[1] < self.min_samples:
            raise ValueError(f"{self.NAME} needs at least {self.min_samples} samples for {len(self.cells)} cells, "
                             f"got {wav.shape[1]}; pad the input (the official policy tiles to {self.nb_samp})")

    def stem_states(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T]`` -> the first cell's inputs ``(s0, s1)``: front-end features and the stem's output."""
        self._check_input(wav)
        p = self.stem[0].weight
        x = wav.to(device=p.device, dtype=p.dtype)
        if self.frontend == "sinc":
            mask = self.sinc.draw_mask(self.mask_generator) if self.training and self.freq_mask else None
            s0 = self.mp(self.sinc(x.unsqueeze(1), mask))
        else:
            if self.ssl_layer is None:
                feats = self.ssl_model(x)
            else:
                feats = self.ssl_model.model(x, output_hidden_states=True).hidden_states[self.ssl_layer]
            need = 2 ** (len(self.cells) + 1)
            if feats.shape[1] < need:
                raise ValueError(f"{self.NAME}: {x.shape[1]} samples give {feats.shape[1]} SSL frames, fewer than "
                                 f"the {need} that {len(self.cells)} cells need; pad the input (the official "
                                 f"policy tiles to {self.nb_samp})")
            s0 = self.proj(feats).transpose(1, 2)
        s0 = self.lrelu(self.bn(s0))
        return s0, self.stem(s0)

    def _gru(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.is_grad_enabled() and not self.training:
            with torch.backends.cudnn.flags(enabled=False):  # cuDNN's RNN backward refuses eval mode
                return self.gru(x)[0]
        return self.gru(x)[0]

    def embeddings(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, C, frames]`` cell output -> ``[B, gru_hsize]``: last GRU step through ``fc_gru``."""
        return self.fc_gru(self._gru(feats.permute(0, 2, 1))[:, -1, :])

    def run_cells(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_scores(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 2]``: cos theta per class (P2SGrad) or logits (linear head); column 1 = bona fide."""
        return self.l_layer(self.embeddings(self.run_cells(*self.stem_states(wav))))

    def loss(self, class_scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training criterion of the head: P2SGrad's MSE, or cross-entropy (target 1 = bona fide)."""
        if self.head == "p2sgrad":
            return p2sgrad_loss(class_scores, target)
        return F.cross_entropy(class_scores, target.long())

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        out = self.class_scores(wav)
        return out[:, 1] if self.head == "p2sgrad" else out[:, 1] - out[:, 0]
