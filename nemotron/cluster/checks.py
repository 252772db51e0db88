"""Checks run on the submitting host before anything is submitted to Slurm.

Each failure is a `ClusterError` whose message is one paragraph saying what is wrong and what to do; the
launcher turns it into a non-zero exit without a traceback. Checks that need the cluster (`sbatch`,
`sinfo`) run only where those commands exist and are skipped for dry runs.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from nemotron.errors import NemotronError
from nemotron.secrets import is_secret_name, redact_text, secret_values

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SBATCH_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Launcher keys whose values are shell code by design (run as written), not values to quote.
_SHELL_CODE = ("setup",)
# Config keys refused on a submitit command line: narrower than the redaction rule (nemotron.secrets), which
# also redacts `x.sort_key`-like names it cannot tell apart; these certainly hold credentials.
_CREDENTIAL_KEY = re.compile(
    r"(^|_)(api_?key|secret(_key)?|password|passwd|pwd|credentials?|auth|authorization|bearer|private_?key)$"
    r"|^((hf|auth|access|api|wandb|ngc|bearer)_)?token$",
    re.IGNORECASE,
)
# Parallel sizes a model config may declare (Megatron-Bridge / NeMo-RL spellings).
_PARALLEL_KEYS = {
    "tensor": ("tensor_model_parallel_size", "tensor_parallel_size"),
    "pipeline": ("pipeline_model_parallel_size", "pipeline_parallel_size"),
    "context": ("context_parallel_size",),
}


class ClusterError(NemotronError):
    """Bad launcher input, found before submission."""


def check_settings(params: Mapping[str, Any]) -> None:
    """The launcher's own numbers and strings (no cluster needed)."""
    _at_least(params, "nodes", 1, "a job needs at least one node")
    _at_least(params, "tasks_per_node", 1, "each node runs at least one task (one per GPU for DDP)")
    _at_least(params, "gpus_per_node", 0, "a node cannot have a negative number of GPUs", optional=True)
    _at_least(params, "cpus_per_task", 1, "each task needs at least one CPU", optional=True)
    _at_least(params, "mem_gb", 0, "memory cannot be negative (0 asks Slurm for all of the node's)", optional=True)
    _at_least(params, "timeout_min", 1, "the time limit is in minutes and must be at least 1")
    _at_least(params, "max_num_timeout", 0, "it counts requeues after a timeout (0 = never requeue)")
    if params.get("container_image") and not params.get("python"):
        raise ClusterError(
            f"launcher.container_image={params['container_image']} is set but launcher.python is not. The job "
            f"runs `<python> -m submitit.core._submit` inside the container, and this machine's interpreter "
            f"({sys.executable}) is normally not in the image. Set launcher.python to the image's interpreter, "
            "e.g. launcher.python=python3 (a name on the image's PATH is safest: srun looks up absolute paths "
            "outside the container)."
        )
    for name in params.get("env") or {}:
        if not _ENV_NAME.match(str(name)):
            raise ClusterError(f"launcher.env.{name}: {name!r} is not a valid environment variable name.")
        if is_secret_name(str(name)):
            raise ClusterError(
                f"launcher.env.{name} would write a secret into the batch script, where anyone who can read the "
                f"job's files sees it. Remove it and export {name} in the shell you submit from instead: Slurm "
                "passes that environment to the job."
            )
    for index, mount in enumerate(params.get("container_mounts") or []):
        if not str(mount).strip() or "," in str(mount):
            raise ClusterError(
                f"launcher.container_mounts[{index}]={mount!r}: give one mount per list item, as SRC:DST[:FLAGS]."
            )
    check_script_values(params)
    check_no_secret_values(params, "the launcher settings")


def check_script_values(params: Mapping[str, Any]) -> None:
    """Every launcher value that reaches the sbatch script stays one quoted word on its own line: no newline
    or other control character (it would end its `#SBATCH` line, run the rest as a command and make sbatch
    ignore every `#SBATCH` line after it), `additional_parameters` keys that are option names, and a
    `python` that is one interpreter. `setup` lines are shell code and are run as written."""
    for path, text in _strings({k: v for k, v in params.items() if k not in _SHELL_CODE}):
        check_single_line(f"launcher.{path}", text)
    for key in params.get("additional_parameters") or {}:
        if not _SBATCH_OPTION.match(str(key)):
            raise ClusterError(
                f"launcher.additional_parameters has the key {str(key)!r}, which is not an sbatch option name "
                "(letters, digits, - and _, e.g. mail-type). Each key becomes `#SBATCH --KEY=VALUE`."
            )
    python = params.get("python")
    if python is not None and (not str(python).strip() or any(c.isspace() for c in str(python))):
        raise ClusterError(
            f"launcher.python={str(python)!r}: give one interpreter, a name on the node's PATH or an absolute path "
            "without spaces (e.g. python3); it is run as one word. Put environment activation (module load, "
            "source venv/bin/activate) in launcher.setup."
        )


