"""Sources read in work units (byte ranges of local JSONL or text files, parsed in workers) give exactly what reading
them in the main process gives: the same shards, receipts and source records, and the same errors."""

from __future__ import annotations

import gzip
import json
import logging
from functools import partial
from pathlib import Path

import pytest

from nemotron.data.indexed import IndexedDatasetReader, token_dtype
from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
from nemotron.data.sources import BlendConfig, ScaleConfig, SourceStream, read_source
from nemotron.data.tokenizer import TokenEncoder, load_tokenizer
from nemotron.errors import NemotronError

# Empty and blank documents, sentences (lists), unicode, a line far longer than a unit.
DOCS = [
    "12 + 7 = 19",
    "",
    "   ",
    ["Ana has 3 apples.", "", "She gets 4 more."],
    [],
    "naïve café — 東京 🙂 <|endoftext|> inside text",
    " ".join(f"{i} + {i} = {2 * i}" for i in range(200)),
] + [f"Question: {i} + {2 * i}?\nAnswer: {3 * i}" for i in range(300)]


def _write(path: Path, lines: list[str]) -> Path:
    data = "".join(lines).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _lines() -> list[str]:
    lines = [json.dumps({"text": text, "id": i}) + "\n" for i, text in enumerate(DOCS)]
    lines.insert(5, "\n")  # a blank line: skipped, not a row
    lines.insert(9, "  \r\n")
    lines.insert(40, '{"text": "cut\n')  # malformed: skipped and counted
    lines[-1] = lines[-1].rstrip("\n")  # no newline at the end
    return lines


def _build(tmp_path, bpe_dir, name, suffix, splits, workers, unit_bytes=97):
    directory = tmp_path / name
    directory.mkdir()
    half = len(_lines()) // 2
    _write(directory / f"a.jsonl{suffix}", _lines()[:half])
    _write(directory / f"b.jsonl{suffix}", _lines()[half:])
    blend = BlendConfig(sources=[{"name": "docs", "uri": str(directory), "max_bad_fraction": 0.01}], splits=splits)
    tokenizer = load_tokenizer(bpe_dir)
    result = build_shards(
        blend, ScaleConfig(), ShardSettings(shard_rows=50), TokenEncoder(tokenizer), tokenizer.eos_token_id,
        token_dtype(len(tokenizer)), DataPlan.make(test=True), tmp_path / f"{name}-out", workers=workers,
        chunk_rows=13, unit_bytes=unit_bytes,
    )  # fmt: skip
    return result, tmp_path / f"{name}-out"


@pytest.mark.parametrize("splits", [{"train": 1, "valid": 0, "test": 0}, {"train": 0.6, "valid": 0.3, "test": 0.1}])
def test_units_give_the_shards_receipts_and_record_of_reading_in_the_main_process(tmp_path, bpe_dir, splits):
    units, units_dir = _build(tmp_path, bpe_dir, "plain", "", splits, workers=2)
    stream, stream_dir = _build(tmp_path, bpe_dir, "gzip", ".gz", splits, workers=1)  # gzip: read in the main process

    assert [r.model_dump() for r in units.receipts] == [r.model_dump() for r in stream.receipts]
    assert len(units.receipts) > 3  # several shards per split, cut inside units
    for receipt in units.receipts:
        for suffix in (".bin", ".idx"):
            assert (units_dir / f"{receipt.prefix}{suffix}").read_bytes() == (
                stream_dir / f"{receipt.prefix}{suffix}"
            ).read_bytes()
    (ours,), (theirs,) = units.sources, stream.sources
    assert ours.num_rows == theirs.num_rows == len(DOCS)
    assert ours.model_dump(exclude={"uri", "size_bytes"}) == theirs.model_dump(exclude={"uri", "size_bytes"})


def test_every_document_is_in_order_whatever_the_unit_size(tmp_path, bpe_dir):
    """A unit of a few bytes (one line each), and one unit for everything, give the same bytes."""
    splits = {"train": 1, "valid": 0, "test": 0}
    tiny, tiny_dir = _build(tmp_path, bpe_dir, "tiny", "", splits, workers=2, unit_bytes=1)
    whole, whole_dir = _build(tmp_path, bpe_dir, "whole", "", splits, workers=2, unit_bytes=1 << 24)
    assert [r.model_dump() for r in tiny.receipts] == [r.model_dump() for r in whole.receipts]
    tokenizer = load_tokenizer(bpe_dir)
    documents = [
        doc for r in tiny.receipts for reader in [IndexedDatasetReader(tiny_dir / r.prefix)]
        for doc in (reader.document(j).tolist() for j in range(reader.num_documents))
    ]  # fmt: skip
    expected = []
    for text in DOCS:
        ids = [t for s in ([text] if isinstance(text, str) else text) for t in tokenizer(s).input_ids]
        expected.append(ids + [tokenizer.eos_token_id] if ids else [])
    assert documents == expected


