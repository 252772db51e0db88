"""NeMo-RL backend: `stage=rl` with `model.backend=megatron` (e.g. `model=nano3`) runs GRPO with NeMo-RL v0.7.

    python -m nemotron stage=rl model=nano3 launcher=gpu_2x8 stage.dry_run=true   # print, submit nothing

The config is NeMo-RL's own schema (`grpo`, `loss_fn`, `checkpointing`, `policy`, `data`, `env`, `logger`,
`cluster`), written as YAML whose `defaults:` names NeMo-RL's example config (`model.rl.base_config`, inside
the container), so it holds only the values our config owns. The data is a `SplitJsonlDataArtifact` of
`{"problem", "expected_answer"}` rows, read through NeMo-RL's `ResponseDataset` and `math_hf_data_processor`
and rewarded by the `math` environment.

Ray runs inside the Slurm allocation: the first node starts the Ray head, the others join it as workers, and
the first node then runs NeMo-RL's GRPO entry point (`examples/run_grpo.py --config FILE`), which places its
workers on the whole Ray cluster. Node 0 returns the checkpoint directory as a `ModelArtifact` (format
`nemo_rl`) whose `base_model` is the pinned starting model.

NeMo-RL is not on PyPI, so its v0.7.0 run-time assertions are encoded here as pre-submit checks (`check_grpo`,
each citing its source line) on the generated config merged with the base config's values: at least one
validation batch, the packing pad factor against TP/SP/CP, bias-activation fusion against the model's
activation, samples per step against the global batch, the global batch against data parallel. At job start
the checkout must be NeMo-RL 0.7 (`model.containers.nemo_rl` names the image).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nemotron.artifacts import ModelArtifact, SplitJsonlDataArtifact
from nemotron.backends import _cluster
from nemotron.cluster import sbatch
from nemotron.errors import NemotronError
from nemotron.job import artifact_name, load_input, output_dir, stage_params

RAY_PORT = 6379
CONFIG_FILE = "nemo_rl_grpo.yaml"
SCRIPT_FILE = "nemo_rl_grpo.sbatch"
ENTRY_POINT = "examples/run_grpo.py"
# NeMo-RL ships as its own image, its checkout in /opt/nemo-rl (docker/Dockerfile at v0.7.0: WORKDIR /opt/nemo-rl).
IMAGE = "nvcr.io/nvidia/nemo-rl:v0.7.0"
VERSION = (0, 7)
NOT_INSTALLED = (
    f"NeMo-RL is not installed in this environment; run inside the NeMo-RL container ({IMAGE}, "
    "model.containers.nemo_rl, used as launcher.container_image by launcher=gpu_2x8; model.rl.nemo_rl_dir points at "
    "its checkout, /opt/nemo-rl by default). To see the configuration and the Slurm submission without it, add "
    "stage.dry_run=true."
)
# NeMo-RL v0.7.0 examples/configs/grpo_math_1B.yaml: the values our config may leave to it (lines 3, 4, 10, 16, 17;
# 179 bias_activation_fusion; 269-276 dynamic_batching / sequence_packing), for the pre-submit checks.
GRPO_MATH_1B = {
    "num_prompts_per_step": 32,
    "num_generations_per_prompt": 16,
    "val_period": 10,
    "max_val_samples": 256,
    "val_batch_size": 256,
    "bias_activation_fusion": True,
    "sequence_packing": True,
    "dynamic_batching": False,
}
# Activations megatron-core can fuse with the bias (transformer_config.py:2115-2119 at 0.19.2; swiglu is silu
# with a gated linear unit).
FUSABLE_ACTIVATIONS = ("gelu", "silu", "swiglu", "quick_gelu", "quick_geglu", "geglu")


class GRPOStageParams(_cluster.BackendStageParams):
    """The `stage:` keys of `conf/stage/rl.yaml` this backend reads."""

    # None: NeMo-RL's base config value (model.train.rl.KEY: null for the Megatron models)
    model_uri: str
    prompts_per_step: int | None = None
    group_size: int | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    clip_eps: float | None = None
    kl_coef: float | None = None
    eval_problems: int | None = None


def rl(cfg: DictConfig) -> ModelArtifact | None:
    """`stage=rl` of a model whose config names this function (`stage_targets.rl`, model=nano3)."""
    return run(cfg)


def run(cfg: DictConfig) -> ModelArtifact | None:
    """Build the GRPO config for the pinned model and data; print it (dry run) or run it in this allocation."""
    params = stage_params(cfg, GRPOStageParams)
    rl = rl_settings(cfg)
    if not params.dry_run:
        require_nemo_rl(rl, str(cfg.model.get("containers", {}).get("nemo_rl") or IMAGE))
    cluster = _cluster.cluster_from_config(cfg, "NeMo-RL") if params.dry_run else _job_cluster(cfg)
    out = output_dir(params.output_dir, ("checkpoints",), create=True, resume_if_requeued=True)
    base = load_input(cfg, params.model_uri, ModelArtifact)
    data = load_input(cfg, params.data_uri, SplitJsonlDataArtifact)
    config = build_config(cfg, params, cluster, base, data, out)
    config_path, script_path = out / CONFIG_FILE, out / SCRIPT_FILE
    if params.dry_run:
        inputs = [str(base.path), *(str(Path(p).parent) for p in (data.train, data.val) if p)]
        inputs += [str(cfg.model.hf_config)] if cfg.model.get("hf_config") else []  # read inside the container
        script = submission_script(cluster, rl, config_path, out, inputs)
        _cluster.write_and_show("NeMo-RL GRPO config", config, config_path, script, script_path)
        return None
    _cluster.check_no_secret_values(config, "the NeMo-RL configuration")
    config_path.write_text(_cluster.dump_yaml(config))
    return _run_on_node(cfg, cluster, rl, params, config, config_path, base)


def rl_settings(cfg: DictConfig) -> dict[str, Any]:
    rl = cfg.model.get("rl")
    if rl is None:
        raise NemotronError(
            f"model={cfg.model.get('name')} has no `rl:` section: NeMo-RL needs its policy settings "
            "(max_total_sequence_length, batch sizes, megatron_cfg or dtensor_cfg, vllm_cfg): see "
            "conf/model/nano3.yaml."
        )
    values = OmegaConf.to_container(rl, resolve=True)
    assert isinstance(values, dict)
    return values


def build_config(
    cfg: DictConfig,
    params: GRPOStageParams,
    cluster: _cluster.Cluster,
    base: ModelArtifact,
    data: SplitJsonlDataArtifact,
    out: Path,
) -> dict[str, Any]:
    """The GRPO configuration in NeMo-RL v0.7's schema."""
    rl = rl_settings(cfg)
    if not data.train:
        raise NemotronError(f"{data.uri or data.path} has no train split: GRPO needs training problems.")
    check_rl_parallelism(rl, cluster)
    config = {
        "defaults": str(Path(rl.get("nemo_rl_dir", "/opt/nemo-rl")) / rl["base_config"]),
        "grpo": _cluster.only_set(
            {
                "num_prompts_per_step": params.prompts_per_step,
                "num_generations_per_prompt": params.group_size,
                "max_num_steps": params.steps,
                "val_period": params.eval_every,
                "max_val_samples": params.eval_problems,
                # one validation batch of all the problems unless the model says otherwise: NeMo-RL validates
                # max_val_samples // val_batch_size batches (nemo_rl/algorithms/grpo.py:3164-3167)
                "val_batch_size": rl.get("val_batch_size") or params.eval_problems,
                "seed": params.seed,
            }
        ),
        "loss_fn": _cluster.only_set(
            {
                "reference_policy_kl_penalty": params.kl_coef,
                "ratio_clip_min": params.clip_eps,
                "ratio_clip_max": params.clip_eps,
                "token_level_loss": True,
            }
        ),
        "checkpointing": _cluster.only_set(
            {
                "enabled": True,
                "checkpoint_dir": str(out / "checkpoints"),
                "save_period": params.checkpoint_every,
                "metric_name": "val:accuracy",
                "higher_is_better": True,
                "keep_top_k": 3,
            }
        ),
        "policy": policy_config(cfg, params, rl, base),
        "data": {
            "max_input_seq_length": rl["max_total_sequence_length"],
            "shuffle": True,
            # dataset_name in each entry too: NeMo-RL merges ours into its base config, whose train entry names
            # a built-in dataset (OpenMathInstruct-2) that would otherwise win over `default`
            "train": {**_jsonl(data.train), "split_validation_size": 0.0, "seed": params.seed},
            "validation": _jsonl(data.val) if data.val else None,
            "default": {
                "dataset_name": "ResponseDataset",
                "prompt_file": "examples/prompts/cot.txt",
                "processor": "math_hf_data_processor",
                "env_name": "math",
            },
        },
        "env": {"math": {"num_workers": 8, "math_verify_impl": "hf_math_verify"}},
        "logger": logger_config(cfg, params, out),
        "cluster": {"num_nodes": cluster.nodes, "gpus_per_node": cluster.gpus_per_node},
    }
    check_grpo(config, rl, cluster, str(cfg.model.get("activation") or ""))
    return config


