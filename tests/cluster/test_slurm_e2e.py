"""End to end on a real single-host Slurm cluster (tests/helpers/local_slurm.py starts it once per session).

Each test runs `python -m nemotron ... launcher=slurm` in a subprocess from its own temporary directory (the
sweep dir is on local disk, which on one host is "shared" with the compute node) and checks the artifact
store, the run records and Slurm's own accounting.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import TIMEOUT_S, clean_env, json_line, make_data, manifest, nemotron, ok

pytestmark = [pytest.mark.e2e]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.timeout_min=5"]
SECRET_NAME = "E2E_SERVICE_TOKEN"
SECRET = "e2e-s3cr3t-7f1c9a0b2d"

PROBE_YAML = """\
# A stage that reports where it ran, then sleeps; every rank returns the artifact, only rank 0 commits it.
_target_: e2e_probe_stage.run
name: probed
seconds: 0
marker: null
attempts: null  # a file: one line per start of the stage; only the first start sleeps
"""

PROBE_CODE = """\
import hashlib
import json
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from nemotron import Artifact
from nemotron.distributed import dist_env


def run(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    env = dist_env()
    secret = os.environ.get("E2E_SERVICE_TOKEN", "")
    report = {
        "rank": env.rank,
        "world_size": env.world_size,
        "local_rank": env.local_rank,
        "master_addr": env.master_addr,
        "master_port": env.master_port,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest() if secret else None,
    }
    (out / f"rank{env.rank}.json").write_text(json.dumps(report))
    first = True
    if cfg.stage.attempts and env.rank == 0:
        attempts = Path(cfg.stage.attempts)
        first = not attempts.exists()
        with attempts.open("a") as log:
            log.write(os.environ["SLURM_JOB_ID"] + "\\n")
    if cfg.stage.marker and env.rank == 0:
        Path(cfg.stage.marker).write_text(os.environ["SLURM_JOB_ID"])
    if first:
        time.sleep(cfg.stage.seconds)
    return Artifact(path=str(out), name=cfg.stage.name)
"""


@pytest.fixture(scope="module")
def site(local_slurm, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-e2e")
    config_dir = base / "site-conf"
    (config_dir / "stage").mkdir(parents=True)
    (config_dir / "stage" / "probe.yaml").write_text(PROBE_YAML)
    module_dir = base / "site-python"
    module_dir.mkdir()
    (module_dir / "e2e_probe_stage.py").write_text(PROBE_CODE)
    return {"config_dir": config_dir, "module_dir": module_dir, "data": make_data(base / "data")}


def _env(site, root: Path, **extra) -> dict[str, str]:
    return clean_env(NEMOTRON_ARTIFACTS_ROOT=root, PYTHONPATH=site["module_dir"], **extra)


def _probe(site, *args: str) -> list[str]:
    return ["--config-dir", str(site["config_dir"]), "stage=probe", *SLURM, *args]


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True)
    return out.stdout.strip()


def test_register_on_slurm_records_the_slurm_job_id(site, tmp_path):
    root = tmp_path / "store"
    result = ok(
        nemotron(
            "stage=register",
            f"stage.path={site['data']}",
            "stage.name=on-slurm",
            *SLURM,
            cwd=tmp_path,
            env=_env(site, root),
        )
    )
    assert json_line(result)["uri"] == "art://on-slurm:v1"  # piped like a local run
    (job_dir,) = tmp_path.glob("multirun/register/*/.submitit/*/")
    job_id = job_dir.name
    assert f"committed art://on-slurm:v1 (Slurm job {job_id})" in result.stderr
    record = manifest(root, "on-slurm", 1)["run"]
    assert record["slurm_job_id"] == job_id
    assert record["hydra_job_id"] == job_id
    assert record["command"][:3] == ["python", "-m", "nemotron"]
    assert _sacct_state(job_id) == "COMPLETED"


def test_a_sweep_is_one_job_array_and_commits_two_versions(site, tmp_path):
    root = tmp_path / "store"
    result = ok(
        nemotron(
            "stage=register",
            f"stage.path={site['data']}",
            "stage.name=swept",
            "stage.type=Artifact,ModelArtifact",
            *SLURM,
            cwd=tmp_path,
            env=_env(site, root),
        )
    )
    uris = sorted(json.loads(line)["uri"] for line in result.stdout.splitlines())
    assert uris == ["art://swept:v1", "art://swept:v2"]
    records = [manifest(root, "swept", v) for v in (1, 2)]
    assert sorted(r["type"] for r in records) == ["Artifact", "ModelArtifact"]
    job_ids = sorted(r["run"]["slurm_job_id"] for r in records)
    array_id = job_ids[0].split("_")[0]
    assert job_ids == [f"{array_id}_0", f"{array_id}_1"]
    (script,) = tmp_path.glob("multirun/register/*/.submitit/**/*_submission.sh")
    assert "#SBATCH --array=0-1%2\n" in script.read_text()


def test_two_tasks_commit_once_and_secrets_stay_in_the_environment(site, tmp_path):
    """A 2-task job: both ranks run the stage with ranks and master address from Slurm, only rank 0 commits;
    the secret reaches both ranks through the environment and is written nowhere."""
    root = tmp_path / "store"
    result = ok(
        nemotron(
            *_probe(site, "stage.name=ranked", "launcher.tasks_per_node=2"),
            cwd=tmp_path,
            env=_env(site, root, **{SECRET_NAME: SECRET}),
        )
    )
    assert json_line(result)["uri"] == "art://ranked:v1"
    assert sorted(p.name for p in (root / "ranked").glob("v*")) == ["v1"]  # exactly one commit
    out = Path(manifest(root, "ranked", 1)["path"])
    reports = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert {r["world_size"] for r in reports} == {2}
    assert [r["local_rank"] for r in reports] == [0, 1]
    assert reports[0]["master_addr"] == reports[1]["master_addr"] and reports[0]["master_addr"]
    assert reports[0]["master_port"] == reports[1]["master_port"]
    assert {r["secret_sha256"] for r in reports} == {hashlib.sha256(SECRET.encode()).hexdigest()}
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []  # not in the sbatch script, pickles, logs, saved configs or manifests
    assert SECRET not in result.stdout + result.stderr


def test_wait_false_returns_at_once_and_the_artifact_appears_when_the_job_ends(site, tmp_path):
    root = tmp_path / "store"
    started = time.monotonic()
    result = ok(nemotron(*_probe(site, "stage.name=later", "stage.seconds=8", "launcher.wait=false"),
                         cwd=tmp_path, env=_env(site, root)))  # fmt: skip
    assert time.monotonic() - started < 8 + 30  # it did not wait for the job (which sleeps 8 s once started)
    submitted = json_line(result)
    assert submitted["artifacts"] == ["later"]
    assert submitted["store"] == str(root)
    job_id = submitted["submitted"]
    assert f"job {job_id}" in result.stderr
    assert not (root / "later" / "v1").exists()
    deadline = time.monotonic() + TIMEOUT_S
    while not (root / "later" / "v1" / "manifest.json").exists():
        assert time.monotonic() < deadline, f"no artifact after {TIMEOUT_S} s; job {job_id}: {_sacct_state(job_id)}"
        time.sleep(1)
    assert manifest(root, "later", 1)["run"]["slurm_job_id"] == job_id


def test_scancel_fails_the_command_and_commits_nothing(site, tmp_path):
    root = tmp_path / "store"
    marker = tmp_path / "started"
    command = [sys.executable, "-m", "nemotron", *_probe(site, "stage.name=cancelled", "stage.seconds=300",
                                                         f"stage.marker={marker}")]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=_env(site, root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (marker.exists() and marker.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.5)
        job_id = marker.read_text()
        subprocess.run(["scancel", job_id], check=True)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        if marker.exists():  # the job ignores SIGTERM until Slurm's KillWait ends: do not keep the node busy
            subprocess.run(["scancel", "--signal=KILL", "--full", marker.read_text()], capture_output=True)
    assert proc.returncode != 0, err
    assert f"Slurm job {job_id}" in err and "was cancelled" in err and "nothing was committed" in err, err
    assert "Traceback" not in err, err
    assert out == ""
    assert not (root / "cancelled").exists()
    assert _sacct_state(job_id).startswith("CANCELLED")


def test_unknown_partition_is_refused_with_the_partitions_from_sinfo(site, tmp_path):
    result = nemotron("stage=register", f"stage.path={site['data']}", "stage.name=x", "launcher=slurm",
                      "launcher.partition=nope", cwd=tmp_path, env=_env(site, tmp_path / "store"))  # fmt: skip
    assert result.returncode != 0
    assert (
        "launcher.partition=nope: this cluster has no such partition. Partitions here (sinfo): debug" in result.stderr
    )
    assert not list(tmp_path.glob("multirun/*/*/.submitit"))


def _start_and_signal(site, tmp_path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    """Start a probe job that sleeps on its first start, wait until it runs, and send it Slurm's USR2 (what
    Slurm sends before preempting, and before the time limit): the process, the job id and its attempts file."""
    marker, attempts = tmp_path / "started", tmp_path / "attempts"
    command = [sys.executable, "-m", "nemotron", *_probe(site, "stage.seconds=300", f"stage.marker={marker}",
               f"stage.attempts={attempts}", "launcher.timeout_min=60", *args)]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_env(site, tmp_path / "store"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not (marker.exists() and marker.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.5)
    job_id = marker.read_text()
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    return proc, job_id, attempts


def test_a_preempted_job_is_requeued_and_commits_once(site, tmp_path):
    """The requeue plumbing: the stage starts again from the beginning (resuming from its own checkpoints is
    the training stages' part) and the waiting command sees the requeued job finish."""
    proc, job_id, attempts = _start_and_signal(site, tmp_path, "stage.name=requeued")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(attempts.read_text().splitlines()) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job was not requeued"
            # Slurm holds a requeued job back for a while before it may start again; let it start now
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            time.sleep(1)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert attempts.read_text().splitlines() == [job_id, job_id]
    assert json.loads(out)["uri"] == "art://requeued:v1"
    assert manifest(tmp_path / "store", "requeued", 1)["run"]["slurm_job_id"] == job_id
    assert "Requeued job" in Path(next(tmp_path.glob("multirun/probe/*/.submitit/*/*_0_log.err"))).read_text()


def test_with_requeue_off_a_preempted_job_fails_the_command(site, tmp_path):
    proc, job_id, attempts = _start_and_signal(site, tmp_path, "stage.name=stopped", "launcher.requeue=false")
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, err
    assert f"Slurm job {job_id}" in err and "was stopped by Slurm" in err and "not requeued" in err, err
    assert "Traceback" not in err, err
    assert attempts.read_text().splitlines() == [job_id]
    assert not (tmp_path / "store" / "stopped").exists()
