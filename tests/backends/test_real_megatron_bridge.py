"""Our Megatron-Bridge backend against the REAL Megatron-Bridge 0.6.2 + megatron-core 0.19.2 (Python 3.12, CPU).

Data come from our own stages (`python -m nemotron stage=pretrain_data`, `stage=sft_data`, this interpreter); the
configs from our backend's dry run; tests/realmb/check_real_mb.py then runs in .venv-realmb (scripts/realmb_venv.sh,
built by .ci/run) and loads them into the real recipes, runs the real runtime_config_update and reads our data
through the real GPTDataset / GPTSFTDatasetBuilder. Skipped, with the reason, where Python 3.12 or that venv is
missing. Nothing here needs a GPU, the network or a Hugging Face token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("NEMOTRON_REALMB_VENV", ROOT / ".venv-realmb"))
PYTHON = VENV / "bin" / "python"
CHECKER = ROOT / "tests" / "realmb" / "check_real_mb.py"
STUBS = ROOT / "tests" / "realmb" / "stubs"
NANO_PRETRAIN = "megatron.bridge.recipes.nemotronh:nemotron_3_nano_pretrain_config"
NANO_H100 = "megatron.bridge.perf_recipes.nemotronh:nemotron_3_nano_pretrain_16gpu_h100_bf16_config"
H100 = "launcher.gpu_type=h100"  # launcher=gpu_2x8's own: its nodes are H100
PLAIN = "launcher.gpu_type=null"  # no GPU type: the model's recipe with model.parallelism and model.batch
CASES = {
    f"nano3/pretrain/{PLAIN}": NANO_PRETRAIN,
    "nano3/sft": "megatron.bridge.recipes.nemotronh:nemotron_3_nano_sft_config",
    "llama32_1b/pretrain": "megatron.bridge.recipes.llama:llama32_1b_pretrain_config",
    "llama32_1b/sft": "megatron.bridge.recipes.llama:llama32_1b_sft_config",
    f"nano3/pretrain/{H100}": NANO_H100,
}
# Llama 3.2 1B's published architecture (config.json of meta-llama/Llama-3.2-1B, a gated repo we cannot download
# here): what the llama32_1b recipes read through AutoBridge when they load.
LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": True,
    "vocab_size": 128256,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
}


def _skip_reason() -> str | None:
    if not PYTHON.exists():
        return (
            f"no {VENV}: the real-Megatron-Bridge test runs in a Python 3.12 venv that scripts/realmb_venv.sh builds "
            "(.ci/run does); it found no Python 3.12 here or was not run"
        )
    if not (VENV / ".realmb-stamp").exists():
        return f"{VENV} is incomplete (no .realmb-stamp): rerun scripts/realmb_venv.sh"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


def _nemotron(cwd: Path, *args: str) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "nemotron", *args], cwd=cwd, capture_output=True, text=True, timeout=300, input=""
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {line["name"]: line for line in map(json.loads, result.stdout.splitlines())}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """Tiny pretraining and SFT data from our stages, a base model for SFT, and local HF config dirs."""
    from nemotron import ModelArtifact, log_artifact, setup_artifact_tracking

    base = tmp_path_factory.mktemp("realmb")
    store = base / "store"
    root = f"artifacts.manifest.root={store}"
    pre = _nemotron(base, "stage=pretrain_data", "scale.max_rows_per_source=3000", "stage.shard_rows=300", root)
    sft = _nemotron(
        base,
        "stage=sft_data",
        "+run.tokenizer=tokenizer-tiny",
        "data.tokenizer.name_or_path=${art:tokenizer,path}",
        "stage.tokenizer_uri=${art:tokenizer,uri}",
        "scale.max_rows_per_source=500",
        root,
    )
    checkpoint = base / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "latest_checkpointed_iteration.txt").write_text("10\n")
    tracking = setup_artifact_tracking({"artifacts": {"manifest": {"root": str(store)}}})
    model = log_artifact(ModelArtifact(path=str(checkpoint), name="base-tiny", format="megatron", step=10), tracking)
    hf_config = {}
    for name in ("nano3", "llama32_1b"):  # our tokenizer (the data's) + the model's config.json, as model.hf_config
        hf_config[name] = base / f"hf-{name}"
        shutil.copytree(pre["tokenizer-tiny"]["path"], hf_config[name])
    (hf_config["llama32_1b"] / "config.json").write_text(json.dumps(LLAMA32_1B))  # nano3's: from the wheel
    return {
        "base": base,
        "store": store,
        "pre": pre["pretrain-data-tiny"],
        "sft": sft["sft-data-tiny"],
        "model": model.uri,
        "hf_config": hf_config,
    }


@pytest.fixture(scope="module")
def real(made) -> dict:
    """The checker's findings, one run of the 3.12 interpreter for all cases."""
    base = made["base"]
    args = [
        str(PYTHON),
        str(CHECKER),
        "--store",
        str(made["store"]),
        "--pretrain-data",
        made["pre"]["uri"],
        "--sft-data",
        made["sft"]["uri"],
        "--base-model",
        made["model"],
        "--out",
        str(base / "runs"),
        "--hf-cache",
        str(base / "hf-cache"),
        *[f"--hf-config={name}={path}" for name, path in made["hf_config"].items()],
        *[f"--case={case}" for case in CASES],
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMOTRON_", "PYTHON", "HF_", "WANDB_"))}
    env |= {
        "PYTHONPATH": f"{ROOT}{os.pathsep}{STUBS}",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(base / "hf-cache"),
        "WANDB_MODE": "offline",
    }
    result = subprocess.run(args, cwd=base, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REALMB-RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout[-2000:], result.stderr[-6000:])
    return json.loads(lines[-1].removeprefix("REALMB-RESULT "))


@pytest.mark.parametrize("case", list(CASES))
def test_our_config_loads_into_the_real_recipe_and_passes_runtime_config_update(real, case):
    """No key skipped, no type changed, and Megatron-Bridge's own validation accepts the result."""
    found = real["cases"][case]
    assert "error" not in found, found.get("error")
    assert found["recipe"] == CASES[case]
    assert found["mismatches"] == []
    assert found["data_parallel_size"] * found["layout"][0] * found["layout"][1] * found["layout"][2] == 16


def _shard_tokens(made: dict) -> set[int]:
    from nemotron.data.indexed import IndexedDatasetReader

    data = Path(made["pre"]["path"])
    blend = json.loads((data / "blend.json").read_text())
    ids: set[int] = set()
    for prefix in blend["train"][1::2]:
        reader = IndexedDatasetReader(data / prefix)  # prefixes are relative to blend.json
        for index in range(len(reader)):
            ids.update(int(t) for t in reader[index])
    return ids


@pytest.mark.parametrize("case", [f"nano3/pretrain/{PLAIN}", "llama32_1b/pretrain", f"nano3/pretrain/{H100}"])
def test_the_real_gpt_dataset_reads_our_shards(real, made, case):
    found = real["cases"][case]
    assert "error" not in found, found.get("error")
    assert found["dataset_type"] == "GPTDatasetConfig" and found["dataset"] == "BlendedDataset"
    assert found["datasets"] == ["GPTDataset"]
    assert found["sample_length"] == 8192  # model.max_seq_len
    assert found["train_samples"] >= 4 and found["valid_samples"] >= 2
    assert set(found["sample_tokens"]) <= _shard_tokens(made) and len(set(found["sample_tokens"])) > 10


@pytest.mark.parametrize("case", ["nano3/sft", "llama32_1b/sft"])
def test_the_real_sft_builder_reads_our_packed_parquet(real, made, case):
    import pyarrow.parquet as pq

    found = real["cases"][case]
    assert "error" not in found, found.get("error")
    assert found["dataset_type"] == "GPTSFTDatasetConfig"
    splits = Path(made["sft"]["path"]) / "splits"
    rows = pq.read_table(sorted((splits / "train").glob("*.parquet"))).to_pylist()
    assert found["train_rows"] == len(rows) and found["valid_rows"] >= 1
    assert found["batch_shape"] == [2, 2048]  # padded to the pack size (the recipe's pad_to_max_length)
    assert found["loss_tokens"] > 0
    assert found["first_tokens"] in [row["input_ids"][:16] for row in rows]
    assert found["metadata_in_data_dir"] == []  # nothing written into the committed artifact


def test_the_h100_perf_recipe_trains_with_the_model_recipes_policy(real):
    """Started from nemotron_3_nano_pretrain_16gpu_h100_bf16_config: its layout and env_vars, but the model recipe's
    training length, our checkpoint dir and natural MoE routing (not the 50-step benchmark's)."""
    perf, plain = real["cases"][f"nano3/pretrain/{H100}"], real["cases"][f"nano3/pretrain/{PLAIN}"]
    assert "error" not in perf, perf.get("error")
    assert perf["layout"] == [1, 1, 1, 8, False] and perf["batch"] == [1024, 1]
    assert plain["layout"] == [4, 1, 1, 8, True] and plain["batch"] == [768, 1]  # model=nano3's own
    assert perf["train_iters"] == plain["train_iters"] != 50
    assert perf["force_load_balancing"] is False
    assert perf["save"].endswith("/nano3-pretrain-h100/checkpoints")  # ours, not the benchmark's None
    assert perf["recipe_env"] and perf["exported_env"] == perf["recipe_env"]  # exported by runtime_config_update


def test_our_perf_recipe_table_is_the_wheels(real):
    table = real["perf_recipes"]
    assert "error" not in table, table.get("error")
    assert NANO_H100 in table
    for name, entry in table.items():
        assert entry["ours"] == entry["wheel"], name
        assert entry["env_vars"], name
        assert entry["benchmark_only"]["train.train_iters"] == 50, name  # why a job restores the model's policy
