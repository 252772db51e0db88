"""`python -m nemotron stage=pretrain model=nano3 launcher=gpu_2x8 stage.dry_run=true` in a real subprocess.

The input is a real PretrainBlendsArtifact made by the pretrain_data stage. The dry run exits 0, prints the
Megatron-Bridge config and the sbatch script, submits nothing (no sbatch here), commits nothing, and leaks no
secret; bad input exits non-zero with one clear paragraph before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import clean_env, nemotron, ok, tree

SECRET = "wandb-integration-key-0123456789"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("dry-run")
    env = clean_env(WANDB_API_KEY=SECRET, WANDB_MODE="offline")
    store = work / "store"
    made = ok(nemotron("stage=pretrain_data", f"artifacts.manifest.root={store}", cwd=work, env=env))
    lines = [json.loads(line) for line in made.stdout.splitlines()]  # the tokenizer, then the data
    (data,) = [line for line in lines if line["type"] == "PretrainBlendsArtifact"]
    return {"work": work, "env": env, "store": store, "data": data["uri"]}


def dry_run(project: dict, *overrides: str):
    args = [
        "stage=pretrain",
        "model=nano3",
        "launcher=gpu_2x8",
        "stage.dry_run=true",
        f"artifacts.manifest.root={project['store']}",
        f"run.data={project['data']}",
        "wandb.project=nemotron-tests",
        *overrides,
    ]
    return nemotron(*args, cwd=project["work"], env=project["env"])


@pytest.mark.slow
def test_dry_run_prints_config_and_sbatch_and_commits_nothing(project):
    before = tree(project["store"])
    result = ok(dry_run(project))
    assert result.stdout == ""  # nothing committed, so no JSON line
    printed = result.stderr
    assert (
        "Megatron-Bridge pretrain config (megatron.bridge.recipes.nemotronh:nemotron_3_nano_pretrain_config)" in printed
    )
    assert "tensor_model_parallel_size: 4" in printed and "blend_per_split:" in printed
    assert "#SBATCH --nodes=2" in printed and "--container-image=nvcr.io#nvidia/nemo:25.11" in printed
    assert "-m nemotron.backends.megatron_bridge" in printed
    assert SECRET not in printed
    assert tree(project["store"]) == before
    written = [p for p in Path(project["work"], "multirun").rglob("*") if p.is_file()]
    assert any(p.name == "megatron_bridge.sbatch" for p in written)
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("launcher.gpus_per_node=6", "launcher.gpus_per_node=6 on launcher.nodes=2 gives 12 GPUs"),
        ("launcher.python=null", "is set but launcher.python is not"),
        ("launcher.nodes=0", "launcher.nodes=0: a job needs at least one node"),
    ],
)
def test_bad_input_fails_before_anything_is_written(project, override, message):
    before = tree(project["store"])
    result = dry_run(project, override)
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert tree(project["store"]) == before
