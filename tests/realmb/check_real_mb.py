"""Runs INSIDE .venv-realmb (Python 3.12, the real Megatron-Bridge 0.6.2 + megatron-core 0.19.2, on a CPU), started
by tests/backends/test_real_megatron_bridge.py with our source tree and tests/realmb/stubs on PYTHONPATH.

For each model x stage it does what a user's dry run and then the job's entry point do, with the real library:
`megatron_bridge.run(cfg, mode)` (stage.dry_run=true) writes the ConfigContainer values and the sbatch script; the
recipe and the Hugging Face repo named in that script are loaded as `megatron_bridge.main` loads them
(`load_recipe`, `apply_config`, `serve_hf_repo_offline`); every value we set must be on the container with its type;
Megatron-Bridge's own `runtime_config_update` must accept it (with the job's WORLD_SIZE); and our data must come
out of the real `GPTDataset` (pretraining) or `GPTSFTDatasetBuilder` (SFT, a collated batch).

Prints one JSON object: {"cases": {"model/mode[+extra]": {...facts or "error"}}, "perf_recipes": {...}}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# A CPU has no GPU to ask: validate() reads torch.cuda.get_device_properties(0) only to check that the MoE flex
# dispatcher suits the GPU (training/flex_dispatcher_backend.py:105 at 0.6.2). Answer as the launcher's GPU would.
GPUS = {
    "h100": ("NVIDIA H100 80GB HBM3", 9, 0),
    "b200": ("NVIDIA B200", 10, 0),
    "b300": ("NVIDIA B300", 10, 3),
    "gb200": ("NVIDIA GB200", 10, 0),
    "gb300": ("NVIDIA GB300", 10, 3),
    "vr200": ("NVIDIA VR200", 10, 0),
}


@contextlib.contextmanager
def gpu_answers(gpu_type: str | None):
    import torch

    name, major, minor = GPUS[(gpu_type or "h100").lower()]
    real = torch.cuda.get_device_properties
    torch.cuda.get_device_properties = lambda device=None: SimpleNamespace(name=name, major=major, minor=minor)
    try:
        yield
    finally:
        torch.cuda.get_device_properties = real


def compose(args: argparse.Namespace, model: str, mode: str, out: Path, extra: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import nemotron.cli  # noqa: F401  (registers the resolvers)

    runs = [f"run.data={args.pretrain_data if mode == 'pretrain' else args.sft_data}"]
    if mode == "sft":
        runs.append(f"run.model={args.base_model}")
    # the source tree's conf/ (this venv runs our code from PYTHONPATH, where no install maps it to nemotron.conf)
    with initialize_config_dir(str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        return hydra_compose(
            "config",
            [
                f"stage={mode}",
                f"model={model}",
                "launcher=gpu_2x8",
                f"artifacts.manifest.root={args.store}",
                f"model.hf_config={args.hf_config[model]}",
                "stage.dry_run=true",
                f"stage.output_dir={out}",
                *runs,
                *extra,
            ],
        )


def node_args(script: str) -> dict[str, str]:
    """The `--recipe/--mode/--config/--hf-*` words of the node command in the sbatch script."""
    from nemotron.backends import megatron_bridge as mb

    (line,) = [line for line in script.splitlines() if mb.ENTRY_MODULE in line]
    words = shlex.split(line)
    command = shlex.split(words[words.index("-c") + 1])
    return {word[2:]: command[i + 1] for i, word in enumerate(command) if word.startswith("--") and "=" not in word}


def mismatches(container: Any, values: dict[str, Any]) -> list[str]:
    """Every value we set, read back from the container: a skipped key or a changed type is listed."""
    wrong = []
    for section, fields in values.items():
        if section == "dataset":
            continue
        target = getattr(container, section, None)
        for key, value in fields.items():
            if target is None or not hasattr(target, key):
                wrong.append(f"{section}.{key}: no such field")
                continue
            actual = getattr(target, key)
            if actual != value or (value is not None and not isinstance(actual, type(value))):
                wrong.append(f"{section}.{key}: {actual!r} (set {value!r})")
    return wrong


def read_pretrain(container: Any, tokenizer: Any) -> dict[str, Any]:
    from megatron.bridge.data.utils import get_dataset_provider

    provider = get_dataset_provider(container.dataset)
    train, valid, _ = provider([4, 2, 0], container.dataset)
    sample = train[0]
    tokens = sample["tokens"].tolist()
    return {
        "dataset": type(train).__name__,
        "datasets": sorted({type(d).__name__ for d in getattr(train, "datasets", [train])}),
        "train_samples": len(train),
        "valid_samples": len(valid) if valid is not None else 0,
        "sample_length": len(tokens),
        "sample_tokens": tokens,
    }


def read_sft(container: Any, tokenizer: Any) -> dict[str, Any]:
    from megatron.bridge.data.builders import GPTSFTDatasetBuilder

    train, valid, _ = GPTSFTDatasetBuilder(config=container.dataset, tokenizer=tokenizer).build()
    batch = train.collate_fn([train[0], train[1 % len(train)]])
    return {
        "dataset": type(train).__name__,
        "train_rows": len(train),
        "valid_rows": len(valid) if valid is not None else 0,
        "batch_shape": list(batch["tokens"].shape),
        "loss_tokens": int(batch["loss_mask"].sum()),
        "first_tokens": batch["tokens"][0][:16].tolist(),
        "metadata_in_data_dir": sorted(p.name for p in Path(container.dataset.dataset_root).rglob("packed")),
    }


def check(args: argparse.Namespace, model: str, mode: str, extra: list[str]) -> dict[str, Any]:
    """Dry run -> the job's container -> runtime_config_update -> the real dataset over our data."""
    import yaml
    from megatron.bridge.training.config import runtime_config_update
    from megatron.bridge.training.tokenizers.tokenizer import build_tokenizer

    from nemotron.backends import megatron_bridge as mb

    out = Path(args.out) / f"{model}-{mode}{'-'.join([''] + [e.split('=')[-1] for e in extra])}"
    cfg = compose(args, model, mode, out, extra)
    assert mb.run(cfg, mode) is None  # dry run: writes megatron_bridge.yaml and the sbatch script
    script = (out / mb.SCRIPT_FILE).read_text()
    node = node_args(script)
    values = yaml.safe_load(Path(node["config"]).read_text())
    if node.get("hf-repo"):  # as main() does before the recipe loads
        os.environ.update(mb.serve_hf_repo_offline(node["hf-repo"], Path(node["hf-config"]), Path(args.hf_cache)))
    os.environ["WORLD_SIZE"] = str(cfg.launcher.nodes * cfg.launcher.gpus_per_node)  # torchrun's, in the job
    recipe_env = dict(mb.load_recipe(node["recipe"]).env_vars)
    container = mb.apply_config(mb.load_recipe(node["recipe"]), values)
    wrong = mismatches(container, values)
    before = {k: os.environ.get(k) for k in recipe_env}
    with gpu_answers(cfg.launcher.get("gpu_type")):
        runtime_config_update(container)
    exported = {k: os.environ.get(k) for k in recipe_env}
    for key, value in before.items():  # leave the next case a clean environment
        if value is None:
            os.environ.pop(key, None)
    tokenizer = build_tokenizer(container.tokenizer)
    if hasattr(container.dataset, "tokenizer"):
        container.dataset.tokenizer = tokenizer  # as training/setup.py does once the tokenizer exists
    data = (read_pretrain if mode == "pretrain" else read_sft)(container, tokenizer)
    m = container.model
    return {
        "recipe": node["recipe"],
        "mismatches": wrong,
        "dataset_type": type(container.dataset).__name__,
        "layout": [
            m.tensor_model_parallel_size,
            m.pipeline_model_parallel_size,
            m.context_parallel_size,
            m.expert_model_parallel_size,
            m.sequence_parallel,
        ],
        "batch": [container.train.global_batch_size, container.train.micro_batch_size],
        "data_parallel_size": container.data_parallel_size,
        "train_iters": container.train.train_iters,
        "save": container.checkpoint.save,
        "force_load_balancing": getattr(m, "moe_router_force_load_balancing", None),
        "recipe_env": {k: str(v) for k, v in recipe_env.items()},
        "exported_env": exported,
        "tokenizer_vocab": tokenizer.vocab_size,
        **data,
    }


