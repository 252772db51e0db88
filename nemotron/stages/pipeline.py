"""`stage=pipeline` (the default): the whole recipe, from raw text to an aligned, evaluated model.

    python -m nemotron                                    # tiny: data -> pretrain -> sft -> convert -> rl -> eval
    python -m nemotron +stage.overrides.pretrain.steps=1000 +stage.overrides.sft.lr=3e-4
    python -m nemotron stage=pipeline model=nano3 launcher=gpu_2x8 launcher.wait=false   # one Slurm chain

Every step is a stage run as its own job (`python -m nemotron stage=STEP ...`, with this command's model,
data, scale, artifact and launcher choices), so each commits its artifacts with its own lineage exactly as if
run by hand. A step's inputs are the exact versions the earlier steps of *this* pipeline produced, never
whatever `latest` is when the step starts, so two pipelines running at once into one store each chain their own:

- run here (launcher=local) or waiting on Slurm (launcher.wait=true): each step runs after the one before it,
  and its inputs are pinned to the `name:vN` the earlier jobs printed;
- `launcher.wait=false` on Slurm: every step is submitted at once, as a chain of Slurm jobs
  (`--dependency=afterok:ID`, `--kill-on-invalid-dep=yes`: a step that fails or is cancelled cancels every
  step after it). The versions do not exist yet when the jobs are submitted, so each step sets the pipeline
  run's alias `pipe-<run id>` on what it commits (`artifacts.alias`), and the next step reads `NAME:pipe-<run id>`,
  which its job pins to the exact `name:vN` when it starts (after the step before it succeeded).

`convert` hands the SFT model on as a Hugging Face model (Megatron-Bridge's AutoBridge for model.backend=megatron;
a copy-through for the embedded backend, whose checkpoints are Hugging Face models already). The eval step
evaluates the model of every training step and the pipeline ends with a table of the results (chain: with the
job ids; the results are in the store when the jobs end). For model.backend=megatron it evaluates the converted
model, on one node of the GPU profile with `stage.device=cuda` and a batch that fits (model.train.eval); the
CPU is refused for a model above stage.max_cpu_params parameters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict

from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

# What each step reads from the earlier ones: run.ROLE = (the steps that may have produced it, the first present
# wins; its artifact type).
INPUTS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "sft_data": {"tokenizer": (("pretrain_data",), "TokenizerArtifact")},
    "pretrain": {"data": (("pretrain_data",), "PretrainBlendsArtifact")},
    "sft": {
        "model": (("pretrain",), "ModelArtifact"),
        "data": (("sft_data",), "SFTDataArtifact"),
        "text": (("pretrain_data",), "PretrainBlendsArtifact"),
    },  # replayed beside the chats (stage.text)
    "convert": {"model": (("sft",), "ModelArtifact")},
    "rl": {"model": (("convert", "sft"), "ModelArtifact"), "data": (("rl_data",), "SplitJsonlDataArtifact")},
}
EVAL_INPUTS = {
    "problems": (("rl_data",), "SplitJsonlDataArtifact"),
    "text": (("pretrain_data",), "PretrainBlendsArtifact"),
}
TRAINING_STEPS = ("pretrain", "sft", "rl")
# The held-out sets the eval stage reports by problem kind (data=tiny), as the table titles them: the set every
# stage is meant to improve first, then the harder generalisation.
HELDOUT_SETS = {"two_step": "two-step (held out)", "fact": "unseen facts"}
# Steps that run in one process: on a cluster profile of several nodes they take one node (the rest would idle).
ONE_NODE = ("pretrain_data", "sft_data", "rl_data", "convert", "eval")
# The eval stage reads Hugging Face models: with Megatron-Bridge / NeMo-RL (Megatron and NeMo-RL checkpoints) that
# is the converted SFT model, evaluated on a GPU (model.train.eval.device: cuda) of one node (ONE_NODE).
EVALUATED = {"torch": TRAINING_STEPS, "megatron": ("convert",)}
STEPS = ["pretrain_data", "sft_data", "rl_data", "pretrain", "sft", "convert", "rl", "eval"]
# The SFT data is tokenized with the pretraining tokenizer (so the model can read it), packed to the model's length.
EXTRA = {
    "sft_data": [
        "data.tokenizer.name_or_path=${art:tokenizer,path}",
        "stage.tokenizer_uri=${art:tokenizer,uri}",
        "stage.pack_size=${model.max_seq_len}",
    ]
}
# What each step commits, by artifact type: (the stage key naming it, its default; the scale suffix is appended).
# A chained step's successors name its outputs before they exist (NAME:pipe-<run id>), so they are listed here.
OUTPUTS: dict[str, dict[str, tuple[str, str | None]]] = {
    "pretrain_data": {
        "TokenizerArtifact": ("tokenizer_name", "tokenizer"),
        "PretrainBlendsArtifact": ("name", "pretrain-data"),
    },  # fmt: skip
    "sft_data": {"SFTDataArtifact": ("name", "sft-data")},
    "rl_data": {"SplitJsonlDataArtifact": ("name", "rl-data")},
    "pretrain": {"ModelArtifact": ("name", "pretrain-model")},
    "sft": {"ModelArtifact": ("name", "sft-model")},
    "convert": {"ModelArtifact": ("name", None)},  # None: the input's name plus -hf (stage=convert's default)
    "rl": {"ModelArtifact": ("name", "rl-model")},
}


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[str]
    overrides: dict[str, dict[str, Any]]
    output_dir: str | None
    on_host: bool  # read by the Slurm launcher: this stage submits its steps' jobs itself

    def stage_overrides(self, step: str) -> list[str]:
        """`stage.KEY=VALUE` for each of the step's parameters (JSON values are valid override values)."""
        return [f"stage.{key}={json.dumps(value)}" for key, value in self.overrides.get(step, {}).items()]


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
    out = output_dir(params.output_dir, ("results.json",))
    if _chained(cfg):
        _submit_chain(cfg, params, out)
        return
    shared = [*_shared_overrides(), *_step_launcher()]
    produced: dict[str, dict[str, str]] = {}  # step -> {artifact type: art://name:vN}
    results: list[dict[str, Any]] = []
    for number, step in enumerate(params.steps, start=1):
        if step == "eval":
            results = _evaluate_all(produced, shared, params, out, number, _evaluated(cfg))
            continue
        wiring = _wiring(INPUTS.get(step, {}), produced)
        extra = EXTRA.get(step, []) if wiring else []
        overrides = [*shared, *(_one_node(step, cfg) if _on_slurm() else []), *wiring, *extra,
                     *params.stage_overrides(step)]  # fmt: skip
        produced[step] = _run_step(step, overrides, out / f"{number:02d}_{step}")
    figure = _summary_figure(results, out) if results else None
    (out / "results.json").write_text(
        json.dumps({"artifacts": produced, "eval": results, "figure": str(figure) if figure else None}, indent=2) + "\n"
    )
    _print_results(results, figure)
    _print_examples(results)


