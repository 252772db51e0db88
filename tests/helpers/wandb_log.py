"""A reader for W&B's offline transaction log (`wandb/offline-run-*/run-<id>.wandb`), for tests only.

The format is internal to W&B (a LevelDB-style log of `wandb_internal_pb2.Record` protobufs) and may change;
this follows what wandb 0.31 writes:

    header   ":W&B", magic 0xBEE1 (u16 LE), version 0 (u8)             7 bytes
    blocks   32 KiB from offset 0; a record header never straddles a block (fewer than 7 bytes left: padding)
    record   crc32 (u32 LE, of the type byte + chunk), length (u16 LE), type (u8: 1 FULL, 2 FIRST, 3 MIDDLE,
             4 LAST, 0 padding), then `length` bytes; FIRST + MIDDLE* + LAST chunks form one record
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: Path) -> Iterator[Any]:
    """Every record of the log, in order; raises AssertionError on a bad header or checksum."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0), f"not a .wandb log: {path}"
    pos, buffer = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"checksum mismatch at offset {pos} of {path}"
        pos += HEADER + length
        buffer = chunk if kind in (FULL, FIRST) else buffer + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(buffer)
            yield record


def records_by_type(path: Path) -> dict[str, list[Any]]:
    """The log's records grouped by `record_type` (run, config, artifact, history, use_artifact, ...)."""
    grouped: dict[str, list[Any]] = {}
    for record in iter_records(path):
        grouped.setdefault(record.WhichOneof("record_type"), []).append(record)
    return grouped


def artifact_summary(record: Any) -> dict[str, Any]:
    """An artifact record as plain data: name, type, aliases, metadata (parsed) and manifest entries."""
    artifact = record.artifact
    return {
        "name": artifact.name,
        "type": artifact.type,
        "aliases": list(artifact.aliases),
        "metadata": json.loads(artifact.metadata) if artifact.metadata else {},
        "entries": {entry.path: {"ref": entry.ref, "size": entry.size} for entry in artifact.manifest.contents},
    }


def history_values(records: list[Any]) -> dict[str, Any]:
    """Keys and values of the history rows (JSON-decoded)."""
    values = {}
    for record in records:
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            values[key] = json.loads(item.value_json)
    return values


def config_values(records: list[Any]) -> dict[str, Any]:
    """The run config: from the run record (wandb.init's config) and any later config records."""
    values = {}
    for record in records:
        config = record.run.config if record.HasField("run") else record.config
        for item in config.update:
            key = item.key or "/".join(item.nested_key)
            values[key] = json.loads(item.value_json)
    return values
