"""The built wheel works on its own: installed into a fresh venv and run from an unrelated directory, it finds its
packaged config (nemotron.conf), its Hydra plugins and its console scripts, and commits an artifact.

The venv reuses this interpreter's installed dependencies through a .pth file (no download), but nemotron itself
comes only from the wheel: the editable install's import hook is not loaded there, and the test checks where
`nemotron` was imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
GROUPS = ("stage", "model", "data", "artifacts", "launcher", "scale")

PLUGIN_YAML = """\
# @package _global_
stage:
  _target_: wheel_plugin_stage.run
  path: ???
"""
PLUGIN_CODE = """\
from nemotron import ModelArtifact


def run(cfg):
    return ModelArtifact(path=cfg.stage.path, name="from-wheel-plugin", step=3)
"""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, input=""
    )
    assert result.returncode == 0, f"{command}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def _env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_") and k not in drop}
    return {**env, **extra}


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the working tree, so the build leaves nothing behind in the checkout."""
    src = tmp / "src"
    anywhere = {".git", "build", "dist", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache"}
    top_level = {"tests", "bench", "outputs", "multirun", "artifacts"}  # nemotron/artifacts is code

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in anywhere or n.endswith(".egg-info")}
        return skip | (top_level & set(names) if Path(directory) == REPO else set())

    shutil.copytree(REPO, src, ignore=ignore)
    dist = tmp / "dist"
    attempts = [
        [sys.executable, "-m", "build", "--wheel", "--outdir", dist, src],
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src],
    ]
    outputs = []
    for command in attempts:
        result = subprocess.run([str(c) for c in command], cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT_S)
        wheels = sorted(dist.glob("nemotron-*.whl"))
        if result.returncode == 0 and wheels:
            return wheels[0]
        outputs.append(f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    pytest.fail("could not build the wheel:\n" + "\n\n".join(outputs))


def _make_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip()
    # This interpreter's dependencies, as plain path entries: their .pth files (the editable install's
    # import hook among them) are not processed, so nemotron can only come from the wheel.
    deps = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(p).is_dir()]
    (Path(purelib) / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", "-q", wheel], cwd=tmp)
    return venv


@pytest.mark.slow
def test_wheel_in_a_fresh_venv(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = _make_venv(tmp_path, wheel)
    python = venv / "bin" / "python"
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()

    where = json.loads(
        _run(
            [
                python,
                "-c",
                "import json, nemotron, nemotron.conf, hydra_plugins.nemotron_searchpath as p; "
                "print(json.dumps([nemotron.__file__, nemotron.conf.__file__, p.__file__]))",
            ],
            cwd=elsewhere,
            env=_env(),
        ).stdout
    )
    for path in where:
        assert Path(path).resolve().is_relative_to(venv.resolve()), where

    help_text = _run([python, "-m", "nemotron", "--help"], cwd=elsewhere, env=_env()).stdout
    for group in GROUPS:
        assert f"\n{group}: " in help_text
    assert _run([venv / "bin" / "nemotron", "--help"], cwd=elsewhere, env=_env()).stdout == help_text

    data = elsewhere / "data"
    data.mkdir()
    (data / "weights.txt").write_text("0.5\n")
    root = tmp_path / "store"
    commit = _run(
        [python, "-m", "nemotron", "stage=register", f"stage.path={data}", "stage.name=wheel-data"],
        cwd=elsewhere,
        env=_env(NEMOTRON_ARTIFACTS_ROOT=str(root)),
    )
    assert json.loads(commit.stdout)["uri"] == "art://wheel-data:v1"
    manifest = json.loads((root / "wheel-data" / "v1" / "manifest.json").read_text())
    assert manifest["run"]["packages"]["nemotron"] == wheel.name.split("-")[1]
    assert Path(manifest["run"]["output_dir"]).is_relative_to(elsewhere)
    assert (Path(manifest["run"]["output_dir"]) / "nemotron.log").is_file()
    outside_git = subprocess.run(["git", "-C", str(elsewhere), "rev-parse"], capture_output=True).returncode != 0
    if outside_git:  # neither the working dir nor the installed code is in a git checkout
        assert manifest["run"]["git"] is None

    listing = _run([venv / "bin" / "nemotron-art", "--root", root, "ls", "--json"], cwd=elsewhere, env=_env()).stdout
    assert [row["name"] for row in json.loads(listing)] == ["wheel-data"]

    # the NEMOTRON_CONFIG_DIR search-path plugin ships in the wheel too
    site_conf = tmp_path / "site-conf"
    (site_conf / "stage").mkdir(parents=True)
    (site_conf / "stage" / "wheel_plugin.yaml").write_text(PLUGIN_YAML)
    module_dir = tmp_path / "site-python"
    module_dir.mkdir()
    (module_dir / "wheel_plugin_stage.py").write_text(PLUGIN_CODE)
    plugin_env = _env(NEMOTRON_ARTIFACTS_ROOT=str(root), NEMOTRON_CONFIG_DIR=str(site_conf), PYTHONPATH=str(module_dir))
    _run([python, "-m", "nemotron", "stage=wheel_plugin", f"stage.path={data}"], cwd=elsewhere, env=plugin_env)
    plugin = json.loads((root / "from-wheel-plugin" / "v1" / "metadata.json").read_text())
    assert plugin["type"] == "ModelArtifact" and plugin["step"] == 3
