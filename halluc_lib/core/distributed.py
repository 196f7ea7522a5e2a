"""Data parallelism for the one training loop: the same code on one process or on N under ``torchrun``.

Under ``torchrun --nproc-per-node N`` every process (rank) runs the whole experiment; inside
:func:`~halluc_lib.core.train.train` each rank takes its share of the deterministic global batch (:func:`shard`),
``DistributedDataParallel`` averages the gradients, and rank 0 alone logs, evaluates and writes checkpoints and
the cache. Because batch ``s`` is a pure function of the seed, N ranks with a global batch of B train the same
weights (to float rounding) as one process with a batch of B — a test checks it on the CPU with two processes.

With one process nothing here does anything: ``rank() == 0``, ``world_size() == 1``, and :func:`shard` returns
the batch as it is.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process logs, evaluates and writes files: rank 0, or the only process."""
    return rank() == 0


def init_from_env() -> torch.device:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``…) and return this rank's device: ``cuda:<local rank>`` with NCCL where there
    are GPUs, the CPU with gloo otherwise. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) it returns the
    default device and starts nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shard(batch: dict[str, torch.Tensor], rank: int, world_size: int) -> tuple[dict[str, torch.Tensor], float]:
    """This rank's contiguous share of a global batch, and the weight of its loss.

    ``DistributedDataParallel`` averages the ranks' gradients, which equals the gradient of the global batch's
    mean loss when every shard holds as many examples; the weight (examples here × ranks / examples in all)
    corrects for shards one example larger or smaller when the batch does not divide evenly. Losses that average
    over tokens are weighted by examples, not tokens: exact when the shards have the same number of tokens."""
    if world_size == 1:
        return batch, 1.0
    n = len(next(iter(batch.values())))
    if n < world_size:
        raise ValueError(f"a global batch of {n} examples cannot be shared by {world_size} ranks")
    bounds = [n * r // world_size for r in range(world_size + 1)]
    start, stop = bounds[rank], bounds[rank + 1]
    return {k: v[start:stop] for k, v in batch.items()}, (stop - start) * world_size / n


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the ranks (the value itself with one process)."""
    if not active():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (``obj`` itself with one process)."""
    if not active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    """Wait until every rank gets here (nothing with one process)."""
    if active():
        dist.barrier()
