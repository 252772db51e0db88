"""Pretraining data: stream a blend through a tokenizer into Megatron `.bin/.idx` shards and a `blend.json`.

    main process   cuts each local, uncompressed JSONL or text source into work units of ~16 MB of whole lines
                   (`SourceStream.line_units`, which reads each byte once for the source digest)
    workers        read and parse a unit (`read_unit`: the same rules as reading in the main process), tokenize
                   it (`TokenEncoder`), append EOD to each non-empty document, and return numpy arrays: tokens,
                   sequence lengths, sequences per document, and a digest per document
    main process   numbers the unit's rows, sends each to train/valid/test by a stable hash of (split_seed,
                   source, row index), and cuts the documents of each (source, split) into shards of
                   `shard_rows` documents: array slices written in bulk to each shard's `IndexedDatasetWriter`,
                   in order, so the shard bytes do not depend on the number of workers or the unit size; a
                   complete shard is finalized and gets a receipt

In a run of several ranks, each rank cuts the source the same way and counts the rows of each unit (its
non-blank lines) as it cuts it, which gives every row its split and shard without parsing (the split of a row
depends on its index alone); its workers read only the units with rows of its own shards, and parse and
tokenize only those rows (`_UnitShards.select`).

Other sources (Parquet, compressed or remote files, Hugging Face datasets, synthetic), a scale limit or a resumed
run are read in the main process (`read_source`), which assigns splits and sends chunks of documents to the
workers (in several ranks every rank reads them in full). All ways give the same shards, receipts and source
records.

Output, in `data_dir`:

    plan.json                                    what this run makes (the plan hash covers the blend, scale,
                                                 shard settings and the tokenizer's digest)
    shards/{source}/{split}/shard_000000.bin/.idx
    receipts/{source}/{split}/shard_000000.json  written last: a shard without a receipt is unfinished
    blend.json                                   Megatron's per_split_data_args_path

**Resume.** A run given the data directory of an interrupted run with the same plan (`previous`) does not
tokenize again a shard whose receipt is there, whose files match the receipt's sizes and digests, and whose
input documents hash to the receipt's input digest; it links (or copies) those files into its own directory.
The sources are still read in full, which is cheap next to tokenizing, and keeps the rows, split assignment
and source digests exact.

**Blend weights.** In each split, a source's shards share the source's `weight` in proportion to their token
counts, so the source gets `weight / sum(weights)` of that split whatever its size or number of shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import InputDatasetInfo
from nemotron.data.indexed import IndexedDatasetWriter, bin_path, idx_path
from nemotron.data.parallel import Passthrough, ordered_map, worker_pool
from nemotron.data.progress import RateProgress
from nemotron.data.sources import SPLITS, BlendConfig, LineUnit, ScaleConfig, SourceStream, read_source, read_unit
from nemotron.data.tokenizer import TokenEncoder
from nemotron.errors import NemotronError

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
BLEND_FILE = "blend.json"
CHUNK_BYTES = 8 << 20  # a unit of work ends at chunk_rows documents or this many bytes of text
UNIT_BYTES = 16 << 20  # a unit of work of a local JSONL or text file: whole lines, about this many bytes
INPUT_DIGEST = "docs-xxh3"  # the scheme of ShardReceipt.input_digest


class ShardSettings(BaseModel):
    """Everything besides the blend and the tokenizer that decides the bytes of the shards."""

    model_config = ConfigDict(extra="forbid")

    shard_rows: int = Field(100_000, ge=1, description="Documents per shard (per source and split).")
    append_eod: bool = Field(True, description="Append the EOD token to every non-empty document.")
    add_special_tokens: bool = Field(False, description="Let the tokenizer add BOS/EOS and the like.")
    split_seed: int = Field(1234, description="Seed of the document -> split assignment.")


class DataPlan(BaseModel):
    """`plan.json`: what a run makes. A run can only resume from one with the same `plan_hash`."""

    model_config = ConfigDict(extra="forbid")

    plan_hash: str
    parts: dict[str, Any] = Field(description="What the hash covers: blend, scale, settings, tokenizer...")

    @classmethod
    def make(cls, **parts: Any) -> DataPlan:
        text = json.dumps(parts, sort_keys=True, default=str)
        return cls(plan_hash=hashlib.sha256(text.encode()).hexdigest()[:16], parts=json.loads(text))

    def differences(self, other: DataPlan) -> list[str]:
        return sorted(k for k in {*self.parts, *other.parts} if self.parts.get(k) != other.parts.get(k))


class ShardReceipt(BaseModel):
    """`receipts/.../shard_NNNNNN.json`: a finished shard, with what is needed to trust it again."""

    model_config = ConfigDict(extra="forbid")

    plan_hash: str
    source: str
    split: str
    index: int
    prefix: str = Field(description="Path prefix of .bin/.idx, relative to the data directory.")
    documents: int
    sequences: int
    tokens: int
    input_digest: str = Field(
        description="docs-xxh3: xxh3-128 of the xxh3-64 of each input document's text (UTF-8), in order."
    )
    bin_bytes: int
    idx_bytes: int
    bin_digest: str
    idx_digest: str


def shard_owner(key: ShardKey, world: int) -> int:
    """The rank that makes a shard: consecutive shards of one (source, split) go to consecutive ranks, from an
    offset given by the names. It depends on the input alone, so the shards are the same whatever the ranks."""
    return (key.index + zlib.crc32(f"{key.source}/{key.split}".encode())) % world


@dataclass(frozen=True)
class ShardKey:
    source: str
    split: str
    index: int

    @property
    def prefix(self) -> str:
        return f"shards/{self.source}/{self.split}/shard_{self.index:06d}"

    @property
    def receipt(self) -> str:
        return f"receipts/{self.source}/{self.split}/shard_{self.index:06d}.json"


@dataclass
class BuildResult:
    """What `build_shards` made."""

    receipts: list[ShardReceipt]
    sources: list[InputDatasetInfo]
    elapsed_sec: float
    reused_shards: int
    recount: list[str] = field(default_factory=list)  # sources whose counted rows were not all rows (see _UnitShards)
    rows_read: int = 0  # rows of units read by this rank's workers (each row is read by one rank)

    def split_totals(self, split: str) -> tuple[int, int, int]:
        """(documents, sequences, tokens) of one split."""
        chosen = [r for r in self.receipts if r.split == split]
        return sum(r.documents for r in chosen), sum(r.sequences for r in chosen), sum(r.tokens for r in chosen)


# -- the work items that flow through the pool ------------------------------------------------------------


@dataclass
class _Chunk:
    key: ShardKey
    texts: list
    last: bool
    documents: int = 0  # documents in the whole shard, known when last
    input_digest: str = ""  # of the whole shard, known when last


@dataclass
class _Encoded:
    key: ShardKey
    last: bool
    documents: int
    tokens: bytes
    sequence_lengths: list[int]
    sequences_per_document: list[int]
    num_tokens: int
    shard_documents: int
    input_digest: str


@dataclass
class _Reused:
    key: ShardKey
    receipt: ShardReceipt


@dataclass
class _Documents:
    """Tokenized documents as numpy arrays: what a worker returns for a `LineUnit`, and slices of it."""

    tokens: Any  # the shard dtype: all tokens, EOD after each non-empty document
    sequence_lengths: Any  # int64, one per sequence (none is 0)
    per_document: Any  # int64: sequences of each document (0 for an empty one)
    digests: Any  # uint64: xxh3-64 of each document's text
    parsed: int = 0  # lines parsed (good or bad)
    bad: list[str] = field(default_factory=list)  # the malformed lines, as file:line: reason

    def select(self, chosen: Any) -> _Documents:
        """The documents where `chosen` (a boolean per document) is true, in order."""
        import numpy as np

        sequences = np.repeat(chosen, self.per_document)
        tokens = self.tokens[np.repeat(sequences, self.sequence_lengths)]
        return _Documents(tokens, self.sequence_lengths[sequences], self.per_document[chosen], self.digests[chosen])

    def split_at(self, count: int) -> tuple[_Documents, _Documents]:
        """The first `count` documents and the rest (views, no copies)."""
        sequences = int(self.per_document[:count].sum())
        tokens = int(self.sequence_lengths[:sequences].sum())
        head = _Documents(
            self.tokens[:tokens], self.sequence_lengths[:sequences], self.per_document[:count], self.digests[:count]
        )
        tail = _Documents(
            self.tokens[tokens:], self.sequence_lengths[sequences:], self.per_document[count:], self.digests[count:]
        )
        return head, tail


@dataclass
class _SourceEnd:
    """After the last item of a source, in order: the main process closes its shards and records what was read."""

    stream: SourceStream
    shards: _UnitShards | None  # the source's shards when it was read in units


@dataclass
class _OpenShard:
    key: ShardKey
    texts: list = field(default_factory=list)
    documents: int = 0
    digest: Any = None
    chunk_bytes: int = 0  # UTF-8 bytes of `texts`


_WORKER: dict[str, Any] = {}


def _init_worker(encoder: TokenEncoder, eod: int | None, dtype: str) -> None:
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a pool worker: one thread each, the pool is the parallelism
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER.update(encoder=encoder, eod=eod, dtype=dtype)


def _encode(chunk: _Chunk | LineUnit) -> _Encoded | _Documents:
    """Tokenize one chunk the way `preprocess_data.py` does: a list text is sentences, empty ones dropped."""
    if isinstance(chunk, LineUnit):
        return _encode_unit(chunk)
    flat, counts = _sentences(chunk.texts)
    ids, lengths = _WORKER["encoder"].encode_flat(flat)
    tokens, sequence_lengths, per_document = _documents(ids, lengths, counts, _WORKER["eod"])
    data = tokens.astype(_WORKER["dtype"], copy=False).tobytes()
    return _Encoded(
        chunk.key, chunk.last, len(chunk.texts), data, sequence_lengths, per_document, len(tokens),
        chunk.documents, chunk.input_digest,
    )  # fmt: skip


def _encode_unit(unit: LineUnit) -> _Documents:
    """Read, parse and tokenize one unit of a file; numpy arrays back (the main process numbers its rows)."""
    import numpy as np

    parsed = read_unit(unit)
    flat, counts = _sentences(parsed.texts)
    ids, lengths = _WORKER["encoder"].encode_flat(flat)
    tokens, sequence_lengths, per_document = _documents(ids, lengths, counts, _WORKER["eod"])
    return _Documents(
        tokens.astype(_WORKER["dtype"], copy=False), np.asarray(sequence_lengths, dtype=np.int64),
        per_document.astype(np.int64, copy=False), document_digests(parsed.texts), parsed.parsed, parsed.bad,
    )  # fmt: skip


def document_digests(texts: list[str | list[str]]) -> Any:
    """The xxh3-64 of each document's text (UTF-8; a list's sentences joined by \\x1e), as uint64."""
    import numpy as np
    import xxhash

    return np.fromiter(map(xxhash.xxh3_64_intdigest, map(_document_bytes, texts)), np.uint64, len(texts))


def _sentences(texts: list) -> tuple[list[str], Any]:
    """The sentences of all documents, flat, and how many each document has (1 for a plain string)."""
    import numpy as np

    if all(isinstance(text, str) for text in texts):
        return texts, np.ones(len(texts), dtype=np.int64)
    flat: list[str] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        sentences = [text] if isinstance(text, str) else text
        flat.extend(sentences)
        counts[i] = len(sentences)
    return flat, counts


def _documents(ids: Any, lengths: Any, counts: Any, eod: int | None) -> tuple[Any, Any, Any]:
    """Sentence ids to documents, with numpy: drop empty sentences, append `eod` to each non-empty document.

    Returns the tokens, the length of every sequence (the last of a document counts its EOD) and the number
    of sequences of each document (0 for an empty one).
    """
    import numpy as np

    document_of = np.repeat(np.arange(len(counts)), counts)
    kept = lengths > 0
    sequence_lengths = lengths[kept]
    per_document = np.bincount(document_of[kept], minlength=len(counts))
    if eod is None or not len(sequence_lengths):
        return ids, sequence_lengths, per_document
    nonempty = per_document > 0
    document_ends = np.cumsum(np.bincount(document_of, weights=lengths, minlength=len(counts)).astype(np.int64))
    tokens = np.insert(ids, document_ends[nonempty], eod)
    sequence_lengths = sequence_lengths.copy()
    sequence_lengths[np.cumsum(per_document)[nonempty] - 1] += 1
    return tokens, sequence_lengths, per_document


# -- resume -----------------------------------------------------------------------------------------------


class PreviousRun:
    """The finished shards of an earlier run with the same plan, verified against their receipts."""

    def __init__(self, data_dir: Path, plan: DataPlan) -> None:
        self.data_dir = data_dir
        self.plan = plan
        self._checked: dict[ShardKey, ShardReceipt | None] = {}

    @classmethod
    def open(cls, directory: str | Path) -> PreviousRun:
        """The data directory of an earlier run, given it or the job output directory that holds it."""
        root = Path(directory).expanduser().absolute()
        data_dir = next((d for d in (root / "data", root) if (d / PLAN_FILE).is_file()), None)
        if data_dir is None:
            raise NemotronError(
                f"stage.resume_from={str(directory)!r} holds no {PLAN_FILE} (looked in {root} and {root / 'data'}): "
                "give the output directory of the interrupted pretrain_data run."
            )
        return cls(data_dir, DataPlan.model_validate_json((data_dir / PLAN_FILE).read_text()))

    def finished(self, key: ShardKey) -> ShardReceipt | None:
        if key not in self._checked:
            self._checked[key] = self._verify(key)
        return self._checked[key]

    def _verify(self, key: ShardKey) -> ShardReceipt | None:
        path = self.data_dir / key.receipt
        try:
            receipt = ShardReceipt.model_validate_json(path.read_text())
        except (OSError, ValueError):
            return None
        files = [(bin_path(self.data_dir / receipt.prefix), receipt.bin_bytes, receipt.bin_digest)]
        files.append((idx_path(self.data_dir / receipt.prefix), receipt.idx_bytes, receipt.idx_digest))
        if receipt.plan_hash != self.plan.plan_hash:
            return None
        for file, size, digest in files:
            if not file.is_file() or file.stat().st_size != size or file_digest(file) != digest:
                log.warning("Redoing %s: %s does not match its receipt", key.prefix, file)
                return None
        return receipt

    def adopt(self, receipt: ShardReceipt, data_dir: Path) -> None:
        """Link (or copy) a finished shard and its receipt into this run's directory (already there when a
        requeued job resumes in its own directory)."""
        if self.data_dir.resolve() == data_dir.resolve():
            return
        for suffix in (".bin", ".idx"):
            _link_or_copy(self.data_dir / f"{receipt.prefix}{suffix}", data_dir / f"{receipt.prefix}{suffix}")
        key = ShardKey(receipt.source, receipt.split, receipt.index)
        _write_atomic(data_dir / key.receipt, receipt.model_dump_json(indent=2))


# -- the build --------------------------------------------------------------------------------------------


def build_shards(
    blend: BlendConfig,
    scale: ScaleConfig,
    settings: ShardSettings,
    encoder: TokenEncoder,
    eod: int | None,
    dtype: str,
    plan: DataPlan,
    data_dir: Path,
    workers: int,
    chunk_rows: int = 4000,
    previous: PreviousRun | None = None,
    rank: int = 0,
    world: int = 1,
    unit_bytes: int = UNIT_BYTES,
) -> BuildResult:
    """Tokenize every source of `blend` into shards under `data_dir`; see the module docstring.

    With `world` > 1 this rank makes only the shards `shard_owner` gives it; the receipts returned are this rank's.
    A source read in units is cut by every rank, which counts the rows of each unit and reads only the units
    with rows of its own shards; another source is read in full by every rank, to know where each shard starts.
    Where a unit held malformed lines the count was wrong: `BuildResult.recount` names those sources, which
    `remake_sources` makes again in one rank.
    """
    sources: list[InputDatasetInfo] = []
    owns = (lambda key: shard_owner(key, world) == rank) if world > 1 else None
    units = _Units(blend, settings, plan, data_dir, dtype, unit_bytes, owns) if previous is None else None
    items = _work_items(blend, scale, settings, chunk_rows, previous, owns, units)
    receipts: list[ShardReceipt] = []
    writers: dict[ShardKey, IndexedDatasetWriter] = {}
    reused = 0
    recount: list[str] = []
    rows_read = 0
    shards: _UnitShards | None = None  # those of the source being read in units
    progress = RateProgress("tokenizing", total_rows=scale.expected_rows(blend.sources) if world == 1 else None)
    with worker_pool(workers, _init_worker, (encoder, eod, dtype)) as pool, progress:
        for result in ordered_map(pool, _encode, items, window=2 * max(workers, 1) + 2):
            if isinstance(result, _UnitShards):
                shards = result
            elif isinstance(result, _Documents):
                receipts += shards.add(result)
                rows_read += len(result.per_document)
                progress.advance(rows=len(result.per_document), tokens=len(result.tokens))
            elif isinstance(result, _SourceEnd):
                receipts += result.shards.close() if result.shards else []
                recount += [result.stream.source.name] if result.shards and result.shards.miscounted else []
                sources.append(result.stream.info())
            elif isinstance(result, _Reused):
                previous.adopt(result.receipt, data_dir)
                receipts.append(result.receipt)
                reused += 1
                progress.advance(rows=result.receipt.documents, tokens=result.receipt.tokens)
            else:
                writer = writers.get(result.key)
                if writer is None:
                    writer = writers[result.key] = IndexedDatasetWriter(data_dir / result.key.prefix, dtype)
                writer.add_documents(result.tokens, result.sequence_lengths, result.sequences_per_document)
                progress.advance(rows=result.documents, tokens=result.num_tokens)
                if result.last:
                    summary = writers.pop(result.key).finalize()
                    receipts.append(
                        _receipt(result.key, result.shard_documents, result.input_digest, summary, plan, data_dir)
                    )
    return BuildResult(
        receipts=receipts, sources=sources, elapsed_sec=progress.elapsed, reused_shards=reused, recount=recount,
        rows_read=rows_read,
    )  # fmt: skip


def remake_sources(result: BuildResult, build: Callable[[BlendConfig], BuildResult], blend: BlendConfig,
                   data_dir: Path) -> BuildResult:  # fmt: skip
    """Make the shards of `result.recount`'s sources again in this rank alone (`build(blend)` with one rank),
    reading every unit and numbering the rows it parses; the other sources' shards are kept."""
    names = set(result.recount)
    log.warning("Source(s) %s hold malformed lines, so the rows counted before parsing were not the rows: making "
                "their shards again in this rank, reading all of them", ", ".join(sorted(names)))  # fmt: skip
    for name in names:  # removed, not overwritten: a shard file may be a hard link to an earlier run's
        for part in ("shards", "receipts"):
            shutil.rmtree(data_dir / part / name, ignore_errors=True)
    again = build(BlendConfig(sources=[s for s in blend.sources if s.name in names], splits=blend.splits))
    remade = {info.name: info for info in again.sources}
    return BuildResult(
        receipts=[r for r in result.receipts if r.source not in names] + again.receipts,
        sources=[remade.get(info.name, info) for info in result.sources],
        elapsed_sec=result.elapsed_sec + again.elapsed_sec,
        reused_shards=result.reused_shards,
    )


