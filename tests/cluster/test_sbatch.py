"""The one sbatch script generator (nemotron.cluster.sbatch): the launcher's submitit job is laid out exactly as
submitit 1.5 lays out its own (submitit reads its log paths back from that layout), and real submissions use it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from submitit.slurm.slurm import _make_sbatch_string

from hydra_plugins.nemotron_launcher.config import NemotronSlurmQueueConf
from nemotron.cluster import sbatch, slurm
from nemotron.cluster.checks import ClusterError

pytestmark = pytest.mark.unit

SETTINGS = {
    "plain": {},
    "container": {
        "exclusive": True,
        "additional_parameters": {"mail-type": "END"},
        "container_image": "nvcr.io/nvidia/nemo:25.09",
        "python": "python3",
        "env": {"NCCL_DEBUG": "INFO x"},
        "setup": ["module load cuda"],
        "srun_args": ["--comment=a b"],
    },
}


def _executor(settings: dict, folder: str):
    params = OmegaConf.to_container(OmegaConf.structured(NemotronSlurmQueueConf))
    params.update(name="nemotron-register", submitit_folder=folder, partition="batch q", **settings)
    auto = slurm.container_auto_mounts(["/work dir"], params.get("container_mounts") or [])
    parameters = slurm.executor_parameters(params, auto_mounts=auto, workdir="/work dir")
    return slurm.make_executor(params, folder, parameters, render_only=True)


@pytest.mark.parametrize("jobs", [1, 3])
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_launcher_script_is_laid_out_as_submitit_lays_out_its_own(tmp_path, name, jobs):
    executor = _executor(SETTINGS[name], str(tmp_path / "%j"))
    parameters = dict(executor.parameters) | ({"map_count": jobs} if jobs > 1 else {})
    theirs = _make_sbatch_string(command=executor._submitit_command_str, folder=executor.folder, **parameters)
    assert slurm.render_script(executor, jobs) == theirs
    # what a real submission writes (submitit calls this when it submits) is the same script
    assert executor._make_submission_file_text(executor._submitit_command_str, "uid") == slurm.render_script(
        executor, 1
    )


def test_sbatch_lines_quote_each_value_and_refuse_a_control_character():
    lines = sbatch.sbatch_lines([("job_name", "a b"), ("exclusive", True), ("qos", None), ("requeue", False)])
    assert lines == ["#SBATCH --job-name='a b'", "#SBATCH --exclusive"]
    with pytest.raises(ClusterError, match=r"launcher\.partition=.*control character"):
        sbatch.sbatch_lines([("partition", "batch\ntouch x")])
    with pytest.raises(ClusterError, match="not an sbatch option name"):
        sbatch.sbatch_lines([("x y", 1)])
    with pytest.raises(ClusterError, match="not a valid environment variable name"):
        sbatch.export_lines({"A-B": "1"})
