"""The manifest store on a local directory and on `memory://`: numbering, `latest`, aliases, errors, damaged
records, orphans, file digests and secret redaction. Real filesystems, no mocks."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import pytest
import xxhash

from nemotron.artifacts import ModelArtifact, SFTDataArtifact
from nemotron.errors import ArtifactNotFoundError, BadReferenceError, CommitError, NemotronError, StoreError
from nemotron.secrets import REDACTED, redact, redact_override
from nemotron.store.files import scan_files
from nemotron.store.manifest_store import ManifestStore
from nemotron.tracking import session
from nemotron.tracking.runinfo import build_run_record
from nemotron.tracking.session import ArtifactSettings, Tracking

pytestmark = pytest.mark.unit

NOW = "2026-01-02T03:04:05+00:00"


def record(**fields) -> dict:
    """A commit record whose metadata is a valid ModelArtifact dump, tagged with `fields`."""
    metadata = {"path": "/data/m", "type": "ModelArtifact", "created_at": NOW, "metadata": fields}
    return {"type": "ModelArtifact", "path": "/data/m", "created_at": NOW, "metadata": metadata}


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    url = f"memory://store-{uuid.uuid4().hex}"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture(autouse=True)
def no_active_tracking():
    token = session._ACTIVE.set(None)
    yield
    session._ACTIVE.reset(token)


def write(store: ManifestStore, relative: str, data: bytes) -> None:
    path = store._p(relative)
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    store.fs.pipe_file(path, data)


def read(store: ManifestStore, relative: str) -> bytes:
    return store.fs.cat_file(store._p(relative))


def exists(store: ManifestStore, relative: str) -> bool:
    return store.fs.exists(store._p(relative))


def listing(store: ManifestStore) -> dict[str, bytes]:
    """Every file under the root with its content."""
    if not store.fs.exists(store.root):
        return {}
    return {path: store.fs.cat_file(path) for path in sorted(store.fs.find(store.root))}


def committed(store: ManifestStore, name: str, count: int) -> list[int]:
    return [store.commit(name, record(i=i)).version for i in range(count)]


# -- numbering and latest ----------------------------------------------------------------------------------


def test_commit_assigns_consecutive_versions(root):
    store = ManifestStore(root)
    assert committed(store, "model", 3) == [1, 2, 3]
    assert committed(store, "other", 1) == [1]
    assert store.versions("model") == [1, 2, 3]
    assert store.names() == ["model", "other"]
    for version in (1, 2, 3):
        manifest = store.resolve(f"model:v{version}")
        assert (manifest.name, manifest.version, manifest.ref) == ("model", version, f"model:v{version}")
        assert manifest.metadata["metadata"] == {"i": version - 1}
        assert manifest.metadata["name"] == "model"
        stored = json.loads(read(store, f"model/v{version}/manifest.json"))
        assert stored["version"] == version
        assert json.loads(read(store, f"model/v{version}/metadata.json")) == manifest.metadata
    assert read(store, "model/latest") == b"v3"


@pytest.mark.parametrize("reference", ["model", "art://model", "model:latest", "art://model:latest"])
def test_latest_resolves_to_the_highest_version(root, reference):
    store = ManifestStore(root)
    committed(store, "model", 4)
    assert store.resolve(reference).version == 4
    assert store.latest_version("model") == 4


def test_exact_version_commit(root):
    store = ManifestStore(root)
    committed(store, "model", 2)
    assert store.commit("model", record(), version=5).version == 5
    with pytest.raises(CommitError, match="model:v2 already exists"):
        store.commit("model", record(), version=2)
    assert store.resolve("model:v2").metadata["metadata"] == {"i": 1}  # untouched
    assert store.commit("model", record()).version == 6


def test_invalid_record_is_not_committed(root):
    store = ManifestStore(root)
    with pytest.raises(Exception, match="type"):
        store.commit("model", {"path": "/x", "created_at": NOW, "metadata": {}})
    assert store.versions("model") == []


def test_invalid_name_is_refused_before_writing(root):
    store = ManifestStore(root)
    for name in ("Model", "a/b", "..", ""):
        with pytest.raises(BadReferenceError):
            store.commit(name, record())
    assert listing(store) == {}


# -- the `latest` hint is never trusted blindly ----------------------------------------------------------


@pytest.mark.parametrize("hint", [b"v1", b"v3", b"v0", b"", b"garbage", b"v-2", None])
def test_stale_or_lowered_latest_hint(root, hint):
    store = ManifestStore(root)
    committed(store, "model", 5)
    if hint is None:
        store.fs.rm(store._p("model", "latest"))
    else:
        write(store, "model/latest", hint)
    fresh = ManifestStore(root)
    assert fresh.resolve("model").version == 5
    assert fresh.latest_version("model") == 5
    # the next commit takes v6 and overwrites nothing
    before = {v: read(store, f"model/v{v}/manifest.json") for v in range(1, 6)}
    assert fresh.commit("model", record(i="new")).version == 6
    assert {v: read(store, f"model/v{v}/manifest.json") for v in range(1, 6)} == before
    assert read(store, "model/latest") == b"v6"


def test_hint_naming_a_missing_version(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    write(store, "model/latest", b"v7")
    assert ManifestStore(root).resolve("model").version == 3


def test_latest_is_not_lowered_by_a_slow_writer(root):
    """A writer that commits v2 after another committed v3 must not move the hint back to v2."""
    store = ManifestStore(root)
    committed(store, "model", 3)
    manifest = store.resolve("model:v2")
    store._after_commit(manifest)  # what the slow winner of v2 does last
    assert read(store, "model/latest") == b"v3"


def test_resolving_latest_costs_at_most_three_file_operations(root):
    store = ManifestStore(root)
    committed(store, "model", 20)
    fresh = ManifestStore(root)
    assert fresh.file_ops == 0
    assert fresh.resolve("model").version == 20
    assert fresh.file_ops <= 3
    before = fresh.file_ops
    fresh.resolve("model:v7")
    assert fresh.file_ops - before == 1


def test_lowered_hint_costs_one_read_per_missed_version(root):
    store = ManifestStore(root)
    committed(store, "model", 6)
    write(store, "model/latest", b"v4")
    fresh = ManifestStore(root)
    assert fresh.resolve("model").version == 6
    assert fresh.file_ops <= 4  # latest, v5, v6 (read once: the probe is the manifest), v7 miss


# -- aliases ---------------------------------------------------------------------------------------------


def test_aliases_set_resolve_and_history(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    assert store.set_alias("model:v1", "production") == 1
    assert store.resolve("model:production").version == 1
    assert store.set_alias("model", "production") == 3  # latest
    assert store.set_alias("model:2", "staging") == 2
    assert store.resolve("art://model:production").version == 3
    assert store.aliases("model") == {"production": 3, "staging": 2}
    history = store.alias_history("model")
    assert [(e["alias"], e["version"], e["previous"]) for e in history] == [
        ("production", 1, None),
        ("production", 3, 1),
        ("staging", 2, None),
    ]
    assert all(e["at"] and e["user"] and e["host"] for e in history)
    # an alias pins: a new version does not move it
    committed(store, "model", 1)
    assert store.resolve("model:production").version == 3
    assert store.resolve("model").version == 4


def test_latest_cannot_be_set_as_alias(root):
    store = ManifestStore(root)
    committed(store, "model", 1)
    with pytest.raises(BadReferenceError, match="reserved"):
        store.set_alias("model:v1", "latest")
    with pytest.raises(BadReferenceError, match="not a valid alias"):
        store.set_alias("model:v1", "v1")
    assert store.aliases("model") == {}
    assert store.alias_history("model") == []


def test_alias_of_a_missing_version_is_not_set(root):
    store = ManifestStore(root)
    committed(store, "model", 1)
    with pytest.raises(ArtifactNotFoundError):
        store.set_alias("model:v9", "production")
    with pytest.raises(ArtifactNotFoundError):
        store.set_alias("nothing", "production")
    assert store.aliases("model") == {}
    assert store.alias_history("model") == []


# -- errors for what is not there -------------------------------------------------------------------------


def test_unknown_name(root):
    store = ManifestStore(root)
    committed(store, "tiny-model", 1)
    for reference in ("model", "model:v1", "model:production"):
        with pytest.raises(ArtifactNotFoundError) as info:
            store.resolve(reference)
        message = str(info.value)
        assert "No artifact named 'model'" in message
        assert "tiny-model" in message  # a similar name is suggested
        assert "nemotron-art ls" in message


def test_unknown_version(root):
    store = ManifestStore(root)
    committed(store, "model", 2)
    with pytest.raises(ArtifactNotFoundError) as info:
        store.resolve("model:v5")
    assert "model:v5 does not exist" in str(info.value)
    assert "latest version is v2" in str(info.value)
    assert "v1..v2" in str(info.value)
    with pytest.raises(ArtifactNotFoundError, match="model:v9 does not exist"):
        store.manifest("model", 9)


def test_unknown_alias(root):
    store = ManifestStore(root)
    committed(store, "model", 2)
    store.set_alias("model:v1", "staging")
    with pytest.raises(ArtifactNotFoundError) as info:
        store.resolve("model:production")
    message = str(info.value)
    assert "no alias 'production'" in message
    assert "aliases: staging" in message
    assert "nemotron-art alias model:vN production" in message


@pytest.mark.parametrize("call", ["names", "resolve", "resolve_version", "resolve_alias"])
def test_missing_root_on_read(root, call):
    store = ManifestStore(root)
    with pytest.raises(StoreError) as info:
        if call == "names":
            store.names()
        elif call == "resolve":
            store.resolve("model")
        elif call == "resolve_version":
            store.resolve("model:v3")
        else:
            store.resolve("model:production")
    assert "does not exist" in str(info.value)
    assert root in str(info.value)
    assert listing(store) == {}


def test_bad_root_argument():
    with pytest.raises(StoreError, match="must be a path or URL"):
        ManifestStore("")


# -- damaged records ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"name": "model"}', b"[]", b'{"name": "model", "versi'])
def test_corrupt_manifest_is_a_store_error(root, content):
    store = ManifestStore(root)
    committed(store, "model", 2)
    write(store, "model/v2/manifest.json", content)
    for reference in ("model:v2", "model"):
        with pytest.raises(StoreError) as info:
            store.resolve(reference)
        message = str(info.value)
        assert "model:v2" in message and "corrupt" in message and "nemotron-art fsck" in message
    with pytest.raises(StoreError):
        store.manifest("model", 2)
    assert store.resolve("model:v1").version == 1
    assert [o.reason for o in store.fsck()] == ["manifest.json does not parse"]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_metadata_json_falls_back_to_the_manifest(root, damage, tmp_path):
    data = tmp_path / "ckpt"
    data.mkdir()
    tracking = Tracking(ArtifactSettings(root=root))
    tracking.commit(ModelArtifact(path=str(data), step=42, metadata={"lr": 0.5}), name="model")
    store = ManifestStore(root)
    if damage == "missing":
        store.fs.rm(store._p("model", "v1", "metadata.json"))
    else:
        write(store, "model/v1/metadata.json", read(store, "model/v1/metadata.json")[:25])
    manifest = store.resolve("model")
    assert store.metadata(manifest)["step"] == 42
    loaded = ModelArtifact.from_uri("model:v1", root=root)
    assert (loaded.step, loaded.field("lr"), loaded.version) == (42, 0.5, 1)


# -- orphans ---------------------------------------------------------------------------------------------


def test_fsck_finds_and_cleans_orphans(root):
    store = ManifestStore(root)
    committed(store, "model", 2)
    store.fs.makedirs(store._p("model", "v3"), exist_ok=True)  # a writer died before its commit
    write(store, "model/.staging/0123abcd.json", b'{"name": "mod')  # a half-written temp file
    write(store, "model/latest.tmp-0123abcd", b"v")  # a half-written latest
    write(store, "model/v2/metadata.json.tmp-0123abcd", b'{"pa')  # killed while writing metadata.json
    store.set_alias("model:v1", "production")
    write(store, "model/aliases/production.tmp-0123abcd", b"v2")  # killed while moving an alias
    orphans = store.fsck()
    assert sorted((o.path.rsplit("/model/", 1)[1], o.reason) for o in orphans) == [
        (".staging/0123abcd.json", "temporary file of a writer"),
        ("aliases/production.tmp-0123abcd", "temporary file of a writer"),
        ("latest.tmp-0123abcd", "temporary file of a writer"),
        ("v2/metadata.json.tmp-0123abcd", "temporary file of a writer"),
        ("v3", "version directory without manifest.json"),
    ]
    # never a visible version or alias, and the next commit takes v3
    assert store.versions("model") == [1, 2]
    assert store.resolve("model").version == 2
    assert store.aliases("model") == {"production": 1}

    assert len(store.fsck(clean=True)) == 5  # default grace: too fresh to remove
    assert len(store.fsck()) == 5
    assert len(store.fsck(clean=True, grace_s=0)) == 5
    assert store.fsck() == []
    assert not exists(store, "model/v3")
    assert store.versions("model") == [1, 2]
    assert exists(store, "model/v2/metadata.json") and exists(store, "model/aliases/production")
    assert store.resolve("model:production").version == 1
    assert store.commit("model", record()).version == 3


def test_fsck_reports_a_damaged_committed_version_and_never_removes_it(root, capsys):
    from nemotron.artcli import main as nemotron_art

    store = ManifestStore(root)
    committed(store, "model", 3)
    write(store, "model/v2/manifest.json", b'{"name": "model", "versi')  # damaged after its commit
    write(store, "model/v2/weights.note", b"kept")
    store.fs.makedirs(store._p("model", "v4"), exist_ok=True)  # a writer died before its commit: an orphan
    [damaged] = [o for o in store.fsck() if not o.removable]
    assert damaged.path == store._p("model", "v2") and damaged.reason == "manifest.json does not parse"

    before = {path: content for path, content in listing(store).items() if "/v2/" in path}
    assert len(store.fsck(clean=True, grace_s=0)) == 2
    assert {path: content for path, content in listing(store).items() if "/v2/" in path} == before
    assert not exists(store, "model/v4")  # the orphan went
    assert store.fsck() == [damaged]  # the damaged version is still reported

    assert nemotron_art(["--root", root, "fsck", "--clean", "--grace", "0"]) == 1  # something needs a person
    out = capsys.readouterr().out
    assert f"damaged  {damaged.path}  (manifest.json does not parse; a committed version: never removed" in out
    assert "0 orphan(s) found, removed" in out and "1 damaged version(s) kept" in out
    assert exists(store, "model/v2/manifest.json") and exists(store, "model/v2/weights.note")


def test_fsck_on_a_clean_store(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    store.set_alias("model:v2", "production")
    before = listing(store)
    assert store.fsck() == []
    assert store.fsck(clean=True, grace_s=0) == []
    assert listing(store) == before


# -- file lists ------------------------------------------------------------------------------------------


def test_files_are_listed_with_xxh3_digests(root, tmp_path):
    contents = {"a.bin": b"\x01" * 1000, "sub/b.txt": b"hello", "sub/deeper/c": b""}
    data_url = f"{root}-data/shards" if root.startswith("memory://") else str(tmp_path / "shards")
    fs, base = fsspec.core.url_to_fs(data_url)
    for relative, content in contents.items():
        fs.makedirs(f"{base}/{relative}".rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(f"{base}/{relative}", content)
    entries = scan_files(data_url)
    assert [(e.path, e.size, e.digest) for e in entries] == [
        (relative, len(content), f"xxh3_128:{xxhash.xxh3_128(content).hexdigest()}")
        for relative, content in sorted(contents.items())
    ]
    assert [e.digest for e in scan_files(data_url, with_digests=False)] == [None] * 3
    single = scan_files(f"{data_url}/sub/b.txt")
    assert [(e.path, e.size) for e in single] == [("b.txt", 5)]
    assert scan_files(f"{data_url}/absent") == []

    tracking = Tracking(ArtifactSettings(root=root))
    tracking.commit(SFTDataArtifact(path=data_url), name="sft")
    assert ManifestStore(root).resolve("sft").files == entries
    if root.startswith("memory://"):
        fs.rm(base, recursive=True)


# -- secrets ---------------------------------------------------------------------------------------------


def test_redact_nested_structures():
    config = {
        "wandb": {"api_key": "abc", "project": "p", "entity": "e"},
        "hf_token": "hf_xyz",
        "Secret": 5,
        "db": [{"PASSWORD": "pw", "user": "u"}, "plain"],
        "aws_credentials": {"id": "a"},
        "empty_token": "",
        "none_key": None,
        "exclude_keys": [],
        "monkey": "banana",
        "tokens": 12,
        "tokenizer": "gpt2",
        "max_new_tokens": 8,
        "input_key": "problem",
        "eod_token": "<|endoftext|>",
        "apiKey": "k",
    }
    assert redact(config) == {
        "wandb": {"api_key": REDACTED, "project": "p", "entity": "e"},
        "hf_token": REDACTED,
        "Secret": REDACTED,
        "db": [{"PASSWORD": REDACTED, "user": "u"}, "plain"],
        "aws_credentials": REDACTED,
        "empty_token": "",
        "none_key": None,
        "exclude_keys": [],
        "monkey": "banana",  # names that only contain "key" or "token" are kept
        "tokens": 12,
        "tokenizer": "gpt2",
        "max_new_tokens": 8,
        "input_key": "problem",
        "eod_token": "<|endoftext|>",
        "apiKey": REDACTED,
    }
    assert config["wandb"]["api_key"] == "abc"  # a copy: the input is unchanged


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("wandb.api_key=abc", f"wandb.api_key={REDACTED}"),
        ("+HF_TOKEN=hf_1", f"+HF_TOKEN={REDACTED}"),
        ("db.password=", f"db.password={REDACTED}"),
        ("stage.lr=0.1", "stage.lr=0.1"),
        ("--multirun", "--multirun"),
        ("stage=register", "stage=register"),
    ],
)
def test_redact_override(item, expected):
    assert redact_override(item) == expected


def test_secrets_never_reach_the_store(root, tmp_path):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    data = tmp_path / "ckpt"
    data.mkdir()
    run = build_run_record(
        config={"wandb": {"api_key": secret}, "stage": {"lr": 0.1}},
        overrides=[f"wandb.api_key={secret}", "stage.lr=0.1"],
        command=["python", "-m", "nemotron", f"+my_token={secret}"],
    )
    tracking = Tracking(ArtifactSettings(root=root))
    artifact = ModelArtifact(path=str(data), metadata={"hf_token": secret, "note": "kept"})
    tracking.commit(artifact, name="model", run=run)
    stored = listing(ManifestStore(root))
    assert stored and not any(secret.encode() in content for content in stored.values())
    manifest = ManifestStore(root).resolve("model")
    assert manifest.run.overrides == [f"wandb.api_key={REDACTED}", "stage.lr=0.1"]
    assert manifest.run.config["wandb"]["api_key"] == REDACTED
    assert manifest.run.command[-1] == f"+my_token={REDACTED}"
    assert manifest.metadata["metadata"] == {"hf_token": REDACTED, "note": "kept"}


# -- roots that cannot be written ------------------------------------------------------------------------


def test_root_beneath_a_file(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = ManifestStore(str(blocker / "store"))
    with pytest.raises(StoreError) as info:
        store.commit("model", record())
    message = str(info.value)
    assert "Cannot write to the artifact store root" in message and str(blocker / "store") in message
    assert "artifacts.manifest.root" in message
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]
    with pytest.raises(StoreError, match="does not exist"):
        store.resolve("model")


def _read_only_mount_works(directory: Path) -> bool:
    script = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} {directory}"
    try:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


WRITER = """
import sys
from nemotron.errors import StoreError
from nemotron.store.manifest_store import ManifestStore
store = ManifestStore(sys.argv[1])
print(store.resolve("model").version)
try:
    store.commit("model", {"type": "Artifact", "path": "/d", "created_at": "2026-01-01T00:00:00Z", "metadata": {}})
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_read_only_root(tmp_path):
    """A store on a read-only filesystem (a private read-only bind mount: as root, chmod would not stop us)
    can be read, and a commit is a clear StoreError that writes nothing."""
    root = tmp_path / "ro-store"
    store = ManifestStore(str(root))
    committed(store, "model", 2)
    before = listing(store)
    if not _read_only_mount_works(root):
        pytest.skip("cannot create a read-only bind mount here (needs unshare -m); test_root_beneath_a_file covers it")
    command = shlex.join([sys.executable, "-c", WRITER, str(root)])
    script = f"mount --bind {root} {root} && mount -o remount,ro,bind {root} {root} && exec {command}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2"
    assert "Cannot write to the artifact store root" in lines[1]
    assert "Read-only file system" in lines[1]
    assert listing(store) == before


