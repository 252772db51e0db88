"""Megatron-Bridge backend: `stage=pretrain|sft` with `model.backend=megatron` (e.g. `model=nano3`).

    python -m nemotron stage=pretrain model=nano3 launcher=gpu_2x8 stage.dry_run=true   # print, submit nothing
    python -m nemotron stage=pretrain model=nano3 launcher=my_cluster                    # run on Slurm

What it builds is a Megatron-Bridge v0.6 `ConfigContainer` written as plain YAML with Megatron-Bridge's own
field names (`model`, `train`, `validation`, `optimizer`, `scheduler`, `dataset`, `checkpoint`, `logger`,
`tokenizer`, `rng`): the values our config owns, applied on top of the model's recipe function
(`model.recipe.module` + `model.recipe.<mode>`, e.g. `nemotron_3_nano_pretrain_config`), which supplies the
rest (architecture, kernels, precision). Data comes from the pinned input artifact:

- pretraining: a `PretrainBlendsArtifact`'s `blend.json` (Megatron's per-split data-args file) becomes
  `dataset.blend_per_split` with `split: null`, as `get_blend_fields_from_data_paths(per_split_data_args_path=)`
  converts it (Megatron-Bridge v0.6 has no `per_split_data_args_path` field);
- SFT: an `SFTDataArtifact`'s packed Parquet becomes a `GPTSFTDatasetConfig` with offline packing
  (`offline_packing_specs` = `PackedSequenceSpecs`), `seq_length = pack_size` and `micro_batch_size = 1`.

On Slurm the job has one task per node (`launcher.tasks_per_node=1`); each runs torchrun for the node's GPUs
on `python -m nemotron.backends.megatron_bridge`, the entry point at the end of this file, which loads the
recipe, applies the YAML and calls Megatron-Bridge's `pretrain` or `finetune`. Node 0 returns the checkpoint
directory as a `ModelArtifact` (format `megatron`), which the callback commits with lineage to the data (and,
for SFT, the base model).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict

from nemotron.artifacts import ModelArtifact, PretrainBlendsArtifact, SFTDataArtifact
from nemotron.backends import _cluster
from nemotron.errors import NemotronError

log = logging.getLogger(__name__)
Mode = Literal["pretrain", "sft"]
ENTRY_MODULE = "nemotron.backends.megatron_bridge"
MASTER_PORT = 29500
CONFIG_FILE = "megatron_bridge.yaml"
SCRIPT_FILE = "megatron_bridge.sbatch"
SPLITS = ("train", "valid", "test")
NOT_INSTALLED = (
    "Megatron-Bridge is not installed in this environment; run inside the NeMo container (e.g. "
    "nvcr.io/nvidia/nemo:25.11, set as launcher.container_image) or `pip install megatron-bridge` on a GPU machine. "
    "To see the configuration and the Slurm submission without it, add stage.dry_run=true."
)


class MegatronStageParams(_cluster.BackendStageParams):
    """The `stage:` keys of conf/stage/{pretrain,sft}.yaml this backend reads."""

    model_uri: str | None = None
    eval_batches: int = 8
    log_every: int = 10


class Parallelism(BaseModel):
    """`model.parallelism`: Megatron's names, as in the recipe's model provider."""

    model_config = ConfigDict(extra="forbid")

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    context_parallel_size: int = 1
    expert_model_parallel_size: int = 1
    expert_tensor_parallel_size: int = 1
    sequence_parallel: bool = False

    @property
    def model_parallel(self) -> int:
        return self.tensor_model_parallel_size * self.pipeline_model_parallel_size * self.context_parallel_size


# -- the stage ------------------------------------------------------------------------------------------------


def run(cfg: DictConfig, mode: Mode) -> ModelArtifact | None:
    """Build the Megatron-Bridge config for the pinned input; print it (dry run) or run it on this node."""
    from nemotron.stages import stage_params
    from nemotron.stages._training import load_input

    params = stage_params(cfg, MegatronStageParams)
    if not params.dry_run:
        require_megatron_bridge()
    cluster = _cluster.cluster_from_config(cfg, "Megatron-Bridge") if params.dry_run else _job_cluster(cfg)
    out = _output_dir(params)
    if mode == "pretrain":
        data: PretrainBlendsArtifact | SFTDataArtifact = load_input(cfg, params.data_uri, PretrainBlendsArtifact)
        base = None
    else:
        if not params.model_uri:
            raise NemotronError("stage=sft needs the model to start from: set run.model=NAME:vN.")
        base = load_input(cfg, params.model_uri, ModelArtifact)
        data = load_input(cfg, params.data_uri, SFTDataArtifact)
    config = build_config(cfg, mode, params, cluster, data, out, base=base)
    recipe = recipe_name(cfg, mode)
    config_path, script_path = out / CONFIG_FILE, out / SCRIPT_FILE
    if params.dry_run:
        script = submission_script(cluster, recipe, mode, config_path, out, inputs=_input_paths(data, base))
        _cluster.write_and_show(f"Megatron-Bridge {mode} config ({recipe})", config, config_path, script, script_path)
        return None
    _cluster.check_no_secret_values(config, "the Megatron-Bridge configuration")
    config_path.write_text(_cluster.dump_yaml(config))
    return _run_on_node(cluster, recipe, mode, config_path, config, data, base, artifact_name(cfg, params))


def recipe_name(cfg: DictConfig, mode: Mode) -> str:
    """`module:function` of the model's Megatron-Bridge recipe for this mode."""
    recipe = cfg.model.get("recipe")
    if recipe is None or not recipe.get(mode):
        raise NemotronError(
            f"model={cfg.model.get('name')} names no Megatron-Bridge recipe for {mode}: set model.recipe.module and "
            f"model.recipe.{mode} (e.g. megatron.bridge.recipes.nemotronh and nemotron_3_nano_{mode}_config)."
        )
    return f"{recipe.module}:{recipe[mode]}"


