"""What the two backends share: the cluster shape, the sbatch script around their srun steps, the dry-run print.

The cluster comes from the job config's `launcher:` node (the keys of `conf/launcher/slurm.yaml`, set by a
cluster profile such as `launcher=gpu_2x8`). The script written here is the submission a user could also run
by hand with `sbatch`: one srun step per node with the pyxis container flags on srun (never on `#SBATCH`,
where pyxis would run the batch script itself inside the container, without srun).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict

from nemotron.cluster import sbatch
from nemotron.cluster.checks import ClusterError, check_no_secret_values, check_settings, check_single_line
from nemotron.errors import NemotronError

# Environment variables a job needs that carry credentials: they reach the job through the environment of the
# shell that runs sbatch (Slurm exports it), never through the script. Named in the script, never valued.
SECRET_VARIABLES = ("WANDB_API_KEY", "HF_TOKEN")


class BackendStageParams(BaseModel):
    """The `stage:` keys both backends read (the rest belong to the embedded trainer, or to one backend)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    data_uri: str
    # None: the recipe's value (model.train.<stage> in the model's YAML; see conf/model/nano3.yaml)
    steps: int | None
    lr: float | None = None
    min_lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    seed: int = 1234
    output_dir: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Cluster:
    """The allocation a backend job runs in."""

    nodes: int
    gpus_per_node: int
    tasks_per_node: int = 1
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    timeout_min: int = 60
    exclusive: bool | None = None
    container_image: str | None = None
    container_mounts: tuple[str, ...] = ()
    python: str = "python"
    setup: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node


def cluster_from_config(cfg: DictConfig, backend: str) -> Cluster:
    """The cluster named by `launcher:`, checked as the Slurm launcher checks it (nodes, container python, env)."""
    node = cfg.get("launcher")
    if node is None or "nodes" not in node:
        raise ClusterError(
            f"{backend} runs on a Slurm cluster, but no cluster profile is selected (launcher=local has no nodes "
            "or GPUs). Add one to the command, e.g. launcher=gpu_2x8 (2 nodes of 8 GPUs; copy "
            "conf/launcher/gpu_2x8.yaml into your config dir for your own cluster)."
        )
    settings = OmegaConf.to_container(node, resolve=True)
    assert isinstance(settings, dict)
    check_settings(settings)
    gpus = settings.get("gpus_per_node")
    if not isinstance(gpus, int) or gpus < 1:
        raise ClusterError(
            f"launcher.gpus_per_node={gpus}: {backend} needs GPUs. Set launcher.gpus_per_node to the GPUs of one "
            "node, e.g. launcher.gpus_per_node=8."
        )
    if settings.get("tasks_per_node", 1) != 1:
        raise ClusterError(
            f"launcher.tasks_per_node={settings.get('tasks_per_node')}: {backend} starts one task per node, which "
            "runs torchrun (or Ray) for all the node's GPUs. Set launcher.tasks_per_node=1."
        )
    return Cluster(
        nodes=settings["nodes"],
        gpus_per_node=gpus,
        partition=settings.get("partition"),
        account=settings.get("account"),
        qos=settings.get("qos"),
        timeout_min=int(settings.get("timeout_min") or 60),
        exclusive=settings.get("exclusive"),
        container_image=settings.get("container_image"),
        container_mounts=tuple(settings.get("container_mounts") or ()),
        python=str(settings.get("python") or "python"),
        setup=tuple(settings.get("setup") or ()),
        env={str(k): str(v) for k, v in (settings.get("env") or {}).items()},
        settings=settings,
    )


def sbatch_header(cluster: Cluster, job_name: str, log_dir: Path) -> list[str]:
    """The `#SBATCH` lines, the environment exports and the setup lines of a backend's batch script (written by
    the one generator, `nemotron.cluster.sbatch`); `setup` lines are shell code and are written as given."""
    check_single_line("The job name", job_name)
    check_single_line("The run directory", log_dir)
    hours, minutes = divmod(cluster.timeout_min, 60)
    options = [
        ("job-name", job_name),
        ("nodes", int(cluster.nodes)),
        ("ntasks-per-node", 1),
        ("gpus-per-node", int(cluster.gpus_per_node)),
        ("time", f"{hours:02d}:{minutes:02d}:00"),
        ("output", f"{log_dir}/%x_%j.out"),
        ("partition", cluster.partition),
        ("account", cluster.account),
        ("qos", cluster.qos),
        ("exclusive", bool(cluster.exclusive)),
    ]
    lines = ["#!/bin/bash", *sbatch.sbatch_lines(options), "", "set -euo pipefail", *sbatch.export_lines(cluster.env)]
    lines += list(cluster.setup)
    secrets = " ".join(f"${name}" for name in SECRET_VARIABLES)
    lines += [
        "# The submission launcher=<profile> makes (without stage.dry_run) runs the same srun step through submitit,",
        "# and node 0 then commits the checkpoint as an artifact. Run by hand with sbatch, nothing is committed.",
        f"# Secrets ({secrets}) come from the environment of the shell that runs sbatch, never from here.",
    ]
    return lines


