"""Megatron-Bridge backend: the dry-run ConfigContainer and sbatch script for model=nano3 on 2 nodes x 8 GPUs.

Field names are Megatron-Bridge v0.6's (../shared/notes/formats.md sections 4.3, 5.1, 7): the top-level
sections of `ConfigContainer`, `GPTDatasetConfig` blend fields, `GPTSFTDatasetConfig` + `PackedSequenceSpecs`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.backend_inputs import SECRET, commit_inputs, compose

from nemotron.backends import megatron_bridge
from nemotron.errors import NemotronError

pytestmark = pytest.mark.unit

CONFIG_CONTAINER_FIELDS = {
    "rng",
    "train",
    "model",
    "optimizer",
    "ddp",
    "validation",
    "scheduler",
    "dataset",
    "logger",
    "tokenizer",
    "checkpoint",
    "dist",
    "ft",
    "straggler",
    "profiling",
    "peft",
    "comm_overlap",
    "mixed_precision",
}
# launcher=gpu_2x8 is 16 H100: model=nano3 pretraining starts from nemotron_3_nano_pretrain_16gpu_h100_bf16_config
H100_RECIPE = "megatron.bridge.perf_recipes.nemotronh:nemotron_3_nano_pretrain_16gpu_h100_bf16_config"
H100_PARALLEL = {
    "tensor_model_parallel_size": 1,
    "pipeline_model_parallel_size": 1,
    "context_parallel_size": 1,
    "expert_model_parallel_size": 8,
    "expert_tensor_parallel_size": 1,
    "sequence_parallel": False,
}
PROVIDER_PARALLEL = {  # model=nano3's own model.parallelism (SFT, and pretraining with launcher.gpu_type=null)
    "tensor_model_parallel_size": 4,
    "pipeline_model_parallel_size": 1,
    "context_parallel_size": 1,
    "expert_model_parallel_size": 8,
    "expert_tensor_parallel_size": 1,
    "sequence_parallel": True,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return commit_inputs(tmp_path_factory.mktemp("mb"))


@pytest.fixture(autouse=True)
def wandb_key(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)


def dry_run(inputs: dict, tmp_path: Path, mode: str, *overrides: str) -> tuple[dict, str]:
    """Run the stage's backend in dry-run mode; (the written config as a dict, the sbatch script)."""
    stage = "pretrain" if mode == "pretrain" else "sft"
    runs = [f"run.data={inputs[mode]}"] + ([f"run.model={inputs['model']}"] if mode == "sft" else [])
    cfg = compose(inputs["store"], stage, *runs, "stage.dry_run=true", f"stage.output_dir={tmp_path}", *overrides)
    assert megatron_bridge.run(cfg, mode) is None
    config = yaml.safe_load((tmp_path / megatron_bridge.CONFIG_FILE).read_text())
    return config, (tmp_path / megatron_bridge.SCRIPT_FILE).read_text()


def test_hyperparameters_not_given_are_the_recipes(inputs, tmp_path):
    """model=nano3 sets model.train.pretrain.* to null: the tiny model's stage defaults never reach a 30B run,
    neither the learning rate nor the eval interval (recipe 500), eval iters (32), checkpoint interval (200),
    log interval or gradient clipping."""
    config, _ = dry_run(inputs, tmp_path, "pretrain")
    assert config["train"] == {"global_batch_size": 1024, "micro_batch_size": 1}  # the H100 perf recipe's
    assert not {"lr", "min_lr", "weight_decay", "clip_grad"} & set(config["optimizer"])
    assert set(config["scheduler"]) == {"lr_decay_style"}
    assert config["validation"] == {}
    assert "save_interval" not in config["checkpoint"]
    assert "log_interval" not in config["logger"]
    sft, _ = dry_run(inputs, tmp_path / "sft", "sft")
    assert sft["validation"] == {} and "save_interval" not in sft["checkpoint"]