def _jsonl(path: str | None) -> dict[str, Any]:
    """A local JSONL of math problems as NeMo-RL's ResponseDataset reads it."""
    return {
        "dataset_name": "ResponseDataset",
        "data_path": str(path),
        "input_key": "problem",
        "output_key": "expected_answer",
    }


def policy_config(
    cfg: DictConfig, params: GRPOStageParams, rl: Mapping[str, Any], base: ModelArtifact
) -> dict[str, Any]:
    """`policy:` — the starting checkpoint, its trainer (Megatron or DTensor) and vLLM generation."""
    tokenizer = cfg.model.get("hf_config") or cfg.model.get("hf_model") or base.path
    recipe = cfg.model.get("recipe") or {}
    if recipe.get("hf_repo_gated") and str(tokenizer) == str(recipe.get("hf_repo")):
        raise NemotronError(
            f"model={cfg.model.get('name')}: NeMo-RL would load the tokenizer of {tokenizer} from the Hugging Face "
            "Hub at job start, a gated repository that a job without an authorised token (or without the network) "
            f"cannot read. Download it once where you have access (huggingface-cli download {tokenizer} --exclude "
            "'*.safetensors' '*.pth' --local-dir /lustre/models/<name>) and set model.hf_config to that directory."
        )
    values: dict[str, Any] = {
        **starting_model(cfg, rl, base),
        "tokenizer": {"name": str(tokenizer)},
        "train_global_batch_size": rl["train_global_batch_size"],
        "train_micro_batch_size": rl["train_micro_batch_size"],
        "logprob_batch_size": rl["train_micro_batch_size"],
        "max_total_sequence_length": rl["max_total_sequence_length"],
        "generation": _cluster.only_set(
            {
                "backend": "vllm",
                "max_new_tokens": params.max_new_tokens,  # None: the base's max_total_sequence_length
                "temperature": params.temperature,
                "vllm_cfg": dict(rl.get("vllm_cfg") or {}),
            }
        ),
    }
    if params.grad_clip is not None:
        values["max_grad_norm"] = params.grad_clip
    if rl.get("megatron_cfg") is not None:
        values["dtensor_cfg"] = {"enabled": False}
        values["make_sequence_length_divisible_by"] = rl.get("make_sequence_length_divisible_by") or min_pad_factor(
            rl["megatron_cfg"]
        )
        values["megatron_cfg"] = {
            "enabled": True,
            **fusion_setting(cfg, rl["megatron_cfg"]),
            **rl["megatron_cfg"],
            "optimizer": _cluster.only_set(
                {"lr": params.lr, "min_lr": params.min_lr, "weight_decay": params.weight_decay}
            ),
            "scheduler": _cluster.only_set({"lr_warmup_iters": params.warmup_steps, "lr_decay_iters": params.steps}),
        }
    else:
        values["dtensor_cfg"] = {"enabled": True, **(rl.get("dtensor_cfg") or {})}
        values["megatron_cfg"] = {"enabled": False}
        values["optimizer"] = {
            "name": "torch.optim.AdamW",
            "kwargs": _cluster.only_set({"lr": params.lr, "weight_decay": params.weight_decay}),
        }
    return values


