"""Who am I in a multi-process job: rank, world size and master address, from Slurm (through submitit) or torchrun.

One place answers this for the whole project: the Hydra callback and the Slurm launcher ask `is_rank0()`
(only rank 0 resolves `${art:}`, writes lineage and commits), and a training stage calls `export_torch_env()`
before `torch.distributed.init_process_group("env://")`.

    under submitit (Slurm or submitit_local)   submitit's JobEnvironment / TorchDistributedEnvironment
    under torchrun                             RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT
    otherwise                                  one process: rank 0 of 1

No heavy import: submitit is imported only inside a submitit job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistEnv:
    """The position of this process in its job. `master_addr`/`master_port` are None for a single process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    num_nodes: int = 1
    master_addr: str | None = None
    master_port: int | None = None
    launcher: str = "none"  # "submitit", "torchrun" or "none"

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """The distributed environment of this process (cheap; reads the environment each call)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        return _from_submitit()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return _from_torchrun()
    return DistEnv()


def is_rank0() -> bool:
    """True in the process that resolves and commits artifacts: global rank 0 under submitit or torchrun."""
    return dist_env().is_rank0


def export_torch_env(overwrite: bool = False) -> DistEnv:
    """Set MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE for `init_process_group`.

    Under submitit the values come from Slurm (the master is the first host of the allocation; the port is
    derived from the job id, or $MASTER_PORT); under torchrun they are already set and left alone.
    CUDA_VISIBLE_DEVICES is never touched: Slurm's GPU binding decides it.
    """
    env = dist_env()
    if env.launcher != "submitit":
        return env
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=overwrite)
    return env


def _from_submitit() -> DistEnv:
    import submitit
    from submitit.helpers import TorchDistributedEnvironment

    job = submitit.JobEnvironment()
    torch_env = TorchDistributedEnvironment()
    return DistEnv(
        rank=job.global_rank,
        local_rank=job.local_rank,
        world_size=job.num_tasks,
        local_world_size=torch_env.local_world_size,
        node_rank=job.node,
        num_nodes=job.num_nodes,
        master_addr=torch_env.master_addr,
        master_port=torch_env.master_port,
        launcher="submitit",
    )


def _from_torchrun() -> DistEnv:
    world_size = int(os.environ["WORLD_SIZE"])
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    rank = int(os.environ["RANK"])
    port = os.environ.get("MASTER_PORT")
    return DistEnv(
        rank=rank,
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=world_size,
        local_world_size=local_world_size,
        node_rank=int(os.environ.get("GROUP_RANK", rank // max(local_world_size, 1))),
        num_nodes=max(world_size // max(local_world_size, 1), 1),
        master_addr=os.environ.get("MASTER_ADDR"),
        master_port=int(port) if port else None,
        launcher="torchrun",
    )
