"""env.toml execution profiles (seed-compatible), turned into `launcher=NAME` options.

A profile is a top-level table of env.toml other than the reserved `[wandb]`, `[artifacts]`, `[cache]` and
`[cli]`; `extends = "other"` inherits another profile's keys (the child wins):

    [cluster]
    executor = "slurm"
    account = "my-account"
    partition = "batch"
    container_image = "/lustre/images/nemotron.sqsh"
    python = "python3"
    mounts = ["/lustre:/lustre"]
    nodes = 1
    gpus_per_node = 8
    time = "04:00:00"
    env_vars = { NCCL_DEBUG = "WARN" }

    [cluster-2n]
    extends = "cluster"
    nodes = 2

`python -m nemotron launcher=cluster-2n ...` then composes exactly what a YAML profile with the same values
composes (`defaults: [slurm, _self_]` plus a `launcher:` node), so both give the same sbatch script.
`profile_config` does the translation; `hydra_plugins/nemotron_launcher/env_profiles.py` shows the profiles
to Hydra as options of the `launcher` group.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError

RESERVED_SECTIONS = frozenset({"wandb", "artifacts", "cache", "cli"})
EXECUTORS = ("slurm", "local")

# env.toml key -> key of the `launcher:` node (conf/launcher/slurm.yaml), copied as is.
_SAME = {
    "account": "account",
    "partition": "partition",
    "run_partition": "partition",
    "batch_partition": "batch_partition",
    "qos": "qos",
    "nodes": "nodes",
    "gpus_per_node": "gpus_per_node",
    "ntasks_per_node": "tasks_per_node",
    "tasks_per_node": "tasks_per_node",
    "cpus_per_task": "cpus_per_task",
    "exclusive": "exclusive",
    "constraint": "constraint",
    "exclude": "exclude",
    "container_image": "container_image",
    "container": "container_image",
    "python": "python",
    "srun_args": "srun_args",
    "requeue": "requeue",
    "max_num_timeout": "max_num_timeout",
}
# Keys with a conversion: time -> timeout_min, mem -> mem_gb, mounts -> container_mounts, ...
_CONVERTED = {"time", "mem", "mounts", "container_mounts", "lustre_mount", "env_vars", "setup_lines"}
# Seed keys for things nemotron does differently (it submits from the login node it runs on, and the job
# runs `python -m submitit`, not a packaged script): accepted and ignored.
_IGNORED = {"executor", "extends", "description", "tunnel", "host", "user", "identity", "remote_job_dir", "job_dir"}
_IGNORED_PREFIXES = ("build_", "ray_", "pre_ray_")


class ProfileError(NemotronError):
    """An env.toml profile that cannot be used."""


def profile_names(data: dict[str, Any]) -> list[str]:
    """The profiles of a parsed env.toml: top-level tables that are not reserved sections."""
    return sorted(k for k, v in data.items() if isinstance(v, dict) and k not in RESERVED_SECTIONS)


def merged_profile(data: dict[str, Any], name: str, source: str = "env.toml") -> dict[str, Any]:
    """The profile `name` with everything it `extends` merged in (the child's keys win; tables merge)."""
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            cycle = " -> ".join([*chain, current])
            raise ProfileError(f"The profiles of {source} extend each other in a cycle: {cycle}. Break the cycle.")
        if current not in profile_names(data):
            known = ", ".join(profile_names(data)) or "none"
            if not chain:
                raise ProfileError(f"{source} has no profile [{name}]. Profiles there: {known}.")
            raise ProfileError(
                f'Profile [{chain[-1]}] of {source} has extends = "{current}", but there is no profile '
                f"[{current}]. Profiles there: {known}."
            )
        chain.append(current)
        parent = data[current].get("extends")
        if parent is not None and not isinstance(parent, str):
            raise ProfileError(f"Profile [{current}] of {source}: extends must name one profile, got {parent!r}.")
        current = parent
    merged: dict[str, Any] = {}
    for link in reversed(chain):
        merged = _merge(merged, data[link])
    merged.pop("extends", None)
    return merged


def profile_config(data: dict[str, Any], name: str, source: str = "env.toml") -> dict[str, Any]:
    """The Hydra config of `launcher=NAME` for an env.toml profile: a defaults list and a `launcher:` node."""
    profile = merged_profile(data, name, source)
    where = f"Profile [{name}] of {source}"
    executor = profile.get("executor", "local")
    if executor not in EXECUTORS:
        raise ProfileError(
            f'{where} has executor = "{executor}"; nemotron runs profiles with executor "slurm" (through its '
            f'Slurm launcher) or "local" (in this process). Use one of those, or a launcher YAML of your own.'
        )
    if executor == "local":
        return {"defaults": ["local", "_self_"]}
    tunnel = profile.get("tunnel", "local")
    if tunnel != "local":
        raise ProfileError(
            f'{where} has tunnel = "{tunnel}": nemotron submits with the sbatch of the machine it runs on. '
            'Run it on a login node of the cluster and remove tunnel (or set it to "local").'
        )
    launcher: dict[str, Any] = {}
    unknown = []
    for key, value in profile.items():
        if key in _SAME:
            launcher[_SAME[key]] = value
        elif key not in _CONVERTED and key not in _IGNORED and not key.startswith(_IGNORED_PREFIXES):
            unknown.append(key)
    if unknown:
        known = ", ".join(sorted({*_SAME, *_CONVERTED}))
        raise ProfileError(f"{where} has keys nemotron does not know: {', '.join(sorted(unknown))}. Known: {known}.")
    if "run_partition" in profile and "partition" in profile:
        launcher["partition"] = profile["run_partition"]
    if "time" in profile:
        launcher["timeout_min"] = slurm_minutes(profile["time"], where)
    if "mem" in profile:
        launcher["mem_gb"] = mem_gb(profile["mem"], where)
    mounts = [*_as_list(profile.get("mounts")), *_as_list(profile.get("container_mounts"))]
    mounts += _as_list(profile.get("lustre_mount"))
    if mounts:
        launcher["container_mounts"] = mounts
    if "setup_lines" in profile:
        value = profile["setup_lines"]
        launcher["setup"] = value.strip().splitlines() if isinstance(value, str) else list(value)
    if "env_vars" in profile:
        launcher["env"] = _env_vars(profile["env_vars"], where)
    return {"defaults": ["slurm", "_self_"], "launcher": launcher}


def load_profiles(path: Path) -> dict[str, Any]:
    """Parse and check env.toml as every reader does (nemotron.env_toml): any error names the file."""
    from nemotron.env_toml import check_env_data, parse_env_file

    data = parse_env_file(Path(path))
    check_env_data(data, str(path))
    return data


_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<rest>\d+(?::\d+){0,2})$")


