"""RL data: problems with their expected answers as NeMo-RL JSONL (formats.md 6.1).

    math form          {"problem": "What is 2 + 3?", "expected_answer": "5"}
                       read by NeMo-RL with `input_key: problem, output_key: expected_answer`
                       (`ResponseDataset` -> `math_hf_data_processor`, as its OpenMathInstruct-2 mapping)
    input_output form  {"input": ..., "output": ...}, `ResponseDataset`'s default keys

Rows are read from each source's `problem_field` and `answer_field`; the answer is written as a string.
`write_splits` is the engine of `stage=rl_data`: every source of a blend, row by row, into train/val/test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nemotron.artifacts.types import InputDatasetInfo
from nemotron.data.progress import RateProgress
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, read_source
from nemotron.errors import NemotronError

RowFormat = Literal["math", "input_output"]
KIND_FIELD = "kind"  # an optional label of the problem's kind (data=tiny: fact | two_step), kept as is
KEYS: dict[str, tuple[str, str]] = {"math": ("problem", "expected_answer"), "input_output": ("input", "output")}
FILES = {"train": "train.jsonl", "valid": "val.jsonl", "test": "test.jsonl"}  # NeMo-RL's names: train/val/test


def rl_row(row: Any, location: str, problem_field: str, answer_field: str, row_format: RowFormat) -> dict[str, str]:
    """One output row from one input row; a clear error when a field is missing or not text."""
    values = []
    for field in (problem_field, answer_field):
        value = row.get(field) if isinstance(row, dict) else None
        if value is None and isinstance(row, dict) and field in row:
            raise NemotronError(f"The field {field!r} of the row at {location} is null: remove the row or fill it.")
        if value is None:
            keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            raise NemotronError(
                f"The row at {location} has no {field!r} field (its fields: {keys or 'none'}). Set "
                "stage.problem_field and stage.answer_field to the columns of the problem and its expected answer."
            )
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise NemotronError(f"The field {field!r} at {location} is a {type(value).__name__}, not text.")
        values.append(str(value))
    if not values[0].strip():
        raise NemotronError(f"The problem at {location} is empty.")
    input_key, output_key = KEYS[row_format]
    out = {input_key: values[0], output_key: values[1]}
    if isinstance(row.get(KIND_FIELD), str):  # evaluation reports each kind of problem on its own
        out[KIND_FIELD] = row[KIND_FIELD]
    return out


class JsonlWriter:
    """Rows to `path.tmp`, renamed to `path` on close; counts what it wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file = open(f"{path}.tmp", "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1

    def close(self) -> None:
        self._file.close()
        os.replace(f"{self.path}.tmp", self.path)


@dataclass
class RLSplits:
    """What `write_splits` wrote: rows per split, the files (by NeMo-RL's names; "" for an empty split), the
    sources read, rows per source and split, and the duplicate problems dropped."""

    rows: dict[str, int]
    paths: dict[str, str]
    sources: list[InputDatasetInfo]
    source_splits: list[dict[str, Any]]
    duplicates: int
    elapsed_sec: float


def write_splits(
    blend: BlendConfig,
    scale: ScaleConfig,
    data_dir: Path,
    *,
    row_format: RowFormat,
    problem_field: str,
    answer_field: str,
    pinned: dict[str, str],
    split_seed: int,
    dedupe: bool,
) -> RLSplits:
    """Each row of each source to a split (the one `pinned` names for its source, else a stable hash of
    (split_seed, source, row index)), exact duplicate problems dropped when `dedupe` (first kept)."""
    writers = {split: JsonlWriter(data_dir / FILES[split]) for split in SPLITS}
    seen: set[str] = set()
    sources: list[InputDatasetInfo] = []
    source_splits: list[dict[str, Any]] = []
    duplicates = 0
    input_key = KEYS[row_format][0]
    with RateProgress("writing RL rows", total_rows=scale.expected_rows(blend.sources)) as progress:
        for source in blend.sources:
            stream = read_source(source, scale)
            counts = dict.fromkeys(SPLITS, 0)
            for row_index, row in enumerate(stream):
                out = rl_row(row, stream.location, problem_field, answer_field, row_format)
                if dedupe:
                    if out[input_key] in seen:
                        duplicates += 1
                        continue
                    seen.add(out[input_key])
                split = pinned.get(source.name) or blend.splits.assign(split_seed, source.name, row_index)
                writers[split].write(out)
                counts[split] += 1
                progress.advance(rows=1)
            sources.append(stream.info())
            source_splits.append({"source": source.name, **{FILES[s].split(".")[0]: counts[s] for s in SPLITS}})
    for writer in writers.values():
        writer.close()
    return RLSplits(
        rows={split: writers[split].rows for split in SPLITS},
        paths={FILES[s].split(".")[0]: str(writers[s].path) if writers[s].rows else "" for s in SPLITS},
        sources=sources,
        source_splits=source_splits,
        duplicates=duplicates,
        elapsed_sec=progress.elapsed,
    )