def _work_items(
    blend: BlendConfig,
    scale: ScaleConfig,
    settings: ShardSettings,
    chunk_rows: int,
    previous: PreviousRun | None,
    owns: Callable[[ShardKey], bool] | None = None,
    units: _Units | None = None,
) -> Iterator[_Chunk | LineUnit | Passthrough]:
    """Units of files or chunks of documents to tokenize, finished shards of `previous` in their place, and the
    end of each source."""
    import xxhash

    for source in blend.sources:
        stream = read_source(source, scale)
        files = stream.unit_files() if units else None
        if files:
            shards = units.shards(stream)
            yield Passthrough(shards)
            if units.wanted is None:
                yield from stream.line_units(files, units.unit_bytes)
            else:
                yield from shards.select(stream.line_units(files, units.unit_bytes, count_rows=True))
            yield Passthrough(_SourceEnd(stream, shards))
            continue
        shards = {split: _OpenShard(ShardKey(source.name, split, 0), digest=xxhash.xxh3_128()) for split in SPLITS}
        for row, text in enumerate(stream.texts()):
            shard = shards[blend.splits.assign(settings.split_seed, source.name, row)]
            data = _document_bytes(text)
            shard.texts.append(text)
            shard.documents += 1
            shard.chunk_bytes += len(data)
            shard.digest.update(xxhash.xxh3_64_intdigest(data).to_bytes(8, "little"))
            full = shard.documents == settings.shard_rows
            if full or len(shard.texts) >= chunk_rows or shard.chunk_bytes >= CHUNK_BYTES:
                yield from _flush(shard, full, previous, owns)
        for shard in shards.values():
            if shard.documents:
                yield from _flush(shard, True, previous, owns)
        yield Passthrough(_SourceEnd(stream, None))