def test_pretrain_config_has_megatron_bridge_fields_and_values(inputs, tmp_path, capsys):
    config, _ = dry_run(
        inputs, tmp_path, "pretrain", "stage.steps=1000", "stage.lr=2e-4", "stage.min_lr=2e-5",
        "stage.eval_every=250", "stage.eval_batches=16", "stage.checkpoint_every=500",
    )  # fmt: skip
    assert set(config) <= CONFIG_CONTAINER_FIELDS
    assert {key: config["model"][key] for key in H100_PARALLEL} == H100_PARALLEL
    assert config["model"]["seq_length"] == config["dataset"]["seq_length"] == 8192
    assert config["train"] == {"train_iters": 1000, "global_batch_size": 1024, "micro_batch_size": 1}
    assert config["optimizer"]["lr"] == 2e-4 and config["optimizer"]["min_lr"] == 2e-5
    assert config["scheduler"]["lr_decay_iters"] == 1000
    assert "lr_warmup_iters" not in config["scheduler"]  # not given: the recipe's
    assert config["validation"] == {"eval_interval": 250, "eval_iters": 16}  # given on the command line
    assert config["checkpoint"]["save_interval"] == 500
    # blend.json (per split) -> blend_per_split with split=None and blend=None (MCore's assertion)
    assert config["dataset"]["path_to_cache"] == str(tmp_path / "index_cache")
    shards = Path(config["dataset"]["blend_per_split"][0][0][0]).parent
    assert config["dataset"]["blend"] is None and config["dataset"]["split"] is None
    assert config["dataset"]["blend_per_split"] == [
        [[str(shards / "shard_000000"), str(shards / "shard_000001")], [0.7, 0.3]],
        [[str(shards / "shard_000002")], [1.0]],
        None,
    ]
    assert "per_split_data_args_path" not in config["dataset"]  # no such field in Megatron-Bridge v0.6
    assert config["checkpoint"]["save"] == config["checkpoint"]["load"] == str(tmp_path / "checkpoints")
    assert config["tokenizer"] == {
        "tokenizer_type": "HuggingFaceTokenizer",
        "tokenizer_model": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    }
    assert config["logger"]["wandb_project"] == "nemotron-tests"
    assert config["logger"]["wandb_entity"] == "team"
    assert config["logger"]["wandb_exp_name"] == "pretrain-model"
    printed = capsys.readouterr().out
    assert "tensor_model_parallel_size: 1" in printed and "#SBATCH --nodes=2" in printed
    assert H100_RECIPE in printed  # the dry run names the recipe it starts from


def test_sft_config_uses_packed_parquet_specs(inputs, tmp_path):
    config, script = dry_run(inputs, tmp_path, "sft")
    dataset = config["dataset"]
    sft_root = Path(dataset["dataset_root"])
    assert dataset["seq_length"] == config["model"]["seq_length"] == 4096  # the data's pack_size
    assert dataset["enable_offline_packing"] is True
    assert dataset["offline_packing_specs"] == {
        "packed_sequence_size": 4096,
        "tokenizer_model_name": "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        "packed_train_data_path": f"{sft_root}/splits/train/",
        "packed_val_data_path": f"{sft_root}/splits/valid/",
        # in this run's dir: Megatron-Bridge would otherwise create <dataset_root>/packed/... (gpt_sft.py:802-825)
        "packed_metadata_path": str(tmp_path / "packed" / "4096_metadata.jsonl"),
        "pad_seq_to_mult": 4,  # lcm(1, CP*TP=4) with sequence parallel
    }
    assert dataset["dataset_kwargs"] == {"pad_to_max_length": True}  # the recipes' (dataset_utils.py:131)
    specs = dataset["offline_packing_specs"].values()
    assert not any(str(value).startswith(str(sft_root / "packed")) for value in specs)
    assert dataset["do_validation"] is True and dataset["do_test"] is False
    assert config["train"]["micro_batch_size"] == 1
    assert config["model"]["calculate_per_token_loss"] is True
    assert config["checkpoint"]["pretrained_checkpoint"].endswith("checkpoint")
    assert "nemotron_3_nano_sft_config --mode sft" in script


def test_sbatch_script_runs_torchrun_per_node_with_container_flags_on_srun(inputs, tmp_path, capsys):
    _, script = dry_run(inputs, tmp_path, "pretrain")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    header = [line for line in lines if line.startswith("#SBATCH")]
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8"} <= set(header)
    assert "#SBATCH --partition=batch" in header and "#SBATCH --account=my-account" in header
    assert not any("container" in line for line in header)  # pyxis flags on srun only
    (srun,) = [line for line in lines if line.startswith("srun ")]
    assert "--container-image=nvcr.io#nvidia/nemo:26.08" in srun  # model.containers.megatron_bridge
    mounts = next(part for part in srun.split() if part.startswith("--container-mounts="))
    assert "/lustre:/lustre" in mounts and str(tmp_path) in mounts  # the run dir is mounted
    assert "python3 -m torch.distributed.run --nnodes=$SLURM_NNODES --node-rank=$SLURM_NODEID" in srun
    assert "--nproc-per-node=8" in srun and "-m nemotron.backends.megatron_bridge" in srun
    assert "export NCCL_DEBUG=WARN" in lines


