"""Fixtures every test directory may use (the tests import their helpers as `helpers.X`)."""

from helpers.local_slurm import local_slurm  # noqa: F401  (a real Slurm cluster, once per session)