def test_error_types_are_nemotron_errors():
    for error in (StoreError, ArtifactNotFoundError, BadReferenceError, CommitError):
        assert issubclass(error, NemotronError)


def test_created_at_round_trips(root):
    store = ManifestStore(root)
    manifest = store.commit("model", record())
    assert manifest.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert store.resolve("model").committed_at == manifest.committed_at


# -- hints never create gaps, numbers are never reused, aliases never dangle (issue 12) ----------------------


@pytest.mark.parametrize("hint", [b"v999", b"v4"])
def test_hint_past_the_last_version_never_creates_a_gap(root, hint):
    store = ManifestStore(root)
    committed(store, "model", 3)
    write(store, "model/latest", hint)
    fresh = ManifestStore(root)
    assert fresh.latest_version("model") == 3
    assert fresh.resolve("model").version == 3
    assert fresh.commit("model", record()).version == 4  # never v1000 or v5
    assert fresh.versions("model") == [1, 2, 3, 4]
    assert read(store, "model/latest") == b"v4"  # the commit replaced the hint that named nothing


def test_deleted_version_numbers_are_never_reused(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    store.delete_version("model", 1)
    store.delete_version("model", 2)
    write(store, "model/latest", b"v1")  # a stale hint naming a deleted version
    assert store.resolve("model").version == 3
    assert store.commit("model", record()).version == 4
    assert store.deleted_versions("model") == {1, 2}
    with pytest.raises(CommitError, match="never reused"):
        store.commit("model", record(), version=2)


def test_a_hint_below_a_deleted_version_is_raised_by_the_deletion(root):
    """v1..v4, latest says v2 (a writer died before raising it), gc deletes v3: probing from v2 would stop at
    the gap, so `latest` would read v2 and the next commit would take the deleted v3."""
    store = ManifestStore(root)
    committed(store, "model", 4)
    write(store, "model/latest", b"v2")
    store.delete_version("model", 3)
    assert store.resolve("model").version == 4
    assert store.commit("model", record()).version == 5
    # the deletion record alone keeps the number too, whatever the hint says
    write(store, "model/latest", b"v2")
    store.fs.rm(store._p("model", "v5"), recursive=True)
    store.fs.rm(store._p("model", "v4"), recursive=True)
    assert store.commit("model", record()).version == 4  # v4 and v5 vanished without gc: free numbers again
    assert 3 not in store.versions("model")


def test_alias_history_is_a_chain_that_ends_at_the_alias(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    for version in (1, 3, 2, 2):
        store.set_alias(f"model:v{version}", "prod")
    history = store.alias_history("model")
    assert [e["version"] for e in history] == [1, 3, 2, 2]
    assert [e["previous"] for e in history] == [None, 1, 3, 2]
    assert history[-1]["version"] == store.aliases("model")["prod"]
    assert not exists(store, "model/aliases/.lock")  # released
    assert "lock" not in " ".join(store.aliases("model"))


def test_a_stale_alias_lock_is_broken(root):
    store = ManifestStore(root)
    committed(store, "model", 1)
    write(store, "model/aliases/.lock", json.dumps({"pid": 1, "host": "gone", "at": 0}).encode())
    assert store.set_alias("model:v1", "prod") == 1


def test_gc_never_deletes_a_version_aliased_after_its_plan(root):
    """The gc end: the plan was made before `alias model:v1 keep`; deleting checks again, under the lock, and
    keeps what model:v1 was made from (data:v1) too."""
    from nemotron.artcli.gc import apply_gc, plan_gc

    store = ManifestStore(root)
    committed(store, "data", 2)
    for used in ("data:v1", "data:v2", "data:v2", "data:v2"):
        store.commit("model", {**record(), "used_artifacts": [used]})
    plan = plan_gc(store, keep_last=1)
    assert sorted(m.ref for m in plan.delete) == ["data:v1", "model:v1", "model:v2", "model:v3"]
    store.set_alias("model:v1", "keep")
    said = []
    apply_gc(store, plan, progress=said.append)
    assert store.versions("model") == [1, 4] and store.versions("data") == [1, 2]
    assert store.resolve("model:keep").version == 1
    assert sorted(m.ref for m in plan.delete) == ["model:v2", "model:v3"]
    assert plan.keep["model:v1"] == ["the alias keep points at it"]
    assert plan.keep["data:v1"] == ["upstream of model:v1"]
    assert "kept model:v1: the alias keep points at it" in said and "kept data:v1: upstream of model:v1" in said


def test_alias_refuses_a_version_gc_is_deleting(root):
    """The alias end: gc wrote its deletion record (under the lock) and is about to remove the manifest."""
    store = ManifestStore(root)
    committed(store, "model", 3)
    write(store, "model/deletions/00000000000000000001-abcdef12-v2.json", b'{"version": 2}')
    with pytest.raises(ArtifactNotFoundError, match="being deleted"):
        store.set_alias("model:v2", "keep")
    assert store.aliases("model") == {} and store.alias_history("model") == []


def test_alias_pointing_at_a_deleted_version_names_the_alias(root):
    store = ManifestStore(root)
    committed(store, "model", 3)
    store.set_alias("model:v2", "golden")
    store.fs.rm(store._p("model", "v2"), recursive=True)  # as an older nemotron's gc could leave it
    write(store, "model/deletions/00000000000000000001-abcdef12.json", b'{"version": 2}')  # the old record name
    with pytest.raises(ArtifactNotFoundError, match=r"alias model:golden points at v2, which no longer exists"):
        store.resolve("model:golden")
    with pytest.raises(ArtifactNotFoundError, match=r"deleted: see model/deletions/"):
        store.resolve("model:golden")
    assert store.commit("model", record()).version == 4
