"""Training on several processes: torchrun (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
the rendezvous variables) starts one ``bench train`` per process; each makes and trains on its share of every global
batch (rows ``rank::world``), DistributedDataParallel all-reduces the gradients, and rank 0 alone evaluates, writes
the folder and shows progress. The global batch, the data and the loss are those of one process (the loss is
normalised by the global batch's weight, not per process), so the curve matches a single-process training up to
float rounding when the model holds no per-process state (batch norm statistics are per process, as in any DDP
training; dropout draws per process)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """The process's own GPU (cuda:LOCAL_RANK) when training on CUDA with several processes."""
        if self.world > 1 and str(device).startswith("cuda") and ":" not in str(device):
            return f"cuda:{self.local_rank}"
        return device

    def sum(self, value: Any) -> Any:
        """A tensor summed over the processes (itself with one process)."""
        if self.world == 1:
            return value
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(value)
        return value

    def broadcast_float(self, value: float, device: str) -> float:
        if self.world == 1:
            return value
        import torch
        import torch.distributed as tdist

        t = torch.tensor([value], dtype=torch.float64, device=device)
        tdist.broadcast(t, src=0)
        return float(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as tdist

            tdist.barrier()

    def share(self, batch: Any) -> Any:
        """This process's rows of a global batch of example indices."""
        return batch[self.rank::self.world]


def init(device: str) -> Dist:
    """The process group from the launcher's environment (gloo on a CPU, nccl on GPUs); one process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0") or 0))


def close(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
