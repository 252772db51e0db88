"""`stage=pipeline launcher=slurm launcher.wait=false` on a real single-host Slurm: the whole pipeline submitted
once as a chain of jobs (--dependency=afterok, --kill-on-invalid-dep=yes), model=tiny standing in for the GPU
backends. The command returns with the job ids at once; each step reads the exact version the step before it
committed (through the run's alias); a step that is cancelled or fails cancels every step after it, and nothing
is committed for them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import clean_env, nemotron, nemotron_art, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.timeout_min=15", "launcher.wait=false"]
PER_STEP = {  # the quick settings of tests/stages/test_pipeline.py
    "pretrain": "steps:4,batch_size:4,eval_every:2,eval_batches:1",
    "sft": "steps:3,batch_size:2,eval_every:0,eval_batches:1",
    "rl": "steps:2,prompts_per_step:2,group_size:2,max_new_tokens:6,eval_every:0,eval_problems:4",
    "eval": "max_problems:6,perplexity_batches:1,batch_size:6,max_new_tokens:6",
}
SMALL = [
    "scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400", "model.hidden_size=32", "model.num_layers=1",
    "model.num_heads=2", "model.num_kv_heads=2", "model.intermediate_size=64", "model.max_seq_len=128",
    *(f"+stage.overrides.{step}.{setting.replace(':', '=')}" for step, settings in PER_STEP.items()
      for setting in settings.split(",")),
]  # fmt: skip
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")
SUBMIT_S = 120  # clitools.TIMEOUT_S: eleven `launcher.wait=false` submissions on a busy 2-core machine


def submit(tmp_path: Path, root: Path, *extra: str) -> tuple[dict, str]:
    started = time.monotonic()
    result = ok(nemotron("stage=pipeline", "model=tiny", *SLURM, *SMALL, f"stage.output_dir={tmp_path / 'pipe'}",
                         *extra, cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root)))  # fmt: skip
    assert time.monotonic() - started < SUBMIT_S  # it submitted and returned: no step ran yet
    return json.loads((tmp_path / "pipe" / "results.json").read_text()), result.stderr


def states(jobs: dict) -> dict:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(jobs.values())],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    by_id = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {step: by_id.get(job, "UNKNOWN").split()[0] for step, job in jobs.items()}


def wait_for_all(jobs: dict, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        found = states(jobs)
        if all(state in DONE for state in found.values()):
            return found
        assert time.monotonic() < deadline, f"the chain did not end in {timeout_s} s: {found}"
        time.sleep(3)


def committed(root: Path) -> set[str]:
    return {p.parent.parent.name for p in root.glob("*/v*/manifest.json")}


def test_the_pipeline_is_submitted_once_and_the_chain_completes_with_lineage(local_slurm, tmp_path):
    root = tmp_path / "store"
    results, printed = submit(tmp_path, root)
    jobs, alias = results["jobs"], results["alias"]
    steps = ["pretrain_data", "sft_data", "rl_data", "pretrain", "sft", "convert", "rl"]
    assert list(jobs) == [*steps, "eval_pretrain", "eval_sft", "eval_rl"]
    assert all(job in printed for job in jobs.values()) and alias in printed
    assert len(set(jobs.values())) == len(jobs)
    ended = wait_for_all(jobs)
    assert set(ended.values()) == {"COMPLETED"}, ended
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    lineage = ok(nemotron_art("lineage", "rl-model-tiny:latest", "--format", "json", cwd=tmp_path, env=env))
    tree = json.loads(lineage.stdout)

    def names(node: dict) -> set[str]:
        return {node["ref"].split(":")[0], *(n for child in node.get("inputs", []) for n in names(child))}

    assert {"rl-model-tiny", "sft-model-hf-tiny", "sft-model-tiny", "pretrain-model-tiny", "sft-data-tiny",
            "rl-data-tiny", "pretrain-data-tiny", "tokenizer-tiny"} <= names(tree)  # fmt: skip
    # each step read exactly what its predecessor in this chain committed: the run's alias names it
    for name in ("tokenizer-tiny", "pretrain-data-tiny", "sft-data-tiny", "rl-data-tiny", "pretrain-model-tiny",
                 "sft-model-tiny", "sft-model-hf-tiny", "rl-model-tiny", "eval-rl-model-tiny"):  # fmt: skip
        assert (root / name / "aliases" / alias).read_text().strip() == "v1", name
    rl = json.loads((root / "rl-model-tiny" / "v1" / "manifest.json").read_text())
    assert "sft-model-hf-tiny:v1" in rl["used_artifacts"] and rl["run"]["slurm_job_id"] == jobs["rl"]


def test_cancelling_one_step_cancels_the_later_ones_and_commits_nothing_for_them(local_slurm, tmp_path):
    root = tmp_path / "store"
    # pretrain long enough that it cannot finish in the grace Slurm gives a cancelled job (KillWait, 30 s, during
    # which submitit ignores SIGTERM): pending or running, it ends without committing
    results, _ = submit(tmp_path, root, "++stage.overrides.pretrain.steps=100000")
    jobs = results["jobs"]
    subprocess.run(["scancel", jobs["pretrain"]], check=True)
    ended = wait_for_all(jobs)
    later = ["pretrain", "sft", "convert", "rl", "eval_pretrain", "eval_sft", "eval_rl"]
    assert {step: ended[step] for step in later} == dict.fromkeys(later, "CANCELLED"), ended
    assert {ended[step] for step in ("pretrain_data", "sft_data", "rl_data")} == {"COMPLETED"}, ended
    assert committed(root) == {"tokenizer-tiny", "pretrain-data-tiny", "sft-data-tiny", "rl-data-tiny"}


def test_a_failing_step_fails_its_job_and_cancels_the_later_ones(local_slurm, tmp_path):
    root = tmp_path / "store"
    results, _ = submit(tmp_path, root, "stage.steps=[pretrain_data,pretrain,eval]",
                        "+stage.overrides.pretrain.lr=-1")  # fmt: skip
    ended = wait_for_all(results["jobs"])
    assert ended == {"pretrain_data": "COMPLETED", "pretrain": "FAILED", "eval_pretrain": "CANCELLED"}
    assert committed(root) == {"tokenizer-tiny", "pretrain-data-tiny"}
    log = "".join(p.read_text() for p in (tmp_path / "pipe").glob("02_pretrain/.submitit/*/*_log.err"))
    assert "nothing was committed" in " ".join(log.split())


def test_waiting_on_slurm_runs_the_steps_one_after_the_other_pinned_to_exact_versions(local_slurm, tmp_path):
    root, out = tmp_path / "store", tmp_path / "pipe"
    command = [sys.executable, "-m", "nemotron", "stage=pipeline", "model=tiny", *SLURM[:-1], *SMALL,
               f"stage.output_dir={out}", "stage.steps=[pretrain_data,pretrain]"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    artifacts = json.loads((out / "results.json").read_text())["artifacts"]
    assert artifacts["pretrain"]["ModelArtifact"] == "art://pretrain-model-tiny:v1"
    record = json.loads((root / "pretrain-model-tiny" / "v1" / "manifest.json").read_text())
    assert "pretrain-data-tiny:v1" in record["used_artifacts"] and record["run"]["slurm_job_id"]


def test_a_step_that_cannot_be_submitted_cancels_the_jobs_already_submitted(local_slurm, tmp_path):
    root = tmp_path / "store"
    result = nemotron("stage=pipeline", "model=tiny", *SLURM, *SMALL, f"stage.output_dir={tmp_path / 'pipe'}",
                      "++stage.overrides.pretrain.steps=100000", "+stage.overrides.convert.no_such_key=1",
                      cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root))  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "The pipeline step 'convert' failed to submit" in message and "were cancelled" in message
    submitted = re.search(r"The jobs this pipeline had submitted \(([\d, ]+)\)", message).group(1).split(", ")
    steps = ["pretrain_data", "sft_data", "rl_data", "pretrain", "sft"]
    ended = wait_for_all(dict(zip(steps, submitted, strict=True)))
    # the data steps may have finished before the cancel (they keep what they committed); the others never ran
    assert ended["pretrain"] == ended["sft"] == "CANCELLED", ended
    assert not (root / "pretrain-model-tiny").exists() and not (root / "sft-model-tiny").exists()
