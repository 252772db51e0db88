"""Megatron indexed datasets (`.bin` + `.idx`, magic `MMIDIDX`): a writer and a small reader.

A dataset is a path prefix `P`: `P.bin` holds the token ids back to back in one dtype, `P.idx` the index:

    offset 0   b"MMIDIDX\\x00\\x00"  u64 version=1  u8 dtype code  u64 S  u64 D      (34 bytes, little-endian)
    34         int32[S]  tokens per sequence
               int64[S]  byte offset of each sequence in .bin
               int64[D]  document_indices: [0, end of doc 0, end of doc 1, ...], D = documents + 1

The writer follows megatron-core's `IndexedDatasetBuilder` as `tools/preprocess_data.py` drives it, so the
files are byte-identical for the same token ids: one sequence per non-empty sentence, EOD (if any) counted in
the last sentence, and an empty document still adds a (duplicate) entry to `document_indices`. Unlike the
builder it takes whole batches of documents as numpy arrays, which keeps the writer I/O-bound.
"""

from __future__ import annotations

import array
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_SIZE = 34
# megatron.core.datasets.indexed_dataset.DType
DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}
_DTYPES = {code: name for name, code in DTYPE_CODES.items()}


def token_dtype(vocab_size: int) -> str:
    """`uint16` iff `vocab_size < 65500` (megatron's `DType.optimal_dtype`), else `int32`.

    `vocab_size` is `len(tokenizer)`, added tokens included. Megatron's GPTDatasetConfig assumes uint16 up to
    65536 on its fast path (`per_dataset_sequences_path`), so a vocabulary in [65500, 65536] gets a warning.
    """
    if 65500 <= vocab_size <= 65536:
        log.warning(
            "vocab size %d: the index is written as int32 (preprocess_data.py's rule), but Megatron's "
            "per_dataset_sequences_path fast path would read it as uint16; do not use that option with it.",
            vocab_size,
        )
    return "uint16" if vocab_size < 65500 else "int32"


def bin_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.idx")


def locate_prefix(prefix: str | Path, base: Path) -> Path:
    """Where the shard that a `blend.json` prefix names lies now; `base` is the blend file's directory.

    A relative prefix (what our blend.json holds) is relative to `base`. An absolute one (a blend written by
    Megatron-LM's tools, or by our versions before 2026-12) still names the old place when the data moves (an
    exported closure imported on another machine), so a prefix outside `base` is looked for inside it by its
    trailing path components, longest first: moved data reads its own copy. One found nowhere is kept as written
    (an imported blend may name shards anywhere).
    """
    path = Path(prefix)
    if not path.is_absolute():
        return base / path
    if path.is_relative_to(base):
        return path
    parts = path.parts[1:]
    for start in range(len(parts)):
        candidate = base.joinpath(*parts[start:])
        if idx_path(candidate).is_file():
            return candidate
    return path


@dataclass(frozen=True)
class IndexSummary:
    """Counts of a finalized dataset."""

    documents: int
    sequences: int
    tokens: int


