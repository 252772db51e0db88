"""RL data: problems with their expected answers as NeMo-RL JSONL (formats.md 6.1).

    math form          {"problem": "What is 2 + 3?", "expected_answer": "5"}
                       read by NeMo-RL with `input_key: problem, output_key: expected_answer`
                       (`ResponseDataset` -> `math_hf_data_processor`, as its OpenMathInstruct-2 mapping)
    input_output form  {"input": ..., "output": ...}, `ResponseDataset`'s default keys

Rows are read from each source's `problem_field` and `answer_field`; the answer is written as a string.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from nemotron.errors import NemotronError

RowFormat = Literal["math", "input_output"]
KIND_FIELD = "kind"  # an optional label of the problem's kind (data=tiny: fact | two_step), kept as is
KEYS: dict[str, tuple[str, str]] = {"math": ("problem", "expected_answer"), "input_output": ("input", "output")}


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
