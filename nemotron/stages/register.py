"""`stage=register`: record an existing path as a typed artifact, without copying or touching it.

    python -m nemotron stage=register stage.path=/data/ckpt stage.type=ModelArtifact \
        stage.name=my-base-model +stage.fields.step=10000

This is the basis of importing data or checkpoints made elsewhere: `nemotron-art import` builds its
artifacts the same way, through `typed_artifact`, so both refuse the same data (an SFTDataArtifact
without Parquet shards, RL data without train.jsonl, a blend whose shards are missing) and read the same
fields from it (an SFT metadata.json, the RL splits, the blend's token counts). The files stay where they
are, and the store records their sizes and digests so `nemotron-art` can tell later if they changed.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict

from nemotron.artifacts import Artifact
from nemotron.job import stage_params
from nemotron.tracking.registration import REGISTER_OPTIONS, typed_artifact


class RegisterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    name: str
    type: str
    fields: dict[str, Any]
    metadata: dict[str, Any]


def run(cfg: DictConfig) -> Artifact:
    params = stage_params(cfg, RegisterParams)
    return typed_artifact(
        params.type, params.path, params.name, params.fields, params.metadata, "stage.path", REGISTER_OPTIONS
    )
