"""AASIST and AASIST-L (Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal
Graph Attention Networks", ICASSP 2022), numerically equivalent to the official clovaai/aasist release.

Pipeline: a fixed mel-spaced sinc filter bank on the raw waveform -> |.| -> 3x3 max-pool -> BN/SELU ->
six 2-D residual blocks -> a spectral graph (23 frequency nodes) and a temporal graph (time nodes),
each through a graph attention layer and graph pooling -> two parallel branches of heterogeneous
stack graph attention (HS-GAL) with a learnable master node -> element-wise max of the branches ->
[max|T|, mean T, max|S|, mean S, master] (5 x gat_dims[1] = 160 for both released models) -> linear -> 2
logits. Column 1 is bona fide; it is the official score and our ``forward`` output.

Module and parameter names mirror the official checkpoints, so they load strictly with no remapping.
Faithfulness notes (see models/README.md):

* the sinc bank is not stored: it is rebuilt here exactly as the official code does (float64 mel
  edges, float32 time axis and window) and kept as a non-persistent buffer;
* in every residual block but the first, ``bn1`` exists (and is stored) but the official forward
  feeds the block's raw input to ``conv1``; we keep the module for strict loading and skip it too;
* ``master1``/``master2`` are (1, 1, D) parameters that the first HS-GAL of each branch receives
  un-expanded; broadcasting gives the same numbers as an expanded copy;
* dropout rates match the official ones, so ``train()`` behaves like the release (the frequency-mask
  augmentation of the sinc bank is not implemented: it is a training-only option).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import ARCHITECTURES, Card, Detector, register_card

log = logging.getLogger(__name__)

# The literal `model_config` blocks of the official config/AASIST.conf and config/AASIST-L.conf.
AASIST_CONFIG: dict[str, Any] = {
    "architecture": "AASIST",
    "nb_samp": 64600,
    "first_conv": 128,
    "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]],
    "gat_dims": [64, 32],
    "pool_ratios": [0.5, 0.7, 0.5, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}
AASIST_L_CONFIG: dict[str, Any] = {
    "architecture": "AASIST",
    "nb_samp": 64600,
    "first_conv": 128,
    "filts": [70, [1, 32], [32, 32], [32, 24], [24, 24]],
    "gat_dims": [24, 32],
    "pool_ratios": [0.4, 0.5, 0.7, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}
_REQUIRED = ("nb_samp", "first_conv", "filts", "gat_dims", "pool_ratios", "temperatures")
_N_POOLS = 7  # the front-end 3x3 max-pool and the (1, 3) max-pool of each of the six residual blocks


def sinc_bank(n_filters: int, kernel_size: int, sample_rate: int = 16000) -> torch.Tensor:
    """The official fixed band-pass bank, shape (n_filters, 1, K) with K = kernel_size made odd.

    Band edges: n_filters + 1 points equally spaced on the mel scale between the mel values of 0 Hz
    and sample_rate/2 (float64). Each filter is the difference of two ideal low-pass sincs times a
    Hamming window. The official code evaluates the sinc arguments on a float32 torch time axis and
    np.sinc then runs in float32; we reproduce those roundings (a float64 rebuild moves logits by ~2e-5).
    """
    k = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    f = int(sample_rate / 2) * np.linspace(0, 1, 257)  # NFFT = 512 grid, as in the release
    mel = 2595 * np.log10(1 + f / 700)
    edges_mel = np.linspace(mel.min(), mel.max(), n_filters + 1)
    edges_hz = 700 * (10 ** (edges_mel / 2595) - 1)
    t = np.arange(-(k - 1) / 2, (k - 1) / 2 + 1, dtype=np.float32)
    window = np.hamming(k).astype(np.float32)
    sr32 = np.float32(sample_rate)

    def lowpass(fc: float) -> np.ndarray:
        # torch: float32 tensor * float scalar -> float32, then / sample_rate in float32
        arg = (t * np.float32(2 * fc)) / sr32
        return (2 * fc / sample_rate) * np.sinc(arg)  # np.sinc in float32; float64 scale (numpy >= 2)

    bank = np.stack([(lowpass(edges_hz[i + 1]) - lowpass(edges_hz[i])).astype(np.float32) * window
                     for i in range(n_filters)])
    return torch.from_numpy(bank.astype(np.float32)).unsqueeze(1)


def _node_bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over every node of every graph (the official layers flatten (B, N, D) to (B*N, D))."""
    return bn(x.reshape(-1, x.size(-1))).view_as(x)


def _new_weight(rows: int) -> nn.Parameter:
    w = nn.Parameter(torch.empty(rows, 1))
    nn.init.xavier_normal_(w)
    return w


