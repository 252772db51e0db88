"""`stage=sft`: supervised fine-tuning on packed chat conversations.

    python -m nemotron stage=sft                                    # pretrain-model-tiny + sft-data-tiny (latest)
    python -m nemotron stage=sft run.model=pretrain-model-tiny:v3 stage.lr=3e-4
    python -m nemotron -m stage=sft stage.lr=1e-4,3e-4              # a sweep: two versions, both with lineage

The recipe: start from a pretrained checkpoint; each Parquet row packs several conversations, so the
positions restart at every `seq_start_id` and a 4-D attention mask keeps each conversation from seeing
the others; the loss is next-token cross-entropy only where `loss_mask` is 1 (the assistant's tokens).
Everything else (AdamW, schedule, clipping, validation, checkpoints, resume) is the shared trainer's.
Commits `sft-model-tiny`, whose `base_model` is the pinned pretrained model.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from pydantic import Field

from nemotron.artifacts import ModelArtifact, SFTDataArtifact
from nemotron.errors import NemotronError
from nemotron.job import load_input, output_dir, scale_config, stage_params
from nemotron.stages._training import check_same_tokenizer, load_data_tokenizer
from nemotron.training.trainer import LoopParams


class SFTParams(LoopParams):
    """`conf/stage/sft.yaml`."""

    model_uri: str
    data_uri: str
    batch_size: int = Field(gt=0)
    eval_batches: int = Field(gt=0)
    text: str | None = Field(description="a PretrainBlendsArtifact mixed into training (replay); None: none")
    text_weight: float = Field(ge=0, description="weight of the replayed text's loss")
    text_batch_size: int = Field(gt=0)


def run(cfg: DictConfig) -> ModelArtifact | None:
    import torch

    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.training.batches import PackedRowReader
    from nemotron.training.losses import lm_loss
    from nemotron.training.model import check_vocab, load_model
    from nemotron.training.runtime import process_group, select_device
    from nemotron.training.trainer import Trainer

    params = stage_params(cfg, SFTParams)
    device = select_device(params.device)
    base = load_input(cfg, params.model_uri, ModelArtifact)
    data = load_input(cfg, params.data_uri, SFTDataArtifact)
    scale = scale_config(cfg)
    model = load_model(base.path)
    tokenizer = load_tokenizer(base.path)
    check_same_tokenizer(tokenizer, load_data_tokenizer(cfg, data)[0], base.uri or base.path, data.uri or data.path)
    check_vocab(model, tokenizer, base.uri or base.path)
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and data.pack_size > positions:
        raise NemotronError(
            f"The data {data.uri or data.path} packs rows of {data.pack_size} tokens (pack_size), more than the "
            f"model {base.uri or base.path} has positions ({positions}). Prepare the SFT data with "
            f"stage.pack_size={positions} or less."
        )
    replay = _replay_windows(cfg, params, tokenizer, model)
    train = PackedRowReader(data.path, "train", params.seed, tokenizer.pad_token_id)
    valid = PackedRowReader(data.path, "valid", params.seed, tokenizer.pad_token_id)
    out = output_dir(params.output_dir, ("model",), create=True)

    with process_group(device) as env:
        torch.manual_seed(params.seed)
        trainer = Trainer(model, tokenizer, params, out, env, device,
                          identity={**params.identity(), "pack_size": data.pack_size})  # fmt: skip
        trainer.resume()

        def train_step(step: int) -> dict[str, float]:
            batch = train.batch(step, params.batch_size, env.rank, env.world_size)
            loss, tokens = lm_loss(trainer.wrapped, batch, device)
            values = {"loss": loss.item()}
            if replay is not None:  # pretraining text too, so fine-tuning does not erase what pretraining taught
                text_loss, text_tokens = lm_loss(trainer.wrapped, replay.batch(step, params.text_batch_size, env.rank),
                                                 device)  # fmt: skip
                loss, tokens = loss + params.text_weight * text_loss, tokens + text_tokens
                values["text_loss"] = text_loss.item()
            grad_norm = trainer.update(loss)
            return {**values, "grad_norm": grad_norm or 0.0, "tokens": tokens * env.world_size}

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            batches = min(params.eval_batches, -(-len(valid) // params.batch_size))
            losses = [lm_loss(trainer.module, valid.batch(i, params.batch_size), device)[0].item()
                      for i in range(batches)]  # fmt: skip
            return {"val_loss": sum(losses) / len(losses)}

        result = trainer.fit(train_step, evaluate if len(valid) else None)
    if not env.is_rank0:
        return None
    return ModelArtifact(
        path=str(result.model_dir),
        name=scale.artifact_name(params.name),
        step=result.step,
        final_loss=result.metrics.get("loss"),
        stage="sft",
        tokenizer_uri=base.tokenizer_uri,
        base_model=base.uri,
        metadata={**result.metrics, "history": str(result.history), "pack_size": data.pack_size},
    )


def _replay_windows(cfg: DictConfig, params: SFTParams, tokenizer: Any, model: Any) -> Any:
    """Windows of the pretraining text's train split to mix into SFT (stage.text); None without it."""
    if not params.text or not params.text_weight:
        return None
    from nemotron.artifacts import PretrainBlendsArtifact
    from nemotron.training.batches import TokenWindows

    text = load_input(cfg, params.text, PretrainBlendsArtifact)
    check_same_tokenizer(tokenizer, load_data_tokenizer(cfg, text)[0], params.model_uri, text.uri or text.path)
    seq_len = min(256, getattr(model.config, "max_position_embeddings", 256))
    return TokenWindows(text.path, text.blend_path, "train", seq_len, params.seed)