def _flush(
    shard: _OpenShard, last: bool, previous: PreviousRun | None, owns: Callable[[ShardKey], bool] | None = None
) -> Iterator[_Chunk | Passthrough]:
    import xxhash

    mine = owns is None or owns(shard.key)
    done = previous.finished(shard.key) if previous and mine else None
    if done is not None and not done.input_digest.startswith(f"{INPUT_DIGEST}:"):
        log.info("Redoing %s: its receipt digests the input the way of an older version", shard.key.prefix)
        done = None
    if not mine:
        pass  # another rank makes this shard: only its place in the source counts here
    elif done is None:
        chunk = _Chunk(shard.key, shard.texts, last)
        if last:
            chunk.documents, chunk.input_digest = shard.documents, f"{INPUT_DIGEST}:{shard.digest.hexdigest()}"
        yield chunk
    elif last:
        if done.input_digest != f"{INPUT_DIGEST}:{shard.digest.hexdigest()}" or done.documents != shard.documents:
            raise NemotronError(
                f"Cannot resume: the input documents of {shard.key.prefix} differ from those of the interrupted "
                f"run in {previous.data_dir} (the source changed since). Run again without stage.resume_from."
            )
        yield Passthrough(_Reused(shard.key, done))
    shard.texts = []
    shard.chunk_bytes = 0
    if last:
        shard.key = ShardKey(shard.key.source, shard.key.split, shard.key.index + 1)
        shard.documents = 0
        shard.digest = xxhash.xxh3_128()


