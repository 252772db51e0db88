"""Start-up: composing a config imports no heavy library; `--help` lists the groups; the job is named nemotron."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers.clitools import TIMEOUT_S, clean_env, make_data, nemotron, nemotron_art, ok

pytestmark = pytest.mark.integration

HEAVY = {"torch", "transformers", "tokenizers", "safetensors", "wandb", "s3fs", "gcsfs", "numpy", "pandas", "pyarrow"}
HEAVY |= {"megatron", "nemo_rl", "huggingface_hub"}


def _imported_packages(stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            if module and module != "package":
                names.add(module.split(".")[0])
    return names


def _importtime(cwd, module: str, *args: str, env=None) -> set[str]:
    """Run `python -X importtime -m MODULE ARGS`; the top-level packages it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, *map(str, args)],
        cwd=cwd,
        env=env or clean_env(NEMOTRON_ARTIFACTS_ROOT=cwd / "store"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    ok(result)
    return _imported_packages(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["stage=register", "--cfg", "job"],
        ["stage=register", "--cfg", "job", "--resolve"],
        ["launcher=submitit_local", "stage=register", "--cfg", "job"],
        ["--help"],
    ],
    ids=["cfg-job", "cfg-job-resolve", "cfg-submitit", "help"],
)
def test_composing_imports_no_heavy_library(tmp_path, args):
    imported = _importtime(tmp_path, "nemotron", *args)
    assert {"hydra", "omegaconf", "nemotron"} <= imported  # the measurement works
    assert imported & HEAVY == set()


def test_a_commit_imports_no_heavy_library(tmp_path):
    data = make_data(tmp_path / "data")
    imported = _importtime(tmp_path, "nemotron", "stage=register", f"stage.path={data}", "stage.name=x")
    assert {"fsspec", "pydantic"} <= imported
    assert imported & HEAVY == set()
    assert (tmp_path / "store" / "x" / "v1" / "manifest.json").is_file()
    imported = _importtime(tmp_path, "nemotron.artcli", "--root", tmp_path / "store", "ls", env=clean_env())
    assert imported & HEAVY == set()


COMPOSE = """
import json, sys
from hydra import compose, initialize_config_module
import nemotron.cli
with initialize_config_module(config_module="nemotron.conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=["stage=register"], return_hydra_config=True)
print(json.dumps({"modules": sorted(sys.modules), "job": cfg.hydra.job.name, "stage": cfg.stage._target_}))
"""


def test_compose_api_after_importing_cli(tmp_path):
    result = ok(
        subprocess.run(
            [sys.executable, "-c", COMPOSE],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    )
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["job"] == "nemotron"
    assert out["stage"] == "nemotron.stages.register.run"
    assert {m.split(".")[0] for m in out["modules"]} & HEAVY == set()


def test_help_lists_groups_and_options(tmp_path):
    text = ok(nemotron("--help", cwd=tmp_path)).stdout
    groups = {}
    section = text.split("== Config groups", 1)[1].split("==", 2)[1]
    for line in section.splitlines():
        if ":" in line:
            group, options = line.split(":", 1)
            groups[group.strip()] = {o.strip() for o in options.split(",")}
    assert {"stage", "model", "data", "artifacts", "launcher", "scale"} <= set(groups)
    assert {"register", "pipeline"} <= groups["stage"]
    assert groups["artifacts"] == {"none", "manifest", "wandb", "manifest_wandb"}
    assert {"local", "submitit_local"} <= groups["launcher"]
    assert {"tiny", "small", "medium", "full"} <= groups["scale"]
    assert "tiny" in groups["model"] and "tiny" in groups["data"]
    assert "python -m nemotron" in text
    # the art CLI's help as well
    art = ok(nemotron_art("--help", cwd=tmp_path)).stdout
    for command in ("ls", "show", "lineage", "alias", "fsck"):
        assert command in art


def test_job_is_named_nemotron(tmp_path):
    data = make_data(tmp_path / "data")
    ok(
        nemotron(
            "stage=register",
            f"stage.path={data}",
            "stage.name=x",
            cwd=tmp_path,
            env=clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store"),
        )
    )
    (job_dir,) = (tmp_path / "outputs" / "register").iterdir()
    assert (job_dir / "nemotron.log").is_file()
    assert not (job_dir / "cli.log").exists() and not (job_dir / "__main__.log").exists()
    hydra = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra["job"]["name"] == "nemotron"
    assert hydra["runtime"]["choices"]["stage"] == "register"
    shown = yaml.safe_load(ok(nemotron("stage=register", "--cfg", "hydra", cwd=tmp_path)).stdout)
    assert shown["hydra"]["job"]["name"] == "nemotron"
