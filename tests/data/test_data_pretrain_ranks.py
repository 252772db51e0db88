"""`stage=pretrain_data` in several tasks (ranks) through `launcher=submitit_local`: the shards are the same
bytes whatever the number of ranks, one artifact is committed, a killed rank fails the job with nothing
committed, and the rerun tokenizes only what is missing. Also `stage.workers` bounds.

The same runs through a real Slurm cluster are in tests/data/test_slurm_data_ranks.py.
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
from helpers.data_ranks import SETTINGS, committed, data_dirs, one_task_shards, shard_bytes, write_corpus

from nemotron.data.pretrain import ShardKey, shard_owner

pytestmark = pytest.mark.integration

TIMEOUT_S = 300


def nemotron(*args: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_") and k != "HYDRA_FULL_ERROR"}
    env |= extra_env
    return subprocess.run(
        [sys.executable, "-m", "nemotron", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=TIMEOUT_S, input="",
    )  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, bpe_dir) -> tuple[Path, list[str]]:
    base = tmp_path_factory.mktemp("ranks")
    return base, write_corpus(base, bpe_dir, files=3, rows=400)


@pytest.fixture(scope="module")
def one_task(corpus) -> dict[str, bytes]:
    return one_task_shards(*corpus, nemotron)


@pytest.mark.parametrize("tasks", [2, 4])
def test_several_tasks_commit_one_artifact_with_the_shards_of_one_task(corpus, one_task, tasks):
    base, conf = corpus
    cwd = base / f"tasks{tasks}"
    cwd.mkdir()
    store = cwd / "store"
    result = nemotron(
        *conf, *SETTINGS, "stage.shard_rows=100", f"artifacts.manifest.root={store}",
        "launcher=submitit_local", f"launcher.tasks_per_node={tasks}", cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert committed(store) == {"pretrain-data": ["v1"], "tokenizer": ["v1"]}  # one artifact, by rank 0
    (data_dir,) = data_dirs(cwd)
    ours = shard_bytes(data_dir)
    assert len([name for name in ours if name.endswith(".bin")]) >= 2 * tasks  # every rank had shards to make
    assert ours == one_task
    manifest = json.loads((store / "pretrain-data" / "v1" / "manifest.json").read_text())
    assert manifest["metadata"]["metadata"]["ranks"] == tasks
    logs = "".join(p.read_text() for p in cwd.glob("multirun/*/*/.submitit/*/*_log.err"))
    assert all(f"Rank {rank} of {tasks}" in logs for rank in range(1, tasks)), logs[-3000:]


def test_several_tasks_write_to_s3(corpus, one_task):
    """stage.output_dir=s3://...: the ranks copy their shards there, rank 0 the shared files; the artifact's
    path is the URL, and the files there are those of a 1-task run on local disk."""
    pytest.importorskip("s3fs", reason="s3:// outputs need the s3 extra: pip install -e '.[dev]'")
    import fsspec
    from helpers.s3server import moto_s3, s3_env

    base, conf = corpus
    cwd = base / "s3"
    cwd.mkdir()
    with moto_s3("data-bucket") as endpoint:
        env = s3_env(endpoint)
        result = nemotron(
            *conf, *SETTINGS, "stage.shard_rows=100", f"artifacts.manifest.root={cwd / 'store'}",
            "stage.output_dir=s3://data-bucket/run1", "launcher=submitit_local", "launcher.tasks_per_node=2",
            cwd=cwd, **env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        manifest = json.loads((cwd / "store" / "pretrain-data" / "v1" / "manifest.json").read_text())
        assert manifest["path"] == "s3://data-bucket/run1/data"
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, key=env["AWS_ACCESS_KEY_ID"],
                               secret=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        root = "data-bucket/run1/data/"
        remote = {p[len(root) :]: fs.cat_file(p) for p in fs.find(root) if "/shards/" in p or "/receipts/" in p}
        remote["blend.json"] = fs.cat_file(root + "blend.json")
        assert remote == one_task
        assert fs.exists("data-bucket/run1/tokenizer/tokenizer.json") and fs.exists(root + "plan.json")

        again = nemotron(*conf, *SETTINGS, "stage.output_dir=s3://data-bucket/run1",
                         f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd, **env)  # fmt: skip
        assert again.returncode != 0 and "s3://data-bucket/run1/data already exists" in again.stderr
        assert "Traceback" not in again.stderr


def test_a_killed_rank_fails_the_job_and_the_rerun_makes_only_the_missing_shards(tmp_path, bpe_dir):
    conf = write_corpus(tmp_path, bpe_dir, files=4, rows=6000)
    store = tmp_path / "store"
    args = [*conf, *SETTINGS, "stage.shard_rows=300", "stage.chunk_rows=100", f"artifacts.manifest.root={store}"]
    run = subprocess.Popen(
        [sys.executable, "-m", "nemotron", *args, "launcher=submitit_local", "launcher.tasks_per_node=2"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while not (killed := _kill_rank_1_after_two_shards(tmp_path)):
        assert run.poll() is None, "the job ended before rank 1 could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stdout, stderr = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode != 0
    (data_dir,) = data_dirs(tmp_path)
    message = " ".join(stderr.split())
    assert "Rank 1 of 2 stopped while making its shards" in message and "Nothing is committed" in message, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not list(store.glob("pretrain-data/v*/manifest.json"))
    finished = list(data_dir.glob("receipts/*/*/*.json"))
    assert killed in {tuple(json.loads(p.read_text())[k] for k in ("source", "split", "index")) for p in finished}

    rerun = nemotron(*args, "launcher=submitit_local", "launcher.tasks_per_node=2", cwd=tmp_path)  # the same command
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    logs = "".join(p.read_text() for p in tmp_path.glob("multirun/*/*/.submitit/*/*_0_log.err"))
    assert f"Resuming the interrupted run in {data_dir.parent}" in " ".join(logs.split())
    metadata = json.loads((store / "pretrain-data" / "v1" / "manifest.json").read_text())["metadata"]
    total = metadata["num_shards"]
    assert metadata["metadata"]["reused_shards"] == len(finished) < total
    assert metadata["metadata"]["tokenized_shards"] == total - len(finished)  # only the missing shards


def test_a_killed_rank_0_fails_the_command_without_a_traceback(corpus):
    base, conf = corpus
    cwd = base / "rank0"
    cwd.mkdir()
    store = cwd / "store"
    run = subprocess.Popen(
        [sys.executable, "-m", "nemotron", *conf, *SETTINGS, "stage.shard_rows=100", f"artifacts.manifest.root={store}",
         "launcher=submitit_local", "launcher.tasks_per_node=2"],
        cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while not (ready := list(cwd.glob("multirun/*/*/0/.ranks/*/ready"))):
        assert run.poll() is None and time.monotonic() < deadline, "the job ended before rank 0 could be killed"
        time.sleep(0.02)
    os.kill(int(ready[0].with_name("rank_00000.alive").read_text().split()[-1]), signal.SIGKILL)
    _, stderr = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode != 0 and "Traceback" not in stderr, stderr[-3000:]
    assert "did not finish, so nothing was committed" in " ".join(stderr.split()), stderr[-3000:]
    assert not list(store.glob("*/v*/manifest.json"))


def _kill_rank_1_after_two_shards(cwd: Path) -> tuple[str, str, int] | None:
    """SIGKILL rank 1 once it has finished two shards; returns one of them (None: not yet)."""
    for data_dir in data_dirs(cwd):
        mine = []
        for receipt in data_dir.glob("receipts/*/*/*.json"):
            try:
                r = json.loads(receipt.read_text())
            except ValueError:
                continue
            if shard_owner(ShardKey(r["source"], r["split"], r["index"]), 2) == 1:
                mine.append((r["source"], r["split"], r["index"]))
        alive = list(data_dir.parent.glob(".ranks/*/rank_00001.alive"))
        if len(mine) >= 2 and alive:
            assert not list(data_dir.parent.glob(".ranks/*/rank_00001.done")), "rank 1 finished before the kill"
            os.kill(int(alive[0].read_text().split()[-1]), signal.SIGKILL)
            return mine[0]
    return None


def test_workers_beyond_the_cpus_are_capped_with_one_warning_and_negative_is_refused(corpus):
    base, conf = corpus
    cwd = base / "workers"
    cwd.mkdir()
    capped = nemotron(*conf, *SETTINGS, "stage.workers=1000", f"artifacts.manifest.root={cwd / 's1'}", cwd=cwd)
    assert capped.returncode == 0, capped.stderr[-3000:]
    warnings = [line for line in capped.stderr.splitlines() if "stage.workers=1000 is more than" in line]
    cpus = len(os.sched_getaffinity(0))
    assert len(warnings) == 1 and f"the {cpus} CPU(s) this task may use" in warnings[0], capped.stderr[-3000:]

    negative = nemotron(*conf, *SETTINGS, "stage.workers=-1", f"artifacts.manifest.root={cwd / 's2'}", cwd=cwd)
    assert negative.returncode != 0 and "Traceback" not in negative.stderr
    assert "stage.workers=-1 is negative" in " ".join(negative.stderr.split())
    assert "Training a byte-level BPE" not in negative.stderr  # refused before anything is made
    assert not (cwd / "s2").exists() or not list((cwd / "s2").glob("*/v*"))


def test_the_default_workers_follow_the_slurm_allocation(monkeypatch):
    from nemotron.data.parallel import default_workers, resolve_workers

    cpus = len(os.sched_getaffinity(0))
    for name in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_JOB_CPUS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    assert default_workers() == cpus
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert default_workers() == 1 and resolve_workers(None) == 1 and resolve_workers(0) == 0
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("SLURM_JOB_CPUS_PER_NODE", f"{2 * cpus}(x2)")  # no --cpus-per-task: the node's share
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x2)")
    assert default_workers() == cpus
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", f"{4 * cpus}")
    assert default_workers() == 1


def test_a_malformed_line_in_several_tasks_gives_the_shards_of_one_task(tmp_path, bpe_dir):
    """Ranks count a unit's rows from its lines; a malformed line is no row, which the rank that parses it reports,
    and rank 0 makes that source again alone: the same bytes as one task."""
    conf = write_corpus(tmp_path, bpe_dir, files=2, rows=600)
    web = tmp_path / "corpus" / "web_01.jsonl"
    web.write_text('{"text": "cut\n' + web.read_text())  # 1 of 1,201 lines: within max_bad_fraction
    made = {}
    for tasks in (1, 2):
        cwd = tmp_path / f"tasks{tasks}"
        cwd.mkdir()
        launcher = ["launcher=submitit_local", f"launcher.tasks_per_node={tasks}"] if tasks > 1 else []
        result = nemotron(*conf, *SETTINGS, "stage.shard_rows=50", f"artifacts.manifest.root={cwd / 'store'}",
                          *launcher, cwd=cwd)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        (data_dir,) = data_dirs(cwd)
        made[tasks] = shard_bytes(data_dir)
    assert made[2] == made[1]
    logs = "".join(p.read_text() for p in (tmp_path / "tasks2").glob("multirun/*/*/.submitit/*/*_log.err"))
    assert "Source(s) web hold malformed lines" in logs, logs[-3000:]
