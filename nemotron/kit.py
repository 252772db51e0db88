"""`nemotron.kit`: the seed kit's script API on nemotron's store, resolvers and panels.

    from dataclasses import dataclass
    from nemotron.kit import ModelArtifact, PretrainBlendsArtifact, apply_scale, cli, print_complete

    @dataclass
    class Config:
        data: str = "${art:pretrain-data-tiny:latest,path}"   # pinned to an exact version, recorded as an input
        rows: int = 100_000
        scale: str = "tiny"

    config = cli(Config, config_file="config.yaml")   # python train.py --config other.toml rows=500 scale=small
    n = apply_scale(config.rows, config.scale)
    ...
    print_complete({"model": ModelArtifact(path=out, name="my-model", step=10)})

`cli` loads YAML, TOML or JSON into a dataclass or Pydantic model, applies `key=value` overrides and
`--config FILE`, resolves OmegaConf interpolations (`${art:...}` included) and validates; a bad key, type or
file is one paragraph on stderr and exit 2. It also starts the script's artifact tracking (the store of
NEMOTRON_ARTIFACTS_ROOT / env.toml / ./artifacts), so everything the script reads through `${art:}`,
`Artifact.from_uri` or `Artifact.load()` (the previous script's JSON line on stdin) is recorded, at its exact
version, as an input of everything it commits (`artifact.save(name=...)` or `print_complete`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel

from nemotron.artifacts import (
    Artifact,
    EvalResultsArtifact,
    InputDatasetInfo,
    ModelArtifact,
    PretrainBlendsArtifact,
    SFTDataArtifact,
    SplitJsonlDataArtifact,
    TokenizerArtifact,
)
from nemotron.errors import NemotronError

# The seed kit's names for the same types: scripts written against it import them unchanged.
DataBlendsArtifact = PretrainBlendsArtifact
PretrainDataArtifact = PretrainBlendsArtifact

__all__ = [
    "Artifact",
    "DataBlendsArtifact",
    "EvalResultsArtifact",
    "InputDatasetInfo",
    "ModelArtifact",
    "PretrainBlendsArtifact",
    "PretrainDataArtifact",
    "SFTDataArtifact",
    "SplitJsonlDataArtifact",
    "TokenizerArtifact",
    "apply_scale",
    "cli",
    "print_complete",
    "print_step_complete",
]

C = TypeVar("C")
_CONFIG_FLAGS = ("--config", "--config-file")
_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}


class ConfigError(NemotronError):
    """A script's config cannot be loaded or validated (exit status 2)."""


# -- cli ----------------------------------------------------------------------------------------------------


