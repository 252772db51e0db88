"""`stage=pipeline` (the default): the whole recipe, from raw text to an aligned, evaluated model.

    python -m nemotron                                    # tiny: data -> pretrain -> sft -> rl -> eval, on a CPU
    python -m nemotron +stage.overrides.pretrain.steps=1000 +stage.overrides.sft.lr=3e-4

Every step is a stage run as its own job (`python -m nemotron stage=STEP ...`, with this command's model,
data, scale and artifact choices), so each commits its artifacts with its own lineage exactly as if run by
hand. A step's inputs are the exact versions (`name:vN`, read from the JSON line each job prints) that the
earlier steps of *this* pipeline produced, never whatever `latest` is when the step starts: two pipelines
running at once into one store each chain their own versions. The eval step evaluates every trained model
and the pipeline ends with a table of the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict

from nemotron.errors import NemotronError
from nemotron.stages import fresh_output_dir, stage_params

# What each step reads from the earlier ones: run.ROLE = the (step, artifact type) that produced it.
INPUTS: dict[str, dict[str, tuple[str, str]]] = {
    "sft_data": {"tokenizer": ("pretrain_data", "TokenizerArtifact")},
    "pretrain": {"data": ("pretrain_data", "PretrainBlendsArtifact")},
    "sft": {"model": ("pretrain", "ModelArtifact"), "data": ("sft_data", "SFTDataArtifact")},
    "rl": {"model": ("sft", "ModelArtifact"), "data": ("rl_data", "SplitJsonlDataArtifact")},
}
EVAL_INPUTS = {"problems": ("rl_data", "SplitJsonlDataArtifact"), "text": ("pretrain_data", "PretrainBlendsArtifact")}
TRAINING_STEPS = ("pretrain", "sft", "rl")
# The SFT data is tokenized with the pretraining tokenizer (so the model can read it), packed to the model's length.
EXTRA = {
    "sft_data": [
        "data.tokenizer.name_or_path=${art:tokenizer,path}",
        "stage.tokenizer_uri=${art:tokenizer,uri}",
        "stage.pack_size=${model.max_seq_len}",
    ]
}


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[str]
    overrides: dict[str, dict[str, Any]] = {}

    def stage_overrides(self, step: str) -> list[str]:
        """`stage.KEY=VALUE` for each of the step's parameters (JSON values are valid override values)."""
        return [f"stage.{key}={json.dumps(value)}" for key, value in self.overrides.get(step, {}).items()]
    output_dir: str | None = None


def run(cfg: DictConfig) -> None:
    from nemotron.tracking.session import active_tracking

    params = stage_params(cfg, PipelineParams)
    _check_steps(params.steps)
    tracking = active_tracking()
    if tracking is None or tracking.store is None:
        raise NemotronError(
            "The pipeline hands each step the exact artifact versions the earlier steps committed, so it needs "
            "an artifact store: use artifacts=manifest (the default) or artifacts=manifest_wandb, not artifacts=none."
        )
    out = fresh_output_dir(params.output_dir, ("results.json",))
    shared = _shared_overrides()
    produced: dict[str, dict[str, str]] = {}  # step -> {artifact type: art://name:vN}
    results: list[dict[str, Any]] = []
    for number, step in enumerate(params.steps, start=1):
        if step == "eval":
            results = _evaluate_all(produced, shared, params, out, number)
            continue
        wiring = _wiring(INPUTS.get(step, {}), produced)
        extra = EXTRA.get(step, []) if wiring else []
        produced[step] = _run_step(step, [*shared, *wiring, *extra, *params.stage_overrides(step)],
                                   out / f"{number:02d}_{step}")  # fmt: skip
    (out / "results.json").write_text(json.dumps({"artifacts": produced, "eval": results}, indent=2) + "\n")
    _print_results(results)


def _check_steps(steps: list[str]) -> None:
    known = ["pretrain_data", "sft_data", "rl_data", *TRAINING_STEPS, "eval"]
    unknown = [s for s in steps if s not in known]
    if unknown:
        raise NemotronError(f"Unknown pipeline step(s) {', '.join(unknown)}; the steps are {', '.join(known)}.")


