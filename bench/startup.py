"""Start-up benchmark: `python -m nemotron --cfg job` against a minimal one-file @hydra.main app.

    python bench/startup.py                 # 10 interleaved repetitions of every command
    python bench/startup.py -n 20 --top 30

The minimal app (one `app.py` and one `config.yaml` with a few keys, written into a temporary directory) is
the floor any Hydra application pays: interpreter start, importing Hydra and OmegaConf, plugin discovery and
composition. Every command runs from the same temporary working directory with the same interpreter, in
turn, so drifts of the machine's load hit all of them alike. Target: `python -m nemotron stage=register
--cfg job` within 1.5x of the minimal app's `--cfg job` (median wall time). Exit status 1 if missed.

It also prints `python -X importtime -c "import nemotron.cli"`: the imports with the highest cumulative
time, and those that a bare `import hydra` does not already pay for (what nemotron adds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5
OURS = "python -m nemotron stage=register --cfg job"
MINIMAL = "minimal app --cfg job"

MINIMAL_APP = """\
import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
"""

MINIMAL_CONFIG = """\
seed: 1234
device: cpu
model:
  name: tiny
  hidden_size: 64
data:
  path: /data/tiny
  num_samples: 1000
"""


def write_minimal_app(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(MINIMAL_CONFIG)
    app = directory / "app.py"
    app.write_text(MINIMAL_APP)
    return app


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or (cmd[1:] != ["-c", "pass"] and not result.stdout.strip()):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


def import_times(module: str, env: dict[str, str], cwd: Path) -> dict[str, tuple[float, float, int]]:
    """{module: (self ms, cumulative ms, depth)} from `python -X importtime -c "import MODULE"`, in order."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    times = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        times[name.strip()] = (int(self_us) / 1e3, int(cumulative_us) / 1e3, depth)
    return times


def print_table(title: str, header: tuple[str, ...], rows: list[tuple], widths: tuple[int, ...]) -> None:
    def line(cells: tuple) -> str:
        first, *rest = (str(c) for c in cells)
        return "  ".join([f"{first:<{widths[0]}}", *(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))])

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--repeats", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--top", type=int, default=25, help="rows of the import-time tables (default 25)")
    parser.add_argument("--no-importtime", action="store_true", help="skip the import-time report")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nemotron-startup-bench-"))
    try:
        app = write_minimal_app(tmp / "minimal")
        cwd = tmp / "work"  # no env.toml above it, nothing written into the checkout
        cwd.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMOTRON_", "HYDRA_"))}
        py = sys.executable
        commands = {
            "python -c pass (interpreter only)": [py, "-c", "pass"],
            MINIMAL: [py, str(app), "--cfg", "job"],
            OURS: [py, "-m", "nemotron", "stage=register", "--cfg", "job"],
            "minimal app --help": [py, str(app), "--help"],
            "python -m nemotron --help": [py, "-m", "nemotron", "--help"],
        }
        for cmd in commands.values():  # warm-up (file system cache, bytecode), and a check that each works
            run_once(cmd, cwd, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeats):
            for label, cmd in commands.items():
                times[label].append(run_once(cmd, cwd, env))

        median = {label: statistics.median(t) for label, t in times.items()}
        rows = [
            (label, f"{median[label] * 1e3:.0f}", f"{min(t) * 1e3:.0f}", f"{max(t) * 1e3:.0f}")
            for label, t in times.items()
        ]
        print(f"python {sys.version.split()[0]}, {args.repeats} interleaved runs of each command")
        print_table("Wall time", ("command", "median ms", "min ms", "max ms"), rows, (44, 10, 8, 8))

        ratio = median[OURS] / median[MINIMAL]
        help_ratio = median["python -m nemotron --help"] / median["minimal app --help"]
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        best = min(times[OURS]) / min(times[MINIMAL])
        print(f"\nratio ours/minimal, --cfg job: {ratio:.2f}x median, {best:.2f}x best   (--help: {help_ratio:.2f}x)")
        print(f"target: start-up within {TARGET_RATIO}x of the minimal Hydra app: {verdict}")

        if not args.no_importtime:
            ours = import_times("nemotron.cli", env, cwd)
            hydra_only = import_times("hydra", env, cwd)
            top = sorted(ours.items(), key=lambda kv: kv[1][1], reverse=True)[: args.top]
            print_table(
                'python -X importtime -c "import nemotron.cli": highest cumulative time',
                ("module", "cumul. ms", "self ms", "depth"),
                [(name, f"{c:.1f}", f"{s:.1f}", d) for name, (s, c, d) in top],
                (60, 10, 8, 5),
            )
            extra = sorted(set(ours) - set(hydra_only), key=lambda name: ours[name][1], reverse=True)
            total = sum(ours[name][0] for name in extra)
            print_table(
                f"Imported by nemotron.cli but not by `import hydra`: {len(extra)} modules, {total:.0f} ms self "
                "time in all",
                ("module", "cumul. ms", "self ms", "depth"),
                [(name, f"{ours[name][1]:.1f}", f"{ours[name][0]:.1f}", ours[name][2]) for name in extra[: args.top]],
                (60, 10, 8, 5),
            )
        return 0 if verdict == "PASS" else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
