"""`stage=pipeline model=nano3 launcher=gpu_2x8 launcher.wait=false launcher.dry_run=true`: the GPU pipeline's
Slurm chain as it would be submitted (no Slurm needed): one sbatch script per step, each later step waiting for the
jobs it reads from (afterok) and cancelled if one of them fails (kill-on-invalid-dep), reading their outputs
through the run's alias. tests/stages/test_pipeline_chain.py runs the chain for real with model=tiny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.clitools import clean_env, nemotron, ok, tree

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_the_nano3_chain_dry_run_writes_each_steps_script_with_its_dependencies(tmp_path: Path) -> None:
    root, out = tmp_path / "store", tmp_path / "pipe"
    ok(nemotron("stage=pipeline", "model=nano3", "launcher=gpu_2x8", "launcher.wait=false", "launcher.dry_run=true",
                f"stage.output_dir={out}", cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root)))  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    jobs, alias = results["jobs"], results["alias"]
    assert list(jobs) == ["pretrain_data", "sft_data", "rl_data", "pretrain", "sft", "convert", "rl", "eval_convert"]

    def script(step: str) -> str:
        return next((out).glob(f"*_{step}/.submitit/dry_run_submission.sh")).read_text()

    assert "--dependency" not in script("pretrain_data")
    assert f"#SBATCH --dependency=afterok:{jobs['pretrain']}:{jobs['sft_data']}" in script("sft")
    assert f"#SBATCH --dependency=afterok:{jobs['convert']}:{jobs['rl_data']}" in script("rl")
    assert all("#SBATCH --kill-on-invalid-dep=yes" in script(step) for step in ("sft", "convert", "rl"))
    assert "#SBATCH --nodes=2" in script("pretrain") and "#SBATCH --nodes=1" in script("convert")
    # the converted 30B model is evaluated on one GPU node (stage.device=cuda: model.train.eval,
    # tests/stages/test_eval_on_gpu.py)
    assert "#SBATCH --nodes=1" in script("eval_convert") and "#SBATCH --gpus-per-node=8" in script("eval_convert")
    # each step reads what the step before it commits, through the alias its job pins at start
    assert results["artifacts"]["convert"]["ModelArtifact"] == f"art://sft-model-hf-tiny:{alias}"
    rl_overrides = (out / "07_rl" / "multirun.yaml").read_text()
    assert f"++run.model=art://sft-model-hf-tiny:{alias}" in rl_overrides
    assert f"++artifacts.alias={alias}" in rl_overrides
    assert tree(root) == {}  # nothing submitted, nothing committed
