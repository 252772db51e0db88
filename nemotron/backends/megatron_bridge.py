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

Before anything is submitted (dry run or not), the values are checked as Megatron-Bridge would check them at
start (each check cites its source line): parallel sizes against the GPUs, global batch against micro batch x
data parallel, the sequence length against TP/SP/CP, a gated Hugging Face repo the recipe reads without a local
`model.hf_config`. Settings our config does not give (null in `model.train.<mode>`) stay the recipe's. At job
start the interpreter must have Megatron-Bridge >= 0.6 (`model.containers.megatron_bridge` names the image).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict

from nemotron.artifacts import ModelArtifact, PretrainBlendsArtifact, SFTDataArtifact
from nemotron.backends import _cluster
from nemotron.cluster import sbatch
from nemotron.errors import NemotronError
from nemotron.job import artifact_name, load_input, output_dir, stage_params

log = logging.getLogger(__name__)
Mode = Literal["pretrain", "sft"]
ENTRY_MODULE = "nemotron.backends.megatron_bridge"
MASTER_PORT = 29500
CONFIG_FILE = "megatron_bridge.yaml"
SCRIPT_FILE = "megatron_bridge.sbatch"
SPLITS = ("train", "valid", "test")
# The NeMo Framework image whose Megatron-Bridge is >= 0.6 (GPTSFTDatasetConfig and megatron.bridge.data.packing
# first appear in 0.6.0; Megatron-Bridge 0.6.0's release notes are "NeMo Framework 26.08"; 26.06 ships 0.5.0,
# docs/releases/software-versions.md). model.containers.megatron_bridge names it per model.
IMAGE = "nvcr.io/nvidia/nemo:26.08"
MIN_VERSION = (0, 6)
NOT_INSTALLED = (
    f"Megatron-Bridge is not installed in this environment; run inside the NeMo container (e.g. {IMAGE}, "
    "model.containers.megatron_bridge, used as launcher.container_image by launcher=gpu_2x8) or `pip install "
    "megatron-bridge` on a GPU machine. To see the configuration and the Slurm submission without it, add "
    "stage.dry_run=true."
)
HF_CACHE_DIR = "hf_hub"  # in the run dir: the recipe's Hugging Face repo served from model.hf_config, offline


class MegatronStageParams(_cluster.BackendStageParams):
    """The `stage:` keys of conf/stage/{pretrain,sft}.yaml this backend reads."""

    model_uri: str | None = None
    eval_batches: int | None = None
    log_every: int | None = None


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


def pretrain(cfg: DictConfig) -> ModelArtifact | None:
    """`stage=pretrain` of a model whose config names this function (`stage_targets.pretrain`, model=nano3)."""
    return run(cfg, "pretrain")


def sft(cfg: DictConfig) -> ModelArtifact | None:
    """`stage=sft` of a model whose config names this function (`stage_targets.sft`, model=nano3)."""
    return run(cfg, "sft")