class IndexedDatasetWriter:
    """Writes `prefix.bin` as documents arrive and `prefix.idx` on `finalize()`."""

    def __init__(self, prefix: str | Path, dtype: str = "int32") -> None:
        import numpy as np

        if dtype not in DTYPE_CODES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CODES)}, got {dtype!r}")
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin = open(bin_path(prefix), "wb")  # noqa: SIM115 (closed in finalize)
        self._lengths = array.array("i")  # int32 per sequence
        self._documents = array.array("q", [0])  # int64: sequence count at the end of each document
        self._tokens = 0

    def add_document(self, tokens: Sequence[int], lengths: Sequence[int] | None = None) -> None:
        """One document: its token ids and the length of each of its sequences (sentences).

        `lengths=None` means one sequence holding all tokens (none for an empty document). Zero lengths are
        dropped, as `preprocess_data.py` drops sentences that tokenize to nothing.
        """
        import numpy as np

        data = np.asarray(tokens, dtype=self.dtype)
        lengths = [len(data)] if lengths is None else list(lengths)
        lengths = [n for n in lengths if n]
        if sum(lengths) != len(data):
            raise ValueError(f"sequence lengths {lengths} do not add up to the {len(data)} tokens of the document")
        self._bin.write(data.tobytes(order="C"))
        self._lengths.extend(lengths)
        self._documents.append(len(self._lengths))
        self._tokens += len(data)

    def add_documents(self, tokens: Any, sequence_lengths: Any, sequences_per_document: Any) -> None:
        """Many documents at once: their tokens concatenated (a numpy array or bytes in this dtype), the length
        of every sequence (no zeros), and how many sequences each document has (0 for an empty document)."""
        import numpy as np

        if isinstance(tokens, bytes | bytearray | memoryview):
            data, count = tokens, len(tokens) // self.dtype.itemsize
        else:  # written from the array's own memory, no copy
            data = np.ascontiguousarray(tokens, dtype=self.dtype)
            count = len(data)
        lengths = np.asarray(sequence_lengths, dtype=np.int32)
        per_document = np.asarray(sequences_per_document, dtype=np.int64)
        if int(lengths.sum()) != count or int(per_document.sum()) != len(lengths):
            raise ValueError("sequence lengths, sequences per document and tokens do not agree")
        self._bin.write(data)
        ends = len(self._lengths) + np.cumsum(per_document)
        self._lengths.frombytes(lengths.tobytes())
        self._documents.frombytes(ends.tobytes())
        self._tokens += count

    def finalize(self) -> IndexSummary:
        import numpy as np

        self._bin.close()
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        documents = np.frombuffer(self._documents, dtype=np.int64)
        write_index(idx_path(self.prefix), self.dtype.name, lengths, documents)
        return IndexSummary(documents=len(documents) - 1, sequences=len(lengths), tokens=self._tokens)


def write_index(path: str | Path, dtype: str, sequence_lengths: Any, document_indices: Any) -> None:
    """Write a `.idx` file; pointers are the byte offsets that follow from the lengths."""
    import numpy as np

    lengths = np.asarray(sequence_lengths, dtype=np.int32)
    documents = np.asarray(document_indices, dtype=np.int64)
    itemsize = np.dtype(dtype).itemsize
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1].astype(np.int64) * itemsize, out=pointers[1:])
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<QBQQ", VERSION, DTYPE_CODES[dtype], len(lengths), len(documents)))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(documents.tobytes(order="C"))


class IndexedDatasetReader:
    """Read-only view of `prefix.bin/.idx` through numpy memmaps (no megatron needed).

    `reader[i]` is sequence i; `reader.document(j)` the tokens of document j (all its sequences).
    """

    def __init__(self, prefix: str | Path) -> None:
        import numpy as np

        self.prefix = Path(prefix)
        index = np.memmap(idx_path(prefix), mode="r", dtype=np.uint8)
        if bytes(index[:9]) != MAGIC:
            raise ValueError(f"{idx_path(prefix)} is not a Megatron index (bad magic)")
        version, code, sequences, documents = struct.unpack("<QBQQ", bytes(index[9:HEADER_SIZE]))
        if version != VERSION or code not in _DTYPES:
            raise ValueError(f"{idx_path(prefix)}: unsupported version {version} or dtype code {code}")
        self.dtype = np.dtype(_DTYPES[code])
        offset = HEADER_SIZE
        self.sequence_lengths = np.frombuffer(index, np.int32, sequences, offset)
        offset += 4 * sequences
        self.sequence_pointers = np.frombuffer(index, np.int64, sequences, offset)
        offset += 8 * sequences
        self.document_indices = np.frombuffer(index, np.int64, documents, offset)
        size = bin_path(prefix).stat().st_size
        self._bin = np.memmap(bin_path(prefix), mode="r", dtype=self.dtype) if size else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    @property
    def num_documents(self) -> int:
        return len(self.document_indices) - 1

    @property
    def num_tokens(self) -> int:
        return len(self._bin)

    def __getitem__(self, i: int):
        start = self.sequence_pointers[i] // self.dtype.itemsize
        return self._bin[start : start + self.sequence_lengths[i]]

    def document(self, j: int):
        """All tokens of document j (empty for an empty document)."""
        import numpy as np

        first, last = self.document_indices[j], self.document_indices[j + 1]
        if first == last:
            return np.zeros(0, self.dtype)
        start = self.sequence_pointers[first] // self.dtype.itemsize
        end = self.sequence_pointers[last - 1] // self.dtype.itemsize + self.sequence_lengths[last - 1]
        return self._bin[start:end]
