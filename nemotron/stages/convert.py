"""`stage=convert`: a model in the other world's format, as a new ModelArtifact with its `format` and lineage.

    python -m nemotron stage=convert model=nano3 run.model=sft-model:v3              # Megatron -> Hugging Face
    python -m nemotron stage=convert model=nano3 run.model=my-hf-model:v1 stage.to=megatron
    python -m nemotron stage=convert model=nano3 launcher=gpu_2x8 stage.dry_run=true  # show, run nothing

Megatron-Bridge trains and saves Megatron checkpoints; vLLM (NeMo-RL's generation) and the eval stage read
Hugging Face models. With `model.backend=megatron` the conversion is Megatron-Bridge 0.6's AutoBridge, run in
a process of its own (`python -m nemotron.stages.convert`, the entry point at the end of this file):

- megatron -> hf: `AutoBridge.from_auto_config(checkpoint, model.hf_model)` builds the Hugging Face config from
  the checkpoint's `run_config.yaml` and the reference model's config (no reference weights are read), then
  `export_ckpt(checkpoint, out)` loads the latest `iter_*` on CPU (gloo) and saves the Hugging Face model
  (megatron/bridge/models/conversion/auto_bridge.py:344 and :1410 in megatron-bridge 0.6.2);
- hf -> megatron: `AutoBridge.import_ckpt(hf_dir, out)` (auto_bridge.py:1345).

`model=tiny` (the embedded torch backend) saves Hugging Face models already: `to=hf` copies the files through
(hard links where the filesystem allows) into a new version that records the no-op, so a pipeline can always
hand a Hugging Face model on; `to=megatron` is refused (nothing here trains Megatron checkpoints of it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict

from nemotron.artifacts import ModelArtifact
from nemotron.errors import NemotronError
from nemotron.job import load_input, output_dir, scale_config, stage_params

Format = Literal["hf", "megatron"]
Plan = Literal["copy", "export", "import"]
ENTRY_MODULE = "nemotron.stages.convert"
SCRIPT_FILE = "convert.sbatch"


class ConvertParams(BaseModel):
    """`conf/stage/convert.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None
    model_uri: str
    to: Format | None
    hf_model: str | None
    trust_remote_code: bool
    output_dir: str | None
    dry_run: bool


def run(cfg: DictConfig) -> ModelArtifact | None:
    params = stage_params(cfg, ConvertParams)
    params.hf_model = params.hf_model or cfg.model.get("hf_config") or cfg.model.get("hf_model")
    source = load_input(cfg, params.model_uri, ModelArtifact)
    backend = str(cfg.model.get("backend", "torch"))
    target = params.to or default_target(backend, source.format)
    plan = plan_conversion(backend, source, target, params.hf_model)
    if plan == "export":
        _check_not_gated(cfg, params.hf_model)
    out = output_dir(params.output_dir, ("model",))
    model_dir = out / "model"
    command = conversion_command(plan, source.path, model_dir, params)
    if params.dry_run:
        _show_dry_run(cfg, plan, source, target, command, out)
        return None
    if plan == "copy":
        copy_through(Path(source.path), model_dir)
    else:
        _require_megatron_bridge()
        out.mkdir(parents=True, exist_ok=True)
        _convert_in_subprocess(command, model_dir)
    return ModelArtifact(
        path=str(model_dir),
        name=artifact_name(cfg, params, source, target),
        step=source.step,
        final_loss=source.final_loss,
        format=target,
        stage=source.stage,
        tokenizer_uri=source.tokenizer_uri,
        base_model=source.uri,
        metadata={
            "converted_from": {"uri": source.uri, "format": source.format},
            "conversion": _DESCRIPTIONS[plan],
            **({"hf_model": params.hf_model} if plan == "export" else {}),
            **({"trained_steps": source.metadata["trained_steps"]} if "trained_steps" in source.metadata else {}),
        },
    )


_DESCRIPTIONS = {
    "copy": "none: the input is a Hugging Face model already; its files are copied through",
    "export": "Megatron-Bridge AutoBridge.from_auto_config + export_ckpt (megatron -> hf)",
    "import": "Megatron-Bridge AutoBridge.import_ckpt (hf -> megatron)",
}


def default_target(backend: str, source_format: str) -> Format:
    """The other world's format: a Megatron checkpoint becomes Hugging Face and the other way round; the
    embedded backend's models only ever become Hugging Face (a copy-through)."""
    if backend != "megatron" or source_format != "hf":
        return "hf"
    return "megatron"


def plan_conversion(backend: str, source: ModelArtifact, target: Format, hf_model: str | None) -> Plan:
    """What converting `source` to `target` means for this backend, or one paragraph saying why it cannot."""
    label = source.uri or source.path
    if source.format == "nemo_rl":
        raise NemotronError(
            f"{label} is a NeMo-RL checkpoint (format nemo_rl); stage=convert reads Megatron checkpoints and Hugging "
            "Face models. Convert it with NeMo-RL's own converter (examples/converters/convert_dcp_to_hf.py or "
            "convert_megatron_to_hf.py in the NeMo-RL checkout) and register the result (stage=register)."
        )
    if backend != "megatron":
        if target == "megatron" or source.format == "megatron":
            raise NemotronError(
                f"stage=convert stage.to={target} on {label} (format {source.format}): model.backend={backend} has "
                "no Megatron format; only Megatron-Bridge (model.backend=megatron, e.g. model=nano3) converts Megatron "
                "checkpoints. The embedded backend's models are Hugging Face models, so stage.to=hf copies them "
                "through."
            )
        return "copy"
    if source.format == target:
        raise NemotronError(
            f"{label} is already in the {target} format, so there is nothing to convert. Pass it on as it is, or set "
            f"stage.to={'megatron' if target == 'hf' else 'hf'}."
        )
    if target == "hf" and not hf_model:
        raise NemotronError(
            f"Converting the Megatron checkpoint {label} to Hugging Face needs the Hugging Face model whose config "
            "describes its architecture (AutoBridge.from_auto_config reads it; no weights are downloaded): set "
            "model.hf_config (a local copy), model.hf_model or stage.hf_model, e.g. "
            "stage.hf_model=nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16."
        )
    return "export" if target == "hf" else "import"


def _check_not_gated(cfg: DictConfig, hf_model: str | None) -> None:
    """A gated reference repo (model.recipe.hf_repo_gated, e.g. meta-llama) needs a local copy: the job would
    fail to read its config without a token, or with no network on the node."""
    recipe = cfg.model.get("recipe") or {}
    if recipe.get("hf_repo_gated") and hf_model == cfg.model.get("hf_model") and not cfg.model.get("hf_config"):
        raise NemotronError(
            f"The conversion reads {hf_model}'s config, a gated Hugging Face repository. Download its config and "
            f"tokenizer once where you have access (huggingface-cli download {hf_model} --exclude '*.safetensors' "
            "'*.pth' --local-dir DIR) and set model.hf_config=DIR: the job then downloads nothing."
        )


def artifact_name(cfg: DictConfig, params: ConvertParams, source: ModelArtifact, target: Format) -> str:
    """`stage.name`, else the input's name with `-<format>` before the scale suffix (sft-model-hf-tiny)."""
    scale = scale_config(cfg)
    if params.name:
        return scale.artifact_name(params.name)
    base = source.name or Path(source.path).name
    if scale.suffix and base.endswith(scale.suffix):
        base = base[: -len(scale.suffix)]
    return scale.artifact_name(f"{base}-{target}")


def copy_through(source: Path, target: Path) -> None:
    """The files of `source` under `target`: hard links where the filesystem allows (no bytes copied), else
    copies. Either way the new version owns its directory, so deleting the input's never touches it."""
    from nemotron.training.checkpoint import copy_model

    if not source.is_dir():
        raise NemotronError(f"The model directory {source} does not exist on this host.")
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_model(source, target)


def conversion_command(plan: Plan, source: str, target: Path, params: ConvertParams) -> list[str]:
    """The Megatron-Bridge conversion as its own process ([] for a copy-through)."""
    if plan == "copy":
        return []
    command = [sys.executable, "-m", ENTRY_MODULE, "--to", "hf" if plan == "export" else "megatron",
               "--source", str(source), "--target", str(target)]  # fmt: skip
    if plan == "export":
        command += ["--hf-model", str(params.hf_model)]
    if params.trust_remote_code:
        command.append("--trust-remote-code")
    return command


def _require_megatron_bridge() -> None:
    from nemotron.backends.megatron_bridge import require_megatron_bridge

    require_megatron_bridge()


def _convert_in_subprocess(command: list[str], model_dir: Path) -> None:
    """Run the conversion (its own process: AutoBridge sets up and tears down a process group); logs to stderr."""
    result = subprocess.run(command, stdout=sys.stderr, check=False)
    if result.returncode != 0 or not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise NemotronError(
            f"The Megatron-Bridge conversion failed (exit {result.returncode}) and nothing was committed; its messages "
            f"are above. The command: {shlex.join(command)}"
        )


def _show_dry_run(cfg: DictConfig, plan: Plan, source: ModelArtifact, target: Format, command: list[str],
                  out: Path) -> None:  # fmt: skip
    """What the stage would do; with model.backend=megatron also the one-node Slurm submission."""
    lines = [f"# ---- stage=convert (dry run, nothing converted or committed): {source.uri or source.path} "
             f"({source.format}) -> {target}: {_DESCRIPTIONS[plan]}"]  # fmt: skip
    if plan != "copy":
        from nemotron.backends import _cluster

        cluster = _cluster.cluster_from_config(cfg, "Megatron-Bridge's conversion")
        one_node = dataclasses.replace(cluster, nodes=1)
        workdir = os.getcwd()
        mounts = _cluster.container_mounts(one_node, [workdir, str(out), str(source.path)])
        node_command = shlex.join([one_node.python, *command[1:]])
        script = [*_cluster.sbatch_header(one_node, "nemotron-convert", out), "",
                  f"{_cluster.srun(one_node, mounts, workdir, '--nodes=1', '--ntasks=1')} {node_command}"]  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / SCRIPT_FILE).write_text("\n".join(script) + "\n")
        lines += [f"# ---- sbatch script: {out / SCRIPT_FILE}", *script]
    else:
        lines.append(f"# copy-through of {source.path} into {out / 'model'} (hard links)")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


# -- the entry point the stage runs (inside the Megatron-Bridge container) ----------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m nemotron.stages.convert --to hf|megatron --source DIR --target DIR [--hf-model ID]`."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}", description=main.__doc__)
    parser.add_argument("--to", choices=("hf", "megatron"), required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--hf-model", help="the Hugging Face model whose config describes the architecture")
    parser.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)
    try:
        from megatron.bridge import AutoBridge
    except ModuleNotFoundError as exc:
        from nemotron.backends.megatron_bridge import NOT_INSTALLED

        raise SystemExit(NOT_INSTALLED) from exc
    if args.to == "hf":
        if not args.hf_model:
            parser.error("--to hf needs --hf-model")
        bridge = AutoBridge.from_auto_config(args.source, args.hf_model, trust_remote_code=args.trust_remote_code)
        bridge.export_ckpt(args.source, args.target)
        _add_tokenizer(args.hf_model, Path(args.target), args.trust_remote_code)
    else:
        AutoBridge.import_ckpt(args.source, args.target, trust_remote_code=args.trust_remote_code)


def _add_tokenizer(hf_model: str, target: Path, trust_remote_code: bool) -> None:
    """The reference model's tokenizer next to the exported weights, where the export did not write one: vLLM and
    the eval stage read the model directory alone."""
    if any((target / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(hf_model, trust_remote_code=trust_remote_code).save_pretrained(str(target))


if __name__ == "__main__":
    main()
