"""How a detector scores on its device: batch size, precision and compilation (``--batch-size``,
``--precision``, ``--compile``).

An :class:`Engine` wraps one loaded detector for the whole run, so what it finds out once (the batch
that fits, the compiled graph, the measured parity) serves every later batch. With the defaults
(``fp32``, ``off``, a fixed batch) it calls ``detector.score`` and nothing else, so its scores are
the reference path's, bit for bit.

``batch_size``
    A number, or ``auto``: 8 windows on a CPU (larger batches do not pay there); on a GPU the largest
    power of two, up to :data:`AUTO_CAP`, whose activations fit in :data:`MEMORY_SHARE` of the free
    memory, measured by one probe batch of the window length (:func:`fit_batch`). On any device a batch
    that runs out of memory is split in halves and the smaller size kept for that window length, so an
    estimate that was too hopeful costs one retry, never the run.
``precision``
    ``fp32`` (default: the reference arithmetic), ``bf16`` (autocast, CPU or GPU) or ``fp16`` (autocast,
    GPU only). Scores change, so a precision other than fp32 is part of the run's identity; the first
    batch is also scored in fp32 and the measured max |score difference| is logged and recorded.
``compile``
    ``off`` (default), ``on`` (``torch.compile`` in ``reduce-overhead`` mode, i.e. CUDA graphs, on a GPU;
    ``default`` mode elsewhere), or a ``torch.compile`` mode by name. Batches are padded to the batch
    size (rows repeat the last one, their scores are dropped) so that one static graph serves the run.
    The first compiled batch is checked against the eager path: a difference above :data:`PARITY_TOL`
    (or a compilation error) makes the engine score eagerly from then on, with a warning; the report
    says which. On the CPU it does not pay here: the detectors' own CPU paths are faster than inductor's
    code (AASIST-L 0.61 vs 0.79 s per 4 clips, after 55 s of compiling).

Attacks craft on the detector's fp32 reference graph whatever these options say; only scoring uses them.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

from foundation.device import COMPILE_MODES, PRECISIONS, parse_batch_size  # noqa: F401 (the engine's options)

log = logging.getLogger(__name__)

CPU_BATCH = 8          # ``auto`` on a CPU
AUTO_CAP = 256         # ``auto`` on a GPU never goes above this many windows per batch
MEMORY_SHARE = 0.6     # ... nor above this share of the free device memory (activations measured by a probe)
PROBE_ROWS = 4         # rows of the probe batch
PARITY_TOL = 1e-4      # compiled vs eager scores on the first batch, fp32
ATTACK_BATCH = {"cpu": 8, "cuda": 32}   # attacks under ``auto`` (their graphs hold activations for backward)


@dataclass(frozen=True)
class InferenceOptions:
    batch_size: int | str = 8
    precision: str = "fp32"
    compile: str = "off"

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", parse_batch_size(self.batch_size))
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")

    def check_device(self, device: str) -> None:
        """fp16 autocast is a GPU feature; on a CPU say so before any work."""
        from foundation.device import check_precision

        check_precision(self.precision, device)

    def attack_batch(self, device: str) -> int:
        if isinstance(self.batch_size, int):
            return self.batch_size
        return ATTACK_BATCH["cuda" if str(device).startswith("cuda") else "cpu"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _has_parameters(detector: Any) -> bool:
    params = getattr(detector, "parameters", None)
    return params is not None and next(iter(params()), None) is not None


def fit_batch(free_bytes: float, per_row_bytes: float, cap: int = AUTO_CAP, share: float = MEMORY_SHARE) -> int:
    """The largest power of two ``b <= cap`` with ``b * per_row_bytes <= share * free_bytes`` (at least 1)."""
    if per_row_bytes <= 0:
        return cap
    b = 1
    while b * 2 <= cap and b * 2 * per_row_bytes <= share * free_bytes:
        b *= 2
    return b


class Engine:
    """Scores ``[B, T]`` windows of one detector on ``device`` as the options say; see the module doc."""

    def __init__(self, detector: Any, options: InferenceOptions | None = None, device: Any = None,
                 name: str = ""):
        import torch

        self.detector, self.options, self.name = detector, options or InferenceOptions(), name or type(detector).__name__
        if device is None:
            p = next(iter(detector.parameters()), None) if hasattr(detector, "parameters") else None
            device = p.device if p is not None else "cpu"
        self.device = torch.device(device)
        note = ""
        if (self.options.precision != "fp32" or self.options.compile != "off") and not _has_parameters(detector):
            # a served model (http://) computes elsewhere: autocast and compilation have nothing to act on here
            log.warning("%s has no parameters in this process (a served model?): --precision %s and --compile %s "
                        "do not apply; scoring as it is", self.name, self.options.precision, self.options.compile)
            from dataclasses import replace

            self.options = replace(self.options, precision="fp32", compile="off")
            note = "precision and compile not applicable: the detector has no parameters here"
        self._sizes: dict[int, int] = {}            # window length -> batch size in use
        self._compiled: Callable | None = None
        self._per_sample: tuple[float, float] | None = None   # (free bytes, bytes per sample) from the probe
        self._compile_state = "off" if self.options.compile == "off" else "pending"
        self.report_: dict[str, Any] = {"options": self.options.to_dict(), "device": str(self.device)}
        if note:
            self.report_["note"] = note

    # ---- batch size --------------------------------------------------------------------------
    def batch_size(self, length: int) -> int:
        """Windows per batch for inputs of ``length`` samples (resolving ``auto`` on first use)."""
        if length not in self._sizes:
            b = self.options.batch_size
            if b == "auto":
                b = self._probe(length) if self.device.type == "cuda" else CPU_BATCH
                log.info("%s: batch size %d for windows of %d samples on %s", self.name, b, length, self.device)
            self._sizes[length] = int(b)
            self._record_size(length)
        return self._sizes[length]

    def _record_size(self, length: int) -> None:
        """Into the report, for the first 16 window lengths (the ``whole`` policy meets one per clip length)."""
        sizes = self.report_.setdefault("batch_size", {})
        if str(length) in sizes or len(sizes) < 16:
            sizes[str(length)] = self._sizes[length]
        else:
            self.report_["more_window_lengths"] = len(self._sizes) - len(sizes)

    def _probe(self, length: int) -> int:
        """One probe batch for the first window length; other lengths (the ``whole`` policy's) scale its
        bytes per sample, so a run of clips of many lengths is not probed once per length."""
        import torch

        if self._per_sample is not None:
            free, per_sample = self._per_sample
            return fit_batch(free, per_sample * length)
        torch.cuda.synchronize(self.device)
        free, _total = torch.cuda.mem_get_info(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._eager(torch.zeros(PROBE_ROWS, length, device=self.device))
        torch.cuda.synchronize(self.device)
        per_row = (torch.cuda.max_memory_allocated(self.device) - base) / PROBE_ROWS
        b = fit_batch(free, per_row)
        self._per_sample = (free, per_row / length)
        self.report_.setdefault("probe", {})[str(length)] = {"free_bytes": int(free), "bytes_per_window": int(per_row)}
        return b

    # ---- scoring -----------------------------------------------------------------------------
    def score_windows(self, windows: list[Any]) -> list[float]:
        """Scores mono windows (numpy arrays, any mix of lengths) in batches: windows of one length share a
        batch of :meth:`batch_size` for that length. One score per window, in window order."""
        import numpy as np
        import torch

        out = [0.0] * len(windows)
        pending: dict[int, list[int]] = {}   # window length -> indices of windows waiting for a batch

        def flush(idx: list[int]) -> None:
            x = torch.from_numpy(np.stack([windows[k] for k in idx]).astype(np.float32, copy=False)).to(self.device)
            s = self.score(x).detach().float().cpu().numpy().reshape(-1)
            if len(s) != len(idx):
                raise RuntimeError(f"{type(self.detector).__name__}.score returned {len(s)} scores for {len(idx)} "
                                   "inputs; expected one per row of [B, T]")
            for k, v in zip(idx, s, strict=True):
                out[k] = float(v)

        for k, w in enumerate(windows):
            idx = pending.setdefault(len(w), [])
            idx.append(k)
            if len(idx) >= self.batch_size(len(w)):
                flush(pending.pop(len(w)))
        for idx in pending.values():
            flush(idx)
        return out

    def score(self, x: Any) -> Any:
        """Scores of a ``[B, T]`` batch (any B); splits it when the device runs out of memory."""
        import torch

        try:
            return self._score(x)
        except torch.OutOfMemoryError:
            n = int(x.shape[0])
            if n <= 1:
                raise
            half = (n + 1) // 2
            length = int(x.shape[1])
            self._sizes[length] = min(self._sizes.get(length, n), half)
            self._record_size(length)
            self.report_["out_of_memory_splits"] = self.report_.get("out_of_memory_splits", 0) + 1
            log.warning("%s: out of device memory at a batch of %d windows; going on with %d", self.name, n, half)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return torch.cat([self.score(x[:half]), self.score(x[half:])])

    def _score(self, x: Any) -> Any:
        if self._compile_state == "pending":
            return self._first_compiled(x)
        if self._compile_state == "on":
            return self._run_compiled(x)
        out = self._eager(x)
        if self.options.precision != "fp32" and "precision_max_abs_diff" not in self.report_:
            self._measure_precision(x, out)
        return out

    def _autocast(self):
        import torch

        if self.options.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.options.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _eager(self, x: Any) -> Any:
        """The detector's own ``score`` (fp32), or its ``forward`` under autocast (no CPU fast paths)."""
        import torch

        if self.options.precision == "fp32":
            return self.detector.score(x).float()
        self.detector.eval()
        with torch.inference_mode(), self._autocast():
            return self.detector.forward(x).float()

    def _measure_precision(self, x: Any, out: Any) -> None:
        ref = self.detector.score(x).float()
        d = float((out - ref).abs().max())
        self.report_["precision_max_abs_diff"] = d
        log.info("%s: %s scores differ from fp32 by at most %.3g on the first batch of %d", self.name,
                 self.options.precision, d, int(x.shape[0]))

    def _mode(self) -> str:
        m = self.options.compile
        if m == "on":
            return "reduce-overhead" if self.device.type == "cuda" else "default"
        return m

    def _run_compiled(self, x: Any) -> Any:
        import torch

        n, length = int(x.shape[0]), int(x.shape[1])
        b = max(self._sizes.get(length, n), n)
        if n < b:   # one static shape per window length: pad with copies of the last row
            x = torch.cat([x, x[-1:].expand(b - n, length)])
        with torch.inference_mode(), self._autocast():
            out = self._compiled(x)
        return out[:n].float().clone()

    def _first_compiled(self, x: Any) -> Any:
        import time

        import torch

        self.detector.eval()
        mode = self._mode()
        ref = self._eager(x)
        if self.options.precision != "fp32":
            self._measure_precision(x, ref)
        t0 = time.perf_counter()
        try:
            self._compiled = torch.compile(self.detector, mode=mode, dynamic=False)
            out = self._run_compiled(x)
        except Exception as e:  # noqa: BLE001 - compilation is an optimisation: fall back, say so, record it
            log.warning("%s: torch.compile (mode %s) failed (%s: %s); scoring eagerly", self.name, mode,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            self._compile_state = "off"
            self.report_["compile"] = {"mode": mode, "used": False, "error": f"{type(e).__name__}: {e}"[:500]}
            return ref
        diff = float((out - ref).abs().max())
        tol = PARITY_TOL if self.options.precision == "fp32" else float("inf")
        used = diff <= tol
        self.report_["compile"] = {"mode": mode, "used": used, "max_abs_diff_to_eager": diff,
                                   "compile_s": round(time.perf_counter() - t0, 2)}
        if used:
            self._compile_state = "on"
            log.info("%s: compiled (mode %s) in %.1f s; first batch within %.2g of eager", self.name, mode,
                     self.report_["compile"]["compile_s"], diff)
            return out
        log.warning("%s: compiled scores differ from eager by %.3g (> %g) on the first batch; scoring eagerly",
                    self.name, diff, tol)
        self._compile_state, self._compiled = "off", None
        return ref

    def report(self) -> dict[str, Any]:
        """What the engine chose and measured (for the run's provenance)."""
        return dict(self.report_)
