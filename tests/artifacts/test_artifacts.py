"""Typed artifacts: validation, typed field access, save/from_uri/load through a real store on a tmp root,
the data directory left untouched, and `used_artifacts` of a script using the tracking API."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

import nemotron
from nemotron import (
    Artifact,
    EvalResultsArtifact,
    InputDatasetInfo,
    ModelArtifact,
    NemotronError,
    PretrainBlendsArtifact,
    SFTDataArtifact,
    SplitJsonlDataArtifact,
    TokenizerArtifact,
)
from nemotron.artifacts.base import GenericArtifact
from nemotron.errors import ArtifactNotFoundError
from nemotron.store.manifest_store import ManifestStore
from nemotron.tracking import session

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No root from the environment or an env.toml, cwd in a temp dir, and no tracking left active."""
    for var in [v for v in os.environ if v.startswith("NEMOTRON_")]:
        monkeypatch.delenv(var)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    token = session._ACTIVE.set(None)
    yield
    session._ACTIVE.reset(token)


@pytest.fixture
def data(tmp_path) -> Path:
    directory = tmp_path / "data"
    (directory / "shards").mkdir(parents=True)
    (directory / "shards" / "part-0.parquet").write_bytes(b"\x00" * 100)
    (directory / "blend.json").write_text('{"train": ["shards/part-0.parquet"]}')
    return directory


@pytest.fixture
def root(tmp_path) -> str:
    return str(tmp_path / "store")


# -- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (SFTDataArtifact, {"pack_size": 0}, "pack_size"),
        (SFTDataArtifact, {"packing_efficiency": 1.5}, "packing_efficiency"),
        (SFTDataArtifact, {"data_format": "jsonl"}, "data_format"),
        (SFTDataArtifact, {"total_tokens": -1}, "total_tokens"),
        (PretrainBlendsArtifact, {"num_shards": -2}, "num_shards"),
        (SplitJsonlDataArtifact, {"total_sequences": -1}, "total_sequences"),
        (ModelArtifact, {"step": -1}, "step"),
        (ModelArtifact, {"format": "onnx"}, "format"),
        (ModelArtifact, {"stage": "midtrain"}, "stage"),
        (TokenizerArtifact, {}, "vocab_size"),
        (TokenizerArtifact, {"vocab_size": 0}, "vocab_size"),
        (EvalResultsArtifact, {"metrics": {"mmlu": {"acc": "high"}}}, "metrics"),
        (ModelArtifact, {"not_a_field": 1}, "not_a_field"),
        (Artifact, {"created_at": "yesterday"}, "created_at"),
    ],
)
def test_invalid_fields_are_rejected(cls, kwargs, field):
    with pytest.raises(ValidationError) as info:
        cls(path="/data/x", **kwargs)
    assert field in str(info.value)


def test_path_is_required():
    with pytest.raises(ValidationError, match="path"):
        ModelArtifact(step=1)


def test_assignment_is_validated():
    artifact = SFTDataArtifact(path="/d", pack_size=8)
    with pytest.raises(ValidationError, match="pack_size"):
        artifact.pack_size = 0
    assert artifact.pack_size == 8


def test_input_dataset_info_validation():
    assert InputDatasetInfo(uri="hf://datasets/x", weight=0.5, num_rows=10).weight == 0.5
    with pytest.raises(ValidationError, match="weight"):
        InputDatasetInfo(uri="hf://datasets/x", weight=0)
    with pytest.raises(ValidationError, match="num_rows"):
        InputDatasetInfo(uri="hf://datasets/x", num_rows=-1)


def test_type_and_defaults_are_filled_in():
    artifact = ModelArtifact(path="/ckpt", step="12")  # coerced to int
    assert artifact.type == "ModelArtifact"
    assert artifact.step == 12
    assert artifact.created_at.tzinfo is not None
    assert artifact.created_at.utcoffset().total_seconds() == 0
    assert artifact.version is None and artifact.uri is None


# -- typed field access ------------------------------------------------------------------------------------


