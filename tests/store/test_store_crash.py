"""Crash safety: a writer killed with SIGKILL at any point of a commit leaves no visible partial version.

Two halves:
- random: a real writer process commits (and moves an alias) in a loop and is SIGKILLed after a random short
  delay, over and over; after every kill the store must be consistent;
- deterministic: each state a killed writer can leave (a staging temp file, a staging file already linked as
  the manifest, an empty `v{N}/`, a `v{N}/` holding only a torn metadata.json, a `latest.tmp-*`, a
  `metadata.json.tmp-*`, an alias's `.tmp-*`, a torn metadata.json of a committed version) is laid out by hand.

Either way: every version `versions()` lists parses and loads, `latest` resolves to the highest, a later
commit takes the next number, and `nemotron-art fsck` reports the orphans (exit 1), `--clean --grace 0`
removes them (exit 0), and a second fsck finds none.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron.artifacts import Artifact, ModelArtifact
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

pytestmark = pytest.mark.integration

NAME = "crashy"
CREATED = "2026-01-01T00:00:00Z"
REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from nemotron.store.manifest_store import ManifestStore

store = ManifestStore(sys.argv[1])
name = sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    i += 1
    record = {
        "type": "ModelArtifact",
        "path": f"/ckpt/{i}",
        "created_at": "2026-01-01T00:00:00Z",
        "metadata": {"path": f"/ckpt/{i}", "type": "ModelArtifact", "created_at": "2026-01-01T00:00:00Z", "step": i},
    }
    manifest = store.commit(name, record)
    if i % 3 == 0:
        store.set_alias(manifest.ref, "best")
"""


def record(step: int) -> dict:
    metadata = {"path": f"/ckpt/{step}", "type": "ModelArtifact", "created_at": CREATED, "step": step}
    return {"type": "ModelArtifact", "path": f"/ckpt/{step}", "created_at": CREATED, "metadata": metadata}


def fsck(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
    return subprocess.run(
        [sys.executable, "-m", "nemotron.artcli", "--root", str(root), "fsck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=root.parent,
    )


def manifests(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob(f"{NAME}/v*/manifest.json"))}


def assert_consistent(root: Path, torn: frozenset[int] = frozenset()) -> list[int]:
    """What a reader must see whatever a killed writer left: only whole versions, v1..vN, latest = vN.
    `torn`: versions whose metadata.json was damaged on purpose (readers fall back to the manifest)."""
    store = ManifestStore(str(root))
    versions = store.versions(NAME)
    assert versions == list(range(1, len(versions) + 1)), versions
    for version in versions:
        manifest = store.manifest(NAME, version)
        assert (manifest.name, manifest.version) == (NAME, version)
        assert store.metadata(manifest)["step"] == manifest.metadata["step"]
        metadata_file = root / NAME / f"v{version}" / "metadata.json"
        if metadata_file.exists() and version not in torn:  # written after the commit, atomically: absent or whole
            assert json.loads(metadata_file.read_text()) == manifest.metadata
        loaded = ModelArtifact.from_uri(f"{NAME}:v{version}", root=str(root))
        assert loaded.version == version and loaded.path == manifest.path
    if versions:
        assert store.resolve(NAME).version == versions[-1]
        hint = root / NAME / "latest"
        if hint.exists():
            assert hint.read_text() in {f"v{v}" for v in versions}  # whole, and never ahead of the versions
    for alias, version in store.aliases(NAME).items():
        assert alias == "best" and version in versions
        assert store.resolve(f"{NAME}:{alias}").version == version
    for event in store.alias_history(NAME):
        assert event["alias"] == "best" and event["version"] in versions
    return versions


def assert_fsck_cleans(root: Path, expected: set[str] | None = None, cli: bool = True) -> None:
    """`nemotron-art fsck` reports exactly what store.fsck() finds (exit 1 if any), --clean removes it."""
    store = ManifestStore(str(root))
    orphans = store.fsck()
    if expected is not None:
        assert {o.path for o in orphans} == {str(root / NAME / p) for p in expected}
    before = manifests(root)
    if not cli:
        assert store.fsck(clean=True, grace_s=0) == orphans
        assert store.fsck() == []
        assert manifests(root) == before
        return
    report = fsck(root)
    assert report.returncode == (1 if orphans else 0), report.stderr
    for orphan in orphans:
        assert f"orphan  {orphan.path}  ({orphan.reason})" in report.stdout
    assert f"{len(orphans)} orphan(s) found in {root}" in report.stdout
    for orphan in orphans:
        assert Path(orphan.path).exists()  # reporting removes nothing

    cleaned = fsck(root, "--clean", "--grace", "0")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"{len(orphans)} orphan(s) found, removed" in cleaned.stdout
    for orphan in orphans:
        assert not Path(orphan.path).exists()
    again = fsck(root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 orphan(s) found" in again.stdout
    assert manifests(root) == before  # cleaning never touches a committed version


# -- random kills of a real writer --------------------------------------------------------------------------


@pytest.mark.slow
def test_writer_killed_at_random_points(tmp_path):
    root = tmp_path / "store"
    rng = random.Random(20260101)
    kills = 0
    committed_before = 0
    for _ in range(20):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), NAME],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        try:
            writer.wait(timeout=rng.uniform(0.0, 0.12))
        except subprocess.TimeoutExpired:
            writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
        kills += 1
        versions = assert_consistent(root)
        assert len(versions) >= committed_before  # nothing committed ever disappears
        committed_before = len(versions)
    assert kills == 20
    assert committed_before > 0, "the writer never got to commit: the delays are too short for this machine"

    # a later writer carries on with the next number
    store = ManifestStore(str(root))
    assert store.commit(NAME, record(10_000)).version == committed_before + 1
    assert_consistent(root)
    assert_fsck_cleans(root)
    assert_consistent(root)
    assert store.commit(NAME, record(10_001)).version == committed_before + 2


