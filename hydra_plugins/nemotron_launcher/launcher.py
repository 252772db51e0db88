"""`NemotronSlurmLauncher`: hydra-submitit-launcher's Slurm launcher with nemotron's additions.

This class owns its copy of `BaseSubmititLauncher.launch` (hydra-submitit-launcher 1.2.0) instead of patching
submitit, and changes it in these places:

- before anything is submitted: checks the settings, each job's config (credentials, parallel sizes) and the
  cluster (sbatch, partition);
- builds submitit's `SlurmExecutor` directly, so `python` (the job's interpreter) and `srun_args` reach it,
  with the pyxis container flags and `env` exports added (nemotron.cluster.slurm);
- `dry_run=true` writes and prints the sbatch script and submits nothing; `wait=false` submits, prints the
  job ids and the artifacts to expect, and returns; otherwise it waits, and a job that ends without a
  result (scancel, timeout, node failure) fails the command with a clear message.

On the node (`__call__`), ranks other than 0 run the task without Hydra callbacks and without writing
`.hydra/`, so only rank 0 pins inputs and commits artifacts. `checkpoint` (called by submitit on preemption
or timeout) requeues the job unless `requeue=false`; the requeued job starts the stage again, which resumes
from its own checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.errors import CompactHydraException
from hydra.types import HydraContext
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher, LocalLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class LaunchError(CompactHydraException):
    """Bad input or a job that ended without a result: Hydra prints the message alone and exits 1."""


class NemotronLocalLauncher(LocalLauncher):
    """hydra-submitit-launcher's local launcher, refusing a credential on the command line (by name, or a
    secret environment value typed anywhere) before anything is pickled: submitit pickles each job's overrides
    into its folder."""

    def setup(self, *, hydra_context: HydraContext, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        from nemotron.cluster import checks

        with _launch_errors():
            checks.check_overrides(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
            checks.check_no_secret_values(OmegaConf.to_container(config, resolve=False), "the job's config")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """`BaseSubmititLauncher.launch` (hydra-submitit-launcher 1.2.0), except its last line: a job of several
        tasks whose rank 0 failed because another task was killed reports rank 0's error (naming that task),
        not submitit's traceback about the killed task's missing output."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from submitit.core.utils import UncompletedJobError

        from nemotron.cluster.slurm import rank0_failure

        assert self.config is not None
        params = {k: v for k, v in self.params.items() if k not in ("submitit_folder", "max_num_timeout")}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"])
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        results = []
        for job in executor.map_array(self, *zip(*job_params, strict=True)):
            try:
                results.append(job.results()[0])
            except UncompletedJobError as exc:
                failed = rank0_failure(job)
                if failed is None:  # rank 0 itself ended without a result (killed): nothing was committed
                    first = next((line for line in str(exc).splitlines() if line.strip()), "no result")
                    raise LaunchError(
                        f"Job {job.job_id} did not finish, so nothing was committed for it: {first.strip()} "
                        f"Its logs: {Path(job.paths.stderr).parent}."
                    ) from None
                results.append(failed)
        return results


class NemotronSlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    # -- submitting host ---------------------------------------------------------------------------------

    def setup(self, *, hydra_context: HydraContext, task_function: Any, config: DictConfig) -> None:
        """Check the settings, the command line and the cluster: this runs before the sweeper writes anything
        (multirun.yaml holds the command line), so a refused credential is never saved."""
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        from nemotron.cluster import checks
        from nemotron.env_toml import load_env_file

        params = self.params
        with _launch_errors():
            load_env_file()  # a broken env.toml fails here, not in every job after submission
            checks.check_settings(params)
            checks.check_overrides(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
            checks.check_no_secret_values(OmegaConf.to_container(config, resolve=False), "the job's config")
            if not params.get("dry_run") and not _stage_dry_run(config):
                checks.check_cluster(_partition(params))
                if params.get("wait", True) and not checks.sacct_works():
                    log.warning(
                        "Slurm accounting (sacct) does not answer: a job that is cancelled or killed cannot be "
                        "detected, and this command would then wait forever. Consider launcher.wait=false."
                    )

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        with _launch_errors():
            return self._launch(job_overrides, initial_job_idx)

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from nemotron.cluster import checks, slurm

        assert self.config is not None and self.hydra_context is not None
        params = self.params
        dry_run = bool(params.get("dry_run"))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        planned, job_configs = [], []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            job_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(job_config.hydra.job):
                job_config.hydra.job.num = idx
            checks.check_launcher_parallelism(_parallel_view(job_config), params)
            _check_starting_model(job_config)
            output_dir = sweep_dir / str(job_config.hydra.sweep.subdir)
            artifacts = slurm.expected_artifacts(job_config)
            planned.append(slurm.PlannedJob(idx, list(filter_overrides(overrides)), str(output_dir), artifacts))
            job_configs.append(job_config)

        if all(_stage_dry_run(config) or _stage_on_host(config) for config in job_configs):
            # stage.dry_run=true (model.backend=megatron): the stage itself prints its backend's configuration
            # and Slurm submission on this host; nothing is submitted. stage.on_host=true (stage=pipeline): the
            # stage submits its own jobs (one per step) from this host.
            return [self._run_here(config) for config in job_configs]

        store = _store_root(job_configs[0])
        workdir = os.getcwd()
        auto_mounts = slurm.container_auto_mounts(
            [workdir, str(sweep_dir.absolute()), *_config_dirs(self.config), store],
            params.get("container_mounts") or [],
        )
        parameters = slurm.executor_parameters(params, auto_mounts=auto_mounts, workdir=workdir)
        folder = str(params["submitit_folder"])
        executor = slurm.make_executor(params, folder, parameters, render_only=dry_run)

        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        if dry_run:
            script = slurm.render_script(executor, len(planned))
            path = sweep_dir / ".submitit" / "dry_run_submission.sh"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(script)
            slurm.print_dry_run(script, path, planned)
            return [_not_run(job) for job in planned]

        job_params = []
        for job, overrides in zip(planned, job_overrides, strict=True):
            log.info(f"\t#{job.index} : {' '.join(job.overrides)}")
            state = Singleton.get_state()
            job_params.append((list(overrides), "hydra.sweep.dir", job.index, f"job_id_for_{job.index}", state))
        jobs = slurm.submit(executor, self, job_params)
        for job, submitted in zip(planned, jobs, strict=True):
            job.slurm_job_id = submitted.job_id
            job.log = str(submitted.paths.stderr)

        if not params.get("wait", True):
            slurm.print_submitted(planned, store, str(Path(jobs[0].paths.folder)))
            return [_not_run(job) for job in planned]
        results = slurm.wait_for(jobs, planned)
        slurm.print_committed(results, planned)
        return results

    def _run_here(self, job_config: DictConfig) -> JobReturn:
        """Run one job in this process, as Hydra's basic launcher does."""
        from hydra.core.hydra_config import HydraConfig

        assert self.hydra_context is not None and self.task_function is not None
        with open_dict(job_config.hydra.job):
            job_config.hydra.job.id = f"dry_run_{job_config.hydra.job.num}"
        HydraConfig.instance().set_config(job_config)
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=job_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    # -- on the node ----------------------------------------------------------------------------------

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        import submitit
        from hydra._internal.callbacks import Callbacks

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, sweep_overrides)
        environment = submitit.JobEnvironment()
        with open_dict(sweep_config.hydra.job) as job:
            job.id = environment.job_id
            job.num = job_num
        context = self.hydra_context
        if environment.global_rank != 0:
            # Only rank 0 pins inputs, writes lineage and commits; the other ranks just run the task.
            context = HydraContext(config_loader=context.config_loader, callbacks=Callbacks())
            with open_dict(sweep_config.hydra):
                sweep_config.hydra.output_subdir = None
        result = run_job(
            hydra_context=context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        if result.status == JobStatus.FAILED and not self.params.get("wait", True):
            _fail_slurm_job(result)
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on rank 0 at preemption or timeout: requeue the job as it was submitted, unless
        requeue=false. Not `self`: during the job it holds the callbacks' per-job state (context tokens,
        clients), which does not pickle and does not belong to the next attempt."""
        if not self.params.get("requeue", True):
            return None
        import submitit

        submitted = submitit.helpers.DelayedSubmission.load(submitit.JobEnvironment().paths.submitted_pickle)
        return submitit.helpers.DelayedSubmission(submitted.function, *args, **kwargs)


@contextlib.contextmanager
def _launch_errors() -> Iterator[None]:
    """A NemotronError (bad input, a refused submission, a job without a result) as Hydra's compact error."""
    from nemotron.errors import NemotronError

    try:
        yield
    except NemotronError as exc:
        raise LaunchError(str(exc)) from None


