"""`nemotron-art export --closure` and `import-bundle`: a lineage moved to another root, digests checked."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.clitools import clean_env, manifest, nemotron_art, tree
from helpers.pipeline_store import PIPELINE, build_pipeline, commit, write_files

pytestmark = pytest.mark.integration


def _art(root, cwd, *args, expect=0):
    result = nemotron_art("--root", root, *args, cwd=cwd, env=clean_env())
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def _shape(node):
    """A nested lineage without paths (they differ between stores by design)."""
    keep = {k: v for k, v in node.items() if k in ("ref", "type", "sources", "repeated")}
    return {**keep, "inputs": [_shape(child) for child in node.get("inputs", [])]}


def test_export_closure_then_import_into_an_empty_root(pipeline, tmp_path):
    source_root, bundle, target = pipeline["root"], tmp_path / "bundle", tmp_path / "elsewhere" / "store"
    source_before = tree(source_root)
    index = json.loads(_art(source_root, tmp_path, "export", "eval", "--closure", str(bundle), "--json").stdout)
    assert tree(source_root) == source_before  # export only reads
    assert index["root"] == "eval:v1" and index["format"] == "nemotron-bundle/1"
    assert [entry["ref"] for entry in index["artifacts"]][-1] == "eval:v1"  # upstream first
    assert {entry["ref"] for entry in index["artifacts"]} == {f"{name}:v1" for name in PIPELINE}
    assert (bundle / "data" / "pretrain-model" / "v1" / "model.safetensors").is_file()

    # the bundle travels (here: a copy elsewhere), then goes into an empty root
    moved = tmp_path / "carried" / "bundle"
    shutil.copytree(bundle, moved, symlinks=True)
    _art(target, tmp_path, "import-bundle", str(moved))

    original = json.loads(_art(source_root, tmp_path, "lineage", "eval", "--json").stdout)
    imported = json.loads(_art(target, tmp_path, "lineage", "eval", "--json").stdout)
    assert _shape(imported) == _shape(original)  # same versions, types, sources and edges
    for name in PIPELINE:
        record = manifest(target, name, 1)
        assert record["path"].startswith(str(moved / "data")), record["path"]
        assert record["metadata"]["path"] == record["path"]
        assert record["origin"]["ref"] == f"{name}:v1" and record["origin"]["store"] == str(source_root)
        assert record["data_owned"] is True
    # the data copies match every recorded digest, for the whole lineage
    reports = json.loads(_art(target, tmp_path, "verify", "eval", "--upstream", "--json").stdout)
    assert {report["ref"] for report in reports if report["ok"]} == {f"{name}:v1" for name in PIPELINE}
    assert manifest(target, "sft-model", 1)["metadata"]["base_model"] == "art://pretrain-model:v1"
    assert json.loads((moved / "owner.json").read_text())["store"] == str(target)

    # importing the same bundle again changes nothing: every version is recognised
    before = tree(target)
    again = json.loads(_art(target, tmp_path, "import-bundle", str(moved), "--json").stdout)
    assert sorted(again["reused"]) == sorted(f"{name}:v1" for name in PIPELINE)
    assert tree(target) == before


def test_import_into_a_root_that_has_those_names_maps_versions(pipeline, tmp_path):
    bundle, target = tmp_path / "bundle", tmp_path / "store"
    _art(pipeline["root"], tmp_path, "export", "pretrain-data", "--closure", str(bundle))
    # the target already has two versions of raw-text and one of tokenizer, made there
    from nemotron.artifacts.types import Artifact, TokenizerArtifact

    local = write_files(tmp_path / "local", {"a.txt": "local data"})
    commit(target, Artifact(path=str(local)), "raw-text", stage="register")
    commit(target, Artifact(path=str(local)), "raw-text", stage="register")
    commit(target, TokenizerArtifact(path=str(local), vocab_size=8), "tokenizer", ("raw-text:v1",))

    mapping = json.loads(_art(target, tmp_path, "import-bundle", str(bundle), "--json").stdout)["mapping"]
    assert mapping == {
        "raw-text:v1": "raw-text:v3",
        "tokenizer:v1": "tokenizer:v2",
        "pretrain-data:v1": "pretrain-data:v1",
    }
    assert manifest(target, "tokenizer", 2)["used_artifacts"] == ["raw-text:v3"]
    blends = manifest(target, "pretrain-data", 1)
    assert blends["used_artifacts"] == ["raw-text:v3", "tokenizer:v2"]
    assert blends["metadata"]["tokenizer_uri"] == "art://tokenizer:v2"  # pinned references follow the mapping
    graph = json.loads(_art(target, tmp_path, "lineage", "pretrain-data", "--json").stdout)
    assert sorted(node["ref"] for node in graph["inputs"]) == ["raw-text:v3", "tokenizer:v2"]
    # the versions made in the target are untouched, and `latest` moved to the imported ones
    assert manifest(target, "raw-text", 1)["path"] == str(local)
    assert json.loads(_art(target, tmp_path, "show", "tokenizer", "--json").stdout)["version"] == 2


def test_a_tampered_bundle_is_refused_and_nothing_changes(pipeline, tmp_path):
    bundle = tmp_path / "bundle"
    _art(pipeline["root"], tmp_path, "export", "sft-data", "--closure", str(bundle))
    shard = bundle / "data" / "sft-data" / "v1" / "splits" / "train" / "shard_000000.parquet"
    content = bytearray(shard.read_bytes())
    content[7] ^= 0x01  # one bit, same size
    shard.write_bytes(bytes(content))

    empty = tmp_path / "empty-root"
    result = _art(empty, tmp_path, "import-bundle", str(bundle), expect=2)
    assert "does not match its index, so nothing was imported" in result.stderr
    assert "data/sft-data/v1/splits/train/shard_000000.parquet was modified" in result.stderr
    assert "Traceback" not in result.stderr
    assert not empty.exists()
    assert not (bundle / "owner.json").exists()

    # a store that has content stays byte-for-byte the same
    busy = tmp_path / "busy"
    commit(busy, __import__("nemotron").Artifact(path=str(pipeline["data"] / "raw")), "raw-text", stage="register")
    before = tree(busy)
    _art(busy, tmp_path, "import-bundle", str(bundle), expect=2)
    assert tree(busy) == before

    # a manifest edited in the bundle, and a file added to a data copy, are caught too
    content[7] ^= 0x01
    shard.write_bytes(bytes(content))
    record = bundle / "manifests" / "raw-text" / "v1" / "manifest.json"
    record.write_text(record.read_text().replace('"Artifact"', '"ModelArtifact"', 1))
    (bundle / "data" / "raw-text" / "v1" / "extra.bin").write_bytes(b"smuggled")
    result = _art(empty, tmp_path, "import-bundle", str(bundle), expect=2)
    assert "manifests/raw-text/v1/manifest.json was modified" in result.stderr
    assert not empty.exists()


def test_export_refuses_data_that_changed_since_commit(tmp_path):
    root = build_pipeline(tmp_path)
    (tmp_path / "data" / "tok" / "tokenizer.json").write_text('{"vocab": 999}')  # rewritten in place
    out = tmp_path / "bundle"
    result = _art(root, tmp_path, "export", "pretrain-data", "--closure", str(out), expect=2)
    assert "tokenizer:v1: tokenizer.json" in result.stderr and "no longer matches its manifest" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".bundle.partial-*"))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = _art(root, tmp_path, "export", "raw-text", "--closure", str(existing), expect=2)
    assert "already exists and is not empty" in result.stderr
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_aliases_travel_with_the_bundle_and_never_move_an_existing_alias(tmp_path):
    from nemotron.artifacts.types import EvalResultsArtifact, ModelArtifact
    from nemotron.store.manifest_store import ManifestStore

    source_root = build_pipeline(tmp_path / "src")
    source = ManifestStore(str(source_root))
    source.set_alias("sft-model:v1", "production")
    source.set_alias("eval:v1", "candidate")
    newer = EvalResultsArtifact(path=str(tmp_path / "src" / "data" / "eval"), metrics={"gsm8k": {"accuracy": 0.6}})
    commit(source_root, newer, "eval")
    source.set_alias("eval:v2", "newer")  # on a version the bundle does not carry: not exported
    bundle = tmp_path / "bundle"
    index = json.loads(_art(source_root, tmp_path, "export", "eval:v1", "--closure", str(bundle), "--json").stdout)
    assert index["aliases"] == [
        {"name": "eval", "alias": "candidate", "version": 1},
        {"name": "sft-model", "alias": "production", "version": 1},
    ]

    # an empty root gets both aliases, recorded in its alias history as made by the import
    empty = tmp_path / "empty"
    result = json.loads(_art(empty, tmp_path, "import-bundle", str(bundle), "--json").stdout)
    assert result["aliases"] == {"eval:candidate": "eval:v1", "sft-model:production": "sft-model:v1"}
    assert result["alias_conflicts"] == []
    assert json.loads(_art(empty, tmp_path, "show", "sft-model:production", "--json").stdout)["version"] == 1
    history = ManifestStore(str(empty)).alias_history("sft-model")
    assert [(e["alias"], e["version"], e["note"].startswith("import-bundle ")) for e in history] == [
        ("production", 1, True)
    ]

    # a root whose `production` already points at its own sft-model:v1: the alias stays there
    busy = tmp_path / "busy"
    ckpt = write_files(tmp_path / "own-ckpt", {"model.safetensors": b"mine"})
    commit(busy, ModelArtifact(path=str(ckpt), step=1, stage="sft"), "sft-model", stage="register")
    ManifestStore(str(busy)).set_alias("sft-model:v1", "production")
    run = _art(busy, tmp_path, "import-bundle", str(bundle), "--json")
    result = json.loads(run.stdout)
    assert result["mapping"]["sft-model:v1"] == "sft-model:v2"
    assert result["aliases"] == {"eval:candidate": "eval:v1"}
    assert result["alias_conflicts"] == [
        {"name": "sft-model", "alias": "production", "wanted": "sft-model:v2", "current": "sft-model:v1"}
    ]
    assert "sft-model:production already points at sft-model:v1" in run.stderr
    assert "nemotron-art alias sft-model:v2 production" in run.stderr
    assert ManifestStore(str(busy)).aliases("sft-model") == {"production": 1}

    # importing again changes nothing; the aliases it set are recognised as already in place
    before = tree(busy)
    again = json.loads(_art(busy, tmp_path, "import-bundle", str(bundle), "--json").stdout)
    assert again["aliases"] == {"eval:candidate": "eval:v1"} and len(again["alias_conflicts"]) == 1
    assert tree(busy) == before


def test_a_bundle_alias_on_a_version_it_does_not_carry_is_refused(pipeline, tmp_path):
    bundle = tmp_path / "bundle"
    _art(pipeline["root"], tmp_path, "export", "tokenizer", "--closure", str(bundle))
    index_file = bundle / "nemotron-bundle.json"
    index = json.loads(index_file.read_text())
    index["aliases"] = [{"name": "tokenizer", "alias": "prod", "version": 7}, {"name": "tokenizer", "alias": "latest"}]
    index_file.write_text(json.dumps(index))
    empty = tmp_path / "empty"
    result = _art(empty, tmp_path, "import-bundle", str(bundle), expect=2)
    assert "alias tokenizer:prod points at tokenizer:v7, which is not in the bundle" in result.stderr
    assert "is malformed" in result.stderr
    assert not empty.exists()


def _digest(path) -> str:
    import fsspec

    from nemotron.store.files import digest_file

    return digest_file(fsspec.filesystem("file"), str(path), "xxh3_128")


def _forge(bundle, mutate) -> None:
    """Edit a bundle's index as an attacker would, keeping it self-consistent (the digests it lists match)."""
    index_file = bundle / "nemotron-bundle.json"
    index = json.loads(index_file.read_text())
    mutate(index["artifacts"][0])
    index_file.write_text(json.dumps(index))