def test_no_secret_in_script_config_or_output(inputs, tmp_path, capsys):
    dry_run(inputs, tmp_path, "pretrain")
    printed = capsys.readouterr()
    for text in (printed.out, printed.err, *(p.read_text() for p in tmp_path.iterdir() if p.is_file())):
        assert SECRET not in text
    assert "WANDB_API_KEY" in (tmp_path / megatron_bridge.SCRIPT_FILE).read_text()  # named, never valued


def hf_config_dir(base: Path) -> Path:
    """A local copy of a Hugging Face model's files without weights (what model.hf_config names)."""
    import json

    base.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "vocab_size": 1000,
              "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}  # fmt: skip
    (base / "config.json").write_text(json.dumps(config))
    (base / "tokenizer_config.json").write_text("{}")
    return base


def test_llama_recipe(inputs, tmp_path):
    local = hf_config_dir(tmp_path / "llama-config")
    config, script = dry_run(inputs, tmp_path / "run", "pretrain", "model=llama32_1b", f"model.hf_config={local}")
    assert config["model"]["tensor_model_parallel_size"] == 1
    assert config["train"]["micro_batch_size"] == 2
    assert "megatron.bridge.recipes.llama:llama32_1b_pretrain_config" in script
    # the recipe's gated repo is served from the local copy: the job downloads nothing
    assert f"--hf-repo meta-llama/Llama-3.2-1B --hf-config {local}" in script
    assert config["tokenizer"]["tokenizer_model"] == str(local)
    assert str(local) in next(line for line in script.splitlines() if line.startswith("srun "))  # mounted


def test_gated_recipe_without_a_local_config_is_refused(inputs, tmp_path):
    """llama32_1b's recipes call AutoBridge.from_hf_pretrained("meta-llama/Llama-3.2-1B") when they load: a
    gated repo. Without model.hf_config the job would fail at start, after its time in the queue."""
    for mode in ("pretrain", "sft"):
        with pytest.raises(NemotronError, match="gated repository.*set model.hf_config"):
            dry_run(inputs, tmp_path / mode, mode, "model=llama32_1b")
    with pytest.raises(NemotronError, match="has no config.json"):
        dry_run(inputs, tmp_path / "empty", "pretrain", "model=llama32_1b", f"model.hf_config={tmp_path}")
    assert not (tmp_path / "pretrain" / megatron_bridge.SCRIPT_FILE).exists()


def test_hf_repo_is_served_offline_from_the_local_copy(tmp_path):
    """The entry point's Hub cache: transformers (which AutoBridge calls) reads the gated repo's config offline."""
    import os
    import subprocess
    import sys

    local = hf_config_dir(tmp_path / "llama-config")
    env = megatron_bridge.serve_hf_repo_offline("meta-llama/Llama-3.2-1B", local, tmp_path / "hub")
    assert megatron_bridge.serve_hf_repo_offline("meta-llama/Llama-3.2-1B", local, tmp_path / "hub") == env  # again
    code = "import transformers as t; print(t.AutoConfig.from_pretrained('meta-llama/Llama-3.2-1B').hidden_size)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "64"


def test_sequence_length_must_split_over_tp_sp_and_cp(inputs, tmp_path):
    """A packing/TP mismatch: the data's pack_size must divide evenly over TP ranks (sequence parallel) and 2*CP
    chunks (Megatron-Bridge training/config.py:1436), refused before anything is written."""
    from nemotron import SFTDataArtifact, load_artifact, log_artifact, setup_artifact_tracking

    tracking = setup_artifact_tracking({"artifacts": {"manifest": {"root": str(inputs["store"])}}})
    sft_path = Path(load_artifact(inputs["sft"], str(inputs["store"])).path)
    odd = log_artifact(SFTDataArtifact(path=str(sft_path), name="sft-data-odd", pack_size=4098, num_shards=2), tracking)
    cfg = compose(inputs["store"], "sft", f"run.data={odd.uri}", f"run.model={inputs['model']}",
                  "stage.dry_run=true", f"stage.output_dir={tmp_path}")  # fmt: skip
    with pytest.raises(NemotronError, match="sequence length 4098 .* not a multiple of 4"):
        megatron_bridge.run(cfg, "sft")
    assert not (tmp_path / megatron_bridge.SCRIPT_FILE).exists()
    with pytest.raises(NemotronError, match="sequence length 8192 .* not a multiple of 24"):  # lcm(2*3, 3*8)
        dry_run(inputs, tmp_path / "cp", "pretrain", "model.parallelism.context_parallel_size=3",
                "model.parallelism.tensor_model_parallel_size=8", "launcher.nodes=3")  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["launcher.gpus_per_node=6"], "gives 12 GPUs, which the model's parallelism cannot use"),
        # without a GPU type the model's own parallelism and batch apply, and are checked
        (["launcher.gpu_type=null", "model.parallelism.tensor_model_parallel_size=3"], "tensor_model_parallel_size=3"),
        (
            ["launcher.gpu_type=null", "model.parallelism.expert_model_parallel_size=32"],
            "Expert parallelism needs 32 GPUs",
        ),
        (["launcher.python=null"], "launcher.python is not"),
        (["launcher.nodes=0"], "launcher.nodes=0"),
        (["launcher.tasks_per_node=8"], "launcher.tasks_per_node=1"),
        (
            ["launcher.gpu_type=null", "model.batch.pretrain.global_batch_size=102"],
            "global_batch_size=102 is not a multiple",
        ),
    ],
)
def test_bad_input_is_a_clear_error(inputs, tmp_path, overrides, message):
    with pytest.raises(NemotronError, match=message.replace("(", r"\(").replace(".", r"\.")):
        dry_run(inputs, tmp_path, "pretrain", *overrides)
    assert not (tmp_path / megatron_bridge.SCRIPT_FILE).exists()


