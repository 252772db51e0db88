"""The built-in artifact types, one per kind of output of the pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.base import Artifact


class InputDatasetInfo(BaseModel):
    """An external source a data artifact was made from, with enough to tell if it changed."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    name: str | None = None
    weight: float = Field(1.0, gt=0)
    split: str | None = None
    subset: str | None = None
    text_field: str | None = None
    num_rows: int | None = Field(None, ge=0)
    size_bytes: int | None = Field(None, ge=0)
    num_files: int | None = Field(None, ge=0)
    digest: str | None = None


class _DataArtifact(Artifact):
    """Fields every prepared dataset has."""

    total_sequences: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)
    elapsed_sec: float = Field(0.0, ge=0)
    tokenizer_uri: str | None = None
    source_datasets: list[InputDatasetInfo] = Field(default_factory=list)

    def get_input_uris(self) -> list[str]:
        return [self.tokenizer_uri] if self.tokenizer_uri else []


class PretrainBlendsArtifact(_DataArtifact):
    """Megatron `.bin/.idx` shards plus a per-split `blend.json` (`per_split_data_args_path`)."""

    blend_path: str = Field("blend.json", description="The per-split blend, relative to `path`.")
    num_shards: int = Field(0, ge=0)
    train_tokens: int = Field(0, ge=0)
    valid_tokens: int = Field(0, ge=0)
    test_tokens: int = Field(0, ge=0)
    train_sequences: int = Field(0, ge=0)
    valid_sequences: int = Field(0, ge=0)
    test_sequences: int = Field(0, ge=0)


class SFTDataArtifact(_DataArtifact):
    """Packed SFT sequences as Parquet (`input_ids`, `loss_mask`, `seq_start_id`)."""

    pack_size: int = Field(4096, ge=1)
    num_shards: int = Field(0, ge=0)
    packing_efficiency: float | None = Field(None, ge=0, le=1)
    blend_path: str = "blend.json"
    data_format: Literal["packed_sft_parquet"] = "packed_sft_parquet"


class SplitJsonlDataArtifact(_DataArtifact):
    """RL prompts as JSONL train/val/test splits plus a `manifest.json`."""

    train: str | None = None
    val: str | None = None
    test: str | None = None


class TokenizerArtifact(Artifact):
    """A Hugging Face tokenizer directory (or hub id) and its vocabulary size."""

    vocab_size: int = Field(ge=1)
    library: Literal["hf"] = "hf"


class ModelArtifact(Artifact):
    """A checkpoint directory at a given training step."""

    step: int = Field(0, ge=0)
    final_loss: float | None = None
    format: Literal["hf", "megatron", "nemo_rl"] = "hf"
    stage: Literal["pretrain", "sft", "rl", "import"] | None = None
    tokenizer_uri: str | None = None
    base_model: str | None = Field(None, description="Reference of the model this one was trained from.")

    def get_input_uris(self) -> list[str]:
        return [uri for uri in (self.base_model, self.tokenizer_uri) if uri]


class EvalResultsArtifact(Artifact):
    """Metrics of one model, per task: `{task: {metric: value}}`."""

    model_uri: str | None = None
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)

    def get_input_uris(self) -> list[str]:
        return [self.model_uri] if self.model_uri else []
