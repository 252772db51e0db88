"""End to end: a manifest store on `s3://`, served by moto's S3 server on 127.0.0.1 (started here).

The store code is the same as for local roots; only the commit primitive differs (a put with
`If-None-Match: *` instead of a hard link). Every command is a real subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import (
    PLUGIN_STAGE,
    clean_env,
    json_line,
    make_data,
    make_plugin,
    nemotron,
    nemotron_art,
    ok,
    register,
)

pytest.importorskip("s3fs", reason="s3:// roots need the s3 extra: pip install -e '.[dev]'")
pytest.importorskip("moto.server", reason="the S3 tests need moto[server]: pip install -e '.[dev]'")

from helpers.s3server import moto_s3, s3_env

pytestmark = pytest.mark.integration

BUCKET = "nemotron-test"
ROOT = f"s3://{BUCKET}/root"
WRITERS, COMMITS = 8, 25

# One writer process: waits for the start signal, then commits COMMITS versions of one name through the
# manifest store (what Artifact.save and the Hydra callback call; without their run record, which would
# cost two git calls per commit), printing each version it got.
WRITER = """\
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from nemotron.store.manifest_store import ManifestStore

root, writer, commits, data, go = sys.argv[1:]
store = ManifestStore(root)
while not Path(go).exists():
    time.sleep(0.01)
for seq in range(int(commits)):
    fields = {"path": data, "type": "Artifact", "metadata": {"writer": int(writer), "seq": seq}}
    record = {"type": "Artifact", "path": data, "created_at": datetime.now(timezone.utc), "metadata": fields}
    print(store.commit("shared", record).version, flush=True)
"""


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3(BUCKET) as url:
        yield url


def _env(endpoint: str, credentials: bool = True, **extra) -> dict[str, str]:
    drop = {k: None for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    return clean_env(**{**drop, **s3_env(endpoint, credentials), **extra})


def test_concurrent_writers_get_distinct_versions(tmp_path, endpoint, monkeypatch):
    root = f"{ROOT}/concurrent"
    data = make_data(tmp_path / "data")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    env = _env(endpoint)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), root, str(w), str(COMMITS), str(data), str(go)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    time.sleep(0.5)
    go.touch()
    got = []
    for proc in writers:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        got.extend(int(line) for line in out.split())
    total = WRITERS * COMMITS
    assert sorted(got) == list(range(1, total + 1))  # every commit got its own version, none lost

    from nemotron.store.manifest_store import ManifestStore

    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    store = ManifestStore(root)
    assert store.versions("shared") == list(range(1, total + 1))
    stamps = {(m.metadata["metadata"]["writer"], m.metadata["metadata"]["seq"]) for m in _manifests(store, total)}
    assert len(stamps) == total  # no manifest overwritten by another writer
    assert store.resolve("shared:latest").version == total
    shown = json.loads(ok(nemotron_art("--root", root, "show", "shared", "--json", cwd=tmp_path, env=env)).stdout)
    assert shown["version"] == total
    assert store.fsck() == []


def _manifests(store, total: int):
    return [store.manifest("shared", v) for v in range(1, total + 1)]


def test_references_aliases_and_lineage_on_s3(tmp_path, endpoint):
    root = f"{ROOT}/lineage"
    env = _env(endpoint, NEMOTRON_ARTIFACTS_ROOT=root)
    config_dir, module_dir = make_plugin(tmp_path)
    env["PYTHONPATH"] = str(module_dir)
    raw = register("raw-text", make_data(tmp_path / "raw"), tmp_path, env)
    assert raw["uri"] == "art://raw-text:v1"

    ok(nemotron_art("alias", "raw-text:v1", "golden", cwd=tmp_path, env=env))
    stage = ("--config-dir", config_dir, f"stage={PLUGIN_STAGE}", "run.src=raw-text:golden")
    derived = json_line(ok(nemotron(*stage, cwd=tmp_path, env=env)))
    assert derived["uri"] == "art://derived:v1"

    shown = json.loads(ok(nemotron_art("show", "derived:latest", "--json", cwd=tmp_path, env=env)).stdout)
    assert shown["used_artifacts"] == ["raw-text:v1"]
    graph = json.loads(ok(nemotron_art("lineage", "derived", "--json", cwd=tmp_path, env=env)).stdout)
    assert graph["ref"] == "derived:v1" and [n["ref"] for n in graph["inputs"]] == ["raw-text:v1"]

    # a second version, an alias moved to it, and ${art:} references of every form
    register("raw-text", make_data(tmp_path / "raw2", "second\n"), tmp_path, env)
    ok(nemotron_art("alias", "raw-text:2", "golden", cwd=tmp_path, env=env))
    listed = ok(nemotron_art("ls", "raw-text", "--json", cwd=tmp_path, env=env)).stdout
    assert "golden" in listed
    probes = [("raw-text:golden", "raw2"), ("art://raw-text:v1", "raw"), ("raw-text", "raw2")]
    keys = [f"+probe{i}=${{art:{reference},path}}" for i, (reference, _) in enumerate(probes)]
    job = ("stage=register", "stage.path=x", "stage.name=x", *keys)
    out = ok(nemotron("--cfg", "job", "--resolve", *job, cwd=tmp_path, env=env)).stdout
    for i, (_, expected) in enumerate(probes):
        assert f"probe{i}: {tmp_path / expected}" in out, out


def test_s3_root_without_credentials_is_a_clear_error(tmp_path, endpoint):
    env = _env(endpoint, credentials=False, NEMOTRON_ARTIFACTS_ROOT=f"{ROOT}/nocreds")
    data = make_data(tmp_path / "data")
    result = nemotron("stage=register", f"stage.path={data}", "stage.name=x", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "no credentials" in result.stderr and "AWS_ACCESS_KEY_ID" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    art = nemotron_art("ls", cwd=tmp_path, env=env)
    assert art.returncode != 0 and "no credentials" in art.stderr and "Traceback" not in art.stderr


def test_hf_bucket_root_is_refused_for_writing_without_single_writer(tmp_path, monkeypatch):
    """hf:// storage buckets have no commits, so no create-only put: writing is refused before any request is
    made (Hub repositories create with a `parent_commit` commit: tests/store/test_hf_commit.py)."""
    pytest.importorskip("huggingface_hub", reason="hf:// roots need the hf extra")
    from nemotron.errors import StoreError
    from nemotron.store.manifest_store import ManifestStore

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the refusal must not need the network
    store = ManifestStore("hf://buckets/nemotron-test/scratch/store")
    with pytest.raises(StoreError, match=r"\(hf\) cannot create files conditionally.*single_writer=true"):
        store.commit("x", _record(tmp_path))


def test_single_writer_mode_commits_on_a_filesystem_without_conditional_create(tmp_path):
    """What single_writer=true does where the filesystem reports no create-only put (as hf:// buckets do): an
    existence check, then a plain put. memory:// stands in for such a filesystem here."""
    from nemotron.errors import StoreError
    from nemotron.store.manifest_store import ManifestStore

    store = ManifestStore(f"memory://refuse-{time.time_ns()}")
    store.can_create_conditionally = False
    with pytest.raises(StoreError, match="cannot create files conditionally"):
        store.commit("x", _record(tmp_path))
    single = ManifestStore(store.url, single_writer=True)
    single.can_create_conditionally = False
    assert [single.commit("x", _record(tmp_path)).version for _ in range(2)] == [1, 2]
    assert single.resolve("x").version == 2


def _record(tmp_path: Path) -> dict:
    from datetime import datetime, timezone

    return {"type": "Artifact", "path": str(tmp_path), "created_at": datetime.now(timezone.utc), "metadata": {}}
