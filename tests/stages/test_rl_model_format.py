"""The RL backend (NeMo-RL v0.7) takes its starting model by the input ModelArtifact's `format`, and refuses one
it cannot start from in the dry run, before any file is written or anything submitted (issue 11, finding 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.backend_inputs import commit_inputs, compose

from nemotron.backends import nemo_rl
from nemotron.errors import NemotronError

pytestmark = pytest.mark.unit

DTENSOR_POLICY = ("~model.rl.megatron_cfg", "+model.rl.dtensor_cfg.tensor_parallel_size=1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """The backend inputs, plus a Hugging Face model and a NeMo-RL checkpoint in the same store."""
    from nemotron import ModelArtifact, log_artifact, setup_artifact_tracking

    base = tmp_path_factory.mktemp("rl-format")
    refs = commit_inputs(base)
    tracking = setup_artifact_tracking({"artifacts": {"manifest": {"root": str(refs["store"])}}})
    for name, fmt in (("hf-model", "hf"), ("grpo-model", "nemo_rl")):
        (base / name).mkdir()
        (base / name / "config.json").write_text("{}")
        refs[fmt] = log_artifact(ModelArtifact(path=str(base / name), name=name, format=fmt), tracking).uri
    return refs


def dry_run(inputs: dict, tmp_path: Path, model: str, *overrides: str) -> dict:
    cfg = compose(inputs["store"], "rl", f"run.data={inputs['rl']}", f"run.model={model}", "stage.dry_run=true",
                  f"stage.output_dir={tmp_path}", *overrides)  # fmt: skip
    assert nemo_rl.run(cfg) is None
    return yaml.safe_load((tmp_path / nemo_rl.CONFIG_FILE).read_text())["policy"]


def test_a_hugging_face_model_is_the_policy_model_name(inputs, tmp_path):
    policy = dry_run(inputs, tmp_path, inputs["hf"])
    assert policy["model_name"].endswith("hf-model") and "pretrained_checkpoint" not in policy


def test_a_megatron_checkpoint_starts_a_megatron_policy_through_pretrained_checkpoint(inputs, tmp_path):
    policy = dry_run(inputs, tmp_path, inputs["model"])
    assert policy["pretrained_checkpoint"] == {"path": str(Path(policy["pretrained_checkpoint"]["path"])),
                                               "format": "megatron_bridge"}  # fmt: skip
    assert policy["model_name"] == "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"  # architecture and tokenizer


def test_a_megatron_checkpoint_reads_its_architecture_from_the_local_hf_config(inputs, tmp_path):
    """model.hf_config (a local copy of hf_model's config and tokenizer): a node without network, or a gated repo,
    still starts; nothing names the Hub."""
    local = tmp_path.with_name(f"{tmp_path.name}-nano3-config")  # outside the run directory
    local.mkdir()
    policy = dry_run(inputs, tmp_path, inputs["model"], f"model.hf_config={local}")
    assert policy["model_name"] == str(local) and policy["tokenizer"]["name"] == str(local)
    assert f"{local}:{local}" in (tmp_path / nemo_rl.SCRIPT_FILE).read_text()  # mounted into the container
    assert policy["pretrained_checkpoint"]["format"] == "megatron_bridge"
    # hf_config alone (no hf_model) is enough to describe the architecture
    policy = dry_run(inputs, tmp_path, inputs["model"], f"model.hf_config={local}", "model.hf_model=null")
    assert policy["model_name"] == str(local)


@pytest.mark.parametrize(
    ("model", "overrides", "message"),
    [
        ("model", DTENSOR_POLICY, "trains with DTensor"),
        ("model", ("model.hf_model=null",), "nor model.hf_model is set"),
        ("nemo_rl", (), "is a nemo_rl checkpoint"),
    ],
)
def test_a_model_nemo_rl_cannot_start_from_is_refused_before_anything_is_written(inputs, tmp_path, model, overrides,
                                                                                 message):  # fmt: skip
    with pytest.raises(NemotronError, match=message) as refused:
        dry_run(inputs, tmp_path, inputs[model], *overrides)
    if model == "model":
        assert "stage=convert" in str(refused.value)  # says what to run instead
    assert not (tmp_path / nemo_rl.CONFIG_FILE).exists() and not (tmp_path / nemo_rl.SCRIPT_FILE).exists()
