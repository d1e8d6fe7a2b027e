"""The inference-only fast path of AASIST (eval mode, no autograd): the same function as
``AASIST.logits_and_hidden``, reorganised for a CPU's caches. Used by ``AASIST.score``.

What differs from the reference formulation (all exact up to float32 rounding, ~1e-6 on logits):

* every residual block's ``bn2`` is folded into ``conv1`` (eval-mode BatchNorm is affine);
* SELU and the residual sum run in place;
* activations are time-major (memory (B, time, freq, channels)), so a stretch of time is one
  dense block;
* the front end (sinc bank -> |.| -> 3x3 max-pool -> BN -> SELU) and every residual block run
  clip by clip in slices of time small enough to stay in cache: the 2-D convolutions are narrow
  (2x3 kernels, 32-64 channels), so over a whole 4 s clip the reference spends more time moving
  its 16.5M-element activations through memory than multiplying. Each slice carries the halo its
  convolutions need, and the zero padding of ``conv2`` is re-imposed at the clip's edges, so
  slices join exactly (a slice boundary is a multiple of 3, the time stride of the max-pools);
* the slices of a stage are shared among ``torch.get_num_threads()`` Python threads, each running
  its ops on one intra-op thread: no op waits at a barrier for a second thread, which on a busy
  machine can stall for a whole scheduler slice (a stage waits once, at its end);
* the sinc filter the 3x3 max-pool never reads (the 70th of 70; 70 // 3 = 23 rows use 69) is skipped;
* the graph back end (hundreds of tiny ops) runs on one intra-op thread, for the same reason.

Gradients never flow here: ``AASIST.forward`` keeps the reference formulation for attacks.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

# The model arguments are typed as torch.nn.Module (an AASIST / RawNet2 and their blocks): importing the model here would tie
# the reference and its fast path into an import circle (the reference imports this file lazily).

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


_POOL: dict[str, object] = {"pool": None, "size": 0, "pid": 0}
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``size`` threads (rebuilt after a fork or a change of size)."""
    with _POOL_LOCK:
        if _POOL["pool"] is None or _POOL["size"] != size or _POOL["pid"] != os.getpid():
            _POOL.update(pool=ThreadPoolExecutor(size, thread_name_prefix="aasist-slices"), size=size,
                         pid=os.getpid())
        return _POOL["pool"]  # type: ignore[return-value]


def run_slices(tasks: Sequence[Callable[[], None]], threads: int) -> None:
    """Runs independent slice tasks on ``threads`` threads (each op single-threaded), in any order."""
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    for f in [_pool(threads).submit(_in_inference_mode, task) for task in tasks]:
        f.result()


def _in_inference_mode(task: Callable[[], None]) -> None:
    with torch.inference_mode():  # grad modes are per thread: the pool's threads start with autograd on
        task()


