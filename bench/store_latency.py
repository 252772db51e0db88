"""Store benchmark: resolve `latest` of a name with 10,000 versions.

    python bench/store_latency.py                      # a local store in a temporary directory
    python bench/store_latency.py --root memory://bench
    python bench/store_latency.py --versions 10000 --repeats 300 --commit-last 500

The store is built with the same bytes `ManifestStore.commit` writes: the last `--commit-last` versions go
through `commit` itself, the ones before are written directly (manifest.json and metadata.json serialized
exactly as `commit` serializes them, then the `latest` hint), which is the same on-disk result, only faster
(no probing, no fsync). `--commit-last` equal to `--versions` commits every version.

It measures `ManifestStore.resolve(NAME)` (latest) and compares it with the naive approach of the reference
kit: list every `v*` directory of the name, take the highest, read its manifest. File operations come from
`store.file_ops` (every filesystem call the store makes); the baseline's are counted the same way (one per
`ls`/`cat`). Target: resolve latest in at most 3 file operations. Exit status 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from nemotron.store.manifest_store import ManifestStore, _dump
from nemotron.store.records import Manifest

TARGET_OPS = 3
_VERSION_DIR = re.compile(r"v([1-9]\d*)")


def record() -> dict[str, Any]:
    """A commit record as `Tracking.commit` builds it (a registered checkpoint with two files)."""
    return {
        "type": "ModelArtifact",
        "path": "/data/checkpoints/bench-model/step_1000",
        "created_at": datetime.now(timezone.utc),
        "producer": "store-benchmark",
        "metadata": {"type": "ModelArtifact", "path": "/data/checkpoints/bench-model/step_1000", "step": 1000},
        "inputs": [{"uri": "hf://datasets/example/corpus", "name": "corpus"}],
        "used_artifacts": ["bench-data:v1"],
        "files": [
            {"path": "model.safetensors", "size": 123456789, "digest": "xxh3_128:" + "0" * 32},
            {"path": "config.json", "size": 512, "digest": "xxh3_128:" + "1" * 32},
        ],
        "run": {
            "command": ["python", "-m", "nemotron", "stage=register"],
            "overrides": ["stage=register"],
            "config": {"seed": 1234},
            "host": "bench-host",
            "python": sys.version.split()[0],
        },
    }


def build(store: ManifestStore, name: str, versions: int, commit_last: int) -> float:
    """Fill `name` with `versions` versions; returns the seconds it took."""
    start = time.perf_counter()
    direct = versions - max(1, min(commit_last, versions))  # v1..v{direct} written directly
    if direct:
        template = store.commit(name, record())  # v1 through commit: the record to copy
        fs, base = store.fs, f"{store.root.rstrip('/')}/{name}"
        for version in range(2, direct + 1):
            manifest = Manifest.model_validate(
                {**template.model_dump(), "version": version, "committed_at": datetime.now(timezone.utc)}
            )
            if store.is_local:
                fs.makedirs(f"{base}/v{version}", exist_ok=True)
            fs.pipe_file(f"{base}/v{version}/manifest.json", _dump(manifest))  # as commit's create writes it
            fs.pipe_file(f"{base}/v{version}/metadata.json", json.dumps(manifest.metadata, indent=2).encode())
        fs.pipe_file(f"{base}/latest", f"v{direct}".encode())
    for _ in range(versions - direct):
        store.commit(name, record())
    return time.perf_counter() - start


def verify(store: ManifestStore, name: str, versions: int) -> None:
    """The store holds exactly v1..vN, `latest` says vN, and a written and a committed manifest agree."""
    found = store.versions(name)
    assert found == list(range(1, versions + 1)), f"versions are {found[:3]}..{found[-3:]}, not v1..v{versions}"
    assert store.latest_version(name) == versions
    first, last = store.manifest(name, 1), store.manifest(name, versions)
    skip = {"version", "committed_at", "created_at", "metadata"}
    assert first.model_dump(exclude=skip) == last.model_dump(exclude=skip)
    assert store.metadata(first) == first.metadata and first.metadata["name"] == name


def naive_resolve(store: ManifestStore, name: str) -> tuple[Manifest, int]:
    """The reference kit's way: list every v* directory, take the max, read its manifest (2 calls)."""
    base = f"{store.root.rstrip('/')}/{name}"
    entries = store.fs.ls(base, detail=False)
    versions = [int(m.group(1)) for e in entries if (m := _VERSION_DIR.fullmatch(e.rstrip("/").rsplit("/", 1)[-1]))]
    raw = store.fs.cat_file(f"{base}/v{max(versions)}/manifest.json")
    return Manifest.model_validate_json(raw), 2