def _check_steps(steps: list[str]) -> None:
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise NemotronError(f"Unknown pipeline step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}.")


def _wiring(inputs: dict[str, tuple[tuple[str, ...], str]], produced: dict[str, dict[str, str]]) -> list[str]:
    """`++run.ROLE=art://name:vN` for each input an earlier step of this pipeline produced (`++`: the stage's
    YAML may not declare the role); inputs no step produced keep the stage's default (e.g. `:latest`)."""
    pinned = {role: _producer(steps, kind, produced) for role, (steps, kind) in inputs.items()}
    return [f"++run.{role}={found[1]}" for role, found in pinned.items() if found]


def _producer(steps: tuple[str, ...], kind: str, produced: dict[str, dict[str, str]]) -> tuple[str, str] | None:
    """(step, reference) of the first of `steps` that produced a `kind`."""
    for step in steps:
        if kind in produced.get(step, {}):
            return step, produced[step][kind]
    return None


def _shared_overrides() -> list[str]:
    """This command's overrides that every step shares: model, data, scale, artifacts, seed, device ..."""
    from hydra.core.hydra_config import HydraConfig

    own = ("stage", "run.", "hydra.", "launcher")  # also as +KEY, ++KEY, ~KEY
    config_dirs = [f"--config-dir={source.path}" for source in HydraConfig.get().runtime.config_sources
                   if source.provider == "command-line" and source.schema == "file"]  # fmt: skip
    return [*config_dirs, *(o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(own))]


