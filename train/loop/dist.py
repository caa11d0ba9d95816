"""DDP plumbing. Under `torchrun --nproc_per_node=N` the env vars below are set and we join the
process group (gloo on CPU, nccl on CUDA); otherwise everything is a single-process no-op.
Only rank 0 writes files and draws progress."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from catdog.train.recipe import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)  # --device cuda:N: "current device" queries (bf16 support, AMP) mean N
        return DistInfo(0, 1, 0, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def teardown(info: DistInfo) -> None:
    if info.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()


def reduce_device(backend: str, device: torch.device) -> torch.device:
    """Where a collective's tensor must live: NCCL reduces CUDA tensors only (a CPU tensor fails at
    the first all_reduce), gloo reduces CPU tensors."""
    return device if str(backend).lower() == "nccl" else torch.device("cpu")


def all_sum(info: DistInfo, values: list[float]) -> list[float]:
    if not info.enabled:
        return values
    # float64 on CUDA too: sums of per-rank counts and losses must not round
    t = torch.tensor(values, dtype=torch.float64, device=reduce_device(tdist.get_backend(), info.device))
    tdist.all_reduce(t)
    return t.tolist()


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(info: DistInfo, items: list) -> list:
    if not info.enabled:
        return items
    out: list[list] = [[] for _ in range(info.world)]
    tdist.all_gather_object(out, items)
    return [x for part in out for x in part]