@pytest.mark.parametrize(
    "attack", ["absolute", "dotdot", "symlinked-dir", "symlinked-data", "symlinked-file", "manifest"]
)
def test_a_bundle_that_points_outside_itself_is_refused(pipeline, tmp_path, attack):
    bundle, outside = tmp_path / "bundle", tmp_path / "outside"
    _art(pipeline["root"], tmp_path, "export", "raw-text", "--closure", str(bundle))
    copy = bundle / "data" / "raw-text" / "v1"
    shutil.copytree(copy, outside)  # the same files elsewhere: every digest in the index still matches
    secret = write_files(tmp_path / "secret", {"passwd": "root:x:0:0:root:/root:/bin/bash\n"}) / "passwd"
    if attack == "absolute":
        _forge(bundle, lambda entry: entry.update(data=str(outside)))
    elif attack == "dotdot":
        _forge(bundle, lambda entry: entry.update(data="data/../../outside"))
    elif attack == "symlinked-dir":
        shutil.rmtree(copy)
        copy.symlink_to(outside, target_is_directory=True)
    elif attack == "symlinked-data":
        shutil.move(bundle / "data", tmp_path / "moved-data")
        (bundle / "data").symlink_to(tmp_path / "moved-data", target_is_directory=True)
        outside = tmp_path / "moved-data"
    elif attack == "symlinked-file":
        (copy / "part-0.jsonl").unlink()
        (copy / "part-0.jsonl").symlink_to(secret)

        def mutate(entry):
            record = next(f for f in entry["files"] if f["path"] == "part-0.jsonl")
            record.update(size=secret.stat().st_size, digest=_digest(secret))

        _forge(bundle, mutate)
    else:  # the manifest read from outside the bundle
        manifest_file = bundle / "manifests" / "raw-text" / "v1" / "manifest.json"
        shutil.copy(manifest_file, tmp_path / "manifest.json")
        _forge(bundle, lambda entry: entry.update(manifest=str(tmp_path / "manifest.json")))
    before_outside, before_secret = tree(outside), secret.read_bytes()

    target = tmp_path / "store"
    result = _art(target, tmp_path, "import-bundle", str(bundle), expect=2)
    assert "outside the bundle" in result.stderr and "nothing was imported" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists() and not (bundle / "owner.json").exists()
    assert tree(outside) == before_outside and secret.read_bytes() == before_secret