def test_field_returns_typed_values_and_metadata_keys():
    artifact = SFTDataArtifact(
        path="/d", pack_size=2048, packing_efficiency=0.75, metadata={"rows": 10, "note": "x"}, total_tokens=5
    )
    assert artifact.field("pack_size") == 2048 and type(artifact.field("pack_size")) is int
    assert artifact.field("packing_efficiency") == 0.75
    assert artifact.field("path") == "/d"
    assert artifact.field("type") == "SFTDataArtifact"
    assert isinstance(artifact.field("created_at"), datetime)
    assert artifact.field("rows") == 10
    assert artifact.field("note") == "x"
    assert artifact.field("metadata") == {"rows": 10, "note": "x"}
    assert artifact.field("version") is None


def test_unknown_field_lists_the_available_ones():
    artifact = ModelArtifact(path="/ckpt", name="m", step=3, metadata={"lr": 0.1})
    with pytest.raises(NemotronError) as info:
        artifact.field("stpe")
    message = str(info.value)
    assert "'stpe'" in message and "'m'" in message and "ModelArtifact" in message
    assert "step" in message and "lr" in message
    assert "\n" not in message


# -- save / from_uri / load round trips --------------------------------------------------------------------

EXAMPLES = [
    SFTDataArtifact(
        path="",
        pack_size=512,
        total_sequences=7,
        total_tokens=3584,
        packing_efficiency=0.9,
        source_datasets=[InputDatasetInfo(uri="hf://datasets/a", weight=2.0, num_rows=5, digest="xxh3_128:ab")],
    ),
    PretrainBlendsArtifact(path="", num_shards=2, train_tokens=100, valid_tokens=10, tokenizer_uri="gpt2"),
    SplitJsonlDataArtifact(path="", train="train.jsonl", val="val.jsonl"),
    TokenizerArtifact(path="", vocab_size=32000),
    ModelArtifact(path="", step=100, final_loss=2.5, format="megatron", stage="pretrain"),
    EvalResultsArtifact(path="", metrics={"mmlu": {"acc": 0.25, "n": 100.0}}),
    Artifact(path="", metadata={"nested": {"a": [1, 2]}, "flag": True}),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda a: a.type)
def test_save_then_from_uri_round_trip(example, data, root):
    artifact = example.model_copy(update={"path": str(data)}, deep=True)
    returned = artifact.save(name="thing", root=root)
    assert returned is artifact
    assert (artifact.name, artifact.version, artifact.uri) == ("thing", 1, "art://thing:v1")

    cls = type(artifact)
    for reference in ["art://thing:v1", "thing", "thing:latest", "thing:1", "art://thing"]:
        loaded = cls.from_uri(reference, root=root)
        assert type(loaded) is cls
        assert loaded.version == 1 and loaded.uri == "art://thing:v1"
        assert loaded.model_dump() == artifact.model_dump()
    # the base class loads the right subclass
    assert type(Artifact.from_uri("thing:v1", root=root)) is cls

    manifest = json.loads((Path(root) / "thing" / "v1" / "manifest.json").read_text())
    assert manifest["type"] == cls.__name__ and manifest["path"] == str(data)
    assert manifest["metadata"] == json.loads((Path(root) / "thing" / "v1" / "metadata.json").read_text())
    assert (Path(root) / "thing" / "latest").read_text() == "v1"


def test_second_save_is_a_new_version(data, root):
    first = ModelArtifact(path=str(data), step=1).save(name="m", root=root)
    second = ModelArtifact(path=str(data), step=2).save(name="m", root=root)
    assert (first.version, second.version) == (1, 2)
    assert ModelArtifact.from_uri("m", root=root).step == 2
    assert ModelArtifact.from_uri("m:v1", root=root).step == 1


def test_save_needs_a_name(data, root):
    with pytest.raises(NemotronError, match="no name"):
        ModelArtifact(path=str(data)).save(root=root)
    assert not Path(root, "m").exists()