def _wiring(inputs: dict[str, tuple[str, str]], produced: dict[str, dict[str, str]]) -> list[str]:
    """`++run.ROLE=art://name:vN` for each input an earlier step of this pipeline produced (`++`: the stage's
    YAML may not declare the role); inputs no step produced keep the stage's default (e.g. `:latest`)."""
    pinned = {role: produced.get(step, {}).get(kind) for role, (step, kind) in inputs.items()}
    return [f"++run.{role}={uri}" for role, uri in pinned.items() if uri]


def _shared_overrides() -> list[str]:
    """This command's overrides that every step shares: model, data, scale, artifacts, seed, device ..."""
    from hydra.core.hydra_config import HydraConfig

    own = ("stage", "+stage", "~stage", "run.", "+run.", "hydra.", "launcher")
    return [o for o in HydraConfig.get().overrides.task if not o.startswith(own)] + ["launcher=local"]


def _run_step(step: str, overrides: list[str], job_dir: Path) -> dict[str, str]:
    """Run one stage as a job; {artifact type: art://name:vN} of what it committed."""
    command = [sys.executable, "-m", "nemotron", f"stage={step}", *overrides, f"hydra.run.dir={job_dir}"]
    print(f"\n── pipeline step {step}: {' '.join(command[3:])}", file=sys.stderr, flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        raise NemotronError(
            f"The pipeline step {step!r} failed (exit {completed.returncode}); its messages are above and its "
            f"job directory is {job_dir}. The artifacts of the earlier steps are committed: rerun the rest with "
            f"stage=NAME and run.ROLE=NAME:vN."
        )
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return {line["type"]: line["uri"] for line in lines}


def _evaluate_all(produced: dict[str, dict[str, str]], shared: list[str], params: PipelineParams, out: Path,
                  number: int) -> list[dict[str, Any]]:  # fmt: skip
    """Evaluate the model of every training step on the held-out problems; one row per model."""
    roles = _wiring(EVAL_INPUTS, produced)
    rows = []
    for step in (s for s in TRAINING_STEPS if "ModelArtifact" in produced.get(s, {})):
        model = produced[step]["ModelArtifact"]
        evaluated = _run_step("eval", [*shared, f"++run.model={model}", *roles, *params.stage_overrides("eval")],
                              out / f"{number:02d}_eval_{step}")  # fmt: skip
        rows.append({"stage": step, "model": model, **_model_steps(model), "eval": evaluated["EvalResultsArtifact"],
                     **_metrics(evaluated["EvalResultsArtifact"])})  # fmt: skip
    return rows


def _model_steps(model_uri: str) -> dict[str, int | None]:
    """The step a model was taken at, and how many its run trained (they differ where select_best chose)."""
    from nemotron.artifacts import ModelArtifact
    from nemotron.tracking.session import active_tracking

    model = active_tracking().load(model_uri, ModelArtifact)
    return {"step": model.step, "trained_steps": model.metadata.get("trained_steps", model.step)}


def _metrics(eval_uri: str) -> dict[str, float | None]:
    from nemotron.artifacts import EvalResultsArtifact
    from nemotron.tracking.session import active_tracking

    metrics = active_tracking().load(eval_uri, EvalResultsArtifact).metrics
    return {
        "accuracy": metrics.get("heldout_problems", {}).get("accuracy"),
        "perplexity": metrics.get("validation_text", {}).get("perplexity"),
    }


def _print_results(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pipeline results: accuracy on held-out problems, perplexity on validation text",
                  title_justify="left")  # fmt: skip
    for column in ("after", "step", "accuracy", "perplexity", "model", "eval"):
        table.add_column(column, justify="right" if column in ("step", "accuracy", "perplexity") else "left",
                         overflow="fold")  # a narrow terminal wraps a name, never cuts it
    for row in rows:
        accuracy = f"{row['accuracy']:.1%}" if row.get("accuracy") is not None else "-"
        perplexity = f"{row['perplexity']:.3f}" if row.get("perplexity") is not None else "-"
        step = str(row["step"]) if row["step"] == row["trained_steps"] else f"{row['step']} of {row['trained_steps']}"
        table.add_row(row["stage"], step, accuracy, perplexity, row["model"].removeprefix("art://"),
                      row["eval"].removeprefix("art://"))  # fmt: skip
        if row["step"] != row["trained_steps"]:
            table.caption = (
                f"{row['stage']}: the model is the one of step {row['step']}, where its validation metric was best "
                "(stage.select_best; a later step must be better by stage.select_min_delta)"
            )
    Console(stderr=True).print(table)
