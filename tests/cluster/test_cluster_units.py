"""Unit tests of the cluster helpers: env.toml profile translation, Slurm time/memory parsing, pre-submission
checks, the srun/setup lines the launcher adds, and the distributed environment."""

from __future__ import annotations

import re

import pytest

from nemotron.cluster import checks, profiles
from nemotron.cluster.checks import ClusterError
from nemotron.cluster.profiles import ProfileError
from nemotron.distributed import DistEnv, dist_env

pytestmark = pytest.mark.unit

ENV = {
    "wandb": {"project": "p"},
    "artifacts": {"manifest": {"root": "/x"}},
    "base": {
        "executor": "slurm",
        "account": "acct",
        "partition": "batch",
        "container_image": "/img.sqsh",
        "python": "python3",
        "mounts": ["/lustre:/lustre"],
        "nodes": 1,
        "gpus_per_node": 8,
        "time": "04:00:00",
        "mem": "512G",
        "env_vars": {"NCCL_DEBUG": "WARN", "FLAG": True},
        "setup_lines": "module load x\nsource y",
        "tunnel": "local",
        "host": "ignored",
    },
    "big": {"extends": "base", "nodes": 4, "env_vars": {"EXTRA": "1"}},
    "loop-a": {"extends": "loop-b"},
    "loop-b": {"extends": "loop-a"},
    "dev": {"executor": "local"},
}


def test_profiles_are_the_non_reserved_tables():
    assert profiles.profile_names(ENV) == ["base", "big", "dev", "loop-a", "loop-b"]


def test_profile_translates_to_a_launcher_node():
    config = profiles.profile_config(ENV, "base")
    assert config["defaults"] == ["slurm", "_self_"]
    assert config["launcher"] == {
        "account": "acct",
        "partition": "batch",
        "container_image": "/img.sqsh",
        "python": "python3",
        "nodes": 1,
        "gpus_per_node": 8,
        "timeout_min": 240,
        "mem_gb": 512,
        "container_mounts": ["/lustre:/lustre"],
        "setup": ["module load x", "source y"],
        "env": {"NCCL_DEBUG": "WARN", "FLAG": "true"},
    }


def test_extends_merges_parent_first_and_tables_deeply():
    launcher = profiles.profile_config(ENV, "big")["launcher"]
    assert launcher["nodes"] == 4 and launcher["account"] == "acct"
    assert launcher["env"] == {"NCCL_DEBUG": "WARN", "FLAG": "true", "EXTRA": "1"}


def test_local_profile_selects_the_local_launcher():
    assert profiles.profile_config(ENV, "dev") == {"defaults": ["local", "_self_"]}


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (ENV, "nope", "has no profile [nope]"),
        (ENV, "loop-a", "cycle: loop-a -> loop-b -> loop-a"),
        ({"a": {"extends": "gone"}}, "a", 'extends = "gone", but there is no profile [gone]'),
        ({"a": {"executor": "docker"}}, "a", 'executor = "docker"'),
        ({"a": {"executor": "slurm", "tunnel": "ssh"}}, "a", "Run it on a login node"),
        ({"a": {"executor": "slurm", "colour": "red"}}, "a", "keys nemotron does not know: colour"),
        ({"a": {"executor": "slurm", "time": "soon"}}, "a", "is not a Slurm time"),
        ({"a": {"executor": "slurm", "mem": "1.5G"}}, "a", "not a whole number of GB"),
        ({"a": {"executor": "slurm", "env_vars": {"HF_TOKEN": "x"}}}, "a", "never writes secrets"),
    ],
)
def test_bad_profiles(data, name, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        profiles.profile_config(data, name)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [(90, 90), ("90", 90), ("30:30", 31), ("04:00:00", 240), ("1-12", 2160), ("2-00:30", 2910), ("1-0:0:1", 1441)],
)
def test_slurm_minutes(text, minutes):
    assert profiles.slurm_minutes(text) == minutes


@pytest.mark.parametrize(
    ("text", "gb"), [("64G", 64), ("64GB", 64), ("65536M", 64), ("65536", 64), ("1T", 1024), (0, 0)]
)
def test_mem_gb(text, gb):
    assert profiles.mem_gb(text) == gb


GOOD = {"nodes": 1, "tasks_per_node": 1, "timeout_min": 10, "max_num_timeout": 0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": 0}, "launcher.nodes=0: a job needs at least one node"),
        ({"tasks_per_node": 0}, "launcher.tasks_per_node=0"),
        ({"gpus_per_node": -1}, "launcher.gpus_per_node=-1"),
        ({"timeout_min": 0}, "launcher.timeout_min=0"),
        ({"container_image": "img"}, "launcher.python is not"),
        ({"env": {"BAD-NAME": "1"}}, "not a valid environment variable name"),
        ({"env": {"WANDB_API_KEY": "x"}}, "would write a secret into the batch script"),
        ({"container_mounts": ["/a:/a,/b:/b"]}, "one mount per list item"),
    ],
)
def test_check_settings(change, message):
    with pytest.raises(ClusterError, match=message):
        checks.check_settings({**GOOD, **change})


def test_check_settings_accepts_good_values():
    checks.check_settings({**GOOD, "container_image": "img", "python": "python3", "env": {"A": "1"}})


