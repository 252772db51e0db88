"""`python -m nemotron stage=pretrain|sft|rl model=nano3|llama32_1b launcher=gpu_2x8 stage.dry_run=true` in real
subprocesses.

The inputs are real artifacts made by the pretrain_data, sft_data and rl_data stages, and registered model
checkpoints (Megatron for nano3, Hugging Face for llama32_1b's DTensor GRPO). Each dry run passes the pre-submit
checks, exits 0, prints the backend config and the sbatch script, submits nothing (no sbatch here), commits
nothing, and leaks no secret; bad input exits non-zero with one clear paragraph before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.clitools import clean_env, nemotron, ok, tree

pytestmark = pytest.mark.integration

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


def _last_uri(result) -> str:
    return json.loads(ok(result).stdout.splitlines()[-1])["uri"]


@pytest.fixture(scope="module")
def inputs(project) -> dict:
    """SFT and RL data from their stages, two registered starting models, and a local Llama config copy."""
    work, env, root = project["work"], project["env"], f"artifacts.manifest.root={project['store']}"
    sft = _last_uri(nemotron("stage=sft_data", root, cwd=work, env=env))
    rl = _last_uri(nemotron("stage=rl_data", root, cwd=work, env=env))
    models = {}
    for fmt in ("megatron", "hf"):
        path = work / f"{fmt}-checkpoint"
        path.mkdir()
        (path / "config.json").write_text("{}")
        register = ("stage=register", root, f"stage.path={path}", f"stage.name=start-{fmt}", "stage.type=ModelArtifact")
        models[fmt] = _last_uri(nemotron(*register, f"+stage.fields.format={fmt}", cwd=work, env=env))
    llama = work / "llama-config"
    llama.mkdir()
    (llama / "config.json").write_text('{"model_type": "llama"}')
    return {"sft": sft, "rl": rl, "models": models, "llama_config": str(llama)}


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
    # launcher=gpu_2x8 is 16 H100: the dry run names the measured performance recipe it starts from
    recipe = "megatron.bridge.perf_recipes.nemotronh:nemotron_3_nano_pretrain_16gpu_h100_bf16_config"
    assert f"Megatron-Bridge pretrain config ({recipe})" in printed
    assert "tensor_model_parallel_size: 1" in printed and "blend_per_split:" in printed
    assert "#SBATCH --nodes=2" in printed and "--container-image=nvcr.io#nvidia/nemo:26.08" in printed
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


RUNS = {
    "pretrain": ("Megatron-Bridge pretrain config", "megatron_bridge.sbatch", "nvcr.io#nvidia/nemo:26.08"),
    "sft": ("Megatron-Bridge sft config", "megatron_bridge.sbatch", "nvcr.io#nvidia/nemo:26.08"),
    "rl": ("NeMo-RL GRPO config", "nemo_rl_grpo.sbatch", "nvcr.io#nvidia/nemo-rl:v0.7.0"),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["nano3", "llama32_1b"])
@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_dry_runs_pass_the_pre_submit_checks(project, inputs, tmp_path, model, stage):
    """Each model x stage dry run passes every pre-submit check and names its world's image."""
    start = inputs["models"]["hf" if model == "llama32_1b" and stage == "rl" else "megatron"]
    runs = {
        "pretrain": [f"run.data={project['data']}"],
        "sft": [f"run.data={inputs['sft']}", f"run.model={start}"],
        "rl": [f"run.data={inputs['rl']}", f"run.model={start}"],
    }[stage]
    llama = [f"model.hf_config={inputs['llama_config']}"] if model == "llama32_1b" else []
    before = tree(project["store"])
    result = nemotron(
        f"stage={stage}", f"model={model}", "launcher=gpu_2x8", "stage.dry_run=true",
        f"artifacts.manifest.root={project['store']}", f"stage.output_dir={tmp_path}", *runs, *llama,
        cwd=project["work"], env=project["env"],
    )  # fmt: skip
    ok(result)
    title, script, image = RUNS[stage]
    assert title in result.stderr and f"--container-image={image}" in result.stderr
    assert (tmp_path / script).is_file() and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert tree(project["store"]) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "overrides", "message"),
    [
        ("rl", ["stage.eval_problems=100", "model.rl.val_batch_size=256"], "less than one validation batch"),
        ("rl", ["model.rl.make_sequence_length_divisible_by=3"], "is not a multiple of 2"),
        ("rl", ["stage.prompts_per_step=3", "stage.group_size=5"], "15 samples per step is not a multiple of"),
        ("rl", ["+model.rl.megatron_cfg.bias_activation_fusion=true"], "model.activation=squared_relu"),
        # the SFT data's pack_size 2048 over CP3 x TP8 with sequence parallel: lcm(6, 24) = 24
        (
            "sft",
            [
                "model.parallelism.tensor_model_parallel_size=8",
                "model.parallelism.context_parallel_size=3",
                "launcher.nodes=3",
            ],
            "sequence length 2048",
        ),
    ],
)
def test_bad_backend_input_is_one_paragraph_before_submitting(project, inputs, tmp_path, stage, overrides, message):
    runs = [f"run.data={inputs[stage]}", f"run.model={inputs['models']['megatron']}"]
    result = nemotron(
        f"stage={stage}", "model=nano3", "launcher=gpu_2x8", "stage.dry_run=true",
        f"artifacts.manifest.root={project['store']}", f"stage.output_dir={tmp_path}", *runs, *overrides,
        cwd=project["work"], env=project["env"],
    )  # fmt: skip
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert not any(tmp_path.glob("*.sbatch"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (
            "pretrain",
            "Megatron-Bridge is not installed in this environment, and nemotron's Megatron-Bridge backend "
            "needs Megatron-Bridge 0.6 or newer. Run it in nvcr.io#nvidia/nemo:26.08",
        ),
        ("rl", "NeMo-RL is not installed in this environment"),
    ],
)
def test_a_real_run_without_the_library_is_one_paragraph_naming_the_image(project, inputs, tmp_path, stage, message):
    """What a job started in the wrong container prints: the same check runs at job start (here: this machine,
    which has neither library), before torchrun or Ray, and nothing is committed."""
    runs = (
        [f"run.data={project['data']}"]
        if stage == "pretrain"
        else [f"run.data={inputs['rl']}", f"run.model={inputs['models']['megatron']}"]
    )
    before = tree(project["store"])
    result = nemotron(
        f"stage={stage}", "model=nano3", "launcher=local", f"artifacts.manifest.root={project['store']}",
        f"stage.output_dir={tmp_path}", f"model.rl.nemo_rl_dir={tmp_path / 'none'}", *runs,
        cwd=project["work"], env=project["env"],
    )  # fmt: skip
    assert result.returncode != 0
    printed = " ".join(result.stderr.split())
    assert message in printed and "Traceback" not in result.stderr
    if stage == "rl":
        assert "nvcr.io#nvidia/nemo-rl:v0.7.0" in printed  # model.containers.nemo_rl
    assert tree(project["store"]) == before and result.stdout == ""