def cli(config_class: type[C], config_file: str | Path | None = None, argv: list[str] | None = None) -> C:
    """The script's config: `config_file` (or `--config FILE`), then `key=value` overrides, resolved and
    validated into `config_class` (a dataclass or a Pydantic model). Exits 2 with one paragraph on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = _cli(config_class, config_file, argv)
    except NemotronError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.excepthook = _one_paragraph(sys.excepthook)
    return config


def _one_paragraph(previous: Any) -> Any:
    """The script's uncaught NemotronError (an input that does not exist, nothing on stdin) as one paragraph on
    stderr, as the entry point shows it; any other exception keeps its traceback."""

    def hook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        if isinstance(error, NemotronError):
            print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        else:
            previous(kind, error, traceback)

    return hook


def _cli(config_class: type[C], config_file: str | Path | None, argv: list[str]) -> C:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from nemotron.tracking.api import setup_artifact_tracking

    if not (dataclasses.is_dataclass(config_class) or _is_model(config_class)):
        raise ConfigError(f"cli() takes a dataclass or a Pydantic model class, got {config_class!r}.")
    if any(arg in ("-h", "--help") for arg in argv):
        print(_help(config_class, config_file))
        sys.exit(0)
    config_file, overrides = _parse_argv(argv, config_file)
    data = _read_file(Path(config_file)) if config_file else {}
    try:
        merged = OmegaConf.merge(
            OmegaConf.create(_defaults(config_class)), OmegaConf.create(data), OmegaConf.from_dotlist(overrides)
        )
    except OmegaConfBaseException as exc:
        raise ConfigError(f"The overrides {' '.join(overrides)} cannot be applied: {_first_line(exc)}") from exc
    given = [str(config_file)] if config_file else []
    source = " and ".join(given + ([f"the overrides {' '.join(overrides)}"] if overrides else [])) or "defaults"
    unknown = _unknown_keys(config_class, OmegaConf.to_container(merged, resolve=False))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)} {'is not a key' if len(unknown) == 1 else 'are not keys'} of "
            f"{config_class.__name__} (from {source}). Its keys: {', '.join(_keys(config_class))}. Nothing was run."
        )
    tracking = setup_artifact_tracking()  # ${art:} below pins and records its inputs in this tracking
    try:
        resolved = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        from nemotron.errors import user_error

        raise user_error(exc) or ConfigError(f"The config cannot be resolved: {_first_line(exc)}") from exc
    config = _validate(config_class, resolved, source)
    tracking.run_config = {k: v for k, v in resolved.items() if not str(k).startswith("_")}
    tracking.run_overrides = overrides
    return config


def _parse_argv(argv: list[str], config_file: str | Path | None) -> tuple[str | Path | None, list[str]]:
    overrides: list[str] = []
    items = iter(argv)
    for arg in items:
        flag, sep, value = arg.partition("=")
        if flag in _CONFIG_FLAGS:
            config_file = value if sep else next(items, None)
            if not config_file:
                raise ConfigError(f"{flag} needs a file: {flag} config.yaml (YAML, TOML or JSON).")
        elif sep and not arg.startswith("-") and flag:
            overrides.append(arg)
        else:
            raise ConfigError(
                f"{arg!r} is not an override: give key=value (nested keys as model.lr=1e-4) and optionally "
                "--config FILE (YAML, TOML or JSON)."
            )
    return config_file, overrides


def _read_file(path: Path) -> dict[str, Any]:
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path} is not a config file nemotron.kit reads: use .yaml, .yml, .toml or .json.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror or exc}.") from exc
    import tomllib
    import yaml

    try:
        if kind == "toml":
            data = tomllib.loads(text)
        elif kind == "json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"{path} is not valid {kind.upper()}: {_first_line(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, not a {type(data).__name__}.")
    return data


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def _fields(cls: Any) -> dict[str, Any]:
    """Field name -> annotated type of a dataclass or a Pydantic model."""
    if _is_model(cls):
        return {name: info.annotation for name, info in cls.model_fields.items()}
    hints = get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _defaults(cls: Any) -> dict[str, Any]:
    """The class's own default values, so that interpolations written as defaults resolve like the file's."""
    values: dict[str, Any] = {}
    if _is_model(cls):
        for name, info in cls.model_fields.items():
            if not info.is_required():
                values[name] = info.get_default(call_default_factory=True)
    else:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
    for name, value in list(values.items()):
        if isinstance(value, BaseModel):
            values[name] = value.model_dump(mode="json")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            values[name] = dataclasses.asdict(value)
        elif value is None and _nested(_fields(cls)[name]) is not None:
            del values[name]  # a nested config left to its own defaults
        elif isinstance(value, Path):
            values[name] = str(value)
    return values


def _nested(tp: Any) -> Any:
    return tp if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or _is_model(tp)) else None


def _unknown_keys(cls: Any, data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, Mapping):
        return []
    if _is_model(cls) and cls.model_config.get("extra") == "allow":
        return []
    fields = _fields(cls)
    unknown = []
    for key, value in data.items():
        if key not in fields:
            unknown.append(f"{prefix}{key}")
        elif _nested(fields[key]) is not None:
            unknown += _unknown_keys(fields[key], value, f"{prefix}{key}.")
    return unknown


def _keys(cls: Any) -> list[str]:
    return list(_fields(cls))


def _validate(cls: type[C], data: dict[str, Any], source: Any) -> C:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "missing" else "")
            for e in exc.errors()[:5]
        )
        raise ConfigError(
            f"The config of {cls.__name__} (from {source}) is not valid: {problems}. Nothing was run."
        ) from exc


def _help(cls: Any, config_file: Any) -> str:
    lines = [f"usage: {Path(sys.argv[0]).name} [--config FILE] [key=value ...]", "", f"{cls.__name__} keys:"]
    lines += [f"  {name}: {getattr(tp, '__name__', tp)}" for name, tp in _fields(cls).items()]
    if config_file:
        lines += ["", f"default config file: {config_file}"]
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    """The error's text as one line (a YAML error spans several), at most 300 characters."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# -- apply_scale ----------------------------------------------------------------------------------------------


def apply_scale(count: int, scale: str | Mapping[str, Any] | Any) -> int:
    """`count` at a scale of nemotron's `conf/scale` (tiny: at most 10,000; small: 10%; medium: 30%; full):
    at least 1. `scale` is a name or a scale config (fraction, max_rows_per_source)."""
    from nemotron.data.sources import ScaleConfig

    if isinstance(scale, str):
        scale = _scale_named(scale)
    elif isinstance(scale, Mapping):
        scale = ScaleConfig.model_validate(dict(scale))
    scaled = max(1, int(count * scale.fraction))
    return min(scaled, scale.max_rows_per_source) if scale.max_rows_per_source else scaled


def _scale_named(name: str) -> Any:
    from importlib.resources import files

    import yaml

    from nemotron.data.sources import ScaleConfig

    directory = files("nemotron.conf") / "scale"  # conf/scale, shipped as the package nemotron.conf
    known = sorted(p.name.removesuffix(".yaml") for p in directory.iterdir() if p.name.endswith(".yaml"))
    if name not in known:
        raise NemotronError(f"Unknown scale {name!r}; use one of {', '.join(known)}.")
    return ScaleConfig.model_validate(yaml.safe_load((directory / f"{name}.yaml").read_text()))


# -- print_complete -------------------------------------------------------------------------------------------


def print_complete(*args: Mapping[str, Artifact], title: str | None = None, **artifacts: Artifact) -> None:
    """Commit each artifact not committed yet (named `artifact.name`, else its key), as a stage's outputs are,
    then show each: the completion panel on stderr and, when stdout is a pipe, one JSON line on stdout for the
    next script (`Artifact.load()` reads it). `title` is accepted for the seed kit's signature only."""
    from nemotron.tracking import report
    from nemotron.tracking.api import log_artifact
    from nemotron.tracking.session import tracking_for

    named: dict[str, Artifact] = {}
    for mapping in args:
        named.update(mapping)
    named.update(artifacts)
    tracking = tracking_for(None)
    for key, artifact in named.items():
        if not isinstance(artifact, Artifact):
            raise NemotronError(f"print_complete takes artifacts; {key!r} is a {type(artifact).__name__}.")
        if artifact.version is None and tracking.store is not None:
            log_artifact(artifact, tracking, name=artifact.name or key)
        manifest = tracking.store.resolve(artifact.uri) if tracking.store and artifact.uri else None
        report.print_completion(artifact, manifest, tracking.store.url if tracking.store else None)
        report.emit_json_line(artifact)


print_step_complete = print_complete  # the seed kit's name