# -- each state a killed writer can leave, laid out by hand ------------------------------------------------


def _committed_manifest(root: Path, version: int, step: int) -> bytes:
    """The bytes a writer would have linked as v{version}/manifest.json."""
    data = {**record(step), "name": NAME, "version": version, "committed_at": CREATED}
    data["metadata"]["name"] = NAME
    return Manifest.model_validate(data).model_dump_json(indent=2).encode()


def _staging_file(root: Path) -> None:  # killed while writing the temp file of the manifest
    (root / NAME / ".staging").mkdir(exist_ok=True)
    (root / NAME / ".staging" / "5f0c0ffee.json").write_bytes(_committed_manifest(root, 4, 4)[:40])


def _linked_staging_file(root: Path) -> None:  # killed after the link (v4 exists), before removing the temp
    data = _committed_manifest(root, 4, 4)
    (root / NAME / ".staging").mkdir(exist_ok=True)
    (root / NAME / ".staging" / "5f0c0ffee.json").write_bytes(data)
    (root / NAME / "v4").mkdir()
    os.link(root / NAME / ".staging" / "5f0c0ffee.json", root / NAME / "v4" / "manifest.json")


def _empty_version_dir(root: Path) -> None:  # killed between makedirs(v4) and the link
    (root / NAME / "v4").mkdir()


def _version_dir_with_torn_metadata(root: Path) -> None:  # what a non-atomic writer would leave
    (root / NAME / "v4").mkdir()
    (root / NAME / "v4" / "metadata.json").write_text('{"path": "/ckpt/4", "ty')


def _latest_tmp(root: Path) -> None:  # killed while moving the latest hint
    (root / NAME / "latest.tmp-5f0c0ffee").write_text("v")


def _metadata_tmp(root: Path) -> None:  # killed after committing v3, while writing its metadata.json
    (root / NAME / "v3" / "metadata.json").unlink()
    (root / NAME / "v3" / "metadata.json.tmp-5f0c0ffee").write_text('{"path": "/ck')
    (root / NAME / "latest").write_text("v2")  # and so before moving latest


def _alias_tmp(root: Path) -> None:  # killed while moving an alias
    (root / NAME / "aliases" / "best.tmp-5f0c0ffee").write_text("v3")


def _torn_metadata_of_a_version(root: Path) -> None:  # damage: the manifest still holds every field
    path = root / NAME / "v2" / "metadata.json"
    path.write_text(path.read_text()[:30])


