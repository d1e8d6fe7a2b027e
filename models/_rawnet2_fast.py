"""The inference-only fast path of RawNet2 (eval mode, no autograd): the same function as
``RawNet2.log_probs``, reorganised for a CPU. Used by ``RawNet2.score``/``infer``.

What differs from the reference formulation (all exact up to float32 rounding):

* the 1025-tap sinc convolution (62% of the model's FLOPs) is an FFT convolution by overlap-save
  (blocks of ``FFT_SIZE`` samples; the filters' spectra are kept on the sinc module), with the
  |.| and the max-pool on the inverse FFT's output in place: about a tenth of the arithmetic, and
  closer to a float64 direct convolution than torch's float32 one (2e-7 against 2e-6 here);
* the residual blocks run time-major (channels-last (B, C, 1, time)): oneDNN's kernels for the
  20-filter blocks ran 2-3x faster so than on (B, C, time); every block's eval-mode ``bn2`` is
  folded into ``conv1``, and LeakyReLU, the residual sum and the gate ``x * y + y`` run in place;
* the GRU runs as an explicit loop: the input projection of a whole layer is one matrix product
  over every time step, and each step's hidden-state product goes to oneDNN for a few rows
  (MKL's small-row GEMM reaches a third of the machine's throughput there; oneDNN about 80%);
* the batch is split into ``torch.get_num_threads()`` groups that run the whole network
  concurrently in Python threads, each op on one intra-op thread: on a shared machine an op
  waiting at a barrier for a second thread can stall for a whole scheduler slice. A single clip
  runs on one thread (2-7x faster than on two under a load of 5 on 2 cores, here).

Gradients never flow here: ``RawNet2.forward`` keeps the reference formulation for attacks.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F

from models._aasist_fast import intra_op_threads, run_slices

# The model arguments are typed as torch.nn.Module (an AASIST / RawNet2 and their blocks): importing the model here would tie
# the reference and its fast path into an import circle (the reference imports this file lazily).

_CL = torch.channels_last
#: overlap-save block length (samples): 8192 was the fastest of 2048..65536 here (cache-sized blocks)
FFT_SIZE = 8192
#: up to this many rows per hidden-state product, oneDNN's linear beats MKL's GEMM (measured here)
ONEDNN_MAX_ROWS = 12

log = logging.getLogger(__name__)
_ONEDNN_LINEAR: list = []  # [op or None], probed once


def _spectra(bank: torch.Tensor, n_fft: int, cache: dict | None) -> torch.Tensor:
    """conj(rfft(filters, n_fft)), ``[C, n_fft // 2 + 1]``, kept in ``cache`` (one per bank's owner)."""
    key = (n_fft, bank.dtype, bank.device, bank.data_ptr(), bank._version)
    got = None if cache is None else cache.get(key)
    if got is None:
        got = torch.fft.rfft(bank[:, 0], n_fft).conj().resolve_conj()
        if cache is not None:
            cache.clear()  # one entry: the bank and the size in use
            cache[key] = got
    return got


def sinc_pooled(bank: torch.Tensor, wav: torch.Tensor, n_fft: int = FFT_SIZE,
                cache: dict | None = None) -> torch.Tensor:
    """``F.max_pool1d(F.conv1d(wav[:, None], bank).abs(), 3)``, ``[B, C, (T - K + 1) // 3]`` with its
    memory time-major ((B, time, C)), the valid cross-correlation computed by overlap-save FFT
    convolution. Each block's new outputs are a multiple of 3, so no pooling window straddles two
    blocks and the pool runs on the inverse FFT's output in place (the windows past a block's new
    outputs are computed and dropped)."""
    bsz, t = wav.shape
    n_ch, k = bank.shape[0], bank.shape[-1]
    n_fft = max(n_fft, 1 << (2 * k - 1).bit_length())     # at least half of each block is new output
    hop = (n_fft - k + 1) // 3 * 3
    n_out = (t - k + 1) // 3
    n_blocks = -(-(3 * n_out) // hop)
    x = F.pad(wav, (0, max(0, (n_blocks - 1) * hop + n_fft - t)))
    frames = x.unfold(1, n_fft, hop)                                   # [B, blocks, n_fft]
    spec = torch.fft.rfft(frames, n_fft).unsqueeze(1) * _spectra(bank, n_fft, cache)[None, :, None]
    y = torch.fft.irfft(spec, n_fft).view(-1, 1, n_fft)               # [B * C * blocks, 1, n_fft]
    pooled = F.max_pool1d(y.abs_(), 3).view(bsz, n_ch, n_blocks, n_fft // 3)
    # gathered block by block straight into the time-major layout the residual blocks read
    out = wav.new_empty(bsz, n_out, n_ch)
    step = hop // 3
    for j in range(n_blocks):
        s, e = j * step, min((j + 1) * step, n_out)
        out[:, s:e] = pooled[:, :, j, :e - s].transpose(1, 2)
    return out.transpose(1, 2)                                         # (B, C, time), time-major


def _cl(w: torch.Tensor) -> torch.Tensor:
    """A (C_out, C_in, K) kernel as a channels-last (C_out, C_in, 1, K) 2-D kernel."""
    return w.unsqueeze(2).contiguous(memory_format=_CL)


def _folded_conv1(block: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1 followed by eval-mode bn2, as one convolution."""
    bn, conv = block.bn2, block.conv1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return _cl(conv.weight * scale.view(-1, 1, 1)), (conv.bias - bn.running_mean) * scale + bn.bias


def residual_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One residual block on a time-major activation (B, C, 1, time), channels-last."""
    w1, b1 = _folded_conv1(block)
    out = F.leaky_relu(F.conv2d(x, w1, b1, padding=(0, 1)), block.lrelu.negative_slope, inplace=True)
    out = F.conv2d(out, _cl(block.conv2.weight), block.conv2.bias, padding=(0, 1))
    if block.downsample:
        out += F.conv2d(x, _cl(block.conv_downsample.weight), block.conv_downsample.bias)
    else:
        out += x
    return F.max_pool2d(out, (1, 3))


def _bn(bn: torch.nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode BatchNorm over dim 1 of a (B, C, 1, time) tensor."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _onednn_linear():
    """torch's oneDNN linear (``torch.ops.mkldnn._linear_pointwise``) if it is there and agrees with
    ``F.linear`` on a probe; else None (then MKL's GEMM serves every product)."""
    if not _ONEDNN_LINEAR:
        op = None
        try:
            if torch.backends.mkldnn.is_available():
                cand = torch.ops.mkldnn._linear_pointwise
                w = torch.linspace(-1, 1, 48 * 32).view(48, 32).cos()
                h, b = w[:3].sin(), w[:, 0].contiguous()
                if torch.allclose(cand(h, w, b, "none", [], ""), F.linear(h, w, b), atol=1e-5):
                    op = cand
        except (AttributeError, RuntimeError) as e:
            log.debug("oneDNN linear unavailable (%s): the GRU uses F.linear", e)
        _ONEDNN_LINEAR.append(op)
    return _ONEDNN_LINEAR[0]


def _hh_linear(rows: int) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The hidden-state product ``h @ w.T + b``: oneDNN's linear for a few rows when torch has it."""
    op = _onednn_linear() if rows <= ONEDNN_MAX_ROWS else None
    if op is None:
        return F.linear
    # the op reads its operands as dense (a strided bias gives wrong numbers): make sure they are
    return lambda h, w, b: op(h.contiguous(), w.contiguous(), b.contiguous(), "none", [], "")


def gru_last(gru: torch.nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """The last time step of a batch-first unidirectional ``nn.GRU`` with biases (eval, zero initial
    state); the gates as torch computes them."""
    bsz, steps, _ = x.shape
    hidden = gru.hidden_size
    linear = _hh_linear(bsz)
    for layer in range(gru.num_layers):
        w_ih, w_hh = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}")
        gi = F.linear(x, w_ih, b_ih)                                     # [B, steps, 3H], every step at once
        last = layer == gru.num_layers - 1
        seq = None if last else x.new_empty(bsz, steps, hidden)
        h = x.new_zeros(bsz, hidden)
        for t in range(steps):
            gh = linear(h, w_hh, b_hh)
            i_r, i_z, i_n = gi[:, t].chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(torch.addcmul(i_n, r, h_n))
            h = torch.addcmul(n, z, h - n)                               # (1 - z) * n + z * h
            if seq is not None:
                seq[:, t] = h
        x = seq if seq is not None else x
    return h


def _features(m: torch.nn.Module, wav: torch.Tensor) -> torch.Tensor:
    cache = m.Sinc_conv.__dict__.setdefault("_fast_spectra", {})
    x = sinc_pooled(m.Sinc_conv.band_pass, wav, cache=cache).unsqueeze(2)  # channels-last already
    x = F.selu(_bn(m.first_bn, x), inplace=True)                        # (B, C, 1, time), time-major
    for i in range(6):
        x = residual_block(getattr(m, f"block{i}")[0], x)
        y = torch.sigmoid(getattr(m, f"fc_attention{i}")(x.mean(dim=(2, 3))))[:, :, None, None]
        x = x.mul_(y).add_(y)
    return F.selu(_bn(m.bn_before_gru, x), inplace=True)[:, :, 0].transpose(1, 2)  # [B, time, filters]


def _log_probs(m: torch.nn.Module, wav: torch.Tensor) -> torch.Tensor:
    h = gru_last(m.gru, _features(m, wav))
    return F.log_softmax(m.fc2_gru(m.fc1_gru(h)), dim=1)


@torch.inference_mode()
def features(m: torch.nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Eval-mode GRU input ``[B, time, filters]``, as ``m.features`` (on the caller's threads)."""
    return _features(m, wav.to(m.fc2_gru.weight.dtype).contiguous())


@torch.inference_mode()
def log_probs(m: torch.nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Eval-mode ``[B, 2]`` log-probabilities, as ``m.log_probs`` (which also checks the input)."""
    wav = wav.to(m.fc2_gru.weight.dtype).contiguous()
    return in_clip_groups(lambda x: _log_probs(m, x), wav, small_ops=True)


def in_clip_groups(fn: Callable[[torch.Tensor], torch.Tensor], wav: torch.Tensor,
                   threads: int | None = None, small_ops: bool = False) -> torch.Tensor:
    """``fn(wav)`` for a function that treats clips independently, with the batch split into
    ``threads`` (default ``torch.get_num_threads()``) groups of clips that run concurrently in Python
    threads, each op on one intra-op thread. One group (one clip or one thread): ``fn(wav)`` as is,
    on torch's threads, or with ``small_ops`` on one (a model of many small ops, such as a GRU loop,
    loses more at the barriers of a busy machine than a second thread gains it)."""
    threads = torch.get_num_threads() if threads is None else threads
    groups = max(1, min(threads, wav.shape[0]))
    if groups == 1:
        if small_ops:
            with intra_op_threads(1):
                return fn(wav)
        return fn(wav)
    parts: list[torch.Tensor | None] = [None] * groups
    bounds = [(int(c[0]), int(c[-1]) + 1) for c in torch.arange(wav.shape[0]).tensor_split(groups)]

    def task(i: int) -> Callable[[], None]:
        def run() -> None:
            parts[i] = fn(wav[bounds[i][0]:bounds[i][1]])
        return run

    with intra_op_threads(1):
        run_slices([task(i) for i in range(groups)], threads)
    return torch.cat(parts)  # type: ignore[arg-type]
