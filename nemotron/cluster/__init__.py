"""Cluster execution on the submitting host: Slurm launcher settings, pre-submission checks, env.toml profiles.

The Hydra side lives in `hydra_plugins/nemotron_launcher/` (the launcher class, its config schema and the
env.toml config source); this package holds the plain Python it calls, so it can be read and tested without
Hydra or Slurm. Nothing here imports submitit at module level.
"""
