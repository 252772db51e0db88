"""The SFT data engine: a blend of chat sources -> packed Parquet shards, split links, blend.json, metadata.

    per source      read and check its conversations, send each to train/valid/test by a stable hash of
    (a work unit)   (split_seed, source, row index), tokenize them in batches (`ChatTokenizer`), pack each split
                    (`pack_sequences`), and write the packed rows as Parquet shards under
                    runs/<run_hash>/datasets/<source>/<plan_hash>/; the result is a `SourcePack`
    once            over every source's pack in blend order: link each shard from splits/<split>/ (numbered
                    across sources), write blend.json, metadata.json and Megatron-Bridge's
                    {pack_size}_metadata.jsonl (`write_dataset`)

A source's shards depend on that source alone, so a job of several tasks gives each rank its own sources
(`source_owner`) and rank 0 writes the rest from the ranks' `SourcePack`s: the same files as one task.
Layout and formats: nemotron/stages/sft_data.py and formats.md 5.5.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import InputDatasetInfo
from nemotron.data.sft import (
    Algorithm,
    ChatTokenizer,
    Overlong,
    PackedRows,
    Tokenized,
    conversation_messages,
    pack_sequences,
    write_parquet,
)
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, SourceConfig, SplitFractions, read_source


class PackSettings(BaseModel):
    """Everything besides the blend and the tokenizer that decides the packed files."""

    model_config = ConfigDict(extra="forbid")

    pack_size: int = Field(ge=1, description="Tokens per packed row (the training sequence length).")
    algorithm: Algorithm
    overlong: Overlong = Field(description="A conversation longer than pack_size: truncate or drop.")
    messages_field: str
    seed: int = Field(description="Seed of first_fit_shuffle.")
    split_seed: int = Field(description="Seed of the conversation -> split assignment.")
    shard_rows: int = Field(ge=1, description="Packed rows per Parquet file.")
    batch_rows: int = Field(ge=1, description="Conversations tokenized per batch.")

    def files_part(self) -> dict[str, Any]:
        """The settings that the file names' hashes cover (the batch size changes no byte)."""
        return self.model_dump(exclude={"batch_rows"})


class PackedPart(BaseModel):
    """One (source, split), packed: its shard files and what went into them."""

    source: str
    split: str
    rows: int
    sequences: int
    tokens: int
    truncated: int
    dropped: int
    max_sequence: int = Field(description="The longest sequence in a row, in tokens.")
    max_per_row: int = Field(description="The most sequences in one row.")
    min_row: int = Field(description="The shortest row, in tokens (0 without rows).")
    shards: list[tuple[str, int, int]] = Field(description="(path relative to the data dir, rows, tokens).")


class SourcePack(BaseModel):
    """What one source gave: its packed parts (SPLITS order) and the record of what was read."""

    parts: list[PackedPart]
    info: InputDatasetInfo


def source_owner(index: int, world: int) -> int:
    """The rank that packs the `index`-th source of the blend: a rule on the input alone."""
    return index % world