STATES = {
    "staging-file": (_staging_file, [1, 2, 3], {".staging/5f0c0ffee.json"}),
    "linked-staging-file": (_linked_staging_file, [1, 2, 3, 4], {".staging/5f0c0ffee.json"}),
    "empty-version-dir": (_empty_version_dir, [1, 2, 3], {"v4"}),
    "version-dir-with-torn-metadata": (_version_dir_with_torn_metadata, [1, 2, 3], {"v4"}),
    "latest-tmp": (_latest_tmp, [1, 2, 3], {"latest.tmp-5f0c0ffee"}),
    "metadata-tmp": (_metadata_tmp, [1, 2, 3], {"v3/metadata.json.tmp-5f0c0ffee"}),
    "alias-tmp": (_alias_tmp, [1, 2, 3], {"aliases/best.tmp-5f0c0ffee"}),
    "torn-metadata-of-a-version": (_torn_metadata_of_a_version, [1, 2, 3], set()),
}
TORN = {"torn-metadata-of-a-version": frozenset({2})}


@pytest.fixture
def store_with_three_versions(tmp_path) -> Path:
    root = tmp_path / "store"
    store = ManifestStore(str(root))
    for step in (1, 2, 3):
        store.commit(NAME, record(step))
    store.set_alias(f"{NAME}:v2", "best")
    return root


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("order", ["fsck-then-commit", "commit-then-fsck"])
def test_state_left_by_a_killed_writer(store_with_three_versions, state, order):
    root = store_with_three_versions
    make, visible, orphans = STATES[state]
    untouched = {k: v for k, v in manifests(root).items()}
    make(root)
    torn = TORN.get(state, frozenset())

    assert assert_consistent(root, torn) == visible
    for path, content in untouched.items():
        assert (root / path).read_bytes() == content
    assert ManifestStore(str(root)).aliases(NAME) == {"best": 2}
    assert type(Artifact.from_uri(NAME, root=str(root))) is ModelArtifact

    following = visible[-1] + 1
    if order == "fsck-then-commit":
        assert_fsck_cleans(root, orphans)
        assert ManifestStore(str(root)).commit(NAME, record(99)).version == following
    else:
        assert ManifestStore(str(root)).commit(NAME, record(99)).version == following
        # the commit reused an orphan v{N} dir if there was one; what is left is still found and cleaned
        assert_fsck_cleans(root, cli=False)
    assert assert_consistent(root, torn) == [*visible, following]
    assert ManifestStore(str(root)).resolve(NAME).metadata["step"] == 99
    assert (root / NAME / "latest").read_text() == f"v{following}"


def test_all_states_at_once(store_with_three_versions):
    root = store_with_three_versions
    for make in (_staging_file, _latest_tmp, _alias_tmp, _metadata_tmp, _empty_version_dir):
        make(root)
    assert assert_consistent(root) == [1, 2, 3]
    expected = {".staging/5f0c0ffee.json", "latest.tmp-5f0c0ffee", "aliases/best.tmp-5f0c0ffee"}
    assert_fsck_cleans(root, expected | {"v3/metadata.json.tmp-5f0c0ffee", "v4"})
    assert sorted(p.name for p in (root / NAME).iterdir()) == [".staging", "alias_history", "aliases", "latest"] + [
        "v1",
        "v2",
        "v3",
    ]
    assert ManifestStore(str(root)).commit(NAME, record(4)).version == 4


def test_fsck_keeps_fresh_orphans_without_grace_zero(store_with_three_versions):
    """A writer may be mid-commit right now: --clean alone leaves what is younger than the grace period."""
    root = store_with_three_versions
    _empty_version_dir(root)
    _staging_file(root)
    result = fsck(root, "--clean")
    assert result.returncode == 0
    assert "2 orphan(s) found, removed those older than the grace period" in result.stdout
    assert (root / NAME / "v4").is_dir() and (root / NAME / ".staging" / "5f0c0ffee.json").exists()
    assert fsck(root).returncode == 1


def test_fsck_of_a_missing_root(tmp_path):
    result = fsck(tmp_path / "nowhere")
    assert result.returncode != 0
    assert "does not exist" in result.stderr + result.stdout
    assert not (tmp_path / "nowhere").exists()
