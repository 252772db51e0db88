"""A progress line for long data work: rows and tokens, with their rates, on stderr."""

from __future__ import annotations

import time
from typing import Any


class RateProgress:
    """`with RateProgress("tokenizing") as progress: progress.advance(rows=n, tokens=m)`.

    Drawn by rich on stderr (stdout carries the stage's JSON line). Counts and the elapsed time stay
    readable after the block, for the summary.
    """

    def __init__(self, description: str, total_rows: int | None = None) -> None:
        self.description = description
        self.total_rows = total_rows
        self.rows = 0
        self.tokens = 0
        self._start = time.perf_counter()
        self._end: float | None = None
        self._progress: Any = None
        self._task: Any = None

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
        return self

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
        if self._progress is not None:
            self._progress.update(self._task, total=self.rows, completed=self.rows, **self._fields())
            self._progress.stop()
