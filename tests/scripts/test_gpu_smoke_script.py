"""scripts/gpu_smoke.sh without a GPU: its syntax, its dry path (DRY_RUN=1: each step and the image it runs in,
nothing run), and every `python -m nemotron` command it would run composes (the overrides name real keys); the
GRPO step's config passes the backend's pre-submit checks in a dry run on real inputs. The script itself has not
run on a GPU here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers.clitools import clean_env, json_line, nemotron, ok, register

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_smoke.sh"
pytestmark = [pytest.mark.unit, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> list[tuple[str, str]]:
    """(image, command) of each step the dry path prints."""
    work = tmp_path_factory.mktemp("smoke")
    result = subprocess.run(["bash", str(SCRIPT), str(work)], env={**os.environ, "DRY_RUN": "1", "RUNNER": "pyxis"},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = re.findall(r"^\[pyxis\] (\S+)\n    (.*)$", result.stderr, flags=re.M)
    assert found, result.stderr
    return found


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_each_library_runs_in_its_own_image(steps):
    by_stage = {}
    for image, command in steps:
        for stage in re.findall(r"stage=(\w+)", command):
            by_stage.setdefault(stage, set()).add(image)
    assert by_stage["pretrain"] == by_stage["convert"] == {"nvcr.io#nvidia/nemo:26.08"}  # Megatron-Bridge >= 0.6
    assert by_stage["rl"] == {"nvcr.io#nvidia/nemo-rl:v0.7.0"}  # NeMo-RL 0.7, /opt/nemo-rl
    assert {"pretrain_data", "rl_data", "eval"} <= set(by_stage)
    text = SCRIPT.read_text()
    assert "[train]" in text and "import megatron.bridge" not in text
    assert "meta-llama" not in " ".join(command for _, command in steps)  # nothing gated


def nemotron_commands(steps) -> list[list[str]]:
    commands = []
    for _, command in steps:
        for part in command.split("&&"):
            words = shlex.split(part.replace(">&2", ""))
            if words[:3] == ["python", "-m", "nemotron"]:
                commands.append(words[3:])
    return commands


def test_every_nemotron_command_composes(steps, tmp_path):
    commands = nemotron_commands(steps)
    assert len(commands) == 8  # data (2), pretrain (dry run, run), convert, rl (dry run, run), eval
    for args in commands:
        ok(nemotron(*args, "--cfg", "job", cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")))


def test_the_grpo_step_passes_the_pre_submit_checks(steps, tmp_path):
    """The smoke script's GRPO dry run on real inputs: validation batches, samples per step vs batch, layout."""
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")
    rl_data = json_line(ok(nemotron("stage=rl_data", cwd=tmp_path, env=env)))["uri"]
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "qwen3"}')
    model = register("smoke-pretrain-model-hf-tiny", hf, tmp_path, env, "stage.type=ModelArtifact")["uri"]
    (rl_dry_run,) = [args for args in nemotron_commands(steps) if "stage=rl" in args and "stage.dry_run=true" in args]

    def fill(arg: str) -> str:  # the placeholders of the dry path -> the inputs made here
        if arg.startswith("model.hf_config="):
            return f"model.hf_config={hf}"
        return arg.replace("art://smoke-pretrain-model-hf-tiny:vN", model).replace("art://rl-data-tiny:vN", rl_data)

    args = [fill(arg) for arg in rl_dry_run if not arg.startswith("hydra.sweep.dir=")]
    result = ok(nemotron(*args, f"hydra.sweep.dir={tmp_path / 'dry'}", cwd=tmp_path, env=env))
    assert "max_val_samples: 16" in result.stderr and "num_generations_per_prompt: 4" in result.stderr
