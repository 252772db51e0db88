"""Team defaults (`env.toml`) and the one rule that finds the artifact store root.

`env.toml` is found through `NEMOTRON_ENV_FILE`, else by walking up from the working directory. It is
seed-compatible with the kit's file:

    [artifacts]
    wandb = true
    [artifacts.manifest]
    root = "/lustre/team/artifacts"
    [wandb]
    project = "nemotron"
    entity = "my-team"

The root rule, used by the Hydra app, `nemotron-art` and the Python API alike: an explicit argument (or
`artifacts.manifest.root`), else `NEMOTRON_ARTIFACTS_ROOT`, else env.toml's `[artifacts.manifest] root`,
else `./artifacts` under the working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError

ENV_FILE_VAR = "NEMOTRON_ENV_FILE"
ROOT_VAR = "NEMOTRON_ARTIFACTS_ROOT"
ENV_FILE_NAME = "env.toml"
DEFAULT_ROOT_DIR = "artifacts"


def find_env_file(start: Path | None = None) -> Path | None:
    explicit = os.environ.get(ENV_FILE_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise NemotronError(f"{ENV_FILE_VAR}={explicit} does not name an existing file.")
        return path
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ENV_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_env_file(start: Path | None = None) -> dict[str, Any]:
    path = find_env_file(start)
    if path is None:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise NemotronError(f"{path} is not valid TOML: {exc}.") from exc


def env_value(dotted_key: str, default: Any = None) -> Any:
    """A value from env.toml by dotted key (`artifacts.manifest.root`), or `default`."""
    node: Any = load_env_file()
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def default_root() -> str:
    """The store root when none is given explicitly: environment, env.toml, then ./artifacts."""
    root = os.environ.get(ROOT_VAR) or env_value("artifacts.manifest.root")
    if root:
        return str(root)
    return str(Path.cwd() / DEFAULT_ROOT_DIR)


def resolve_root(explicit: str | None = None) -> str:
    return explicit if explicit else default_root()