def _partition(params: dict[str, Any]) -> str | None:
    if not params.get("wait", True) and params.get("batch_partition"):
        return params["batch_partition"]
    return params.get("partition")


def _stage_dry_run(config: DictConfig) -> bool:
    """`stage.dry_run=true`: the stage only shows what it would submit, so it runs on this host."""
    try:
        return bool(OmegaConf.select(config, "stage.dry_run", default=False))
    except Exception:  # an interpolation only the job can resolve: not a dry run
        return False


def _check_starting_model(job_config: DictConfig) -> None:
    """stage=rl on NeMo-RL: a starting model it cannot read is refused before anything is submitted."""
    from nemotron.backends.nemo_rl import check_starting_model

    check_starting_model(job_config)


def _stage_on_host(config: DictConfig) -> bool:
    """`stage.on_host=true`: a stage that submits jobs itself (stage=pipeline) runs on the submitting host."""
    try:
        return bool(OmegaConf.select(config, "stage.on_host", default=False))
    except Exception:  # an interpolation only the job can resolve: an ordinary stage
        return False


def _fail_slurm_job(result: JobReturn) -> None:
    """wait=false: no host reads the job's result, so a failed stage must fail the Slurm job itself (sacct shows
    FAILED, and jobs submitted with --dependency=afterok on it are cancelled): its message, then exit 1."""
    import sys

    from nemotron.tracking import report

    report.print_error(f"The stage failed, so this Slurm job fails and nothing was committed: {result._return_value}")
    sys.stderr.flush()
    raise SystemExit(1)


def _not_run(job: Any) -> JobReturn:
    """A JobReturn for a job this process does not wait for (dry run, wait=false)."""
    return JobReturn(overrides=job.overrides, working_dir=job.output_dir, status=JobStatus.COMPLETED)


def _parallel_view(config: DictConfig) -> dict[str, Any]:
    """`model` resolved (parallel sizes may be interpolations) and `stage` as written: resolving the stage on
    this host could read the artifact store, which only the job's rank 0 does."""
    try:
        model = OmegaConf.to_container(config.model, resolve=True) if "model" in config else {}
    except Exception:
        model = OmegaConf.to_container(config.model, resolve=False)
    stage = OmegaConf.to_container(config.stage, resolve=False) if "stage" in config else {}
    return {"model": model, "stage": stage}


def _store_root(config: DictConfig) -> str | None:
    try:
        root = OmegaConf.select(config, "artifacts.manifest.root", default=None)
    except Exception:
        return None
    return None if root is None else str(root)


def _config_dirs(config: DictConfig) -> list[str]:
    """Directories the job re-reads its config from (user config dirs, env.toml's), to mount in a container."""
    dirs = []
    for source in config.hydra.runtime.config_sources:
        if source.schema == "file":
            dirs.append(str(source.path))
        elif source.schema == "nemotron-env":
            dirs.append(str(Path(str(source.path)).parent))
    return dirs
