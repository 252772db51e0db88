"""Typed artifacts and `art://` references: the data model, with no backend code."""

from nemotron.artifacts.base import ARTIFACT_TYPES, Artifact, GenericArtifact, artifact_from_record
from nemotron.artifacts.refs import ArtifactRef, validate_alias, validate_name
from nemotron.artifacts.types import (
    EvalResultsArtifact,
    InputDatasetInfo,
    ModelArtifact,
    PretrainBlendsArtifact,
    SFTDataArtifact,
    SplitJsonlDataArtifact,
    TokenizerArtifact,
)

__all__ = [
    "ARTIFACT_TYPES",
    "Artifact",
    "ArtifactRef",
    "EvalResultsArtifact",
    "GenericArtifact",
    "InputDatasetInfo",
    "ModelArtifact",
    "PretrainBlendsArtifact",
    "SFTDataArtifact",
    "SplitJsonlDataArtifact",
    "TokenizerArtifact",
    "artifact_from_record",
    "validate_alias",
    "validate_name",
]
