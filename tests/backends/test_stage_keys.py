"""No tiny default reaches a Megatron-Bridge or NeMo-RL job: every `stage:` key of conf/stage/{pretrain,sft,rl}.yaml
that a backend reads is, for model=nano3 and model=llama32_1b, decided by the model (model.train.<stage>.KEY:
null = the recipe's or NeMo-RL's base config value), or given on the command line.

The keys are enumerated from the stage YAMLs themselves, so a key added later with a tiny default fails here
until the Megatron models decide it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.backend_inputs import compose
from omegaconf import OmegaConf

from nemotron.backends.megatron_bridge import MegatronStageParams
from nemotron.backends.nemo_rl import GRPOStageParams

pytestmark = pytest.mark.unit

STAGES = Path(__file__).parents[2] / "conf" / "stage"
BACKEND_PARAMS = {"pretrain": MegatronStageParams, "sft": MegatronStageParams, "rl": GRPOStageParams}
# What the run is, not how it trains: the artifacts, names, where it writes, and the seed (a root config key).
NOT_HYPERPARAMETERS = {"name", "data", "data_uri", "model", "model_uri", "output_dir", "dry_run", "seed", "device"}


def backend_keys(stage: str) -> list[str]:
    raw = OmegaConf.load(STAGES / f"{stage}.yaml").stage
    keys = set(BACKEND_PARAMS[stage].model_fields) & set(raw) - NOT_HYPERPARAMETERS
    return sorted(keys)


def test_the_enumeration_sees_the_hyperparameters():
    assert {"steps", "lr", "eval_every", "eval_batches", "checkpoint_every", "log_every", "grad_clip"} <= set(
        backend_keys("pretrain")
    )
    assert {"max_new_tokens", "eval_every", "prompts_per_step", "group_size", "kl_coef", "eval_problems"} <= set(
        backend_keys("rl")
    )


@pytest.mark.parametrize("model", ["nano3", "llama32_1b"])
@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_every_backend_key_is_the_models_decision(tmp_path, model, stage):
    cfg = compose(tmp_path, stage, f"model={model}")
    decided = cfg.model.train[stage]
    for key in backend_keys(stage):
        assert key in decided, (
            f"stage.{key} reaches the {stage} backend, but model={model} does not decide it: add "
            f"model.train.{stage}.{key} (null = the recipe's value) to conf/model/{model}.yaml"
        )
        assert cfg.stage[key] == decided[key], f"stage.{key}={cfg.stage[key]} is not model.train.{stage}.{key}"
        assert decided[key] is None  # the Megatron models leave every one to the recipe / NeMo-RL's base


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_the_command_line_still_wins(tmp_path, stage):
    key = backend_keys(stage)[0]
    cfg = compose(tmp_path, stage, "model=nano3", f"stage.{key}=7")
    assert cfg.stage[key] == 7


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_the_tiny_model_keeps_its_defaults(tmp_path, stage):
    """model=tiny has no train: section: the embedded loops keep the stage YAML's tiny-scale values."""
    cfg = compose(tmp_path, stage, "model=tiny")
    assert all(cfg.stage[key] is not None for key in backend_keys(stage))
