"""The embedded training backend on a real single-host Slurm cluster: a 2-task DDP job (gloo on CPU) that
commits once, and a job preempted mid-training that is requeued and resumes from its own checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import TIMEOUT_S, clean_env, json_line, manifest, nemotron, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.timeout_min=10"]
SMALL_MODEL = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=2",
               "model.intermediate_size=64", "model.max_seq_len=64"]  # fmt: skip


@pytest.fixture(scope="module")
def data_root(local_slurm, tmp_path_factory) -> Path:
    """A store holding small pretraining data (made locally: the data stages are not what is tested here)."""
    base = tmp_path_factory.mktemp("slurm-train")
    root = base / "store"
    ok(nemotron("stage=pretrain_data", "scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400",
                cwd=base, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root)))  # fmt: skip
    return root


def _pretrain(*args: str) -> list[str]:
    return ["stage=pretrain", *SLURM, *SMALL_MODEL, "stage.batch_size=4", "stage.eval_batches=1", *args]


def test_two_tasks_train_with_ddp_and_commit_once(data_root, tmp_path):
    result = ok(nemotron(*_pretrain("stage.steps=6", "stage.eval_every=3", "launcher.tasks_per_node=2"),
                         cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=data_root)))  # fmt: skip
    line = json_line(result)
    version = line["version"]
    record = manifest(data_root, "pretrain-model-tiny", version)["metadata"]  # the artifact's fields
    assert record["metadata"]["world_size"] == 2 and record["step"] == 6
    assert manifest(data_root, "pretrain-model-tiny", version)["run"]["slurm_job_id"]
    assert sorted(p.name for p in (data_root / "pretrain-model-tiny").glob("v*")) == [f"v{version}"]  # once


def test_a_preempted_training_job_resumes_from_its_checkpoint(data_root, tmp_path):
    steps = 3000
    args = _pretrain(f"stage.steps={steps}", "stage.checkpoint_every=20", "stage.eval_every=1000",
                     "launcher.timeout_min=60")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "nemotron", *args], cwd=tmp_path,
                            env=clean_env(NEMOTRON_ARTIFACTS_ROOT=data_root), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        checkpoint = _wait_for(lambda: next(tmp_path.glob("multirun/pretrain/*/0/checkpoints/step_*/state.json"),
                                            None), proc)  # fmt: skip
        job_id = _wait_for(lambda: _running_job(tmp_path), proc)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # what Slurm sends before preempting
        deadline = time.monotonic() + TIMEOUT_S * 3
        while proc.poll() is None and time.monotonic() < deadline:
            # Slurm holds a requeued job back for a while before it may start again; let it start now
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            time.sleep(1)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    record = manifest(data_root, "pretrain-model-tiny", json.loads(out)["version"])["metadata"]
    assert record["step"] == steps
    resumed = record["metadata"]["resumed_from"]
    assert resumed and Path(resumed).parent == checkpoint.parent.parent  # its own output dir's checkpoint
    assert "Resuming from" in _log(tmp_path, "out") + _log(tmp_path)


def _wait_for(probe, proc: subprocess.Popen, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


def _running_job(tmp_path: Path) -> str | None:
    logs = list(tmp_path.glob("multirun/pretrain/*/.submitit/*/*_0_log.out"))
    return logs[0].name.split("_")[0] if logs else None


def _log(tmp_path: Path, kind: str = "err") -> str:
    return "".join(p.read_text() for p in tmp_path.glob(f"multirun/pretrain/*/.submitit/*/*_log.{kind}"))