def _launcher_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").startswith("launcher")]


def _on_slurm() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().launcher.get("_target_", "")).endswith("NemotronSlurmLauncher")


def _chained(cfg: DictConfig) -> bool:
    """launcher.wait=false on Slurm: the steps are submitted as one chain of jobs, and nothing waits for them."""
    return _on_slurm() and not bool(cfg.get("launcher", {}).get("wait", True))


def _step_launcher() -> list[str]:
    """Each step runs where this command runs: here (launcher=local), or as a Slurm job this pipeline waits for."""
    return _launcher_overrides() if _on_slurm() else ["launcher=local"]


def _run_step(step: str, overrides: list[str], job_dir: Path) -> dict[str, str]:
    """Run one stage as a job; {artifact type: art://name:vN} of what it committed."""
    lines = _step(step, overrides, job_dir, "run", "stage=NAME and run.ROLE=NAME:vN")
    return {line["type"]: line["uri"] for line in lines if "type" in line}


def _step(step: str, overrides: list[str], job_dir: Path, verb: str, rest: str) -> list[dict[str, Any]]:
    """`python -m nemotron stage=STEP OVERRIDES` in a process of its own; the JSON lines it printed."""
    where = [f"hydra.run.dir={job_dir}", f"hydra.sweep.dir={job_dir}"]
    command = [sys.executable, "-m", "nemotron", f"stage={step}", *overrides, *where]
    print(f"\n── pipeline step {step}: {' '.join(command[3:])}", file=sys.stderr, flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        raise NemotronError(
            f"The pipeline step {step!r} failed to {verb} (exit {completed.returncode}); its messages are above and "
            f"its job directory is {job_dir}. What the earlier steps committed stays committed: rerun the rest "
            f"with {rest}."
        )
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def _evaluated(cfg: DictConfig) -> tuple[str, ...]:
    return EVALUATED.get(str(cfg.model.get("backend", "torch")), TRAINING_STEPS)


def _evaluate_all(produced: dict[str, dict[str, str]], shared: list[str], params: PipelineParams, out: Path,
                  number: int, evaluated: tuple[str, ...]) -> list[dict[str, Any]]:  # fmt: skip
    """Evaluate the model of every training step on the held-out problems; one row per model."""
    roles = _wiring(EVAL_INPUTS, produced)
    rows = []
    for step in (s for s in evaluated if "ModelArtifact" in produced.get(s, {})):
        model = produced[step]["ModelArtifact"]
        evaluated = _run_step("eval", [*shared, f"++run.model={model}", *roles, *params.stage_overrides("eval")],
                              out / f"{number:02d}_eval_{step}")  # fmt: skip
        rows.append({"stage": step, "model": model, **_model_steps(model), "eval": evaluated["EvalResultsArtifact"],
                     **_metrics(evaluated["EvalResultsArtifact"])})  # fmt: skip
    return rows


# -- launcher.wait=false on Slurm: one chain of jobs ------------------------------------------------------------


@dataclass
class _Chain:
    """One chained pipeline run as it is submitted: each step's job id, output references and table row."""

    alias: str
    shared: list[str]
    suffix: str
    dry_run: bool
    out: Path
    produced: dict[str, dict[str, str]] = field(default_factory=dict)  # step -> {type: art://NAME:pipe-...}
    jobs: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)


