"""The Slurm launcher without a Slurm cluster: dry-run sbatch scripts (container flags on srun, job arrays),
env.toml profiles producing the same script as a launcher YAML, and bad input refused before submission.

Bad-input cases run with fake `sbatch`/`srun`/`sinfo`/`sacct` first on PATH: the fake sbatch records every
call, so "nothing was submitted" is checked, not assumed. tests/cluster/test_slurm_e2e.py runs the launcher on a
real cluster.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.clitools import clean_env, make_data, nemotron, ok

pytestmark = pytest.mark.integration

IMAGE = "nvcr.io#nvidia/nemotron-fake:25.01"
SECRET = "s3cr3t-e2e-value-0042"

ENV_TOML = """\
[wandb]
project = "demo"

[cluster]
executor = "slurm"
account = "acct"
partition = "batch"
qos = "normal"
container_image = "nvcr.io#nvidia/nemotron-fake:25.01"
python = "python3"
mounts = ["/lustre:/lustre"]
nodes = 1
gpus_per_node = 8
ntasks_per_node = 8
cpus_per_task = 16
mem = "0"
time = "04:00:00"
exclusive = true
setup_lines = "module load cuda"
env_vars = { NCCL_DEBUG = "WARN" }

[cluster-2n]
extends = "cluster"
nodes = 2
env_vars = { HF_HOME = "/lustre/hf" }

[odd]
executor = "slurm"
colour = "red"
"""

# The same as [cluster-2n], as a launcher YAML in a team's config dir.
YAML_PROFILE = """\
# @package _global_
defaults:
  - slurm
  - _self_
launcher:
  account: acct
  partition: batch
  qos: normal
  container_image: nvcr.io#nvidia/nemotron-fake:25.01
  python: python3
  container_mounts: [/lustre:/lustre]
  nodes: 2
  gpus_per_node: 8
  tasks_per_node: 8
  cpus_per_task: 16
  mem_gb: 0
  timeout_min: 240
  exclusive: true
  setup: [module load cuda]
  env: {NCCL_DEBUG: WARN, HF_HOME: /lustre/hf}