def write_nano3_config(config_dir: Path) -> None:
    """config.json of Nemotron-3 Nano 30B-A3B as Megatron-Bridge's own bridge writes it from the architecture of its
    pretraining recipe (which needs no Hub access): what the SFT recipe then reads back through AutoBridge."""
    from megatron.bridge.models.nemotronh.nemotron_h_bridge import NemotronHBridge
    from megatron.bridge.recipes.nemotronh import nemotron_3_nano_pretrain_config

    hf = NemotronHBridge.megatron_to_hf_config(nemotron_3_nano_pretrain_config().model)
    hf.pop("auto_map", None)  # transformers 5 has NemotronH built in: no remote code to trust
    hf.setdefault("model_type", "nemotron_h")
    hf["vocab_size"] = hf.get("vocab_size") or 131072  # the recipe leaves it to the tokenizer; the checkpoint's
    (config_dir / "config.json").write_text(json.dumps(hf, indent=2, default=str))


def perf_table() -> dict[str, Any]:
    """Our PERF_RECIPES entries as the wheel has them: the function exists, builds, and has that layout."""
    import importlib

    from nemotron.backends import megatron_bridge as mb

    found = {}
    for base, (module, layouts) in mb.PERF_RECIPES.items():
        for gpu, gpus in layouts:
            perf = mb.perf_recipe_for(base, gpu, gpus)
            name = perf.recipe.partition(":")[2]
            cfg = getattr(importlib.import_module(module), name)()
            m, p = cfg.model, perf.parallelism
            found[perf.recipe] = {
                "wheel": [
                    m.tensor_model_parallel_size,
                    m.pipeline_model_parallel_size,
                    m.context_parallel_size,
                    m.expert_model_parallel_size,
                    m.expert_tensor_parallel_size,
                    m.sequence_parallel,
                    cfg.train.global_batch_size,
                    cfg.train.micro_batch_size,
                ],
                "ours": [
                    p.tensor_model_parallel_size,
                    p.pipeline_model_parallel_size,
                    p.context_parallel_size,
                    p.expert_model_parallel_size,
                    p.expert_tensor_parallel_size,
                    p.sequence_parallel,
                    perf.global_batch_size,
                    perf.micro_batch_size,
                ],
                "env_vars": sorted(cfg.env_vars),
                "benchmark_only": {f: _get(cfg, f) for f in mb.BENCHMARK_ONLY},
            }
    return found


def _get(container: Any, path: str) -> Any:
    section, _, field = path.partition(".")
    value = getattr(getattr(container, section, None), field, None)
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("store", "pretrain-data", "sft-data", "base-model", "out", "hf-cache"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--hf-config", action="append", default=[], help="MODEL=DIR")
    parser.add_argument("--case", action="append", default=[], help="MODEL/MODE[/OVERRIDE...]")
    args = parser.parse_args()
    args.hf_config = dict(item.split("=", 1) for item in args.hf_config)
    warnings.filterwarnings("ignore")
    if "nano3" in args.hf_config and not (Path(args.hf_config["nano3"]) / "config.json").exists():
        write_nano3_config(Path(args.hf_config["nano3"]))
    result: dict[str, Any] = {"cases": {}}
    for case in args.case:
        model, mode, *extra = case.split("/")
        try:
            result["cases"][case] = check(args, model, mode, extra)
        except Exception:  # reported per case: the outer test shows the traceback
            result["cases"][case] = {"error": traceback.format_exc()}
    try:
        result["perf_recipes"] = perf_table()
    except Exception:
        result["perf_recipes"] = {"error": traceback.format_exc()}
    sys.stdout.write("\nREALMB-RESULT " + json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