def test_a_unit_reports_malformed_lines_and_bad_rows_with_their_file_and_line(tmp_path, bpe_dir, caplog):
    path = _write(tmp_path / "bad.jsonl", ['{"text": "a"}\n', "\n", "not json\n", '{"text": "b"}\n', '{"body": "c"}\n'])
    tokenizer = load_tokenizer(bpe_dir)
    blend = BlendConfig(sources=[{"name": "s", "uri": str(path), "max_bad_fraction": 0.5}])
    stream = SourceStream(blend.sources[0], ScaleConfig())
    with caplog.at_level(logging.WARNING), pytest.raises(NemotronError) as error:
        build_shards(
            blend, ScaleConfig(), ShardSettings(), TokenEncoder(tokenizer), tokenizer.eos_token_id,
            token_dtype(len(tokenizer)), DataPlan.make(test=True), tmp_path / "out", workers=2, unit_bytes=16,
        )  # fmt: skip
    assert f"{path}:5" in str(error.value) and "no text field 'text'" in str(error.value)
    assert f"skipping a malformed line at {path}:3" in caplog.text
    with pytest.raises(NemotronError, match=f"{path}:5"):
        list(stream.texts())  # reading in the main process says the same


def test_which_sources_are_read_in_units(tmp_path):
    plain = _write(tmp_path / "a.jsonl", ['{"text": "a"}\n'])
    packed = _write(tmp_path / "b.jsonl.gz", ['{"text": "a"}\n'])
    text = _write(tmp_path / "c.txt", ["a\n"])

    def files(uri, **scale):
        return read_source(
            BlendConfig(sources=[{"name": "s", "uri": uri}]).sources[0], ScaleConfig(**scale)
        ).unit_files()

    assert files(str(plain)) == [str(plain)] and files(str(text)) == [str(text)]
    assert files(str(packed)) is None  # compressed: read in the main process
    assert files(str(plain), fraction=0.5) is None and files(str(plain), max_rows_per_source=1) is None


@pytest.mark.parametrize("malformed", [False, True])
def test_each_rank_reads_only_the_units_of_its_shards_and_the_ranks_make_the_shards_of_one(
    tmp_path, bpe_dir, malformed
):
    """Ranks count the rows of the units as they cut them and read only those with rows of their own shards; a
    malformed line (not a row) makes the counts wrong, which the reading rank reports, and rank 0 makes that
    source again alone: the shards are those of one rank either way."""
    import nemotron.data.pretrain as pretrain

    lines = _lines() if malformed else [line for line in _lines() if not line.startswith('{"text": "cut')]
    (tmp_path / "docs").mkdir()
    _write(tmp_path / "docs" / "a.jsonl", lines[:150])
    _write(tmp_path / "docs" / "b.jsonl", lines[150:])
    blend = BlendConfig(
        sources=[{"name": "docs", "uri": str(tmp_path / "docs"), "max_bad_fraction": 0.01}],
        splits={"train": 0.6, "valid": 0.3, "test": 0.1},
    )
    tokenizer = load_tokenizer(bpe_dir)

    def build(blend, out, rank=0, world=1):
        return build_shards(
            blend, ScaleConfig(), ShardSettings(shard_rows=20), TokenEncoder(tokenizer), tokenizer.eos_token_id,
            token_dtype(len(tokenizer)), DataPlan.make(test=True), out, workers=1, rank=rank, world=world,
            unit_bytes=300,
        )  # fmt: skip

    one = build(blend, tmp_path / "one")
    for world in (2, 3):
        out = tmp_path / f"world{world}"
        results = [build(blend, out, rank, world) for rank in range(world)]
        reads = [result.rows_read for result in results]  # every row is parsed and tokenized by one rank
        assert all(0 < read < one.rows_read for read in reads) and sum(reads) == one.rows_read, reads
        merged = pretrain.BuildResult(
            receipts=[r for result in results for r in result.receipts], sources=results[0].sources,
            elapsed_sec=0, reused_shards=0, recount=sorted({n for result in results for n in result.recount}),
        )  # fmt: skip
        assert merged.recount == (["docs"] if malformed else [])
        if malformed:
            merged = pretrain.remake_sources(merged, partial(build, out=out), blend, out)
        key = lambda r: (r.split, r.index)  # noqa: E731
        assert [r.model_dump() for r in sorted(merged.receipts, key=key)] == [
            r.model_dump() for r in sorted(one.receipts, key=key)
        ]
        for receipt in one.receipts:
            for suffix in (".bin", ".idx"):
                assert (out / f"{receipt.prefix}{suffix}").read_bytes() == (
                    tmp_path / "one" / f"{receipt.prefix}{suffix}"
                ).read_bytes()
        assert merged.sources == one.sources


@pytest.mark.parametrize(
    "fractions", [{}, {"train": 0.6, "valid": 0.3, "test": 0.1}, {"train": 0, "valid": 0.5, "test": 0.5}]
)
def test_rows_are_counted_and_split_without_parsing_as_reading_them_would(fractions):
    import random

    from nemotron.data.sources import SPLITS, SplitFractions, _nonblank_lines

    splits = SplitFractions(**fractions)
    codes = splits.assign_rows(7, "web", 1000, 20_000).tolist()
    assert codes == [SPLITS.index(splits.assign(7, "web", row)) for row in range(1000, 21_000)]
    rng = random.Random(0)
    pieces = [b"", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\x1c", b"a", b" {} "]
    for _ in range(20_000):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) + rng.choice([b"", b"\n"])
        assert _nonblank_lines(data) == sum(1 for line in data.split(b"\n") if line and not line.isspace()), data
