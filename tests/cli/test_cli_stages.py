"""End to end: stages run through `python -m nemotron`, including a plugin stage from a user's config dir.

Every command is a real subprocess in a temp working directory; the store is a temp dir.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.clitools import (
    PLUGIN_STAGE,
    clean_env,
    json_line,
    make_data,
    make_plugin,
    manifest,
    nemotron,
    nemotron_art,
    ok,
    register,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path):
    """A working dir, a store root, input data and a plugin stage defined outside the package."""
    work = tmp_path / "work"
    work.mkdir()
    root = tmp_path / "store"
    config_dir, module_dir = make_plugin(tmp_path)
    data = make_data(tmp_path / "raw")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root, PYTHONPATH=module_dir)
    return {"work": work, "root": root, "config_dir": config_dir, "data": data, "env": env}


def _job_dir(record: dict) -> Path:
    return Path(record["run"]["output_dir"])


@pytest.mark.parametrize("mechanism", ["--config-dir", "hydra.searchpath", "NEMOTRON_CONFIG_DIR"])
def test_plugin_stage_from_user_config_dir(project, mechanism):
    work, root, config_dir, env = project["work"], project["root"], project["config_dir"], project["env"]
    line = register("raw-text", project["data"], work, env)
    assert line["uri"] == "art://raw-text:v1"

    if mechanism == "--config-dir":
        args = ["--config-dir", str(config_dir)]
    elif mechanism == "hydra.searchpath":
        args = [f"hydra.searchpath=[file://{config_dir}]"]
    else:
        args, env = [], {**env, "NEMOTRON_CONFIG_DIR": str(config_dir)}
    result = ok(nemotron(*args, f"stage={PLUGIN_STAGE}", cwd=work, env=env))

    # the artifact lands as {root}/{name}/v1/manifest.json + metadata.json + latest
    assert json_line(result)["uri"] == "art://derived:v1"
    assert (root / "derived" / "v1" / "manifest.json").is_file()
    assert (root / "derived" / "latest").read_text().strip() == "v1"
    metadata = json.loads((root / "derived" / "v1" / "metadata.json").read_text())
    assert metadata["name"] == "derived"
    assert metadata["type"] == "Artifact"
    assert metadata["metadata"] == {"chars": len("hello nemotron\n")}

    record = manifest(root, "derived", 1)
    assert record["used_artifacts"] == ["raw-text:v1"]
    assert Path(record["path"], "output.txt").read_text() == "HELLO NEMOTRON\n"
    assert [f["path"] for f in record["files"]] == ["output.txt"]

    # the job dir holds the pinned input and the resolved config
    job_dir = _job_dir(record)
    assert job_dir.is_relative_to(work)
    lineage = json.loads((job_dir / "lineage.json").read_text())
    assert lineage["inputs"] == [{"role": "src", "reference": "raw-text:latest", "version": "raw-text:v1"}]
    assert lineage["used_artifacts"] == ["raw-text:v1"]
    assert lineage["outputs"] == ["derived:v1"]
    resolved = yaml.safe_load((job_dir / "config.resolved.yaml").read_text())
    assert resolved["stage"]["source"] == str(project["data"])
    assert resolved["run"]["src"] == "raw-text:latest"


def test_lineage_chain_and_pinned_version(project):
    work, root, config_dir, env = project["work"], project["root"], project["config_dir"], project["env"]
    register("raw-text", project["data"], work, env)
    other = make_data(project["data"].parent / "raw2", "second version\n")
    register("raw-text", other, work, env)  # latest is now v2; the stage asks for v1 explicitly

    ok(nemotron("--config-dir", config_dir, f"stage={PLUGIN_STAGE}", "run.src=raw-text:v1", cwd=work, env=env))
    record = manifest(root, "derived", 1)
    assert record["used_artifacts"] == ["raw-text:v1"]
    assert Path(record["path"], "output.txt").read_text() == "HELLO NEMOTRON\n"

    graph = json.loads(ok(nemotron_art("--root", root, "lineage", "derived", "--json", cwd=work, env=env)).stdout)
    assert graph["ref"] == "derived:v1"
    assert [node["ref"] for node in graph["inputs"]] == ["raw-text:v1"]
    assert graph["inputs"][0]["path"] == str(project["data"])
    assert graph["inputs"][0]["inputs"] == []

    # the human-readable tree names both ends of the chain
    text = ok(nemotron_art("--root", root, "lineage", "derived:v1", cwd=work, env=env)).stdout
    assert "derived:v1" in text and "raw-text:v1" in text


def test_stdout_is_one_json_line_and_feeds_the_next_stage(project):
    work, root, config_dir, env = project["work"], project["root"], project["config_dir"], project["env"]
    first = ok(nemotron("stage=register", f"stage.path={project['data']}", "stage.name=raw-text", cwd=work, env=env))
    line = json_line(first)
    assert line == {
        "uri": "art://raw-text:v1",
        "name": "raw-text",
        "version": 1,
        "type": "Artifact",
        "path": str(project["data"]),
    }
    assert "committed raw-text" in first.stderr  # the panel is for people, on stderr
    register("raw-text", project["data"], work, env)  # v2 becomes latest: the pipe must still give v1

    args = ["--config-dir", config_dir, f"stage={PLUGIN_STAGE}", "run.src=-"]
    second = ok(nemotron(*args, cwd=work, env=env, stdin=first.stdout))
    assert json_line(second)["uri"] == "art://derived:v1"  # the stage logged and printed: both went to stderr
    assert "progress: a stage may print" in second.stderr
    assert "read 15 characters" in second.stderr
    record = manifest(root, "derived", 1)
    assert record["used_artifacts"] == ["raw-text:v1"]
    lineage = json.loads((_job_dir(record) / "lineage.json").read_text())
    assert lineage["inputs"] == [{"role": "src", "reference": "art://raw-text:v1", "version": "raw-text:v1"}]


def test_shell_pipe_between_two_stages(project):
    """The same through a shell: `python -m nemotron stage=register ... | python -m nemotron ... run.src=-`."""
    work, root, config_dir, env = project["work"], project["root"], project["config_dir"], project["env"]
    py = shlex.quote(sys.executable)
    command = (
        f"{py} -m nemotron stage=register stage.path={shlex.quote(str(project['data']))} stage.name=raw-text"
        f" | {py} -m nemotron --config-dir {shlex.quote(str(config_dir))} stage={PLUGIN_STAGE} run.src=-"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    ok(result)
    assert json_line(result)["uri"] == "art://derived:v1"
    assert manifest(root, "derived", 1)["used_artifacts"] == ["raw-text:v1"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_run_record(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.txt").write_text("recipe v1\n")
    _git(repo, "add", "train.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    head = _git(repo, "rev-parse", "HEAD")
    data = make_data(tmp_path / "data")
    root = tmp_path / "store"
    env = clean_env()
    overrides = [
        "stage=register",
        f"stage.path={data}",
        "stage.name=recorded",
        "stage.type=ModelArtifact",
        "+stage.fields.step=7",
        f"artifacts.manifest.root={root}",
    ]
    ok(nemotron(*overrides, cwd=repo, env=env))
    run = manifest(root, "recorded", 1)["run"]
    assert run["command"][-len(overrides) :] == overrides
    assert run["command"][:3] == ["python", "-m", "nemotron"]
    assert run["overrides"] == overrides
    assert run["config"]["stage"]["name"] == "recorded"
    assert run["config"]["stage"]["fields"] == {"step": 7}
    assert run["config"]["artifacts"]["manifest"]["root"] == str(root)
    assert run["git"] == {"commit": head, "dirty": False, "repo": str(repo)}
    assert run["host"] == socket.gethostname()
    assert run["cwd"] == str(repo)
    assert "hydra_job_id" in run  # None in a plain run; sweeps fill it (test_cli_sweep)
    assert run["hydra_job_name"] == "nemotron"
    assert run["slurm_job_id"] is None
    assert {"nemotron", "hydra-core", "omegaconf", "pydantic"} <= set(run["packages"])
    assert Path(run["output_dir"]).is_relative_to(repo)
    assert manifest(root, "recorded", 1)["metadata"]["step"] == 7

    (repo / "train.txt").write_text("recipe v2, not committed\n")
    ok(nemotron(*overrides, cwd=repo, env=env))
    run = manifest(root, "recorded", 2)["run"]
    assert run["git"]["commit"] == head
    assert run["git"]["dirty"] is True


def test_secrets_are_written_nowhere(project):
    work, root, env = project["work"], project["root"], project["env"]
    secret = "SECRETVALUE-8c1f"
    result = ok(
        nemotron(
            "stage=register",
            f"stage.path={project['data']}",
            "stage.name=with-secret",
            f"+stage.metadata.api_key={secret}",
            f"+stage.metadata.hf_token={secret}",
            "+stage.metadata.lr=0.5",
            cwd=work,
            env=env,
        )
    )
    assert secret not in result.stdout and secret not in result.stderr
    written = [p for base in (work, root) for p in base.rglob("*") if p.is_file()]
    hydra_files = {p.name for p in written if p.parent.name == ".hydra"}
    assert hydra_files == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    leaks = [str(p) for p in written if secret.encode() in p.read_bytes()]
    assert leaks == []
    record = manifest(root, "with-secret", 1)
    assert record["metadata"]["metadata"]["lr"] == 0.5  # only secret-named keys are redacted
    assert record["metadata"]["metadata"]["api_key"] != secret
    # the redacted .hydra copies are still valid YAML that Hydra can read back
    for path in written:
        if path.parent.name == ".hydra":
            yaml.safe_load(path.read_text())
    assert os.listdir(root) == ["with-secret"]
