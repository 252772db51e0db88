"""Data sources: where rows come from, how many are used, and the record of what was read.

A **blend** (`conf/data/*.yaml`) is a list of sources with weights plus output split fractions:

    sources:
      - {name: arithmetic, kind: synthetic, task: pretrain, num_rows: 10000, seed: 1234}
      - {name: web, kind: files, uri: "s3://bucket/web/*.jsonl.zst", text_field: text, weight: 0.3}
      - {name: wiki, kind: hf, uri: "hf://datasets/org/wiki", split: train, text_field: text}

`read_source(source, scale)` streams the rows of one source as dicts, whatever the storage: the synthetic
generator, local or remote files (any fsspec URL, a glob or a directory) of JSONL, Parquet or plain text
(one document per line), gzip/zstd/bz2/xz compressed, or a Hugging Face dataset. The scale limits apply
while streaming (every row of the first `fraction`, evenly spread, at most `max_rows_per_source`), and when
the stream ends, `stream.info()` is the `InputDatasetInfo` that goes into the output artifact.

Bad input stops the run with a `NemotronError` paragraph: an empty source, a missing text field, or more
malformed JSON lines than `max_bad_fraction` (the first few are reported as file:line).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import compress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nemotron.artifacts.types import InputDatasetInfo
from nemotron.errors import NemotronError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_FORMATS |= {".txt": "text", ".text": "text"}
_BAD_LINES_SHOWN = 5
_BELOW_ONE = 1 - 2**-53  # the largest float below 1


class SourceConfig(BaseModel):
    """One source of a blend."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="Used in shard paths.")
    kind: Literal["synthetic", "files", "hf"] = "files"
    uri: str | None = Field(None, description="files: path, glob, directory or fsspec URL; hf: dataset id.")
    weight: float = Field(1.0, description="Share of this source in each split, normalized over the blend.")
    split: str | None = Field(
        None, description="hf: the split to read (default train); synthetic: train | heldout | valid."
    )
    subset: str | None = Field(None, description="hf: the dataset config (subset) name.")
    text_field: str = "text"
    format: Literal["auto", "jsonl", "parquet", "text"] = "auto"
    task: Literal["pretrain", "sft", "rl", "sft_two_step", "rl_two_step"] = Field(
        "pretrain", description="synthetic: which row shape (nemotron/data/synthetic.py GENERATORS)."
    )
    seed: int = 1234
    num_rows: int | None = Field(None, ge=1, description="synthetic: rows to generate; others: at most this.")
    max_bad_fraction: float = Field(0.001, ge=0, le=1, description="Malformed lines tolerated (then fail).")

    @field_validator("weight")
    @classmethod
    def _positive_weight(cls, weight: float) -> float:
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(
                f"a source weight must be a positive number, got {weight}; to leave a source out, remove it "
                "from the blend instead of giving it weight 0"
            )
        return weight

    @model_validator(mode="after")
    def _kind_needs(self) -> SourceConfig:
        if self.kind in ("files", "hf") and not self.uri:
            raise ValueError(f"source {self.name!r} of kind {self.kind!r} needs a `uri`")
        if self.kind == "synthetic" and self.num_rows is None:
            raise ValueError(f"synthetic source {self.name!r} needs `num_rows` (how many rows to generate)")
        if self.kind == "synthetic" and self.split not in (None, "train", "heldout", "valid"):
            raise ValueError(
                f"synthetic source {self.name!r}: split must be train, heldout or valid, got {self.split!r}"
            )
        return self


