"""Concurrency: 16 processes each commit 25 versions of one name into one local root, all at once.

Each manifest names its writer and sequence number, so the test can prove that the 400 commits produced
exactly v1..v400 and that no manifest was overwritten (an overwrite would lose some writer's record).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from nemotron.tracking.store import ManifestStore

WRITERS = 16
COMMITS = 25
NAME = "contended"

pytestmark = pytest.mark.slow

WRITER = """
import json, os, sys, time
from pathlib import Path
from nemotron.tracking.store import ManifestStore

root, name, writer, commits, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
store = ManifestStore(root)
(barrier / f"ready-{writer}").touch()
while not (barrier / "go").exists():
    time.sleep(0.001)
got = []
for seq in range(commits):
    tag = {"writer": writer, "seq": seq, "pid": os.getpid()}
    record = {
        "type": "Artifact",
        "path": f"/data/w{writer}/s{seq}",
        "created_at": "2026-01-01T00:00:00Z",
        "producer": f"w{writer}-s{seq}",
        "metadata": {"path": f"/data/w{writer}/s{seq}", "type": "Artifact", "metadata": tag},
    }
    got.append(store.commit(name, record).version)
print(json.dumps(got))
"""


def test_sixteen_writers_commit_four_hundred_distinct_versions(tmp_path):
    root = tmp_path / "store"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), NAME, str(w), str(COMMITS), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        while len(list(barrier.glob("ready-*"))) < WRITERS:
            assert time.monotonic() - started < 60, "writers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    claimed = {w: json.loads(out) for w, (out, _) in enumerate(outputs)}

    total = WRITERS * COMMITS
    # every writer got 25 versions, in increasing order (it commits one after the other)
    for versions in claimed.values():
        assert len(versions) == COMMITS
        assert versions == sorted(versions)
    # the writers really ran at the same time: their versions interleave instead of forming 16 blocks
    interleaved = [w for w, versions in claimed.items() if versions[-1] - versions[0] != COMMITS - 1]
    assert len(interleaved) >= 2, claimed
    # and no two writers got the same version: v1..v400 exactly
    everything = sorted(v for versions in claimed.values() for v in versions)
    assert everything == list(range(1, total + 1))

    store = ManifestStore(str(root))
    assert store.versions(NAME) == list(range(1, total + 1))
    assert store.resolve(NAME).version == total
    assert store.resolve(f"{NAME}:latest").version == total
    assert (root / NAME / "latest").read_text() == f"v{total}"

    # each version's manifest is the record of the writer that was told it won that version
    owner = {v: (w, seq) for w, versions in claimed.items() for seq, v in enumerate(versions)}
    seen = set()
    for version in range(1, total + 1):
        manifest = store.manifest(NAME, version)
        tag = manifest.metadata["metadata"]
        writer, seq = tag["writer"], tag["seq"]
        assert owner[version] == (writer, seq)
        assert manifest.path == f"/data/w{writer}/s{seq}" and manifest.producer == f"w{writer}-s{seq}"
        metadata = json.loads((root / NAME / f"v{version}" / "metadata.json").read_text())
        assert metadata == manifest.metadata  # written by the winner only
        seen.add((writer, seq))
    assert seen == {(w, s) for w in range(WRITERS) for s in range(COMMITS)}

    # nothing left behind, and nothing but the versions, their two files, latest and the staging dir
    assert store.fsck() == []
    assert list((root / NAME / ".staging").iterdir()) == []
    for version_dir in (root / NAME).glob("v*"):
        assert sorted(p.name for p in version_dir.iterdir()) == ["manifest.json", "metadata.json"]
    assert sorted(p.name for p in (root / NAME).iterdir() if not p.name.startswith("v")) == [".staging", "latest"]
