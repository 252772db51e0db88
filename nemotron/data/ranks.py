"""Many tasks, one dataset: how the ranks of a data-prep job meet through files in its output directory.

Every Slurm task (or submitit_local task) of the job runs the stage. Rank 0 prepares what all ranks share
(the tokenizer, the plan) and says so; each rank then makes the work units that are its own and says it is
done, with what it made; rank 0 waits for all of them and alone writes the blend and returns the artifact,
which the Hydra callback (rank 0 only) commits. They need no network between them, only the output directory,
which a multi-node job has on a shared filesystem (the Hydra sweep dir must be shared anyway).

    {output dir}/.ranks/{attempt}/ready               rank 0: the shared inputs are in place
    {output dir}/.ranks/{attempt}/rank_00003.alive    a counter (and the pid) each rank rewrites every few seconds
    {output dir}/.ranks/{attempt}/rank_00003.done     the rank finished; its result (JSON)
    {output dir}/.ranks/{attempt}/rank_00003.failed   the rank raised; the first line of its error

`attempt` is the job id and Slurm's restart count, so a requeued job never reads its first attempt's notes.
A rank that dies without a word (killed, preempted, out of memory) stops its counter: the rank waiting for
it fails after `timeout_s` without a change. The counter is compared with itself, never with a clock, so the
nodes' clocks need not agree.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from nemotron.distributed import dist_env
from nemotron.errors import NemotronError

POLL_S = 0.2


class RankGroup:
    """`with RankGroup.of_job(out, timeout_s) as group:` this process's place among the job's ranks.

    With one rank every method returns at once and no file is written.
    """

    def __init__(self, directory: Path, rank: int, world: int, timeout_s: float) -> None:
        self.directory, self.rank, self.world, self.timeout_s = directory, rank, world, timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of_job(cls, out: Path, timeout_s: float) -> RankGroup:
        env = dist_env()
        return cls(out / ".ranks" / _attempt(), env.rank, env.world_size, timeout_s)

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    def _file(self, rank: int, kind: str) -> Path:
        return self.directory / f"rank_{rank:05d}.{kind}"

    # -- this rank ------------------------------------------------------------------------------------

    def __enter__(self) -> RankGroup:
        if self.world > 1:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._beat, name="nemotron-rank-alive", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        count = 0
        while True:
            _write_atomic(self._file(self.rank, "alive"), f"{count} pid {os.getpid()}")
            count += 1
            if self._stop.wait(max(self.timeout_s / 10, 0.5)):
                return

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.world > 1 and error is not None:  # the others stop waiting for this rank now, with its reason
            first_line = (str(error).strip().splitlines() or [kind.__name__ if kind else "failed"])[0]
            _write_atomic(self._file(self.rank, "failed"), f"{type(error).__name__}: {first_line}")

    def publish_ready(self, note: str = "") -> None:
        """Rank 0: the shared inputs are in place; `note` is what the other ranks' `wait_ready` returns."""
        if self.world > 1 and self.is_rank0:
            _write_atomic(self.directory / "ready", note)

    def finish(self, result: str) -> None:
        """This rank made its part; `result` is what rank 0 gathers."""
        if self.world > 1:
            _write_atomic(self._file(self.rank, "done"), result)

    # -- waiting for the others -----------------------------------------------------------------------

    def wait_ready(self, what: str) -> str:
        """A rank other than 0: wait until rank 0 has prepared `what` (or has failed, or stopped); its note."""
        if self.world == 1 or self.is_rank0:
            return ""
        self._wait(lambda: (self.directory / "ready").is_file(), [0], what)
        return (self.directory / "ready").read_text()

    def gather(self, what: str) -> list[str]:
        """Rank 0: the results of every rank (its own first), once all have finished."""
        if self.world == 1:
            return []
        others = list(range(1, self.world))
        self._wait(lambda: all(self._file(r, "done").is_file() for r in others), others, what)
        return [self._file(r, "done").read_text() for r in others]

    def _wait(self, finished, ranks: list[int], what: str) -> None:
        seen: dict[int, tuple[str | None, float]] = {r: (None, time.monotonic()) for r in ranks}
        while not finished():
            now = time.monotonic()
            for r in ranks:
                failed = self._file(r, "failed")
                if failed.is_file():
                    raise NemotronError(
                        f"Rank {r} of {self.world} failed while {what}: {failed.read_text().strip()}. "
                        f"{self._nothing_committed()}"
                    )
                if self._file(r, "done").is_file():
                    continue
                count = _read(self._file(r, "alive"))
                if count != seen[r][0]:
                    seen[r] = (count, now)
                elif now - seen[r][1] > self.timeout_s:
                    state = "never started" if count is None else "stopped"
                    raise NemotronError(
                        f"Rank {r} of {self.world} {state} while {what}: no sign of life from it for "
                        f"{self.timeout_s:g} s (killed, preempted or out of memory? see its log). "
                        f"{self._nothing_committed()}"
                    )
            time.sleep(POLL_S)

    def _nothing_committed(self) -> str:
        return (
            "Nothing is committed. Run the same command again: it finds this job's output directory "
            f"({self.directory.parent.parent}), reuses the finished work units and makes only the missing ones "
            "(with a stage.output_dir of your own, give a new one and stage.resume_from= that directory)."
        )


def _attempt() -> str:
    """The job id and restart count: the same for every rank of one attempt, new for a requeued one."""
    env = dist_env()
    if env.launcher == "torchrun":
        return f"{os.environ.get('TORCHELASTIC_RUN_ID', 'torchrun')}.{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}"
    if env.launcher != "submitit":
        return f"pid{os.getpid()}"
    import submitit

    return f"{submitit.JobEnvironment().job_id}.{os.environ.get('SLURM_RESTART_COUNT') or 0}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
