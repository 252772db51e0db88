"""A progress line for long data work: rows and tokens, with their rates, on stderr.

Rich draws its bar live only on a terminal; in a log file or a Slurm job's output it prints nothing until the
end. So a step that runs for minutes (one 50 MB document through a trained BPE) also says what it is doing
on a plain line every `HEARTBEAT_S` seconds: `Heartbeat` does that from a thread, which runs while the
tokenizers' Rust code works (it releases the GIL).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HEARTBEAT_S = 10.0


class Heartbeat:
    """`with Heartbeat(lambda: "training the tokenizer"):` a line on stderr every `every` seconds until the end."""

    def __init__(self, what: Callable[[], str] | str, every: float | None = None, enabled: bool = True) -> None:
        self.what = what if callable(what) else (lambda: what)
        self.every, self.enabled = every or HEARTBEAT_S, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.perf_counter()

    def __enter__(self) -> Heartbeat:
        self._start = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._beat, name="nemotron-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            print(f"{self.what()} ({time.perf_counter() - self._start:,.0f} s so far)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class RateProgress:
    """`with RateProgress("tokenizing") as progress: progress.advance(rows=n, tokens=m)`.

    Drawn by rich on stderr (stdout carries the stage's JSON line). Counts and the elapsed time stay
    readable after the block, for the summary.
    """

    def __init__(self, description: str, total_rows: int | None = None, heartbeat_s: float | None = None) -> None:
        self.description = description
        self.total_rows = total_rows
        self.rows = 0
        self.tokens = 0
        self._start = time.perf_counter()
        self._end: float | None = None
        self._progress: Any = None
        self._task: Any = None
        self._heartbeat = Heartbeat(self._line, heartbeat_s, enabled=not sys.stderr.isatty())

    @property
    def elapsed(self) -> float:
        return (self._end or time.perf_counter()) - self._start

    def __enter__(self) -> RateProgress:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows {task.fields[rows_per_s]:>9,.0f}/s"),
            TextColumn("{task.fields[tokens]:>14,} tokens {task.fields[tokens_per_s]:>11,.0f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            refresh_per_second=4,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total_rows, **self._fields())
        self._start = time.perf_counter()
        self._heartbeat.__enter__()
        return self

    def _line(self) -> str:
        """`tokenizing: 120,000 rows (4,000/s), 9,000,000 tokens (300,000/s), ETA 0:01:10` (ETA with a total)."""
        f = self._fields()
        line = (f"{self.description}: {f['rows']:,} rows ({f['rows_per_s']:,.0f}/s), {f['tokens']:,} tokens "
                f"({f['tokens_per_s']:,.0f}/s)")  # fmt: skip
        if self.total_rows and f["rows_per_s"] > 0:
            left = max(self.total_rows - self.rows, 0) / f["rows_per_s"]
            minutes, seconds = divmod(int(left + 0.5), 60)
            line += f", ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
        return line

    def advance(self, rows: int = 0, tokens: int = 0) -> None:
        self.rows += rows
        self.tokens += tokens
        if self._progress is not None:
            self._progress.update(self._task, completed=self.rows, **self._fields())

    def _fields(self) -> dict[str, float]:
        seconds = max(self.elapsed, 1e-9)
        return {
            "rows": self.rows,
            "tokens": self.tokens,
            "rows_per_s": self.rows / seconds,
            "tokens_per_s": self.tokens / seconds,
        }

    def __exit__(self, *exc: object) -> None:
        self._end = time.perf_counter()
        self._heartbeat.__exit__()
        if self._progress is not None:
            self._progress.update(self._task, total=self.rows, completed=self.rows, **self._fields())
            self._progress.stop()