def run(cfg: DictConfig, mode: Mode) -> ModelArtifact | None:
    """Build the Megatron-Bridge config for the pinned input; print it (dry run) or run it on this node."""
    params = stage_params(cfg, MegatronStageParams)
    if not params.dry_run:
        require_megatron_bridge(str(cfg.model.get("containers", {}).get("megatron_bridge") or IMAGE))
    cluster = _cluster.cluster_from_config(cfg, "Megatron-Bridge") if params.dry_run else _job_cluster(cfg)
    out = output_dir(params.output_dir, ("checkpoints",), create=True, resume_if_requeued=True)
    if mode == "pretrain":
        data: PretrainBlendsArtifact | SFTDataArtifact = load_input(cfg, params.data_uri, PretrainBlendsArtifact)
        base = None
    else:
        if not params.model_uri:
            raise NemotronError("stage=sft needs the model to start from: set run.model=NAME:vN.")
        base = load_input(cfg, params.model_uri, ModelArtifact)
        data = load_input(cfg, params.data_uri, SFTDataArtifact)
    config = build_config(cfg, mode, params, cluster, data, out, base=base)
    perf = _perf_recipe(cfg, mode, cluster)
    recipe = perf.recipe if perf else recipe_name(cfg, mode)
    if perf:
        log.info(
            "Starting from Megatron-Bridge's performance recipe %s (measured on %d x %s): its layout and batch "
            "replace model.parallelism and model.batch.%s (launcher.gpu_type=null keeps those); its env_vars are "
            "exported at job start.",
            perf.recipe,
            cluster.world_size,
            cfg.launcher.gpu_type,
            mode,
        )
    config_path, script_path = out / CONFIG_FILE, out / SCRIPT_FILE
    hf = hf_source(cfg, mode)
    if params.dry_run:
        inputs = [*_input_paths(data, base), *([hf.config_dir] if hf else [])]
        script = submission_script(cluster, recipe, mode, config_path, out, inputs=inputs, hf=hf)
        _cluster.write_and_show(f"Megatron-Bridge {mode} config ({recipe})", config, config_path, script, script_path)
        return None
    _cluster.check_no_secret_values(config, "the Megatron-Bridge configuration")
    config_path.write_text(_cluster.dump_yaml(config))
    return _run_on_node(cluster, recipe, mode, config_path, config, data, base, artifact_name(cfg, params.name), hf)


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
    perf = _perf_recipe(cfg, mode, cluster)  # its measured layout replaces model.parallelism and model.batch
    parallel = perf.parallelism if perf else parallelism(model)
    check_megatron_parallelism(parallel, cluster)
    batch = OmegaConf.to_container(model.batch[mode], resolve=True) if "batch" in model else {}
    assert isinstance(batch, dict)
    global_batch, micro_batch = int(batch.get("global_batch_size", 8)), int(batch.get("micro_batch_size", 1))
    if perf:
        global_batch, micro_batch = perf.global_batch_size, perf.micro_batch_size
    if mode == "sft":
        assert isinstance(data, SFTDataArtifact)
        seq_length = data.pack_size
        dataset = sft_dataset(data, parallel, seq_length, params.seed, str(model.get("hf_model") or ""), out)
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
    check_sequence_length(seq_length, parallel, "the data's pack_size" if mode == "sft" else "model.max_seq_len")
    config: dict[str, Any] = {
        "model": {**parallel.model_dump(), "seq_length": seq_length},
        "train": _cluster.only_set(
            {
                "train_iters": params.steps,
                "global_batch_size": global_batch,
                "micro_batch_size": micro_batch,
            }
        ),
        "validation": _cluster.only_set({"eval_interval": params.eval_every, "eval_iters": params.eval_batches}),
        "optimizer": _cluster.only_set(
            {
                "optimizer": "adam",
                "lr": params.lr,
                "min_lr": params.min_lr,
                "weight_decay": params.weight_decay,
                "clip_grad": params.grad_clip,
                "bf16": True,
                "use_distributed_optimizer": True,
            }
        ),
        "scheduler": _cluster.only_set(
            {
                "lr_decay_style": "cosine",
                "lr_warmup_iters": params.warmup_steps,
                "lr_decay_iters": params.steps,
                "start_weight_decay": params.weight_decay,
                "end_weight_decay": params.weight_decay,
            }
        ),
        "dataset": dataset,
        "checkpoint": checkpoint_config(params, out, base),
        "logger": logger_config(cfg, params, out),
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


def check_megatron_parallelism(parallel: Parallelism, cluster: _cluster.Cluster) -> None:
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
    """Megatron's num-microbatches calculator asserts global batch % (micro batch x data parallel) == 0
    (megatron-core 0.19.2 num_microbatches_calculator.py:381, ConstantNumMicroBatchesCalculator)."""
    data_parallel = cluster.world_size // parallel.model_parallel
    if global_batch % (micro_batch * data_parallel):
        raise NemotronError(
            f"global_batch_size={global_batch} is not a multiple of micro_batch_size x data-parallel size = "
            f"{micro_batch} x {data_parallel} ({cluster.world_size} GPUs / {parallel.model_parallel} per replica): "
            "Megatron would refuse it. Change model.batch.*.global_batch_size."
        )


def check_sequence_length(seq_length: int, parallel: Parallelism, what: str) -> None:
    """Sequences split across context-parallel ranks (2 chunks each) and, with sequence parallelism, across
    tensor-parallel ranks: Megatron-Bridge asserts seq_length % (2*CP) == 0 (training/config.py:1436 at 0.6.2)
    and pads collated batches to lcm(2*CP, CP*TP with SP) (training/config.py:1216-1231)."""
    multiple = pad_seq_to_mult(parallel)
    if seq_length % multiple:
        raise NemotronError(
            f"The sequence length {seq_length} ({what}) is not a multiple of {multiple}, which tensor parallelism "
            f"{parallel.tensor_model_parallel_size} with sequence_parallel={parallel.sequence_parallel} and context "
            f"parallelism {parallel.context_parallel_size} need (every rank gets an equal slice): Megatron-Bridge "
            f"would refuse it at start. Use a length divisible by {multiple} (for SFT, prepare the data with a "
            "pack_size that is) or change model.parallelism."
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
    data: SFTDataArtifact, parallel: Parallelism, seq_length: int, seed: int, tokenizer_name: str, out: Path
) -> dict[str, Any]:
    """`GPTSFTDatasetConfig` values with offline packing over the artifact's packed Parquet splits, merged at
    job start into the recipe's own dataset config (which keeps its other settings).

    - `dataset_kwargs.pad_to_max_length`: the recipes' packed-SFT setting (recipes/utils/dataset_utils.py:131 at
      0.6.2): every batch is pack_size wide, as Megatron-Bridge needs with expert or pipeline parallelism
      (training/config.py:1206-1211).
    - `packed_metadata_path` in this run's directory: without it Megatron-Bridge derives a `packed/` directory
      inside `dataset_root` and creates it (data/builders/gpt_sft.py:802-825), i.e. inside the committed,
      immutable SFT artifact, which is read-only on many clusters.
    """
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
            "packed_metadata_path": str(out / "packed" / f"{data.pack_size}_metadata.jsonl"),
            "pad_seq_to_mult": pad_seq_to_mult(parallel),
        },
        "dataset_kwargs": {"pad_to_max_length": True},
        "do_validation": (splits / "valid").is_dir() and any((splits / "valid").iterdir()),
        "do_test": False,
    }


