"""Hashing benchmark: our content digest (xxh3-128) against MD5, the digest W&B computes by default.

    python bench/verify.py                    # 256 MB in 32 files in a temporary directory
    python bench/verify.py --mb 1024 --files 64 --repeats 5

Both hash the same files with the same reader (nemotron's `digest_file`: a reused 1 MiB buffer), after
one warm-up pass, so the files are in the page cache and the figures are the hash functions' own cost plus
reading from memory (what `nemotron-art verify` costs on data that was just written or is read often; on cold
storage both are bounded by the disk). Each figure is the best of `--repeats` passes. The last line is
`nemotron-art verify` itself (a manifest of those files, every file digested, 4 threads).

Target: xxh3-128 at least 3x the MD5 throughput. Exit status 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

TARGET_RATIO = 3.0


def make_files(directory: str, total_mb: int, count: int) -> list[str]:
    """`count` files of random bytes, `total_mb` MiB in all (sizes vary by up to 2x, like real shards)."""
    weights = [1 + (i % 4) / 3 for i in range(count)]
    total = total_mb << 20
    paths = []
    for i, weight in enumerate(weights):
        size = int(total * weight / sum(weights))
        path = os.path.join(directory, f"shard_{i:04d}.bin")
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 4 << 20))
                f.write(chunk)
                remaining -= len(chunk)
        paths.append(path)
    return paths


def best_pass(paths: list[str], algorithm: str, repeats: int) -> float:
    import fsspec

    from nemotron.store.files import digest_file

    fs = fsspec.filesystem("file")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            digest_file(fs, path, algorithm)
        times.append(time.perf_counter() - start)
    return min(times)


def verify_pass(directory: str, repeats: int) -> float:
    from nemotron.artcli.verify import verify_manifest
    from nemotron.store.files import scan_files
    from nemotron.store.records import Manifest

    now = datetime.now(timezone.utc)
    manifest = Manifest(
        name="bench",
        version=1,
        type="Artifact",
        path=directory,
        created_at=now,
        committed_at=now,
        metadata={},
        files=scan_files(directory),
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        report = verify_manifest(manifest, workers=4)
        times.append(time.perf_counter() - start)
        assert report.ok, report.counts
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="total size of the files (MiB)")
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="nemotron-bench-verify-", dir=args.dir)
    try:
        paths = make_files(directory, args.mb, args.files)
        size_mb = sum(os.path.getsize(p) for p in paths) / (1 << 20)
        best_pass(paths, "md5", 1)  # warm-up: every file in the page cache
        md5 = best_pass(paths, "md5", args.repeats)
        xxh3 = best_pass(paths, "xxh3_128", args.repeats)
        verify = verify_pass(directory, args.repeats)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    ratio = md5 / xxh3
    print(f"files: {len(paths)}, {size_mb:.0f} MiB, page cache warm, best of {args.repeats} passes")
    print(f"md5 (W&B default)        {size_mb / md5:9.0f} MB/s")
    print(f"xxh3-128 (nemotron)      {size_mb / xxh3:9.0f} MB/s")
    print(f"nemotron-art verify (4 threads, size + xxh3-128 of every file) {size_mb / verify:9.0f} MB/s")
    verdict = "OK" if ratio >= TARGET_RATIO else "MISSED"
    print(f"ratio xxh3-128 / md5: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x: {verdict})")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
