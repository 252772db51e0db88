"""Every stage config composed with every model config, in-process (Hydra's compose API), and its `stage:`
validated by the parameter model the stage (or the model's backend) reads.

`${art:...}` inputs are replaced by placeholders before validation (they name artifacts of a store; what is
checked here is the composed parameters, not the inputs), and so are values a user must give (`???`). A
combination that is meant to be refused must be refused with a NemotronError, never a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from nemotron.errors import NemotronError
from nemotron.job import stage_params

pytestmark = pytest.mark.unit

CONF = Path(__file__).resolve().parents[1] / "conf"
STAGES = sorted(p.stem for p in (CONF / "stage").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
PLACEHOLDER = {"path": "/placeholder/path", "uri": "art://placeholder:v1"}
# stage -> (module, class) of its parameters; a model with `backend: megatron` runs these through a backend
EMBEDDED = {
    "convert": ("nemotron.stages.convert", "ConvertParams"),
    "eval": ("nemotron.stages.eval", "EvalParams"),
    "pipeline": ("nemotron.stages.pipeline", "PipelineParams"),
    "pretrain": ("nemotron.stages.pretrain", "PretrainParams"),
    "pretrain_data": ("nemotron.stages.pretrain_data", "PretrainDataParams"),
    "register": ("nemotron.stages.register", "RegisterParams"),
    "rl": ("nemotron.stages.rl", "RLParams"),
    "rl_data": ("nemotron.stages.rl_data", "RLDataParams"),
    "sft": ("nemotron.stages.sft", "SFTParams"),
    "sft_data": ("nemotron.stages.sft_data", "SFTDataParams"),
}
MEGATRON = {
    "pretrain": ("nemotron.backends.megatron_bridge", "MegatronStageParams"),
    "sft": ("nemotron.backends.megatron_bridge", "MegatronStageParams"),
    "rl": ("nemotron.backends.nemo_rl", "GRPOStageParams"),
}


def compose(stage: str, model: str, *overrides: str) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import nemotron.cli  # noqa: F401  (registers the resolvers the primary config uses)

    with initialize_config_module("nemotron.conf", version_base="1.3"):
        return hydra_compose("config", [f"stage={stage}", f"model={model}", *overrides])


def without_inputs(cfg: DictConfig) -> DictConfig:
    """`cfg` with each `${art:NAME,FIELD}` stage value and each `???` replaced by a placeholder."""
    raw = OmegaConf.to_container(cfg.stage, resolve=False)
    with open_dict(cfg):
        for key, value in raw.items():
            if isinstance(value, str) and value.startswith("${art:"):
                field = value.rstrip("}").rpartition(",")[2]
                cfg.stage[key] = PLACEHOLDER.get(field, PLACEHOLDER["path"])
            elif value == "???":
                cfg.stage[key] = PLACEHOLDER["path"]
    return cfg


def params_model(stage: str, cfg: DictConfig) -> type:
    import importlib

    table = MEGATRON if cfg.model.get("backend") == "megatron" and stage in MEGATRON else EMBEDDED
    module, name = table[stage]
    return getattr(importlib.import_module(module), name)


def test_every_stage_and_model_is_covered():
    assert STAGES and MODELS and set(STAGES) == set(EMBEDDED)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_validates_with_model(stage: str, model: str) -> None:
    cfg = without_inputs(compose(stage, model))
    model_type = params_model(stage, cfg)
    params = stage_params(cfg, model_type)  # the embedded models forbid keys they do not declare
    assert isinstance(params, model_type)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stage", sorted(MEGATRON))
def test_the_model_selects_the_function_a_training_stage_runs(stage: str, model: str) -> None:
    """A model with `backend: megatron` names its backend's function for each training stage (its
    `stage_targets`); any other model runs the embedded recipe in nemotron/stages. No recipe branches on it."""
    from hydra.utils import get_method

    target = compose(stage, model).stage._target_
    table = MEGATRON if compose(stage, model).model.get("backend") == "megatron" else EMBEDDED
    assert target.rpartition(".")[0] == table[stage][0]
    assert callable(get_method(target))


def _engine_settings() -> set[str]:
    """pretrain_data's keys inherited from the engine's ShardSettings, which `build_shards` callers (bench,
    tests) construct directly: the engine keeps its defaults, and they must agree with the YAML's."""
    from nemotron.data.pretrain import ShardSettings

    return set(ShardSettings.model_fields)


@pytest.mark.parametrize("stage", STAGES)
def test_the_yaml_is_the_only_source_of_a_default(stage: str) -> None:
    """A key the stage YAML sets has no default in the embedded parameter model (one source of truth: the YAML)."""
    import importlib

    module, name = EMBEDDED[stage]
    fields = getattr(importlib.import_module(module), name).model_fields
    cfg = compose(stage, "tiny")
    yaml_keys = set(OmegaConf.to_container(cfg.stage, resolve=False))
    engine = _engine_settings() if stage == "pretrain_data" else set()
    defaulted = sorted(key for key in fields.keys() & yaml_keys - engine if not fields[key].is_required())
    assert defaulted == []
    values = OmegaConf.to_container(without_inputs(cfg).stage, resolve=True)
    shared = engine & yaml_keys
    assert {key: fields[key].get_default() for key in shared} == {key: values[key] for key in shared}


def test_a_value_the_user_must_give_is_refused_with_a_paragraph() -> None:
    cfg = compose("register", "tiny")
    with pytest.raises(NemotronError, match=r"needs a value for name, path: add stage\.name=\.\.\. stage\.path=\.\.\."):
        stage_params(cfg, params_model("register", cfg))


def test_a_bad_composed_value_is_refused_with_a_paragraph() -> None:
    cfg = without_inputs(compose("eval", "tiny", "stage.max_new_tokens=0"))
    with pytest.raises(NemotronError, match=r"stage\.max_new_tokens: Input should be greater than or equal to 1"):
        stage_params(cfg, params_model("eval", cfg))


def test_eval_and_rl_generate_as_many_tokens_as_their_yaml_says() -> None:
    for stage in ("eval", "rl"):
        cfg = without_inputs(compose(stage, "tiny"))
        assert stage_params(cfg, params_model(stage, cfg)).max_new_tokens == 32