class ResidualBlock(nn.Module):
    """Conv(2x3) -> BN -> SELU -> Conv(2x3), plus a (1x3) projection skip when the width changes,
    then a (1, 3) max-pool. Keeps the frequency axis; divides time by three."""

    def __init__(self, c_in: int, c_out: int, first: bool = False):
        super().__init__()
        if not first:
            # Stored in the checkpoints but never applied by the official forward (conv1 reads the raw
            # input). Kept so that checkpoints load strictly and the parameter count matches.
            self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=(2, 3), padding=(0, 1))
        self.conv_downsample = (nn.Conv2d(c_in, c_out, kernel_size=(1, 3), padding=(0, 1))
                                if c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.selu(self.bn2(self.conv1(x))))
        skip = x if self.conv_downsample is None else self.conv_downsample(x)
        return F.max_pool2d(out + skip, (1, 3))


class GraphAttention(nn.Module):
    """Graph attention over fully connected nodes: a_ij = softmax_j(w . tanh(W (x_i * x_j)) / T)."""

    def __init__(self, d_in: int, d_out: int, temperature: float):
        super().__init__()
        self.att_proj = nn.Linear(d_in, d_out)
        self.att_weight = _new_weight(d_out)
        self.proj_with_att = nn.Linear(d_in, d_out)
        self.proj_without_att = nn.Linear(d_in, d_out)
        self.bn = nn.BatchNorm1d(d_out)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, d_out)
        x = F.dropout(x, 0.2, self.training)
        pair = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, d_out)
        att = torch.softmax((pair @ self.att_weight).squeeze(-1) / self.temperature, dim=-1)
        h = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return F.selu(_node_bn(self.bn, h))


class HeteroGraphAttention(nn.Module):
    """HS-GAL: attention over the union of two node types (three edge types, each with its own
    attention vector) plus a master node that attends to every node."""

    def __init__(self, d_in: int, d_out: int, temperature: float):
        super().__init__()
        self.proj_type1 = nn.Linear(d_in, d_in)
        self.proj_type2 = nn.Linear(d_in, d_in)
        self.att_proj = nn.Linear(d_in, d_out)
        self.att_projM = nn.Linear(d_in, d_out)
        self.att_weight11 = _new_weight(d_out)
        self.att_weight22 = _new_weight(d_out)
        self.att_weight12 = _new_weight(d_out)
        self.att_weightM = _new_weight(d_out)
        self.proj_with_att = nn.Linear(d_in, d_out)
        self.proj_without_att = nn.Linear(d_in, d_out)
        self.proj_with_attM = nn.Linear(d_in, d_out)
        self.proj_without_attM = nn.Linear(d_in, d_out)
        self.bn = nn.BatchNorm1d(d_out)
        self.temperature = temperature

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor):
        n1, n2 = x1.size(1), x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        x = F.dropout(x, 0.2, self.training)
        # node-to-node attention; the edge type (1-1, 2-2, or mixed) picks the attention vector
        pair = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, d_out)
        s = pair @ torch.cat([self.att_weight11, self.att_weight22, self.att_weight12], dim=1)
        is1 = torch.arange(n1 + n2, device=x.device) < n1
        both1 = is1[:, None] & is1[None, :]
        both2 = ~is1[:, None] & ~is1[None, :]
        s = torch.where(both1, s[..., 0], torch.where(both2, s[..., 1], s[..., 2]))
        att = torch.softmax(s / self.temperature, dim=-1)
        # master node update (from the master before this layer; (1, 1, D) broadcasts)
        m_att = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # (B, N, 1)
        m_att = torch.softmax(m_att / self.temperature, dim=1)
        master = self.proj_with_attM(m_att.transpose(1, 2) @ x) + self.proj_without_attM(master)
        h = self.proj_with_att(att @ x) + self.proj_without_att(x)
        h = F.selu(_node_bn(self.bn, h))
        return h[:, :n1], h[:, n1:], master


class GraphPool(nn.Module):
    """Keeps the top ratio of nodes by a sigmoid gate, each node scaled by its gate."""

    def __init__(self, ratio: float, d_in: int, p_drop: float = 0.3):
        super().__init__()
        self.proj = nn.Linear(d_in, 1)
        self.ratio = ratio
        self.p_drop = p_drop

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.proj(F.dropout(h, self.p_drop, self.training)))  # (B, N, 1)
        k = max(int(h.size(1) * self.ratio), 1)
        idx = torch.topk(gate, k, dim=1).indices.expand(-1, -1, h.size(2))
        return torch.gather(h * gate, 1, idx)


