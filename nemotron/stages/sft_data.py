"""`stage=sft_data`: chat conversations -> packed Parquet for Megatron-Bridge's packed-sequence SFT loader.

    python -m nemotron stage=sft_data                              # data=tiny: synthetic chats, a BPE trained on them
    python -m nemotron stage=sft_data +run.tokenizer=tokenizer-tiny \
        'data.tokenizer.name_or_path=${art:tokenizer,path}' 'stage.tokenizer_uri=${art:tokenizer,uri}'
    python -m nemotron stage=sft_data stage.pack_size=8192 stage.algorithm=first_fit_decreasing stage.overlong=drop

**Tokenizer.** The same rule as `stage=pretrain_data`: `data.tokenizer.name_or_path` (a hub id, a local dir, or
the pretraining tokenizer as `${art:tokenizer,path}`, which also records it as an input, with
`stage.tokenizer_uri=${art:tokenizer,uri}` as the artifact's `tokenizer_uri`) is loaded as is;
when it is null, a byte-level BPE with a ChatML template is trained on the conversations and committed first,
as `sft-tokenizer{suffix}`. To fine-tune a model pretrained here, pass its tokenizer (second line above).

Output (`{output dir}/data`, formats.md 5.5), committed as `sft-data{suffix}` (`SFTDataArtifact`):

    runs/<run_hash>/datasets/<source>/<plan_hash>/shard_NNNNNN.parquet     the packed rows
    splits/{train,valid,test}/{pos:06d}__<source>__shard_NNNNNN.parquet    relative links to them
    blend.json      {"train": ["weight", "splits/train/000000__src__shard_000000", ...], "valid": ..., ...}
    metadata.json   pack_size, algorithm, per-split rows / sequences / tokens / truncated / dropped / efficiency
    {pack_size}_metadata.jsonl   Megatron-Bridge's packing metadata [train, valid] (for pad_cu_seqlens=True)

Megatron-Bridge reads it as `PackedSequenceSpecs(packed_sequence_size=pack_size,
packed_train_data_path=<data>/splits/train/, packed_val_data_path=<data>/splits/valid/)` with
`seq_length = pack_size`. It concatenates every file of a directory, so the blend weights in `blend.json`
(a source's weight, shared by its shards in proportion to their tokens) are a record, not a subsampling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import SFTDataArtifact, TokenizerArtifact
from nemotron.data.progress import RateProgress
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
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, SourceConfig, read_source
from nemotron.data.tokenizer import TokenizerConfig, load_tokenizer, tokenizer_digest, train_bpe
from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

log = logging.getLogger(__name__)


class SFTDataParams(BaseModel):
    """`conf/stage/sft_data.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Data artifact name; the scale suffix is appended.")
    tokenizer_name: str = Field(description="Name of a tokenizer trained here (+ scale suffix).")
    blend: BlendConfig
    tokenizer: TokenizerConfig
    scale: ScaleConfig
    tokenizer_uri: str | None = Field(description="Recorded for a given tokenizer, e.g. ${art:tokenizer,uri}.")
    output_dir: str | None = Field(description="Default: the job's output dir.")
    pack_size: int = Field(ge=1, description="Tokens per packed row (the training sequence length).")
    algorithm: Algorithm
    overlong: Overlong = Field(description="A conversation longer than pack_size: truncate or drop.")
    messages_field: str
    seed: int = Field(description="Seed of first_fit_shuffle.")
    split_seed: int = Field(description="Seed of the conversation -> split assignment.")
    shard_rows: int = Field(ge=1, description="Packed rows per Parquet file.")
    batch_rows: int = Field(ge=1, description="Conversations tokenized per batch.")


def run(cfg: DictConfig) -> dict[str, Any]:
    params = stage_params(cfg, SFTDataParams)
    out = output_dir(params.output_dir, ("data", "tokenizer"))
    data_dir = out / "data"

    tokenizer, trained = _prepare_tokenizer(params, out / "tokenizer")
    chat = ChatTokenizer(tokenizer)
    minimum = chat.min_length()
    if params.pack_size < minimum:
        raise NemotronError(
            f"stage.pack_size={params.pack_size} is smaller than the chat template's minimum: an empty user turn "
            f"and an empty assistant turn alone take {minimum} tokens. Use a pack_size of at least {minimum} "
            "(Megatron-Bridge suggests 8192 as a first value)."
        )
    settings = params.model_dump(include={"pack_size", "algorithm", "overlong", "messages_field", "seed"})
    settings |= {"split_seed": params.split_seed, "shard_rows": params.shard_rows}
    run_hash = _hash(blend=params.blend.model_dump(), scale=params.scale.model_dump(exclude={"suffix"}), **settings,
                     tokenizer=tokenizer_digest(tokenizer))  # fmt: skip

    packed, sources, elapsed = _tokenize_and_pack(params, chat)
    _check_not_empty(params, packed)
    shards = _write_shards(packed, params, data_dir, run_hash, settings)
    blend_json = _write_blend(params.blend, shards, data_dir)
    metadata = _metadata(params, packed, shards, run_hash)
    (data_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    bridge = [_bridge_metadata(packed, split, params.pack_size) for split in ("train", "valid")]
    (data_dir / f"{params.pack_size}_metadata.jsonl").write_text(json.dumps(bridge) + "\n")
    _print_summary(metadata, blend_json)

    tokenizer_name = params.scale.artifact_name(params.tokenizer_name)
    outputs: dict[str, Any] = {}
    if trained:
        outputs["tokenizer"] = TokenizerArtifact(
            path=str(out / "tokenizer"),
            name=tokenizer_name,
            vocab_size=len(tokenizer),
            metadata={"source": "trained (byte-level BPE on the SFT blend)", "digest": tokenizer_digest(tokenizer)},
        )
    outputs["data"] = SFTDataArtifact(
        path=str(data_dir),
        name=params.scale.artifact_name(params.name),
        pack_size=params.pack_size,
        num_shards=len(shards),
        packing_efficiency=metadata["packing_efficiency"],
        blend_path="blend.json",
        total_sequences=metadata["total_sequences"],
        total_tokens=metadata["total_tokens"],
        elapsed_sec=elapsed,
        # `art://<name>` with no version: the callback commits the tokenizer first and pins this to its version.
        tokenizer_uri=f"art://{tokenizer_name}" if trained else params.tokenizer_uri or params.tokenizer.name_or_path,
        source_datasets=sources,
        metadata={k: metadata[k] for k in ("algorithm", "overlong", "splits", "run_hash", "scale")},
    )
    return outputs