def test_from_uri_with_the_wrong_type(data, root):
    SFTDataArtifact(path=str(data), pack_size=64).save(name="sft", root=root)
    for cls in (ModelArtifact, PretrainBlendsArtifact, TokenizerArtifact):
        with pytest.raises(NemotronError) as info:
            cls.from_uri("art://sft:v1", root=root)
        message = str(info.value)
        assert "SFTDataArtifact" in message and cls.__name__ in message and "'sft'" in message


def test_from_uri_of_missing_things(data, root):
    ModelArtifact(path=str(data)).save(name="m", root=root)
    with pytest.raises(ArtifactNotFoundError, match="v1..v1"):
        ModelArtifact.from_uri("m:v2", root=root)
    with pytest.raises(ArtifactNotFoundError, match="No artifact named 'other'"):
        ModelArtifact.from_uri("other", root=root)
    with pytest.raises(NemotronError, match="versions start at v1"):
        ModelArtifact.from_uri("m:v0", root=root)


def test_unknown_type_loads_as_generic(data, root):
    store = ManifestStore(root)
    now = datetime.now(timezone.utc).isoformat()
    fields = {"path": str(data), "type": "FutureArtifact", "created_at": now, "metadata": {}, "extra_field": 7}
    store.commit("future", {"type": "FutureArtifact", "path": str(data), "created_at": now, "metadata": fields})
    loaded = Artifact.from_uri("future", root=root)
    assert isinstance(loaded, GenericArtifact)
    assert loaded.type == "FutureArtifact"
    assert loaded.field("extra_field") == 7


def test_load_a_json_line(data, root):
    saved = SFTDataArtifact(path=str(data), pack_size=32).save(name="sft", root=root)
    line = saved.to_json_line()
    assert json.loads(line) == {
        "uri": "art://sft:v1",
        "name": "sft",
        "version": 1,
        "type": "SFTDataArtifact",
        "path": str(data),
    }
    SFTDataArtifact(path=str(data), pack_size=64).save(name="sft", root=root)  # v2: the line still pins v1
    loaded = Artifact.load(line + "\n", root=root)
    assert type(loaded) is SFTDataArtifact
    assert (loaded.version, loaded.pack_size) == (1, 32)
    assert SFTDataArtifact.load("sft", root=root).pack_size == 64


def test_load_from_stdin(data, root, monkeypatch):
    line = ModelArtifact(path=str(data), step=9).save(name="m", root=root).to_json_line()
    monkeypatch.setattr("sys.stdin", io.StringIO(line + "\n"))
    assert ModelArtifact.load(root=root).step == 9


@pytest.mark.parametrize("line", ['{"name": "sft"}', "{not json", '{"uri": 5}', '{"uri": null}', "[1]"])
def test_load_a_bad_json_line(line, root):
    with pytest.raises(NemotronError):
        Artifact.load(line, root=root)


def test_load_a_json_line_without_uri_says_what_is_expected(root):
    with pytest.raises(NemotronError, match="'uri' key"):
        Artifact.load('{"name": "sft"}', root=root)


def test_load_the_json_line_of_an_untracked_result(data, root):
    line = ModelArtifact(path=str(data)).to_json_line()  # never committed: "uri": null
    assert json.loads(line)["uri"] is None
    with pytest.raises(NemotronError, match="names no committed artifact"):
        Artifact.load(line, root=root)


# -- the data directory is never written --------------------------------------------------------------------


def _snapshot(directory: Path) -> dict[str, tuple]:
    result = {}
    for path in sorted(directory.rglob("*")):
        stat = path.stat()
        content = path.read_bytes() if path.is_file() else None
        result[str(path.relative_to(directory))] = (stat.st_mode, stat.st_size, stat.st_mtime_ns, content)
    result["."] = (directory.stat().st_mode, directory.stat().st_mtime_ns)
    return result


