"""One optimisation step of ``bench train``: forward in train mode (bf16 autocast when asked), the recipe's loss
normalised over the global batch, backward (through DistributedDataParallel when several processes train), and on the
last micro-batch of an accumulation the optimiser step (with the recipe's gradient clipping).

A batch that runs out of device memory is split in halves, again and again if needed, into gradient-accumulation
chunks whose losses add up to the whole batch's: the global batch, and so the update, stay the same. The size that
fitted is kept for the following batches. A non-finite loss (its value summed over the processes, so all of them
agree) voids the step: its gradients, and those of earlier micro-batches of the same accumulation, are dropped.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
import torch.nn.functional as F

from bench.train.dist import Dist

log = logging.getLogger(__name__)


class _Head(torch.nn.Module):
    """[B, 2] class outputs (column 1 bona fide) of a detector, as a module DDP can wrap: the detector's own
    ``logits`` or ``class_scores`` when it has two outputs, else [0, score], whose cross-entropy is the logistic
    loss of the score."""

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        det = self.detector
        if hasattr(det, "logits"):
            return det.logits(x)
        if hasattr(det, "class_scores"):   # the DARTS family: cos theta (P2SGrad) or logits per class
            return det.class_scores(x)
        s = det(x)
        return torch.stack([torch.zeros_like(s), s], dim=1)


class Stepper:
    def __init__(self, detector: torch.nn.Module, recipe: Any, optimizer: Any, device: str, precision: str,
                 dist: Dist):
        self.detector, self.recipe, self.opt, self.device, self.dist = detector, recipe, optimizer, device, dist
        head = _Head(detector)
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(device).index] if str(device).startswith("cuda") else None
            head = DistributedDataParallel(head, device_ids=ids)
        self.head = head
        self.weights = torch.tensor(recipe.class_weights or (1.0, 1.0), dtype=torch.float32, device=device)
        self.autocast = precision == "bf16"
        self.chunk: int | None = None   # rows per forward after an out-of-memory split (None: the whole batch)

    def _numerator(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss summed over rows; divided by :meth:`_denominator` of the global batch it is the recipe's loss,
        so chunks and processes add up to it."""
        out = out.float()
        if self.recipe.loss == "p2sgrad":   # MSE between cos theta and the one-hot target (Raw PC-DARTS)
            return ((out - F.one_hot(y, 2).to(out.dtype)) ** 2).sum()
        return F.cross_entropy(out, y, weight=self.weights, reduction="sum")   # sum of w[y_i] * l_i

    def _denominator(self, y: torch.Tensor) -> torch.Tensor:
        """The global batch's weight: the sum of the class weights (weighted CE's mean), or the count of outputs."""
        local = (torch.tensor(2.0 * len(y), device=self.device) if self.recipe.loss == "p2sgrad"
                 else self.weights[y].sum())
        return self.dist.sum(local)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = (torch.autocast(device_type=str(self.device).split(":")[0], dtype=torch.bfloat16) if self.autocast
               else contextlib.nullcontext())
        with ctx:
            return self.head(x)

    def step(self, x: torch.Tensor, y: torch.Tensor, first: bool, last: bool) -> float:
        """Trains on this process's rows of a global batch; returns the global batch's loss (NaN: skipped)."""
        acc = self.recipe.accumulate
        if first:
            self.opt.zero_grad(set_to_none=True)
        while True:
            try:
                loss = self._step(x, y, acc)
                break
            except torch.OutOfMemoryError:
                n = self.chunk or len(x)
                if n <= 1:
                    raise RuntimeError("one training example does not fit in the device's memory; use a "
                                       "smaller model or --device cpu") from None
                self.chunk = (n + 1) // 2
                log.warning("out of device memory with %d examples per forward; going on with %d (gradient "
                            "accumulation: the global batch stays the same)", n, self.chunk)
                if not first:   # earlier micro-batches' gradients are kept; this one's partial ones are not
                    raise RuntimeError("out of device memory in the middle of a gradient accumulation; "
                                       "resume with a smaller --batch-size") from None
                self.opt.zero_grad(set_to_none=True)
        if loss != loss:   # non-finite: skipped (already zeroed)
            return loss
        if last:
            if self.recipe.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.detector.parameters(), self.recipe.max_grad_norm)
            self.opt.step()
        return loss

    def _step(self, x: torch.Tensor, y: torch.Tensor, acc: int) -> float:
        """Forward and backward chunk by chunk (one chunk unless memory ran out); the global loss's value."""
        chunk = self.chunk or len(x)
        parts = [(x[i:i + chunk], y[i:i + chunk]) for i in range(0, len(x), chunk)]
        den = self._denominator(y)
        total = torch.zeros((), device=self.device)
        for i, (xc, yc) in enumerate(parts):
            last = i == len(parts) - 1   # DDP all-reduces the gradients on the last chunk's backward only
            ctx = self.head.no_sync() if (self.dist.world > 1 and not last) else contextlib.nullcontext()
            with ctx:
                num = self._numerator(self._forward(xc), yc)
                (num * self.dist.world / den / acc).backward()   # DDP averages over processes: times world
            total = total + num.detach()
        value = float(self.dist.sum(total)) / float(den)
        if not torch.isfinite(torch.tensor(value)):   # the same value on every process: all skip together
            self.opt.zero_grad(set_to_none=True)
            return float("nan")
        return value