def _check_not_empty(params: SFTDataParams, packed: dict[tuple[str, str], PackedRows]) -> None:
    """No packed training row is an error, not an empty artifact (every conversation dropped, say)."""
    if any(rows.input_ids for (_, split), rows in packed.items() if split == "train"):
        return
    sequences = sum(rows.sequences for rows in packed.values())
    dropped = sum(rows.dropped for rows in packed.values())
    why = (
        f"{dropped} conversation(s) were longer than stage.pack_size={params.pack_size} and stage.overlong=drop "
        "dropped them; raise stage.pack_size or use stage.overlong=truncate"
        if dropped
        else f"{sequences} conversation(s) were packed and none was assigned to the train split; check the blend "
        "and its split fractions"
    )
    raise NemotronError(f"stage=sft_data made no training rows, so nothing is committed: {why}.")


def _conversations(source: SourceConfig, params: SFTDataParams, stream: Any = None) -> Any:
    """(row index, messages) of one source, each checked."""
    stream = stream or read_source(source, params.scale)
    for row_index, row in enumerate(stream):
        yield row_index, conversation_messages(row, stream.location, params.messages_field)


def _prepare_tokenizer(params: SFTDataParams, out: Path) -> tuple[Any, bool]:
    """The tokenizer given by `name_or_path`, or a byte-level BPE trained on the conversations; True if trained."""
    config = params.tokenizer
    if config.name_or_path:
        return load_tokenizer(config.name_or_path, config.revision, config.trust_remote_code), False
    log.info("Training a byte-level BPE tokenizer (vocab_size=%d) on the SFT conversations", config.vocab_size)
    caps = [cap for cap in (params.scale.max_rows_per_source, config.train_rows) if cap]
    scale = params.scale.model_copy(update={"max_rows_per_source": min(caps) if caps else None})
    capped = params.model_copy(update={"scale": scale})
    texts = (
        [m["content"] for m in messages]
        for source in params.blend.sources
        for _, messages in _conversations(source, capped)
    )
    return train_bpe(texts, out, config.vocab_size, config.min_frequency), True


def _tokenize_and_pack(params: SFTDataParams, chat: ChatTokenizer) -> tuple[dict, list, float]:
    """{(source, split): PackedRows}, the sources read, and the seconds it took."""
    packed: dict[tuple[str, str], PackedRows] = {}
    sources = []
    with RateProgress("tokenizing + packing") as progress:
        for source in params.blend.sources:
            stream = read_source(source, params.scale)
            tokenized: dict[str, list[Tokenized]] = {split: [] for split in SPLITS}
            for splits, batch in _batches(_conversations(source, params, stream), params, source.name):
                for split, sequence in zip(splits, chat.encode(batch), strict=True):
                    tokenized[split].append(sequence)
                    progress.advance(rows=1, tokens=len(sequence.input_ids))
            sources.append(stream.info())
            for split in SPLITS:
                packed[source.name, split] = pack_sequences(
                    tokenized[split], params.pack_size, params.algorithm, params.overlong, params.seed
                )
    return packed, sources, progress.elapsed


def _batches(conversations: Any, params: SFTDataParams, source: str) -> Any:
    """(splits, conversations) in batches of `batch_rows`; a conversation's split is a hash of its row index."""
    splits: list[str] = []
    batch: list[list[dict[str, Any]]] = []
    for row_index, messages in conversations:
        splits.append(params.blend.splits.assign(params.split_seed, source, row_index))
        batch.append(messages)
        if len(batch) >= params.batch_rows:
            yield splits, batch
            splits, batch = [], []
    if batch:
        yield splits, batch