def test_save_never_writes_into_the_data_directory(data, root, monkeypatch):
    before = _snapshot(data)
    artifact = SFTDataArtifact(path=str(data), pack_size=16)
    artifact.save(name="sft", root=root)
    ModelArtifact(path=str(data), step=1).save(name="sft-model", root=root)
    loaded = SFTDataArtifact.from_uri("sft", root=root)
    store = ManifestStore(root)
    store.set_alias("sft:v1", "production")
    store.fsck()
    assert _snapshot(data) == before
    assert loaded.path == str(data)
    # even with the working directory inside the data directory and the root given explicitly
    monkeypatch.chdir(data)
    SFTDataArtifact(path=str(data), pack_size=16).save(name="sft", root=root)
    assert _snapshot(data) == before


def test_files_are_listed_with_digests(data, root):
    SFTDataArtifact(path=str(data)).save(name="sft", root=root)
    manifest = ManifestStore(root).resolve("sft")
    files = {f.path: f for f in manifest.files}
    assert set(files) == {"blend.json", "shards/part-0.parquet"}
    assert files["shards/part-0.parquet"].size == 100
    import xxhash

    assert files["shards/part-0.parquet"].digest == "xxh3_128:" + xxhash.xxh3_128(b"\x00" * 100).hexdigest()


# -- lineage of a script outside the Hydra entry point ----------------------------------------------------


def test_used_artifacts_of_a_script(data, root):
    SFTDataArtifact(path=str(data), pack_size=128).save(name="sft", root=root)
    TokenizerArtifact(path=str(data), vocab_size=100).save(name="tok", root=root)

    tracking = nemotron.setup_artifact_tracking({"artifacts": {"manifest": {"root": root}}})
    assert session.active_tracking() is tracking
    sft = SFTDataArtifact.from_uri("art://sft")  # root from the active tracking
    assert sft.version == 1
    # someone else commits sft:v2 while the script runs: the script keeps its pinned v1
    SFTDataArtifact(path=str(data), pack_size=256).save(name="sft", root=root)
    assert SFTDataArtifact.from_uri("sft:latest").version == 2  # another reference is another pin
    assert SFTDataArtifact.from_uri("art://sft").pack_size == 128

    out = ModelArtifact(path=str(data), step=10, tokenizer_uri="art://tok:latest")
    nemotron.log_artifact(out, tracking, name="model")
    manifest = ManifestStore(root).resolve("model:v1")
    assert manifest.used_artifacts == ["sft:v1", "sft:v2", "tok:v1"]
    assert manifest.run is not None and manifest.run.command


def test_used_artifacts_through_the_resolver(data, root):
    from omegaconf import OmegaConf

    SFTDataArtifact(path=str(data), pack_size=128, metadata={"rows": 4}).save(name="sft", root=root)
    config = {"artifacts": {"manifest": {"root": root}}, "run": {"data": "sft:v1"}}
    tracking = nemotron.setup_artifact_tracking(config)
    cfg = OmegaConf.create(
        {
            **config,
            "pack": "${art:data,pack_size}",
            "rows": "${art:sft,rows}",
            "where": "${art:data}",
        }
    )
    assert cfg.pack == 128 and isinstance(cfg.pack, int)
    assert cfg.rows == 4
    assert cfg.where == str(data)
    nemotron.log_artifact(ModelArtifact(path=str(data)), tracking, name="model")
    assert ManifestStore(root).resolve("model").used_artifacts == ["sft:v1"]


def test_no_inputs_no_used_artifacts(data, root):
    tracking = nemotron.setup_artifact_tracking({"artifacts": {"manifest": {"root": root}}})
    nemotron.log_artifact(ModelArtifact(path=str(data)), tracking, name="model")
    assert ManifestStore(root).resolve("model").used_artifacts == []


def test_a_plain_save_records_no_inputs_of_other_stores(data, root, tmp_path):
    other = str(tmp_path / "other")
    SFTDataArtifact(path=str(data)).save(name="sft", root=other)
    nemotron.setup_artifact_tracking({"artifacts": {"manifest": {"root": root}}})
    SFTDataArtifact.from_uri("sft", root=other)  # explicit other root: not this tracking's input
    ModelArtifact(path=str(data)).save(name="model")
    assert ManifestStore(root).resolve("model").used_artifacts == []