def _document_bytes(text: str | list[str]) -> bytes:
    return (text if isinstance(text, str) else "\x1e".join(text)).encode("utf-8", "surrogatepass")


def _receipt(
    key: ShardKey, documents: int, input_digest: str, summary: Any, plan: DataPlan, data_dir: Path
) -> ShardReceipt:
    """The receipt of a finalized shard, written (last: a shard without one is unfinished) and returned."""
    prefix = data_dir / key.prefix
    if summary.documents != documents:
        raise RuntimeError(f"{prefix}: wrote {summary.documents} documents, expected {documents}")
    receipt = ShardReceipt(
        plan_hash=plan.plan_hash,
        source=key.source,
        split=key.split,
        index=key.index,
        prefix=key.prefix,
        documents=summary.documents,
        sequences=summary.sequences,
        tokens=summary.tokens,
        input_digest=input_digest,
        bin_bytes=bin_path(prefix).stat().st_size,
        idx_bytes=idx_path(prefix).stat().st_size,
        bin_digest=file_digest(bin_path(prefix)),
        idx_digest=file_digest(idx_path(prefix)),
    )
    _write_atomic(data_dir / key.receipt, receipt.model_dump_json(indent=2))
    return receipt


# -- sources read in units: rows numbered, split and cut into shards in the main process --------------------