def pad_seq_to_mult(parallel: Parallelism) -> int:
    """`lcm(2*CP if CP>1 else 1, CP*TP if SP and TP>1 else 1)` (Megatron-Bridge docs/training/packed-sequences.md)."""
    cp, tp = parallel.context_parallel_size, parallel.tensor_model_parallel_size
    return math.lcm(2 * cp if cp > 1 else 1, cp * tp if parallel.sequence_parallel and tp > 1 else 1)


def checkpoint_config(params: MegatronStageParams, out: Path, base: ModelArtifact | None) -> dict[str, Any]:
    """Save into this run's directory; `load` the same directory so a requeued job resumes from it."""
    save = str(out / "checkpoints")
    values: dict[str, Any] = _cluster.only_set({"save": save, "load": save, "save_interval": params.checkpoint_every})
    if base is not None:
        values["pretrained_checkpoint"] = str(base.path)
    return values


def logger_config(cfg: DictConfig, params: MegatronStageParams, out: Path) -> dict[str, Any]:
    """Logging and W&B settings. The W&B key is never here: wandb reads WANDB_API_KEY from the job's environment."""
    values = _cluster.only_set({"log_interval": params.log_every, "tensorboard_dir": str(out / "tensorboard")})
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
    """The model's Hugging Face tokenizer; the data must have been tokenized with it (a hub id or a directory).
    `model.hf_config` (a local copy of the model's config and tokenizer files) wins: nothing is downloaded."""
    if model.get("hf_config"):
        return {"tokenizer_type": "HuggingFaceTokenizer", "tokenizer_model": str(Path(model.hf_config).absolute())}
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


# -- the Hugging Face repo a recipe reads when it loads ---------------------------------------------------------


@dataclass(frozen=True)
class HfSource:
    """The recipe function reads `repo`'s config.json from the Hub as it builds the model provider
    (`AutoBridge.from_hf_pretrained(repo)`): served instead from `config_dir` through an offline Hub cache."""

    repo: str
    config_dir: str


