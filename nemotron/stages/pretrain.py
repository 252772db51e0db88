"""`stage=pretrain`: train a fresh model to predict the next token of the pretraining corpus.

    python -m nemotron stage=pretrain                                   # model=tiny on pretrain-data-tiny:latest
    python -m nemotron stage=pretrain run.data=pretrain-data-tiny:v2 stage.steps=1000 stage.lr=1e-3
    torchrun --nproc-per-node 2 -m nemotron stage=pretrain              # DDP (gloo on CPU)

The recipe: build the model with the data's tokenizer, draw windows of `seq_len` tokens from the train
split's shards by blend weight, minimise next-token cross-entropy with AdamW under a warmup + cosine
schedule, clip gradients, measure the loss on the valid split now and then, checkpoint, and commit the
final Hugging Face checkpoint as `pretrain-model-tiny` (a ModelArtifact whose lineage reaches the data).
A model whose config names another function for this stage (`stage_targets.pretrain`: model=nano3 runs
Megatron-Bridge, nemotron/backends) runs that instead of this recipe.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from pydantic import Field

from nemotron.artifacts import ModelArtifact, PretrainBlendsArtifact
from nemotron.errors import NemotronError
from nemotron.job import load_input, output_dir, scale_config, stage_params
from nemotron.stages._training import load_data_tokenizer
from nemotron.training.trainer import LoopParams


class PretrainParams(LoopParams):
    """`conf/stage/pretrain.yaml`."""

    data_uri: str
    batch_size: int = Field(gt=0)
    seq_len: int = Field(gt=0)
    eval_batches: int = Field(gt=0)


def run(cfg: DictConfig) -> ModelArtifact | None:
    import torch

    from nemotron.training.batches import TokenWindows
    from nemotron.training.losses import lm_loss
    from nemotron.training.model import TinyModelConfig, build_model
    from nemotron.training.runtime import process_group, select_device
    from nemotron.training.trainer import Trainer

    params = stage_params(cfg, PretrainParams)
    device = select_device(params.device)
    data = load_input(cfg, params.data_uri, PretrainBlendsArtifact)
    scale = scale_config(cfg)
    model_config = TinyModelConfig.model_validate(OmegaConf.to_container(cfg.model, resolve=True))
    if params.seq_len > model_config.max_seq_len:
        raise NemotronError(
            f"stage.seq_len={params.seq_len} is longer than the model's maximum positions (model.max_seq_len="
            f"{model_config.max_seq_len}): positions beyond it were never meant to be used. Lower stage.seq_len "
            "or raise model.max_seq_len."
        )
    tokenizer, tokenizer_uri = load_data_tokenizer(cfg, data)
    train = TokenWindows(data.path, data.blend_path, "train", params.seq_len, params.seed)
    valid = TokenWindows(data.path, data.blend_path, "valid", params.seq_len, params.seed)
    out = output_dir(params.output_dir, ("model",), create=True)

    with process_group(device) as env:
        torch.manual_seed(params.seed)
        trainer = Trainer(build_model(model_config, tokenizer), tokenizer, params, out, env, device,
                          identity={**params.identity(), "model": model_config.model_dump()})  # fmt: skip
        trainer.resume()

        def train_step(step: int) -> dict[str, float]:
            loss, tokens = lm_loss(trainer.wrapped, train.batch(step, params.batch_size, env.rank), device)
            grad_norm = trainer.update(loss)
            return {"loss": loss.item(), "grad_norm": grad_norm or 0.0, "tokens": tokens * env.world_size}

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            losses = [lm_loss(trainer.module, valid.batch(i, params.batch_size), device)[0].item()
                      for i in range(params.eval_batches)]  # fmt: skip
            return {"val_loss": sum(losses) / len(losses)}

        result = trainer.fit(train_step, evaluate)
    if not env.is_rank0:
        return None
    return ModelArtifact(
        path=str(result.model_dir),
        name=scale.artifact_name(params.name),
        step=result.step,
        final_loss=result.metrics.get("loss"),
        stage="pretrain",
        tokenizer_uri=tokenizer_uri,
        base_model=None,
        metadata={
            **result.metrics,
            "history": str(result.history),
            "world_size": env.world_size,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
        },  # fmt: skip
    )
