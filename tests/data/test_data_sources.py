"""Sources: every storage format, compression, scale limits, the InputDatasetInfo record, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nemotron.data.sources import BlendConfig, ScaleConfig, SourceConfig, read_source
from nemotron.errors import NemotronError

pytestmark = pytest.mark.integration

DOCS = [f"document {i}: {i} + {i} = {2 * i}" for i in range(40)]


def _write(path: Path, fmt: str, rows: list[dict]) -> Path:
    """Write rows as JSONL, Parquet or text, compressed by the file name's suffix."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
        return path
    lines = [json.dumps(r) for r in rows] if fmt == "jsonl" else [r["text"] for r in rows]
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def _texts(source: SourceConfig, scale: ScaleConfig | None = None) -> list:
    return list(read_source(source, scale).texts())


@pytest.mark.parametrize(
    "filename, fmt",
    [
        ("docs.jsonl", "jsonl"),
        ("docs.jsonl.gz", "jsonl"),
        ("docs.jsonl.zst", "jsonl"),
        ("docs.json", "jsonl"),
        ("docs.parquet", "parquet"),
        ("docs.txt", "text"),
        ("docs.txt.gz", "text"),
    ],
)
def test_each_format_and_compression_reads_every_row_in_order(tmp_path, filename, fmt):
    path = _write(tmp_path / filename, fmt, [{"text": t, "id": i} for i, t in enumerate(DOCS)])
    stream = read_source(SourceConfig(name="s", uri=str(path)))
    assert list(stream.texts()) == DOCS
    info = stream.info()
    assert (info.uri, info.num_rows, info.num_files) == (str(path), len(DOCS), 1)
    assert info.size_bytes == path.stat().st_size and info.digest.startswith("xxh3_128:")


def test_globs_directories_and_fsspec_urls(tmp_path):
    import fsspec

    for i in range(3):
        _write(tmp_path / f"part-{i}.jsonl", "jsonl", [{"text": f"{i}-{j}"} for j in range(2)])
    (tmp_path / "notes.md").write_text("not data")
    expected = [f"{i}-{j}" for i in range(3) for j in range(2)]
    assert _texts(SourceConfig(name="s", uri=str(tmp_path / "part-*.jsonl"))) == expected
    assert _texts(SourceConfig(name="s", uri=str(tmp_path))) == expected  # data files only, sorted
    with fsspec.open("memory://corpus/a.jsonl.gz", "wb", compression="gzip") as f:
        f.write(b'{"body": "from memory"}\n')
    assert _texts(SourceConfig(name="s", uri="memory://corpus/*.jsonl.gz", text_field="body")) == ["from memory"]


def test_list_values_are_sentences_and_other_columns_pass_through(tmp_path):
    path = _write(tmp_path / "d.parquet", "parquet", [{"text": ["a b", "c"], "meta": {"k": 1}}])
    assert _texts(SourceConfig(name="s", uri=str(path))) == [["a b", "c"]]
    assert list(read_source(SourceConfig(name="s", uri=str(path)))) == [{"text": ["a b", "c"], "meta": {"k": 1}}]


def test_synthetic_source_is_deterministic_and_recorded():
    source = SourceConfig(name="arith", kind="synthetic", task="rl", num_rows=20, seed=3, split="heldout")
    first, second = read_source(source), read_source(source)
    assert list(first) == list(second) and first.rows == 20
    info = first.info()
    assert info.uri == "synthetic://arithmetic/rl?seed=3&split=heldout"
    assert info.digest == second.info().digest and info.size_bytes > 0


def test_digest_changes_with_the_content(tmp_path):
    path = _write(tmp_path / "d.jsonl", "jsonl", [{"text": t} for t in DOCS])
    stream = read_source(SourceConfig(name="s", uri=str(path)))
    list(stream)
    before = stream.info().digest
    _write(path, "jsonl", [{"text": t} for t in [*DOCS[:-1], "changed"]])
    stream = read_source(SourceConfig(name="s", uri=str(path)))
    list(stream)
    assert stream.info().digest != before