def build_config(
    cfg: DictConfig,
    mode: Mode,
    params: MegatronStageParams,
    cluster: _cluster.Cluster,
    data: PretrainBlendsArtifact | SFTDataArtifact,
    out: Path,
    base: ModelArtifact | None = None,
) -> dict[str, Any]:
    """The ConfigContainer values our config owns, as a nested dict with Megatron-Bridge v0.6 field names."""
    model = cfg.model
    parallel = parallelism(model)
    check_parallelism(parallel, cluster)
    batch = OmegaConf.to_container(model.batch[mode], resolve=True) if "batch" in model else {}
    assert isinstance(batch, dict)
    global_batch, micro_batch = int(batch.get("global_batch_size", 8)), int(batch.get("micro_batch_size", 1))
    if mode == "sft":
        assert isinstance(data, SFTDataArtifact)
        seq_length = data.pack_size
        dataset = sft_dataset(data, parallel, seq_length, params.seed, str(model.get("hf_model") or ""))
        if micro_batch != 1:
            raise NemotronError(
                f"model.batch.sft.micro_batch_size={micro_batch}: packed sequences need a micro batch of 1 (one "
                "packed row per micro batch). Set it to 1 and raise global_batch_size instead."
            )
    else:
        assert isinstance(data, PretrainBlendsArtifact)
        seq_length = int(model.max_seq_len)
        dataset = pretrain_dataset(data, seq_length, out)
    check_batch(global_batch, micro_batch, parallel, cluster)
    config: dict[str, Any] = {
        "model": {**parallel.model_dump(), "seq_length": seq_length},
        "train": _cluster.given({
            "train_iters": params.steps,
            "global_batch_size": global_batch,
            "micro_batch_size": micro_batch,
        }),
        "validation": {"eval_interval": params.eval_every, "eval_iters": params.eval_batches},
        "optimizer": _cluster.given({
            "optimizer": "adam",
            "lr": params.lr,
            "min_lr": params.min_lr,
            "weight_decay": params.weight_decay,
            "clip_grad": params.grad_clip,
            "bf16": True,
            "use_distributed_optimizer": True,
        }),
        "scheduler": _cluster.given({
            "lr_decay_style": "cosine",
            "lr_warmup_iters": params.warmup_steps,
            "lr_decay_iters": params.steps,
            "start_weight_decay": params.weight_decay,
            "end_weight_decay": params.weight_decay,
        }),
        "dataset": dataset,
        "checkpoint": checkpoint(params, out, base),
        "logger": logger(cfg, params, out),
        "tokenizer": tokenizer(model, data),
        "rng": {"seed": params.seed},
    }
    if mode == "sft":
        config["model"]["calculate_per_token_loss"] = True  # packed rows hold unequal numbers of trained tokens
    return config