def test_sft_needs_micro_batch_one(inputs, tmp_path):
    with pytest.raises(NemotronError, match="micro batch of 1"):
        dry_run(inputs, tmp_path, "sft", "model.batch.sft.micro_batch_size=2")


def test_dry_run_without_a_cluster_profile(inputs, tmp_path):
    with pytest.raises(NemotronError, match="no cluster profile is selected"):
        dry_run(inputs, tmp_path, "pretrain", "launcher=local")


def test_pad_seq_to_mult_and_blend_lists():
    Parallelism = megatron_bridge.Parallelism
    parallel = Parallelism(tensor_model_parallel_size=4, context_parallel_size=2, sequence_parallel=True)
    assert megatron_bridge.pad_seq_to_mult(parallel) == 8  # lcm(2*CP, CP*TP)
    assert megatron_bridge.pad_seq_to_mult(Parallelism(tensor_model_parallel_size=4)) == 1
    assert megatron_bridge._blend_from_list("1 /a 3 /b", Path("/data")) == [["/a", "/b"], [1.0, 3.0]]
    assert megatron_bridge._blend_from_list(["/a", "/b"], Path("/data")) == [["/a", "/b"], None]
    assert megatron_bridge._blend_from_list(["/a"], Path("/data")) == [["/a"], None]
    assert megatron_bridge._blend_from_list(None, Path("/data")) is None


def test_real_run_without_megatron_bridge_says_so(tmp_path):
    if _has_megatron_bridge():
        pytest.skip("Megatron-Bridge is installed here")
    with pytest.raises(SystemExit, match="not installed in this.*needs Megatron-Bridge 0.6 or newer"):
        megatron_bridge.main(
            [
                "--recipe",
                "megatron.bridge.recipes.nemotronh:x",
                "--mode",
                "pretrain",
                "--config",
                str(tmp_path / "c.yaml"),
            ]
        )
    with pytest.raises(NemotronError, match="run inside the NeMo container"):
        megatron_bridge.load_recipe("megatron.bridge.recipes.nemotronh:nemotron_3_nano_pretrain_config")


def _has_megatron_bridge() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("megatron.bridge") is not None
    except ModuleNotFoundError:
        return False


def test_real_run_without_megatron_bridge_fails_first(inputs, tmp_path):
    """Without stage.dry_run the stage runs torchrun on Megatron-Bridge, which is not installed here."""
    if _has_megatron_bridge():
        pytest.skip("Megatron-Bridge is installed here")
    cfg = compose(
        inputs["store"], "pretrain", f"run.data={inputs['pretrain']}", f"stage.output_dir={tmp_path}", "launcher=local"
    )
    with pytest.raises(NemotronError, match="not installed in this environment.*Run it in nvcr.io#nvidia/nemo:26.08"):
        megatron_bridge.run(cfg, "pretrain")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("version", "ok"), [("0.5.0", False), ("0.6.0", True), ("0.6.2", True), ("1.0.0rc1", True)])
def test_job_start_checks_the_megatron_bridge_version(tmp_path, monkeypatch, version, ok):
    """A container with an older Megatron-Bridge (found through its installed distribution's metadata, as in a
    real image) is one paragraph naming the image, before torchrun starts."""
    if _has_megatron_bridge():
        pytest.skip("Megatron-Bridge is installed here")
    info = tmp_path / f"megatron_bridge-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: megatron-bridge\nVersion: {version}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    if ok:
        megatron_bridge.require_megatron_bridge("img")
        return
    with pytest.raises(NemotronError, match=f"has Megatron-Bridge {version}.*needs Megatron-Bridge 0.6 or newer"):
        megatron_bridge.require_megatron_bridge("nvcr.io#nvidia/nemo:26.08")


