"""nemotron's Slurm launcher for Hydra, and env.toml profiles as `launcher=NAME` options.

    config.py        NemotronSlurmQueueConf: hydra-submitit-launcher's Slurm schema plus what it lacks
                     (srun_args, the job's python, containers, environment, wait, dry_run, requeue)
    launcher.py      NemotronSlurmLauncher: submits with submitit, checks the input first, waits or not
    env_profiles.py  a config source that shows env.toml profiles as options of the `launcher` group

Hydra imports every module under `hydra_plugins` while discovering plugins, so these modules import only
Hydra at load time; submitit and the nemotron machinery are imported when a job is launched.
"""
