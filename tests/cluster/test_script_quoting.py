"""Adversarial: launcher values never run as shell code in a generated sbatch script.

Both kinds of script of the one generator (nemotron.cluster.sbatch) are exercised: the launcher's submitit job
(launcher=slurm, through nemotron.cluster.slurm as the launcher calls it) and the backends' (model=nano3:
Megatron-Bridge and NeMo-RL, nemotron.backends). Values are generated
with Hypothesis from fragments that try to break out of quoting (newlines, quotes, `$(...)`, backticks, `;`,
`&&`, `|`, `#`, spaces) plus arbitrary text. Each generated script is either refused with a one-paragraph
ClusterError, or
  - passes `bash -n`, keeps every `#SBATCH` line in the header sbatch reads (before the first command), and
    each `#SBATCH` line is one option whose value is the value given;
  - run with stub `srun`/`sbatch`/`scontrol`/`ray`/`python3` first on PATH (they record their argv; the stub
    srun runs a step's `bash -c COMMAND` as the node would), it never creates the sentinel file that every
    injection payload touches.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers.clitools import clean_env, make_data, nemotron

from nemotron.cluster.checks import ClusterError

pytestmark = pytest.mark.adversarial

hypothesis = pytest.importorskip("hypothesis", reason="the quoting properties need hypothesis (the dev extra)")
st = hypothesis.strategies

# Every payload touches $PWNED_FILE when the shell runs it; quoted, it is only text.
PAYLOADS = [
    "$(touch $PWNED_FILE)",
    "`touch $PWNED_FILE`",
    ";touch $PWNED_FILE;",
    "\ntouch $PWNED_FILE #",
    "\ntouch $PWNED_FILE\n#SBATCH --x=y",
    "' ; touch $PWNED_FILE ; '",
    "'$(touch $PWNED_FILE)'",
    '" ; touch $PWNED_FILE ; "',
    '"$(touch $PWNED_FILE)"',
    "&& touch $PWNED_FILE",
    "| touch $PWNED_FILE",
    "$(touch${IFS}$PWNED_FILE)",
    "\\'$(touch $PWNED_FILE)\\'",
]
PIECES = ["a", "b-1", " ", "'", '"', "\\", "#", "$", "${HOME}", "%j", "=", ":", ",", "\t", "\n", "*", "~", "!"]


def value_strategy() -> Any:
    piece = st.sampled_from(PAYLOADS + PIECES) | st.text(min_size=1, max_size=6)
    return st.lists(piece, min_size=1, max_size=4).map("".join).filter(lambda v: "\x00" not in v)


def name_strategy() -> Any:
    """A directory name (no `/`, no NUL, not . or ..) made of the same fragments."""
    return (
        value_strategy()
        .map(lambda v: v.replace("/", "_")[:100])
        .filter(lambda v: v not in (".", "..") and len(v.encode()) < 200)
    )


STUBS = {
    "srun": """#!/bin/bash
printf '%s\\n' "srun $*" >> "$STUB_LOG"
while [ $# -gt 0 ]; do  # run the step's `bash -c COMMAND` as the node would
  if [ "$1" = bash ] && [ "$2" = -c ]; then exec bash -c "$3"; fi
  shift
done
""",
    "sbatch": '#!/bin/bash\nprintf \'%s\\n\' "sbatch $*" >> "$STUB_LOG"\necho "Submitted batch job 1"\n',
    "scontrol": '#!/bin/bash\nprintf \'%s\\n\' "scontrol $*" >> "$STUB_LOG"\nprintf "node0\\nnode1\\n"\n',
    "ray": '#!/bin/bash\nprintf \'%s\\n\' "ray $*" >> "$STUB_LOG"\n'
    '[ "$1" = status ] && printf " node_a\\n node_b\\n node_c\\n"\nexit 0\n',
    "python3": '#!/bin/bash\nprintf \'%s\\n\' "python3 $*" >> "$STUB_LOG"\n',
    "sleep": "#!/bin/bash\nexit 0\n",
}


@pytest.fixture(scope="module")
def sandbox() -> Path:
    with tempfile.TemporaryDirectory(prefix="quoting-") as directory:
        base = Path(directory)
        stubs = base / "stubs"
        stubs.mkdir()
        for name, text in STUBS.items():
            (stubs / name).write_text(text)
            (stubs / name).chmod(0o755)
        yield base


def run_script(sandbox: Path, script: str, cwd: Path) -> tuple[Path, str]:
    """`bash -n` the script, check its #SBATCH header, then run it with the stubs; (sentinel, stub log)."""
    path = sandbox / f"script-{uuid.uuid4().hex}.sh"
    path.write_text(script)
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, f"bash -n failed: {syntax.stderr}\n{script}"
    check_sbatch_header(script)
    sentinel = sandbox / f"pwned-{uuid.uuid4().hex}"
    log = sandbox / f"log-{uuid.uuid4().hex}"
    env = {
        "PATH": f"{sandbox / 'stubs'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(sandbox),
        "PWNED_FILE": str(sentinel),
        "STUB_LOG": str(log),
        "SLURM_JOB_NODELIST": "node[0-1]",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "0",
    }
    # capture_output waits for the script's background steps too (they hold its stdout)
    subprocess.run(["bash", str(path)], cwd=cwd, env=env, capture_output=True, timeout=60)
    assert not sentinel.exists(), f"an injected command ran:\n{script}"
    return sentinel, log.read_text() if log.exists() else ""


def check_sbatch_header(script: str) -> None:
    """sbatch reads `#SBATCH` lines only up to the first command: all of them must be there, one option each."""
    lines = script.splitlines()
    first_command = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), len(lines))
    late = [line for line in lines[first_command:] if line.startswith("#SBATCH")]
    assert not late, f"#SBATCH lines after the first command are ignored by sbatch: {late}"
    for line in lines[:first_command]:
        if line.startswith("#SBATCH"):
            words = shlex.split(line)  # sbatch reads quotes and backslashes on #SBATCH lines as the shell does
            assert len(words) == 2 and words[1].startswith("--"), line