def test_fields_exist_in_megatron_core(inputs, tmp_path):
    """The sections Megatron-Core defines (optimizer, model parallelism, GPT dataset) use its field names;
    the rest (train, validation, scheduler, logger, checkpoint, tokenizer) are megatron.training's, checked
    against formats.md above."""
    pytest.importorskip("megatron.core", reason="megatron-core is in the dev extra")
    import dataclasses
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no Transformer Engine / Apex here
        from megatron.core.datasets.gpt_dataset import GPTDatasetConfig
        from megatron.core.optimizer import OptimizerConfig
        from megatron.core.transformer.transformer_config import TransformerConfig

    def names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    config, _ = dry_run(inputs, tmp_path, "pretrain")
    assert set(config["optimizer"]) <= names(OptimizerConfig)
    assert set(config["model"]) - {"seq_length"} <= names(TransformerConfig)  # seq_length: the model provider's
    assert set(config["dataset"]) - {"seq_length"} <= names(GPTDatasetConfig)  # seq_length: Megatron-Bridge's
    sft, _ = dry_run(inputs, tmp_path / "sft", "sft")
    assert set(sft["model"]) - {"seq_length"} <= names(TransformerConfig)


def test_launcher_check_reads_model_parallelism_only():
    """The Slurm launcher's check uses `model.parallelism` when the model has one, not sizes named elsewhere
    in the model (NeMo-RL's vLLM sizes under `model.rl`)."""
    from nemotron.cluster.checks import ClusterError, check_launcher_parallelism

    job = {"model": {"parallelism": dict(PROVIDER_PARALLEL), "rl": {"vllm_cfg": {"tensor_parallel_size": 3}}}}
    check_launcher_parallelism(job, {"nodes": 2, "gpus_per_node": 8})
    with pytest.raises(ClusterError, match="12 GPUs"):
        check_launcher_parallelism(job, {"nodes": 2, "gpus_per_node": 6})
    with pytest.raises(ClusterError, match="Expert parallelism needs 8 GPUs"):
        check_launcher_parallelism(job, {"nodes": 1, "gpus_per_node": 4})


REAL_MB_CHECK = """
import sys, types
from pathlib import Path
from megatron.bridge.recipes.utils.dataset_utils import default_squad_config
from megatron.bridge.data.builders.gpt_sft import GPTSFTDatasetBuilder
from nemotron.backends.megatron_bridge import _sft_dataset_object, sft_dataset, Parallelism
from nemotron.artifacts import SFTDataArtifact
root, out = Path(sys.argv[1]), Path(sys.argv[2])
recipe = default_squad_config(seq_length=2048, enable_offline_packing=True)  # what the SFT recipes start from
data = SFTDataArtifact(path=str(root), name="x", pack_size=4096, num_shards=1)
ds = _sft_dataset_object(recipe, sft_dataset(data, Parallelism(), 4096, 1, "org/tok", out))
assert ds.hf_dataset is None and ds.num_workers == recipe.num_workers, ds
tok = types.SimpleNamespace(eos_id=0, pad_id=0, bos_id=1, eod=0, vocab_size=1000)
builder = GPTSFTDatasetBuilder(ds, tok)
builder.prepare_data()
train, _, _ = builder.build()
print("WIDTH", train.collate_fn([train[0]])["tokens"].shape[1])
"""


def test_sft_dataset_merged_into_the_real_recipe_config(inputs, tmp_path):
    """Against the real Megatron-Bridge 0.6.2 (scripts/realmb_venv.sh): our values merged into the recipe's
    GPTSFTDatasetConfig keep its pad_to_max_length, so a batch is pack_size wide, and building the datasets
    writes nothing into the committed SFT data (no <dataset_root>/packed/)."""
    import os
    import subprocess

    from nemotron import load_artifact

    python = Path(os.environ.get("REALMB_VENV", Path(__file__).parents[2] / ".venv-realmb")) / "bin" / "python"
    if not python.exists():
        pytest.skip("no real Megatron-Bridge venv here (scripts/realmb_venv.sh builds it)")
    root = Path(load_artifact(inputs["sft"], str(inputs["store"])).path)
    repo = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": f"{repo / 'tests' / 'realmb' / 'stubs'}{os.pathsep}{repo}"}
    result = subprocess.run([str(python), "-c", REAL_MB_CHECK, str(root), str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WIDTH 4096" in result.stdout
    assert not (root / "packed").exists()
