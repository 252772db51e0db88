"""SFT data: chat conversations -> tokens with a loss mask on the assistant turns -> packed Parquet bins.

    conversation   {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
    tokens         the tokenizer's chat template rendered over all messages, tokenized once (add_special_tokens
                   off, as `apply_chat_template(tokenize=True)` does); a token is an *assistant token* when its
                   text lies in an assistant turn: the content and the end-of-turn marker the template adds
                   after it (ChatML: `...content<|im_end|>\\n`), not the role header
    packing        sequences are packed into bins of at most `pack_size` tokens (sum of lengths, the stricter
                   rule of formats.md 5.4) by first-fit-decreasing or first-fit-shuffle
    rows           one Parquet row per bin, as Megatron-Bridge's packed-sequence loader reads it:
                   input_ids     list<int32>  the sequences of the bin, concatenated, unpadded
                   loss_mask     list<uint8>  shifted within each sequence: loss_mask[j] = mask[j+1], last 0
                   seq_start_id  list<int32>  [0, s1, s2, ...] start offset of every sequence

A sequence longer than `pack_size` is truncated to `pack_size` tokens or dropped (`overlong`); both are
counted. Packing is per (source, split), so each packed row holds sequences of one source only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from nemotron.errors import NemotronError

Algorithm = Literal["first_fit_decreasing", "first_fit_shuffle"]
Overlong = Literal["truncate", "drop"]
ROLES = {"system", "user", "assistant", "tool"}  # the chat roles of Hugging Face chat templates


@dataclass
class Tokenized:
    """One conversation: token ids and the (unshifted) assistant mask, 1 where a token is trained."""

    input_ids: list[int]
    mask: list[int]


# -- tokenizing ---------------------------------------------------------------------------------------------


class ChatTokenizer:
    """Conversations to `Tokenized` with a Hugging Face tokenizer's chat template (a fast tokenizer: offsets)."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise NemotronError(
                "The tokenizer has no chat template, so conversations cannot be formatted. Use a chat tokenizer "
                "(one whose tokenizer_config.json has a chat_template) or the tokenizer data=tiny trains."
            )
        if not getattr(tokenizer, "is_fast", False):
            raise NemotronError("The SFT data stage needs a fast tokenizer (tokenizer.json) for token offsets.")
        self.tokenizer = tokenizer

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def assistant_spans(self, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character spans of its assistant turns (content + end-of-turn marker)."""
        text = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            start = len(self.render(messages[:i], add_generation_prompt=True)) if i else 0
            end = len(self.render(messages[: i + 1]))
            if not text.startswith(self.render(messages[: i + 1])):
                raise NemotronError(
                    "The chat template does not render a conversation as a prefix of a longer one, so the "
                    "assistant turns cannot be located; use a template that renders turns one after another."
                )
            spans.append((start, end))
        return text, spans

    def encode(self, conversations: list[list[dict[str, Any]]]) -> list[Tokenized]:
        if not conversations:
            return []
        rendered = [self.assistant_spans(messages) for messages in conversations]
        batch = self.tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
        result = []
        for (_, spans), ids, offsets in zip(rendered, batch["input_ids"], batch["offset_mapping"], strict=True):
            mask = [int(any(s <= begin < e for s, e in spans)) for begin, _ in offsets]
            result.append(Tokenized(list(ids), mask))
        return result

    def min_length(self) -> int:
        """Tokens of the shortest possible conversation: one empty user turn and one empty assistant turn."""
        empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
        return len(self.tokenizer(self.render(empty), add_special_tokens=False)["input_ids"])


def conversation_messages(row: Any, location: str, field: str = "messages") -> list[dict[str, Any]]:
    """The `messages` of one row, checked: a non-empty list of {role, content} with an assistant turn."""
    messages = row.get(field) if isinstance(row, dict) else None
    if messages is None and isinstance(row, dict) and field in row:
        raise NemotronError(f"The {field!r} field of the row at {location} is null: remove the row or fill it.")
    if messages is None:
        keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
        raise NemotronError(
            f"The row at {location} has no {field!r} field (its fields: {keys or 'none'}). SFT rows are chat "
            f'conversations: {{"{field}": [{{"role": "user", "content": ...}}, {{"role": "assistant", ...}}]}}.'
        )
    ok = isinstance(messages, list) and messages
    ok = ok and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages)
    if not ok:
        raise NemotronError(
            f"The {field!r} of the row at {location} is not a list of {{role, content}} messages with string content."
        )
    unknown = sorted({str(m["role"]) for m in messages} - ROLES)
    if unknown:
        raise NemotronError(
            f"The conversation at {location} has a message with the role {unknown[0]!r}; the roles are "
            f"{', '.join(sorted(ROLES))}. Map the dataset's roles to these (user for human, assistant for gpt)."
        )
    if not any(m["role"] == "assistant" for m in messages):
        raise NemotronError(f"The conversation at {location} has no assistant turn, so nothing would be trained.")
    if not any(m["content"].strip() for m in messages):
        raise NemotronError(f"Every message of the conversation at {location} is empty: remove the row or fill it.")
    return messages


def shift_mask(mask: list[int]) -> list[int]:
    """Megatron-Bridge's view: `loss_mask[j]` says whether label `input_ids[j+1]` is trained; the last is 0."""
    return [*mask[1:], 0] if mask else []


# -- packing ------------------------------------------------------------------------------------------------


class _FirstFit:
    """First fit in O(log n) per item: a segment tree of the largest free space over the bins."""

    def __init__(self, capacity: int, max_bins: int) -> None:
        self.capacity = capacity
        self.size = 1
        while self.size < max(max_bins, 1):
            self.size *= 2
        self.free = [capacity] * (2 * self.size)
        self.bins = 0

    def place(self, length: int) -> int:
        """The first bin with room for `length` (a new bin when none has); its free space shrinks."""
        node = 1
        while node < self.size:
            node = 2 * node if self.free[2 * node] >= length else 2 * node + 1
        index = node - self.size
        self.bins = max(self.bins, index + 1)
        self.free[node] -= length
        node //= 2
        while node:
            self.free[node] = max(self.free[2 * node], self.free[2 * node + 1])
            node //= 2
        return index


def pack(lengths: list[int], pack_size: int, algorithm: Algorithm, seed: int = 1234) -> list[list[int]]:
    """Bins of sequence indices, each with a total length <= pack_size; bins in order of creation."""
    if any(length > pack_size or length < 1 for length in lengths):
        raise ValueError("every length must be between 1 and pack_size")
    order = list(range(len(lengths)))
    if algorithm == "first_fit_decreasing":
        order.sort(key=lambda i: -lengths[i])  # stable: equal lengths keep their input order
    elif algorithm == "first_fit_shuffle":
        random.Random(seed).shuffle(order)
    else:
        raise NemotronError(f"Unknown packing algorithm {algorithm!r}: first_fit_decreasing or first_fit_shuffle.")
    fit = _FirstFit(pack_size, len(lengths))
    bins: list[list[int]] = []
    for i in order:
        index = fit.place(lengths[i])
        if index == len(bins):
            bins.append([])
        bins[index].append(i)
    return bins


@dataclass
class PackedRows:
    """The packed rows of one (source, split), with what went into them."""

    input_ids: list[list[int]]
    loss_mask: list[list[int]]
    seq_start_id: list[list[int]]
    sequences: int
    tokens: int
    truncated: int
    dropped: int

    @property
    def efficiency(self) -> float:
        """Packed tokens over the room of the bins (0..1)."""
        return self.tokens / (len(self.input_ids) * self.pack_size) if self.input_ids else 0.0

    pack_size: int = 0


def pack_sequences(
    sequences: Iterable[Tokenized], pack_size: int, algorithm: Algorithm, overlong: Overlong, seed: int = 1234
) -> PackedRows:
    """Truncate or drop over-long sequences, pack the rest, and lay the bins out as Parquet row values."""
    kept: list[Tokenized] = []
    truncated = dropped = 0
    for sequence in sequences:
        if len(sequence.input_ids) > pack_size:
            if overlong == "drop":
                dropped += 1
                continue
            truncated += 1
            sequence = Tokenized(sequence.input_ids[:pack_size], sequence.mask[:pack_size])
        kept.append(sequence)
    rows = PackedRows([], [], [], len(kept), 0, truncated, dropped, pack_size)
    for members in pack([len(s.input_ids) for s in kept], pack_size, algorithm, seed):
        ids: list[int] = []
        mask: list[int] = []
        starts: list[int] = []
        for i in members:
            starts.append(len(ids))
            ids.extend(kept[i].input_ids)
            mask.extend(shift_mask(kept[i].mask))
        rows.input_ids.append(ids)
        rows.loss_mask.append(mask)
        rows.seq_start_id.append(starts)
        rows.tokens += len(ids)
    return rows


def unpack(input_ids: list[int], loss_mask: list[int], seq_start_id: list[int]) -> Iterator[tuple[list, list]]:
    """The (input_ids, shifted loss_mask) of every sequence of one packed row: the inverse of packing."""
    bounds = [*seq_start_id, len(input_ids)]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        yield input_ids[start:end], loss_mask[start:end]


# -- Parquet ------------------------------------------------------------------------------------------------


def write_parquet(rows: PackedRows, start: int, stop: int, path: Any) -> None:
    """Rows [start, stop) as one zstd Parquet file, written to `.tmp` and renamed into place."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("loss_mask", pa.list_(pa.uint8())),
            ("seq_start_id", pa.list_(pa.int32())),
        ]
    )
    table = pa.table(
        [rows.input_ids[start:stop], rows.loss_mask[start:stop], rows.seq_start_id[start:stop]], schema=schema
    )
    tmp = f"{path}.tmp"
    pq.write_table(table, tmp, compression="zstd", row_group_size=1000)
    os.replace(tmp, path)
