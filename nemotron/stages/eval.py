"""`stage=eval`: how good is a model? Accuracy on held-out problems and perplexity on validation text.

    python -m nemotron stage=eval run.model=rl-model-tiny:v2          # problems: rl-data-tiny's test split
    python -m nemotron stage=eval run.model=pretrain-model-tiny run.text=null   # accuracy only

Accuracy: each problem is asked as a one-turn chat, the model answers greedily, and the answer counts when
its final number equals `expected_answer` (the same check as the RL reward). The held-out problems of
data=tiny are never in any training row. Perplexity: next-token loss on windows of the pretraining data's
valid split. Commits `eval-<model name>` (EvalResultsArtifact) with the metrics and every answer given.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts import EvalResultsArtifact, ModelArtifact, PretrainBlendsArtifact, SplitJsonlDataArtifact
from nemotron.errors import NemotronError
from nemotron.job import load_input, output_dir, stage_params
from nemotron.stages._training import check_same_tokenizer, load_data_tokenizer, read_problems


class EvalParams(BaseModel):
    """`conf/stage/eval.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None
    model_uri: str
    problems_uri: str
    split: str
    text: str | None
    max_problems: int | None = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    perplexity_batches: int = Field(ge=1)
    seq_len: int = Field(ge=2)
    output_dir: str | None = None
    seed: int
    device: str
    max_cpu_params: int = Field(ge=1)


def run(cfg: DictConfig) -> EvalResultsArtifact:
    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.training.batches import TokenWindows
    from nemotron.training.evaluate import answer_accuracy, perplexity
    from nemotron.training.model import load_model
    from nemotron.training.runtime import select_device

    params = stage_params(cfg, EvalParams)
    model_artifact = load_input(cfg, params.model_uri, ModelArtifact)
    problems = read_problems(load_input(cfg, params.problems_uri, SplitJsonlDataArtifact), params.split,
                             params.max_problems)  # fmt: skip
    text = load_input(cfg, params.text, PretrainBlendsArtifact) if params.text else None
    device = select_device(params.device)
    check_model_fits(model_artifact, params, device, text is not None)
    model, tokenizer = load_model(model_artifact.path, device), load_tokenizer(model_artifact.path)
    out = output_dir(params.output_dir, ("answers.jsonl",))
    out.mkdir(parents=True, exist_ok=True)

    accuracy, answers = answer_accuracy(model, tokenizer, problems, max_new_tokens=params.max_new_tokens,
                                        batch_size=params.batch_size, device=device)  # fmt: skip
    (out / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    metrics = {"heldout_problems": {"accuracy": accuracy, "count": float(len(answers))}, **by_kind(answers)}
    if text is not None:
        check_same_tokenizer(tokenizer, load_data_tokenizer(cfg, text)[0], model_artifact.uri or "", text.uri or "")
        windows = TokenWindows(text.path, text.blend_path, "valid", params.seq_len, params.seed)
        loss, ppl = perplexity(model, windows, batches=params.perplexity_batches, batch_size=params.batch_size,
                               device=device)  # fmt: skip
        metrics["validation_text"] = {"loss": loss, "perplexity": ppl}
    kinds = "".join(f", {k.removeprefix('heldout_')} {v['accuracy']:.1%}" for k, v in by_kind(answers).items())
    print(f"{model_artifact.uri}: accuracy {accuracy:.1%} on {len(answers)} {params.split} problems{kinds}"
          + (f", validation perplexity {metrics['validation_text']['perplexity']:.3f}" if text else ""))  # fmt: skip
    name = params.name or f"eval-{model_artifact.name}"
    return EvalResultsArtifact(
        path=str(out),
        name=name,
        model_uri=model_artifact.uri,
        metrics=metrics,
        metadata={"accuracy": accuracy, "model_stage": model_artifact.stage, "answers": "answers.jsonl"},
    )


def by_kind(answers: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """`heldout_<kind>`: the accuracy on each kind of problem, for problems that carry a `kind` (data=tiny: the
    held-out two-step problems and the unseen facts, reported side by side)."""
    kinds: dict[str, list[bool]] = {}
    for answer in answers:
        if isinstance(answer.get("kind"), str):
            kinds.setdefault(answer["kind"], []).append(answer["correct"])
    return {f"heldout_{kind}": {"accuracy": sum(c) / len(c), "count": float(len(c))} for kind, c in kinds.items()}


def check_model_fits(model: ModelArtifact, params: EvalParams, device: Any, perplexity: bool) -> None:
    """Before the weights are loaded: a perplexity window longer than the checkpoint's positions, or a model too
    large to evaluate on the CPU (a 30B Megatron model's export), is a clear error."""
    from nemotron.training.model import checkpoint_parameters, max_positions

    label = model.uri or model.path
    positions = max_positions(model.path)
    if perplexity and positions is not None and params.seq_len > positions:
        raise NemotronError(
            f"stage.seq_len={params.seq_len} is longer than the model's maximum positions ({positions}, "
            f"max_position_embeddings in {label}'s config.json): positions beyond it were never trained, so the "
            f"perplexity would mean nothing. Lower stage.seq_len to at most {positions}, or skip the perplexity "
            "with run.text=null."
        )
    count = checkpoint_parameters(model.path)
    if device.type == "cpu" and count is not None and count > params.max_cpu_params:
        raise NemotronError(
            f"{label} has {count:,} parameters, more than stage.max_cpu_params={params.max_cpu_params} for "
            f"device=cpu: on a CPU its evaluation would hold about {count * 2 / 1e9:.0f} GB of weights (bfloat16) and "
            "take hours. Evaluate it on a GPU: stage.device=cuda in a job that has one (launcher=gpu_2x8; the "
            "Megatron models do so by default, model.train.eval.device), or raise stage.max_cpu_params if you mean it."
        )
