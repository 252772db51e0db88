"""What a training step sees, as a pure function of (seed, step, rank): a restarted run replays the same data.

    TokenWindows   pretraining: random windows of `seq_len` tokens from a split's `.bin/.idx` shards, each
                   window's shard drawn by its blend weight (documents run on across their EOD tokens, as in
                   Megatron's GPT dataset)
    PackedRowReader     SFT: the packed Parquet rows of a split, in a fresh random order every epoch; each row
                   carries the start of every sample in it, so samples never attend to each other

A batch is a dict of tensors: `input_ids`, `loss_mask` (1 where the *next* token is trained),
`position_ids`, and `attention_mask` (a 4-D additive mask, or None when plain causal attention is right).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError


def blend_split(data_dir: str | Path, blend_path: str, split: str) -> list[tuple[float, Path]]:
    """(weight, shard prefix) of one split of a `blend.json`, each prefix located by `locate_prefix`."""
    from nemotron.data.indexed import locate_prefix

    path = Path(data_dir) / blend_path
    try:
        entries = json.loads(path.read_text()).get(split) or []
    except (OSError, ValueError) as exc:
        raise NemotronError(f"Cannot read the blend {path}: {exc}") from exc
    pairs = [(float(entries[i]), Path(entries[i + 1])) for i in range(0, len(entries), 2)]
    return [(weight, locate_prefix(prefix, path.parent)) for weight, prefix in pairs]


class TokenWindows:
    """Windows of `seq_len` tokens sampled from the shards of one split of a pretraining blend."""

    def __init__(self, data_dir: str | Path, blend_path: str, split: str, seq_len: int, seed: int) -> None:
        import numpy as np

        from nemotron.data.indexed import IndexedDatasetReader, bin_path

        self.seq_len, self.seed, self.split = seq_len, seed, split
        shards = []
        for weight, prefix in blend_split(data_dir, blend_path, split):
            reader = IndexedDatasetReader(prefix)  # checks the index; the windows read the .bin as one array
            if reader.num_tokens > seq_len:
                shards.append((weight, np.memmap(bin_path(prefix), mode="r", dtype=reader.dtype)))
        if not shards:
            raise NemotronError(
                f"The {split} split of {Path(data_dir) / blend_path} has no shard with more than {seq_len} tokens, "
                f"so no training window of stage.seq_len={seq_len} fits. Prepare more data or lower stage.seq_len."
            )
        self.tokens = [tokens for _, tokens in shards]
        weights = np.array([w for w, _ in shards], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.num_tokens = sum(len(t) for t in self.tokens)

    def batch(self, step: int, batch_size: int, rank: int = 0) -> dict[str, Any]:
        import numpy as np
        import torch

        rng = np.random.default_rng([self.seed, step, rank])
        rows = []
        for shard in rng.choice(len(self.tokens), size=batch_size, p=self.weights):
            tokens = self.tokens[shard]
            start = rng.integers(0, len(tokens) - self.seq_len)
            rows.append(tokens[start : start + self.seq_len].astype(np.int64))
        input_ids = torch.from_numpy(np.stack(rows))
        return {"input_ids": input_ids, "loss_mask": torch.ones_like(input_ids), "position_ids": None,
                "attention_mask": None}  # fmt: skip


class PackedRowReader:
    """The packed SFT rows of one split (Parquet `input_ids`, `loss_mask`, `seq_start_id`)."""

    def __init__(self, data_dir: str | Path, split: str, seed: int, pad_id: int) -> None:
        import pyarrow.parquet as pq

        files = sorted((Path(data_dir) / "splits" / split).glob("*.parquet"))
        if not files:
            raise NemotronError(
                f"{Path(data_dir) / 'splits' / split} holds no Parquet files: the data must be the directory of "
                "an SFTDataArtifact (made by stage=sft_data or `nemotron-art import data sft`)."
            )
        table = {"input_ids": [], "loss_mask": [], "seq_start_id": []}
        for file in files:
            columns = pq.read_table(file, columns=list(table)).to_pydict()
            for key in table:
                table[key].extend(columns[key])
        self.rows = list(zip(table["input_ids"], table["loss_mask"], table["seq_start_id"], strict=True))
        self.seed, self.pad_id, self.split = seed, pad_id, split
        self._orders: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
        """Rows `[k, k + batch_size)` of the endless sequence of epochs, each epoch a fresh permutation."""
        first = (step * world_size + rank) * batch_size
        picks = [divmod(k, len(self.rows)) for k in range(first, first + batch_size)]
        return collate_packed([self.rows[self._order(epoch)[index]] for epoch, index in picks], self.pad_id)

    def _order(self, epoch: int) -> Any:
        import numpy as np

        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))}
        return self._orders[epoch]


def collate_packed(rows: list[tuple[list[int], list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Pad packed rows to one length; positions restart and attention is confined at every sample start."""
    import torch

    length = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    loss_mask = torch.zeros((len(rows), length), dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    segments = torch.full((len(rows), length), -1, dtype=torch.long)  # padding: a segment of its own
    for i, (ids, mask, starts) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        loss_mask[i, : len(mask)] = torch.tensor(mask)
        for number, (start, end) in enumerate(zip(starts, [*starts[1:], len(ids)], strict=True)):
            position_ids[i, start:end] = torch.arange(end - start)
            segments[i, start:end] = number
    return {"input_ids": input_ids, "loss_mask": loss_mask, "position_ids": position_ids,
            "attention_mask": segment_attention_mask(segments)}  # fmt: skip


def segment_attention_mask(segments: Any) -> Any:
    """(batch, 1, L, L) additive mask: token i sees token j iff j <= i and both lie in the same segment."""
    import torch

    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (segments[:, :, None] == segments[:, None, :])
    return torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)[
        :, None
    ]
