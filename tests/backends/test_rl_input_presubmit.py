"""stage=rl on NeMo-RL refuses a starting model it cannot read on the submitting host, before anything is
submitted (here: before the launcher's dry run writes the sbatch script), in one paragraph naming stage=convert."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.clitools import clean_env, json_line, nemotron, ok, register, tree

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("rl-input")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=work / "store")
    refs = {"data": json_line(ok(nemotron("stage=rl_data", cwd=work, env=env)))["uri"]}
    for fmt in ("megatron", "hf"):
        model = work / fmt
        model.mkdir()
        (model / "config.json").write_text("{}")
        refs[fmt] = register(f"{fmt}-model", model, work, env, "stage.type=ModelArtifact",
                             f"+stage.fields.format={fmt}")["uri"]  # fmt: skip
    return {"work": work, "env": env, "store": work / "store", **refs}


def submit(project: dict, model: str, sweep: Path):
    return nemotron("stage=rl", "model=llama32_1b", "launcher=gpu_2x8", "launcher.dry_run=true", f"run.model={model}",
                    f"run.data={project['data']}", f"hydra.sweep.dir={sweep}", cwd=project["work"],
                    env=project["env"])  # fmt: skip


def test_a_megatron_checkpoint_for_a_dtensor_policy_is_refused_before_submission(project, tmp_path):
    before = tree(project["store"])
    result = submit(project, project["megatron"], tmp_path / "sweep")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "is a Megatron checkpoint" in message and "python -m nemotron stage=convert" in message
    assert not list(tmp_path.rglob("dry_run_submission.sh")) and tree(project["store"]) == before


def test_a_hugging_face_model_passes(project, tmp_path):
    ok(submit(project, project["hf"], tmp_path / "sweep"))
    assert list(tmp_path.rglob("dry_run_submission.sh"))
