"""Adversarial: a full disk (ENOSPC) at each write the store makes, one write at a time.

The fault is injected through the store's own write seam (`ManifestStore.local_files`, see storefaults.py):
a counting run lists every write of an operation, then the operation is repeated with the k-th write failing,
for every k. Whatever fails, the store is in one of two states, and says which:

- the version (alias, deletion) is complete, and the command exits 0 (a missing `metadata.json` or `latest`
  hint is a warning: the manifest carries both);
- nothing happened, and the command exits non-zero with one paragraph naming the full disk.

Never a gap in the numbering, a version without a manifest, a temporary file left behind, an alias history that
disagrees with the alias, or a traceback. A last test fills a real 300 KB tmpfs (when this host lets root mount
one) and commits until the disk is full.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.clitools import clean_env, make_data
from helpers.storefaults import FullDisk

from nemotron.errors import NemotronError
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

pytestmark = pytest.mark.adversarial

HERE = Path(__file__).resolve().parents[1] / "helpers"  # storefaults.py
NOW = "2026-01-02T03:04:05+00:00"
FULL = os.strerror(errno.ENOSPC)


def record(step: int = 0) -> dict:
    metadata = {"path": "/data/m", "type": "ModelArtifact", "created_at": NOW, "step": step}
    return {"type": "ModelArtifact", "path": "/data/m", "created_at": NOW, "metadata": metadata}


@pytest.fixture()
def disk(monkeypatch):
    """Install a FullDisk (no fault yet) for this test only."""

    def install(fail_at: int | None = None) -> FullDisk:
        fault = FullDisk(fail_at)
        monkeypatch.setattr(ManifestStore, "local_files", fault)
        return fault

    return install


def leftovers(root: Path) -> list[str]:
    """Temporary files and empty directories a failed write left: there must be none."""
    found = []
    for path in root.rglob("*"):
        relative = str(path.relative_to(root))
        temporary = ".tmp-" in path.name or path.name.startswith(".write-test-") or path.parent.name == ".staging"
        empty_version = path.is_dir() and path.name.startswith("v") and not (path / "manifest.json").exists()
        if temporary or empty_version or path.name == ".lock":
            found.append(relative)
    return found


def assert_consistent(root: Path, name: str, versions: list[int]) -> None:
    """`versions` are exactly the versions of `name`, each complete; `latest` resolves to the last; the next
    commit takes the next number (no gap, no reuse)."""
    store = ManifestStore(str(root))
    assert leftovers(root) == []
    assert store.versions(name) == versions
    for version in versions:
        manifest = store.manifest(name, version)
        assert store.metadata(manifest)["step"] == manifest.metadata["step"]  # metadata.json or the manifest's
    if versions:
        assert store.resolve(name).version == versions[-1]
    assert [o for o in store.fsck() if o.removable] == []
    assert store.commit(name, record()).version == (versions[-1] if versions else 0) + 1


def count_writes(operation) -> list[tuple[str, str]]:
    fault = FullDisk(None)
    ManifestStore.local_files = fault
    operation()
    return fault.calls


def test_enospc_at_each_write_of_a_commit(tmp_path, disk):
    def fresh() -> Path:
        root = tmp_path / f"store-{uuid.uuid4().hex[:6]}"
        store = ManifestStore(str(root))
        store.commit("model", record(1))
        store.commit("model", record(2))
        return root

    base = fresh()
    disk()
    calls = count_writes(lambda: ManifestStore(str(base)).commit("model", record(3)))
    assert len(calls) >= 8, calls  # the write probe, the staged manifest and its link, metadata.json, latest
    linked = calls.index(("link", str(base / "model" / "v3" / "manifest.json").replace(os.sep, "/")))
    for k, (op, path) in enumerate(calls):
        root = fresh()
        fault = disk(k)
        try:
            manifest = ManifestStore(str(root)).commit("model", record(3))
        except NemotronError as exc:
            assert FULL in str(exc), (op, path, exc)
            assert fault.failed is not None and fault.failed[0] == op and k <= linked
            disk()
            assert not (root / "model" / "v3").exists(), (op, path)
            assert_consistent(root, "model", [1, 2])
            continue
        # the manifest was created before the fault: the commit is complete, whatever came after
        assert isinstance(manifest, Manifest) and manifest.version == 3, (op, path)
        assert k > linked or (op == "makedirs" and os.path.isdir(path)), (op, path)  # an existing dir: no fault
        disk()
        assert_consistent(root, "model", [1, 2, 3])


def test_enospc_at_each_write_of_an_alias_change(tmp_path, disk):
    def fresh() -> Path:
        root = tmp_path / f"store-{uuid.uuid4().hex[:6]}"
        store = ManifestStore(str(root))
        for step in range(3):
            store.commit("model", record(step))
        store.set_alias("model:v1", "prod")
        return root

    base = fresh()
    disk()
    calls = count_writes(lambda: ManifestStore(str(base)).set_alias("model:v2", "prod"))
    assert len(calls) >= 6, calls  # the lock, the history entry, the alias
    for k, (op, path) in enumerate(calls):
        root = fresh()
        disk(k)
        store = ManifestStore(str(root))
        try:
            store.set_alias("model:v2", "prod")
            expected = 2
        except (OSError, NemotronError) as exc:
            assert FULL in str(exc), (op, path, exc)
            expected = 1
        disk()
        history = store.alias_history("model")
        assert store.aliases("model") == {"prod": expected}, (op, path)
        assert history[-1]["version"] == expected and len(history) == expected, (op, path, history)
        assert leftovers(root) == [], (op, path)
        assert store.set_alias("model:v3", "prod") == 3  # nothing stuck: no lock left behind


def test_enospc_at_each_write_of_a_gc_deletion(tmp_path, disk):
    def fresh() -> Path:
        root = tmp_path / f"store-{uuid.uuid4().hex[:6]}"
        store = ManifestStore(str(root))
        for step in range(3):
            store.commit("model", record(step))
        (root / "model" / "latest").write_text("v1")  # a stale hint: the deletion must raise it first
        return root

    base = fresh()
    disk()
    calls = count_writes(lambda: ManifestStore(str(base)).delete_version("model", 2))
    for k, (op, path) in enumerate(calls):
        root = fresh()
        disk(k)
        store = ManifestStore(str(root))
        try:
            store.delete_version("model", 2)
            remaining = [1, 3]
        except (OSError, NemotronError) as exc:
            assert FULL in str(exc), (op, path, exc)
            remaining = [1, 2, 3]
        disk()
        assert store.versions("model") == remaining, (op, path)
        assert store.deleted_versions("model") == ({2} if remaining == [1, 3] else set()), (op, path)
        assert leftovers(root) == [], (op, path)
        assert store.commit("model", record()).version == 4, (op, path)  # v2 never reused, no gap


# -- end to end: `python -m nemotron stage=register` with the disk full at each write ---------------------------


def faulty_nemotron(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m nemotron ARGS` with storefaults' FullDisk installed (FAULT_AT, FAULT_MATCH, FAULT_LOG)."""
    return subprocess.run(
        [sys.executable, str(HERE / "storefaults.py"), *args],
        cwd=cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_enospc_at_each_write_of_a_register_run(tmp_path):
    data = make_data(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "writes.jsonl"

    def run(root: Path, **fault: str) -> subprocess.CompletedProcess[str]:
        env = clean_env(PYTHONPATH=HERE, **fault)
        args = ["stage=register", f"stage.path={data}", "stage.name=m", f"artifacts.manifest.root={root}"]
        return faulty_nemotron(*args, cwd=work, env=env)

    counted = run(tmp_path / "count", FAULT_LOG=str(log))
    assert counted.returncode == 0, counted.stderr[-3000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(c["path"].endswith("/m/v1/manifest.json") for c in calls), calls

    def one(k: int) -> tuple[int, dict, Path, subprocess.CompletedProcess[str]]:
        root = tmp_path / f"store-{k}"
        return k, calls[k], root, run(root, FAULT_AT=str(k))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, range(len(calls))))
    for k, call, root, result in results:
        where = f"write {k} ({call['op']} {call['path']})\n--- stderr\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, where
        store = ManifestStore(str(root))
        versions = store.versions("m") if root.exists() else []
        if result.returncode == 0:  # complete: v1 with its manifest, reported on stdout
            assert versions == [1], where
            assert json.loads(result.stdout.splitlines()[-1])["uri"] == "art://m:v1", where
            if call["op"] != "makedirs" and not call["path"].endswith("manifest.json"):
                assert "could not be written" in result.stderr, where  # metadata.json or latest: a warning
        else:  # nothing, and the message says so
            assert versions == [], where
            assert FULL in result.stderr and (
                "Nothing was committed" in result.stderr or "Cannot write to the artifact store" in result.stderr
            ), where
            assert result.stdout == "", where
        if root.exists():
            assert leftovers(root) == [], where
            assert store.commit("m", record()).version == len(versions) + 1, where
    # both outcomes happen: the fault before the manifest's link loses the commit, after it only the extras
    assert {r.returncode == 0 for _, _, _, r in results} == {True, False}


def test_disk_full_on_the_second_output_reports_the_first_as_committed(tmp_path):
    """pretrain_data commits tokenizer-tiny, then pretrain-data-tiny; the disk fills on the second commit."""
    pytest.importorskip("tokenizers", reason="the data stages need the train extra: pip install -e '.[train]'")
    root = tmp_path / "store"
    args = ["stage=pretrain_data", "scale.max_rows_per_source=300", "stage.shard_rows=100", "stage.chunk_rows=50"]
    env = clean_env(PYTHONPATH=HERE, FAULT_AT="0", FAULT_MATCH=f"{os.sep}pretrain-data-tiny{os.sep}")
    result = faulty_nemotron(*args, f"artifacts.manifest.root={root}", cwd=tmp_path, env=env)
    assert result.returncode != 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Nothing was committed" not in result.stderr, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "Committed tokenizer-tiny:v1" in message and "not committed: pretrain-data-tiny" in message, message
    assert FULL in message
    store = ManifestStore(str(root))
    assert store.versions("tokenizer-tiny") == [1]
    assert store.versions("pretrain-data-tiny") == []
    assert leftovers(root) == []


# -- a real full disk ------------------------------------------------------------------------------------------


@pytest.fixture()
def tiny_tmpfs(tmp_path):
    """A 300 KB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_commits_into_a_real_full_disk(tiny_tmpfs):
    """Commit with growing records until the disk is full: every version before is complete, the failing commit
    is a clear error or a complete version, and nothing it wrote is left behind once space is freed."""
    root = tiny_tmpfs / "store"
    store = ManifestStore(str(root))
    padding = "x" * 20_000
    committed = []
    error = None
    for step in range(100):
        try:
            committed.append(store.commit("model", {**record(step), "producer": padding}).version)
        except NemotronError as exc:
            error = exc
            break
    assert error is not None and FULL in str(error), "the disk never filled up"
    assert committed == list(range(1, len(committed) + 1))
    assert store.versions("model") == committed
    assert leftovers(root) == []
    shutil.rmtree(root / "model" / f"v{committed[0]}")  # free space (a version deleted outside nemotron)
    assert store.commit("model", record()).version == committed[-1] + 1