def refused(error: ClusterError) -> None:
    message = str(error)
    assert "\n" not in message and len(message) < 1500, message
    assert "launcher." in message or "directory" in message or "The " in message, message


# -- the launcher's script (launcher=slurm) -------------------------------------------------------------------


def submitit_script(values: dict[str, str], workdir: Path, folder: Path) -> str:
    """The dry-run script of launcher=slurm for these launcher values, made as the launcher makes it."""
    from omegaconf import OmegaConf

    from hydra_plugins.nemotron_launcher.config import NemotronSlurmQueueConf
    from nemotron.cluster import checks, slurm

    params = OmegaConf.to_container(OmegaConf.structured(NemotronSlurmQueueConf))
    params.update(
        name="nemotron-register",
        submitit_folder=str(folder / "%j"),
        partition=values["partition"],
        account=values["account"],
        qos=values["qos"],
        constraint=values["constraint"],
        exclude=values["exclude"],
        additional_parameters={"mail-type": values["extra"]},
        python=values["python"],
        container_image=values["image"],
        container_mounts=[values["mount"]],
        env={"NCCL_DEBUG": values["env"]},
        srun_args=[f"--comment={values['srun']}"],
    )
    checks.check_settings(params)
    auto = slurm.container_auto_mounts([str(workdir)], params["container_mounts"])
    parameters = slurm.executor_parameters(params, auto_mounts=auto, workdir=str(workdir))
    executor = slurm.make_executor(params, str(folder / "%j"), parameters, render_only=True)
    return slurm.render_script(executor, 2)


KEYS = ["partition", "account", "qos", "constraint", "exclude", "extra", "python", "image", "mount", "env", "srun"]


@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(values=st.fixed_dictionaries({key: value_strategy() for key in KEYS}), dirname=name_strategy())
def test_submitit_script_never_runs_a_value(sandbox, values, dirname):
    workdir = sandbox / "work" / dirname
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError:
        hypothesis.reject()
    try:
        script = submitit_script(values, workdir, workdir / ".submitit")
    except ClusterError as exc:
        refused(exc)
        return
    _, log = run_script(sandbox, script, cwd=workdir)
    (srun,) = [line for line in log.splitlines() if line.startswith("srun ")]
    assert "submitit.core._submit" in srun


def test_submitit_script_keeps_values_whole(sandbox):
    """Quoted values reach sbatch and srun unchanged (spaces, quotes and `$` included)."""
    tricky = "a b'c\"$(d)`e`;f"
    workdir = sandbox / "work" / "wd $(x) 'y'"
    workdir.mkdir(parents=True)
    values = {key: "plain" for key in KEYS} | {"constraint": tricky, "python": "python3", "mount": "/a:/a"}
    script = submitit_script(values, workdir, workdir / ".submitit")
    header = {shlex.split(line)[1].split("=", 1)[0]: shlex.split(line)[1].split("=", 1)[1]
              for line in script.splitlines() if line.startswith("#SBATCH") and "=" in line}  # fmt: skip
    assert header["--constraint"] == tricky
    _, log = run_script(sandbox, script, cwd=workdir)
    assert f"--container-workdir={workdir}" in log


