"""The one sbatch script generator: every batch script nemotron writes is made here.

Two kinds of submission use it: the Slurm launcher's (`launcher=slurm` and its profiles: a job array of
`python -m submitit.core._submit`, which submitit submits and watches; `submitit_script` writes it in submitit's
layout, handed to submitit through `NemotronSlurmExecutor`) and the backends' (Megatron-Bridge's torchrun step,
NeMo-RL's Ray cluster, convert's one step: scripts a user may also submit by hand). The rules hold for both:

- every value is one shell word (`shlex.quote`; sbatch reads quotes on `#SBATCH` lines as the shell does);
- a value with a newline or another control character is refused: no quoting keeps it on its line, and the rest
  would run as a command while sbatch ignored every `#SBATCH` line after it;
- an environment variable name must be one, an sbatch option name must be one;
- `setup` lines are shell code by design and are written as given.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nemotron.cluster.checks import ClusterError, check_single_line

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def word(value: Any, what: str) -> str:
    """`value` as one shell word; a newline or another control character is refused (`what` names it)."""
    check_single_line(what, value)
    return shlex.quote(str(value))


def words(values: Iterable[Any], what: str) -> str:
    """Each value one shell word, joined by spaces (an srun or sbatch argument list)."""
    return " ".join(word(value, what) for value in values)


def bash_c(command: str) -> str:
    """`bash -c COMMAND`, the command quoted as one word: its `$VARS` expand in that bash, on the node."""
    return f"bash -c {shlex.quote(command)}"


def sbatch_lines(options: Iterable[tuple[str, Any]], what: str = "launcher") -> list[str]:
    """One `#SBATCH --key=VALUE` line per option, in the order given (`_` in a key becomes `-`; True is a bare
    flag; None and False are left out). `what` prefixes the name an error gives a bad value."""
    lines = []
    for key, value in options:
        if value is None or value is False:
            continue
        if not _OPTION_NAME.fullmatch(str(key)):
            raise ClusterError(f"{what}: {str(key)!r} is not an sbatch option name (letters, digits, - and _).")
        flag = str(key).replace("_", "-")
        lines.append(f"#SBATCH --{flag}" if value is True else f"#SBATCH --{flag}={word(value, f'{what}.{key}')}")
    return lines


def export_lines(env: Mapping[str, Any], what: str = "launcher.env") -> list[str]:
    """`export NAME=VALUE` per variable, the value one quoted word."""
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(str(name)):
            raise ClusterError(f"{what}.{name}: {str(name)!r} is not a valid environment variable name.")
        lines.append(f"export {name}={word(value, f'{what}.{name}')}")
    return lines


def container_args(image: str | None, mounts: Sequence[str], workdir: str) -> list[str]:
    """The pyxis flags of an srun step (unquoted arguments): on srun, never on `#SBATCH`, where pyxis would run
    the batch script itself inside the container, without srun."""
    if not image:
        return []
    args = [f"--container-image={image}"]
    if mounts:
        args.append(f"--container-mounts={','.join(mounts)}")
    return [*args, f"--container-workdir={workdir}"]


def srun_command(options: Sequence[str] = (), arguments: Sequence[str] = (), what: str = "The srun argument") -> str:
    """`srun OPTIONS ARGUMENTS`: `options` are shell words as the caller writes them (they may name the script's
    variables: `"--nodelist=$HEAD_NODE"`), `arguments` are values, each quoted as one word."""
    return " ".join(["srun", *options, *([words(arguments, what)] if arguments else [])])


def script(header: Sequence[str], body: Sequence[str]) -> str:
    """`#!/bin/bash`, the `#SBATCH` lines (sbatch reads them only up to the first command), then the body."""
    return "\n".join(["#!/bin/bash", *header, *body])


# -- the launcher's submission, in submitit's layout -----------------------------------------------------------

# submitit's generic launcher names that are not `#SBATCH` options (see submitit.slurm.slurm._make_sbatch_string)
_SUBMITIT_ONLY = {
    "map_count", "array_parallelism", "additional_parameters", "setup", "teardown", "signal_delay_s",
    "stderr_to_stdout", "srun_args", "use_srun",
}  # fmt: skip


def submitit_script(command: str, folder: str | Path, parameters: Mapping[str, Any]) -> str:
    """The batch script of a submitit job (a job array when `map_count` is set), as submitit 1.5 lays it out:
    the sorted `#SBATCH` options with submitit's signal, log paths and open mode, the setup lines, then
    `srun --unbuffered --output ... --error ... SRUN_ARGS COMMAND`. `command` is submitit's own (its python,
    already one quoted word, and `-u -m submitit.core._submit FOLDER`)."""
    from submitit.core.utils import JobPaths
    from submitit.slurm.slurm import SlurmJobEnvironment

    params = {"job_name": "submitit", "time": 5, "nodes": 1, "wckey": "submitit", **parameters}
    options = {key: value for key, value in params.items() if key not in _SUBMITIT_ONLY and value is not None}
    options["signal"] = f"{SlurmJobEnvironment.USR_SIG}@{params.get('signal_delay_s', 90)}"
    paths = JobPaths(folder=folder)
    stdout, stderr = str(paths.stdout), str(paths.stderr)
    count = params.get("map_count")
    if count:  # job arrays write <ARRAY_ID>_<ARRAY_TASK_ID>_<TASK_ID>
        options["array"] = f"0-{count - 1}%{min(count, params.get('array_parallelism', 256))}"
        stdout, stderr = stdout.replace("%j", "%A_%a"), stderr.replace("%j", "%A_%a")
    options["output"] = stdout.replace("%t", "0")
    separate_stderr = not params.get("stderr_to_stdout")
    if separate_stderr:
        options["error"] = stderr.replace("%t", "0")
    options["open-mode"] = "append"
    options.update(params.get("additional_parameters") or {})
    header = ["", "# Parameters", *sbatch_lines(sorted(options.items()))]
    body = ["", "# setup", *params["setup"]] if params.get("setup") is not None else []
    logs = ["--output", stdout, *(["--error", stderr] if separate_stderr else [])]
    srun = srun_command(arguments=["--unbuffered", *logs, *(params.get("srun_args") or [])], what="launcher.srun_args")
    body += ["", "# command", "export SUBMITIT_EXECUTOR=slurm", f"{srun} {command}", ""]
    if params.get("teardown") is not None:
        body += ["", "# teardown", *params["teardown"]]
    return script(header, body)
