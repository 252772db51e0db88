"""`stage=convert`: the model handoff between Megatron-Bridge (Megatron checkpoints) and Hugging Face readers.

model=tiny runs for real (its checkpoints are Hugging Face models: a copy-through that records the no-op);
model=nano3's AutoBridge conversion needs Megatron-Bridge and a GPU node, so here its dry run (the plan and the
Slurm submission) and its refusals are tested; the conversion itself has not run in this environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.clitools import clean_env, json_line, manifest, nemotron, ok, register, tree

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("convert")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=work / "store")
    for name, fmt in (("sft-model-tiny", "hf"), ("sft-model", "megatron")):
        model = work / name
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "llama"}')
        (model / "model.safetensors").write_bytes(b"\0" * 64)
        register(name, model, work, env, "stage.type=ModelArtifact", "+stage.fields.step=7", "+stage.fields.stage=sft",
                 f"+stage.fields.format={fmt}")  # fmt: skip
    return {"work": work, "env": env, "store": work / "store"}


def convert(project: dict, *args: str):
    return nemotron("stage=convert", *args, cwd=project["work"], env=project["env"])


def test_tiny_model_is_copied_through_as_a_new_hf_version_with_lineage(project):
    line = json_line(ok(convert(project)))  # run.model defaults to sft-model-tiny:latest
    assert line["name"] == "sft-model-hf-tiny"
    record = manifest(project["store"], line["name"], line["version"])
    fields = record["metadata"]
    assert fields["format"] == "hf" and fields["step"] == 7 and fields["stage"] == "sft"
    assert fields["base_model"] == "art://sft-model-tiny:v1"
    assert fields["metadata"]["converted_from"] == {"uri": "art://sft-model-tiny:v1", "format": "hf"}
    assert "copied through" in fields["metadata"]["conversion"]
    assert "sft-model-tiny:v1" in record["used_artifacts"]
    source, copy = project["work"] / "sft-model-tiny", Path(line["path"])
    assert copy != source and tree(copy) == tree(source)
    assert (copy / "model.safetensors").stat().st_ino == (source / "model.safetensors").stat().st_ino  # hard link


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stage.to=megatron",), "model.backend=torch has no Megatron format"),
        (("run.model=sft-model:latest",), "model.backend=torch has no Megatron format"),
        (("model=nano3", "run.model=sft-model-tiny:latest", "stage.to=hf"), "already in the hf format"),
        (
            ("model=nano3", "run.model=sft-model:latest", "model.hf_model=null", "model.hf_config=null"),
            "needs the Hugging Face model",
        ),
        (("model=nano3", "run.model=sft-model:latest"), "Megatron-Bridge is not installed"),
        (
            ("model=llama32_1b", "run.model=sft-model:latest", "stage.dry_run=true", "launcher=gpu_2x8"),
            "a gated Hugging Face repository",
        ),
    ],
)
def test_what_cannot_be_converted_is_refused_and_nothing_is_committed(project, args, message):
    before = tree(project["store"])
    result = convert(project, *args)
    assert result.returncode != 0 and result.stdout == ""
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert tree(project["store"]) == before


def test_nano3_dry_run_shows_the_autobridge_conversion_and_its_submission(project):
    before = tree(project["store"])
    result = ok(convert(project, "model=nano3", "launcher=gpu_2x8", "stage.dry_run=true",
                        "run.model=sft-model:latest"))  # fmt: skip
    printed = " ".join(result.stderr.split())
    assert "art://sft-model:v1 (megatron) -> hf" in printed and "export_ckpt" in printed
    assert "#SBATCH --nodes=1" in printed and "--container-image=" in printed
    assert "-m nemotron.stages.convert --to hf --source" in printed
    assert "--hf-model nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16" in printed
    assert result.stdout == "" and tree(project["store"]) == before


def test_llama32_1b_dry_run_with_a_local_config_passes(project):
    config = project["work"] / "llama-config"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text('{"model_type": "llama"}')
    result = ok(convert(project, "model=llama32_1b", "launcher=gpu_2x8", "stage.dry_run=true",
                        "run.model=sft-model:latest", f"model.hf_config={config}"))  # fmt: skip
    assert f"--hf-model {config}" in " ".join(result.stderr.split())


def test_the_default_target_is_the_other_format():
    from nemotron.stages.convert import default_target

    assert [default_target("megatron", "megatron"), default_target("megatron", "hf"), default_target("torch", "hf")] \
        == ["hf", "megatron", "hf"]  # fmt: skip


def test_the_conversion_command_names_autobridge_entry_point_arguments(tmp_path):
    from nemotron.stages.convert import ConvertParams, conversion_command

    params = ConvertParams(name=None, model_uri="art://m:v1", to=None, hf_model="org/model", trust_remote_code=True,
                           output_dir=None, dry_run=False)  # fmt: skip
    export = conversion_command("export", "/ckpt", tmp_path / "model", params)
    assert export[1:] == ["-m", "nemotron.stages.convert", "--to", "hf", "--source", "/ckpt", "--target",
                          str(tmp_path / "model"), "--hf-model", "org/model", "--trust-remote-code"]  # fmt: skip
    assert conversion_command("import", "/hf", tmp_path / "model", params)[4] == "megatron"
    assert conversion_command("copy", "/hf", tmp_path / "model", params) == []
    assert json.dumps(export)  # plain strings: it goes into the sbatch script as it is