def _submit_chain(cfg: DictConfig, params: PipelineParams, out: Path) -> None:
    """Submit every step as a Slurm job that starts when the jobs it reads from succeeded; print the job ids."""
    alias = run_alias()
    chain = _Chain(
        alias,
        [*_shared_overrides(), *_launcher_overrides(), f"++artifacts.alias={alias}"],
        str(cfg.get("scale", {}).get("suffix") or ""),
        bool(cfg.launcher.get("dry_run", False)),
        out,
    )
    try:
        _submit_steps(cfg, params, chain)
    except NemotronError as exc:
        if not chain.jobs or chain.dry_run:
            raise
        subprocess.run(["scancel", *chain.jobs.values()], check=False)
        raise NemotronError(f"{exc} The jobs this pipeline had submitted ({', '.join(chain.jobs.values())}) were "
                            "cancelled; one that had already finished keeps what it committed.") from exc  # fmt: skip
    results = {"alias": alias, "jobs": chain.jobs, "artifacts": chain.produced}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _print_chain(chain.rows, alias, chain.jobs, out)


def _submit_steps(cfg: DictConfig, params: PipelineParams, chain: _Chain) -> None:
    """Submit each step in order; an eval step submits one job per trained model."""
    produced, jobs = chain.produced, chain.jobs
    for number, step in enumerate(params.steps, start=1):
        if step == "eval":
            for trained in (s for s in _evaluated(cfg) if s in jobs):
                model = produced[trained]["ModelArtifact"]
                wiring = [f"++run.model={model}", *_wiring(EVAL_INPUTS, produced)]
                after = [jobs[trained], *_upstream_jobs(EVAL_INPUTS, produced, jobs)]
                overrides = [*chain.shared, *_one_node("eval", cfg), *wiring, *params.stage_overrides("eval")]
                jobs[f"eval_{trained}"] = job = _submit(
                    f"eval_{trained}",
                    "eval",
                    overrides,
                    after,
                    chain.out / f"{number:02d}_eval_{trained}",
                    chain.dry_run,
                )
                chain.rows.append({"step": f"eval ({trained})", "job": job,
                                   "commits": f"eval-{_name(model)}:{chain.alias}"})  # fmt: skip
            continue
        inputs = INPUTS.get(step, {})
        wiring = _wiring(inputs, produced)
        extra = EXTRA.get(step, []) if wiring else []
        overrides = [*chain.shared, *_one_node(step, cfg), *wiring, *extra, *params.stage_overrides(step)]
        jobs[step] = job = _submit(step, step, overrides, _upstream_jobs(inputs, produced, jobs),
                                   chain.out / f"{number:02d}_{step}", chain.dry_run)  # fmt: skip
        names = _output_names(step, params, produced, chain.suffix)
        produced[step] = {kind: f"art://{name}:{chain.alias}" for kind, name in names.items()}
        commits = ", ".join(f"{name}:{chain.alias}" for name in names.values())
        chain.rows.append({"step": step, "job": job, "commits": commits})


def _one_node(step: str, cfg: DictConfig) -> list[str]:
    nodes = cfg.get("launcher", {}).get("nodes")
    return ["launcher.nodes=1"] if step in ONE_NODE and isinstance(nodes, int) and nodes > 1 else []


def run_alias() -> str:
    """The alias every step of one chained pipeline run sets on what it commits: unique per run."""
    return f"pipe-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _submit(label: str, step: str, overrides: list[str], after: list[str], job_dir: Path, dry_run: bool) -> str:
    """Submit one step (launcher.wait=false) to start after the jobs `after` succeeded; its Slurm job id.
    launcher.dry_run=true: each step's sbatch script is printed, with a stand-in id for the jobs it waits for."""
    dependency = []
    if after:
        dependency = [f"++launcher.additional_parameters.dependency=afterok:{':'.join(after)}",
                      "++launcher.additional_parameters.kill_on_invalid_dep=yes"]  # fmt: skip
    lines = _step(step, [*overrides, *dependency], job_dir, "submit", "stage=pipeline once the cause is fixed")
    if dry_run:
        return f"DRYRUN_{label}"
    ids = [str(line["submitted"]) for line in lines if line.get("submitted")]
    if len(ids) != 1:
        raise NemotronError(f"The pipeline step {label!r} printed {len(ids)} Slurm job ids, not one: {lines}.")
    return ids[0]


def _upstream_jobs(inputs: dict[str, tuple[tuple[str, ...], str]], produced: dict[str, dict[str, str]],
                   jobs: dict[str, str]) -> list[str]:  # fmt: skip
    """The job ids of the steps whose outputs `inputs` read."""
    steps = [found[0] for steps, kind in inputs.values() if (found := _producer(steps, kind, produced))]
    return list(dict.fromkeys(jobs[step] for step in steps if step in jobs))


