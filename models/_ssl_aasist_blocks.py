"""Building blocks of the AASIST-style back end of the SSL detector (Tak et al., Odyssey 2022).

Same computations and parameter names as ``model.py`` of TakHemlata/SSL_Anti-spoofing, so that the
release's checkpoints load strictly: ``GraphAttentionLayer``, ``HtrgGraphAttentionLayer``,
``GraphPool`` and the 2-D ``Residual_block`` (no max-pool, unlike AASIST's). Written without in-place
operations so that input gradients are always available. ``wav2vec2_hidden_time_major`` is an
inference-only rearrangement of a transformers front end, used by ``SSLAASIST.infer``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _att_weight(out_dim: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(out_dim, 1))
    nn.init.xavier_normal_(p)
    return p


def _pairwise(x: torch.Tensor) -> torch.Tensor:
    """``[B, N, D] -> [B, N, N, D]``: the element-wise product of every pair of nodes."""
    return x.unsqueeze(2) * x.unsqueeze(1)


def _bn_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the feature axis of ``[B, N, D]`` node features."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class GraphAttentionLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _att_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, in] -> [B, N, out]
        x = self.input_drop(x)
        att = torch.tanh(self.att_proj(_pairwise(x))) @ self.att_weight  # [B, N, N, 1]
        att = F.softmax(att / self.temp, dim=-2).squeeze(-1)
        x = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return self.act(_bn_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention over two node types plus a master node (HS-GAL)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _att_weight(out_dim)
        self.att_weight22 = _att_weight(out_dim)
        self.att_weight12 = _att_weight(out_dim)
        self.att_weightM = _att_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor | None = None):
        n1, n2 = x1.shape[1], x2.shape[1]
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        if master is None:
            master = x.mean(dim=1, keepdim=True)
        x = self.input_drop(x)
        # node attention: a different weight vector per block of the (type1, type2) adjacency
        a = torch.tanh(self.att_proj(_pairwise(x)))  # [B, N, N, out]
        top = torch.cat([a[:, :n1, :n1] @ self.att_weight11, a[:, :n1, n1:] @ self.att_weight12], dim=2)
        bottom = torch.cat([a[:, n1:, :n1] @ self.att_weight12, a[:, n1:, n1:] @ self.att_weight22], dim=2)
        att = F.softmax(torch.cat([top, bottom], dim=1) / self.temp, dim=-2).squeeze(-1)
        # master node: attends over all nodes (the master may broadcast from shape [1, 1, D])
        am = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # [B, N, 1]
        am = F.softmax(am / self.temp, dim=-2)
        master = self.proj_with_attM(am.transpose(1, 2) @ x) + self.proj_without_attM(master)
        x = self.proj_with_att(att @ x) + self.proj_without_att(x)
        x = self.act(_bn_nodes(self.bn, x))
        return x[:, :n1], x[:, n1:n1 + n2], master


class GraphPool(nn.Module):
    """Keeps the top ``k`` fraction of nodes by a learnt sigmoid score (scaled by that score)."""

    def __init__(self, k: float, in_dim: int, p: float):
        super().__init__()
        self.k = k
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=p) if p > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.proj(self.drop(h)))  # [B, N, 1]
        n_keep = max(int(h.shape[1] * self.k), 1)
        idx = torch.topk(scores, n_keep, dim=1).indices.expand(-1, -1, h.shape[-1])
        return torch.gather(h * scores, 1, idx)


class ResidualBlock2d(nn.Module):
    """``Residual_block`` of the SSL back end: (2, 3) convolutions, no pooling; ``bn1`` is unused."""

    def __init__(self, nb_filts: list[int], first: bool = False):
        super().__init__()
        n_in, n_out = nb_filts
        if not first:
            self.bn1 = nn.BatchNorm2d(n_in)  # the official code computes it and discards the result
        self.conv1 = nn.Conv2d(n_in, n_out, kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU()
        self.bn2 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, kernel_size=(2, 3), padding=(0, 1))
        self.downsample = n_in != n_out
        if self.downsample:
            self.conv_downsample = nn.Conv2d(n_in, n_out, kernel_size=(1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.selu(self.bn2(self.conv1(x))))
        return out + (self.conv_downsample(x) if self.downsample else x)


def wav2vec2_hidden_time_major(model: nn.Module, wav: torch.Tensor) -> torch.Tensor | None:
    """``model(wav).last_hidden_state`` of a transformers ``Wav2Vec2Model`` with a layer-norm feature
    encoder (XLS-R), in eval mode without masking, for inference: the encoder's convolutions run
    time-major (channels-last), so each LayerNorm over channels reads its input in place instead of
    a transposed copy, and each convolution reads the previous activation without another. ``None``
    for any other front end (the caller runs it as it is)."""
    layers = list(getattr(getattr(model, "feature_extractor", None), "conv_layers", []))
    if (type(model).__name__ != "Wav2Vec2Model" or model.training or not layers
            or any(type(layer).__name__ != "Wav2Vec2LayerNormConvLayer" for layer in layers)):
        return None
    x = wav[:, None, None, :].contiguous(memory_format=torch.channels_last)  # (B, 1, 1, T)
    for layer in layers:
        conv = layer.conv
        w = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, w, conv.bias, stride=(1, conv.stride[0])).contiguous(memory_format=torch.channels_last)
        y = layer.activation(layer.layer_norm(y[:, :, 0].transpose(1, 2)))  # (B, T', C), dense
        x = y.transpose(1, 2).unsqueeze(2)                                   # (B, C, 1, T') channels-last
    hidden, _ = model.feature_projection(y)
    hidden = model.encoder(hidden).last_hidden_state
    if getattr(model, "adapter", None) is not None:
        hidden = model.adapter(hidden)
    return hidden
