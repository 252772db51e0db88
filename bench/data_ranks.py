"""pretrain_data in several tasks: the time of 1 task x 1 worker, 1 task x 2 workers and 2 tasks x 1 worker.

    python bench/data_ranks.py [--mb 100] [--cache DIR] [--repeat 2]

The corpus and tokenizer are bench/data_prep.py's (stdlib docstrings as JSONL, a 32k byte-level BPE), one
source with the default splits (0.98/0.01/0.01) and shard_rows=20000. Each configuration is one
`python -m nemotron stage=pretrain_data` command (2 tasks: launcher=submitit_local launcher.tasks_per_node=2);
reported are the stage's own time (the data artifact's elapsed_sec: reading, tokenizing and writing, the
slowest rank) and the command's wall time (Python start, imports, the tokenizer, the pool, committing), the
fastest of `--repeat` rounds, and whether the shards, receipts and blend.json are the same bytes as 1 x 1's.

On a machine whose cores are busy with other work, tasks run side by side measure the load, not the stage, so
`--alone 1 2 4` also runs each rank of a job of that many ranks ALONE, one after the other, each in a fresh
process calling `build_shards` inline (1 worker) with the same settings (the fast-path check of 1,000 rows
outside the timing): the slowest rank's time is what the job takes when every rank has a core of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from data_prep import _prepare  # noqa: E402

CONFIGS = {"1 task x 1 worker": (1, 1), "1 task x 2 workers": (1, 2), "2 tasks x 1 worker": (2, 1)}


def run(conf: Path, cwd: Path, tasks: int, workers: int) -> tuple[float, float, dict[str, bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
    args = ["stage=pretrain_data", "data=bench", "scale=full", f"stage.workers={workers}", "stage.shard_rows=20000"]
    args += [f"artifacts.manifest.root={cwd / 'store'}"]
    if tasks > 1:
        args += ["launcher=submitit_local", f"launcher.tasks_per_node={tasks}"]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nemotron", "--config-dir", str(conf), *args], cwd=cwd,
                            env=env, capture_output=True, text=True, input="")  # fmt: skip
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"failed: {result.stderr[-3000:]}")
    (manifest,) = cwd.glob("store/pretrain-data/v*/manifest.json")
    (data_dir,) = [*cwd.glob("outputs/pretrain_data/*/data"), *cwd.glob("multirun/*/*/0/data")]
    files = {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}
    return json.loads(manifest.read_text())["metadata"]["elapsed_sec"], wall, files


def one_rank(corpus: str, tokenizer_dir: str, rank: int, world: int, out: str) -> None:
    """`build_shards` for one rank of `world`, inline; prints its time and the rows it read."""
    import itertools

    from nemotron.data.indexed import token_dtype
    from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
    from nemotron.data.sources import BlendConfig, ScaleConfig
    from nemotron.data.tokenizer import TokenEncoder, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    with open(corpus) as f:
        encoder = TokenEncoder(tokenizer).with_fast_path(json.loads(line)["text"] for line in itertools.islice(f, 1000))
    blend = BlendConfig(sources=[{"name": "docs", "uri": corpus}])
    result = build_shards(
        blend, ScaleConfig(), ShardSettings(shard_rows=20000), encoder, tokenizer.eos_token_id,
        token_dtype(len(tokenizer)), DataPlan.make(bench=True), Path(out), workers=1, rank=rank, world=world,
    )  # fmt: skip
    print(json.dumps({"seconds": result.elapsed_sec, "rows": result.rows_read}))


def alone(corpus: Path, tokenizer_dir: str, worlds: list[int], tmp: Path) -> None:
    print("\neach rank alone (1 worker, build_shards inline), one after the other:")
    for world in worlds:
        times = []
        for rank in range(world):
            result = subprocess.run(
                [sys.executable, __file__, "--one-rank", str(corpus), tokenizer_dir, str(rank), str(world),
                 str(tmp / f"alone-{world}")], capture_output=True, text=True, check=True,
            )  # fmt: skip
            times.append(json.loads(result.stdout.splitlines()[-1]))
        slowest = max(t["seconds"] for t in times)
        ranks = ", ".join(f"{t['seconds']:.2f} s ({t['rows']:,} rows)" for t in times)
        print(f"  {world} rank(s): slowest {slowest:.2f} s; each: {ranks}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nemotron-bench-data-prep"))
    parser.add_argument("--alone", type=int, nargs="*", default=[], help="also each rank of N alone, for each N")
    parser.add_argument("--one-rank", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_rank:
        corpus, tokenizer_dir, rank, world, out = args.one_rank
        return one_rank(corpus, tokenizer_dir, int(rank), int(world), out)
    paths, tokenizer_dir = _prepare(Path(args.cache), {args.mb})
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "conf"
        (conf / "data").mkdir(parents=True)
        (conf / "data" / "bench.yaml").write_text(
            f"name: bench\ntokenizer: {{name_or_path: {tokenizer_dir}}}\n"
            f"pretrain:\n  sources:\n    - {{name: docs, uri: '{paths[args.mb]}'}}\n"
        )
        best: dict[str, tuple[float, float]] = {}
        reference: dict[str, bytes] | None = None
        for round_ in range(args.repeat):
            for label, (tasks, workers) in CONFIGS.items():
                cwd = Path(tmp) / f"{round_}-{tasks}x{workers}"
                cwd.mkdir()
                stage, wall, files = run(conf, cwd, tasks, workers)
                reference = reference or files
                same = files == reference
                print(f"{label:20s} stage {stage:6.2f} s  command {wall:6.2f} s  same bytes as 1 x 1: {same}",
                      flush=True)  # fmt: skip
                previous = best.get(label, (float("inf"), float("inf")))
                best[label] = (min(previous[0], stage), min(previous[1], wall))
        print(f"\n{args.mb:g} MB, load {os.getloadavg()[0]:.1f}, fastest of {args.repeat}:")
        for label, (stage, wall) in best.items():
            print(f"  {label:20s} stage {stage:6.2f} s  ({args.mb / stage:5.1f} MB/s)  command {wall:6.2f} s")
        if args.alone:
            alone(paths[args.mb], tokenizer_dir, args.alone, Path(tmp))


if __name__ == "__main__":
    main()
