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

from nemotron.store.manifest_store import ManifestStore

WRITERS = 16
COMMITS = 25
NAME = "contended"

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRITER = """
import json, os, sys, time
from pathlib import Path
from nemotron.store.manifest_store import ManifestStore

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


ALIASER = """
import sys, time
from pathlib import Path
from nemotron.store.manifest_store import ManifestStore

root, version, rounds, barrier, me = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
store = ManifestStore(root)
for r in range(rounds):
    while not (barrier / f"go-{r}").exists():
        time.sleep(0.0005)
    store.set_alias(f"m:v{version}", "prod")
    (barrier / f"done-{me}-{r}").touch()
"""


def _record(i: int) -> dict:
    return {"type": "Artifact", "path": f"/d/{i}", "created_at": "2026-01-01T00:00:00Z", "metadata": {"i": i}}


def test_two_aliasers_racing_leave_history_that_agrees_with_the_alias(tmp_path):
    """`alias m:v1 prod` and `alias m:v2 prod` at the same instant, 25 times: the newest history entry is always
    what `aliases/prod` says, and the history is one chain (each entry's `previous` is the entry before)."""
    root, barrier, rounds = tmp_path / "store", tmp_path / "barrier", 25
    barrier.mkdir()
    store = ManifestStore(str(root))
    store.commit("m", _record(1))
    store.commit("m", _record(2))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ALIASER, str(root), str(v), str(rounds), str(barrier), f"w{v}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (1, 2)
    ]
    disagreements = []
    try:
        for r in range(rounds):
            (barrier / f"go-{r}").touch()
            started = time.monotonic()
            while not all((barrier / f"done-w{v}-{r}").exists() for v in (1, 2)):
                assert time.monotonic() - started < 60, [p.poll() for p in procs]
                time.sleep(0.001)
            history = store.alias_history("m")
            if history[-1]["version"] != store.aliases("m")["prod"]:
                disagreements.append(r)
        for p in procs:
            assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert disagreements == [], f"newest history entry disagrees with aliases/prod in rounds {disagreements}"
    history = store.alias_history("m")
    assert len(history) == 2 * rounds
    assert [e["previous"] for e in history[1:]] == [e["version"] for e in history[:-1]]
    assert not (root / "m" / "aliases" / ".lock").exists()


ALIAS_DURING_GC = """
import sys, time
from pathlib import Path
from nemotron.artcli import main

root, after = sys.argv[1], int(sys.argv[2])
deletions = Path(root) / "m" / "deletions"
print("ready", flush=True)
while len(list(deletions.glob("*.json")) if deletions.exists() else []) < after:
    time.sleep(0.0005)
sys.exit(main(["--root", root, "alias", "m:v150", "keep"]))
"""


@pytest.mark.parametrize("after_deletions", [5, 48, 49, 50, 60])
def test_alias_set_while_gc_runs_never_dangles(tmp_path, after_deletions):
    """`nemotron-art alias m:v150 keep` while `gc --keep-last 1 --apply` deletes v199, v198, ... (newest first;
    v150 goes 50th), the alias started after `after_deletions` deletions: either the alias is set and v150 stays,
    or the alias is refused; never an alias on a deleted version."""
    from helpers.clitools import clean_env

    root = tmp_path / "store"
    store = ManifestStore(str(root))
    for i in range(200):
        store.commit("m", _record(i))
    env = clean_env()
    aliaser = subprocess.Popen(
        [sys.executable, "-c", ALIAS_DURING_GC, str(root), str(after_deletions)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert aliaser.stdout.readline() == "ready\n", aliaser.communicate()
        gc = subprocess.run(
            [sys.executable, "-m", "nemotron.artcli", "--root", root, "gc", "--keep-last", "1", "--apply", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out, err = aliaser.communicate(timeout=120)
    finally:
        if aliaser.poll() is None:
            aliaser.kill()
    assert gc.returncode == 0, gc.stderr
    aliases, versions = store.aliases("m"), store.versions("m")
    if aliaser.returncode == 0:
        assert aliases == {"keep": 150} and versions == [150, 200], (out, versions)
        assert json.loads(gc.stdout)["keep"].get("m:v150") in (["alias keep"], ["the alias keep points at it"])
    else:
        assert "Traceback" not in err and "was deleted" in err, err
        assert aliases == {} and versions == [200]
    assert store.deleted_versions("m") == set(range(1, 200)) - set(versions)
