"""From launcher settings to Slurm jobs: the submitit executor, its sbatch script (written by the one generator,
`nemotron.cluster.sbatch`), and what the user is told.

Used by `hydra_plugins.nemotron_launcher.launcher.NemotronSlurmLauncher` on the submitting host. The launcher
settings are the resolved `hydra.launcher` node (see `hydra_plugins/nemotron_launcher/config.py`).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from nemotron.cluster import sbatch
from nemotron.cluster.checks import ClusterError, check_script_values, check_single_line

# Launcher settings that are not sbatch/srun parameters (handled here or by the launcher).
_NOT_SUBMITIT = {
    "_target_",
    "submitit_folder",
    "max_num_timeout",
    "python",
    "container_image",
    "container_mounts",
    "env",
    "wait",
    "batch_partition",
    "dry_run",
    "requeue",
}


@dataclass
class PlannedJob:
    """One sweep point as the host sees it before submission."""

    index: int
    overrides: list[str]
    output_dir: str
    artifacts: list[str] = field(default_factory=list)
    slurm_job_id: str | None = None
    log: str | None = None


def executor_parameters(params: Mapping[str, Any], *, auto_mounts: Sequence[str], workdir: str) -> dict[str, Any]:
    """Keyword arguments for the executor (submitit's generic names, e.g. timeout_min, mem_gb).

    Adds what hydra-submitit-launcher 1.2.0 cannot express: `env` as `export` lines before the user's setup
    lines, and the pyxis flags (`--container-image`, `--container-mounts`, `--container-workdir`) first on
    the srun line, followed by the user's `srun_args`. The script quotes each `#SBATCH` value and srun argument;
    values that quoting cannot keep on their line (a newline) are refused here, before anything is written.
    """
    check_script_values(params)
    check_single_line("The working directory", workdir)
    for mount in auto_mounts:
        check_single_line("The container mount", mount)
    out = {key: value for key, value in params.items() if key not in _NOT_SUBMITIT and value is not None}
    if not params.get("wait", True) and params.get("batch_partition"):
        out["partition"] = params["batch_partition"]
    setup = sbatch.export_lines(params.get("env") or {})
    setup += list(params.get("setup") or [])
    out["setup"] = setup or None
    mounts = _unique([*(params.get("container_mounts") or []), *auto_mounts])
    srun_args = sbatch.container_args(params.get("container_image"), mounts, workdir)
    srun_args += list(params.get("srun_args") or [])
    out["srun_args"] = srun_args or None
    if not out.get("additional_parameters"):
        out.pop("additional_parameters", None)
    return {key: value for key, value in out.items() if value is not None}


def container_auto_mounts(paths: Sequence[str | None], user_mounts: Sequence[str]) -> list[str]:
    """`P:P` mounts for the local directories a job needs (working dir, sweep dir, config dirs, store root),
    skipping any that a user mount or an earlier one already covers."""
    covered = [_mount_target(m) for m in user_mounts]
    mounts = []
    for path in sorted({str(Path(p).resolve()) for p in paths if p and "://" not in p}, key=len):
        if any(path == c or path.startswith(c.rstrip("/") + "/") for c in covered):
            continue
        covered.append(path)
        mounts.append(f"{path}:{path}")
    return mounts


class NemotronSlurmExecutor(submitit.SlurmExecutor):
    """submitit's SlurmExecutor (it submits, watches and requeues), with its batch script written by
    nemotron's one generator instead of submitit's own."""

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return sbatch.submitit_script(command, self.folder, self.parameters)


class ScriptOnlyExecutor(NemotronSlurmExecutor):
    """The executor, creatable where Slurm is not installed: dry runs only render its script."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def make_executor(params: Mapping[str, Any], folder: str, parameters: Mapping[str, Any], render_only: bool = False):
    """submitit's executor for `parameters`; `launcher.python` is passed as one quoted word (submitit writes
    its `python` into the srun line as shell text)."""
    check_single_line("launcher.submitit_folder", folder)
    python = params.get("python")
    executor_class = ScriptOnlyExecutor if render_only else NemotronSlurmExecutor
    executor = executor_class(
        folder=folder,
        max_num_timeout=int(params.get("max_num_timeout") or 0),
        python=None if python is None else shlex.quote(str(python)),
    )
    # generic names (timeout_min, mem_gb, tasks_per_node, name) -> sbatch names, as submitit's AutoExecutor does
    executor.update_parameters(**executor._convert_parameters(dict(parameters)))
    return executor


def submit(executor: submitit.SlurmExecutor, function: Any, job_params: Sequence[tuple]) -> list[submitit.Job]:
    """Submit one job per parameter tuple: a single sbatch call (a job array when there are several)."""
    try:
        return executor.map_array(function, *zip(*job_params, strict=True))
    except FailedJobError as exc:  # what submitit raises when sbatch exits non-zero
        message = " ".join(str(exc).split())
        raise ClusterError(f"sbatch refused the submission, so nothing was submitted: {message}") from exc


def render_script(executor: submitit.SlurmExecutor, num_jobs: int) -> str:
    """The sbatch script the executor writes for `num_jobs` jobs (a job array when more than one)."""
    parameters = dict(executor.parameters)
    if num_jobs > 1:
        parameters["map_count"] = num_jobs
    return sbatch.submitit_script(executor._submitit_command_str, executor.folder, parameters)


def wait_for(jobs: Sequence[submitit.Job], planned: Sequence[PlannedJob]) -> list[Any]:
    """Each job's result (rank 0's Hydra JobReturn); a job that ended without one is a ClusterError."""
    from hydra.core.utils import JobStatus

    results, problems = [], []
    for job, plan in zip(jobs, planned, strict=True):
        try:
            result = job.results()[0]
            stopped = result.status == JobStatus.FAILED and isinstance(result._return_value, UncompletedJobError)
            if not stopped:
                results.append(result)
                continue
            # submitit's signal handler stopped the task (preemption or time limit) and did not requeue it
            problems.append(
                f"Slurm job {job.job_id} ({' '.join(plan.overrides) or 'no overrides'}) was stopped by Slurm "
                f"(preempted, or close to its time limit) and not requeued ({result._return_value}), so nothing "
                "was committed for it. launcher.requeue=true requeues preempted jobs, launcher.max_num_timeout=N "
                "jobs that reach their time limit."
            )
        except UncompletedJobError:
            failed = rank0_failure(job)
            if failed is not None:  # rank 0's own error names the rank that stopped: the clearer message
                results.append(failed)
                continue
            state = _state(job)
            problems.append(
                f"Slurm job {job.job_id} ({' '.join(plan.overrides) or 'no overrides'}) {_why(state)} (state "
                f"{state}), so its stage did not finish and nothing was committed for it."
            )
        except FailedJobError as exc:
            last = [line for line in str(exc).splitlines() if line.strip()][-1:] or ["(no message)"]
            problems.append(f"Slurm job {job.job_id} failed outside its stage (state {_state(job)}): {last[0].strip()}")
        problems[-1] += f" Its log: {job.paths.stderr}."
    if problems:
        total = f"{len(problems)} of {len(jobs)} Slurm jobs" if len(jobs) > 1 else "The Slurm job"
        raise ClusterError(f"{total} did not finish. " + " ".join(problems))
    return results


def rank0_failure(job: submitit.Job) -> Any:
    """Rank 0's failed Hydra JobReturn in a job of several tasks where another task left no result (it was
    killed): rank 0 noticed and failed with a message naming that rank. None when there is no such result."""
    from hydra.core.utils import JobStatus

    if job.num_tasks < 2:
        return None
    try:
        result = job.task(0).result()
    except (UncompletedJobError, FailedJobError):
        return None
    return result if getattr(result, "status", None) == JobStatus.FAILED else None


def print_committed(results: Sequence[Any], planned: Sequence[PlannedJob]) -> None:
    """What each finished job committed, as the host sees it: a line on stderr, and the artifact's JSON line on
    stdout when stdout is a pipe (so `launcher=slurm` stages can be piped like local ones)."""
    from hydra.core.utils import JobStatus
    from rich.console import Console

    from nemotron.artifacts.base import Artifact
    from nemotron.tracking.report import emit_json_line

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for result, job in zip(results, planned, strict=True):
        if result.status != JobStatus.COMPLETED:
            continue
        value = result._return_value
        artifacts = [value] if isinstance(value, Artifact) else list(value.values()) if isinstance(value, dict) else []
        for artifact in artifacts:
            if isinstance(artifact, Artifact) and artifact.uri:
                console.print(f"[green]committed[/] {artifact.uri} (Slurm job {job.slurm_job_id})")
                emit_json_line(artifact)


def expected_artifacts(job_config: Any) -> list[str]:
    """The artifact names a job will commit, as far as its config says: `stage.outputs` (a name or a list, which
    a stage may declare for this purpose), else `stage.name`; [] when neither can be read on this host."""
    from omegaconf import OmegaConf

    for key in ("stage.outputs", "stage.name"):
        try:
            value = OmegaConf.select(job_config, key, default=None, throw_on_missing=False)
            if OmegaConf.is_list(value):
                return [str(v) for v in value]
        except Exception:  # an interpolation that only the job can resolve
            continue
        if isinstance(value, str) and value:
            return [value]
    return []


def print_submitted(planned: Sequence[PlannedJob], store: str | None, folder: str) -> None:
    """wait=false: the job ids and the artifacts to expect (panel on stderr; JSON lines on stdout for pipes)."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    for job in planned:
        expect = ", ".join(job.artifacts) or "(named by the stage)"
        table.add_row(f"job {job.slurm_job_id}", " ".join(job.overrides) or "-", f"-> {expect}")
    table.add_row("store", store or "none (nothing is recorded)")
    table.add_row("logs", folder)
    names = sorted({name for job in planned for name in job.artifacts})
    first = planned[0].slurm_job_id.split("_")[0] if planned and planned[0].slurm_job_id else "JOBID"
    follow = f"squeue -j {first}" + (f"; nemotron-art show {names[0]}:latest when it ends" if names else "")
    table.add_row("follow", follow)
    title = f"submitted {len(planned)} Slurm job{'s' if len(planned) > 1 else ''} (not waiting)"
    Console(stderr=True, highlight=False, soft_wrap=True).print(Panel(table, title=f"[green]{title}", expand=False))
    if not sys.stdout.isatty():
        for job in planned:
            line = {
                "submitted": job.slurm_job_id,
                "artifacts": job.artifacts,
                "store": store,
                "overrides": job.overrides,
                "output_dir": job.output_dir,
                "log": job.log,
            }
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def print_dry_run(script: str, path: Path, planned: Sequence[PlannedJob]) -> None:
    """dry_run=true: the sbatch script on stdout, where it was written and what it would run on stderr."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    kind = f"a job array of {len(planned)}" if len(planned) > 1 else "one job"
    console.print(f"[yellow]dry run[/]: nothing submitted. The sbatch script for {kind} is in {path}:")
    sys.stdout.write(script if script.endswith("\n") else script + "\n")
    sys.stdout.flush()


_ENDINGS = {
    "CANCELLED": "was cancelled (scancel, or by an administrator)",
    "TIMEOUT": "hit its time limit (launcher.timeout_min) and was not requeued (launcher.max_num_timeout)",
    "PREEMPTED": "was preempted and not requeued (launcher.requeue)",
    "OUT_OF_MEMORY": "ran out of memory (launcher.mem_gb)",
    "NODE_FAIL": "lost its node",
}


def _why(state: str) -> str:
    for prefix, reason in _ENDINGS.items():
        if state.startswith(prefix):
            return reason
    return "ended without a result (cancelled, timed out or killed)"


def _state(job: submitit.Job) -> str:
    try:
        return job.state
    except Exception:  # sacct unavailable
        return "unknown"


def _mount_target(mount: str) -> str:
    parts = mount.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