# -- the backends' scripts (model=nano3) -----------------------------------------------------------------------


def backend_scripts(values: dict[str, str], workdir: Path, out: Path) -> list[str]:
    """The Megatron-Bridge and NeMo-RL sbatch scripts for a cluster with these launcher values."""
    from omegaconf import OmegaConf

    from nemotron.backends import _cluster, megatron_bridge, nemo_rl

    values = {key: value.replace("${", "$ {") for key, value in values.items()}  # not an OmegaConf interpolation
    launcher = {
        "nodes": 2,
        "gpus_per_node": 8,
        "tasks_per_node": 1,
        "timeout_min": 60,
        "max_num_timeout": 0,
        "partition": values["partition"],
        "account": values["account"],
        "qos": values["qos"],
        "container_image": values["image"],
        "container_mounts": [values["mount"]],
        "python": values["python"],
        "env": {"NCCL_DEBUG": values["env"]},
    }
    cluster = _cluster.cluster_from_config(OmegaConf.create({"launcher": launcher}), "Megatron-Bridge")
    config_path = out / "config.yaml"
    with contextlib.chdir(workdir):
        return [
            megatron_bridge.submission_script(cluster, values["extra"], "pretrain", config_path, out, [str(out)]),
            nemo_rl.submission_script(cluster, {"nemo_rl_dir": values["srun"]}, config_path, out, [str(out)]),
        ]


@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(
    values=st.fixed_dictionaries({key: value_strategy() for key in KEYS}),
    dirname=name_strategy(),
    outname=name_strategy(),
)
def test_backend_scripts_never_run_a_value(sandbox, values, dirname, outname):
    workdir = sandbox / "work" / dirname
    out = workdir / "runs" / outname
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        hypothesis.reject()
    try:
        scripts = backend_scripts(values, workdir, out)
    except ClusterError as exc:
        refused(exc)
        return
    for script in scripts:
        _, log = run_script(sandbox, script, cwd=workdir)
        assert log.count("srun ") >= 1


# -- the reproductions, end to end -----------------------------------------------------------------------------


NEWLINE_VALUES = [
    "launcher.constraint='a\ntouch PWNED #'",
    "launcher.partition='batch\ntouch PWNED #'",
    "+launcher.additional_parameters.mail-type='END\ntouch PWNED'",
]


@pytest.mark.parametrize("override", NEWLINE_VALUES, ids=["constraint", "partition", "additional_parameters"])
def test_newline_in_an_sbatch_value_is_refused_before_anything_is_written(tmp_path, override):
    data = make_data(tmp_path / "data")
    args = ["stage=register", f"stage.path={data}", "stage.name=m", f"artifacts.manifest.root={tmp_path / 'store'}"]
    result = nemotron(*args, "launcher=slurm", "launcher.dry_run=true", override, cwd=tmp_path, env=clean_env())
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "contains a newline or another control character" in result.stderr, result.stderr
    assert not list(tmp_path.rglob("*.sh"))


@pytest.fixture(scope="module")
def nano3_inputs(tmp_path_factory) -> dict:
    from helpers.backend_inputs import commit_inputs

    return commit_inputs(tmp_path_factory.mktemp("quoting-inputs"))


@pytest.mark.slow
def test_megatron_bridge_dry_run_in_a_hostile_directory_runs_nothing(sandbox, nano3_inputs, tmp_path):
    """Defect 10: a working directory named `wd $(touch x)`, a mount and launcher.python with shell syntax."""
    workdir = tmp_path / "wd $(touch $PWNED_FILE)"
    workdir.mkdir()
    out = workdir / "run `touch $PWNED_FILE`"
    result = nemotron(
        "stage=pretrain",
        "model=nano3",
        "launcher=gpu_2x8",
        "stage.dry_run=true",
        f"stage.output_dir='{out}'",
        f"artifacts.manifest.root={nano3_inputs['store']}",
        f"run.data={nano3_inputs['pretrain']}",
        "launcher.python='python3;touch$IFS$PWNED_FILE'",
        "launcher.container_mounts=['/data $(touch $PWNED_FILE):/data']",
        cwd=workdir,
        env=clean_env(WANDB_MODE="offline"),
    )
    assert result.returncode == 0, result.stderr
    (script,) = out.glob("*.sbatch")
    _, log = run_script(sandbox, script.read_text(), cwd=workdir)
    assert f"--container-workdir={workdir}" in log
    assert "--container-mounts=/data $(touch $PWNED_FILE):/data," in log