def hf_source(cfg: DictConfig, mode: Mode) -> HfSource | None:
    """`model.recipe.hf_repo` and `model.hf_config`; a gated repo without a local config is refused here.

    The llama32_1b recipes call `AutoBridge.from_hf_pretrained("meta-llama/Llama-3.2-1B")` (recipes/llama/h100/
    llama3.py:52 and :1334 at 0.6.2): a gated repo, so a job without a token that has access (or without the
    network) fails at start. The nano3 SFT recipe reads nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 the same way
    (recipes/nemotronh/h100/nemotron_3_nano.py:45), a public repo: with model.hf_config set nothing is downloaded.
    """
    recipe = cfg.model.get("recipe") or {}
    repo, local = recipe.get("hf_repo"), cfg.model.get("hf_config")
    if not repo:
        return None
    if not local:
        if recipe.get("hf_repo_gated"):
            raise NemotronError(
                f"model={cfg.model.get('name')}: its Megatron-Bridge {mode} recipe ({recipe_name(cfg, mode)}) reads "
                f"the config of {repo} from the Hugging Face Hub when it loads, a gated repository that a job "
                "without an authorised token (or without the network) cannot read. Download the config and "
                f"tokenizer once where you have access (huggingface-cli download {repo} --exclude '*.safetensors' "
                "'*.pth' --local-dir /lustre/models/<name>) and set model.hf_config to that directory: the job then "
                "reads them from there and downloads nothing."
            )
        return None
    config_dir = Path(str(local)).expanduser().absolute()
    if not (config_dir / "config.json").is_file():
        raise NemotronError(
            f"model.hf_config={local} has no config.json: it must be a local copy of {repo}'s Hugging Face files "
            f"without the weights (config.json and the tokenizer files), e.g. from huggingface-cli download {repo} "
            "--exclude '*.safetensors' '*.pth' --local-dir DIR."
        )
    return HfSource(repo=str(repo), config_dir=str(config_dir))