def srun(cluster: Cluster, mounts: Sequence[str], workdir: str, *options: str) -> str:
    """An srun command prefix with the pyxis container flags, each one quoted word. `options` are shell words
    as the backend writes them (they may name the script's variables: `"--nodelist=$HEAD_NODE"`)."""
    check_single_line("The working directory", workdir)
    check_single_line("launcher.container_image", cluster.container_image or "")
    for mount in mounts:
        check_single_line("launcher.container_mounts", mount)
    return sbatch.srun_command(options, sbatch.container_args(cluster.container_image, mounts, workdir))


def container_mounts(cluster: Cluster, paths: Sequence[str | None]) -> list[str]:
    """The profile's mounts plus `P:P` for each local path the job reads or writes that they do not cover."""
    from nemotron.cluster.slurm import container_auto_mounts

    user = list(cluster.container_mounts)
    return list(dict.fromkeys([*user, *container_auto_mounts(paths, user)]))


def dump_yaml(data: Mapping[str, Any]) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(dict(data)), sort_keys=False)


def write_and_show(title: str, config: Mapping[str, Any], config_path: Path, script: str, script_path: Path) -> None:
    """Write the backend config and the sbatch script, check them for secrets, and print both (dry run)."""
    text = dump_yaml(config)
    check_no_secret_values({"config": text, "script": script}, "the generated configuration or sbatch script")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text)
    script_path.write_text(script)
    out = sys.stdout
    out.write(f"# ---- {title}: {config_path}\n{text}")
    out.write(f"# ---- sbatch script (dry run, nothing submitted): {script_path}\n{script}")
    out.write(f"# ---- to submit it yourself: sbatch {script_path}\n")
    out.flush()


def require_paths(paths: Mapping[str, str]) -> None:
    """Every local input path exists (remote URLs are the job's to read)."""
    for what, path in paths.items():
        if "://" not in path and not os.path.exists(path):
            raise ClusterError(f"{what} {path} does not exist on this host; the job would fail to read it.")


def local_cluster(python: str) -> Cluster:
    """This machine alone (a run without a cluster profile, e.g. the one-node smoke test): all visible GPUs."""
    import torch

    count = torch.cuda.device_count()
    if count < 1:
        raise ClusterError("This backend needs at least one GPU, and this machine has none visible.")
    return Cluster(nodes=1, gpus_per_node=count, python=python)


def only_set(values: dict[str, Any]) -> dict[str, Any]:
    """The values that are set: a None hyperparameter is left to the recipe (or NeMo-RL's base config)."""
    return {key: value for key, value in values.items() if value is not None}


# -- the library a job needs, checked at job start ------------------------------------------------------------


def version_tuple(text: str) -> tuple[int, ...]:
    """`0.6.2rc1+abc` -> (0, 6, 2): the leading numeric release segments."""
    import re

    match = re.match(r"\d+(\.\d+)*", text.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def installed_version(distribution: str, module: str, package_info: Path | None = None) -> str | None:
    """The version of `distribution` in this interpreter (importlib.metadata), else of the module's source
    checkout (`package_info.py` with MAJOR/MINOR/PATCH, read without importing it); None if neither exists."""
    import importlib.metadata
    import importlib.util

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    if package_info is None:
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # the parent package is missing too
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None
        package_info = Path(list(spec.submodule_search_locations)[0]) / "package_info.py"
    return _package_info_version(package_info)


def _package_info_version(path: Path) -> str | None:
    import ast

    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    values: dict[str, Any] = {}
    for node in tree.body:
        simple = isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        if simple and isinstance(node.value, ast.Constant):
            values[node.targets[0].id] = node.value.value
    if "MAJOR" not in values or "MINOR" not in values:
        return None
    return f"{values['MAJOR']}.{values['MINOR']}.{values.get('PATCH', 0)}"


def require_library(
    what: str,
    found: str | None,
    minimum: tuple[int, ...],
    below: tuple[int, ...] | None,
    image: str,
    fix: str,
) -> None:
    """One paragraph naming the image to run in when the job's environment lacks the library version it needs."""
    wanted = ".".join(map(str, minimum)) + (f" and below {'.'.join(map(str, below))}" if below else " or newer")
    version = version_tuple(found) if found else ()
    if found and version >= minimum and (below is None or version < below):
        return
    have = f"This job's environment has {what} {found}" if found else f"{what} is not installed in this environment"
    raise NemotronError(
        f"{have}, and nemotron's {what} backend needs {what} {wanted}. Run it in {image} ({fix}), or add "
        "stage.dry_run=true to see the configuration and the Slurm submission without it."
    )
