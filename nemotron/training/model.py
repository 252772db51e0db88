"""The tiny model: a Hugging Face `LlamaForCausalLM` with a small config.

Using a `transformers` architecture means every checkpoint is a standard Hugging Face directory
(`config.json`, `model.safetensors`, tokenizer files) that `AutoModelForCausalLM.from_pretrained` loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nemotron.errors import NemotronError


class TinyModelConfig(BaseModel):
    """`conf/model/tiny.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "tiny"
    backend: Literal["torch"] = "torch"
    architecture: Literal["llama"] = "llama"
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    max_seq_len: int = Field(256, ge=8)
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    train: dict[str, dict[str, Any]] = Field(default_factory=dict, description="stage hyperparameters (stage YAMLs)")


def build_model(config: TinyModelConfig, tokenizer: Any) -> Any:
    """A freshly initialised model whose vocabulary is the tokenizer's (added tokens included)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if config.hidden_size % config.num_heads or config.num_heads % config.num_kv_heads:
        raise NemotronError(
            f"model.hidden_size={config.hidden_size} must be divisible by model.num_heads={config.num_heads}, "
            f"and num_heads by model.num_kv_heads={config.num_kv_heads}."
        )
    hf_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_seq_len,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)  # the initial weights are part of the run: the stage re-seeds with its own seed
    return LlamaForCausalLM(hf_config)


def load_model(path: str | Path, device: str = "cpu") -> Any:
    """A model from a Hugging Face checkpoint directory, with a clear error when there is none."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a stage's output
    if not (Path(path) / "config.json").is_file():
        raise NemotronError(
            f"No model checkpoint in {path}: a Hugging Face checkpoint directory holds config.json and the "
            "weights (model.safetensors). Check the model artifact (nemotron-art show NAME) and its files "
            "(nemotron-art verify NAME)."
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        raise NemotronError(f"Cannot load the model checkpoint in {path}: {exc}") from exc
    return model.to(device)


def max_positions(path: str | Path) -> int | None:
    """The longest sequence a Hugging Face checkpoint's config.json allows, or None where it states none (or has
    no config.json: load_model says so)."""
    import json

    file = Path(path) / "config.json"
    if not file.is_file():
        return None
    config = json.loads(file.read_text())
    for key in ("max_position_embeddings", "n_positions"):
        value = config.get(key, (config.get("text_config") or {}).get(key))
        if isinstance(value, int) and value > 0:
            return value
    return None


def checkpoint_parameters(path: str | Path) -> int | None:
    """How many parameters a Hugging Face checkpoint holds, counted from its safetensors headers (no weight is
    read, so a 30B model is sized in a millisecond); None where it has no safetensors files."""
    import json
    import math

    files = sorted(Path(path).glob("*.safetensors"))
    total = 0
    for file in files:
        try:
            with file.open("rb") as f:
                size = int.from_bytes(f.read(8), "little")
                if not 2 <= size <= min(file.stat().st_size - 8, 1 << 28):
                    raise ValueError(f"a header of {size} bytes")
                header = json.loads(f.read(size))
            total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NemotronError(
                f"{file} is not a readable safetensors file ({type(exc).__name__}: {exc}): the checkpoint is damaged "
                "or incomplete. Check it with nemotron-art verify NAME."
            ) from exc
    return total if files else None


def check_vocab(model: Any, tokenizer: Any, what: str) -> None:
    """Every id the tokenizer can produce must have an embedding row."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise NemotronError(
            f"The tokenizer of {what} has {len(tokenizer)} tokens but the model has {rows} embedding rows: they "
            "were not made for each other. Use data prepared with the model's tokenizer (the tokenizer saved in "
            "the model's checkpoint directory)."
        )


def num_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
