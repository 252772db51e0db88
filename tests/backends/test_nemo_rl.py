"""NeMo-RL backend: the dry-run GRPO config (NeMo-RL v0.7 schema) and the Ray sbatch script for model=nano3.

Field names follow ../shared/notes/formats.md section 6 (`DataConfig` of v0.6+, the `run_grpo.py` launch and
its main keys) and NeMo-RL's own `grpo-nanov3-30BA3B-2n8g-megatron` recipe.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.backend_inputs import SECRET, commit_inputs, compose

from nemotron.backends import nemo_rl
from nemotron.errors import NemotronError

pytestmark = pytest.mark.unit

MASTER_CONFIG_KEYS = {"defaults", "grpo", "loss_fn", "checkpointing", "policy", "data", "env", "logger", "cluster"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return commit_inputs(tmp_path_factory.mktemp("rl"))


@pytest.fixture(autouse=True)
def wandb_key(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)


def dry_run(inputs: dict, tmp_path: Path, *overrides: str) -> tuple[dict, str]:
    cfg = compose(
        inputs["store"],
        "rl",
        f"run.data={inputs['rl']}",
        f"run.model={inputs['model']}",
        "stage.dry_run=true",
        f"stage.output_dir={tmp_path}",
        *overrides,
    )
    assert nemo_rl.run(cfg) is None
    config = yaml.safe_load((tmp_path / nemo_rl.CONFIG_FILE).read_text())
    return config, (tmp_path / nemo_rl.SCRIPT_FILE).read_text()


def test_grpo_config_in_nemo_rl_schema(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path, "stage.steps=50", "stage.group_size=16", "stage.prompts_per_step=32")
    assert set(config) == MASTER_CONFIG_KEYS
    assert config["defaults"] == "/opt/nemo-rl/examples/configs/grpo_math_1B.yaml"
    assert config["grpo"]["num_prompts_per_step"] == 32
    assert config["grpo"]["num_generations_per_prompt"] == 16
    assert config["grpo"]["max_num_steps"] == 50
    assert config["grpo"]["seed"] == 1234
    given, _ = dry_run(inputs, tmp_path / "given", "stage.kl_coef=0.05", "stage.clip_eps=0.3")
    assert given["loss_fn"]["reference_policy_kl_penalty"] == 0.05
    assert given["loss_fn"]["ratio_clip_min"] == given["loss_fn"]["ratio_clip_max"] == 0.3
    assert config["checkpointing"]["enabled"] is True
    assert config["checkpointing"]["checkpoint_dir"] == str(tmp_path / "checkpoints")
    assert config["cluster"] == {"num_nodes": 2, "gpus_per_node": 8}


def test_policy_uses_the_pinned_model_megatron_and_vllm(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path)
    policy = config["policy"]
    # the pinned ModelArtifact is a Megatron checkpoint: NeMo-RL's Megatron policy starts from it, with the Hugging
    # Face model for the architecture and tokenizer (tests/stages/test_rl_model_format.py has the other formats)
    assert policy["pretrained_checkpoint"]["path"].endswith("checkpoint")
    assert policy["model_name"] == "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
    assert policy["tokenizer"] == {"name": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"}
    assert policy["max_total_sequence_length"] == 2048
    assert {"train_global_batch_size", "train_micro_batch_size"} <= set(policy)
    assert policy["dtensor_cfg"] == {"enabled": False}
    megatron = policy["megatron_cfg"]
    assert megatron["enabled"] is True
    assert megatron["tensor_model_parallel_size"] == 2 and megatron["expert_model_parallel_size"] == 8
    assert megatron["optimizer"] == {} and megatron["scheduler"] == {}  # not given: NeMo-RL's base config
    # Nemotron-3 Nano's squared ReLU: no bias-activation fusion (the base config's is on; megatron-core refuses it)
    assert megatron["bias_activation_fusion"] is False
    # TP2 + sequence parallel with packing: a multiple of 2 (the base would resolve to dtensor's TP, 1)
    assert policy["make_sequence_length_divisible_by"] == 2
    given, _ = dry_run(inputs, tmp_path / "given", "stage.lr=1e-6", "stage.steps=50")
    assert given["policy"]["megatron_cfg"]["optimizer"] == {"lr": 1e-6}
    assert given["policy"]["megatron_cfg"]["scheduler"] == {"lr_decay_iters": 50}
    assert policy["generation"]["backend"] == "vllm"
    assert policy["generation"]["vllm_cfg"] == {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.7}


def test_data_from_split_jsonl_with_math_processor(inputs, tmp_path):
    config, _ = dry_run(inputs, tmp_path)
    data = config["data"]
    assert Path(data["train"]["data_path"]).name == "train.jsonl"
    assert data["train"]["input_key"] == "problem" and data["train"]["output_key"] == "expected_answer"
    assert data["train"]["dataset_name"] == data["validation"]["dataset_name"] == "ResponseDataset"
    assert Path(data["validation"]["data_path"]).name == "val.jsonl"
    assert data["default"] == {
        "dataset_name": "ResponseDataset",
        "prompt_file": "examples/prompts/cot.txt",
        "processor": "math_hf_data_processor",
        "env_name": "math",
    }
    assert config["env"]["math"]["math_verify_impl"] == "hf_math_verify"


def test_wandb_settings_without_the_key(inputs, tmp_path, capsys):
    config, script = dry_run(inputs, tmp_path)
    assert config["logger"]["wandb_enabled"] is True
    assert config["logger"]["wandb"] == {"project": "nemotron-tests", "name": "rl-model", "entity": "team"}
    printed = capsys.readouterr()
    for text in (printed.out, printed.err, script, (tmp_path / nemo_rl.CONFIG_FILE).read_text()):
        assert SECRET not in text


def test_sbatch_script_starts_ray_in_the_allocation(inputs, tmp_path):
    _, script = dry_run(inputs, tmp_path)
    lines = script.splitlines()
    header = [line for line in lines if line.startswith("#SBATCH")]
    assert {"#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=1"} <= set(header)
    assert not any("container" in line for line in header)
    steps = [line for line in lines if line.startswith("srun ")]
    assert len(steps) == 3  # head, workers, driver
    for step in steps:
        # NeMo-RL's own image (model.containers.nemo_rl), not the Megatron-Bridge one
        assert "--container-image=nvcr.io#nvidia/nemo-rl:v0.7.0" in step and "--container-mounts=" in step
    head, workers, driver = steps
    assert "ray start --head" in head and '"--nodelist=$HEAD_NODE"' in head
    assert 'ray start --address="$RAY_HEAD:6379"' in workers and '"--exclude=$HEAD_NODE"' in workers
    assert "--nodes=1" in workers  # the other node
    assert f"python3 examples/run_grpo.py --config {tmp_path / nemo_rl.CONFIG_FILE}" in driver
    assert "cd /opt/nemo-rl" in driver


STUBS = {  # each records its argv; srun runs the step's `bash -c COMMAND` as the node would
    "srun": 'echo "srun $*" >> "$LOG"; while [ $# -gt 2 ]; do shift; done; [ "$1" = -c ] && exec bash -c "$2"',
    "scontrol": 'printf "gpu-a017\\ngpu-a018\\n"',
    "getent": 'echo "getent $*" >> "$LOG"; [ "$2" = gpu-a017 ] && echo "10.4.0.17 STREAM gpu-a017"; true',
    "ray": 'echo "ray $*" >> "$LOG"; [ "$1" = status ] && printf " node_a\\n node_b\\n"; true',
    "python3": "true",
    "sleep": "true",
}


def run_with_stubs(script: str, tmp_path: Path, **stubs: str) -> tuple[str, str]:
    """Run the sbatch script as the batch step on the allocation's first node would, Slurm and Ray stubbed;
    (what the stubs recorded, the script's stderr)."""
    directory = tmp_path / "stubs"
    directory.mkdir()
    for name, body in {**STUBS, **stubs}.items():
        (directory / name).write_text(f"#!/bin/bash\n{body}\n")
        (directory / name).chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": f"{directory}:/usr/bin:/bin", "LOG": str(log), "SLURM_JOB_NODELIST": "gpu-a[017-018]"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text(), done.stderr


def test_the_ray_head_address_is_the_ip_resolved_on_the_head_node(inputs, tmp_path):
    """As NeMo-RL's ray.sub (v0.7.0, lines 268-313 and 332): the batch script, which Slurm runs on the
    allocation's first node (the head), resolves the head's name to its IP; Ray binds and is joined at that IP,
    while srun places the steps by node name."""
    _, script = dry_run(inputs, tmp_path, f"model.rl.nemo_rl_dir={tmp_path}")  # the driver's `cd` works here
    log, _ = run_with_stubs(script, tmp_path)
    assert "getent ahostsv4 gpu-a017" in log
    assert "ray start --head --node-ip-address=10.4.0.17 --port=6379" in log
    assert "ray start --address=10.4.0.17:6379" in log  # the workers join the IP, never resolve the name themselves
    assert "--nodelist=gpu-a017" in log and "--exclude=gpu-a017" in log


def test_an_unresolvable_head_falls_back_to_its_name_with_a_warning(inputs, tmp_path):
    _, script = dry_run(inputs, tmp_path, f"model.rl.nemo_rl_dir={tmp_path}")  # the driver's `cd` works here
    log, stderr = run_with_stubs(script, tmp_path, getent="exit 2")
    assert "ray start --head --node-ip-address=gpu-a017 --port=6379" in log
    assert "gpu-a017" in stderr and "IP" in stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.rl.megatron_cfg.tensor_model_parallel_size=3"], "tensor_model_parallel_size=3"),
        (["model.rl.vllm_cfg.tensor_parallel_size=3"], "tensor_parallel_size=3"),
        (["launcher.python=null"], "launcher.python is not"),
        (["launcher.nodes=0"], "launcher.nodes=0"),
        (["launcher=local"], "no cluster profile is selected"),
    ],
)
def test_bad_input_is_a_clear_error(inputs, tmp_path, overrides, message):
    with pytest.raises(NemotronError, match=message.replace(".", r"\.")):
        dry_run(inputs, tmp_path, *overrides)
    assert not (tmp_path / nemo_rl.SCRIPT_FILE).exists()


