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

Every read checks the file (`check_env_data`): its reserved sections hold known keys of the right types (a
typo gets the close match), no top-level key is loose, and no profile is named like a packaged launcher
(Hydra would always pick the packaged one). A file that fails is a NemotronError naming the file and the key.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError

ENV_FILE_VAR = "NEMOTRON_ENV_FILE"
ROOT_VAR = "NEMOTRON_ARTIFACTS_ROOT"
ENV_FILE_NAME = "env.toml"
DEFAULT_ROOT_DIR = "artifacts"

# The reserved sections (seed-compatible): key -> type, or a nested table. Other top-level tables are profiles.
RESERVED: dict[str, dict[str, Any]] = {
    "wandb": {"project": str, "entity": str, "run_name": str, "group": str, "job_type": str, "tags": list},
    "artifacts": {"wandb": bool, "manifest": {"root": str}},
    "cache": {"git_dir": str},
    "cli": {"theme": str},
}
_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list"}


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
    data = parse_env_file(path)
    check_env_data(data, str(path))
    return data


def parse_env_file(path: Path) -> dict[str, Any]:
    """The TOML of `path`; unreadable, non-UTF-8 or invalid TOML is a NemotronError naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise NemotronError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NemotronError(
            f"{path} is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}), and TOML files must be. "
            "Save it as UTF-8."
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NemotronError(f"{path} is not valid TOML: {exc}.") from exc


def check_env_data(data: dict[str, Any], source: str) -> None:
    """The reserved sections' keys and types, no loose top-level key, no profile named like a packaged launcher."""
    for name, value in data.items():
        if name in RESERVED:
            if not isinstance(value, dict):
                raise NemotronError(f"{source}: {name} must be a table ([{name}]), got {name} = {value!r}.")
            _check_table(value, RESERVED[name], name, source)
        elif not isinstance(value, dict):
            where = next((f"[{path}]" for path, schema in _sections(RESERVED) if name in schema), None)
            hint = f" Did you mean {name} under {where}?" if where else ""
            raise NemotronError(
                f"{source} has the top-level key {name} = {value!r}; top-level entries must be tables: the "
                f"sections {', '.join(f'[{s}]' for s in RESERVED)} or launcher profiles.{hint}"
            )
        else:
            _check_profile_name(name, value, source)


def _check_table(table: dict[str, Any], schema: dict[str, Any], section: str, source: str) -> None:
    for key, value in table.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise NemotronError(
                f"{source}: [{section}] has the key {key}, which nemotron does not know.{hint} Known keys of "
                f"[{section}]: {', '.join(sorted(schema))}."
            )
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise NemotronError(f"{source}: {section}.{key} must be a table ([{section}.{key}]), got {value!r}.")
            _check_table(value, expected, f"{section}.{key}", source)
        elif not isinstance(value, expected) or (expected is str and not value.strip()):
            raise NemotronError(
                f"{source}: [{section}] {key} = {value!r} must be {_TYPE_NAMES[expected]}"
                f"{' (not empty)' if expected is str else ''}, e.g. {_example(key, expected)}."
            )


def _check_profile_name(name: str, profile: dict[str, Any], source: str) -> None:
    """A profile named like a packaged launcher could never be selected; a near-miss of a reserved section
    holding only that section's keys is a typo, not a profile."""
    packaged = packaged_launchers()
    same_as_packaged = name == "local" and profile.get("executor", "local") == "local"
    if name in packaged and not same_as_packaged:
        raise NemotronError(
            f"{source} has a profile [{name}], but launcher={name} always selects the packaged launcher of that "
            f"name (conf/launcher/{name}.yaml), so this profile could never be used. Rename it, e.g. "
            f"[{name}-team], and select it with launcher={name}-team."
        )
    for section in difflib.get_close_matches(name, list(RESERVED), n=1, cutoff=0.75):
        if profile and set(profile) <= set(_flat_reserved()[section]):
            raise NemotronError(
                f"{source} has a table [{name}] holding {', '.join(sorted(profile))}: did you mean [{section}]? "
                f"As written it is a launcher profile, and its keys are not used."
            )


def packaged_launchers() -> set[str]:
    """The options of the `launcher` group that nemotron ships (conf/launcher/*.yaml)."""
    from importlib import resources

    folder = resources.files("nemotron.conf") / "launcher"
    return {entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def _sections(schema: dict[str, Any], prefix: str = ""):
    """(dotted section, its schema) of every table in `schema`, nested ones included."""
    for key, value in schema.items():
        if isinstance(value, dict):
            yield f"{prefix}{key}", value
            yield from _sections(value, f"{prefix}{key}.")


def _flat_reserved() -> dict[str, set[str]]:
    """Each reserved section's keys, its nested tables' keys included."""
    return {
        section: {key for path, schema in _sections(RESERVED) if path.split(".")[0] == section for key in schema}
        for section in RESERVED
    }


def _example(key: str, expected: type) -> str:
    return {str: f'{key} = "..."', bool: f"{key} = true", list: f'{key} = ["..."]'}[expected]


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