def test_a_version_with_files_but_no_data_copy_in_the_bundle_is_refused(pipeline, tmp_path):
    """Without a data copy the version would keep its source path: data outside the bundle, on this machine."""
    bundle = tmp_path / "bundle"
    _art(pipeline["root"], tmp_path, "export", "raw-text", "--closure", str(bundle))
    _forge(bundle, lambda entry: entry.update(data=None, files=[]))
    shutil.rmtree(bundle / "data")
    result = _art(tmp_path / "store", tmp_path, "import-bundle", str(bundle), expect=2)
    assert "records 2 file(s) but the bundle carries no copy of them" in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda index: index.update(artifacts={"not": "a list"}), "the index's artifacts are not a list"),
        (lambda index: index["artifacts"].append("raw-text:v9"), "is not an object"),
        (lambda index: index["artifacts"][0].pop("manifest"), "manifest is missing or not a string"),
        (lambda index: index["artifacts"][0].update(files=5), "files is not a list"),
        (lambda index: index["artifacts"][0]["files"][0].update(size=-1), "files is not a list"),
        (lambda index: index["artifacts"][0]["files"][0].update(digest="crc:0"), "files is not a list"),
        (lambda index: index["artifacts"][0].update(data_is_file="yes"), "data_is_file is not true/false"),
        (lambda index: index["artifacts"].append(dict(index["artifacts"][0])), "raw-text:v1 is listed twice"),
    ],
    ids=["artifacts", "entry", "manifest", "files", "size", "digest", "data-is-file", "twice"],
)
def test_a_malformed_index_is_a_clear_error_not_a_traceback(pipeline, tmp_path, edit, message):
    bundle = tmp_path / "bundle"
    _art(pipeline["root"], tmp_path, "export", "raw-text", "--closure", str(bundle))
    index = json.loads((bundle / "nemotron-bundle.json").read_text())
    edit(index)
    (bundle / "nemotron-bundle.json").write_text(json.dumps(index))
    result = _art(tmp_path / "store", tmp_path, "import-bundle", str(bundle), expect=2)
    assert message in result.stderr and "nothing was imported" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "store").exists()