def test_secret_values_from_the_environment_are_refused_anywhere():
    environ = {"MY_SERVICE_TOKEN": "s3cr3t-value-42", "HOME": "/root", "SHORT_KEY": "abc"}
    with pytest.raises(ClusterError, match=r"\$MY_SERVICE_TOKEN appears in the launcher settings \(at setup\[1\]\)"):
        checks.check_no_secret_values({"setup": ["ok", "echo s3cr3t-value-42"]}, "the launcher settings", environ)
    checks.check_no_secret_values({"setup": ["echo abc /root"]}, "the launcher settings", environ)


@pytest.mark.parametrize("item", ["+wandb.api_key=abcdef", "hf_token=xyz", "db.password=pw", "+creds.secret_key=k"])
def test_credentials_on_the_command_line_are_refused(item):
    with pytest.raises(ClusterError, match="a credential"):
        checks.check_overrides([item])


@pytest.mark.parametrize("item", ["tokenizer.pad_token=<pad>", "+wandb.api_key=${oc.env:WANDB_API_KEY}", "x.key=1"])
def test_harmless_overrides_pass(item):
    checks.check_overrides([item])


def test_parallel_sizes_must_fit_the_gpus():
    model = {"model": {"tensor_model_parallel_size": 4, "pipeline_model_parallel_size": 2}, "stage": {}}
    checks.check_launcher_parallelism(model, {"nodes": 1, "gpus_per_node": 8})
    checks.check_launcher_parallelism(model, {"nodes": 2, "gpus_per_node": 4})
    with pytest.raises(ClusterError, match="gpus_per_node=6 on launcher.nodes=1 gives 6 GPUs"):
        checks.check_launcher_parallelism(model, {"nodes": 1, "gpus_per_node": 6})
    with pytest.raises(ClusterError, match="gpus_per_node is not set"):
        checks.check_launcher_parallelism(model, {"nodes": 1, "gpus_per_node": None})
    checks.check_launcher_parallelism({"model": {"name": "tiny"}}, {"nodes": 1, "gpus_per_node": None})


def test_executor_parameters_add_env_exports_and_pyxis_flags():
    from nemotron.cluster.slurm import container_auto_mounts, executor_parameters

    params = {
        "nodes": 2,
        "partition": "batch",
        "batch_partition": "long",
        "container_image": "nvcr.io#nvidia/pytorch:25.01-py3",
        "container_mounts": ["/lustre:/lustre"],
        "python": "python3",
        "env": {"NCCL_DEBUG": "WARN", "MSG": "a b"},
        "setup": ["module load cuda"],
        "srun_args": ["--mpi=pmix"],
        "additional_parameters": {},
        "wait": True,
        "account": None,
    }
    mounts = container_auto_mounts(
        ["/work/run", "/work/run/multirun/x", "/lustre/store", "s3://bucket"], ["/lustre:/lustre"]
    )
    assert mounts == ["/work/run:/work/run"]
    out = executor_parameters(params, auto_mounts=mounts, workdir="/work/run")
    assert out["setup"] == ["export NCCL_DEBUG=WARN", "export MSG='a b'", "module load cuda"]
    assert out["srun_args"] == [
        "--container-image=nvcr.io#nvidia/pytorch:25.01-py3",
        "--container-mounts=/lustre:/lustre,/work/run:/work/run",
        "--container-workdir=/work/run",
        "--mpi=pmix",
    ]
    assert out["partition"] == "batch" and out["nodes"] == 2
    assert not {"account", "additional_parameters", "python", "env", "wait"} & set(out)
    assert executor_parameters({**params, "wait": False}, auto_mounts=[], workdir="/w")["partition"] == "long"


def test_dist_env_single_process_and_torchrun(monkeypatch):
    for name in ("SUBMITIT_EXECUTOR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert dist_env() == DistEnv()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "node1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    env = dist_env()
    assert (env.rank, env.local_rank, env.world_size, env.node_rank, env.num_nodes) == (3, 1, 4, 1, 2)
    assert (env.master_addr, env.master_port, env.is_rank0, env.launcher) == ("node1", 29500, False, "torchrun")


def test_dist_env_under_submitit(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "42",
        "SLURM_NTASKS": "4",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    env = dist_env()
    assert (env.rank, env.local_rank, env.world_size, env.local_world_size) == (3, 1, 4, 2)
    assert (env.node_rank, env.num_nodes, env.master_addr, env.launcher) == (1, 2, "gpu07", "submitit")
    assert 20000 <= env.master_port <= 60000


def test_expected_artifacts_from_stage_outputs_or_name():
    from omegaconf import OmegaConf

    from nemotron.cluster.slurm import expected_artifacts

    declared = OmegaConf.create(
        {"scale": {"suffix": "-tiny"}, "stage": {"name": "x", "outputs": ["tok${scale.suffix}", "data"]}}
    )
    assert expected_artifacts(declared) == ["tok-tiny", "data"]
    assert expected_artifacts(OmegaConf.create({"stage": {"name": "my-model"}})) == ["my-model"]
    assert expected_artifacts(OmegaConf.create({"stage": {"name": "???"}})) == []
    assert expected_artifacts(OmegaConf.create({"stage": {"name": "${art:data,name}"}})) == []