def _slices(per_column: int, total: int, n_clips: int, threads: int) -> list[tuple[int, int, int]]:
    """(clip, first column, end column) work items: columns in multiples of 3, each slice's largest
    activation (``per_column`` elements a column, for one clip) within the budget, the slices of a
    width about equal, and at least one per thread when there is work enough to share."""
    cols = max(3, (SLICE_ELEMENTS // max(per_column, 1)) // 3 * 3)
    n = -(-total // cols)
    if n * n_clips < threads:
        n = max(n, min(-(-threads // n_clips), total // 48))
    step = max(3, -(-total // max(n, 1) // 3) * 3)
    return [(b, s, min(s + step, total)) for b in range(n_clips) for s in range(0, total, step)]


def _folded(block: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1 followed by eval-mode bn2, as one convolution (recomputed per call: a few k values),
    with its kernel transposed to the time-major layout."""
    bn, conv = block.bn2, block.conv1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.view(-1, 1, 1, 1)
    b = (conv.bias - bn.running_mean) * scale + bn.bias
    return _time_major(w), b


def _time_major(w: torch.Tensor) -> torch.Tensor:
    """A (C_out, C_in, kf, kt) kernel as (C_out, C_in, kt, kf), channels-last."""
    return w.transpose(2, 3).contiguous(memory_format=_CL)


def _padded_buffer(like: torch.Tensor, b: int, c: int, t: int, f: int) -> torch.Tensor:
    """A time-major activation buffer: logically (b, c, t + 4, f), channels-last, so its memory is
    (b, t + 4, f, c) and every slice of time is one dense block. The two time rows at each end are
    zero: blocks read their time padding from there instead of copying their input into a padded one."""
    buf = torch.empty((b, c, t + 4, f), dtype=like.dtype, device=like.device, memory_format=_CL)
    buf[:, :, :2] = 0
    buf[:, :, -2:] = 0
    return buf


def front_end(m: torch.nn.Module, wav: torch.Tensor, threads: int = 1) -> torch.Tensor:
    """selu(first_bn(maxpool3x3(|sinc * wav|))), time-major in a padded buffer (B, 1, T' + 4, n_freq)."""
    bsz, t = wav.shape
    k = m.sinc_filters.shape[-1]
    n_freq = m.sinc_filters.shape[0] // 3
    filters = m.sinc_filters[:3 * n_freq]            # the pool never reads the remaining filters
    width = (t - k + 1) // 3                          # pooled time steps
    out = _padded_buffer(wav, bsz, 1, width, n_freq)
    x = wav.unsqueeze(1)

    def task(b: int, s: int, e: int) -> None:
        y = F.conv1d(x[b:b + 1, :, 3 * s:3 * e + k - 1], filters)      # (1, 69, 3n)
        y = F.max_pool2d(y.abs_().unsqueeze(1), (3, 3))                # (1, 1, 23, n)
        out[b, 0, 2 + s:2 + e] = F.selu(m.first_bn(y), inplace=True)[0, 0].T

    run_slices([_bind(task, *sl) for sl in _slices(3 * n_freq * 3, width, bsz, threads)], threads)
    return out


def _bind(fn: Callable[[int, int, int], None], b: int, s: int, e: int) -> Callable[[], None]:
    return lambda: fn(b, s, e)


def residual_block(block: torch.nn.Module, xp: torch.Tensor, width: int, threads: int = 1) -> torch.Tensor:
    """One residual block, time-major: input buffer (B, C, width + 4, F) with two zero time rows at
    each end; returns a new buffer (B, C', width // 3 + 4, F)."""
    bsz, c_in, _, n_freq = xp.shape
    w1, b1 = _folded(block)
    c_out = w1.shape[0]
    w2, b2 = _time_major(block.conv2.weight), block.conv2.bias
    down = block.conv_downsample
    wd = None if down is None else _time_major(down.weight)
    skip_in_conv2 = c_in == 1 and down is not None
    if skip_in_conv2:
        w1, b1, w2, b2 = _skip_as_channel(w1, b1, w2, b2, wd, down.bias)
    pooled = width // 3
    out = _padded_buffer(xp, bsz, c_out, pooled, n_freq)
    used = pooled * 3                                 # the (1, 3) max-pool drops the last width % 3 steps

    def task(b: int, s: int, e: int) -> None:
        xs = xp[b:b + 1, :, s:e + 4]                  # input steps s-2 .. e+1 (dense)
        if c_in == 1:  # torch's 1-channel kernel (not oneDNN): NCHW out, and 4x slower when given the bias
            hid = F.conv2d(xs, w1, None, padding=(0, 1)).add_(b1.view(-1, 1, 1))
            F.selu(hid[:, :c_out], inplace=True)      # not the skip channel, if there is one
            hid = hid.contiguous(memory_format=_CL)
        else:
            hid = F.selu(F.conv2d(xs, w1, b1, padding=(0, 1)), inplace=True)  # conv1 steps s-1 .. e
        if s == 0:
            hid[:, :, 0] = 0                          # conv2's zero padding at the clip's start
        if e == width:
            hid[:, :, -1] = 0                         # ... and at its end
        y = F.conv2d(hid, w2, b2)                     # conv2 steps s .. e-1
        if down is None:
            y += xs[:, :, 2:-2]
        elif not skip_in_conv2:
            y += F.conv2d(xs[:, :, 1:-1], wd, down.bias)
        out[b:b + 1, :, 2 + s // 3:2 + e // 3] = F.max_pool2d(y, (3, 1))

    run_slices([_bind(task, *sl) for sl in _slices(c_out * (n_freq + 1), used, bsz, threads)], threads)
    return out


def _skip_as_channel(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                     wd: torch.Tensor, bd: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """For a block on a 1-channel input, folds the (1, 3) projection skip into conv2: conv1 gains an
    output channel that copies its input (a unit centre tap; SELU skips it), and conv2 gains an input
    channel whose kernel is the skip's (on the frequency row conv2 reads first). One narrow oneDNN
    convolution instead of a slow 1-channel one and a sum; the identity channel is exact."""
    ident = torch.zeros((1, 1) + tuple(w1.shape[2:]), dtype=w1.dtype, device=w1.device)
    ident[0, 0, 1, 1] = 1.0                           # time tap 1 (centre), frequency tap 1 (row r)
    w1 = torch.cat([w1, ident.contiguous(memory_format=_CL)], 0)
    b1 = torch.cat([b1, b1.new_zeros(1)])
    skip = torch.cat([wd, torch.zeros_like(wd)], dim=3)  # (C, 1, 3 time, 2 freq): frequency tap 0
    w2 = torch.cat([w2, skip], 1).contiguous(memory_format=_CL)
    return w1, b1, w2, b2 + bd


@torch.inference_mode()
def logits_and_hidden(m: torch.nn.Module, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode logits and embedding, as ``m.logits_and_hidden`` (which also checks the input)."""
    threads = torch.get_num_threads()
    wav = wav.to(m.sinc_filters.dtype).contiguous()
    with intra_op_threads(1):
        xp = front_end(m, wav, threads)
        width = xp.shape[2] - 4
        for seq in m.encoder:
            xp = residual_block(seq[0], xp, width, threads)
            width //= 3
        return m.graph_head(xp[:, :, 2:2 + width].transpose(2, 3))
