"""`nemotron-art import model|data`: zero-copy registration with the right types, consumable by stages."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
from helpers.clitools import clean_env, json_line, manifest, nemotron, nemotron_art, ok

pytestmark = pytest.mark.integration


def _snapshot(directory):
    """Every path under `directory` with its content and mtime: proof that nothing was written there."""
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    } | {".": (None, directory.stat().st_mtime_ns)}


def _megatron_prefix(prefix, tokens: int, documents: int = 2):
    """A `.bin/.idx` pair in Megatron's layout (uint16 tokens), as megatron-core's builder writes it."""
    lengths = [tokens // documents] * (documents - 1) + [tokens - tokens // documents * (documents - 1)]
    pointers = [2 * sum(lengths[:i]) for i in range(documents)]
    header = b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, documents, documents + 1)
    body = struct.pack(f"<{documents}i", *lengths) + struct.pack(f"<{documents}q", *pointers)
    prefix.with_suffix(".idx").write_bytes(header + body + struct.pack(f"<{documents + 1}q", *range(documents + 1)))
    prefix.with_suffix(".bin").write_bytes(b"\x07\x00" * tokens)


@pytest.fixture()
def user(tmp_path):
    """User data made elsewhere (read-only, as on a shared file system) and an empty store."""
    ckpt = tmp_path / "user" / "Llama Tiny HF"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text('{"model_type": "llama"}')
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 2048)

    sft = tmp_path / "user" / "sft-packed"
    (sft / "splits" / "train").mkdir(parents=True)
    (sft / "splits" / "train" / "shard_000000.parquet").write_bytes(b"PAR1" + b"\x01" * 100 + b"PAR1")
    (sft / "splits" / "valid").mkdir()
    (sft / "splits" / "valid" / "shard_000000.parquet").write_bytes(b"PAR1" + b"\x02" * 50 + b"PAR1")
    (sft / "metadata.json").write_text(json.dumps({"metadata": {"pack_size": 512, "total_sequences": 42}}))
    (sft / "blend.json").write_text('{"train": ["1.0", "splits/train"]}')

    rl = tmp_path / "user" / "rl"
    rl.mkdir()
    (rl / "train.jsonl").write_text('{"problem": "1+1", "expected_answer": "2"}\n' * 3)
    (rl / "validation.jsonl").write_text('{"problem": "2+2", "expected_answer": "4"}\n')

    pretrain = tmp_path / "user" / "pretrain"
    (pretrain / "shards").mkdir(parents=True)
    for i, tokens in enumerate((100, 60, 30)):
        _megatron_prefix(pretrain / "shards" / f"shard_{i:06d}", tokens)
    blend = {
        "train": ["1.0", str(pretrain / "shards" / "shard_000000"), "1.0", "shards/shard_000001"],
        "valid": ["1.0", "shards/shard_000002"],
        "test": ["1.0", "shards/shard_000002"],
    }
    (pretrain / "blend.json").write_text(json.dumps(blend))

    for path in sorted((tmp_path / "user").rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _snapshot(tmp_path / "user")
    yield {"ckpt": ckpt, "sft": sft, "rl": rl, "blend": pretrain / "blend.json", "pretrain": pretrain}
    assert _snapshot(tmp_path / "user") == before, "import wrote into the user's directories"
    for path in (tmp_path / "user").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_import_model_and_data_with_the_right_types(tmp_path, user):
    root = tmp_path / "store"
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)

    def art(*args):
        return ok(nemotron_art(*args, cwd=tmp_path, env=env))

    model = json_line(art("import", "model", str(user["ckpt"]), "--stage", "pretrain", "--step", "1000"))
    assert model == {
        "uri": "art://llama-tiny-hf:v1",
        "name": "llama-tiny-hf",
        "version": 1,
        "type": "ModelArtifact",
        "path": str(user["ckpt"]),
    }
    record = manifest(root, "llama-tiny-hf", 1)
    assert record["metadata"] | {"step": 1000, "stage": "pretrain", "format": "hf"} == record["metadata"]
    assert {f["path"] for f in record["files"]} == {"config.json", "model.safetensors"}
    assert all(f["digest"].startswith("xxh3_128:") for f in record["files"])
    assert record["run"]["command"][:3] == ["nemotron-art", "import", "model"]
    assert record["run"]["config"]["import"]["step"] == 1000

    # a fine-tuned model names its base: the lineage records the exact version
    art("import", "model", str(user["ckpt"]), "--stage", "sft", "--step", "5", "--name", "tuned", "--base-model",
        "llama-tiny-hf")  # fmt: skip
    tuned = manifest(root, "tuned", 1)
    assert tuned["used_artifacts"] == ["llama-tiny-hf:v1"]
    assert tuned["metadata"]["base_model"] == "art://llama-tiny-hf:v1"

    sft = json_line(art("import", "data", "sft", str(user["sft"])))
    assert sft["type"] == "SFTDataArtifact"
    fields = manifest(root, "sft-packed", 1)["metadata"]
    assert fields["pack_size"] == 512 and fields["total_sequences"] == 42 and fields["num_shards"] == 2
    assert fields["blend_path"] == "blend.json"

    rl = json_line(art("import", "data", "rl", str(user["rl"]), "--name", "rl-math"))
    assert rl["type"] == "SplitJsonlDataArtifact"
    fields = manifest(root, "rl-math", 1)["metadata"]
    assert fields["train"] == str(user["rl"] / "train.jsonl")
    assert fields["val"] == str(user["rl"] / "validation.jsonl")
    assert fields["test"] is None and fields["total_sequences"] == 4

    blends = json_line(art("import", "data", "pretrain", str(user["blend"])))
    assert blends == {**blends, "type": "PretrainBlendsArtifact", "path": str(user["pretrain"])}
    fields = manifest(root, "pretrain", 1)["metadata"]
    assert fields["num_shards"] == 3 and fields["blend_path"] == "blend.json"
    assert (fields["train_tokens"], fields["valid_tokens"], fields["test_tokens"]) == (160, 30, 30)
    assert fields["total_tokens"] == 190 and fields["total_sequences"] == 6

    # every import verifies, and its data was not touched (checked again by the fixture)
    for name in ("llama-tiny-hf", "sft-packed", "rl-math", "pretrain"):
        art("verify", name)


def test_an_imported_sft_dataset_is_what_a_stage_consumes(tmp_path, user):
    root = tmp_path / "store"
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    ok(nemotron_art("import", "data", "sft", str(user["sft"]), "--name", "my-sft", cwd=tmp_path, env=env))
    # a stage reads it through ${art:data,FIELD}, typed (pack_size an int), and records it as its input
    stage = nemotron(
        "stage=register", f"stage.path={user['sft']}", "stage.name=consumer", "+run.data=my-sft",
        "+stage.metadata.pack_size=${art:data,pack_size}", "+stage.metadata.data_path=${art:data,path}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    ok(stage)
    consumer = manifest(root, "consumer", 1)
    assert consumer["used_artifacts"] == ["my-sft:v1"]
    assert consumer["metadata"]["metadata"] == {"pack_size": 512, "data_path": str(user["sft"])}
    # and the Python API loads it as the type a training stage asks for
    script = (
        "from nemotron import SFTDataArtifact; "
        "a = SFTDataArtifact.from_uri('art://my-sft:v1'); print(type(a).__name__, a.pack_size, a.num_shards)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SFTDataArtifact", "512", "2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "{ckpt}", "--stage", "sft"], "--step"),
        (["model", "{tmp}/nope", "--stage", "sft", "--step", "1"], "is not a directory"),
        (["model", "{sft}", "--stage", "sft", "--step", "1"], "Cannot tell the checkpoint format"),
        (["model", "{ckpt}", "--stage", "sft", "--step", "-1"], "step"),
        (["data", "sft", "{rl}", "--pack-size", "8"], "holds no .parquet files"),
        (["data", "sft", "{sft}", "--pack-size", "1024"], "contradicts"),
        (["data", "rl", "{sft}"], "has no train.jsonl"),
        (["data", "pretrain", "{rl}/train.jsonl"], "is not valid JSON"),
        (["data", "pretrain", "{sft}/metadata.json"], "is not a Megatron blend"),
        (["data", "pretrain", "{sft}/blend.json"], "without both .bin and .idx"),
        (["model", "{ckpt}", "--stage", "sft", "--step", "1", "--name", "Bad/Name"], "is not a valid artifact name"),
        (["model", "{ckpt}", "--stage", "sft", "--step", "1", "--base-model", "ghost"], "No artifact named 'ghost'"),
    ],
)
def test_bad_imports_are_clear_errors_and_commit_nothing(tmp_path, user, args, message):
    root = tmp_path / "store"
    root.mkdir()
    places = {"ckpt": user["ckpt"], "sft": user["sft"], "rl": user["rl"], "tmp": tmp_path}
    argv = ["import", *(a.format(**places) for a in args)]
    result = nemotron_art(*argv, cwd=tmp_path, env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(root) == []


def test_sft_without_metadata_needs_pack_size(tmp_path):
    data = tmp_path / "packed"
    data.mkdir()
    (data / "part.parquet").write_bytes(b"PAR1PAR1")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store")
    missing = nemotron_art("import", "data", "sft", str(data), cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "pass --pack-size N" in missing.stderr
    line = json_line(ok(nemotron_art("import", "data", "sft", str(data), "--pack-size", "256", cwd=tmp_path, env=env)))
    assert manifest(tmp_path / "store", line["name"], 1)["metadata"]["pack_size"] == 256


@pytest.mark.parametrize(
    ("kind", "args", "fields", "message"),
    [
        ("sft", ["data", "sft", "{rl}", "--pack-size", "8"], ["+stage.fields.pack_size=8"], "holds no .parquet files"),
        ("sft", ["data", "sft", "{sft}", "--pack-size", "1024"], ["+stage.fields.pack_size=1024"], "contradicts"),
        ("rl", ["data", "rl", "{sft}"], [], "has no train.jsonl"),
        ("pretrain", ["data", "pretrain", "{sft}/blend.json"], [], "without both .bin and .idx"),
    ],
)
def test_register_refuses_what_import_refuses(tmp_path, user, kind, args, fields, message):
    """`stage=register stage.type=T` applies the checks `nemotron-art import` applies to the same data."""
    types = {"sft": "SFTDataArtifact", "rl": "SplitJsonlDataArtifact", "pretrain": "PretrainBlendsArtifact"}
    places = {"sft": user["sft"], "rl": user["rl"], "tmp": tmp_path}
    root = tmp_path / "store"
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    imported = nemotron_art("import", *(a.format(**places) for a in args), cwd=tmp_path, env=env)
    assert imported.returncode == 2 and message in imported.stderr, imported.stderr
    directory = args[2].format(**places).removesuffix("/blend.json")
    overrides = [f"stage.path={directory}", "stage.name=not-that", f"stage.type={types[kind]}", *fields]
    registered = nemotron("stage=register", *overrides, cwd=tmp_path, env=env)
    assert registered.returncode != 0 and message in registered.stderr, registered.stdout + registered.stderr
    assert "Traceback" not in registered.stderr
    assert not (root / "not-that").exists()


def test_register_reads_the_fields_the_data_states_about_itself(tmp_path, user):
    """Shared with import: an SFT directory's metadata.json gives pack_size and counts, the RL splits are found."""
    root = tmp_path / "store"
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    for path, name, kind in ((user["sft"], "packed", "SFTDataArtifact"), (user["rl"], "rl", "SplitJsonlDataArtifact")):
        ok(
            nemotron(
                "stage=register",
                f"stage.path={path}",
                f"stage.name={name}",
                f"stage.type={kind}",
                cwd=tmp_path,
                env=env,
            )
        )
    sft = manifest(root, "packed", 1)["metadata"]
    assert sft["pack_size"] == 512 and sft["total_sequences"] == 42 and sft["num_shards"] == 2
    rl = manifest(root, "rl", 1)["metadata"]
    assert rl["train"] == str(user["rl"] / "train.jsonl") and rl["val"] == str(user["rl"] / "validation.jsonl")
    assert rl["total_sequences"] == 4
