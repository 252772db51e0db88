"""A real single-host Slurm cluster for the end-to-end tests, started once per test session.

`scripts/local_slurm.sh` runs slurmctld, slurmd, slurmdbd/MariaDB (so `sacct` works) and munge as root,
without systemd, everything under one temporary directory. The tests are skipped, with the reason, where that
cannot work (not root, or the slurm-wlm/munge packages are missing: `apt-get install -y slurm-wlm munge
slurmdbd mariadb-server`). A cluster that is installed but fails to start is a test error, with its logs.

Only one such cluster can run per machine (fixed ports), so sessions take a machine-wide file lock first:
a second test session waits for the first one's cluster to stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local_slurm.sh"
LOCK = Path(tempfile.gettempdir()) / "nemotron-local-slurm.lock"
LOCK_WAIT_S = 900


@pytest.fixture(scope="session")
def local_slurm():
    """Start the cluster; yields its root directory (SLURM_CONF is set for the session) and stops it after."""
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (it starts munge, MariaDB and the Slurm daemons)")
    missing = [
        cmd for cmd in ("slurmctld", "slurmd", "munged", "sbatch", "slurmdbd", "mariadbd") if not shutil.which(cmd)
    ]
    if missing:
        pytest.skip(
            f"Slurm is not installed ({', '.join(missing)} not found); "
            "apt-get install -y slurm-wlm munge slurmdbd mariadb-server"
        )
    with machine_lock():
        # not tmp_path_factory: its directories are 0700, and the munge and mysql users must traverse ROOT;
        # a short path, since munge's and MariaDB's Unix socket paths must fit in 107 bytes
        root = Path(tempfile.mkdtemp(prefix="nslurm-", dir="/tmp"))
        root.chmod(0o755)
        env = {**os.environ, "ACCOUNTING": "1", "FAKE_GPUS": "2"}
        env.pop("SLURM_CONF", None)
        mp = pytest.MonkeyPatch()
        try:
            up = subprocess.run(
                ["bash", str(SCRIPT), "up", str(root)], env=env, capture_output=True, text=True, timeout=180
            )
            if up.returncode != 0:
                pytest.fail(f"local Slurm did not start (rc={up.returncode}):\n{up.stdout}\n{up.stderr}\n{_logs(root)}")
            mp.setenv("SLURM_CONF", str(root / "etc" / "slurm.conf"))
            yield root
        finally:
            _kill_jobs()  # cancelled jobs linger up to KillWait (30 s) in submitit, which ignores SIGTERM
            mp.undo()
            subprocess.run(["bash", str(SCRIPT), "down", str(root)], env=env, capture_output=True, timeout=120)
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the machine-wide lock of the local cluster (waiting up to LOCK_WAIT_S for another session)."""
    with open(LOCK, "w") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session has held {LOCK} (its local Slurm cluster) for {LOCK_WAIT_S} s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kill_jobs(timeout_s: float = 60) -> None:
    """SIGKILL every job still known to the cluster and wait until none is left (daemons must outlive them)."""
    if not os.environ.get("SLURM_CONF"):
        return
    subprocess.run(["scancel", "--signal=KILL", "--full", "--user=root"], capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
        if queue.returncode == 0 and not queue.stdout.strip():
            return
        time.sleep(1)


def _logs(root: Path) -> str:
    parts = []
    for path in sorted((root / "log").glob("*.log")) + sorted(root.glob("munge/*.log")):
        parts.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
    return "\n".join(parts)