def digest(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- one source -------------------------------------------------------------------------------------------


def pack_source(
    source: SourceConfig,
    blend: BlendConfig,
    scale: ScaleConfig,
    settings: PackSettings,
    chat: ChatTokenizer,
    data_dir: Path,
    run_hash: str,
    progress: Any,
) -> SourcePack:
    """Tokenize, pack and write one source of `blend` (see the module docstring); `progress.advance` sees
    each conversation."""
    stream = read_source(source, scale)
    tokenized: dict[str, list[Tokenized]] = {split: [] for split in SPLITS}
    rows = conversations(source, scale, settings.messages_field, stream)
    for splits, batch in _batches(rows, blend.splits, settings, source.name):
        for split, sequence in zip(splits, chat.encode(batch), strict=True):
            tokenized[split].append(sequence)
            progress.advance(rows=1, tokens=len(sequence.input_ids))
    plan_hash = digest(source=source.model_dump(), run=run_hash, **settings.files_part())
    directory = data_dir / "runs" / run_hash / "datasets" / source.name / plan_hash
    directory.mkdir(parents=True, exist_ok=True)  # exists when Slurm requeued the job: its files are made again
    parts, index = [], 0
    for split in SPLITS:
        packed = pack_sequences(tokenized.pop(split), settings.pack_size, settings.algorithm, settings.overlong,
                                settings.seed)  # fmt: skip
        shards = []
        for start in range(0, len(packed.input_ids), settings.shard_rows):
            stop = min(start + settings.shard_rows, len(packed.input_ids))
            target = directory / f"shard_{index:06d}.parquet"
            write_parquet(packed, start, stop, target)
            tokens = sum(len(ids) for ids in packed.input_ids[start:stop])
            shards.append((target.relative_to(data_dir).as_posix(), stop - start, tokens))
            index += 1
        parts.append(_part(source.name, split, packed, shards))
    return SourcePack(parts=parts, info=stream.info())


def conversations(source: SourceConfig, scale: ScaleConfig, field: str, stream: Any = None) -> Iterator[tuple]:
    """(row index, messages) of one source, each checked."""
    stream = stream or read_source(source, scale)
    for row_index, row in enumerate(stream):
        yield row_index, conversation_messages(row, stream.location, field)


def _batches(
    rows: Iterator[tuple], fractions: SplitFractions, settings: PackSettings, source: str
) -> Iterator[tuple[list, list]]:
    """(splits, conversations) in batches of `batch_rows`; a conversation's split is a hash of its row index."""
    splits: list[str] = []
    batch: list[list[dict[str, Any]]] = []
    for row_index, messages in rows:
        splits.append(fractions.assign(settings.split_seed, source, row_index))
        batch.append(messages)
        if len(batch) >= settings.batch_rows:
            yield splits, batch
            splits, batch = [], []
    if batch:
        yield splits, batch


def _part(source: str, split: str, rows: PackedRows, shards: list[tuple[str, int, int]]) -> PackedPart:
    lengths = [b - a for ids, s in zip(rows.input_ids, rows.seq_start_id, strict=True)
               for a, b in zip(s, [*s[1:], len(ids)], strict=True)]  # fmt: skip
    return PackedPart(
        source=source, split=split, rows=len(rows.input_ids), sequences=rows.sequences, tokens=rows.tokens,
        truncated=rows.truncated, dropped=rows.dropped, max_sequence=max(lengths, default=0),
        max_per_row=max(map(len, rows.seq_start_id), default=0), min_row=min(map(len, rows.input_ids), default=0),
        shards=shards,
    )  # fmt: skip


# -- the whole dataset --------------------------------------------------------------------------------------


def write_dataset(
    blend: BlendConfig, packs: list[SourcePack], settings: PackSettings, data_dir: Path, run_hash: str, scale: str
) -> tuple[dict[str, Any], dict[str, list[str] | None]]:
    """Link every shard from splits/, write blend.json, metadata.json and {pack_size}_metadata.jsonl; `packs`
    in blend order. Returns the metadata and the blend."""
    parts = [part for pack in packs for part in pack.parts]
    links = _link_splits(parts, data_dir)
    blend_json = _write_blend(blend, links, data_dir)
    metadata = _metadata(parts, settings, len(links), run_hash, scale)
    (data_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    bridge = [_bridge_metadata(parts, split, settings.pack_size) for split in ("train", "valid")]
    (data_dir / f"{settings.pack_size}_metadata.jsonl").write_text(json.dumps(bridge) + "\n")
    return metadata, blend_json


def _link_splits(parts: list[PackedPart], data_dir: Path) -> list[dict[str, Any]]:
    """splits/<split>/<position>__<source>__shard_NNNNNN.parquet -> the shard, relative; one record each."""
    links: list[dict[str, Any]] = []
    position = dict.fromkeys(SPLITS, 0)
    for part in parts:
        for path, rows, tokens in part.shards:
            name = Path(path).name
            link = data_dir / "splits" / part.split / f"{position[part.split]:06d}__{part.source}__{name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():  # a requeued job makes its links again
                link.unlink()
            os.symlink(os.path.relpath(data_dir / path, link.parent), link)
            links.append({"source": part.source, "split": part.split, "link": link, "rows": rows, "tokens": tokens})
            position[part.split] += 1
    return links


def _write_blend(blend: BlendConfig, links: list[dict[str, Any]], data_dir: Path) -> dict[str, list[str] | None]:
    """Per split: a source's weight shared by its shards in proportion to their tokens; null for no data."""
    weights = {s.name: s.weight for s in blend.sources}
    content: dict[str, list[str] | None] = {}
    for split in SPLITS:
        chosen = [s for s in links if s["split"] == split]
        per_source: dict[str, int] = {}
        for s in chosen:
            per_source[s["source"]] = per_source.get(s["source"], 0) + s["tokens"]
        entries: list[str] = []
        for s in chosen:
            share = weights[s["source"]] * s["tokens"] / max(per_source[s["source"]], 1)
            entries += [format(share, ".12g"), s["link"].relative_to(data_dir).as_posix()[: -len(".parquet")]]
        content[split] = entries or None
    (data_dir / "blend.json").write_text(json.dumps(content, indent=2) + "\n")
    return content


def _metadata(parts: list[PackedPart], settings: PackSettings, shards: int, run_hash: str, scale: str) -> dict:
    pack_size = settings.pack_size
    splits = {}
    for split in SPLITS:
        chosen = [p for p in parts if p.split == split]
        rows = sum(p.rows for p in chosen)
        tokens = sum(p.tokens for p in chosen)
        splits[split] = {
            "rows": rows,
            "sequences": sum(p.sequences for p in chosen),
            "tokens": tokens,
            "truncated": sum(p.truncated for p in chosen),
            "dropped": sum(p.dropped for p in chosen),
            "packing_efficiency": tokens / (rows * pack_size) if rows else None,
        }
    total_rows = sum(s["rows"] for s in splits.values())
    total_tokens = sum(s["tokens"] for s in splits.values())
    return {
        "pack_size": pack_size,
        "algorithm": settings.algorithm,
        "overlong": settings.overlong,
        "num_shards": shards,
        "total_sequences": sum(s["sequences"] for s in splits.values()),
        "total_tokens": total_tokens,
        "packing_efficiency": total_tokens / (total_rows * pack_size) if total_rows else None,
        "splits": splits,
        "run_hash": run_hash,
        "scale": scale,
    }


def _bridge_metadata(parts: list[PackedPart], split: str, pack_size: int) -> dict[str, Any]:
    """Megatron-Bridge's `{N}_metadata.jsonl` entry of one split (needed with `pad_cu_seqlens=True`)."""
    chosen = [p for p in parts if p.split == split and p.rows]
    rows = sum(p.rows for p in chosen)
    tokens = sum(p.tokens for p in chosen)
    return {
        "dataset_max_seqlen": max((p.max_sequence for p in chosen), default=0),
        "max_samples_per_bin": max((p.max_per_row for p in chosen), default=0),
        "packing_factor": round(sum(p.sequences for p in chosen) / rows, 2) if rows else 0,
        "packing_efficiency": round(tokens / rows / pack_size * 100, 2) if rows else 0,
        "pack_size": pack_size,
        "min_packed_seqlen": min((p.min_row for p in chosen), default=0),
    }