@pytest.mark.parametrize(
    "scale, num_rows, expected",
    [
        (ScaleConfig(name="tiny", max_rows_per_source=7, suffix="-tiny"), None, DOCS[:7]),
        (ScaleConfig(name="small", fraction=0.1, suffix="-small"), None, DOCS[9::10]),  # evenly spread
        (
            ScaleConfig(name="medium", fraction=0.3),
            None,
            [d for i, d in enumerate(DOCS) if (i + 1) * 3 // 10 > i * 3 // 10],
        ),
        (ScaleConfig(), None, DOCS),
        (ScaleConfig(), 5, DOCS[:5]),  # a source's own num_rows caps files too
        (ScaleConfig(max_rows_per_source=3), 5, DOCS[:3]),
    ],
)
def test_scale_limits(tmp_path, scale, num_rows, expected):
    path = _write(tmp_path / "d.jsonl", "jsonl", [{"text": t} for t in DOCS])
    stream = read_source(SourceConfig(name="s", uri=str(path), num_rows=num_rows), scale)
    assert list(stream.texts()) == expected
    assert stream.info().num_rows == len(expected)


def test_scale_limits_apply_to_synthetic_sources():
    source = SourceConfig(name="s", kind="synthetic", num_rows=100)
    assert len(list(read_source(source, ScaleConfig(max_rows_per_source=10)))) == 10
    assert len(list(read_source(source, ScaleConfig(fraction=0.3)))) == 30


@pytest.mark.parametrize(
    "option, name",
    [
        ("tiny", "pretrain-data-tiny"),
        ("small", "pretrain-data-small"),
        ("medium", "pretrain-data-medium"),
        ("full", "pretrain-data"),
    ],
)
def test_the_artifact_name_carries_the_scale_suffix(option, name):
    import nemotron.conf

    path = Path(nemotron.conf.__file__).parent / "scale" / f"{option}.yaml"
    scale = ScaleConfig.model_validate(OmegaConf.to_container(OmegaConf.load(path)))
    assert scale.artifact_name("pretrain-data") == name
    assert scale.artifact_name(name) == name  # never twice
    assert scale.max_rows_per_source == (10000 if option == "tiny" else None)


def test_malformed_lines_within_the_tolerance_are_skipped(tmp_path, caplog):
    lines = [json.dumps({"text": t}) for t in DOCS] + ["{not json"]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    source = SourceConfig(name="s", uri=str(tmp_path / "d.jsonl"), max_bad_fraction=0.05)
    assert _texts(source) == DOCS
    assert f"{tmp_path / 'd.jsonl'}:41" in caplog.text


# -- bad input: each a NemotronError whose message says what and where ---------------------------------------


def _bad_lines(tmp_path: Path) -> SourceConfig:
    lines = [json.dumps({"text": t}) for t in DOCS[:5]] + ["{oops", "[1, 2]", "", "not json at all"] + ['{"text": "x"}']
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    return SourceConfig(name="s", uri=str(tmp_path / "bad.jsonl"))


def _missing_field(tmp_path: Path) -> SourceConfig:
    _write(tmp_path / "d.jsonl", "jsonl", [{"text": "ok"}, {"content": "no text here"}])
    return SourceConfig(name="s", uri=str(tmp_path / "d.jsonl"))


def _empty_file(tmp_path: Path) -> SourceConfig:
    (tmp_path / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    return SourceConfig(name="s", uri=str(tmp_path / "empty.jsonl.gz"))


def _wrong_type(tmp_path: Path) -> SourceConfig:
    _write(tmp_path / "d.jsonl", "jsonl", [{"text": 42}])
    return SourceConfig(name="s", uri=str(tmp_path / "d.jsonl"))


def _truncated(tmp_path: Path, suffix: str) -> SourceConfig:
    path = _write(tmp_path / f"d.jsonl{suffix}", "jsonl", [{"text": t} for t in DOCS * 50])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return SourceConfig(name="s", uri=str(path))


def _cut_zstd(tmp_path: Path, keep: int) -> SourceConfig:
    path = _write(tmp_path / "d.jsonl.zst", "jsonl", [{"text": t} for t in DOCS])
    path.write_bytes(path.read_bytes()[:keep])
    return SourceConfig(name="s", uri=str(path))


def test_a_zstd_file_of_several_frames_is_read_whole(tmp_path):
    """Concatenated frames (pzstd, `cat a.zst b.zst`) are one valid zstd file: every frame's rows are read."""
    import zstandard

    path = tmp_path / "d.jsonl.zst"
    frames = [zstandard.ZstdCompressor().compress(f'{{"text": "{t}"}}\n'.encode()) for t in DOCS]
    path.write_bytes(b"".join(frames))
    assert _texts(SourceConfig(name="s", uri=str(path))) == DOCS


def _not_parquet(tmp_path: Path) -> SourceConfig:
    (tmp_path / "d.parquet").write_text('{"text": "JSON lines, not Parquet"}\n')
    return SourceConfig(name="s", uri=str(tmp_path / "d.parquet"))


def _parquet_null(tmp_path: Path) -> SourceConfig:
    _write(tmp_path / "d.parquet", "parquet", [{"text": "ok"}, {"text": "ok"}, {"text": None}])
    return SourceConfig(name="s", uri=str(tmp_path / "d.parquet"))


BAD_SOURCES = {
    "truncated gzip": (
        lambda p: _truncated(p, ".gz"),
        ["cannot read", "d.jsonl.gz as jsonl (gzip)", "EOFError", "truncated"],
    ),  # fmt: skip
    "truncated zstd": (
        lambda p: _truncated(p, ".zst"),
        ["cannot read", "d.jsonl.zst as jsonl (zstd)", "EOFError", "truncated"],
    ),  # fmt: skip
    "zstd cut at a frame header": (lambda p: _cut_zstd(p, 6), ["d.jsonl.zst as jsonl (zstd) at its start", "EOFError"]),
    "not parquet": (_not_parquet, ["cannot read", "d.parquet as parquet at its start", "Parquet magic bytes"]),
    "parquet text null": (_parquet_null, ["text field 'text' is null", "d.parquet#2"]),
    "malformed JSON lines": (
        _bad_lines,
        ["bad.jsonl:6", "bad.jsonl:7", "bad.jsonl:9", "3 of 9 lines", "max_bad_fraction"],
    ),
    "missing text field": (_missing_field, ["d.jsonl:2", "no text field 'text'", "content", "text_field"]),
    "empty source": (_empty_file, ["produced no rows", "empty.jsonl.gz"]),
    "text is not a string": (_wrong_type, ["d.jsonl:1", "int", "not a string"]),
    "missing path": (lambda p: SourceConfig(name="s", uri=str(p / "nope.jsonl")), ["does not exist", "nope.jsonl"]),
    "glob matches nothing": (lambda p: SourceConfig(name="s", uri=str(p / "*.jsonl")), ["No data files match"]),
    "unknown format": (lambda p: _touch(p / "data.csv"), ["Cannot tell the format", "format: jsonl"]),
}


def _touch(path: Path) -> SourceConfig:
    path.write_text("a,b\n")
    return SourceConfig(name="s", uri=str(path))


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_sources_fail_with_a_clear_paragraph(tmp_path, case):
    make, fragments = BAD_SOURCES[case]
    with pytest.raises(NemotronError) as error:
        list(read_source(make(tmp_path)).texts())
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"weight": 0}, ["weight must be a positive number, got 0", "remove it"]),
        ({"weight": -1.5}, ["got -1.5"]),
        ({"weight": float("nan")}, ["got nan"]),
        ({"kind": "files", "uri": None}, ["needs a `uri`"]),
        ({"num_rows": None}, ["needs `num_rows`"]),
        ({"name": "a/b"}, ["stage.blend.sources.0.name"]),
    ],
)
def test_bad_blend_settings_fail_with_a_clear_paragraph(change, fragments):
    from nemotron.job import stage_params
    from nemotron.stages.pretrain_data import PretrainDataParams

    source = {"name": "a", "kind": "synthetic", "num_rows": 10, "weight": 1.0, **change}
    cfg = OmegaConf.create({"stage": {"blend": {"sources": [source]}}})
    with pytest.raises(NemotronError) as error:
        stage_params(cfg, PretrainDataParams)
    for fragment in ["Invalid stage parameters", *fragments]:
        assert fragment in str(error.value)


