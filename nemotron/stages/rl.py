"""`stage=rl`: GRPO, reinforcement learning from a verifiable reward (exact answers to arithmetic problems).

    python -m nemotron stage=rl                                # sft-model-tiny + rl-data-tiny (latest)
    python -m nemotron stage=rl stage.group_size=16 stage.kl_coef=0

Each step draws `prompts_per_step` problems, samples `group_size` answers to each from the current model,
rewards the exact answers, and updates the model towards the answers that beat their group's average
(nemotron/training/grpo.py explains the objective). The starting model, frozen, is the reference of the
KL penalty. Every `eval_every` steps the greedy accuracy on the validation problems is measured.
Commits `rl-model-tiny`, whose `base_model` is the pinned starting model.
"""

from __future__ import annotations

import copy

from omegaconf import DictConfig
from pydantic import Field

from nemotron.artifacts import ModelArtifact, SplitJsonlDataArtifact
from nemotron.job import load_input, output_dir, scale_config, stage_params
from nemotron.stages._training import read_problems
from nemotron.training.trainer import LoopParams


class RLParams(LoopParams):
    """`conf/stage/rl.yaml`."""

    model_uri: str
    data_uri: str
    prompts_per_step: int = Field(ge=1)
    group_size: int = Field(ge=2)
    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(gt=0)
    clip_eps: float = Field(gt=0)
    kl_coef: float = Field(ge=0)
    updates_per_step: int = Field(ge=1)
    eval_problems: int = Field(ge=1)


def run(cfg: DictConfig) -> ModelArtifact | None:
    import torch

    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.training.evaluate import answer_accuracy
    from nemotron.training.grpo import grpo_loss, rollout
    from nemotron.training.model import load_model
    from nemotron.training.runtime import process_group, select_device
    from nemotron.training.trainer import Trainer

    params = stage_params(cfg, RLParams)
    device = select_device(params.device)
    base = load_input(cfg, params.model_uri, ModelArtifact)
    data = load_input(cfg, params.data_uri, SplitJsonlDataArtifact)
    scale = scale_config(cfg)
    policy, tokenizer = load_model(base.path), load_tokenizer(base.path)
    reference = copy.deepcopy(policy).eval().requires_grad_(False).to(device) if params.kl_coef else None
    train, val = read_problems(data, "train"), read_problems(data, "val", params.eval_problems)
    out = output_dir(params.output_dir, ("model",), create=True)

    with process_group(device) as env:
        trainer = Trainer(policy, tokenizer, params, out, env, device, identity=params.identity())
        trainer.resume()

        def train_step(step: int) -> dict[str, float]:
            torch.manual_seed(params.seed * 100_003 + step * env.world_size + env.rank)  # resumable sampling
            first = (step * env.world_size + env.rank) * params.prompts_per_step
            problems = [train[k % len(train)] for k in range(first, first + params.prompts_per_step)]
            batch = rollout(
                trainer.module,
                reference,
                tokenizer,
                problems,
                group_size=params.group_size,
                max_new_tokens=params.max_new_tokens,
                temperature=params.temperature,
                device=device,
            )
            for _ in range(params.updates_per_step):
                loss, stats = grpo_loss(trainer.wrapped, batch, clip_eps=params.clip_eps, kl_coef=params.kl_coef)
                trainer.update(loss)
            tokens = int(batch.generated.completion_mask.sum()) * env.world_size
            return {"loss": loss.item(), "reward": batch.rewards.mean().item(), **stats, "tokens": tokens}

        def evaluate() -> dict[str, float]:
            accuracy, _ = answer_accuracy(trainer.module, tokenizer, val, max_new_tokens=params.max_new_tokens,
                                          batch_size=64, device=device)  # fmt: skip
            return {"val_accuracy": accuracy}

        result = trainer.fit(train_step, evaluate if val else None)
    if not env.is_rank0:
        return None
    return ModelArtifact(
        path=str(result.model_dir),
        name=scale.artifact_name(params.name),
        step=result.step,
        final_loss=result.metrics.get("loss"),
        stage="rl",
        tokenizer_uri=base.tokenizer_uri,
        base_model=base.uri,
        metadata={
            **result.metrics,
            "history": str(result.history),
            "algorithm": "grpo",
            "trained_steps": params.steps,
            "selected_step": result.selected_step,
        },  # fmt: skip
    )
