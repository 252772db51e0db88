"""Training metrics: one JSON line per logged step in `metrics.jsonl`, and a PNG of the curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


class MetricsLog:
    """Append-only metrics of one run; `rows` keeps them in memory for the summary and the plot."""

    def __init__(self, out: Path, enabled: bool = True) -> None:
        self.path = out / METRICS_FILE
        self.enabled = enabled
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
