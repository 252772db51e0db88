"""nemotron: train an LLM from raw text to an aligned model, in readable code.

The public API:

    from nemotron import SFTDataArtifact, ModelArtifact, setup_artifact_tracking, log_artifact
    data = SFTDataArtifact.from_uri("art://tiny-sft-data:latest")   # typed fields: data.pack_size
    ModelArtifact(path="/ckpt/step_100", step=100).save(name="my-model")

The names are imported on first use (PEP 562), so `python -m nemotron` does not pay for Pydantic models,
fsspec and the store when it only composes a config (`--cfg job`, `--help`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Artifact": "nemotron.artifacts",
    "ArtifactRef": "nemotron.artifacts",
    "EvalResultsArtifact": "nemotron.artifacts",
    "InputDatasetInfo": "nemotron.artifacts",
    "ModelArtifact": "nemotron.artifacts",
    "PretrainBlendsArtifact": "nemotron.artifacts",
    "SFTDataArtifact": "nemotron.artifacts",
    "SplitJsonlDataArtifact": "nemotron.artifacts",
    "TokenizerArtifact": "nemotron.artifacts",
    "NemotronError": "nemotron.errors",
    "load_artifact": "nemotron.tracking.api",
    "log_artifact": "nemotron.tracking.api",
    "setup_artifact_tracking": "nemotron.tracking.api",
    "ManifestStore": "nemotron.store.manifest_store",
}

__all__ = [
    "Artifact",
    "ArtifactRef",
    "EvalResultsArtifact",
    "InputDatasetInfo",
    "ManifestStore",
    "ModelArtifact",
    "NemotronError",
    "PretrainBlendsArtifact",
    "SFTDataArtifact",
    "SplitJsonlDataArtifact",
    "TokenizerArtifact",
    "load_artifact",
    "log_artifact",
    "setup_artifact_tracking",
]

if TYPE_CHECKING:
    from nemotron.artifacts import (
        Artifact,
        ArtifactRef,
        EvalResultsArtifact,
        InputDatasetInfo,
        ModelArtifact,
        PretrainBlendsArtifact,
        SFTDataArtifact,
        SplitJsonlDataArtifact,
        TokenizerArtifact,
    )
    from nemotron.errors import NemotronError
    from nemotron.store.manifest_store import ManifestStore
    from nemotron.tracking.api import load_artifact, log_artifact, setup_artifact_tracking


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nemotron' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
