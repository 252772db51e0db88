"""nemotron: train an LLM from raw text to an aligned model, in readable code.

The public API:

    from nemotron import SFTDataArtifact, ModelArtifact, setup_artifact_tracking, log_artifact
    data = SFTDataArtifact.from_uri("art://tiny-sft-data:latest")   # typed fields: data.pack_size
    ModelArtifact(path="/ckpt/step_100", step=100).save(name="my-model")
"""

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
from nemotron.tracking.api import load_artifact, log_artifact, setup_artifact_tracking
from nemotron.tracking.store import ManifestStore

__version__ = "0.1.0"

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