def slurm_minutes(value: Any, where: str = "time") -> int:
    """A Slurm time limit in whole minutes (rounded up): 90, "90", "30:00" (MM:SS), "04:00:00", "1-12", "2-00:00:00"."""
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    else:
        match = _TIME.match(str(value).strip())
        if not match:
            raise ProfileError(
                f'{where}: time = "{value}" is not a Slurm time (minutes, "MM:SS", "HH:MM:SS", "D-HH", '
                f'"D-HH:MM" or "D-HH:MM:SS").'
            )
        parts = [int(p) for p in match["rest"].split(":")]
        if match["days"] is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
            parts += [0] * (3 - len(parts))
            seconds = int(match["days"]) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
        elif len(parts) == 1:  # minutes
            seconds = parts[0] * 60
        elif len(parts) == 2:  # MM:SS
            seconds = parts[0] * 60 + parts[1]
        else:  # HH:MM:SS
            seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
        minutes = math.ceil(seconds / 60)
    if minutes < 1:
        raise ProfileError(f'{where}: time = "{value}" must be at least one minute.')
    return minutes


_MEM = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)B?$", re.IGNORECASE)
_MB_PER_UNIT = {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024 * 1024}  # Slurm's default unit is MB


def mem_gb(value: Any, where: str = "mem") -> int:
    """Memory per node in whole GB as Slurm reads `--mem`: "64G", "512000M", "1T", 0 (all of the node's memory)."""
    match = _MEM.match(str(value).strip())
    if not match:
        raise ProfileError(f'{where}: mem = "{value}" is not a memory size such as "64G", "512000M" or "0".')
    megabytes = float(match["number"]) * _MB_PER_UNIT[match["unit"].upper()]
    if megabytes % 1024:
        raise ProfileError(f'{where}: mem = "{value}" is not a whole number of GB; write it in G, e.g. "64G".')
    return int(megabytes // 1024)


def _env_vars(value: Any, where: str) -> dict[str, str]:
    from nemotron.secrets import is_secret_name

    if not isinstance(value, dict):
        raise ProfileError(f'{where}: env_vars must be a table such as env_vars = {{ NCCL_DEBUG = "WARN" }}.')
    secrets = sorted(k for k in value if is_secret_name(k))
    if secrets:
        raise ProfileError(
            f"{where} sets {', '.join(secrets)} in env_vars. nemotron never writes secrets into job scripts or "
            f"configs: remove them from env.toml and export them in the shell you submit from (Slurm passes "
            f"that environment to the job)."
        )
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    return [str(v) for v in value]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