def _hash(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_shards(
    packed: dict[tuple[str, str], PackedRows], params: SFTDataParams, data_dir: Path, run_hash: str, settings: dict
) -> list[dict[str, Any]]:
    """Parquet files under runs/, linked from splits/; one record per shard."""
    shards: list[dict[str, Any]] = []
    position = dict.fromkeys(SPLITS, 0)
    for source in params.blend.sources:
        plan_hash = _hash(source=source.model_dump(), run=run_hash, **settings)
        directory = data_dir / "runs" / run_hash / "datasets" / source.name / plan_hash
        directory.mkdir(parents=True)
        index = 0
        for split in SPLITS:
            rows = packed[source.name, split]
            for start in range(0, len(rows.input_ids), params.shard_rows):
                stop = min(start + params.shard_rows, len(rows.input_ids))
                target = directory / f"shard_{index:06d}.parquet"
                write_parquet(rows, start, stop, target)
                link = data_dir / "splits" / split / f"{position[split]:06d}__{source.name}__shard_{index:06d}.parquet"
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(target, link.parent), link)
                tokens = sum(len(ids) for ids in rows.input_ids[start:stop])
                shards.append({"source": source.name, "split": split, "link": link, "rows": stop - start,
                               "tokens": tokens})  # fmt: skip
                position[split] += 1
                index += 1
    return shards


def _write_blend(blend: BlendConfig, shards: list[dict[str, Any]], data_dir: Path) -> dict[str, list[str] | None]:
    """Per split: a source's weight shared by its shards in proportion to their tokens; null for no data."""
    weights = {s.name: s.weight for s in blend.sources}
    content: dict[str, list[str] | None] = {}
    for split in SPLITS:
        chosen = [s for s in shards if s["split"] == split]
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


def _metadata(
    params: SFTDataParams, packed: dict[tuple[str, str], PackedRows], shards: list, run_hash: str
) -> dict[str, Any]:
    splits = {}
    for split in SPLITS:
        parts = [rows for (_, s), rows in packed.items() if s == split]
        rows = sum(len(p.input_ids) for p in parts)
        tokens = sum(p.tokens for p in parts)
        splits[split] = {
            "rows": rows,
            "sequences": sum(p.sequences for p in parts),
            "tokens": tokens,
            "truncated": sum(p.truncated for p in parts),
            "dropped": sum(p.dropped for p in parts),
            "packing_efficiency": tokens / (rows * params.pack_size) if rows else None,
        }
    total_rows = sum(s["rows"] for s in splits.values())
    total_tokens = sum(s["tokens"] for s in splits.values())
    return {
        "pack_size": params.pack_size,
        "algorithm": params.algorithm,
        "overlong": params.overlong,
        "num_shards": len(shards),
        "total_sequences": sum(s["sequences"] for s in splits.values()),
        "total_tokens": total_tokens,
        "packing_efficiency": total_tokens / (total_rows * params.pack_size) if total_rows else None,
        "splits": splits,
        "run_hash": run_hash,
        "scale": params.scale.name,
    }


def _bridge_metadata(packed: dict[tuple[str, str], PackedRows], split: str, pack_size: int) -> dict[str, Any]:
    """Megatron-Bridge's `{N}_metadata.jsonl` entry of one split (needed with `pad_cu_seqlens=True`)."""
    parts = [rows for (_, s), rows in packed.items() if s == split]
    starts = [row for p in parts for row in p.seq_start_id]
    rows = [row for p in parts for row in p.input_ids]
    lengths = [b - a for ids, s in zip(rows, starts, strict=True) for a, b in zip(s, [*s[1:], len(ids)], strict=True)]
    return {
        "dataset_max_seqlen": max(lengths, default=0),
        "max_samples_per_bin": max(map(len, starts), default=0),
        "packing_factor": round(len(lengths) / len(rows), 2) if rows else 0,
        "packing_efficiency": round(sum(map(len, rows)) / len(rows) / pack_size * 100, 2) if rows else 0,
        "pack_size": pack_size,
        "min_packed_seqlen": min(map(len, rows), default=0),
    }


def _print_summary(metadata: dict[str, Any], blend_json: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sft data (pack_size {metadata['pack_size']}, {metadata['algorithm']})", title_justify="left")
    for column in ("split", "packed rows", "sequences", "tokens", "truncated", "dropped", "efficiency"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, s in metadata["splits"].items():
        efficiency = f"{s['packing_efficiency']:.2%}" if s["packing_efficiency"] is not None else "-"
        table.add_row(split, f"{s['rows']:,}", f"{s['sequences']:,}", f"{s['tokens']:,}", f"{s['truncated']:,}",
                      f"{s['dropped']:,}", efficiency)  # fmt: skip
    Console(stderr=True).print(table)