def parallelism(model: DictConfig) -> Parallelism:
    values = OmegaConf.to_container(model.get("parallelism") or {}, resolve=True)
    try:
        return Parallelism.model_validate(values)
    except ValueError as exc:
        raise NemotronError(f"Invalid model.parallelism: {exc}") from exc


def check_parallelism(parallel: Parallelism, cluster: _cluster.Cluster) -> None:
    """The GPUs must split into whole model replicas, and expert groups must fit the data-parallel ranks."""
    from nemotron.cluster.checks import check_parallel_sizes

    check_parallel_sizes(
        {
            "tensor_model_parallel_size": parallel.tensor_model_parallel_size,
            "pipeline_model_parallel_size": parallel.pipeline_model_parallel_size,
            "context_parallel_size": parallel.context_parallel_size,
        },
        nodes=cluster.nodes,
        gpus_per_node=cluster.gpus_per_node,
        expert=parallel.expert_model_parallel_size * parallel.expert_tensor_parallel_size,
    )


def check_batch(global_batch: int, micro_batch: int, parallel: Parallelism, cluster: _cluster.Cluster) -> None:
    data_parallel = cluster.world_size // parallel.model_parallel
    if global_batch % (micro_batch * data_parallel):
        raise NemotronError(
            f"global_batch_size={global_batch} is not a multiple of micro_batch_size x data-parallel size = "
            f"{micro_batch} x {data_parallel} ({cluster.world_size} GPUs / {parallel.model_parallel} per replica): "
            "Megatron would refuse it. Change model.batch.*.global_batch_size."
        )


def pretrain_dataset(data: PretrainBlendsArtifact, seq_length: int, out: Path) -> dict[str, Any]:
    """`GPTDatasetConfig` fields from the artifact's per-split blend.json."""
    import json

    blend_file = Path(data.path) / data.blend_path
    try:
        per_split = json.loads(blend_file.read_text())
    except (OSError, ValueError) as exc:
        raise NemotronError(f"Cannot read the blend {blend_file} of {data.uri or data.path}: {exc}") from exc
    missing = [split for split in ("train", "valid", "test") if split not in per_split]
    if missing or not per_split.get("train"):
        raise NemotronError(
            f"{blend_file} is not a per-split blend: it needs train, valid and test keys and a non-empty train "
            f"split (missing: {', '.join(missing) or 'train entries'})."
        )
    return {
        "seq_length": seq_length,
        "blend": None,
        "blend_per_split": [_blend_from_list(per_split[split], blend_file.parent) for split in SPLITS],
        "split": None,
        "path_to_cache": str(out / "index_cache"),
    }