def serve_hf_repo_offline(repo: str, config_dir: Path, cache: Path) -> dict[str, str]:
    """Lay out `config_dir`'s files as `repo`'s snapshot in a Hugging Face Hub cache (huggingface_hub's documented
    layout: models--ORG--NAME/refs/main -> snapshots/REV/FILE) and return the environment that makes the Hub
    client read it offline. Idempotent: every rank may call it."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    revision = "0" * 40  # no real commit: refs/main names this snapshot
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    for source in sorted(config_dir.iterdir()):
        target = snapshot / source.name
        if source.is_file() and not target.exists():
            with contextlib.suppress(FileExistsError):  # another rank linked it first
                target.symlink_to(source)
    ref = repo_dir / "refs" / "main"
    if not ref.exists():
        partial = ref.with_name(f"main.{os.getpid()}")
        partial.write_text(revision)
        partial.replace(ref)
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


# -- Megatron-Bridge's performance recipes ---------------------------------------------------------------------

# megatron.bridge.perf_recipes (0.6.2): the layouts NVIDIA measured per model, GPU type and GPU count (BF16), with
# the process environment they were measured with in `cfg.env_vars`. Our recipe -> {(gpu type, GPUs): layout as
# (TP, PP, CP, EP, ETP, sequence_parallel, global batch, micro batch)}; tests/realmb checks each against the wheel.
PERF_RECIPES: dict[str, tuple[str, dict[tuple[str, int], tuple[int, int, int, int, int, bool, int, int]]]] = {
    "megatron.bridge.recipes.nemotronh:nemotron_3_nano_pretrain_config": (
        "megatron.bridge.perf_recipes.nemotronh",
        {
            ("h100", 16): (1, 1, 1, 8, 1, False, 1024, 1),
            ("b200", 8): (1, 1, 1, 8, 1, False, 512, 2),
            ("b300", 8): (1, 1, 1, 8, 1, False, 512, 4),
            ("gb200", 8): (1, 1, 1, 8, 1, False, 512, 2),
            ("gb300", 8): (1, 1, 1, 8, 1, False, 512, 4),
            ("vr200", 8): (1, 1, 1, 8, 1, False, 512, 4),
        },
    ),
}
# What a performance recipe sets for a 50-step benchmark rather than a training run (perf_recipes/_common.py
# `_benchmark_common` and the recipes' forced MoE load balancing): a job started from one takes these from the
# model's own recipe, so it trains, evaluates, checkpoints and routes tokens as that recipe does.
BENCHMARK_ONLY = (
    "train.train_iters",
    "train.eval_iters",
    "scheduler.lr_decay_iters",
    "scheduler.lr_warmup_iters",
    "checkpoint.save",
    "logger.log_interval",
    "logger.tensorboard_dir",
    "ddp.check_for_nan_in_grad",
    "ddp.check_for_large_grads",
    "rerun_state_machine.check_for_nan_in_loss",
    "tokenizer.use_tokenizer_vocab_size",
    "model.moe_router_force_load_balancing",
)


@dataclass(frozen=True)
class PerfRecipe:
    """A Megatron-Bridge performance recipe for this model on these GPUs, and the layout it was measured with."""

    recipe: str  # module:function
    base: str  # the model's own recipe (module:function)
    parallelism: Parallelism
    global_batch_size: int
    micro_batch_size: int


def perf_recipe_for(recipe: str, gpu_type: str | None, gpus: int) -> PerfRecipe | None:
    """The performance recipe Megatron-Bridge ships for `recipe` (the model's recipe for this mode) on `gpus` GPUs of
    `gpu_type` (launcher.gpu_type, e.g. h100), or None: the job then starts from `recipe` and model.parallelism."""
    module, layouts = PERF_RECIPES.get(recipe, ("", {}))
    gpu = (gpu_type or "").strip().lower()
    layout = layouts.get((gpu, gpus))
    if layout is None:
        return None
    tp, pp, cp, ep, etp, sp, global_batch, micro_batch = layout
    function = recipe.partition(":")[2].removesuffix("_config")
    parallel = Parallelism(
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        context_parallel_size=cp,
        expert_model_parallel_size=ep,
        expert_tensor_parallel_size=etp,
        sequence_parallel=sp,
    )
    return PerfRecipe(f"{module}:{function}_{gpus}gpu_{gpu}_bf16_config", recipe, parallel, global_batch, micro_batch)


def _perf_recipe(cfg: DictConfig, mode: Mode, cluster: _cluster.Cluster) -> PerfRecipe | None:
    launcher = cfg.get("launcher") or {}
    return perf_recipe_for(recipe_name(cfg, mode), launcher.get("gpu_type"), cluster.world_size)


def _perf_base(recipe: str) -> str | None:
    """The model recipe a performance recipe (`module:function` in PERF_RECIPES) was derived from, else None."""
    module, _, function = recipe.partition(":")
    for base, (perf_module, layouts) in PERF_RECIPES.items():
        stem = base.partition(":")[2].removesuffix("_config")
        if module == perf_module and any(function == f"{stem}_{n}gpu_{gpu}_bf16_config" for gpu, n in layouts):
            return base
    return None


def _with_training_policy(container: Any, base: Any) -> Any:
    """`container` (a performance recipe's) with the BENCHMARK_ONLY fields of `base` (the model's own recipe)."""
    for path in BENCHMARK_ONLY:
        section, _, field = path.partition(".")
        source, target = getattr(base, section, None), getattr(container, section, None)
        if source is not None and target is not None and hasattr(source, field):
            setattr(target, field, getattr(source, field))
    return container


# -- the submission -------------------------------------------------------------------------------------------


def node_command(
    cluster: _cluster.Cluster, recipe: str, mode: Mode, config_path: Path, hf: HfSource | None = None
) -> str:
    """What each node runs: torchrun over the node's GPUs, rendezvous at the first node. Values are quoted
    words; the $VARIABLES expand on the node."""
    word = sbatch.word
    served = ""
    if hf:
        served = f" --hf-repo {word(hf.repo, 'The model repo')} --hf-config {word(hf.config_dir, 'The HF config')}"
    return (
        f"{word(cluster.python, 'launcher.python')} -m torch.distributed.run --nnodes=$SLURM_NNODES "
        f"--node-rank=$SLURM_NODEID --nproc-per-node={int(cluster.gpus_per_node)} --master-addr=$MASTER_ADDR "
        f"--master-port=$MASTER_PORT -m {ENTRY_MODULE} --recipe {word(recipe, 'The recipe')} "
        f"--mode {word(mode, 'The mode')} "
        f"--config {word(config_path, 'The run directory')}{served}"
    )


def submission_script(
    cluster: _cluster.Cluster,
    recipe: str,
    mode: Mode,
    config_path: Path,
    out: Path,
    inputs: Sequence[str],
    hf: HfSource | None = None,
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
        f"{srun} {sbatch.bash_c(node_command(cluster, recipe, mode, config_path, hf))}",
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


def require_megatron_bridge(image: str = IMAGE) -> None:
    """At job start, before torchrun: this interpreter (the one torchrun runs) has Megatron-Bridge >= 0.6."""
    found = _cluster.installed_version("megatron-bridge", "megatron.bridge")
    _cluster.require_library(
        "Megatron-Bridge",
        found,
        MIN_VERSION,
        None,
        image,
        "as launcher.container_image; launcher=gpu_2x8 takes it from model.containers.megatron_bridge. It needs "
        "GPTSFTDatasetConfig and megatron.bridge.data.packing, new in 0.6.0",
    )


def _run_on_node(
    cluster: _cluster.Cluster,
    recipe: str,
    mode: Mode,
    config_path: Path,
    config: Mapping[str, Any],
    data: Any,
    base: ModelArtifact | None,
    name: str,
    hf: HfSource | None = None,
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
    command = node_command(cluster, recipe, mode, config_path, hf)
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
    container = getattr(module, function)()
    base = _perf_base(recipe)
    return _with_training_policy(container, load_recipe(base)) if base else container


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
        return _sft_dataset_object(container.dataset, values)
    from megatron.bridge.training.config import GPTDatasetConfig

    splits = values.pop("blend_per_split")
    values["blend_per_split"] = [None if s is None else (s[0], s[1]) for s in splits]
    dataset = container.dataset
    if isinstance(dataset, GPTDatasetConfig):
        for key, value in values.items():
            setattr(dataset, key, value)
        return dataset
    return GPTDatasetConfig(**values)


# The recipe's SFT source (a Hugging Face dataset, e.g. SQuAD) that our local packed data replaces.
_HF_SOURCE_FIELDS = {
    "hf_dataset": None,
    "hf_validation_dataset": None,
    "hf_test_dataset": None,
    "hf_output_root": None,
    "hf_validation_proportion": None,
    "hf_rewrite": False,
}


def _sft_dataset_object(recipe_dataset: Any, values: dict[str, Any]) -> Any:
    """Our SFT values merged into the recipe's `GPTSFTDatasetConfig`: its loader settings and `dataset_kwargs`
    stay, its Hugging Face source gives way to `dataset_root` (Megatron-Bridge allows exactly one source)."""
    import dataclasses

    from megatron.bridge.data.builders import GPTSFTDatasetConfig
    from megatron.bridge.data.packing import PackedSequenceSpecs

    specs_values = values.pop("offline_packing_specs")
    if not isinstance(recipe_dataset, GPTSFTDatasetConfig):
        return GPTSFTDatasetConfig(offline_packing_specs=PackedSequenceSpecs(**specs_values), **values)
    recipe_specs = recipe_dataset.offline_packing_specs
    specs = (
        dataclasses.replace(recipe_specs, **specs_values)
        if recipe_specs is not None
        else PackedSequenceSpecs(**specs_values)
    )
    kwargs = {**(recipe_dataset.dataset_kwargs or {}), **values.pop("dataset_kwargs", {})}
    fields = {f.name for f in dataclasses.fields(recipe_dataset)}
    source = {key: value for key, value in _HF_SOURCE_FIELDS.items() if key in fields}
    return dataclasses.replace(recipe_dataset, **source, **values, dataset_kwargs=kwargs, offline_packing_specs=specs)


def main(argv: Sequence[str] | None = None) -> None:
    """`torchrun ... -m nemotron.backends.megatron_bridge --recipe M:F --mode pretrain|sft --config FILE`."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}", description=main.__doc__)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--mode", choices=("pretrain", "sft"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--hf-repo", help="the Hugging Face repo the recipe reads when it loads")
    parser.add_argument("--hf-config", help="a local copy of that repo's config and tokenizer files")
    args = parser.parse_args(argv)
    if args.hf_repo and args.hf_config:  # before anything imports huggingface_hub, which reads these at import
        cache = Path(args.config).absolute().parent / HF_CACHE_DIR
        os.environ.update(serve_hf_repo_offline(args.hf_repo, Path(args.hf_config), cache))
    try:
        require_megatron_bridge()
    except NemotronError as exc:
        raise SystemExit(str(exc)) from exc
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
