"""`stage=pretrain_data` in 2 and 4 Slurm tasks on a real single-host cluster (tests/helpers/local_slurm.py): one
artifact committed, with the shards and blend.json of a 1-task run byte for byte; a rank killed mid-run fails
the command with a clear message and commits nothing, and the rerun makes only the missing shards.

The cluster's node advertises at least 4 CPUs (scripts/local_slurm.sh), so 4 one-CPU tasks fit on a small machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import TIMEOUT_S, clean_env, nemotron
from helpers.data_ranks import SETTINGS, data_dirs, one_task_shards, shard_bytes, write_corpus

pytestmark = [pytest.mark.e2e]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.timeout_min=10", "launcher.cpus_per_task=1"]


@pytest.fixture(scope="module")
def corpus(local_slurm, tmp_path_factory) -> tuple[Path, list[str]]:
    from nemotron.data.synthetic import pretrain_documents
    from nemotron.data.tokenizer import train_bpe

    base = tmp_path_factory.mktemp("slurm-ranks")
    train_bpe((row["text"] for row in pretrain_documents(2000, seed=7)), base / "bpe", vocab_size=1024)
    return base, write_corpus(base, str(base / "bpe"), files=3, rows=400)


@pytest.fixture(scope="module")
def one_task(corpus) -> dict[str, bytes]:
    return one_task_shards(*corpus, nemotron)


@pytest.mark.parametrize("tasks", [2, 4])
def test_slurm_tasks_commit_one_artifact_with_the_shards_of_one_task(corpus, one_task, tasks):
    base, conf = corpus
    cwd = base / f"slurm{tasks}"
    cwd.mkdir()
    store = cwd / "store"
    result = nemotron(
        *conf, *SETTINGS, *SLURM, f"launcher.tasks_per_node={tasks}", "stage.shard_rows=100",
        f"artifacts.manifest.root={store}", cwd=cwd, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + _job_logs(cwd)
    assert "committed art://pretrain-data:v1" in result.stderr
    assert sorted(p.parent.parent.name for p in store.glob("*/v*/manifest.json")) == ["pretrain-data", "tokenizer"]
    (data_dir,) = data_dirs(cwd)
    assert shard_bytes(data_dir) == one_task
    manifest = json.loads((store / "pretrain-data" / "v1" / "manifest.json").read_text())
    assert manifest["metadata"]["metadata"]["ranks"] == tasks
    assert manifest["run"]["slurm_job_id"]
    logs = _job_logs(cwd)
    assert all(f"Rank {rank} of {tasks}: making the shards" in logs for rank in range(tasks)), logs


def test_a_killed_slurm_task_fails_the_command_and_the_rerun_makes_only_the_missing_shards(corpus):
    base, _ = corpus
    cwd = base / "killed"
    conf = write_corpus(cwd, str(base / "bpe"), files=4, rows=6000)
    store = cwd / "store"
    args = [*conf, *SETTINGS, "stage.shard_rows=300", "stage.chunk_rows=100", f"artifacts.manifest.root={store}"]
    run = subprocess.Popen(
        [sys.executable, "-m", "nemotron", *args, *SLURM, "launcher.tasks_per_node=2"],
        cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while not _kill_rank_1(cwd):
        assert run.poll() is None, "the job ended before rank 1 could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _, stderr = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode != 0
    message = " ".join(stderr.split())
    assert "Rank 1 of 2 stopped while making its shards" in message and "Nothing is committed" in message, stderr
    assert "Traceback" not in stderr
    assert not list(store.glob("pretrain-data/v*/manifest.json"))
    (data_dir,) = data_dirs(cwd)
    finished = list(data_dir.glob("receipts/*/*/*.json"))

    rerun = nemotron(*args, *SLURM, "launcher.tasks_per_node=2", cwd=cwd)  # the same command: it resumes
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metadata = json.loads((store / "pretrain-data" / "v1" / "manifest.json").read_text())["metadata"]
    assert 0 < metadata["metadata"]["reused_shards"] == len(finished) < metadata["num_shards"]
    assert metadata["metadata"]["tokenized_shards"] == metadata["num_shards"] - len(finished)


def _kill_rank_1(cwd: Path) -> bool:
    """SIGKILL rank 1 once two shards are finished; True when done."""
    for data_dir in data_dirs(cwd):
        alive = list(data_dir.parent.glob(".ranks/*/rank_00001.alive"))
        if len(list(data_dir.glob("receipts/*/*/*.json"))) >= 2 and alive:
            assert not list(data_dir.parent.glob(".ranks/*/rank_00001.done")), "rank 1 finished before the kill"
            os.kill(int(alive[0].read_text().split()[-1]), signal.SIGKILL)  # one host: the task is our child's
            return True
    return False


def _job_logs(cwd: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(cwd.glob("multirun/*/*/.submitit/*/*_log.*")))


def test_a_preempted_job_is_requeued_and_resumes_in_its_own_directory(corpus):
    """Slurm's USR2 (what it sends before preempting): the job is requeued with the same output dir, the second
    attempt reuses the shards the first one finished, and one artifact is committed."""
    base, _ = corpus
    cwd = base / "requeued"
    conf = write_corpus(cwd, str(base / "bpe"), files=4, rows=6000)
    store = cwd / "store"
    args = [*conf, *SETTINGS, "stage.shard_rows=300", "stage.chunk_rows=100", f"artifacts.manifest.root={store}"]
    run = subprocess.Popen(
        # 60 minutes: submitit takes USR2 for the time limit (not preemption) in a job of 10 minutes or less
        [sys.executable, "-m", "nemotron", *args, *SLURM, "launcher.tasks_per_node=2", "launcher.timeout_min=60"],
        cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while not (dirs := data_dirs(cwd)) or len(list(dirs[0].glob("receipts/*/*/*.json"))) < 2:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (job,) = [p.name for p in cwd.glob("multirun/*/*/.submitit/*") if p.name.isdigit()]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    try:
        while len(list(dirs[0].parent.glob(".ranks/*"))) < 2 and run.poll() is None:
            assert time.monotonic() < deadline + TIMEOUT_S, "the job was not requeued"
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
            time.sleep(1)
        _, stderr = run.communicate(timeout=2 * TIMEOUT_S)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr[-3000:] + _job_logs(cwd)
    assert sorted(p.name for p in dirs[0].parent.glob(".ranks/*")) == [f"{job}.0", f"{job}.1"]  # two attempts
    metadata = json.loads((store / "pretrain-data" / "v1" / "manifest.json").read_text())["metadata"]
    assert 0 < metadata["metadata"]["reused_shards"] < metadata["num_shards"]
    assert metadata["metadata"]["tokenized_shards"] == metadata["num_shards"] - metadata["metadata"]["reused_shards"]
    assert not (store / "pretrain-data" / "v2").exists()