def _blend_from_list(items: list[str] | str | None, base: Path) -> list[Any] | None:
    """Megatron's `get_blend_from_list`: `[w1, p1, w2, p2]` -> `[[p1, p2], [w1, w2]]`; prefixes only -> weights
    null. Each prefix is located as the embedded trainer does (moved data reads its own copy)."""
    from nemotron.data.indexed import locate_prefix

    if items is None:
        return None
    items = items.split() if isinstance(items, str) else [str(item) for item in items]
    if not items:
        return None
    pairs = len(items) % 2 == 0 and all(_is_number(w) for w in items[0::2])
    prefixes = [str(locate_prefix(p.strip(), base)) for p in (items[1::2] if pairs else items)]
    return [prefixes, [float(w) for w in items[0::2]] if pairs else None]  # not pairs: all items are prefixes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sft_dataset(
    data: SFTDataArtifact, parallel: Parallelism, seq_length: int, seed: int, tokenizer_name: str
) -> dict[str, Any]:
    """`GPTSFTDatasetConfig` with offline packing over the artifact's packed Parquet splits."""
    splits = Path(data.path) / "splits"
    return {
        "seq_length": seq_length,
        "dataset_root": str(data.path),
        "seed": seed,
        "enable_offline_packing": True,
        "offline_packing_specs": {
            "packed_sequence_size": data.pack_size,
            "tokenizer_model_name": tokenizer_name.replace("/", "--") or None,
            "packed_train_data_path": f"{splits / 'train'}/",
            "packed_val_data_path": f"{splits / 'valid'}/",
            "pad_seq_to_mult": pad_seq_to_mult(parallel),
        },
        "do_validation": (splits / "valid").is_dir() and any((splits / "valid").iterdir()),
        "do_test": False,
    }


def pad_seq_to_mult(parallel: Parallelism) -> int:
    """`lcm(2*CP if CP>1 else 1, CP*TP if SP and TP>1 else 1)` (Megatron-Bridge docs/training/packed-sequences.md)."""
    cp, tp = parallel.context_parallel_size, parallel.tensor_model_parallel_size
    return math.lcm(2 * cp if cp > 1 else 1, cp * tp if parallel.sequence_parallel and tp > 1 else 1)


def checkpoint(params: MegatronStageParams, out: Path, base: ModelArtifact | None) -> dict[str, Any]:
    """Save into this run's directory; `load` the same directory so a requeued job resumes from it."""
    save = str(out / "checkpoints")
    values: dict[str, Any] = {"save": save, "load": save, "save_interval": params.checkpoint_every}
    if base is not None:
        values["pretrained_checkpoint"] = str(base.path)
    return values


def logger(cfg: DictConfig, params: MegatronStageParams, out: Path) -> dict[str, Any]:
    """Logging and W&B settings. The W&B key is never here: wandb reads WANDB_API_KEY from the job's environment."""
    values: dict[str, Any] = {"log_interval": params.log_every, "tensorboard_dir": str(out / "tensorboard")}
    wandb = cfg.get("wandb") or {}
    if wandb.get("project"):
        values |= {
            "wandb_project": str(wandb.project),
            "wandb_exp_name": params.name,
            "wandb_save_dir": str(out / "wandb"),
        }
        if wandb.get("entity"):
            values["wandb_entity"] = str(wandb.entity)
    return values


def tokenizer(model: DictConfig, data: PretrainBlendsArtifact | SFTDataArtifact) -> dict[str, Any]:
    """The model's Hugging Face tokenizer; the data must have been tokenized with it (a hub id or a directory)."""
    name = model.get("hf_model") or data.tokenizer_uri
    if not name:
        raise NemotronError(f"Neither model.hf_model nor {data.uri or data.path} names a tokenizer.")
    if data.tokenizer_uri and data.tokenizer_uri != name:
        log.warning(
            "%s was tokenized with %s, but model.hf_model is %s: unless they are the same tokenizer, prepare the "
            "data with data.tokenizer.name_or_path=%s.",
            data.uri or data.path,
            data.tokenizer_uri,
            name,
            name,
        )
    return {"tokenizer_type": "HuggingFaceTokenizer", "tokenizer_model": str(name)}


# -- the submission -------------------------------------------------------------------------------------------


