"""The run record written into every manifest."""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from nemotron.secrets import redact, redact_override
from nemotron.store.records import GitInfo, RunRecord

_PACKAGES = (
    "nemotron",
    "hydra-core",
    "omegaconf",
    "hydra-submitit-launcher",
    "submitit",
    "pydantic",
    "fsspec",
    "torch",
    "transformers",
    "tokenizers",
    "wandb",
    "megatron-core",
    "megatron-bridge",
    "nemo-rl",
)


def raw_overrides(hydra_config: Any, group: str = "task") -> list[str]:
    """`hydra.overrides.<group>` as typed, without resolving: an override such as
    `stage.src=${art:data,path}` must neither be resolved outside the job's tracking nor recorded resolved."""
    from omegaconf import OmegaConf

    overrides = OmegaConf.to_container(hydra_config.overrides, resolve=False).get(group) or []
    return [str(item) for item in overrides]


def git_info(directory: Path) -> GitInfo | None:
    """Commit and dirty flag of the git checkout containing `directory`, if any."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, dirty=bool(status), repo=git("rev-parse", "--show-toplevel") or "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def build_run_record(
    config: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    hydra_job_id: str | None = None,
    hydra_job_name: str | None = None,
    command: list[str] | None = None,
) -> RunRecord:
    """Describe the current process: command, config, code version, host and scheduler ids.

    `command` is the command line on the submitting host when it differs from this process's (submitit jobs).
    """
    import nemotron

    code_dir = Path(nemotron.__file__).resolve().parent
    return RunRecord(
        command=[redact_override(arg) for arg in command or command_line()],
        overrides=[redact_override(o) for o in overrides or []],
        config=redact(config or {}),
        git=git_info(Path.cwd()) or git_info(code_dir),
        host=socket.gethostname(),
        user=getpass.getuser(),
        cwd=os.getcwd(),
        output_dir=output_dir,
        hydra_job_id=hydra_job_id,
        hydra_job_name=hydra_job_name,
        slurm_job_id=slurm_job_id(),
        python=platform.python_version(),
        packages=package_versions(),
    )


def command_line() -> list[str]:
    """sys.argv as the user typed it: `python -m nemotron ...` rather than the path of __main__.py."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("nemotron", "__main__.py")):
        argv[0:1] = ["python", "-m", "nemotron"]
    return argv


def slurm_job_id() -> str | None:
    array_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_id:
        return f"{array_id}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID")