def starting_model(cfg: DictConfig, rl: Mapping[str, Any], base: ModelArtifact) -> dict[str, Any]:
    """Where NeMo-RL v0.7 reads the starting weights from, by the input's `format`; a format it cannot start
    from is refused here, before anything is submitted.

    - hf: `model_name` is the Hugging Face model directory (vLLM and both trainers read it).
    - megatron, with a Megatron policy (`model.rl.megatron_cfg`): `pretrained_checkpoint` with format
      `megatron_bridge` (the checkpoint root; NeMo-RL picks its latest iter_*, nemo_rl/models/megatron/setup.py:378-406
      at v0.7.0, "Supported by the Megatron backend only", nemo_rl/utils/checkpoint.py:37), and `model_name` the
      Hugging Face model whose config and tokenizer describe the architecture (model.hf_config, a local copy that
      a node without network or a gated repo needs, else model.hf_model); vLLM starts from dummy weights and
      receives the policy's by refit (nemo_rl/models/generation/__init__.py:48).
    - megatron with a DTensor policy, or nemo_rl: refused, with what to run instead.
    """
    label = base.uri or base.path
    if base.format == "hf":
        return {"model_name": str(base.path)}
    architecture = cfg.model.get("hf_config") or cfg.model.get("hf_model")  # the local copy first: no network
    if base.format == "megatron" and rl.get("megatron_cfg") is not None and architecture:
        return {
            "model_name": str(architecture),
            "pretrained_checkpoint": {"path": str(base.path), "format": "megatron_bridge"},
        }
    if base.format == "megatron":
        why = (
            "this model's NeMo-RL policy trains with DTensor (model.rl.dtensor_cfg), which reads Hugging Face "
            "models only"
            if rl.get("megatron_cfg") is None
            else "a Megatron policy can start from it (policy.pretrained_checkpoint), but NeMo-RL then needs the "
            "Hugging Face model that describes the architecture, and neither model.hf_config nor model.hf_model is "
            "set"
        )
        raise NemotronError(
            f"{label} is a Megatron checkpoint, and {why}; vLLM, NeMo-RL's generation, needs a Hugging Face model too. "
            f"Convert it first: python -m nemotron stage=convert model={cfg.model.get('name')} run.model={label} "
            "(it commits the Hugging Face model as <name>-hf), then start GRPO from that: run.model=<name>-hf:vN. "
            "stage=pipeline does this for you."
        )
    raise NemotronError(
        f"{label} is a {base.format} checkpoint; NeMo-RL v0.7 starts GRPO from a Hugging Face model "
        "(policy.model_name) or a Megatron-Bridge checkpoint (policy.pretrained_checkpoint). Convert it to Hugging "
        "Face with NeMo-RL's "
        "converter (examples/converters/ in its checkout), register the result (stage=register "
        "stage.type=ModelArtifact) and pass that as run.model."
    )