def measure(fn: Callable[[], int], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Run `fn` (which returns the file operations it made) `repeats` times."""
    for _ in range(warmup):
        fn()
    times, ops = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
        ops.append(count)
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1e3,
        "ops": statistics.mean(ops),
        "max_ops": max(ops),
    }


def counted(store: ManifestStore, call: Callable[[], Any]) -> Callable[[], int]:
    def run() -> int:
        before = store.file_ops
        call()
        return store.file_ops - before

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="fsspec URL of the store (default: a new temporary directory)")
    parser.add_argument("--name", default="bench-model", help="artifact name (must not exist in --root)")
    parser.add_argument("--versions", type=int, default=10_000, help="versions to create (default 10000)")
    parser.add_argument("--commit-last", type=int, default=500, help="versions committed through commit()")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per case for our store")
    parser.add_argument("--baseline-repeats", type=int, default=50, help="timed calls of the naive baseline")
    parser.add_argument("--stale-by", type=int, default=10, help="how far behind the stale `latest` hint is")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store directory")
    args = parser.parse_args(argv)

    tmp = None if args.root else tempfile.mkdtemp(prefix="nemotron-store-bench-")
    root = args.root or tmp
    try:
        store = ManifestStore(root)
        if store.versions(args.name) if store.fs.exists(store.root) else []:
            parser.error(f"{args.name!r} already has versions in {root}; pick another --name or --root.")
        seconds = build(store, args.name, args.versions, args.commit_last)
        verify(store, args.name, args.versions)
        n_commit = max(1, min(args.commit_last, args.versions))
        print(
            f"store: {store.url}  name: {args.name}  versions: {args.versions} "
            f"(built in {seconds:.1f} s; last {n_commit} through ManifestStore.commit)"
        )

        name, rows = args.name, {}
        rows["ours: resolve latest (one store object)"] = measure(
            counted(store, lambda: store.resolve(name)), args.repeats
        )

        def fresh() -> int:
            fresh_store = ManifestStore(root)
            fresh_store.resolve(name)
            return fresh_store.file_ops

        rows["ours: resolve latest (new store object each call)"] = measure(fresh, args.repeats)
        rows["ours: latest_version, hint current"] = measure(
            counted(store, lambda: store.latest_version(name)), args.repeats
        )
        latest_path = f"{store.root.rstrip('/')}/{name}/latest"
        stale = max(1, args.versions - args.stale_by)
        store.fs.pipe_file(latest_path, f"v{stale}".encode())
        try:
            assert store.latest_version(name) == args.versions
            rows[f"ours: latest_version, hint {args.versions - stale} behind"] = measure(
                counted(store, lambda: store.latest_version(name)), args.repeats
            )
            rows[f"ours: resolve latest, hint {args.versions - stale} behind"] = measure(
                counted(store, lambda: store.resolve(name)), args.repeats
            )
        finally:
            store.fs.pipe_file(latest_path, f"v{args.versions}".encode())
        assert naive_resolve(store, name)[0].version == args.versions
        rows["baseline: list v*, take max, read manifest"] = measure(
            lambda: naive_resolve(store, name)[1], args.baseline_repeats
        )

        width = max(len(k) for k in rows)
        print()
        print(f"{'case':<{width}}  {'median ms':>10}  {'p95 ms':>10}  {'file ops/call':>13}")
        print(f"{'-' * width}  {'-' * 10}  {'-' * 10}  {'-' * 13}")
        for label, row in rows.items():
            print(f"{label:<{width}}  {row['median_ms']:>10.3f}  {row['p95_ms']:>10.3f}  {row['ops']:>13.1f}")

        ours = rows["ours: resolve latest (one store object)"]
        base = rows["baseline: list v*, take max, read manifest"]
        print()
        print(f"ratio baseline/ours (median latency of resolving latest): {base['median_ms'] / ours['median_ms']:.1f}x")
        ok = (
            ours["max_ops"] <= TARGET_OPS
            and rows["ours: resolve latest (new store object each call)"]["max_ops"] <= TARGET_OPS
        )
        verdict = "PASS" if ok else "FAIL"
        print(
            f"target: resolve latest in at most {TARGET_OPS} file operations: {verdict} "
            f"({ours['max_ops']} per resolve with an up-to-date `latest` hint)"
        )
        return 0 if ok else 1
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            print(f"kept {tmp}")


if __name__ == "__main__":
    sys.exit(main())