def node_command(cluster: _cluster.Cluster, recipe: str, mode: Mode, config_path: Path) -> str:
    """What each node runs: torchrun over the node's GPUs, rendezvous at the first node."""
    return (
        f"{cluster.python} -m torch.distributed.run --nnodes=$SLURM_NNODES --node-rank=$SLURM_NODEID "
        f"--nproc-per-node={cluster.gpus_per_node} --master-addr=$MASTER_ADDR --master-port=$MASTER_PORT "
        f"-m {ENTRY_MODULE} --recipe {recipe} --mode {mode} --config {config_path}"
    )


def submission_script(
    cluster: _cluster.Cluster, recipe: str, mode: Mode, config_path: Path, out: Path, inputs: Sequence[str]
) -> str:
    """The sbatch script: one srun task per node (container flags on srun), each running torchrun."""
    workdir = os.getcwd()
    mounts = _cluster.container_mounts(cluster, [workdir, str(out), *inputs])
    srun = _cluster.srun(cluster, mounts, workdir, f"--nodes={cluster.nodes}", "--ntasks-per-node=1")
    lines = _cluster.sbatch_header(cluster, f"nemotron-{mode}", out)
    lines += [
        'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"export MASTER_PORT={MASTER_PORT}",
        "",
        f"{srun} bash -c '{node_command(cluster, recipe, mode, config_path)}'",
    ]
    return "\n".join(lines) + "\n"


def _input_paths(data: Any, base: ModelArtifact | None) -> list[str]:
    return [str(data.path), *([str(base.path)] if base is not None else [])]


# -- the real run (inside the job) ------------------------------------------------------------------------


def _job_cluster(cfg: DictConfig) -> _cluster.Cluster:
    """Inside the job: the allocation Slurm gave us, or this machine alone (the one-node smoke test)."""
    if cfg.get("launcher") is not None and "nodes" in cfg.launcher:
        return _cluster.cluster_from_config(cfg, "Megatron-Bridge")
    return _cluster.local_cluster(sys.executable)


