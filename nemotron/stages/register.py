"""`stage=register`: record an existing path as a typed artifact, without copying or touching it.

    python -m nemotron stage=register stage.path=/data/ckpt stage.type=ModelArtifact \
        stage.name=my-base-model +stage.fields.step=10000

This is the basis of importing data or checkpoints made elsewhere: the files stay where they are, and the
store records their sizes and digests so `nemotron-art` can tell later if they changed.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, ValidationError

from nemotron.artifacts import ARTIFACT_TYPES, Artifact, GenericArtifact, validate_name
from nemotron.errors import NemotronError
from nemotron.stages import stage_params


class RegisterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    name: str
    type: str = "Artifact"
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}


def run(cfg: DictConfig) -> Artifact:
    params = stage_params(cfg, RegisterParams)
    validate_name(params.name)
    cls = _artifact_type(params.type)
    path = _absolute(params.path)
    try:
        return cls(path=path, name=params.name, metadata=params.metadata, **params.fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise NemotronError(f"Invalid fields for an artifact of type {cls.__name__}: {problems}.") from exc


def _artifact_type(name: str) -> type[Artifact]:
    types = {"Artifact": Artifact, **ARTIFACT_TYPES}
    types.pop(GenericArtifact.__name__, None)
    if name not in types:
        raise NemotronError(f"Unknown artifact type {name!r}. Known types: {', '.join(sorted(types))}.")
    return types[name]


def _absolute(path: str) -> str:
    """The path as a later job on another working directory can find it; it must exist."""
    import fsspec

    fs, stripped = fsspec.core.url_to_fs(path)
    if not fs.exists(stripped):
        raise NemotronError(f"stage.path={path!r} does not exist; register points at existing data.")
    return path if "://" in path else os.path.abspath(path)
