"""Where the loops run: the device, and the process group when the job has several processes.

One process: nothing to set up. Several (torchrun, or Slurm tasks through submitit): the rank, world size
and master address come from `nemotron.distributed`, and the process group uses gloo on CPU, NCCL on GPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from nemotron.distributed import DistEnv, dist_env, export_torch_env
from nemotron.errors import NemotronError


def select_device(name: str, local_rank: int = 0) -> Any:
    """`cpu`, or `cuda` when a GPU is present: a clear error before any work when it is not."""
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise NemotronError(
                f"device={name} was asked for, but torch sees no CUDA GPU here (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'no'}). Use device=cpu, or run where a GPU and a CUDA build "
                "of torch are present."
            )
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    raise NemotronError(f"Unknown device={name!r}: use cpu or cuda.")


@contextlib.contextmanager
def process_group(device: Any) -> Iterator[DistEnv]:
    """Join the job's process group for the block (a no-op for a single process)."""
    env = dist_env()
    if not env.is_distributed:
        yield env
        return
    import torch.distributed as dist

    export_torch_env()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield env
    finally:
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.is_distributed:
        import torch.distributed as dist

        dist.barrier()