def test_blend_rejects_duplicate_names_and_bad_fractions():
    with pytest.raises(ValueError, match="repeated: a"):
        BlendConfig(sources=[{"name": "a", "uri": "x"}, {"name": "a", "uri": "y"}])
    with pytest.raises(ValueError, match="add up to 1"):
        BlendConfig(sources=[{"name": "a", "uri": "x"}], splits={"train": 0.5, "valid": 0.1, "test": 0.1})


def test_hugging_face_dataset_offline_fails_fast_naming_dataset_and_setting(tmp_path):
    code = (
        "from nemotron.data.sources import SourceConfig, read_source\n"
        "list(read_source(SourceConfig(name='w', kind='hf', uri='hf://datasets/nobody/no-such-corpus', split='train')))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "NemotronError" in message and "'nobody/no-such-corpus'" in message
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path / "hf") in message


def test_split_assignment_is_stable_and_follows_the_fractions():
    from nemotron.data.sources import SplitFractions

    fractions = SplitFractions(train=0.8, valid=0.15, test=0.05)
    splits = [fractions.assign(1234, "web", row) for row in range(20000)]
    assert splits == [fractions.assign(1234, "web", row) for row in range(20000)]
    assert splits != [fractions.assign(1234, "books", row) for row in range(20000)]
    for split, share in (("train", 0.8), ("valid", 0.15), ("test", 0.05)):
        assert splits.count(split) / len(splits) == pytest.approx(share, abs=0.01)
    assert {SplitFractions(train=1, valid=0, test=0).assign(0, "x", row) for row in range(1000)} == {"train"}