def test_single_node_script_has_no_workers(inputs, tmp_path):
    _, script = dry_run(inputs, tmp_path, "launcher.nodes=1")
    assert "--exclude=" not in script
    assert 'grep -c " node_")" -ge 1' in script


def test_real_run_without_nemo_rl_says_so(inputs, tmp_path):
    """Without stage.dry_run the stage starts Ray and NeMo-RL's entry point, which is not installed here."""
    pytest.importorskip("torch")
    cfg = compose(
        inputs["store"],
        "rl",
        f"run.data={inputs['rl']}",
        f"run.model={inputs['model']}",
        f"stage.output_dir={tmp_path}",
        "launcher=local",
        f"model.rl.nemo_rl_dir={tmp_path / 'no-nemo-rl'}",
    )
    with pytest.raises(NemotronError, match="NeMo-RL is not installed in this environment"):
        nemo_rl.run(cfg)
    assert not (tmp_path / nemo_rl.CONFIG_FILE).exists()  # refused before anything was written


@pytest.mark.parametrize(("version", "ok"), [("0.6.0", False), ("0.7.0", True), ("0.8.0", False)])
def test_job_start_checks_the_nemo_rl_version(tmp_path, version, ok):
    """NeMo-RL's image holds its checkout in /opt/nemo-rl; the job reads the version of the checkout it runs
    (nemo_rl/package_info.py, as NeMo-RL's pyproject does) and refuses anything but 0.7 with one paragraph."""
    checkout = tmp_path / "nemo-rl"
    (checkout / "examples").mkdir(parents=True)
    (checkout / nemo_rl.ENTRY_POINT).write_text("")
    (checkout / "nemo_rl").mkdir()
    major, minor, patch = version.split(".")
    (checkout / "nemo_rl" / "package_info.py").write_text(f"MAJOR = {major}\nMINOR = {minor}\nPATCH = {patch}\n")
    rl = {"nemo_rl_dir": str(checkout)}
    if ok:
        nemo_rl.require_nemo_rl(rl)
        return
    with pytest.raises(NemotronError, match=f"has NeMo-RL {version}.*needs NeMo-RL 0.7 and below 0.8.*nemo-rl:v0.7.0"):
        nemo_rl.require_nemo_rl(rl, "nvcr.io#nvidia/nemo-rl:v0.7.0")