def check_single_line(what: str, value: Any) -> None:
    """Refuse a value with a newline or another control character: written into a script it would end its line
    (the rest runs as a command, and sbatch ignores the `#SBATCH` lines after it)."""
    text = str(value)
    if _CONTROL.search(text):
        raise ClusterError(
            f"{what}={text!r} contains a newline or another control character, which would end its line of the "
            "sbatch script: the rest would run as a shell command and sbatch would ignore every #SBATCH line "
            f"after it. Give {what} on one line, without control characters."
        )


def check_no_secret_values(node: Any, where: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse if the value of a secret-named environment variable appears anywhere in `node`.

    Whatever the launcher submits (the batch script, the pickled job config) is readable on the cluster's
    filesystem; a secret must reach the job through the environment only.
    """
    secrets = secret_values(os.environ if environ is None else environ)
    if not secrets:
        return
    for path, text in _strings(node):
        for name, value in secrets.items():
            if value in text:
                raise ClusterError(
                    f"The value of ${name} appears in {where} (at {path or 'the top'}), which would be written into "
                    f"the job's submission files. Secrets reach a job through the environment only: leave {name} "
                    f"exported in your shell (Slurm passes it on) for the library that reads it (huggingface_hub "
                    "reads HF_TOKEN, wandb WANDB_API_KEY), and do not copy it into a config value, not even as "
                    "${oc.env:...}: whatever a config holds is written into the job's records."
                )


def check_overrides(overrides: Iterable[str]) -> None:
    """No credential on the command line: it would be pickled with the job's config."""
    for item in overrides:
        key, sep, value = str(item).partition("=")
        last = key.lstrip("+~").rsplit(".", 1)[-1]
        value = value.strip("'\"")
        if not sep or not value or value.startswith("${"):
            continue
        if _CREDENTIAL_KEY.search(last):
            what = "a credential"
        elif "${" not in value and redact_text(value, ()) != value:
            what = "a value with a password or token in it (a URL's user:password@, a bearer token, a private key)"
        else:
            continue
        raise ClusterError(
            f"The command line sets {key.lstrip('+~')}, {what}. The submitit and Slurm launchers write the job's "
            "config and overrides into its submission files, so secrets must not be in them: export it as an "
            "environment variable in the shell you submit from and let the library that needs it read it from "
            "there (huggingface_hub reads HF_TOKEN, wandb WANDB_API_KEY)."
        )


def check_launcher_parallelism(job_config: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Tensor x pipeline x context parallel sizes, when the model declares them, must fit the GPUs asked for."""
    sizes = _parallel_sizes(job_config)
    if not sizes:
        return
    gpus_per_node = int(params.get("gpus_per_node") or 0)
    nodes = int(params.get("nodes") or 1)
    expert = _expert_size(job_config)
    check_parallel_sizes(sizes, nodes=nodes, gpus_per_node=gpus_per_node, expert=expert)


def check_parallel_sizes(
    sizes: Mapping[str, int], *, nodes: int, gpus_per_node: int, expert: int = 1, where: str = "launcher"
) -> None:
    """`sizes` (tensor, pipeline, context) multiply to the GPUs of one model replica, which must divide the
    total; the tensor size must fit within a node or span whole nodes; expert x expert-tensor parallel
    (`expert`) must divide the GPUs of one pipeline stage, as Megatron requires."""
    sizes = {key: int(value) for key, value in sizes.items() if int(value) > 1}
    described = " x ".join(f"{key}={value}" for key, value in sizes.items()) or "no model parallelism"
    per_replica = math.prod(sizes.values())
    if gpus_per_node < 1:
        raise ClusterError(
            f"The model is parallelised ({described}) but {where}.gpus_per_node is not set. Set it to the GPUs "
            f"of one node, e.g. {where}.gpus_per_node=8."
        )
    total = gpus_per_node * nodes
    tensor = next((v for k, v in sizes.items() if k in _PARALLEL_KEYS["tensor"]), 1)
    fits_node = gpus_per_node % tensor == 0 if tensor <= gpus_per_node else tensor % gpus_per_node == 0
    if total % per_replica or not fits_node:
        raise ClusterError(
            f"{where}.gpus_per_node={gpus_per_node} on {where}.nodes={nodes} gives {total} GPUs, which the "
            f"model's parallelism cannot use: {described} = {per_replica} GPUs per model replica must divide the "
            f"total GPUs, and gpus_per_node must be a multiple of the tensor parallel size ({tensor}) or divide "
            f"it. Change {where}.gpus_per_node or {where}.nodes, or the parallel sizes."
        )
    pipeline = next((v for k, v in sizes.items() if k in _PARALLEL_KEYS["pipeline"]), 1)
    if expert > 1 and (total // pipeline) % expert:
        raise ClusterError(
            f"Expert parallelism needs {expert} GPUs per expert group (expert_model_parallel_size x "
            f"expert_tensor_parallel_size), which must divide the {total // pipeline} GPUs of one pipeline stage "
            f"({total} GPUs / pipeline size {pipeline}). Change the expert parallel size, or {where}.nodes or "
            f"{where}.gpus_per_node."
        )


def check_cluster(partition: str | None) -> None:
    """sbatch is on PATH, and the partition exists (asked to sinfo, when it answers)."""
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "launcher=slurm submits with sbatch, which is not on PATH here. Run the command on a login node of "
            "your Slurm cluster, or add launcher.dry_run=true to only write and show the sbatch script."
        )
    if not partition or shutil.which("sinfo") is None:
        return
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return  # the controller does not answer: sbatch will say so
    known = sorted({line.strip() for line in out.stdout.splitlines() if line.strip()})
    if known and partition not in known:
        raise ClusterError(
            f"launcher.partition={partition}: this cluster has no such partition. Partitions here (sinfo): "
            f"{', '.join(known)}. Set launcher.partition to one of them."
        )


def sacct_works() -> bool:
    """Whether Slurm accounting answers: without it a cancelled job cannot be told from a running one."""
    if shutil.which("sacct") is None:
        return False
    try:
        result = subprocess.run(["sacct", "-n", "-X", "-j", "1", "-o", "JobID"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _at_least(params: Mapping[str, Any], key: str, minimum: int, why: str, optional: bool = False) -> None:
    value = params.get(key)
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ClusterError(f"launcher.{key}={value}: {why}. Set launcher.{key} to {minimum} or more.")


def _parallel_sizes(job_config: Mapping[str, Any]) -> dict[str, int]:
    """The declared parallel sizes: `model.parallelism` when the model has one (Megatron-Bridge models), else
    any size named anywhere in the model and stage sections."""
    model = job_config.get("model")
    declared = model.get("parallelism") if isinstance(model, Mapping) else None
    sections = [declared] if isinstance(declared, Mapping) else [model, job_config.get("stage")]
    sizes: dict[str, int] = {}
    names = {name for group in _PARALLEL_KEYS.values() for name in group}
    for section in sections:
        for key, value in _items(section, depth=3):
            if key in names and isinstance(value, int) and not isinstance(value, bool) and value > 1:
                sizes.setdefault(key, value)
    return sizes


def _expert_size(job_config: Mapping[str, Any]) -> int:
    """expert_model_parallel_size x expert_tensor_parallel_size of `model.parallelism` (1 when not declared)."""
    model = job_config.get("model")
    declared = model.get("parallelism") if isinstance(model, Mapping) else None
    if not isinstance(declared, Mapping):
        return 1
    sizes = [declared.get(key) for key in ("expert_model_parallel_size", "expert_tensor_parallel_size")]
    return math.prod(value for value in sizes if isinstance(value, int) and value > 0)


def _items(node: Any, depth: int):
    """(key, value) of every entry of a nested mapping, down to `depth` levels."""
    if depth == 0 or not isinstance(node, Mapping):
        return
    for key, value in node.items():
        yield str(key), value
        yield from _items(value, depth - 1)


def _strings(node: Any, path: str = ""):
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node
