"""Training metrics: one JSON line per logged step in `metrics.jsonl`, and a PNG of the curves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


class MetricsLog:
    """Append-only metrics of one run; `rows` keeps them in memory for the summary and the plot."""

    def __init__(self, out: Path, enabled: bool = True, live: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = out / METRICS_FILE
        self.enabled = enabled
        self.live = live  # also sends each row on as it is logged (the job's W&B run)
        self.rows: list[dict[str, Any]] = []

    def restore(self, previous: Path, up_to_step: int) -> None:
        """Carry the history of an interrupted run over, up to the checkpoint this run resumes from."""
        source = previous / METRICS_FILE
        if source.is_file():
            for line in source.read_text().splitlines():
                row = json.loads(line)
                if row["step"] <= up_to_step:
                    self.log(**row)

    def log(self, step: int, **values: float) -> None:
        row = {"step": step, **values}
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if self.live is not None:
                self.live(row)

    def last(self, key: str) -> float | None:
        return next((row[key] for row in reversed(self.rows) if key in row), None)

    def plot(self, title: str) -> Path | None:
        """Every curve against the step, one panel per metric; None when there is nothing to draw."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in ("loss", "val_loss", "reward", "val_accuracy", "kl") if any(k in r for r in self.rows)]
        if not keys or not self.enabled:
            return None
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            points = [(r["step"], r[key]) for r in self.rows if key in r]
            ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None)
            ax.set_title(key)
            ax.set_xlabel("step")
        fig.suptitle(title)
        fig.tight_layout()
        target = self.path.with_name(PLOT_FILE)
        fig.savefig(target, dpi=80)
        plt.close(fig)
        return target


def read_rows(history: Path) -> list[dict[str, Any]]:
    """The rows of a `metrics.jsonl`."""
    return [json.loads(line) for line in history.read_text().splitlines() if line.strip()]


# The curves of each training stage on the pipeline's summary figure: (stage, metric keys on one panel).
SUMMARY_PANELS = (("pretrain", ("loss", "val_loss")), ("sft", ("loss", "val_loss")), ("rl", ("reward", "val_accuracy")),
                  ("rl", ("kl",)))  # fmt: skip


def pipeline_figure(histories: dict[str, Path], bars: dict[str, dict[str, float]], target: Path) -> Path:
    """One page: the curves of every training stage (top) and the held-out accuracy of each stage's model, one
    group of bars per held-out set (bottom). `histories`: stage -> metrics.jsonl; `bars`: set -> {stage: value}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 8))
    grid = fig.add_gridspec(2, len(SUMMARY_PANELS))
    for column, (stage, keys) in enumerate(SUMMARY_PANELS):
        ax = fig.add_subplot(grid[0, column])
        rows = read_rows(histories[stage]) if stage in histories else []
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None, label=key)
        ax.set_title(f"{stage}: {', '.join(keys)}")
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    _accuracy_bars(fig.add_subplot(grid[1, :]), bars)
    fig.suptitle("pipeline: training curves per stage, and what each stage's model answers on held-out problems")
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target


def _accuracy_bars(ax: Any, bars: dict[str, dict[str, float]]) -> None:
    stages = list(dict.fromkeys(stage for values in bars.values() for stage in values))
    width = 0.8 / max(len(stages), 1)
    for i, stage in enumerate(stages):
        xs = [j + i * width for j in range(len(bars))]
        heights = [100 * values.get(stage, 0.0) for values in bars.values()]
        drawn = ax.bar(xs, heights, width, label=f"after {stage}")
        ax.bar_label(drawn, fmt="%.1f%%", fontsize=8)
    ax.set_xticks([j + width * (len(stages) - 1) / 2 for j in range(len(bars))], list(bars))
    ax.set_ylabel("exact-answer accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