class SplitFractions(BaseModel):
    """How documents are assigned to the output splits (by a stable hash of source and row index)."""

    model_config = ConfigDict(extra="forbid")

    train: float = Field(0.98, ge=0)
    valid: float = Field(0.01, ge=0)
    test: float = Field(0.01, ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.valid + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must add up to 1, got {total:g}")
        return self

    def only_split(self) -> str | None:
        """The split that gets every row when only one has a nonzero fraction (no hashing needed), else None."""
        nonzero = [split for split in SPLITS if getattr(self, split) > 0]
        return nonzero[0] if len(nonzero) == 1 else None

    def assign(self, seed: int, source: str, row: int) -> str:
        """train, valid or test for one row: a stable hash of (seed, source name, row index), nothing else."""
        digest = hashlib.blake2b(f"{seed}:{source}:{row}".encode(), digest_size=8).digest()
        u = min(int.from_bytes(digest, "little") / 2**64, _BELOW_ONE)  # 2**64 - 1 rounds to 1.0: a split of 0 got it
        if u < self.train:
            return "train"
        return "valid" if u < self.train + self.valid else "test"

    def assign_rows(self, seed: int, source: str, first: int, count: int) -> Any:
        """`assign` of rows first..first+count-1 as indices into SPLITS (int8), the comparisons in numpy: a
        uint64 becomes the float64 that int / 2**64 gives (both round to nearest), so every row gets the same."""
        import numpy as np

        prefix, blake2b = f"{seed}:{source}:".encode(), hashlib.blake2b
        digests = b"".join(
            [blake2b(b"%s%d" % (prefix, row), digest_size=8).digest() for row in range(first, first + count)]
        )
        u = np.minimum(np.frombuffer(digests, "<u8").astype(np.float64) / 2**64, _BELOW_ONE)
        return np.where(u < self.train, 0, np.where(u < self.train + self.valid, 1, 2)).astype(np.int8)


class BlendConfig(BaseModel):
    """A list of sources with weights, and the output split fractions."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(min_length=1)
    splits: SplitFractions = Field(default_factory=SplitFractions)

    @model_validator(mode="after")
    def _unique_names(self) -> BlendConfig:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique within a blend; repeated: {', '.join(duplicates)}")
        return self


class ScaleConfig(BaseModel):
    """`conf/scale/*.yaml`: how much of each source a run uses, and the artifact-name suffix that says so."""

    model_config = ConfigDict(extra="forbid")

    name: str = "full"
    fraction: float = Field(1.0, gt=0, le=1)
    max_rows_per_source: int | None = Field(None, ge=1)
    suffix: str = ""

    def artifact_name(self, base: str) -> str:
        """`base` plus the scale suffix, so a tiny run can never be mistaken for a full one."""
        return base if not self.suffix or base.endswith(self.suffix) else f"{base}{self.suffix}"

    def expected_rows(self, sources: list[SourceConfig]) -> int | None:
        """The rows `sources` will give, where that is known before reading them (synthetic ones): for an ETA."""
        if any(source.kind != "synthetic" for source in sources):
            return None
        rows = (math.floor((source.num_rows or 0) * self.fraction) for source in sources)
        return sum(min(r, self.max_rows_per_source or r) for r in rows)

    def row_cap(self, source: SourceConfig) -> int | None:
        caps = [c for c in (self.max_rows_per_source, None if source.kind == "synthetic" else source.num_rows) if c]
        return min(caps) if caps else None


def read_source(source: SourceConfig, scale: ScaleConfig | None = None) -> SourceStream:
    """A one-shot stream of the rows (dicts) of `source`, with the scale limits applied."""
    return SourceStream(source, scale or ScaleConfig())


class SourceStream:
    """Iterate for rows; `texts()` for the text field; after the stream ends, `info()` for the record.

    `location` names the row last yielded (`file:line`, `file#row`, `synthetic#i`) for error messages.
    """

    def __init__(self, source: SourceConfig, scale: ScaleConfig) -> None:
        self.source = source
        self.scale = scale
        self.location = ""
        self.rows = 0
        self._bytes = 0
        self._files = 0
        self._digest = None
        self._bad: list[str] = []
        self._lines = 0  # lines parsed (good or bad), for the bad fraction
        self._loads: Callable[[bytes], Any] = json.loads

    # -- rows -----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import xxhash

        self._digest = xxhash.xxh3_128()
        cap, fraction = self.scale.row_cap(self.source), self.scale.fraction
        index = 0
        try:
            for location, row in self._raw_rows():
                keep = math.floor((index + 1) * fraction) > math.floor(index * fraction)  # evenly spread
                index += 1
                if not keep:
                    continue
                if cap is not None and self.rows >= cap:
                    break
                self.location = location
                self.rows += 1
                yield row
        finally:
            self._check_bad_lines()
        self._check_rows(after_limits=index > 0)

    def _check_rows(self, after_limits: bool = False) -> None:
        if self.rows == 0:
            raise NemotronError(
                f"Source {self.source.name!r} ({self._uri()}) produced no rows"
                + (f" after the scale limits (scale={self.scale.name})" if after_limits else "")
                + ". Check the path, glob, split or subset, and that the files are not empty."
            )

    def texts(self) -> Iterator[str | list[str]]:
        """The `text_field` of every row: a string, or a list of strings (pre-split sentences).

        JSON lines are parsed with orjson where it is installed: for the strings of the text field it gives what
        `json` gives (other fields may differ: orjson turns integers beyond 64 bits into floats), and a line it
        refuses (NaN, a lone surrogate) is parsed by `json`, which decides whether the line is malformed.
        """
        self._loads = _text_loads()
        for row in self:
            yield text_of(row, self.source.name, self.source.text_field, self.location)

    # -- or in line units, parsed by workers --------------------------------------------------------------

    def unit_files(self) -> list[str] | None:
        """The files of this source when workers can parse it in `LineUnit`s, else None (then iterate it).

        That takes local, uncompressed JSONL or text files (a worker reads its byte range itself) and no scale
        limit (the fraction and the row cap decide row by row, in order).
        """
        if self.source.kind != "files" or self.scale.fraction != 1 or self.scale.row_cap(self.source) is not None:
            return None
        files = expand_files(self.source.uri)
        for url in files:
            fmt, compression = detect_format(url, self.source.format)
            if fmt == "parquet" or compression or "://" in url:
                return None
        return files

    def line_units(self, files: list[str], unit_bytes: int, count_rows: bool = False) -> Iterator[LineUnit]:
        """`files` in units of about `unit_bytes` that end at line ends; each byte is read here once, for the digest.

        With `count_rows` each unit's `rows` is its number of non-blank lines: its rows, unless some are malformed
        (which only parsing tells).

        Afterwards `add_unit` each parsed unit in order, then `finish()`: the stream then holds what iterating
        it would have (rows, bad lines, digest, `info()`), and the same errors are raised.
        """
        import xxhash

        self._digest = xxhash.xxh3_128()
        for path in files:
            fmt, _ = detect_format(path, self.source.format)
            size = os.path.getsize(path)
            self._files += 1
            self._bytes += size
            with open(path, "rb") as f:
                start, line = 0, 1
                while start < size:
                    f.seek(start)
                    data = f.read(unit_bytes)
                    if not data:  # the file shrank while it was read
                        break
                    cut = _unit_end(data, start + len(data) >= size)
                    while not cut:  # one line longer than a unit: the unit ends where it does
                        more = f.read(unit_bytes)
                        data += more
                        cut = _unit_end(data, not more or start + len(data) >= size)
                    self._digest.update(memoryview(data)[:cut])
                    newlines = data.count(b"\n", 0, cut)
                    rows = _nonblank_lines(data, cut, newlines) if count_rows else -1
                    yield LineUnit(self.source.name, path, fmt, self.source.text_field, start, start + cut, line, rows)
                    line += newlines
                    start += cut

    def add_unit(self, rows: int, parsed: int, bad: list[str]) -> None:
        """Count the rows of one parsed unit (in order); warn about its first malformed lines like iterating does."""
        self.rows += rows
        self._lines += parsed
        for line in bad:
            self._bad.append(line)
            if len(self._bad) <= _BAD_LINES_SHOWN:
                log.warning("Source %r: skipping a malformed line at %s", self.source.name, line)

    def count_rows(self, rows: int) -> None:
        """The rows of the units were counted (`line_units`' count_rows), not parsed here."""
        self.rows = self._lines = rows

    def finish(self) -> None:
        """After the last unit: the checks that end an iteration (too many bad lines, no rows)."""
        self._check_bad_lines()
        self._check_rows()

    def info(self) -> InputDatasetInfo:
        """What was read: uri, rows, bytes (as stored), files and an xxh3-128 digest of the rows read."""
        return InputDatasetInfo(
            uri=self._uri(),
            name=self.source.name,
            weight=self.source.weight,
            split=self.source.split,
            subset=self.source.subset,
            text_field=self.source.text_field,
            num_rows=self.rows,
            size_bytes=self._bytes,
            num_files=self._files,
            digest=f"xxh3_128:{self._digest.hexdigest()}" if self._digest else None,
        )

    # -- readers --------------------------------------------------------------------------------------

    def _raw_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.source.kind == "synthetic":
            yield from self._synthetic_rows()
        elif self.source.kind == "hf":
            for path in hf_dataset_files(self.source):
                yield from self._file_rows(path)
        else:
            for path in expand_files(self.source.uri):
                yield from self._file_rows(path)

    def _synthetic_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        from nemotron.data.synthetic import generate

        split = self.source.split or "train"
        for i, row in enumerate(generate(self.source.task, self.source.num_rows, self.source.seed, split)):
            self._add_bytes(_canonical(row))
            yield f"synthetic:{self.source.name}#{i}", row

    def _file_rows(self, url: str) -> Iterator[tuple[str, dict[str, Any]]]:
        import fsspec

        fmt, compression = detect_format(url, self.source.format)
        fs, path = fsspec.core.url_to_fs(url)
        self._files += 1
        self._bytes += fs.size(path) or 0
        # zstd lines: our reader, which notices a file cut inside a frame (fsspec's stream_reader ends quietly)
        checked_zstd = compression == "zstd" and fmt != "parquet"
        try:
            with fsspec.open(url, "rb", compression=None if checked_zstd else compression) as f:
                if fmt == "parquet":
                    yield from self._parquet_rows(f, url)
                else:
                    yield from self._line_rows(ZstdFrames(f) if checked_zstd else f, url, fmt)
        except _read_errors() as exc:
            where = f"after the row at {self.location}" if self.location.startswith(url) else "at its start"
            raise NemotronError(
                f"Source {self.source.name!r}: cannot read {url} as {fmt}{f' ({compression})' if compression else ''}"
                f" {where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no details'}. The "
                "file is truncated, damaged or not in the format its name says: fix or replace it, or set format "
                "on the source."
            ) from exc

    def _line_rows(self, f, url: str, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
        text_field = self.source.text_field
        for number, line in enumerate(_lines(f), start=1):
            self._digest.update(line)
            if not line.strip():
                continue
            if fmt == "text":
                yield f"{url}:{number}", {text_field: line.decode("utf-8").rstrip("\r\n")}
                continue
            self._lines += 1
            try:
                row = self._loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"a JSON line must hold an object, not a {type(row).__name__}")
            except ValueError as exc:
                self._bad_line(f"{url}:{number}", exc)
                continue
            yield f"{url}:{number}", row

    def _parquet_rows(self, f, url: str) -> Iterator[tuple[str, dict[str, Any]]]:
        import pyarrow.parquet as pq

        number = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                self._digest.update(_canonical(row))
                yield f"{url}#{number}", row
                number += 1

    def _add_bytes(self, data: bytes) -> None:
        self._bytes += len(data)
        self._digest.update(data)

    # -- errors ---------------------------------------------------------------------------------------

    def _bad_line(self, location: str, exc: Exception) -> None:
        self._bad.append(f"{location}: {exc}")
        if len(self._bad) <= _BAD_LINES_SHOWN:
            log.warning("Source %r: skipping a malformed line at %s", self.source.name, self._bad[-1])

    def _check_bad_lines(self) -> None:
        if not self._bad:
            return
        fraction = len(self._bad) / max(self._lines, 1)
        if fraction > self.source.max_bad_fraction:
            shown = "; ".join(self._bad[:_BAD_LINES_SHOWN])
            raise NemotronError(
                f"Source {self.source.name!r}: {len(self._bad)} of {self._lines} lines are not valid JSON objects "
                f"({fraction:.2%}, more than max_bad_fraction={self.source.max_bad_fraction:g}). First ones: "
                f"{shown}. Fix the input, or raise max_bad_fraction for this source to skip them."
            )
        log.warning("Source %r: skipped %d malformed lines (%.3f%%)", self.source.name, len(self._bad), 100 * fraction)

    def _uri(self) -> str:
        source = self.source
        if source.kind == "synthetic":
            return f"synthetic://arithmetic/{source.task}?seed={source.seed}&split={source.split or 'train'}"
        if source.kind == "hf":
            return f"hf://datasets/{hf_dataset_id(source.uri)}"
        return source.uri if "://" in source.uri else os.path.abspath(source.uri)


def text_of(row: Any, source: str, field: str, location: str) -> str | list[str]:
    """The text field of a row: a string, or a list of strings; a clear error for anything else."""
    value = row.get(field) if isinstance(row, dict) else None
    if isinstance(value, str):
        return value
    if value is None and isinstance(row, dict) and field in row:
        raise NemotronError(
            f"Source {source!r}: the text field {field!r} is null in the row at {location}. "
            "Remove the rows without text, or fill them."
        )
    if value is None:
        keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
        raise NemotronError(
            f"Source {source!r}: the row at {location} has no text field {field!r} "
            f"(its fields: {keys or 'none'}). Set text_field to the column that holds the text."
        )
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise NemotronError(
            f"Source {source!r}: the field {field!r} at {location} is a {type(value).__name__}, not a string or a "
            "list of strings."
        )
    return value


# -- line units: a byte range of a file, parsed in a worker ----------------------------------------------


@dataclass(frozen=True)
class LineUnit:
    """Bytes `start:end` (whole lines) of a local, uncompressed JSONL or text file; `first_line` numbers the first."""

    source: str
    path: str
    fmt: str
    text_field: str
    start: int
    end: int
    first_line: int
    rows: int = -1  # its non-blank lines where counted (line_units' count_rows), else -1
    keep: bytes | None = None  # only these rows (one byte per non-blank line, 1 = read it); None: all


@dataclass
class UnitTexts:
    """A parsed `LineUnit`: the text of each row, the lines parsed (good or bad) and the malformed ones."""

    texts: list[str | list[str]]
    parsed: int
    bad: list[str]


def read_unit(unit: LineUnit) -> UnitTexts:
    """Parse a `LineUnit` as `SourceStream` parses those lines: blank lines skipped, malformed JSON lines listed."""
    with open(unit.path, "rb") as f:
        f.seek(unit.start)
        data = f.read(unit.end - unit.start)
    if len(data) != unit.end - unit.start:
        raise NemotronError(f"Source {unit.source!r}: {unit.path} changed while it was read. Run again.")
    lines = data.split(b"\n")
    numbers: Any = range(unit.first_line, unit.first_line + len(lines))
    if unit.keep is not None:  # the rows of the shards this rank makes; each line is parsed by one rank only
        rows = [(n, line) for n, line in zip(numbers, lines, strict=True) if line and not line.isspace()]
        numbers, lines = [n for n, _ in compress(rows, unit.keep)], [line for _, line in compress(rows, unit.keep)]
    if unit.fmt == "text":
        try:
            rows = [line.decode("utf-8").rstrip("\r") for line in lines if line and not line.isspace()]
        except UnicodeDecodeError as exc:
            raise NemotronError(
                f"Source {unit.source!r}: cannot read {unit.path} as text (bytes {unit.start}-{unit.end}): {exc}. The "
                "file is damaged or not in the format its name says: fix or replace it, or set format on the source."
            ) from exc
        return UnitTexts(rows, 0, [])
    loads, fast_loads, field = _text_loads(), _fast_loads(), unit.text_field
    try:  # the common unit, every line an object with a string text: no checks per line (the loop below does them)
        first_try = [fast_loads(line)[field] for line in lines if line and not line.isspace()]
        if all(type(text) is str for text in first_try):
            return UnitTexts(first_try, len(first_try), [])
    except (ValueError, KeyError, TypeError):
        pass
    texts: list[str | list[str]] = []
    bad: list[str] = []
    parsed = 0
    for number, line in zip(numbers, lines, strict=True):
        if not line or line.isspace():
            continue
        parsed += 1
        try:
            row = loads(line)
        except ValueError as exc:
            bad.append(f"{unit.path}:{number}: {exc}")
            continue
        value = row.get(field) if type(row) is dict else None
        if type(value) is not str:  # the rare row: checked in full
            if not isinstance(row, dict):
                bad.append(f"{unit.path}:{number}: a JSON line must hold an object, not a {type(row).__name__}")
                continue
            value = text_of(row, unit.source, field, f"{unit.path}:{number}")
        texts.append(value)
    return UnitTexts(texts, parsed, bad)


_BLANK_INSIDE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")
_BLANK_START = re.compile(rb"[ \t\r\x0b\x0c]*(\n|$)")


def _nonblank_lines(data: bytes, end: int | None = None, newlines: int | None = None) -> int:
    """The lines of `data[:end]` that `read_unit` does not skip as blank (empty or whitespace), counted from its
    `newlines` without splitting it where no line between two newlines is blank (the usual case: 4x faster)."""
    end = len(data) if end is None else end
    if _BLANK_INSIDE.search(data, 0, end):
        return sum(1 for line in data[:end].split(b"\n") if line and not line.isspace())
    newlines = data.count(b"\n", 0, end) if newlines is None else newlines
    last = data[data.rfind(b"\n", 0, end) + 1 : end]
    blank_last = not last or last.isspace()
    if not newlines:
        return 0 if blank_last else 1
    return newlines + 1 - bool(_BLANK_START.match(data, 0, end)) - blank_last


def _fast_loads() -> Callable[[bytes], Any]:
    """orjson's `loads` where it is installed (what `_text_loads` tries first), else json's."""
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def _unit_end(data: bytes, last: bool) -> int:
    """Where a unit read as `data` ends: after its last newline, or at its end when it ends the file."""
    return len(data) if last else data.rfind(b"\n") + 1


def _read_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises while it is read: truncated compression, bad bytes, a file that is not Parquet."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, ValueError, zlib.error, lzma.LZMAError]
    try:
        import pyarrow

        errors.append(pyarrow.ArrowException)
    except ImportError:
        pass
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _text_loads() -> Callable[[bytes], Any]:
    """orjson's `loads` (3x faster), falling back to json's for what orjson refuses; json's without orjson."""
    try:
        import orjson
    except ImportError:
        return json.loads

    def loads(line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return json.loads(line)

    return loads


class ZstdFrames:
    """A zstd stream of one or more frames, read with `read(size)`; EOFError when the data ends inside a frame.

    zstandard's `stream_reader` (what fsspec uses) returns what it could decompress and stops when the input ends,
    so a file cut in half reads as a shorter valid one. A `decompressobj` says whether its frame ended (`eof`);
    the bytes after a finished frame (`unused_data`) start the next one."""

    def __init__(self, raw: Any, chunk: int = 1 << 20) -> None:
        import zstandard

        self._raw, self._chunk, self._new = raw, chunk, zstandard.ZstdDecompressor().decompressobj
        self._frame: Any = None  # the frame being decompressed; None between frames
        self._done = False

    def read(self, size: int = -1) -> bytes:
        """The next decompressed bytes (any length; `size` is a hint); b"" at the end of the stream."""
        while not self._done:
            data = self._raw.read(self._chunk)
            if not data:
                self._done = True
                if self._frame is not None:
                    raise EOFError("the zstd data ends inside a frame (the file is truncated)")
                return b""
            out = []
            while data:
                self._frame = self._frame or self._new()
                out.append(self._frame.decompress(data))
                data = self._frame.unused_data if self._frame.eof else b""
                if self._frame.eof:
                    self._frame = None
            if any(out):
                return b"".join(out)
        return b""


def _lines(f, size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream, newline kept (zstandard's reader cannot be iterated by line)."""
    rest = b""
    while chunk := f.read(size):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def _canonical(row: Any) -> bytes:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n"


# -- files ------------------------------------------------------------------------------------------------


def detect_format(url: str, declared: str = "auto") -> tuple[str, str | None]:
    """(format, compression) of a file from its name: `x.jsonl.zst` -> ("jsonl", "zstd")."""
    name = url.rsplit("/", 1)[-1].lower()
    stem, ext = os.path.splitext(name)
    compression = _COMPRESSIONS.get(ext)
    if compression:
        name, ext = stem, os.path.splitext(stem)[1]
    fmt = declared if declared != "auto" else _FORMATS.get(ext)
    if fmt is None:
        known = ", ".join(sorted({*_FORMATS, *(f"{e} + {c}" for e in (".jsonl",) for c in _COMPRESSIONS)}))
        raise NemotronError(
            f"Cannot tell the format of {url!r} from its name (known: {known}). Set format: jsonl, parquet or "
            "text on the source."
        )
    if fmt == "parquet" and compression:
        raise NemotronError(f"{url!r}: Parquet files compress internally; remove the {ext} wrapper.")
    return fmt, compression


def expand_files(uri: str) -> list[str]:
    """The files a `files` source names: one file, a glob, or every data file under a directory (sorted)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]

    def url(p: str) -> str:
        return p if protocol in ("file", "local") else fs.unstrip_protocol(p)

    if any(ch in path for ch in "*?["):
        found = sorted(p for p in fs.glob(path) if fs.isfile(p))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if _is_data_file(p))
    elif fs.exists(path):
        found = [path]
    else:
        raise NemotronError(f"The source path {uri!r} does not exist.")
    if not found:
        raise NemotronError(f"No data files match {uri!r} (JSONL, Parquet or text, optionally compressed).")
    return [url(p) for p in found]


def _is_data_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name.startswith("."):
        return False
    try:
        detect_format(path)
    except NemotronError:
        return False
    return True


# -- Hugging Face -----------------------------------------------------------------------------------------

_HF_PREFIX = re.compile(r"^(hf://)?(datasets/)?")


def hf_dataset_id(uri: str) -> str:
    """`hf://datasets/org/name` or `org/name` -> `org/name`."""
    return _HF_PREFIX.sub("", uri.strip()).strip("/")


def hf_dataset_files(source: SourceConfig) -> list[str]:
    """Local paths of the data files of a Hugging Face dataset (subset, split), downloaded into the HF cache.

    Offline (HF_HUB_OFFLINE=1) only the cache is used; a dataset that is not there fails at once with a
    message naming it, and so does an unreachable Hub (short timeouts, no retries that could hang).
    """
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as exc:
        raise NemotronError("Reading Hugging Face datasets needs huggingface_hub: pip install 'nemotron[hf]'.") from exc
    repo_id = hf_dataset_id(source.uri)
    patterns = [f"*{ext}" for ext in _FORMATS] + [
        f"*{ext}{c}" for ext in (".jsonl", ".json", ".txt") for c in _COMPRESSIONS
    ]
    if source.subset:
        patterns = [f"{source.subset}/{p}" for p in patterns] + [f"*/{source.subset}/{p}" for p in patterns]
    try:
        local = snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns, etag_timeout=10)
    except Exception as exc:  # offline, not found, gated, unreachable: all become one clear paragraph
        if constants.HF_HUB_OFFLINE:
            where = (
                f"HF_HUB_OFFLINE=1 is set, so only the local cache ({constants.HF_HUB_CACHE}) is used, and the "
                "dataset is not there. Download it once with network access (or copy the cache), or unset "
                "HF_HUB_OFFLINE"
            )
        else:
            where = (
                f"the Hub could not provide it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Check the "
                f"dataset id and your access; without network, set HF_HUB_OFFLINE=1 to use the cache "
                f"({constants.HF_HUB_CACHE})"
            )
        raise NemotronError(
            f"Cannot read the Hugging Face dataset {repo_id!r} (source {source.name!r}): {where}; or point a "
            "`kind: files` source at a local copy."
        ) from exc
    files = expand_files(local)
    split = source.split or "train"
    chosen = [p for p in files if _split_of(os.path.relpath(p, local)) == split]
    if not chosen:
        available = sorted({_split_of(os.path.relpath(p, local)) or "?" for p in files})
        raise NemotronError(
            f"The Hugging Face dataset {repo_id!r} has no data files for split {split!r} "
            f"(splits found: {', '.join(available)}). Set split on the source."
        )
    return chosen


def _split_of(relative_path: str) -> str | None:
    """The split a dataset file belongs to by the usual Hub layouts: `train-0000.parquet`, `data/test/x`."""
    for part in reversed(re.split(r"[/\\]", relative_path)):
        word = re.split(r"[-_.]", part, maxsplit=1)[0].lower()
        if word in ("train", "validation", "valid", "test", "dev"):
            return word
    return None
