"""The `nemotron_slurm` and `nemotron_submitit_local` launcher schemas (`hydra/launcher=...`), registered in
Hydra's ConfigStore.

Users set these through the `launcher:` node of `launcher=slurm` (conf/launcher/slurm.yaml), which
maps each key here; `hydra.launcher.KEY=...` works too.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class NemotronLocalQueueConf(LocalQueueConf):
    """`launcher=submitit_local`: hydra-submitit-launcher's local launcher that refuses credentials on the
    command line (they would be pickled into the submitit folder)."""

    _target_: str = "hydra_plugins.nemotron_launcher.launcher.NemotronLocalLauncher"


@dataclass
class NemotronSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.nemotron_launcher.launcher.NemotronSlurmLauncher"

    # Extra arguments of the `srun` line (the pyxis flags for container_image/mounts are added for you).
    srun_args: list[str] = field(default_factory=list)
    # The interpreter that runs the job on the node; None = this machine's (not available in a container).
    python: str | None = None
    # pyxis: --container-image, --container-mounts (SRC:DST[:FLAGS]); the working dir is mounted for you.
    container_image: str | None = None
    container_mounts: list[str] = field(default_factory=list)
    # Environment variables exported in the batch script. Never secrets: those come from your environment.
    env: dict[str, str] = field(default_factory=dict)
    exclusive: bool | None = None
    # false: submit, print the job ids and the artifacts to expect, and exit without waiting.
    wait: bool = True
    # The partition to use with wait=false (env.toml's batch_partition); None = `partition`.
    batch_partition: str | None = None
    # true: write and print the sbatch script, submit nothing.
    dry_run: bool = False
    # Requeue the job when Slurm preempts it (max_num_timeout counts requeues after timeouts). A requeued
    # job starts again from the beginning: the stage resumes from its own checkpoints.
    requeue: bool = True


ConfigStore.instance().store(
    group="hydra/launcher", name="nemotron_slurm", node=NemotronSlurmQueueConf, provider="nemotron"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="nemotron_submitit_local", node=NemotronLocalQueueConf, provider="nemotron"
)