@ARCHITECTURES.register("aasist")
class AASIST(Detector):
    """AASIST / AASIST-L (the same architecture at two widths). Input: 16 kHz waveforms [B, T]."""

    default_policy = "official"

    def __init__(self, nb_samp: int, first_conv: int, filts: list, gat_dims: list,
                 pool_ratios: list, temperatures: list, channels_last: bool = True):
        super().__init__()
        self.nb_samp = int(nb_samp)
        #: run the encoder channels-last (faster convolutions and pools on CPU; same numbers to ~1e-7)
        self.channels_last = channels_last
        #: ``score``/``infer`` on the CPU take the fast path (BENCH_AASIST_FAST=0 turns it off by default)
        self.fast_inference = True   # the CPU inference path in score(); load_detector(fast_inference=False) or
                                     # BENCH_FAST_INFERENCE=0 (read by the application, not here) turn it off
        sinc = sinc_bank(int(filts[0]), int(first_conv), self.sample_rate)
        self.register_buffer("sinc_filters", sinc, persistent=False)
        #: the shortest input that leaves at least one time node after the seven max-pools
        self.min_samples = sinc.shape[-1] - 1 + 3 ** _N_POOLS
        self.first_bn = nn.BatchNorm2d(1)
        widths = [filts[1], filts[2], filts[3], filts[4], filts[4], filts[4]]
        self.encoder = nn.Sequential(*[nn.Sequential(ResidualBlock(int(a), int(b), first=(i == 0)))
                                       for i, (a, b) in enumerate(widths)])
        if channels_last:  # weights and activations both channels-last, or the CPU kernels get slower
            self.encoder.to(memory_format=torch.channels_last)
        n_freq = int(filts[0]) // 3
        d_enc, (d_g, d_h) = int(filts[-1][-1]), (int(gat_dims[0]), int(gat_dims[1]))
        self.pos_S = nn.Parameter(torch.randn(1, n_freq, d_enc))
        self.master1 = nn.Parameter(torch.randn(1, 1, d_g))
        self.master2 = nn.Parameter(torch.randn(1, 1, d_g))
        self.GAT_layer_S = GraphAttention(d_enc, d_g, temperatures[0])
        self.GAT_layer_T = GraphAttention(d_enc, d_g, temperatures[1])
        self.HtrgGAT_layer_ST11 = HeteroGraphAttention(d_g, d_h, temperatures[2])
        self.HtrgGAT_layer_ST12 = HeteroGraphAttention(d_h, d_h, temperatures[2])
        self.HtrgGAT_layer_ST21 = HeteroGraphAttention(d_g, d_h, temperatures[2])
        self.HtrgGAT_layer_ST22 = HeteroGraphAttention(d_h, d_h, temperatures[2])
        self.pool_S = GraphPool(pool_ratios[0], d_g)
        self.pool_T = GraphPool(pool_ratios[1], d_g)
        # as in the release, all four branch pools use pool_ratios[2] (pool_ratios[3] is unused)
        self.pool_hS1 = GraphPool(pool_ratios[2], d_h)
        self.pool_hT1 = GraphPool(pool_ratios[2], d_h)
        self.pool_hS2 = GraphPool(pool_ratios[2], d_h)
        self.pool_hT2 = GraphPool(pool_ratios[2], d_h)
        self.out_layer = nn.Linear(5 * d_h, 2)
        self.hidden_dim = 5 * d_h

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "AASIST":
        missing = [k for k in _REQUIRED if k not in config]
        if missing:
            raise ValueError(f"AASIST model_config lacks {', '.join(missing)}; expected the "
                             f"'model_config' block of an official AASIST .conf (keys: {', '.join(_REQUIRED)})")
        arch = str(config.get("architecture", "AASIST"))
        if arch.upper() != "AASIST":
            raise ValueError(f"model_config architecture is {arch!r}, not 'AASIST'")
        filts = config["filts"]
        if len(filts) != 5 or any(len(f) != 2 for f in filts[1:]):
            raise ValueError(f"model_config 'filts' must be [n_sinc, [in, out] x 4], got {filts!r}")
        return cls(**{k: config[k] for k in _REQUIRED},
                   channels_last=bool(config.get("channels_last", True)))

    def num_parameters(self) -> int:
        """Trainable parameters, as the official code counts them (the sinc bank is not one)."""
        return sum(p.numel() for p in self.parameters())

    def logits_and_hidden(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 2) logits (column 1 bona fide) and the (B, 5*gat_dims[1]) embedding before ``out_layer``.
        The reference formulation: differentiable, and what ``forward`` (attacks, training) uses."""
        self._check_input(wav)
        wav = wav.to(self.sinc_filters.dtype)
        x = F.conv1d(wav.unsqueeze(1), self.sinc_filters)                 # (B, n_sinc, T - K + 1)
        x = F.max_pool2d(x.abs().unsqueeze(1), (3, 3))                    # (B, 1, n_freq, T')
        x = F.selu(self.first_bn(x))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.graph_head(self.encoder(x))

    def graph_head(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, hidden) from the encoder's output (B, C, n_freq, n_time): the graph back end."""
        e = e.abs()
        e_S = e.amax(dim=3).transpose(1, 2) + self.pos_S                  # spectral nodes
        e_T = e.amax(dim=2).transpose(1, 2)                               # temporal nodes
        out_S = self.pool_S(self.GAT_layer_S(e_S))
        out_T = self.pool_T(self.GAT_layer_T(e_T))

        branches = []
        for st1, st2, pool_t, pool_s, master in (
                (self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hT1, self.pool_hS1, self.master1),
                (self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hT2, self.pool_hS2, self.master2)):
            t, s, m = st1(out_T, out_S, master)
            t, s = pool_t(t), pool_s(s)
            t_aug, s_aug, m_aug = st2(t, s, m)
            branches.append([F.dropout(v, 0.2, self.training) for v in (t + t_aug, s + s_aug, m + m_aug)])
        (t1, s1, m1), (t2, s2, m2) = branches
        out_T, out_S, master = torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2)
        hidden = torch.cat([out_T.abs().amax(dim=1), out_T.mean(dim=1),
                            out_S.abs().amax(dim=1), out_S.mean(dim=1), master.squeeze(1)], dim=1)
        logits = self.out_layer(F.dropout(hidden, 0.5, self.training))
        return logits, hidden

    def _check_input(self, wav: torch.Tensor) -> None:
        if wav.dim() != 2:
            raise ValueError(f"AASIST expects a batch of mono waveforms [B, T], got shape {tuple(wav.shape)}")
        if wav.size(1) < self.min_samples:
            raise ValueError(f"AASIST needs at least {self.min_samples} samples per clip, got {wav.size(1)}; "
                             f"apply an input policy first (bench.scoring.windows: 'official' tiles to {self.nb_samp})")

    @torch.inference_mode()
    def infer(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``logits_and_hidden`` in eval mode without autograd, on the CPU by the cache-blocked fast path
        (models/_aasist_fast.py: 2-3x faster here, equal to the reference within ~1e-6) unless
        ``fast_inference`` is off. Call ``eval()`` first (``score`` does)."""
        self._check_input(wav)
        if self.fast_inference and not self.training and wav.device.type == "cpu":
            from models import _aasist_fast

            return _aasist_fast.logits_and_hidden(self, wav)
        return self.logits_and_hidden(wav)

    @torch.inference_mode()
    def score(self, wav: torch.Tensor) -> torch.Tensor:
        """Bona-fide logit per clip, without a graph, by ``infer`` (eval mode is set, as the base class does)."""
        self.eval()
        return self.infer(wav)[0][:, 1]

    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        return self.logits_and_hidden(wav)[0]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Bona-fide logit per clip (the official score), differentiable w.r.t. ``wav``."""
        return self.logits_and_hidden(wav)[0][:, 1]


_MIN_SAMPLES = 128 + 3 ** _N_POOLS  # 129-tap sinc bank, then seven max-pools of 3 along time: 2315
_EXTRA = {"min_tdcf_eval_set": "ASVspoof 2019 LA eval", "score": "logits[:, 1]", "min_samples": _MIN_SAMPLES,
          "release_commit": "a04c986", "paper": "Jung et al., AASIST, ICASSP 2022 (arXiv:2110.01200)"}
_COMMON = dict(
    architecture="aasist",
    licence="MIT",
    training_data="ASVspoof 2019 LA train",
    input_policy="official",
)

register_card(Card(
    name="aasist",
    config=AASIST_CONFIG,
    filename="aasist/AASIST.pth",
    url="https://github.com/clovaai/aasist/raw/main/models/weights/AASIST.pth",
    sha256="51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0",
    published_eer="0.83% (ASVspoof 2019 LA eval)",
    params=297866,
    description="AASIST, the official clovaai/aasist release (raw waveform, spectro-temporal graph attention)",
    extra={"min_tdcf": 0.0275, **_EXTRA},
    **_COMMON,
))

register_card(Card(
    name="aasist-l",
    config=AASIST_L_CONFIG,
    filename="aasist/AASIST-L.pth",
    url="https://github.com/clovaai/aasist/raw/main/models/weights/AASIST-L.pth",
    sha256="814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a",
    published_eer="0.99% (ASVspoof 2019 LA eval)",
    params=85306,
    description="AASIST-L, the light AASIST of the official clovaai/aasist release",
    extra={"min_tdcf": 0.0309, **_EXTRA},
    **_COMMON,
))