@pytest.fixture(scope="module")
def hf_model(inputs, tmp_path_factory) -> str:
    """A Hugging Face model artifact (what stage=convert commits), for the DTensor policy of llama32_1b."""
    from nemotron import ModelArtifact, log_artifact, setup_artifact_tracking

    path = tmp_path_factory.mktemp("hf-model")
    (path / "config.json").write_text("{}")
    tracking = setup_artifact_tracking({"artifacts": {"manifest": {"root": str(inputs["store"])}}})
    return log_artifact(ModelArtifact(path=str(path), name="llama-hf", format="hf", step=1), tracking).uri


def test_tiny_defaults_never_reach_nemo_rl(inputs, tmp_path, hf_model):
    """With nothing given, NeMo-RL's base config decides: max_new_tokens (the full sequence length, so the CoT
    prompt can finish), val_period, prompts per step, group size, KL, checkpoint period; validation runs one batch
    of all its problems. For llama32_1b, 32 x 16 = 512 samples per step = its train_global_batch_size."""
    for model in ("nano3", "llama32_1b"):
        local = [f"model.hf_config={tmp_path}"] if model == "llama32_1b" else []  # its gated tokenizer's copy
        config, _ = dry_run(inputs, tmp_path / model, f"model={model}", f"run.model={hf_model}", *local)
        assert set(config["grpo"]) == {"seed"}, model
        assert config["loss_fn"] == {"token_level_loss": True}
        assert "save_period" not in config["checkpointing"]
        assert not {"max_new_tokens", "temperature"} & set(config["policy"]["generation"])
        assert "max_grad_norm" not in config["policy"]
    given, _ = dry_run(inputs, tmp_path / "given", "stage.eval_problems=16", "stage.eval_every=2")
    assert given["grpo"]["max_val_samples"] == given["grpo"]["val_batch_size"] == 16  # one batch: validation runs
    assert given["grpo"]["val_period"] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # validation below one batch: max_val_samples // val_batch_size = 0 (grpo.py:3164)
        (["stage.eval_problems=200", "model.rl.val_batch_size=256"], "less than one validation batch"),
        # packing pad factor vs TP2 + sequence parallel (megatron/data.py:1132)
        (["model.rl.make_sequence_length_divisible_by=3"], "make_sequence_length_divisible_by=3 is not a multiple of"),
        (
            ["model.rl.megatron_cfg.context_parallel_size=2", "model.rl.make_sequence_length_divisible_by=2"],
            "not a multiple of 8",
        ),
        # squared ReLU with bias-activation fusion (megatron-core transformer_config.py:2115)
        (["+model.rl.megatron_cfg.bias_activation_fusion=true"], "model.activation=squared_relu"),
        # samples per step vs global batch (batched_data_dict.py:396)
        (["stage.prompts_per_step=3", "stage.group_size=5"], "15 samples per step is not a multiple of"),
        # global batch vs data parallel: 16 GPUs / TP2 = 8 ranks (batched_data_dict.py:400)
        (
            ["model.rl.train_global_batch_size=12", "stage.prompts_per_step=3", "stage.group_size=4"],
            "not a multiple of the policy's data-parallel size 8",
        ),
    ],
)
def test_pre_submit_checks_mirror_nemo_rl(inputs, tmp_path, overrides, message):
    with pytest.raises(NemotronError, match=message.replace(".", r"\.")):
        dry_run(inputs, tmp_path, *overrides)
    assert not (tmp_path / nemo_rl.SCRIPT_FILE).exists()