"""

FAKE_SBATCH = """#!/bin/sh
echo "$@" >> "$FAKE_SLURM_LOG"
echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination" >&2
exit 1
"""
FAKE_SINFO = "#!/bin/sh\nprintf 'debug\\nbatch\\n'\n"
FAKE_OK = "#!/bin/sh\nexit 0\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-launcher")
    work = base / "work"
    work.mkdir()
    (work / "env.toml").write_text(ENV_TOML)
    config_dir = base / "site-conf"
    (config_dir / "launcher").mkdir(parents=True)
    (config_dir / "launcher" / "yaml_cluster.yaml").write_text(YAML_PROFILE)
    fake_bin = base / "fake-bin"
    fake_bin.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "sinfo": FAKE_SINFO, "sacct": FAKE_OK, "srun": FAKE_OK}.items():
        (fake_bin / name).write_text(text)
        (fake_bin / name).chmod(0o755)
    empty_bin = base / "empty-bin"
    empty_bin.mkdir()
    data = make_data(base / "data")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=base / "store", SLURM_CONF=None)
    return {"base": base, "work": work, "config_dir": config_dir, "data": data, "env": env, "fake_bin": fake_bin,
            "empty_bin": empty_bin}  # fmt: skip


def _register(site, *extra: str, name: str = "on-slurm") -> list[str]:
    return ["stage=register", f"stage.path={site['data']}", f"stage.name={name}", *extra]


def _srun_line(script: str) -> str:
    lines = [line for line in script.splitlines() if line.startswith("srun ")]
    assert len(lines) == 1, script
    return lines[0]


def test_dry_run_prints_the_sbatch_script_with_container_flags_on_srun(site):
    result = ok(
        nemotron(
            *_register(site),
            "launcher=slurm",
            "launcher.dry_run=true",
            f"launcher.container_image='{IMAGE}'",
            "launcher.python=python3",
            "launcher.container_mounts=[/data:/data]",
            "launcher.nodes=2",
            "launcher.gpus_per_node=8",
            "launcher.tasks_per_node=8",
            "+launcher.env.NCCL_DEBUG=INFO",
            cwd=site["work"],
            env=site["env"],
        )
    )
    script = result.stdout
    work = str(site["work"].resolve())
    srun = _srun_line(script)
    assert f"--container-image={IMAGE}" in srun
    assert f"--container-mounts=/data:/data,{work}:{work}" in srun
    assert f"--container-workdir={work}" in srun
    assert srun.endswith(" python3 -u -m submitit.core._submit " + srun.rsplit(" ", 1)[1])
    assert srun.index("--container-image") < srun.index(" python3 ")
    for flag in ("--nodes=2", "--gpus-per-node=8", "--ntasks-per-node=8", "--job-name=nemotron-register"):
        assert f"#SBATCH {flag}\n" in script
    assert "#SBATCH --array" not in script
    assert "export NCCL_DEBUG=INFO\n" in script
    assert "dry run: nothing submitted" in result.stderr
    written = list(site["work"].glob("multirun/register/*/.submitit/dry_run_submission.sh"))
    assert any(path.read_text() == script for path in written)
    assert not (site["base"] / "store").exists()


def test_dry_run_of_a_sweep_is_one_job_array(site):
    script = ok(nemotron(*_register(site, "launcher=slurm", "launcher.dry_run=true", "stage.name=a,b"),
                         cwd=site["work"], env=site["env"])).stdout  # fmt: skip
    assert "#SBATCH --array=0-1%2\n" in script
    assert "%A_%a" in _srun_line(script)


def test_env_toml_profile_gives_the_same_sbatch_script_as_the_yaml_profile(site):
    # same command but for the launcher option (the config dir is mounted into the container: give it to both)
    common = ["--config-dir", site["config_dir"], *_register(site), "launcher.dry_run=true", "hydra.sweep.dir=sweep"]
    from_toml = ok(nemotron(*common, "launcher=cluster-2n", cwd=site["work"], env=site["env"])).stdout
    from_yaml = ok(nemotron(*common, "launcher=yaml_cluster", cwd=site["work"], env=site["env"])).stdout
    assert from_toml == from_yaml
    expected = [
        "#SBATCH --account=acct",
        "#SBATCH --nodes=2",
        "#SBATCH --time=240",
        "#SBATCH --mem=0GB",
        "#SBATCH --exclusive",
        "export NCCL_DEBUG=WARN",
        "export HF_HOME=/lustre/hf",
        "module load cuda",
    ]
    for line in expected:
        assert line + "\n" in from_toml, from_toml
    assert "--container-mounts=/lustre:/lustre," in _srun_line(from_toml)


def test_env_toml_profiles_are_listed_with_the_launchers(site):
    help_text = ok(nemotron("--help", cwd=site["work"], env=site["env"])).stdout
    launchers = next(line for line in help_text.splitlines() if line.startswith("launcher:"))
    assert re.search(r"\bcluster, cluster-2n\b.*\bexample_cluster\b.*\bslurm\b", launchers), launchers


# (id, arguments, environment changes, phrase the error must contain)
BAD_INPUT = [
    ("nodes-0", ["launcher=slurm", "launcher.nodes=0"], {}, "launcher.nodes=0: a job needs at least one node"),
    ("image-without-python", ["launcher=slurm", f"launcher.container_image='{IMAGE}'"], {},
     "launcher.python is not"),
    ("unknown-partition", ["launcher=slurm", "launcher.partition=nope"], {},
     "launcher.partition=nope: this cluster has no such partition. Partitions here (sinfo): batch, debug"),
    ("unknown-profile", ["launcher=no-such-profile"], {}, "Could not find 'launcher/no-such-profile'"),
    ("bad-profile", ["launcher=odd"], {}, "Profile [odd] of"),
    ("parallelism", ["launcher=slurm", "launcher.gpus_per_node=6", "+model.tensor_model_parallel_size=4"], {},
     "launcher.gpus_per_node=6 on launcher.nodes=1 gives 6 GPUs, which the model's parallelism cannot use"),
    ("credential-override", ["launcher=slurm", f"+wandb.api_key={SECRET}"], {}, "sets wandb.api_key, a credential"),
    ("secret-in-env", ["launcher=slurm", "+launcher.env.MY_SERVICE_TOKEN=abc"], {},
     "launcher.env.MY_SERVICE_TOKEN would write a secret into the batch script"),
    ("secret-value", ["launcher=slurm", f"launcher.setup=[echo {SECRET}]"], {"MY_SERVICE_TOKEN": SECRET},
     "The value of $MY_SERVICE_TOKEN appears in the launcher settings (at setup[0])"),
    ("secret-value-in-config", ["launcher=slurm", f"+stage.metadata.note={SECRET}"], {"MY_SERVICE_TOKEN": SECRET},
     "The value of $MY_SERVICE_TOKEN appears in the job's config (at hydra.overrides.task[4])"),
    ("no-sbatch", ["launcher=slurm"], {"PATH": "{empty_bin}"}, "submits with sbatch, which is not on PATH here"),
    ("sbatch-refuses", ["launcher=slurm", "launcher.partition=batch"], {},
     "sbatch refused the submission, so nothing was submitted: sbatch: error: Batch job submission failed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_results(site):
    def one(case):
        case_id, args, env_changes, _ = case
        work = site["base"] / f"bad-{case_id}"
        work.mkdir()
        (work / "env.toml").write_text(ENV_TOML)
        log = work / "sbatch-calls.log"
        env = {**site["env"], "PATH": f"{site['fake_bin']}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log)}
        env.update({k: v.format(**site) for k, v in env_changes.items()})
        result = nemotron(*_register(site, *args), cwd=work, env=env)
        return case_id, (result, work, log)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(one, BAD_INPUT))


@pytest.mark.parametrize("phrase", [c[3] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_before_submission(bad_results, request, phrase):
    result, work, log = bad_results[request.node.callspec.id]
    stderr = result.stderr
    assert result.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert phrase in stderr, stderr
    assert result.stdout == ""
    lines = [line for line in stderr.splitlines() if phrase in line and not line.startswith("│")]
    assert lines and len(lines[0]) < 1000, stderr  # one paragraph, on one line
    if request.node.callspec.id != "sbatch-refuses":
        assert not log.exists(), log.read_text()  # sbatch was never called
    assert not list(work.glob("multirun/*/*/.submitit/*")) or request.node.callspec.id == "sbatch-refuses"
    assert not (site_store := work.parent / "store" / "on-slurm").exists(), site_store
    for path in work.rglob("*"):  # a refused credential is never written anywhere
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_without_accounting_the_launcher_warns(site, tmp_path):
    """Without sacct a cancelled job cannot be detected; waiting would hang, so the launcher says so."""
    fake = tmp_path / "bin"
    fake.mkdir()
    no_sacct = "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
    for name, text in {"sbatch": FAKE_SBATCH, "sinfo": FAKE_SINFO, "srun": FAKE_OK, "sacct": no_sacct}.items():
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    env = {**site["env"], "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_LOG": str(tmp_path / "log")}
    waiting = nemotron(*_register(site, "launcher=slurm"), cwd=tmp_path, env=env)
    assert "Slurm accounting (sacct) does not answer" in waiting.stderr
    not_waiting = nemotron(*_register(site, "launcher=slurm", "launcher.wait=false"), cwd=tmp_path, env=env)
    assert "sacct" not in not_waiting.stderr
