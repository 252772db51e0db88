"""stage=eval of a Megatron model (model=nano3, llama32_1b: the pipeline's eval step reads the converted Hugging
Face model) runs on a GPU of its node with a batch whose logits fit beside the weights, never with the CPU and
batch of the tiny model; model=tiny keeps device=${device}. The CPU refusal above stage.max_cpu_params is tested
end to end in tests/training/test_training_stages.py."""

from __future__ import annotations

import pytest
from helpers.backend_inputs import compose

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("model", ["nano3", "llama32_1b"])
def test_a_megatron_models_eval_runs_on_a_gpu(tmp_path, model):
    cfg = compose(tmp_path, "eval", f"model={model}")
    assert cfg.stage.device == "cuda" and cfg.stage.device == cfg.model.train.eval.device
    assert cfg.stage.batch_size == cfg.model.train.eval.batch_size <= 4
    assert cfg.stage.seq_len == cfg.model.max_seq_len  # within the converted model's positions (checked at start)


def test_the_command_line_still_wins(tmp_path):
    cfg = compose(tmp_path, "eval", "model=nano3", "stage.device=cpu", "stage.batch_size=8")
    assert (cfg.stage.device, cfg.stage.batch_size) == ("cpu", 8)


def test_the_tiny_model_keeps_the_global_device(tmp_path):
    cfg = compose(tmp_path, "eval", "model=tiny", "device=cpu")
    assert (cfg.stage.device, cfg.stage.batch_size) == ("cpu", 32)