def _output_names(step: str, params: PipelineParams, produced: dict[str, dict[str, str]],
                  suffix: str) -> dict[str, str]:  # fmt: skip
    """The names a step will commit (its stage.name overrides included), with the scale suffix."""
    names = {}
    for kind, (key, default) in OUTPUTS[step].items():
        base = params.overrides.get(step, {}).get(key, default)
        if base is None:  # convert: the input's name plus -hf (or its stage.to)
            found = _producer(INPUTS[step]["model"][0], "ModelArtifact", produced)
            if found is None:
                raise NemotronError(
                    "A chained pipeline names each step's outputs before they exist: convert without the sft step "
                    "before it needs its name, +stage.overrides.convert.name=NAME."
                )
            source = _name(found[1])
            target = params.overrides.get(step, {}).get("to") or "hf"
            base = f"{source.removesuffix(suffix) if suffix else source}-{target}"
        names[kind] = str(base) if not suffix or str(base).endswith(suffix) else f"{base}{suffix}"
    return names


def _name(reference: str) -> str:
    return reference.removeprefix("art://").split(":")[0]


def _print_chain(rows: list[dict[str, str]], alias: str, jobs: dict[str, str], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pipeline submitted as a Slurm chain (not waiting); run alias {alias}", title_justify="left")
    for column in ("step", "Slurm job", "commits"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["step"], row["job"], row["commits"])
    table.caption = (
        f"Each step starts when the jobs it reads from succeeded; one that fails or is cancelled cancels the rest. "
        f"Follow: squeue -j {','.join(jobs.values())}; sacct -j {','.join(jobs.values())}. Job ids: {out}/results.json"
    )
    Console(stderr=True).print(table)


# -- the results table ---------------------------------------------------------------------------------------


def _model_steps(model_uri: str) -> dict[str, int | None]:
    """The step a model was taken at, and how many its run trained (they differ where select_best chose)."""
    from nemotron.artifacts import ModelArtifact
    from nemotron.tracking.session import active_tracking

    model = active_tracking().load(model_uri, ModelArtifact)
    history = model.metadata.get("history")  # its metrics.jsonl; the stage's curves are loss.png beside it
    return {
        "step": model.step,
        "trained_steps": model.metadata.get("trained_steps", model.step),
        "history": history,
        "plot": _existing(Path(history).with_name("loss.png")) if history else None,
    }


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _metrics(eval_uri: str) -> dict[str, float | None]:
    from nemotron.artifacts import EvalResultsArtifact
    from nemotron.tracking.session import active_tracking

    evaluation = active_tracking().load(eval_uri, EvalResultsArtifact)
    metrics = evaluation.metrics
    return {
        "accuracy": metrics.get("heldout_problems", {}).get("accuracy"),
        **{f"accuracy_{kind}": metrics.get(f"heldout_{kind}", {}).get("accuracy") for kind in HELDOUT_SETS},
        "perplexity": metrics.get("validation_text", {}).get("perplexity"),
        "answers": str(Path(evaluation.path) / evaluation.metadata.get("answers", "answers.jsonl")),
    }


def _summary_figure(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """pipeline.png: every training stage's curves and the held-out accuracy of each stage's model."""
    from nemotron.training.metrics import pipeline_figure

    histories = {row["stage"]: Path(row["history"]) for row in rows if row.get("history")}
    bars = {label: {row["stage"]: row[key] for row in rows if row.get(key) is not None}
            for key, label in _accuracy_columns(rows)}  # fmt: skip
    return pipeline_figure(histories, bars, out / "pipeline.png")


def _accuracy_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(row key, column title) of each held-out set the evaluations report; the overall accuracy without sets."""
    sets = [(f"accuracy_{kind}", title) for kind, title in HELDOUT_SETS.items()
            if any(row.get(f"accuracy_{kind}") is not None for row in rows)]  # fmt: skip
    return sets or [("accuracy", "accuracy")]


def _print_results(rows: list[dict[str, Any]], figure: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    accuracy = _accuracy_columns(rows)
    table = Table(title="pipeline results: exact-answer accuracy on held-out problems, perplexity on validation text",
                  title_justify="left")  # fmt: skip
    for column in ("after", "step", *(title for _, title in accuracy), "perplexity", "model"):
        table.add_column(
            column, justify="left" if column in ("after", "model") else "right", overflow="fold"
        )  # a narrow terminal wraps a name, never cuts it
    captions = []
    for row in rows:
        values = [f"{row[key]:.1%}" if row.get(key) is not None else "-" for key, _ in accuracy]
        perplexity = f"{row['perplexity']:.3f}" if row.get("perplexity") is not None else "-"
        step = str(row["step"]) if row["step"] == row["trained_steps"] else f"{row['step']} of {row['trained_steps']}"
        table.add_row(row["stage"], step, *values, perplexity, row["model"].removeprefix("art://"))
        if row["step"] != row["trained_steps"]:
            captions.append(f"{row['stage']}: the model is the one of step {row['step']}, where its validation "
                            "metric was best (stage.select_best; a later step must be better by "
                            "stage.select_min_delta)")  # fmt: skip
    table.caption = "\n".join(captions) or None
    console = Console(stderr=True)
    if not console.is_terminal:  # a log file (80 columns by default) keeps whole rows
        console = Console(stderr=True, width=120)
    console.print(table)
    # The pictures, one path a line and never wrapped (a terminal makes them clickable)
    for row in rows:
        if row.get("plot"):
            console.print(f"curves of {row['stage']}: {row['plot']}", soft_wrap=True, highlight=False)
    if figure:
        console.print(f"all curves and the accuracy per stage on one page: {figure}", soft_wrap=True, highlight=False)


def _print_examples(rows: list[dict[str, Any]], count: int = 3) -> None:
    """Held-out problems of the test split with the answer of each stage's model, the change from stage to stage
    in words: the first problem of the first set, the first one the last stage changed, and one of the second set."""
    from rich.console import Console

    answers = {row["stage"]: _read_answers(row.get("answers")) for row in rows}
    answers = {stage: found for stage, found in answers.items() if found}
    if not answers:
        return
    first = next(iter(answers.values()))
    picked = _example_indices(list(answers.values()), count)
    console = Console(stderr=True, highlight=False)
    console.print(f"{len(picked)} held-out problems and each model's answer:")
    for index in picked:
        problem = first[index]
        kind = f"[{HELDOUT_SETS.get(problem['kind'], problem['kind'])}] " if problem.get("kind") else ""
        console.print(f"  {kind}{problem['problem']}  expected {problem['expected_answer']}", markup=False,
                      soft_wrap=True)  # fmt: skip
        for stage, given in answers.items():
            mark = "right" if given[index]["correct"] else "wrong"
            console.print(f"    {stage:<9} {mark}: {given[index]['completion'].strip()!r}", markup=False,
                          soft_wrap=True)  # fmt: skip


def _read_answers(path: str | None) -> list[dict[str, Any]]:
    if not path or not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _example_indices(per_stage: list[list[dict[str, Any]]], count: int) -> list[int]:
    """`count - 1` problems of the first kind (the first one, then those where the last stage's answer is right and
    the one before's wrong, or wrong and right: what the last stage changed, either way; then the next ones) and the
    first problem of another kind. Without kinds: the first `count`."""
    answers = per_stage[0]
    kinds = list(dict.fromkeys(a.get("kind") for a in answers))
    if len(kinds) < 2:
        return list(range(min(count, len(answers))))
    first_kind = [i for i, a in enumerate(answers) if a.get("kind") == kinds[0]]
    last, before = per_stage[-1], per_stage[-2:][0]  # one stage: the same list, so nothing changed
    changed = [i for i in first_kind[1:] if last[i]["correct"] != before[i]["correct"]]
    picked = list(dict.fromkeys([first_kind[0], *changed, *first_kind[1:]]))[: count - 1]
    return [*picked, next(i for i, a in enumerate(answers) if a.get("kind") == kinds[1])]
