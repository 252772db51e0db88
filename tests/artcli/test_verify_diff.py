"""`nemotron-art verify` (recomputed digests per file) and `nemotron-art diff` (two sweep points)."""

from __future__ import annotations

import json

import pytest
from helpers.clitools import clean_env, json_line, nemotron, nemotron_art, ok, register

pytestmark = pytest.mark.integration


def _shards(directory, count=4, size=4096):
    directory.mkdir(parents=True)
    for i in range(count):
        (directory / f"shard_{i:06d}.bin").write_bytes(bytes((i + j) % 251 for j in range(size)))
    (directory / "blend.json").write_text('{"train": []}')
    return directory


def test_verify_flags_a_changed_byte_and_a_deleted_file(tmp_path):
    data = _shards(tmp_path / "shards")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")
    # a real stage run records the files (sizes and xxh3-128 digests)
    line = json_line(ok(nemotron("stage=register", f"stage.path={data}", "stage.name=shards", cwd=tmp_path, env=env)))
    assert line["uri"] == "art://shards:v1"

    clean = ok(nemotron_art("verify", "shards", cwd=tmp_path, env=env))
    assert "OK" in clean.stdout and "5 OK" in clean.stdout

    # one byte changed inside a shard (same size: only the digest can tell), another shard deleted, a file added
    shard = data / "shard_000002.bin"
    content = bytearray(shard.read_bytes())
    content[1000] ^= 0xFF
    shard.write_bytes(bytes(content))
    (data / "shard_000003.bin").unlink()
    (data / "stray.txt").write_text("not part of the version")

    result = nemotron_art("verify", "shards:v1", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    statuses = {entry["path"]: entry["status"] for entry in report["files"]}
    assert statuses == {
        "blend.json": "OK",
        "shard_000000.bin": "OK",
        "shard_000001.bin": "OK",
        "shard_000002.bin": "MODIFIED",
        "shard_000003.bin": "MISSING",
        "stray.txt": "NEW",
    }
    assert report["ok"] is False and report["mode"] == "full"

    human = nemotron_art("verify", "shards", cwd=tmp_path, env=env)
    assert human.returncode == 1
    assert "MODIFIED" in human.stdout and "MISSING" in human.stdout and "FAILED" in human.stdout
    assert "shard_000000.bin" not in human.stdout  # OK files are listed only with --all

    # --sample digests only N files: sizes are still checked for all, so the deleted shard is still found
    sampled = json.loads(nemotron_art("verify", "shards", "--sample", "0", "--json", cwd=tmp_path, env=env).stdout)
    sampled_statuses = {entry["path"]: entry["status"] for entry in sampled["files"]}
    assert sampled_statuses["shard_000002.bin"] == "UNCHECKED"
    assert sampled_statuses["shard_000003.bin"] == "MISSING"

    # restoring the data makes the version verify again
    content[1000] ^= 0xFF
    shard.write_bytes(bytes(content))
    (data / "shard_000003.bin").write_bytes(bytes((3 + j) % 251 for j in range(4096)))
    (data / "stray.txt").unlink()
    ok(nemotron_art("verify", "shards", "--full", cwd=tmp_path, env=env))
    sampled = ok(nemotron_art("verify", "shards", "--sample", "2", "--seed", "3", cwd=tmp_path, env=env)).stdout
    assert "2 OK, 3 UNCHECKED" in sampled and "size matches" not in sampled  # passing rows only with --all


def test_diff_of_two_sweep_points_shows_exactly_the_swept_key(tmp_path):
    data = _shards(tmp_path / "shards", count=1)
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")
    sweep = nemotron(
        "-m", "stage=register", f"stage.path={data}", "stage.name=point", "+stage.metadata.lr=1e-4,3e-4",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    ok(sweep)
    assert len(sweep.stdout.splitlines()) == 2

    result = json.loads(ok(nemotron_art("diff", "point:v1", "point:v2", "--json", cwd=tmp_path, env=env)).stdout)
    assert result["config"] == {"stage.metadata.lr": {"a": 1e-4, "b": 3e-4}}
    assert result["fields"] == {"metadata.lr": {"a": 1e-4, "b": 3e-4}}
    assert result["inputs"] == {} and result["code"] == {} and result["artifact"] == {}
    assert result["files"] == {"changed": [], "only_in_a": [], "only_in_b": [], "same": 2}

    text = ok(nemotron_art("diff", "point:v1", "point:latest", cwd=tmp_path, env=env)).stdout
    assert "stage.metadata.lr" in text and "0.0001" in text and "0.0003" in text
    same = ok(nemotron_art("diff", "point:v2", "point", cwd=tmp_path, env=env)).stdout
    assert "have the same config" in same


def test_diff_shows_inputs_and_content_changes(tmp_path):
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")
    first, second = _shards(tmp_path / "a", count=2), _shards(tmp_path / "b", count=3)
    (second / "shard_000000.bin").write_bytes(b"different")
    for path in (first, second):
        ok(nemotron("stage=register", f"stage.path={path}", "stage.name=raw", cwd=tmp_path, env=env))
    for version in (1, 2):
        ok(
            nemotron(
                "stage=register", f"stage.path={first}", "stage.name=derived", f"+run.data=raw:v{version}",
                "+stage.metadata.source=${art:data,path}", cwd=tmp_path, env=env,
            )
        )  # fmt: skip
    result = json.loads(ok(nemotron_art("diff", "derived:v1", "derived:v2", "--json", cwd=tmp_path, env=env)).stdout)
    assert result["inputs"] == {"raw": {"a": "v1", "b": "v2"}}
    assert set(result["config"]) == {"run.data", "stage.metadata.source"}
    raw = json.loads(ok(nemotron_art("diff", "raw:v1", "raw:v2", "--json", cwd=tmp_path, env=env)).stdout)
    assert raw["files"]["changed"] == ["shard_000000.bin"] and raw["files"]["only_in_b"] == ["shard_000002.bin"]
    assert raw["artifact"]["path"] == {"a": str(first), "b": str(second)}


def test_piped_listings_and_trees_are_never_cut_short(tmp_path):
    """Piped, rich would assume 80 columns: names and paths must still come out whole."""
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store", COLUMNS=None)
    deep = tmp_path / "a-rather-long-directory-name-for-the-data" / "and-a-second-level-of-it-too"
    deep.mkdir(parents=True)
    (deep / "input.txt").write_text("x\n")
    name = "an-artifact-with-a-name-long-enough-to-be-cut-in-eighty-columns"
    register(name, deep, tmp_path, env)
    assert name in ok(nemotron_art("ls", cwd=tmp_path, env=env)).stdout
    assert str(deep) in ok(nemotron_art("lineage", name, cwd=tmp_path, env=env)).stdout
