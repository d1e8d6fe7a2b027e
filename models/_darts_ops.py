"""The 1-D candidate operations of Raw PC-DARTS and the cells' input preprocessing.

Facts from eurecom-asp/raw-pc-darts-anti-spoofing (MIT), ``func/operations1d.py``: every convolution
is preceded by LeakyReLU(0.3) and has no bias; BatchNorm1d with PyTorch's defaults (eps 1e-5,
momentum 0.1), affine in the derived network's operations and not affine in the preprocessing and in
the search network. Module names are the release's (``op.1.weight``, ``conv_1``, ``bn``...), so the
official ``epoch_N.pth`` state dicts load without renaming.

Operations (``C`` channels in and out, time length kept at stride 1; the DARTS cells here only ever use
stride 1, the reduction happening in the cell's output pooling):

- ``none``: zeros (``x[:, :, ::stride] * 0``);
- ``max_pool_3`` / ``avg_pool_3``: kernel 3, padding 1 (the average excludes the padding);
- ``skip_connect``: identity, or :class:`FactorizedReduce` at stride 2;
- ``std_conv_K`` (K = 3, 5, 7): LeakyReLU, conv K (padding K // 2), BN;
- ``dil_conv_K`` (K = 3, 5, 7): LeakyReLU, depthwise conv K with dilation 2 (padding K - 1), pointwise
  conv, BN.

Preprocessing of a cell's two inputs: ``ReLUConvBN_half`` (LeakyReLU, 1x1 conv, max-pool 2, BN) for the
input from two cells back, which has twice the frames; :class:`FactorizedReduce` instead after a
reduction cell; ``ReLUConvBN_same`` (LeakyReLU, 1x1 conv, BN) for the previous cell's output.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

SLOPE = 0.3  # LeakyReLU negative slope everywhere in the release


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=SLOPE)


class Zero(nn.Module):
    """``none``: zeros shaped like the (strided) input, so the graph stays connected."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0) if self.stride == 1 else x[:, :, ::self.stride].mul(0.0)


class Identity(nn.Module):
    """``skip_connect`` at stride 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class StdConv(nn.Module):
    """``std_conv_K``: LeakyReLU, conv, BN (official ``StdConv1d``; its BN is sized by ``C_in``)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(_lrelu(), nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=padding,
                                                    bias=False),
                                nn.BatchNorm1d(c_in, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """``dil_conv_K``: LeakyReLU, depthwise dilated conv, pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            _lrelu(),
            nn.Conv1d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv1d(c_in, c_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm1d(c_out, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConvBNHalf(nn.Module):
    """Preprocessing of the input from two cells back: LeakyReLU, 1x1 conv, max-pool 2, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = False):
        super().__init__()
        self.op = nn.Sequential(_lrelu(), nn.Conv1d(c_in, c_out, 1, stride=1, padding=0, bias=False),
                                nn.MaxPool1d(2), nn.BatchNorm1d(c_out, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConvBNSame(nn.Module):
    """Preprocessing of the previous cell's output: LeakyReLU, 1x1 conv, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = False):
        super().__init__()
        self.op = nn.Sequential(_lrelu(), nn.Conv1d(c_in, c_out, 1, stride=1, padding=0, bias=False),
                                nn.BatchNorm1d(c_out, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halves the frames: LeakyReLU, two 1x1 convs to ``C_out / 2`` each (both on the same input, as in
    the release), concatenated, max-pool 2, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = _lrelu()
        self.conv_1 = nn.Conv1d(c_in, c_out // 2, 1, stride=1, padding=0, bias=False)
        self.conv_2 = nn.Conv1d(c_in, c_out // 2, 1, stride=1, padding=0, bias=False)
        self.pl = nn.MaxPool1d(2)
        self.bn = nn.BatchNorm1d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(self.pl(torch.cat([self.conv_1(x), self.conv_2(x)], dim=1)))


OpFactory = Callable[[int, int, bool], nn.Module]

#: name -> factory(C, stride, affine), the release's ``OPS``
OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3": lambda c, stride, affine: nn.MaxPool1d(3, stride=stride, padding=1),
    "avg_pool_3": lambda c, stride, affine: nn.AvgPool1d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, affine: Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine),
    "std_conv_3": lambda c, stride, affine: StdConv(c, c, 3, stride, 1, affine=affine),
    "std_conv_5": lambda c, stride, affine: StdConv(c, c, 5, stride, 2, affine=affine),
    "std_conv_7": lambda c, stride, affine: StdConv(c, c, 7, stride, 3, affine=affine),
    "dil_conv_3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine=affine),
    "dil_conv_5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine=affine),
    "dil_conv_7": lambda c, stride, affine: DilConv(c, c, 7, stride, 6, 2, affine=affine),
}

#: the search space of the release's ``utils/genotypes.py`` (the two 7-tap convolutions commented out there)
PRIMITIVES: tuple[str, ...] = ("none", "max_pool_3", "avg_pool_3", "skip_connect", "std_conv_3", "std_conv_5",
                               "dil_conv_3", "dil_conv_5")


def preprocess_pair(c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool) -> tuple[nn.Module, nn.Module]:
    """The two input preprocessors of a cell (``preprocess0``, ``preprocess1``); affine-free BN as released."""
    p0 = FactorizedReduce(c_prev_prev, c, affine=False) if reduction_prev else ReLUConvBNHalf(c_prev_prev, c)
    return p0, ReLUConvBNSame(c_prev, c)


def align(s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops the two preprocessed cell inputs to a common number of frames.

    They match whenever the release runs (an even number of frames after the front end's max-pool); an odd
    count there gives the stride-2 stem one frame more than ``preprocess0``'s pooling, where the release
    raises a size error. The extra frame is the last one, so cropping keeps every other value unchanged."""
    n = min(s0.shape[-1], s1.shape[-1])
    return s0[..., :n], s1[..., :n]
