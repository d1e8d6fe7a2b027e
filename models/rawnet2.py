"""RawNet2 anti-spoofing detector, as in the ASVspoof 2021 LA/DF baseline (Tak et al., ICASSP 2021).

Layer for layer the official ``LA/Baseline-RawNet2/model.py`` of asvspoof-challenge/2021 (the same
model is ``models/RawNet2Spoof.py`` in clovaai/aasist), with the official module names, so its
checkpoints load strictly:

- ``Sinc_conv``: 20 fixed band-pass sinc filters (Hamming-windowed, 1025 taps, cut-offs spaced
  evenly on the mel scale). Nothing is learnt and nothing is stored in the checkpoint; the bank is
  rebuilt here as a non-persistent buffer.
- ``|x|``, max-pool 3, ``first_bn``, SELU; ``block0..5``: residual blocks (max-pool 3 each), each
  followed by a filter-wise sigmoid gate ``x * y + y`` from ``avgpool`` -> ``fc_attention<i>``.
- ``bn_before_gru``, SELU, a 3-layer GRU (last time step), ``fc1_gru``, ``fc2_gru``, log-softmax.

Faithful quirks: each residual block computes no output from ``bn1`` (the official code evaluates
``bn1`` and then discards the result), so ``bn1`` is stored but unused; ``blocks`` and ``filts[3]``
of the config are ignored, as officially. The score is the bona-fide log-probability (column 1 of
the log-softmax), the value the official scripts write.

The GRU's cuDNN backward refuses eval mode; when input gradients are wanted on CUDA in eval mode,
the GRU runs with cuDNN disabled (same numbers, slower).

``forward``/``log_probs`` are this reference formulation (differentiable, used by attacks);
``score``/``infer`` on the CPU take the inference-only fast path of ``models/_rawnet2_fast.py``
(FFT sinc convolution, time-major blocks, an explicit GRU loop; equal within float32 rounding).
``load_detector(..., fast_inference=False)`` (``BENCH_FAST_INFERENCE=0`` in the CLI) or ``detector.fast_inference = False`` turns it off.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.base import ARCHITECTURES, Card, Detector, register_card, strip_data_parallel

log = logging.getLogger(__name__)

# model_config of RawNet2_baseline.conf (clovaai/aasist) = model_config_RawNet.yaml (ASVspoof 2021).
CONFIG: dict[str, Any] = {
    "nb_samp": 64600,
    "first_conv": 1024,
    "in_channels": 1,
    "filts": [20, [20, 20], [20, 128], [128, 128]],
    "blocks": [2, 4],
    "nb_fc_node": 1024,
    "gru_node": 1024,
    "nb_gru_layer": 3,
    "nb_classes": 2,
}
_REQUIRED = ("first_conv", "in_channels", "filts", "nb_fc_node", "gru_node", "nb_gru_layer", "nb_classes")
_N_POOLS = 7  # the max-pool after the sinc layer and one per residual block, each by 3


def sinc_bank(out_channels: int, kernel_size: int, sample_rate: int = 16000, nfft: int = 512) -> torch.Tensor:
    """The official fixed filter bank, ``[out_channels, 1, K]`` (K forced odd), float32.

    Band edges: ``out_channels + 1`` points evenly spaced in mel between the lowest and highest of
    the ``nfft // 2 + 1`` FFT bin frequencies; each filter is the difference of two ideal low-pass
    sincs, times a symmetric Hamming window.

    The arithmetic is the official ``SincConv.forward``'s, operation for operation: the band edges in
    float64 numpy, but the time axis ``hsupp`` a float32 torch tensor, so the sinc argument
    ``2 * f * hsupp / sr`` is computed in float32 and ``np.sinc`` evaluates it in float32; the
    difference of the two scaled sincs is then cast to float32 and windowed in float32. A float64
    formula differs from this bank by up to ~1e-5 per tap (scores by up to ~5e-5 on the official
    weights); with this bank the outputs equal the official code's.
    """
    import numpy as np

    k = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    f = int(sample_rate / 2) * np.linspace(0, 1, int(nfft / 2) + 1)
    fmel = 2595 * np.log10(1 + f / 700)
    edges = 700 * (10 ** (np.linspace(np.min(fmel), np.max(fmel), out_channels + 1) / 2595) - 1)
    hsupp = torch.arange(-(k - 1) / 2, (k - 1) / 2 + 1)          # float32, as officially
    window = torch.tensor(np.hamming(k), dtype=torch.float32)
    bands = []
    for i in range(out_channels):
        fmin, fmax = edges[i], edges[i + 1]
        high = (2 * fmax / sample_rate) * np.sinc((2 * fmax * hsupp / sample_rate).numpy())
        low = (2 * fmin / sample_rate) * np.sinc((2 * fmin * hsupp / sample_rate).numpy())
        bands.append(window * torch.tensor(high - low, dtype=torch.float32))
    return torch.stack(bands).unsqueeze(1)


class SincConv(nn.Module):
    """Fixed mel-spaced sinc band-pass convolution (no learnt parameters, nothing in the state dict)."""

    def __init__(self, out_channels: int, kernel_size: int, in_channels: int = 1, sample_rate: int = 16000):
        super().__init__()
        if in_channels != 1:
            raise ValueError(f"RawNet2 config: in_channels must be 1 for the sinc layer, got {in_channels}")
        bank = sinc_bank(out_channels, kernel_size, sample_rate)
        self.kernel_size = bank.shape[-1]
        self.register_buffer("band_pass", bank, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.band_pass.to(x.dtype))


class ResidualBlock(nn.Module):
    """Official ``Residual_block``: conv-BN-LeakyReLU(0.3)-conv, 1x1 conv shortcut, max-pool 3."""

    def __init__(self, nb_filts: list[int], first: bool = False):
        super().__init__()
        n_in, n_out = nb_filts
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm1d(n_in)  # computed then discarded by the official code: unused
        self.lrelu = nn.LeakyReLU(negative_slope=0.3)
        self.conv1 = nn.Conv1d(n_in, n_out, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm1d(n_out)
        self.conv2 = nn.Conv1d(n_out, n_out, kernel_size=3, padding=1)
        self.downsample = n_in != n_out
        if self.downsample:
            self.conv_downsample = nn.Conv1d(n_in, n_out, kernel_size=1)
        self.mp = nn.MaxPool1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.lrelu(self.bn2(self.conv1(x))))
        identity = self.conv_downsample(x) if self.downsample else x
        return self.mp(out + identity)


@ARCHITECTURES.register("rawnet2")
class RawNet2(Detector):
    """RawNet2 (ASVspoof 2021 baseline). ``forward(wav[B, T]) -> log P(bona fide) [B]``."""

    def __init__(self, config: Mapping[str, Any] = CONFIG):
        super().__init__()
        cfg = copy.deepcopy(dict(config))
        missing = [k for k in _REQUIRED if k not in cfg]
        if missing:
            raise ValueError(f"RawNet2 config lacks {', '.join(missing)}; expected the model_config of "
                             "RawNet2_baseline.conf (see models.rawnet2.CONFIG)")
        filts = cfg["filts"]
        self.config = cfg
        #: ``score``/``infer`` on the CPU take the fast path (BENCH_RAWNET2_FAST=0 turns it off by default)
        self.fast_inference = True   # the CPU inference path in score(); load_detector(fast_inference=False) or
                                     # BENCH_FAST_INFERENCE=0 (read by the application, not here) turn it off
        self.Sinc_conv = SincConv(filts[0], cfg["first_conv"], cfg["in_channels"], self.sample_rate)
        self.first_bn = nn.BatchNorm1d(filts[0])
        self.selu = nn.SELU()
        wide = [filts[2][1], filts[2][1]]
        self.block0 = nn.Sequential(ResidualBlock(list(filts[1]), first=True))
        self.block1 = nn.Sequential(ResidualBlock(list(filts[1])))
        self.block2 = nn.Sequential(ResidualBlock(list(filts[2])))
        self.block3 = nn.Sequential(ResidualBlock(wide))
        self.block4 = nn.Sequential(ResidualBlock(wide))
        self.block5 = nn.Sequential(ResidualBlock(wide))
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        widths = [filts[1][-1]] * 2 + [filts[2][-1]] * 4
        for i, w in enumerate(widths):
            setattr(self, f"fc_attention{i}", nn.Sequential(nn.Linear(w, w)))
        self.bn_before_gru = nn.BatchNorm1d(filts[2][-1])
        self.gru = nn.GRU(input_size=filts[2][-1], hidden_size=cfg["gru_node"],
                          num_layers=cfg["nb_gru_layer"], batch_first=True)
        self.fc1_gru = nn.Linear(cfg["gru_node"], cfg["nb_fc_node"])
        self.fc2_gru = nn.Linear(cfg["nb_fc_node"], cfg["nb_classes"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RawNet2":
        """Accepts the ``model_config`` mapping, or a whole official ``.conf`` dict holding one."""
        if "model_config" in config and isinstance(config["model_config"], Mapping):
            config = config["model_config"]
        return cls(config)

    @classmethod
    def remap_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official key names are ours; only a DataParallel ``module.`` prefix is removed."""
        state = strip_data_parallel(state)
        return state

    @property
    def min_samples(self) -> int:
        """The shortest input that leaves at least one frame for the GRU."""
        return self.Sinc_conv.kernel_size - 1 + 3 ** _N_POOLS

    def _gru(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.is_grad_enabled() and not self.training:
            # cuDNN's RNN backward refuses eval mode: run the GRU without cuDNN (same result).
            with torch.backends.cudnn.flags(enabled=False):
                return self.gru(x)[0]
        if x.is_cuda:
            self.gru.flatten_parameters()
        return self.gru(x)[0]

    def _check_input(self, wav: torch.Tensor) -> None:
        if wav.dim() != 2:
            raise ValueError(f"RawNet2 expects waveforms shaped [batch, samples], got {tuple(wav.shape)}")
        if wav.shape[1] < self.min_samples:
            raise ValueError(f"RawNet2 needs at least {self.min_samples} samples "
                             f"({self.min_samples / self.sample_rate:.2f} s at {self.sample_rate} Hz), "
                             f"got {wav.shape[1]}; pad the input (the official policy tiles to {self.nb_samp})")

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` waveforms -> ``[B, time, filters]``: what the GRU reads (reference formulation)."""
        self._check_input(wav)
        p = self.fc2_gru.weight
        x = wav.to(device=p.device, dtype=p.dtype).unsqueeze(1)
        x = self.Sinc_conv(x)
        x = F.max_pool1d(torch.abs(x), 3)
        x = self.selu(self.first_bn(x))
        for i in range(6):
            xb = getattr(self, f"block{i}")(x)
            y = getattr(self, f"fc_attention{i}")(self.avgpool(xb).flatten(1))
            y = torch.sigmoid(y).unsqueeze(-1)
            x = xb * y + y
        return self.selu(self.bn_before_gru(x)).transpose(1, 2)  # [B, time, filters]

    def log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` waveforms -> ``[B, nb_classes]`` log-probabilities (column 1 = bona fide).
        The reference formulation: differentiable, and what ``forward`` (attacks, training) uses."""
        x = self._gru(self.features(wav))[:, -1, :]
        logits = self.fc2_gru(self.fc1_gru(x))
        return F.log_softmax(logits, dim=1)

    @torch.inference_mode()
    def infer(self, wav: torch.Tensor) -> torch.Tensor:
        """``log_probs`` without autograd; in eval mode on a float32 CPU model by the fast path
        (models/_rawnet2_fast.py) unless ``fast_inference`` is off. Call ``eval()`` first (``score`` does)."""
        self._check_input(wav)
        p = self.fc2_gru.weight
        if self.fast_inference and not self.training and p.device.type == "cpu" and p.dtype == torch.float32 \
                and wav.shape[0] > 0:
            from models import _rawnet2_fast

            return _rawnet2_fast.log_probs(self, wav.to(p.device))
        return self.log_probs(wav)

    @torch.inference_mode()
    def score(self, wav: torch.Tensor) -> torch.Tensor:
        """Bona-fide log-probability per clip, without a graph, by ``infer`` (in eval mode)."""
        self.eval()
        return self.infer(wav)[:, 1]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.log_probs(wav)[:, 1]


def _n_params(config: Mapping[str, Any]) -> int:
    """Parameter count without building the model (checked against a built one in the tests)."""
    f = config["filts"]
    g, fc, layers, ncls = config["gru_node"], config["nb_fc_node"], config["nb_gru_layer"], config["nb_classes"]

    def block(n_in: int, n_out: int, first: bool) -> int:
        n = (0 if first else 2 * n_in) + n_out * n_in * 3 + n_out + 2 * n_out + n_out * n_out * 3 + n_out
        return n + (n_out * n_in + n_out if n_in != n_out else 0)

    wide = f[2][1]
    total = 2 * f[0] + block(*f[1], True) + block(*f[1], False) + block(*f[2], False) + 3 * block(wide, wide, False)
    total += 2 * (f[1][-1] ** 2 + f[1][-1]) + 4 * (f[2][-1] ** 2 + f[2][-1]) + 2 * f[2][-1]
    gru_in = f[2][-1]
    for _ in range(layers):
        total += 3 * g * (gru_in + g) + 6 * g
        gru_in = g
    return total + g * fc + fc + fc * ncls + ncls


# The ASVspoof 2021 organisers' pre-trained model (linked from asvspoof-challenge/2021 LA|DF/Baseline-RawNet2/
# README.md): a zip with no published digest, trusted on first use (foundation/tofu.py). The README runs it as
# ``--model_path pre_trained_DF_model.pth``; if the zip names it otherwise, its one .pth is taken.
DF_ZIP_URL = "https://www.asvspoof.org/asvspoof2021/pre_trained_DF_RawNet2.zip"

register_card(Card(
    name="rawnet2",
    architecture="rawnet2",
    config=CONFIG,
    filename="rawnet2/pre_trained_DF_model.pth",
    url=DF_ZIP_URL,
    sha256=None,
    licence="MIT (asvspoof-challenge/2021 baseline code); the pre-trained DF model states no licence of its own",
    training_data="ASVspoof 2019 LA train (the organisers' DF-track model; mel-scaled sinc filters)",
    published_eer="22.38% EER (ASVspoof 2021 DF eval, baseline B04 RawNet2; ASVspoof 2021 summary paper, "
                  "arXiv:2210.02437); 9.50% EER, min t-DCF 0.4257 on LA eval for the LA-track baseline",
    params=_n_params(CONFIG),
    description=("RawNet2 end-to-end baseline of ASVspoof 2021 (fixed mel-scaled sinc front end, "
                 "residual blocks with filter-wise gates, GRU). Weights: the DF-track model the ASVspoof 2021 "
                 "organisers published as pre_trained_DF_RawNet2.zip, downloaded and unzipped into the cache "
                 "on first use (`bench weights rawnet2`); no digest is published, so the first download's "
                 "sha256 is recorded and a different file later is refused (`bench weights rawnet2 "
                 "--accept-new` trusts it). Or train your own with the official recipe and pass it with "
                 "--checkpoint PATH. Score: log-probability of bona fide."),
    extra={"score": "log_softmax[:, 1]", "min_samples": 1024 + 3 ** _N_POOLS,
           "reference": "asvspoof-challenge/2021 LA/Baseline-RawNet2/model.py",
           "archive": "zip", "archive_member": "pre_trained_DF_model.pth",
           "weights_readme": "https://github.com/asvspoof-challenge/2021/blob/main/LA/Baseline-RawNet2/README.md"},
))
