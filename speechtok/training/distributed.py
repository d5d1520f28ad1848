"""Data-parallel training under `torchrun` (or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK and
MASTER_ADDR / MASTER_PORT, as SLURM wrappers do): NCCL on GPU, gloo on CPU.

Why gradients are all-reduced here rather than through a `DistributedDataParallel` wrapper: a task calls its
modules' parts directly (encoder, quantizer, decoder; the discriminators three times per step, with their
gradients switched off for the generator's loss), which DDP's forward hooks do not see. Averaging each optimizer
group's gradients right before its step is the same arithmetic for any task, in one flat buffer per group so there
is one collective per update. Buffers that change in the forward (RVQ codebook EMAs, k-means init, dead-code
replacement) are synchronised by vector-quantize-pytorch itself once the process group exists, which is why
`setup()` must run before the task is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_environ() -> DistEnv:
    """The launcher's RANK / WORLD_SIZE / LOCAL_RANK; a plain `python` run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} outside WORLD_SIZE {world}")
    return DistEnv(rank, world, int(os.environ.get("LOCAL_RANK", str(rank))))


def setup(device: torch.device) -> DistEnv:
    """Join the process group when launched with WORLD_SIZE > 1 (idempotent)."""
    env = env_from_environ()
    if env.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank,
                                world_size=env.world_size)
    return env


def local_device(device: torch.device, env: DistEnv) -> torch.device:
    """One GPU per process: rank r of a node takes cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and env.enabled:
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return device


def average_gradients(params: Iterable[nn.Parameter], world_size: int) -> None:
    """Replace each gradient by its mean over the ranks: one all-reduce of one flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world_size
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


def broadcast_state(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (identical seeds give identical inits; this makes sure)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Logged means over all ranks' batches (every rank logs the same keys)."""
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def checksum(module: nn.Module) -> Tensor:
    """A float64 fingerprint of a module's state, to check that ranks agree."""
    total = torch.zeros((), dtype=torch.float64)
    for i, tensor in enumerate(module.state_dict().values()):
        if tensor.is_floating_point():
            total += (i + 1) * tensor.detach().double().sum().cpu()
    return total


def assert_in_sync(modules: dict[str, nn.Module], step: int, device: torch.device) -> None:
    """Raise on every rank when some rank's weights differ from rank 0's (a silent divergence otherwise)."""
    for name, module in modules.items():
        mine = checksum(module).to(device)  # NCCL gathers device tensors
        gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, mine)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"step {step}: {name} weights differ across ranks: {[float(g) for g in gathered]}")


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
