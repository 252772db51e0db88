"""Helpers for the end-to-end tests: run `python -m nemotron` and `nemotron-art` in real subprocesses.

Every run gets an environment without the caller's NEMOTRON_* variables (so a developer's env.toml, root or
config dir never leaks into a test) and a working directory of the test's choosing, normally a temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 120
PLUGIN_MODULE = "e2e_plugin_stage"
PLUGIN_STAGE = "e2e_plugin"

# A stage that exists only in a user's config dir: its YAML names its input in `run:` and reads it through
# ${art:}; its function lives in a module of its own, found through PYTHONPATH.
PLUGIN_YAML = """\
# @package _global_
run:
  src: raw-text:latest
stage:
  _target_: e2e_plugin_stage.run
  source: ${art:src,path}
  out_name: derived
"""

PLUGIN_CODE = """\
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from nemotron import Artifact


def run(cfg):
    out = Path(HydraConfig.get().runtime.output_dir) / "result"
    out.mkdir()
    text = (Path(cfg.stage.source) / "input.txt").read_text()
    logging.getLogger(__name__).info("read %d characters", len(text))
    print("progress: a stage may print; stdout stays for the JSON line")
    (out / "output.txt").write_text(text.upper())
    return Artifact(path=str(out), name=cfg.stage.out_name, metadata={"chars": len(text)})
"""


def clean_env(**overrides: Any) -> dict[str, str]:
    """os.environ without NEMOTRON_* and HYDRA_FULL_ERROR; keyword arguments set (or, with None, drop) vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_") and k != "HYDRA_FULL_ERROR"}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def run_module(
    module: str,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    python: str | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [*(prefix or []), python or sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def nemotron(*args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m nemotron ARGS` (stdout is a pipe, so a committed artifact prints one JSON line)."""
    return run_module("nemotron", *args, cwd=cwd, **kwargs)


def nemotron_art(*args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run_module("nemotron.artcli", *args, cwd=cwd, **kwargs)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def json_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The single JSON line a stage prints on stdout when stdout is not a terminal."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stdout, got {lines!r}\n--- stderr\n{result.stderr}"
    return json.loads(lines[0])


def manifest(root: Path, name: str, version: int) -> dict[str, Any]:
    return json.loads((root / name / f"v{version}" / "manifest.json").read_text())


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its content ({} if it does not exist): to prove nothing changed."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def make_data(directory: Path, text: str = "hello nemotron\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "input.txt").write_text(text)
    return directory


def make_plugin(base: Path) -> tuple[Path, Path]:
    """A user config dir with stage/e2e_plugin.yaml, and a dir holding its module: (config_dir, module_dir)."""
    config_dir = base / "site-conf"
    (config_dir / "stage").mkdir(parents=True)
    (config_dir / "stage" / f"{PLUGIN_STAGE}.yaml").write_text(PLUGIN_YAML)
    module_dir = base / "site-python"
    module_dir.mkdir()
    (module_dir / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_CODE)
    return config_dir, module_dir


def register(name: str, path: Path, cwd: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Commit `path` as the next version of `name` through `stage=register`; returns the JSON line."""
    result = nemotron("stage=register", f"stage.path={path}", f"stage.name={name}", *extra, cwd=cwd, env=env)
    return json_line(ok(result))
