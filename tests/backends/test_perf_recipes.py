"""Megatron-Bridge's performance recipes: which one a launcher profile picks, what the dry run shows, and what a
job started from one keeps of the model's own recipe. tests/realmb checks the same table against the real wheel."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers.backend_inputs import commit_inputs, compose

from nemotron.backends import megatron_bridge as mb

pytestmark = pytest.mark.unit

NANO_PRETRAIN = "megatron.bridge.recipes.nemotronh:nemotron_3_nano_pretrain_config"
PERF = "megatron.bridge.perf_recipes.nemotronh"
NANO_H100 = f"{PERF}:nemotron_3_nano_pretrain_16gpu_h100_bf16_config"


@pytest.mark.parametrize(
    ("recipe", "gpu_type", "gpus", "expected"),
    [
        (NANO_PRETRAIN, "h100", 16, NANO_H100),
        (NANO_PRETRAIN, "H100", 16, NANO_H100),  # as people write it
        (NANO_PRETRAIN, "b200", 8, f"{PERF}:nemotron_3_nano_pretrain_8gpu_b200_bf16_config"),
        (NANO_PRETRAIN, "h100", 8, None),  # measured on 16 H100 only: another count is another layout
        (NANO_PRETRAIN, "b200", 16, None),
        (NANO_PRETRAIN, None, 16, None),  # no GPU type named: the model's own recipe
        (NANO_PRETRAIN, "a100", 16, None),
        ("megatron.bridge.recipes.nemotronh:nemotron_3_nano_sft_config", "h100", 16, None),  # none for SFT
        ("megatron.bridge.recipes.llama:llama32_1b_pretrain_config", "h100", 16, None),
    ],
)
def test_choice_by_recipe_gpu_type_and_count(recipe, gpu_type, gpus, expected):
    perf = mb.perf_recipe_for(recipe, gpu_type, gpus)
    assert (perf.recipe if perf else None) == expected
    if perf:
        assert perf.base == recipe and mb._perf_base(perf.recipe) == recipe


def test_the_h100_layout_is_the_measured_one():
    perf = mb.perf_recipe_for(NANO_PRETRAIN, "h100", 16)
    assert perf.parallelism.model_dump() == {
        "tensor_model_parallel_size": 1,
        "pipeline_model_parallel_size": 1,
        "context_parallel_size": 1,
        "expert_model_parallel_size": 8,
        "expert_tensor_parallel_size": 1,
        "sequence_parallel": False,
    }
    assert (perf.global_batch_size, perf.micro_batch_size) == (1024, 1)


def test_a_plain_recipe_has_no_base():
    assert mb._perf_base(NANO_PRETRAIN) is None
    assert mb._perf_base(f"{PERF}:nemotron_3_super_pretrain_64gpu_h100_bf16_config") is None


def test_a_job_from_a_perf_recipe_trains_as_the_model_recipe():
    """The benchmark's 50 steps, no checkpoint, no NaN checks and forced MoE load balancing give way to the model
    recipe's values; everything else (layout, kernels, env_vars) stays the performance recipe's."""

    def container(**sections):
        return SimpleNamespace(**{name: SimpleNamespace(**fields) for name, fields in sections.items()})

    perf = container(
        train=dict(train_iters=50, eval_iters=0, global_batch_size=1024),
        model=dict(moe_router_force_load_balancing=True, tensor_model_parallel_size=1),
        checkpoint=dict(save=None),
        ddp=dict(check_for_nan_in_grad=False, check_for_large_grads=False),
    )
    base = container(
        train=dict(train_iters=39735, eval_iters=None, global_batch_size=768),
        model=dict(moe_router_force_load_balancing=False, tensor_model_parallel_size=4),
        checkpoint=dict(save="/ckpt"),
        ddp=dict(check_for_nan_in_grad=True, check_for_large_grads=True),
    )
    out = mb._with_training_policy(perf, base)
    assert (out.train.train_iters, out.train.eval_iters, out.train.global_batch_size) == (39735, None, 1024)
    assert out.model.moe_router_force_load_balancing is False and out.model.tensor_model_parallel_size == 1
    assert out.checkpoint.save == "/ckpt" and out.ddp.check_for_nan_in_grad and out.ddp.check_for_large_grads


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return commit_inputs(tmp_path_factory.mktemp("perf"))


def _dry_run(inputs: dict, out: Path, *overrides: str) -> tuple[dict, str]:
    cfg = compose(
        inputs["store"],
        "pretrain",
        f"run.data={inputs['pretrain']}",
        "stage.dry_run=true",
        f"stage.output_dir={out}",
        *overrides,
    )
    assert mb.run(cfg, "pretrain") is None
    return yaml.safe_load((out / mb.CONFIG_FILE).read_text()), (out / mb.SCRIPT_FILE).read_text()


def test_dry_run_on_16_h100_starts_from_the_perf_recipe(inputs, tmp_path, capsys):
    config, script = _dry_run(inputs, tmp_path, "launcher.gpu_type=h100")
    assert f"--recipe {NANO_H100} " in script
    assert NANO_H100 in capsys.readouterr().out  # the dry run names the recipe it used
    model = config["model"]
    assert (model["tensor_model_parallel_size"], model["expert_model_parallel_size"]) == (1, 8)
    assert model["sequence_parallel"] is False  # not model=nano3's TP4 + sequence parallel
    assert (config["train"]["global_batch_size"], config["train"]["micro_batch_size"]) == (1024, 1)


def test_launcher_gpu_2x8_is_16_h100_and_starts_from_the_perf_recipe(inputs, tmp_path, capsys):
    """The shipped 2 x 8 profile describes H100 nodes (launcher.gpu_type=h100): model=nano3 pretraining on it
    starts from the measured layout, not the unmeasured TP4 / global batch 768 of model.parallelism."""
    config, script = _dry_run(inputs, tmp_path)
    assert f"--recipe {NANO_H100} " in script and NANO_H100 in capsys.readouterr().out
    assert (config["model"]["tensor_model_parallel_size"], config["train"]["global_batch_size"]) == (1, 1024)


def test_dry_run_without_a_gpu_type_keeps_the_model_recipe(inputs, tmp_path):
    config, script = _dry_run(inputs, tmp_path, "launcher.gpu_type=null")
    assert f"--recipe {NANO_PRETRAIN} " in script
    assert config["model"]["tensor_model_parallel_size"] == 4 and config["train"]["global_batch_size"] == 768
