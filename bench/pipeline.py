"""What the default pipeline teaches: `python -m nemotron` per seed, each in fresh processes and a fresh store.

    python bench/pipeline.py                     # 3 seeds (1, 2, 3)
    python bench/pipeline.py --seeds 1 --keep /tmp/pipe   # one seed, keep its directory
    python bench/pipeline.py -- +stage.overrides.rl.steps=60   # extra overrides for every run

Each seed runs `python -m nemotron seed=S` (stage=pipeline: data -> pretrain -> sft -> convert -> rl -> eval) in
a new temporary directory with its own artifact store, and reads its `results.json`. It prints, per seed and as
the median over the seeds: the accuracy of each stage's model on the two held-out sets (two-step problems made of
known facts, and unseen facts), the validation perplexity, RL's selected step, the wall time, and the gains each
stage adds, then checks the targets of the tiny pipeline:

    two-step accuracy after SFT >= 40%;  after RL >= SFT + 10 points, with RL's selected step > 0;
    perplexity after SFT <= 1.5 x after pretraining;  wall time <= 8 minutes per run

(medians over the seeds). The load average before and after is printed: the targets assume an idle 2-core
machine. Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"sft_min": 0.40, "rl_gain": 0.10, "ppl_ratio": 1.5, "wall_s": 480.0}


def run_seed(seed: int, root: Path, extra: list[str]) -> dict:
    """One pipeline run in `root`; its results with the wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMOTRON_", "WANDB_"))}
    env["NEMOTRON_ARTIFACTS_ROOT"] = str(root / "store")
    command = [sys.executable, "-m", "nemotron", f"seed={seed}", f"hydra.run.dir={root / 'run'}", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    (root / "stderr.txt").write_text(done.stderr)
    if done.returncode != 0:
        sys.exit(f"seed {seed}: the pipeline failed (exit {done.returncode}); its messages are in {root}/stderr.txt")
    results = json.loads((root / "run" / "results.json").read_text())
    rows = {row["stage"]: row for row in results["eval"]}
    return {"seed": seed, "wall_s": wall, "rows": rows, "figure": results.get("figure")}


def summary(run: dict) -> dict[str, float]:
    """The numbers the targets are about, for one run."""
    rows = run["rows"]
    values = {"wall_s": run["wall_s"], "rl_step": float(rows["rl"]["step"])}
    for stage in ("pretrain", "sft", "rl"):
        values[f"{stage}_two_step"] = rows[stage]["accuracy_two_step"]
        values[f"{stage}_fact"] = rows[stage]["accuracy_fact"]
        values[f"{stage}_ppl"] = rows[stage]["perplexity"]
    values["ppl_ratio"] = values["sft_ppl"] / values["pretrain_ppl"]
    values["sft_gain"] = values["sft_two_step"] - values["pretrain_two_step"]
    values["rl_gain"] = values["rl_two_step"] - values["sft_two_step"]
    return values


def print_table(runs: list[dict[str, float]], median: dict[str, float]) -> None:
    columns = [("pretrain_two_step", "pre 2-step"), ("sft_two_step", "sft 2-step"), ("rl_two_step", "rl 2-step"),
               ("pretrain_fact", "pre facts"), ("sft_fact", "sft facts"), ("rl_fact", "rl facts"),
               ("pretrain_ppl", "pre ppl"), ("sft_ppl", "sft ppl"), ("rl_ppl", "rl ppl"), ("rl_step", "rl step"),
               ("sft_gain", "SFT gain"), ("rl_gain", "RL gain"), ("wall_s", "wall s")]  # fmt: skip
    print("  ".join(f"{title:>10}" for _, title in [("", "seed"), *columns]))
    for label, values in [*((str(int(r["seed"])), r) for r in runs), ("median", median)]:
        cells = [_cell(key, values[key]) for key, _ in columns]
        print("  ".join(f"{c:>10}" for c in [label, *cells]))


def _cell(key: str, value: float) -> str:
    if key.endswith(("two_step", "fact", "gain")):
        return f"{100 * value:.1f}%"
    if key.endswith("ppl"):
        return f"{value:.3f}"
    return f"{value:.0f}"


def check(median: dict[str, float]) -> list[str]:
    """The targets missed (by the medians)."""
    missed = []
    if median["sft_two_step"] < TARGETS["sft_min"]:
        missed.append(f"two-step accuracy after SFT {median['sft_two_step']:.1%} < {TARGETS['sft_min']:.0%}")
    if median["rl_gain"] < TARGETS["rl_gain"]:
        missed.append(f"RL gain {100 * median['rl_gain']:.1f} points < {100 * TARGETS['rl_gain']:.0f}")
    if median["rl_step"] <= 0:
        missed.append("RL's selected step is 0")
    if median["ppl_ratio"] > TARGETS["ppl_ratio"]:
        missed.append(f"perplexity after SFT {median['ppl_ratio']:.2f}x that after pretraining > 1.5x")
    if median["wall_s"] > TARGETS["wall_s"]:
        missed.append(f"wall time {median['wall_s']:.0f} s > {TARGETS['wall_s']:.0f} s")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (1, 2, ...)")
    parser.add_argument("--keep", type=Path, default=None, help="keep each run under this directory")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    for seed in range(1, args.seeds + 1):
        if args.keep:
            root = args.keep / f"seed{seed}"
            root.mkdir(parents=True, exist_ok=False)
            run = run_seed(seed, root, args.overrides)
        else:
            with tempfile.TemporaryDirectory(prefix=f"nemotron-pipeline-{seed}-") as tmp:
                run = run_seed(seed, Path(tmp), args.overrides)
        runs.append({"seed": seed, **summary(run)})
        print(f"seed {seed}: {run['wall_s']:.0f} s, figure {run['figure']}", file=sys.stderr, flush=True)
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "seed"}
    print_table(runs, median)
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs"
    )
    missed = check(median)
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