def test_llama_samples_per_step_vs_global_batch(inputs, tmp_path, hf_model):
    """The old defaults: 16 prompts x 8 generations = 128 samples, train_global_batch_size 512 (NeMo-RL:
    "Total batch size (128) is not a multiple of batch_size (512)")."""
    with pytest.raises(NemotronError, match=r"128 samples per step is not a multiple of train_global_batch_size=512"):
        dry_run(inputs, tmp_path, "model=llama32_1b", f"run.model={hf_model}", f"model.hf_config={tmp_path}",
                "stage.prompts_per_step=16", "stage.group_size=8")  # fmt: skip


def test_gated_tokenizer_needs_a_local_copy(inputs, tmp_path, hf_model):
    """llama32_1b's tokenizer (meta-llama/Llama-3.2-1B) is gated: without model.hf_config the job could not
    load it; with it, NeMo-RL reads the local copy."""
    with pytest.raises(NemotronError, match="gated repository.*model.hf_config"):
        dry_run(inputs, tmp_path / "gated", "model=llama32_1b", f"run.model={hf_model}")
    local = tmp_path / "llama-config"
    local.mkdir()
    config, _ = dry_run(inputs, tmp_path / "local", "model=llama32_1b", f"run.model={hf_model}",
                        f"model.hf_config={local}")  # fmt: skip
    assert config["policy"]["tokenizer"] == {"name": str(local)}


def test_in_the_job_the_head_resolves_its_ip_and_hands_it_to_the_other_nodes(tmp_path, monkeypatch):
    """The submitted job (each node runs the stage): node 0 resolves the head's name to an IPv4 address, as the
    sbatch script and ray.sub do, and writes it into the run directory (shared by the job's nodes) for this job
    id; the other nodes read that address, never resolving the name themselves."""
    import threading

    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    found: list[str] = []
    worker = threading.Thread(target=lambda: found.append(nemo_rl.head_address(1, "localhost", tmp_path, 30)))
    worker.start()  # a worker waiting before the head has written anything
    assert nemo_rl.head_address(0, "localhost", tmp_path, 30) == "127.0.0.1"
    worker.join(timeout=30)
    assert found == ["127.0.0.1"]
    assert (tmp_path / "ray_head.4711").read_text() == "127.0.0.1"
    monkeypatch.setenv("SLURM_JOB_ID", "4712")  # a requeued or later job never reads an earlier job's address
    with pytest.raises(NemotronError, match="did not write its address"):
        nemo_rl.head_address(1, "localhost", tmp_path, 0.2)
