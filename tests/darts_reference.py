"""A minimal transcription of the Raw PC-DARTS release, the reference the DARTS tests compare against.

Transcribed from eurecom-asp/raw-pc-darts-anti-spoofing (commit 8b796aa, MIT licence, Copyright (c) 2021
Audio Security and Privacy Group @ EURECOM): ``func/operations1d.py``, ``func/sinc.py`` (``SincConv_fast``),
``func/p2sgrad.py`` (``P2SActivationLayer``), ``models/model.py`` (``Cell``, ``Network``) and
``models/model_search.py`` (``MixedOp``, ``Cell``, ``Network.genotype``'s ``_parse``). Kept: the module
structure (so the state-dict keys are the release's), the arithmetic and the forward passes. Changed only
what cannot run here: prints, ``.cuda()``, the global-random frequency mask and drop-path (the tests run the
release's eval path, where neither applies), and argparse ``args`` (a namespace).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = {
    'none': lambda C, stride, affine: Zero(stride),
    'max_pool_3': lambda C, stride, affine: nn.MaxPool1d(3, stride=stride, padding=1),
    'avg_pool_3': lambda C, stride, affine: nn.AvgPool1d(3, stride=stride, padding=1, count_include_pad=False),
    'skip_connect': lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    'std_conv_3': lambda C, stride, affine: StdConv1d(C, C, 3, stride, 1, affine=affine),
    'std_conv_5': lambda C, stride, affine: StdConv1d(C, C, 5, stride, 2, affine=affine),
    'std_conv_7': lambda C, stride, affine: StdConv1d(C, C, 7, stride, 3, affine=affine),
    'dil_conv_3': lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    'dil_conv_5': lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
    'dil_conv_7': lambda C, stride, affine: DilConv(C, C, 7, stride, 6, 2, affine=affine),
}
PRIMITIVES = ['none', 'max_pool_3', 'avg_pool_3', 'skip_connect', 'std_conv_3', 'std_conv_5', 'dil_conv_3',
              'dil_conv_5']


class ReLUConvBN_half(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(nn.LeakyReLU(negative_slope=0.3),
                                nn.Conv1d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
                                nn.MaxPool1d(2), nn.BatchNorm1d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class ReLUConvBN_same(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(nn.LeakyReLU(negative_slope=0.3),
                                nn.Conv1d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
                                nn.BatchNorm1d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.LeakyReLU(negative_slope=0.3),
            nn.Conv1d(C_in, C_in, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv1d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm1d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class StdConv1d(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(nn.LeakyReLU(negative_slope=0.3),
                                nn.Conv1d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
                                nn.BatchNorm1d(C_in, affine=affine))

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.)
        return x[:, :, ::self.stride].mul(0.)


class FactorizedReduce(nn.Module):
    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        self.relu = nn.LeakyReLU(negative_slope=0.3)
        self.conv_1 = nn.Conv1d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.conv_2 = nn.Conv1d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.pl = nn.MaxPool1d(2)
        self.bn = nn.BatchNorm1d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x)], dim=1)
        return self.bn(self.pl(out))


class SincConv_fast(nn.Module):
    @staticmethod
    def to_mel(hz):
        return 2595 * np.log10(1 + hz / 700)

    @staticmethod
    def to_hz(mel):
        return 700 * (10 ** (mel / 2595) - 1)

    def __init__(self, out_channels, kernel_size, sample_rate=16000, stride=1, padding=2, min_low_hz=50,
                 min_band_hz=50, freq_scale='mel', is_trainable=False):
        super().__init__()
        self.out_channels = out_channels + 4
        self.kernel_size = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
        self.stride, self.padding = stride, padding
        self.sample_rate, self.min_low_hz, self.min_band_hz = sample_rate, min_low_hz, min_band_hz
        low_hz = 0
        high_hz = self.sample_rate / 2 - (self.min_low_hz + self.min_band_hz)
        if freq_scale == 'mel':
            mel = np.linspace(self.to_mel(low_hz), self.to_mel(high_hz), self.out_channels + 1)
            hz = self.to_hz(mel)
        elif freq_scale == 'lem':
            mel = np.linspace(self.to_mel(low_hz), self.to_mel(high_hz), self.out_channels + 1)
            hz = self.to_hz(mel)
            hz = np.abs(np.flip(hz) - 1)
        elif freq_scale == 'linear':
            hz = np.linspace(low_hz, high_hz, self.out_channels + 1)
        self.low_hz_ = nn.Parameter(torch.Tensor(hz[:-1]).view(-1, 1), requires_grad=is_trainable)
        self.band_hz_ = nn.Parameter(torch.Tensor(np.diff(hz)).view(-1, 1), requires_grad=is_trainable)
        n_lin = torch.linspace(0, (self.kernel_size / 2) - 1, steps=int((self.kernel_size / 2)))
        self.window_ = 0.54 - 0.46 * torch.cos(2 * math.pi * n_lin / self.kernel_size)
        n = (self.kernel_size - 1) / 2.0
        self.n_ = 2 * math.pi * torch.arange(-n, 0).view(1, -1) / self.sample_rate

    def forward(self, waveforms, is_training=False):
        low = self.min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(low + self.min_band_hz + torch.abs(self.band_hz_), self.min_low_hz, self.sample_rate / 2)
        band = (high - low)[:, 0]
        f_times_t_low = torch.matmul(low, self.n_)
        f_times_t_high = torch.matmul(high, self.n_)
        band_pass_left = ((torch.sin(f_times_t_high) - torch.sin(f_times_t_low)) / (self.n_ / 2)) * self.window_
        band_pass_center = 2 * band.view(-1, 1)
        band_pass_right = torch.flip(band_pass_left, dims=[1])
        band_pass = torch.cat([band_pass_left, band_pass_center, band_pass_right], dim=1)
        band_pass = band_pass / (2 * band[:, None])
        self.filters = (band_pass).view(self.out_channels, 1, self.kernel_size)
        self.filters = self.filters[:self.out_channels - 4, :, :]
        return F.conv1d(waveforms, self.filters, stride=self.stride, padding=self.padding, dilation=1, bias=None,
                        groups=1)


class P2SActivationLayer(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.Tensor(in_dim, out_dim))
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, input_feat):
        w = self.weight.renorm(2, 1, 1e-5).mul(1e5)
        x_modulus = input_feat.pow(2).sum(1).pow(0.5)
        inner_wx = input_feat.mm(w)
        cos_theta = inner_wx / x_modulus.view(-1, 1)
        return cos_theta.clamp(-1, 1)


class Cell(nn.Module):
    def __init__(self, genotype, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN_half(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN_same(C_prev, C, 1, 1, 0, affine=False)
        if reduction:
            op_names, indices = zip(*genotype.reduce)
            concat = genotype.reduce_concat
        else:
            op_names, indices = zip(*genotype.normal)
            concat = genotype.normal_concat
        self._steps = len(op_names) // 2
        self._concat = concat
        self.multiplier = len(concat)
        self._ops = nn.ModuleList()
        for name, index in zip(op_names, indices):
            self._ops += [OPS[name](C, 1, True)]
        self._indices = indices
        self.pooling_layer = nn.MaxPool1d(2)

    def forward(self, s0, s1, drop_prob):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        for i in range(self._steps):
            h1 = self._ops[2 * i](states[self._indices[2 * i]])
            h2 = self._ops[2 * i + 1](states[self._indices[2 * i + 1]])
            states += [h1 + h2]
        out = torch.cat([states[i] for i in self._concat], dim=1)
        return self.pooling_layer(out)


class Network(nn.Module):
    """models/model.py ``Network`` (sinc front end); ``forward`` returns what its eval path feeds
    ``forward_classifier`` (the embeddings), plus the cell output for feature comparisons."""

    def __init__(self, C, layers, args, num_classes, genotype):
        super().__init__()
        self.sinc = SincConv_fast(C, kernel_size=args.sinc_kernel, freq_scale=args.sinc_scale,
                                  is_trainable=args.is_trainable)
        self.mp = nn.MaxPool1d(3)
        self.bn = nn.BatchNorm1d(C)
        self.lrelu = nn.LeakyReLU(negative_slope=0.3)
        self.stem = nn.Sequential(nn.Conv1d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(C),
                                  nn.LeakyReLU(negative_slope=0.3))
        C_prev_prev, C_prev, C_curr = C, C, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            if i in [layers // 3, 2 * layers // 3]:
                C_curr *= 2
                reduction = True
            else:
                reduction = False
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells += [cell]
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        self.gru = nn.GRU(input_size=C_prev, hidden_size=args.gru_hsize, num_layers=args.gru_layers,
                          batch_first=True)
        self.fc_gru = nn.Linear(args.gru_hsize, args.gru_hsize)
        self.l_layer = P2SActivationLayer(args.gru_hsize, out_dim=2)

    def forward(self, input):
        input = input.unsqueeze(1)
        s0 = self.sinc(input, self.training)
        s0 = self.lrelu(self.bn(self.mp(s0)))
        s1 = self.stem(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, 0.0)
        v, _ = self.gru(s1.permute(0, 2, 1))
        return self.fc_gru(v[:, -1, :]), s1

    def forward_classifier(self, embeddings):
        return self.l_layer(embeddings)


def parse(weights, weights2, steps=4):
    """models/model_search.py ``Network.genotype._parse`` (numpy arrays in, list of (op, input) out)."""
    gene = []
    n = 2
    start = 0
    for i in range(steps):
        end = start + n
        W = weights[start:end].copy()
        W2 = weights2[start:end].copy()
        for j in range(n):
            W[j, :] = W[j, :] * W2[j]
        edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x]))
                                                         if k != PRIMITIVES.index('none')))[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != PRIMITIVES.index('none'):
                    if k_best is None or W[j][k] > W[j][k_best]:
                        k_best = k
            gene.append((PRIMITIVES[k_best], j))
        start = end
        n += 1
    return gene


def channel_shuffle(x, groups):
    batchsize, num_channels, length = x.data.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, length)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, length)


class MixedOp(nn.Module):
    """models/model_search.py ``MixedOp`` (partial channels: half)."""

    def __init__(self, C, stride):
        super().__init__()
        self._ops = nn.ModuleList()
        self.mp = nn.MaxPool1d(2, ceil_mode=True)
        for primitive in PRIMITIVES:
            op = OPS[primitive](C // 2, stride, False)
            if 'pool' in primitive:
                op = nn.Sequential(op, nn.BatchNorm1d(C // 2, affine=False))
            self._ops.append(op)

    def forward(self, x, weights):
        dim_2 = x.shape[1]
        xtemp = x[:, :dim_2 // 2, :]
        xtemp2 = x[:, dim_2 // 2:, :]
        temp1 = sum(w.to(xtemp.device) * op(xtemp) for w, op in zip(weights, self._ops))
        if temp1.shape[2] == x.shape[2]:
            ans = torch.cat([temp1, xtemp2], dim=1)
        else:
            ans = torch.cat([temp1, self.mp(xtemp2)], dim=1)
        return channel_shuffle(ans, 2)


class SearchCell(nn.Module):
    """models/model_search.py ``Cell``."""

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN_half(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN_same(C_prev, C, 1, 1, 0, affine=False)
        self._steps = steps
        self._multiplier = multiplier
        self.pooling_layer = nn.MaxPool1d(2)
        self._ops = nn.ModuleList()
        for i in range(self._steps):
            for j in range(2 + i):
                self._ops.append(MixedOp(C, 1))

    def forward(self, s0, s1, weights, weights2):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        offset = 0
        for i in range(self._steps):
            s = sum(weights2[offset + j] * self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        out = torch.cat(states[-self._multiplier:], dim=1)
        return self.pooling_layer(out)


def edge_weights(betas, steps=4):
    """models/model_search.py ``Network.forward``'s ``weights2`` (softmax of beta per node)."""
    n = 3
    start = 2
    weights2 = F.softmax(betas[0:2], dim=-1)
    for i in range(steps - 1):
        end = start + n
        tw2 = F.softmax(betas[start:end], dim=-1)
        start = end
        n += 1
        weights2 = torch.cat([weights2, tw2], dim=0)
    return weights2
