"""The inference-only fast path of AASIST (eval mode, no autograd): the same function as
``AASIST.logits_and_hidden``, reorganised for a CPU's caches. Used by ``AASIST.score``.

What differs from the reference formulation (all exact up to float32 rounding, ~1e-6 on logits):

* every residual block's ``bn2`` is folded into ``conv1`` (eval-mode BatchNorm is affine);
* SELU and the residual sum run in place;
* the front end (sinc bank -> |.| -> 3x3 max-pool -> BN -> SELU) and the wide residual blocks run
  in slices of the time axis small enough to stay in cache: the 2-D convolutions are narrow (2x3
  kernels, 32-64 channels), so over a whole 4 s clip the reference spends more time moving its
  16.5M-element activations through memory than multiplying. Each slice carries the halo its
  convolutions need, and the zero padding of ``conv2`` is re-imposed at the clip's edges, so
  slices join exactly (a slice boundary is a multiple of 3, the time stride of the max-pools);
* the sinc filter the 3x3 max-pool never reads (the 70th of 70; 70 // 3 = 23 rows use 69) is skipped;
* the graph back end (hundreds of tiny ops) runs on one intra-op thread: on a busy machine every
  parallel region of a tiny op can stall for a whole scheduler slice waiting for its second thread.

Gradients never flow here: ``AASIST.forward`` keeps the reference formulation for attacks.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from models.aasist import AASIST, ResidualBlock

_CL = torch.channels_last
#: float32 elements one slice's largest activation may hold (~1.5 MiB: about one core's L2 here)
SLICE_ELEMENTS = 384 * 1024


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Temporarily caps torch's intra-op threads at ``n`` (a process-wide setting, restored on exit)."""
    old = torch.get_num_threads()
    if n >= old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _slice_width(per_column: int, total: int) -> int:
    """Columns per slice: a multiple of 3 whose activation of ``per_column`` elements per column fits
    the budget (at least 3), balanced so the slices of a width are about the same size."""
    cols = max(3, (SLICE_ELEMENTS // max(per_column, 1)) // 3 * 3)
    if cols >= total:
        return total
    n_slices = -(-total // cols)
    return -(-total // n_slices // 3) * 3


def _folded(block: "ResidualBlock") -> tuple[torch.Tensor, torch.Tensor]:
    """conv1 followed by eval-mode bn2, as one convolution (recomputed per call: a few k values)."""
    bn, conv = block.bn2, block.conv1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.view(-1, 1, 1, 1)
    b = (conv.bias - bn.running_mean) * scale + bn.bias
    return w.contiguous(memory_format=_CL), b


def _padded_buffer(like: torch.Tensor, b: int, c: int, h: int, w: int) -> torch.Tensor:
    """A channels-last (b, c, h, w + 4) buffer whose two columns at each side are zero; blocks read
    their time padding from there instead of copying their input into a padded one."""
    buf = torch.empty((b, c, h, w + 4), dtype=like.dtype, device=like.device, memory_format=_CL)
    buf[..., :2] = 0
    buf[..., -2:] = 0
    return buf


def front_end(m: "AASIST", wav: torch.Tensor) -> torch.Tensor:
    """selu(first_bn(maxpool3x3(|sinc * wav|))) as (B, 1, n_freq, T'), in a zero-padded buffer
    (B, 1, n_freq, T' + 4) as the first residual block wants it."""
    bsz, t = wav.shape
    k = m.sinc_filters.shape[-1]
    n_freq = m.sinc_filters.shape[0] // 3
    filters = m.sinc_filters[:3 * n_freq]            # the pool never reads the remaining filters
    width = (t - k + 1) // 3                          # pooled time columns
    out = _padded_buffer(wav, bsz, 1, n_freq, width)
    step = _slice_width(bsz * 3 * n_freq * 3, width)
    x = wav.unsqueeze(1)
    for s in range(0, width, step):
        e = min(s + step, width)
        y = F.conv1d(x[..., 3 * s:3 * e + k - 1], filters)        # (B, 69, 3n)
        y = F.max_pool2d(y.abs_().unsqueeze(1), (3, 3))            # (B, 1, 23, n)
        out[..., 2 + s:2 + e] = F.selu(m.first_bn(y), inplace=True)
    return out


def residual_block(block: "ResidualBlock", xp: torch.Tensor, width: int) -> torch.Tensor:
    """One residual block on a padded input buffer xp (B, C, H, width + 4) (two zero columns each
    side); returns its output in a new padded buffer (B, C', H, width // 3 + 4)."""
    bsz, c_in, h, _ = xp.shape
    w1, b1 = _folded(block)
    c_out = w1.shape[0]
    w2, b2 = block.conv2.weight, block.conv2.bias
    down = block.conv_downsample
    pooled = width // 3
    out = _padded_buffer(xp, bsz, c_out, h, pooled)
    used = pooled * 3                                 # the (1, 3) max-pool drops the last width % 3 columns
    step = _slice_width(bsz * c_out * (h + 1), used)
    for s in range(0, used, step):
        e = min(s + step, used)
        xs = xp[..., s:e + 4]                         # input columns s-2 .. e+1
        if c_in == 1:
            xs = xs.contiguous()                      # a 1-channel slice: make it dense for oneDNN
        hid = F.selu(F.conv2d(xs, w1, b1, padding=(1, 0)), inplace=True)  # conv1 columns s-1 .. e
        if s == 0:
            hid[..., 0] = 0                           # conv2's zero padding at the clip's start
        if e == width:
            hid[..., -1] = 0                          # ... and at its end
        if hid.dim() == 4 and not hid.is_contiguous(memory_format=_CL):
            hid = hid.contiguous(memory_format=_CL)
        y = F.conv2d(hid, w2, b2)                     # conv2 columns s .. e-1
        if down is None:
            y += xs[..., 2:-2]
        else:
            y += F.conv2d(xs[..., 1:-1], down.weight, down.bias)
        out[..., 2 + s // 3:2 + e // 3] = F.max_pool2d(y, (1, 3))
    return out


@torch.no_grad()
def logits_and_hidden(m: "AASIST", wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits and embedding, as ``m.logits_and_hidden`` (which also checks the input)."""
    wav = wav.to(m.sinc_filters.dtype).contiguous()
    xp = front_end(m, wav)
    width = xp.shape[-1] - 4
    for seq in m.encoder:
        xp = residual_block(seq[0], xp, width)
        width //= 3
    with intra_op_threads(1):
        return m.graph_head(xp[..., 2:2 + width])