def require_megatron_bridge() -> None:
    """Fail before anything starts when the job's environment lacks Megatron-Bridge (torchrun runs this python)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("megatron.bridge") is not None
    except ModuleNotFoundError:  # no `megatron` package at all
        found = False
    if not found:
        raise NemotronError(NOT_INSTALLED)


def _run_on_node(
    cluster: _cluster.Cluster,
    recipe: str,
    mode: Mode,
    config_path: Path,
    config: Mapping[str, Any],
    data: Any,
    base: ModelArtifact | None,
    name: str,
) -> ModelArtifact | None:
    """Run torchrun for this node's GPUs; node 0 returns the trained checkpoint."""
    node_rank, nnodes, master = _slurm_node()
    env = {
        **os.environ,
        "MASTER_ADDR": master,
        "MASTER_PORT": str(MASTER_PORT),
        "SLURM_NNODES": str(nnodes),
        "SLURM_NODEID": str(node_rank),
    }
    command = node_command(cluster, recipe, mode, config_path)
    # stdout is reserved for the JSON line of committed artifacts: the training log goes to stderr
    result = subprocess.run(["bash", "-c", command], env=env, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise NemotronError(f"Megatron-Bridge {mode} failed on node {node_rank} (exit {result.returncode}): {command}")
    if node_rank != 0:
        return None
    save = Path(config["checkpoint"]["save"])
    return ModelArtifact(
        path=str(save),
        name=name,
        format="megatron",
        step=_latest_iteration(save, int(config["train"].get("train_iters", 0))),
        stage=mode,
        tokenizer_uri=getattr(data, "tokenizer_uri", None),
        base_model=base.uri if base is not None else None,
        metadata={
            "recipe": recipe,
            "nodes": nnodes,
            "gpus_per_node": cluster.gpus_per_node,
            "parallelism": {k: v for k, v in config["model"].items() if k.endswith("_size")},
        },
    )


def _slurm_node() -> tuple[int, int, str]:
    """(node rank, number of nodes, first node's host) from the Slurm environment; (0, 1, localhost) outside."""
    if "SLURM_JOB_NODELIST" not in os.environ:
        return 0, 1, "127.0.0.1"
    from submitit.slurm.slurm import _parse_node_list

    hosts = _parse_node_list(os.environ["SLURM_JOB_NODELIST"])
    return int(os.environ.get("SLURM_NODEID", 0)), int(os.environ.get("SLURM_NNODES", len(hosts))), hosts[0]


def _latest_iteration(save: Path, default: int) -> int:
    """The iteration Megatron recorded for its last checkpoint (`latest_checkpointed_iteration.txt`)."""
    tracker = save / "latest_checkpointed_iteration.txt"
    try:
        return int(tracker.read_text().strip())
    except (OSError, ValueError):
        return default


def artifact_name(cfg: DictConfig, params: MegatronStageParams) -> str:
    """`stage.name` with the scale's suffix, as the embedded stages name their models."""
    from nemotron.data.sources import ScaleConfig

    scale = ScaleConfig.model_validate(OmegaConf.to_container(cfg.scale, resolve=True))
    return scale.artifact_name(params.name)


def _output_dir(params: MegatronStageParams) -> Path:
    return _cluster.run_dir(params.output_dir)


# -- the entry point torchrun runs ------------------------------------------------------------------------


def load_recipe(recipe: str) -> Any:
    """Call the recipe function `module:function` (a zero-argument function returning a ConfigContainer)."""
    import importlib

    module_name, _, function = recipe.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("megatron"):
            raise NemotronError(NOT_INSTALLED) from exc
        raise
    return getattr(module, function)()


def apply_config(container: Any, values: Mapping[str, Any]) -> Any:
    """Apply our YAML values to the recipe's ConfigContainer with Megatron-Bridge's own override layer."""
    from megatron.bridge.training.utils.omegaconf_utils import apply_overrides, create_omegaconf_dict_config

    values = dict(values)
    dataset = values.pop("dataset")
    _, excluded = create_omegaconf_dict_config(container)
    apply_overrides(container, values, excluded)
    container.dataset = _dataset_object(container, dataset)
    return container


def _dataset_object(container: Any, values: Mapping[str, Any]) -> Any:
    """The dataset config as the dataclass Megatron-Bridge expects (its type differs between pretrain and SFT)."""
    values = dict(values)
    if "offline_packing_specs" in values:
        from megatron.bridge.data.builders import GPTSFTDatasetConfig
        from megatron.bridge.data.packing import PackedSequenceSpecs

        specs = PackedSequenceSpecs(**values.pop("offline_packing_specs"))
        return GPTSFTDatasetConfig(offline_packing_specs=specs, **values)
    from megatron.bridge.training.config import GPTDatasetConfig

    splits = values.pop("blend_per_split")
    values["blend_per_split"] = [None if s is None else (s[0], s[1]) for s in splits]
    dataset = container.dataset
    if isinstance(dataset, GPTDatasetConfig):
        for key, value in values.items():
            setattr(dataset, key, value)
        return dataset
    return GPTDatasetConfig(**values)


def main(argv: Sequence[str] | None = None) -> None:
    """`torchrun ... -m nemotron.backends.megatron_bridge --recipe M:F --mode pretrain|sft --config FILE`."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}", description=main.__doc__)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--mode", choices=("pretrain", "sft"), required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        import megatron.bridge  # noqa: F401
    except ModuleNotFoundError as exc:
        raise SystemExit(NOT_INSTALLED) from exc
    from megatron.bridge.training.gpt_step import forward_step

    values = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    assert isinstance(values, dict)
    container = apply_config(load_recipe(args.recipe), values)
    if args.mode == "pretrain":
        from megatron.bridge.training.pretrain import pretrain

        pretrain(config=container, forward_step_func=forward_step)
    else:
        from megatron.bridge.training.finetune import finetune

        finetune(config=container, forward_step_func=forward_step)


if __name__ == "__main__":
    main()
