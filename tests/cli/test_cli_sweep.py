"""End to end: Hydra sweeps through submitit_local commit one version per point, and concurrent runs never
share an output directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.clitools import TIMEOUT_S, clean_env, make_data, manifest, nemotron, ok

pytestmark = pytest.mark.integration


def test_submitit_local_sweep_commits_one_version_per_point(tmp_path):
    data = make_data(tmp_path / "data")
    root = tmp_path / "store"
    result = ok(
        nemotron(
            "-m",
            "launcher=submitit_local",
            "stage=register",
            f"stage.path={data}",
            "stage.name=swept",
            "stage.type=Artifact,ModelArtifact",
            "+stage.metadata.note=sweep",
            cwd=tmp_path,
            env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root),
        )
    )
    versions = sorted(p.name for p in (root / "swept").iterdir() if p.name.startswith("v"))
    assert versions == ["v1", "v2"]
    assert (root / "swept" / "latest").read_text().strip() == "v2"
    records = [manifest(root, "swept", v) for v in (1, 2)]
    assert sorted(r["type"] for r in records) == ["Artifact", "ModelArtifact"]

    runs = [r["run"] for r in records]
    swept = sorted(next(o for o in run["overrides"] if o.startswith("stage.type=")) for run in runs)
    assert swept == ["stage.type=Artifact", "stage.type=ModelArtifact"]
    for record, run in zip(records, runs, strict=True):
        assert f"stage.type={record['type']}" in run["overrides"]
        assert run["config"]["stage"]["type"] == record["type"]
        assert run["config"]["stage"]["metadata"] == {"note": "sweep"}
        # the command is the one typed on the submitting host, not submitit's worker command
        assert run["command"][:3] == ["python", "-m", "nemotron"]
        assert "stage.type=Artifact,ModelArtifact" in run["command"]
        assert run["hydra_job_id"]
        assert run["hydra_job_name"] == "nemotron"
    assert runs[0]["hydra_job_id"] != runs[1]["hydra_job_id"]
    job_dirs = {run["output_dir"] for run in runs}
    assert len(job_dirs) == 2
    for job_dir in map(Path, job_dirs):
        assert job_dir.is_relative_to(tmp_path / "multirun")
        assert (job_dir / "lineage.json").is_file()
        assert (job_dir / "config.resolved.yaml").is_file()
    # Hydra's log lines go to stderr; each submitit job prints its JSON line into its own log, not here
    assert result.stdout == ""
    assert "sweep output dir" in result.stderr


def test_basic_launcher_sweep(tmp_path):
    """`-m` with the default (in-process) launcher, one version per point as well."""
    data = make_data(tmp_path / "data")
    root = tmp_path / "store"
    result = ok(
        nemotron(
            "-m",
            "stage=register",
            f"stage.path={data}",
            "stage.name=points",
            "+stage.metadata.lr=1,2",
            cwd=tmp_path,
            env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root),
        )
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # one JSON line per point, nothing else
    assert sorted(line["uri"] for line in lines) == ["art://points:v1", "art://points:v2"]
    lrs = sorted(manifest(root, "points", v)["metadata"]["metadata"]["lr"] for v in (1, 2))
    assert lrs == [1, 2]
    overrides = sorted(manifest(root, "points", v)["run"]["overrides"][-1] for v in (1, 2))
    assert overrides == ["+stage.metadata.lr=1", "+stage.metadata.lr=2"]


SECRET = "sk-test-0123456789abcdef"


def test_a_sweep_never_logs_or_saves_a_secret_override(tmp_path):
    data = make_data(tmp_path / "data")
    result = ok(nemotron("-m", "stage=register", f"stage.path={data}", "stage.name=points,other",
                         f"+wandb.api_key={SECRET}", cwd=tmp_path,
                         env=clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")))  # fmt: skip
    assert "#0 : " in result.stderr and "+wandb.api_key=***REDACTED***" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(data)]
    assert written and not [p for p in written if SECRET in p.read_text(errors="replace")]


def test_submitit_refuses_a_secret_on_the_command_line_before_pickling_it(tmp_path):
    data = make_data(tmp_path / "data")
    result = nemotron(
        "launcher=submitit_local",
        "stage=register",
        f"stage.path={data}",
        "stage.name=points",
        f"+wandb.api_key={SECRET}",
        cwd=tmp_path,
        env=clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "s"),
    )
    assert result.returncode == 1 and "wandb.api_key, a credential" in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "s").exists()


def test_simultaneous_runs_get_distinct_output_dirs(tmp_path):
    data = make_data(tmp_path / "data")
    root = tmp_path / "store"
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    command = [sys.executable, "-m", "nemotron", "stage=register", f"stage.path={data}", "stage.name=together"]
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err
    job_dirs = [manifest(root, "together", v)["run"]["output_dir"] for v in (1, 2, 3)]
    assert len(set(job_dirs)) == 3
    assert sorted(p.name for p in (tmp_path / "outputs" / "register").iterdir()) == sorted(
        Path(d).name for d in job_dirs
    )