# -- pre-submit checks: what NeMo-RL v0.7.0 would refuse at run time, refused here in a second --------------


def min_pad_factor(megatron_cfg: Mapping[str, Any]) -> int:
    """The least `make_sequence_length_divisible_by` a Megatron policy accepts: 2*CP with context parallelism,
    times TP with sequence parallelism (nemo_rl/models/megatron/data.py:1126-1131 at v0.7.0)."""
    tp = int(megatron_cfg.get("tensor_model_parallel_size", 1))
    cp = int(megatron_cfg.get("context_parallel_size", 1))
    factor = cp * 2 if cp > 1 else 1
    return factor * tp if tp > 1 and megatron_cfg.get("sequence_parallel") else factor


def fusion_setting(cfg: DictConfig, megatron_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`bias_activation_fusion: false` for a model whose activation megatron-core cannot fuse (the base config
    turns it on; NeMo-RL's own nanov3 recipes turn it off)."""
    activation = str(cfg.model.get("activation") or "")
    return {"bias_activation_fusion": False} if activation and activation not in FUSABLE_ACTIVATIONS else {}


def _effective(section: Mapping[str, Any], key: str, base: str) -> Any:
    """Our value, else grpo_math_1B.yaml's (None when the base config is another one: the check is skipped)."""
    if key in section:
        return section[key]
    return GRPO_MATH_1B.get(key) if Path(base).name == "grpo_math_1B.yaml" else None


def check_grpo(config: Mapping[str, Any], rl: Mapping[str, Any], cluster: _cluster.Cluster, activation: str) -> None:
    """The generated config against NeMo-RL v0.7.0's run-time assertions, each cited."""
    grpo, policy, base = config["grpo"], config["policy"], str(rl["base_config"])
    _check_validation(grpo, config["data"], base)
    _check_samples_per_step(grpo, policy, rl, cluster, base)
    megatron = policy.get("megatron_cfg") or {}
    if not megatron.get("enabled"):
        return
    fusion = _effective(megatron, "bias_activation_fusion", base)
    if fusion and activation and activation not in FUSABLE_ACTIVATIONS:
        raise NemotronError(
            f"policy.megatron_cfg.bias_activation_fusion is on, but model.activation={activation}: megatron-core fuses "
            "the bias only with gelu, swiglu or quick_gelu and refuses the model at start (megatron-core "
            'transformer_config.py:2115 at 0.19.2; mlp.py "Only support fusion of gelu and swiglu"). Remove '
            "model.rl.megatron_cfg.bias_activation_fusion (nemotron then turns it off for this activation)."
        )
    divisible, least = int(policy["make_sequence_length_divisible_by"]), min_pad_factor(megatron)
    if _effective(policy, "sequence_packing", base) and divisible % least:
        raise NemotronError(
            f"policy.make_sequence_length_divisible_by={divisible} is not a multiple of {least}, which the Megatron "
            f"policy's tensor parallelism {megatron.get('tensor_model_parallel_size', 1)} with sequence_parallel="
            f"{megatron.get('sequence_parallel', False)} and context parallelism "
            f"{megatron.get('context_parallel_size', 1)} need for packed sequences: NeMo-RL would stop at its first "
            f"training step (nemo_rl/models/megatron/data.py:1132). Set model.rl.make_sequence_length_divisible_by "
            f"to a multiple of {least}, or leave it null."
        )


def _check_validation(grpo: Mapping[str, Any], data: Mapping[str, Any], base: str) -> None:
    period = _effective(grpo, "val_period", base)
    if not period:
        return
    if data.get("validation") is None:
        raise NemotronError(
            f"grpo.val_period={period} validates every {period} steps, but the RL data has no validation split: "
            'NeMo-RL stops at start ("Validation dataset is required if validation is enabled", '
            "nemo_rl/algorithms/grpo.py:405). Prepare the data with a val split (stage=rl_data) or set "
            "stage.eval_every=0."
        )
    samples, batch = _effective(grpo, "max_val_samples", base), _effective(grpo, "val_batch_size", base)
    if samples is not None and batch and samples // batch < 1:
        raise NemotronError(
            f"grpo.max_val_samples={samples} is less than one validation batch (val_batch_size={batch}): NeMo-RL "
            f"validates max_val_samples // val_batch_size = 0 batches (nemo_rl/algorithms/grpo.py:3164-3167), so "
            "validation accuracy would read 0.0 and select_best would pick on nothing. Raise stage.eval_problems or "
            "lower model.rl.val_batch_size (null: one batch of all the problems)."
        )


def _check_samples_per_step(
    grpo: Mapping[str, Any], policy: Mapping[str, Any], rl: Mapping[str, Any], cluster: _cluster.Cluster, base: str
) -> None:
    prompts = _effective(grpo, "num_prompts_per_step", base)
    generations = _effective(grpo, "num_generations_per_prompt", base)
    global_batch, micro_batch = int(policy["train_global_batch_size"]), int(policy["train_micro_batch_size"])
    if prompts and generations and (prompts * generations) % global_batch:
        raise NemotronError(
            f"{prompts} prompts x {generations} generations = {prompts * generations} samples per step is not a "
            f"multiple of train_global_batch_size={global_batch}: NeMo-RL stops at the first training step "
            f'("Total batch size ({prompts * generations}) is not a multiple of batch_size ({global_batch})", '
            "nemo_rl/distributed/batched_data_dict.py:396). Make model.rl.train_global_batch_size divide the "
            "samples per step, or change stage.prompts_per_step / stage.group_size."
        )
    data_parallel = cluster.world_size // _model_parallel(rl)
    if global_batch % data_parallel:
        raise NemotronError(
            f"train_global_batch_size={global_batch} is not a multiple of the policy's data-parallel size "
            f"{data_parallel} ({cluster.world_size} GPUs / {_model_parallel(rl)} per replica): NeMo-RL shards each "
            'global batch evenly ("Batch size is not a multiple of shards", nemo_rl/distributed/'
            "batched_data_dict.py:400). Change model.rl.train_global_batch_size."
        )
    packed = _effective(policy, "sequence_packing", base) or _effective(policy, "dynamic_batching", base)
    if packed is False and (global_batch // data_parallel) % micro_batch:
        raise NemotronError(
            f"train_global_batch_size={global_batch} over {data_parallel} data-parallel ranks gives "
            f"{global_batch // data_parallel} samples per rank, not a multiple of train_micro_batch_size="
            f"{micro_batch}: NeMo-RL would stop (nemo_rl/distributed/batched_data_dict.py:831). Change "
            "model.rl.train_global_batch_size or train_micro_batch_size."
        )


def _model_parallel(rl: Mapping[str, Any]) -> int:
    """GPUs per policy replica: TP x PP x CP (nemo_rl/models/policy/lm_policy.py:195-212)."""
    trainer = rl.get("megatron_cfg") or rl.get("dtensor_cfg") or {}
    sizes = [
        trainer.get("tensor_model_parallel_size", trainer.get("tensor_parallel_size", 1)),
        trainer.get("pipeline_model_parallel_size", 1),
        trainer.get("context_parallel_size", 1),
    ]
    return math.prod(int(size) for size in sizes)


def check_starting_model(job_config: DictConfig) -> None:
    """On the submitting host, before anything is submitted: `stage=rl` with model.backend=megatron refuses a
    starting model NeMo-RL cannot read (starting_model), when its reference already resolves here. One that does
    not resolve yet (the alias of a pipeline chain's earlier step) is checked by the job when it starts."""
    from nemotron.tracking.session import ArtifactSettings, Tracking

    stage = job_config.get("stage") or {}
    if stage.get("_target_") != "nemotron.backends.nemo_rl.rl":
        return
    if OmegaConf.select(job_config, "stage.dry_run", default=False):
        return  # the stage runs on this host and checks it itself
    reference = OmegaConf.select(job_config, "run.model", default=None)
    if not reference or reference == "-":
        return
    try:
        settings = ArtifactSettings.from_config(job_config.get("artifacts"), job_config.get("wandb"))
        model = Tracking(settings).load(str(reference), ModelArtifact)
    except NemotronError:
        return
    starting_model(job_config, rl_settings(job_config), model)


def check_rl_parallelism(rl: Mapping[str, Any], cluster: _cluster.Cluster) -> None:
    """The policy's model-parallel sizes and vLLM's tensor parallel size must fit the allocation."""
    from nemotron.cluster.checks import check_parallel_sizes

    trainer = rl.get("megatron_cfg") or rl.get("dtensor_cfg") or {}
    keys = (
        "tensor_model_parallel_size",
        "tensor_parallel_size",
        "pipeline_model_parallel_size",
        "context_parallel_size",
    )
    sizes = {key: int(trainer[key]) for key in keys if key in trainer}
    expert = int(trainer.get("expert_model_parallel_size", 1)) * int(trainer.get("expert_tensor_parallel_size", 1))
    check_parallel_sizes(sizes, nodes=cluster.nodes, gpus_per_node=cluster.gpus_per_node, expert=expert)
    vllm = rl.get("vllm_cfg") or {}
    generation = {
        "tensor_parallel_size": int(vllm.get("tensor_parallel_size", 1)),
        "pipeline_parallel_size": int(vllm.get("pipeline_parallel_size", 1)),
    }
    check_parallel_sizes(generation, nodes=cluster.nodes, gpus_per_node=cluster.gpus_per_node)


def logger_config(cfg: DictConfig, params: GRPOStageParams, out: Path) -> dict[str, Any]:
    """W&B when a project is configured; the key comes from WANDB_API_KEY in the job's environment only."""
    wandb = cfg.get("wandb") or {}
    enabled = bool(wandb.get("project"))
    values: dict[str, Any] = {"log_dir": str(out / "logs"), "wandb_enabled": enabled, "tensorboard_enabled": True}
    if enabled:
        values["wandb"] = {"project": str(wandb.project), "name": params.name}
        if wandb.get("entity"):
            values["wandb"]["entity"] = str(wandb.entity)
    return values


# -- Ray inside the allocation ----------------------------------------------------------------------------


# The head's address is an IP resolved on the head node, as NeMo-RL's ray.sub resolves each node's IP in the batch
# script (v0.7.0, ray.sub:268-313; head_node_ip=${ip_addresses_array[0]} at :332, `--node-ip-address` at :567):
# a name that another node resolves differently (or not at all) is no Ray address. The batch script runs on the
# allocation's first node, the head; srun still places the steps by name ($HEAD_NODE).
RESOLVE_HEAD = [
    "HEAD_NODE=${NODES[0]}",
    "RAY_HEAD=$(getent ahostsv4 \"$HEAD_NODE\" | awk 'NR == 1 { print $1 }' || true)",
    'if [ -z "$RAY_HEAD" ]; then',
    '  echo "WARNING: $HEAD_NODE does not resolve to an IP here; Ray uses the name" >&2',
    "  RAY_HEAD=$HEAD_NODE",
    "fi",
    "export HEAD_NODE RAY_HEAD",
]


def ray_head_command(cluster: _cluster.Cluster) -> str:
    return (
        f'ray start --head --node-ip-address="$RAY_HEAD" --port={RAY_PORT} --num-gpus={int(cluster.gpus_per_node)} '
        "--disable-usage-stats"
    )


def ray_worker_command(cluster: _cluster.Cluster) -> str:
    """Join the head and stay until it goes away."""
    return (
        f'ray start --address="$RAY_HEAD:{RAY_PORT}" --num-gpus={int(cluster.gpus_per_node)} --disable-usage-stats '
        "--block"
    )


def wait_for_nodes_command(cluster: _cluster.Cluster) -> str:
    """Block until all nodes joined the Ray cluster (NeMo-RL sizes its workers from cluster.num_nodes)."""
    return f'until [ "$(ray status 2>/dev/null | grep -c " node_")" -ge {cluster.nodes} ]; do sleep 5; done'


def grpo_command(cluster: _cluster.Cluster, rl: Mapping[str, Any], config_path: Path) -> str:
    """NeMo-RL's GRPO entry point, run from its checkout on the Ray head's node."""
    nemo_rl_dir = sbatch.word(rl.get("nemo_rl_dir", "/opt/nemo-rl"), "model.rl.nemo_rl_dir")
    python, config = sbatch.word(cluster.python, "launcher.python"), sbatch.word(config_path, "The run directory")
    return f"cd {nemo_rl_dir} && {python} {ENTRY_POINT} --config {config}"


HEAD = '"--nodelist=$HEAD_NODE"'  # an srun option naming the head by the script's variable, quoted


def submission_script(
    cluster: _cluster.Cluster, rl: Mapping[str, Any], config_path: Path, out: Path, inputs: list[str]
) -> str:
    """The sbatch script: a Ray head on the first node, Ray workers on the others, then the GRPO driver."""
    workdir = os.getcwd()
    mounts = _cluster.container_mounts(cluster, [workdir, str(out), *inputs])

    def step(*options: str) -> str:
        return _cluster.srun(cluster, mounts, workdir, *options)

    ray_head = ray_head_command(cluster)
    lines = _cluster.sbatch_header(cluster, "nemotron-rl", out)
    lines += [
        'NODES=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))',
        "# The Ray head's IP, resolved here on the head node (as NeMo-RL's ray.sub does)",
        *RESOLVE_HEAD,
        "",
        "# Ray head on the first node",
        f"{step('--nodes=1', '--ntasks=1', HEAD)} {sbatch.bash_c(ray_head + ' --block')} &",
        "sleep 10",
    ]
    if cluster.nodes > 1:
        options = (f"--nodes={cluster.nodes - 1}", "--ntasks-per-node=1", '"--exclude=$HEAD_NODE"')
        worker = sbatch.bash_c(ray_worker_command(cluster))
        lines += ["# Ray workers on the other nodes", f"{step(*options)} {worker} &"]
    driver = f"{wait_for_nodes_command(cluster)}; {grpo_command(cluster, rl, config_path)}"
    lines += [
        "",
        "# The GRPO driver on the head's node; when it ends the batch script ends and Slurm stops Ray",
        f"{step('--overlap', '--nodes=1', '--ntasks=1', HEAD)} {sbatch.bash_c(driver)}",
    ]
    return "\n".join(lines) + "\n"


# -- the real run (inside the job) ------------------------------------------------------------------------


def _job_cluster(cfg: DictConfig) -> _cluster.Cluster:
    if cfg.get("launcher") is not None and "nodes" in cfg.launcher:
        return _cluster.cluster_from_config(cfg, "NeMo-RL")
    return _cluster.local_cluster("python")


def require_nemo_rl(rl: Mapping[str, Any], image: str = IMAGE) -> None:
    """At job start, before Ray: NeMo-RL 0.7's checkout (its GRPO entry point) is in this environment. The
    version comes from the installed `nemo-rl` distribution, else the checkout's nemo_rl/package_info.py."""
    nemo_rl_dir = Path(str(rl.get("nemo_rl_dir", "/opt/nemo-rl")))
    entry = nemo_rl_dir / ENTRY_POINT
    if not entry.is_file():
        raise NemotronError(f"{entry} does not exist. {NOT_INSTALLED.replace(IMAGE, image)}")
    found = _cluster.installed_version("nemo-rl", "nemo_rl", nemo_rl_dir / "nemo_rl" / "package_info.py")
    _cluster.require_library(
        "NeMo-RL",
        found,
        VERSION,
        (VERSION[0], VERSION[1] + 1),
        image,
        "as launcher.container_image; launcher=gpu_2x8 takes it from model.containers.nemo_rl. The GRPO config "
        "nemotron writes is NeMo-RL 0.7's schema",
    )


def _run_on_node(
    cfg: DictConfig,
    cluster: _cluster.Cluster,
    rl: Mapping[str, Any],
    params: GRPOStageParams,
    config: Mapping[str, Any],
    config_path: Path,
    base: ModelArtifact,
) -> ModelArtifact | None:
    """Node 0: Ray head, wait for the others, run GRPO, stop Ray. Other nodes: join as Ray workers until the
    head goes away."""
    node_rank, head = _slurm_node()
    env = {**os.environ, "RAY_HEAD": head_address(node_rank, head, config_path.parent)}
    if node_rank != 0:
        _shell(ray_worker_command(cluster), env, "Ray worker", check=False)
        return None
    _shell(ray_head_command(cluster), env, "the Ray head")
    try:
        _shell(wait_for_nodes_command(cluster), env, "waiting for the Ray workers")
        _shell(grpo_command(cluster, rl, config_path), env, "NeMo-RL GRPO")
    finally:
        _shell("ray stop", env, "ray stop", check=False)
    return ModelArtifact(
        path=str(config["checkpointing"]["checkpoint_dir"]),
        name=artifact_name(cfg, params.name),
        format="nemo_rl",
        step=_last_step(Path(config["checkpointing"]["checkpoint_dir"])),
        stage="rl",
        tokenizer_uri=base.tokenizer_uri,
        base_model=base.uri,
        metadata={"algorithm": "grpo", "nodes": cluster.nodes, "gpus_per_node": cluster.gpus_per_node},
    )


def _last_step(checkpoint_dir: Path) -> int:
    """The step of NeMo-RL's last checkpoint (`step_N/` directories); 0 if it saved none."""
    steps = [int(p.name.removeprefix("step_")) for p in checkpoint_dir.glob("step_*") if p.name[5:].isdigit()]
    return max(steps, default=0)


def _shell(command: str, env: Mapping[str, str], what: str, check: bool = True) -> None:
    # stdout is reserved for the JSON line of committed artifacts: logs go to stderr
    result = subprocess.run(["bash", "-c", command], env=dict(env), stdout=sys.stderr, check=False)
    if check and result.returncode != 0:
        raise NemotronError(f"{what} failed (exit {result.returncode}): {command}")


def head_address(node_rank: int, head: str, run_dir: Path, timeout_s: float = 600) -> str:
    """The Ray head's address in the job: node 0 resolves its name to an IPv4 address on the head (as RESOLVE_HEAD
    and NeMo-RL's ray.sub do) and writes it into the run directory, which the job's nodes share, under this job's
    id; the other nodes wait for it there, so none resolves the head's name itself."""
    import socket
    import time

    file = run_dir / f"ray_head.{os.environ.get('SLURM_JOB_ID', 'local')}"
    if node_rank == 0:
        try:
            address = str(socket.getaddrinfo(head, None, socket.AF_INET)[0][4][0])
        except (OSError, IndexError):
            print(f"WARNING: {head} does not resolve to an IP here; Ray uses the name", file=sys.stderr)
            address = head
        partial = file.with_name(f"{file.name}.tmp")
        partial.write_text(address)
        partial.replace(file)  # whole or absent: a worker never reads half an address
        return address
    deadline = time.monotonic() + timeout_s
    while not file.is_file():
        if time.monotonic() > deadline:
            raise NemotronError(
                f"Node {node_rank} waited {timeout_s:g} s for the Ray head (node 0, {head}) to write its address to "
                f"{file}, and it did not write its address: the head failed to start (see node 0's log), or "
                f"{run_dir} is not a directory the job's nodes share (stage.output_dir on a shared filesystem)."
            )
        time.sleep(1 if timeout_s >= 5 else 0.05)
    return file.read_text().strip()


def _slurm_node() -> tuple[int, str]:
    if "SLURM_JOB_NODELIST" not in os.environ:
        return 0, "127.0.0.1"
    from submitit.slurm.slurm import _parse_node_list

    return int(os.environ.get("SLURM_NODEID", 0)), _parse_node_list(os.environ["SLURM_JOB_NODELIST"])[0]