@dataclass
class _Units:
    """What the shards of every source read in units share."""

    blend: BlendConfig
    settings: ShardSettings
    plan: DataPlan
    data_dir: Path
    dtype: str
    unit_bytes: int
    wanted: Callable[[ShardKey], bool] | None = None  # the shards this rank makes, when not all

    def shards(self, stream: SourceStream) -> _UnitShards:
        return _UnitShards(self, stream)


class _UnitShards:
    """The shards of one source read in units: each unit's documents (in order) go to their split's open shard.

    When this rank makes only some shards (`_Units.wanted`), `select` counts the rows of every unit as it is cut
    (its non-blank lines) and gives each row its split and its place there, which depend on the row's index
    alone, so no unit needs parsing for this. It passes on only the units with rows of wanted shards, marked to
    read only those rows (`LineUnit.keep`), and notes the split and place of each; `add` then puts the rows by
    that note. So each row is parsed and tokenized by one rank only (a unit may be read by several). A malformed
    line is not a row, which only parsing tells: a unit read with fewer rows than counted makes the source
    `miscounted` (see `remake_sources`).
    """

    def __init__(self, units: _Units, stream: SourceStream) -> None:
        self.units, self.stream, self.name = units, stream, stream.source.name
        self.rows = 0
        self.split_rows = dict.fromkeys(SPLITS, 0)  # rows of each split before the next unit
        self.open: dict[str, tuple[ShardKey, IndexedDatasetWriter, Any, int]] = {}  # writer, digest, documents
        self.selected: deque | None = None  # per unit passed on by `select`: the split and place of each row read
        self.miscounted = False

    def select(self, units: Iterator[LineUnit]) -> Iterator[LineUnit]:
        """The units (with counted `rows`) that hold rows of wanted shards, marked to read only those rows; notes
        the split and place of each."""
        import numpy as np

        self.selected = deque()
        rows, split_rows, shard_rows = 0, dict.fromkeys(SPLITS, 0), self.units.settings.shard_rows
        for unit in units:
            splits = self._splits(rows, unit.rows)
            places = self._places(splits, split_rows)
            shard_of = splits.astype(np.int64) + len(SPLITS) * (places // shard_rows)  # split and shard index
            mine = [s for s in np.unique(shard_of).tolist() if self.units.wanted(self._key(s))]
            keep = np.isin(shard_of, mine)
            if keep.any():
                self.selected.append((splits[keep], places[keep]))
                yield unit if keep.all() else replace(unit, keep=keep.astype(np.uint8).tobytes())
            rows += unit.rows
            split_rows = self._after(splits, split_rows)
        self.stream.count_rows(rows)

    def _key(self, shard_of: int) -> ShardKey:
        return ShardKey(self.name, SPLITS[shard_of % len(SPLITS)], shard_of // len(SPLITS))

    @staticmethod
    def _after(splits: Any, split_rows: dict[str, int]) -> dict[str, int]:
        """The rows of each split after these."""
        return {split: split_rows[split] + int((splits == code).sum()) for code, split in enumerate(SPLITS)}

    @staticmethod
    def _places(splits: Any, split_rows: dict[str, int]) -> Any:
        """The place of each row in its split, given each split's rows before."""
        import numpy as np

        places = np.empty(len(splits), dtype=np.int64)
        for code, split in enumerate(SPLITS):
            chosen = splits == code
            places[chosen] = split_rows[split] + np.arange(int(chosen.sum()))
        return places

    def add(self, unit: _Documents) -> list[ShardReceipt]:
        """Route the documents of the next unit; the receipts of the shards this fills."""
        count = len(unit.per_document)
        if self.selected is None:
            self.stream.add_unit(count, unit.parsed, unit.bad)
            splits = self._splits(self.rows, count)
            places = self._places(splits, self.split_rows)
            self.rows += count
            self.split_rows = self._after(splits, self.split_rows)
        else:
            splits, places = self.selected.popleft()
            self.miscounted |= count != len(splits)
            if self.miscounted:  # the source is made again (remake_sources): write nothing more
                return []
        receipts: list[ShardReceipt] = []
        for code, split in enumerate(SPLITS):
            chosen = splits == code
            if chosen.all():
                receipts += self._append(split, unit, places)
            elif chosen.any():
                receipts += self._append(split, unit.select(chosen), places[chosen])
        return receipts

    def close(self) -> list[ShardReceipt]:
        """After the last unit: finalize the open shards, then the checks that end reading a source."""
        receipts = [self._finalize(split) for split in SPLITS if split in self.open]
        self.stream.finish()
        return receipts

    def _splits(self, first: int, count: int) -> Any:
        """The split of rows first..first+count-1, as an index into SPLITS (SplitFractions.assign's rule)."""
        import numpy as np

        splits, seed = self.units.blend.splits, self.units.settings.split_seed
        only = splits.only_split()
        if only is not None:
            return np.full(count, SPLITS.index(only), dtype=np.int8)
        return splits.assign_rows(seed, self.name, first, count)

    def _append(self, split: str, documents: _Documents, places: Any) -> list[ShardReceipt]:
        """The documents of one split (in order) into their shards, by their `places` in the split."""
        import numpy as np
        import xxhash

        receipts = []
        shard_rows = self.units.settings.shard_rows
        while len(documents.per_document):
            index = int(places[0]) // shard_rows
            take = int(np.searchsorted(places, (index + 1) * shard_rows))
            head, documents = documents.split_at(take)
            end, places = int(places[take - 1]) + 1, places[take:]
            if split not in self.open:
                key = ShardKey(self.name, split, index)
                writer = IndexedDatasetWriter(self.units.data_dir / key.prefix, self.units.dtype)
                self.open[split] = (key, writer, xxhash.xxh3_128(), 0)
            key, writer, digest, count = self.open[split]
            writer.add_documents(head.tokens, head.sequence_lengths, head.per_document)
            digest.update(head.digests.astype("<u8", copy=False))
            self.open[split] = (key, writer, digest, count + len(head.per_document))
            if end % shard_rows == 0:
                receipts.append(self._finalize(split))
        return receipts

    def _finalize(self, split: str) -> ShardReceipt:
        key, writer, digest, count = self.open.pop(split)
        units = self.units
        return _receipt(
            key, count, f"{INPUT_DIGEST}:{digest.hexdigest()}", writer.finalize(), units.plan, units.data_dir
        )


# -- blend.json -------------------------------------------------------------------------------------------


def blend_per_split(blend: BlendConfig, receipts: list[ShardReceipt], data_dir: Path) -> dict[str, list[str] | None]:
    """Megatron's `per_split_data_args_path` content: `{"train": ["w", "shards/web/train/shard_000000", ...], ...}`.

    All three keys are present; a split without data is `null` (never `[]`); weights are strings; prefixes
    are relative to the blend file's directory, without suffix, and exist. Shards without any sequence are left
    out.

    Relative, so the data is the same bytes wherever it lies: a rerun into another directory gives equal digests,
    and an exported or moved copy names its own shards. Megatron-LM and Megatron-Bridge hand the prefixes of
    `--per-split-data-args-path` verbatim to `IndexedDataset` (relative to the working directory), so our
    readers (the embedded trainer's `blend_split`, the Megatron-Bridge config) resolve each prefix against the
    file with `indexed.locate_prefix` and hand Megatron absolute paths.
    """
    weights = {s.name: s.weight for s in blend.sources}
    result: dict[str, list[str] | None] = {}
    for split in SPLITS:
        shards = [r for r in receipts if r.split == split and r.sequences > 0]
        per_source: dict[str, int] = {}
        for r in shards:
            per_source[r.source] = per_source.get(r.source, 0) + r.tokens
        entries: list[str] = []
        for r in sorted(shards, key=lambda r: (r.source, r.index)):
            prefix = data_dir / r.prefix
            if not (bin_path(prefix).is_file() and idx_path(prefix).is_file()):
                raise RuntimeError(f"blend.json would name a shard that does not exist: {prefix}")
            entries += [format(weights[r.source] * r.tokens / per_source[r.source], ".12g"), Path(r.prefix).as_posix()]
        result[split] = entries or None
    return result


def write_blend(blend: BlendConfig, receipts: list[ShardReceipt], data_dir: Path) -> dict[str, list[str] | None]:
    content = blend_per_split(blend, receipts, data_dir)
    _write_atomic(data_dir / BLEND_FILE, json.dumps(content, indent=2) + "\n")
    return content


# -- files ------------------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    import xxhash

    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return f"xxh3_128:{digest.hexdigest()}"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link: shard files are never rewritten in place, so two runs may share them safely."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
