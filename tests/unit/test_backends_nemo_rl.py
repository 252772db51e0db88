"""NeMo-RL backend: the dry-run GRPO config (NeMo-RL v0.7 schema) and the Ray sbatch script for model=nano3.

Field names follow ../shared/notes/formats.md section 6 (`DataConfig` of v0.6+, the `run_grpo.py` launch and
its main keys) and NeMo-RL's own `grpo-nanov3-30BA3B-2n8g-megatron` recipe.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from backend_inputs import SECRET, commit_inputs, compose

from nemotron.backends import nemo_rl
from nemotron.errors import NemotronError

MASTER_CONFIG_KEYS = {"defaults", "grpo", "loss_fn", "checkpointing", "policy", "data", "env", "logger", "cluster"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return commit_inputs(tmp_path_factory.mktemp("rl"))


@pytest.fixture(autouse=True)
def wandb_key(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)


def dry_run(inputs: dict, tmp_path: Path, *overrides: str) -> tuple[dict, str]:
    cfg = compose(
        inputs["store"],
        "rl",
        f"run.data={inputs['rl']}",
        f"run.model={inputs['model']}",
        "stage.dry_run=true",
        f"stage.output_dir={tmp_path}",
        *overrides,
    )
    assert nemo_rl.run(cfg) is None
    config = yaml.safe_load((tmp_path / nemo_rl.CONFIG_FILE).read_text())
    return config, (tmp_path / nemo_rl.SCRIPT_FILE).read_text()


def test_grpo_config_in_nemo_rl_schema(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path, "stage.steps=50", "stage.group_size=16", "stage.prompts_per_step=32")
    assert set(config) == MASTER_CONFIG_KEYS
    assert config["defaults"] == "/opt/nemo-rl/examples/configs/grpo_math_1B.yaml"
    assert config["grpo"]["num_prompts_per_step"] == 32
    assert config["grpo"]["num_generations_per_prompt"] == 16
    assert config["grpo"]["max_num_steps"] == 50
    assert {"val_period", "seed"} <= set(config["grpo"])
    assert config["loss_fn"]["reference_policy_kl_penalty"] == 0.02
    assert config["loss_fn"]["ratio_clip_min"] == config["loss_fn"]["ratio_clip_max"] == 0.2
    assert config["checkpointing"]["enabled"] is True
    assert config["checkpointing"]["checkpoint_dir"] == str(tmp_path / "checkpoints")
    assert config["cluster"] == {"num_nodes": 2, "gpus_per_node": 8}


def test_policy_uses_the_pinned_model_megatron_and_vllm(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path)
    policy = config["policy"]
    # the pinned ModelArtifact is a Megatron checkpoint: NeMo-RL's Megatron policy starts from it, with the Hugging
    # Face model for the architecture and tokenizer (tests/unit/test_rl_model_format.py has the other formats)
    assert policy["pretrained_checkpoint"]["path"].endswith("checkpoint")
    assert policy["model_name"] == "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
    assert policy["tokenizer"] == {"name": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"}
    assert policy["max_total_sequence_length"] == 2048
    assert {"train_global_batch_size", "train_micro_batch_size"} <= set(policy)
    assert policy["dtensor_cfg"] == {"enabled": False}
    megatron = policy["megatron_cfg"]
    assert megatron["enabled"] is True
    assert megatron["tensor_model_parallel_size"] == 2 and megatron["expert_model_parallel_size"] == 8
    assert megatron["optimizer"] == {} and megatron["scheduler"] == {}  # not given: NeMo-RL's base config
    given, _ = dry_run(inputs, tmp_path / "given", "stage.lr=1e-6", "stage.steps=50")
    assert given["policy"]["megatron_cfg"]["optimizer"] == {"lr": 1e-6}
    assert given["policy"]["megatron_cfg"]["scheduler"] == {"lr_decay_iters": 50}
    assert policy["generation"]["backend"] == "vllm"
    assert policy["generation"]["vllm_cfg"] == {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.7}


def test_data_from_split_jsonl_with_math_processor(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path)
    data = config["data"]
    assert Path(data["train"]["data_path"]).name == "train.jsonl"
    assert data["train"]["input_key"] == "problem" and data["train"]["output_key"] == "expected_answer"
    assert data["train"]["dataset_name"] == data["validation"]["dataset_name"] == "ResponseDataset"
    assert Path(data["validation"]["data_path"]).name == "val.jsonl"
    assert data["default"] == {
        "dataset_name": "ResponseDataset",
        "prompt_file": "examples/prompts/cot.txt",
        "processor": "math_hf_data_processor",
        "env_name": "math",
    }
    assert config["env"]["math"]["math_verify_impl"] == "hf_math_verify"


def test_wandb_settings_without_the_key(inputs, tmp_path, capsys):
    config, script = dry_run(inputs, tmp_path)
    assert config["logger"]["wandb_enabled"] is True
    assert config["logger"]["wandb"] == {"project": "nemotron-tests", "name": "rl-model", "entity": "team"}
    printed = capsys.readouterr()
    for text in (printed.out, printed.err, script, (tmp_path / nemo_rl.CONFIG_FILE).read_text()):
        assert SECRET not in text


def test_sbatch_script_starts_ray_in_the_allocation(inputs, tmp_path):
    _, script = dry_run(inputs, tmp_path)
    lines = script.splitlines()
    header = [line for line in lines if line.startswith("#SBATCH")]
    assert {"#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=1"} <= set(header)
    assert not any("container" in line for line in header)
    steps = [line for line in lines if line.startswith("srun ")]
    assert len(steps) == 3  # head, workers, driver
    for step in steps:
        assert "--container-image=nvcr.io#nvidia/nemo:25.11" in step and "--container-mounts=" in step
    head, workers, driver = steps
    assert "ray start --head" in head and "--nodelist=$RAY_HEAD" in head
    assert "ray start --address=$RAY_HEAD:6379" in workers and "--exclude=$RAY_HEAD" in workers
    assert "--nodes=1" in workers  # the other node
    assert f"python3 examples/run_grpo.py --config {tmp_path / nemo_rl.CONFIG_FILE}" in driver
    assert "cd /opt/nemo-rl" in driver


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.rl.megatron_cfg.tensor_model_parallel_size=3"], "tensor_model_parallel_size=3"),
        (["model.rl.vllm_cfg.tensor_parallel_size=3"], "tensor_parallel_size=3"),
        (["launcher.python=null"], "launcher.python is not"),
        (["launcher.nodes=0"], "launcher.nodes=0"),
        (["launcher=local"], "no cluster profile is selected"),
    ],
)
def test_bad_input_is_a_clear_error(inputs, tmp_path, overrides, message):
    with pytest.raises(NemotronError, match=message.replace(".", r"\.")):
        dry_run(inputs, tmp_path, *overrides)
    assert not (tmp_path / nemo_rl.SCRIPT_FILE).exists()


def test_single_node_script_has_no_workers(inputs, tmp_path):
    _, script = dry_run(inputs, tmp_path, "launcher.nodes=1")
    assert "--exclude=$RAY_HEAD" not in script
    assert 'grep -c " node_")" -ge 1' in script


def test_real_run_without_nemo_rl_says_so(inputs, tmp_path):
    """Without stage.dry_run the stage starts Ray and NeMo-RL's entry point, which is not installed here."""
    pytest.importorskip("torch")
    cfg = compose(
        inputs["store"],
        "rl",
        f"run.data={inputs['rl']}",
        f"run.model={inputs['model']}",
        f"stage.output_dir={tmp_path}",
        "launcher=local",
        f"model.rl.nemo_rl_dir={tmp_path / 'no-nemo-rl'}",
    )
    with pytest.raises(NemotronError, match="NeMo-RL is not installed in this environment"):
        nemo_rl.run(cfg)
    assert not (tmp_path / nemo_rl.CONFIG_FILE).exists()  # refused before anything was written
