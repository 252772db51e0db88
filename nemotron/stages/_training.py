"""What the training stages share: the tokenizer they start from, the tokenizer check, the RL problems."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nemotron.errors import NemotronError
from nemotron.job import load_input


def load_data_tokenizer(cfg: DictConfig, data: Any) -> tuple[Any, str]:
    """The tokenizer a dataset was made with (its `tokenizer_uri`: an artifact, a hub id or a directory)."""
    from nemotron.artifacts import TokenizerArtifact
    from nemotron.data.tokenizer import load_tokenizer

    reference = data.tokenizer_uri
    if not reference:
        raise NemotronError(f"{data.uri or data.path} records no tokenizer_uri, so the model cannot be built for it.")
    if reference.startswith("art://"):
        artifact = load_input(cfg, reference, TokenizerArtifact)
        return load_tokenizer(artifact.path), artifact.uri or reference
    return load_tokenizer(reference), reference


def check_same_tokenizer(model_tokenizer: Any, data_tokenizer: Any, model_ref: str, data_ref: str) -> None:
    """Data tokenized with another tokenizer than the model's would train on meaningless ids: refuse it."""
    from nemotron.data.tokenizer import tokenizer_digest

    if tokenizer_digest(model_tokenizer) != tokenizer_digest(data_tokenizer):
        raise NemotronError(
            f"The data {data_ref} was tokenized with a different tokenizer ({len(data_tokenizer)} tokens) than "
            f"the model {model_ref} uses ({len(model_tokenizer)} tokens). Prepare the data with the model's "
            "tokenizer (its checkpoint directory holds it: data.tokenizer.name_or_path=${art:model,path})."
        )


def read_problems(data: Any, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """`{"problem", "expected_answer"}` rows of one split of a SplitJsonlDataArtifact."""
    import json
    from pathlib import Path

    file = getattr(data, split, None)
    if not file:
        raise NemotronError(f"{data.uri or data.path} has no {split!r} split (its splits: train, val, test).")
    path = Path(file) if Path(file).is_absolute() else Path(data.path) / file
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows and not {"problem", "expected_answer"} <= rows[0].keys():
        raise NemotronError(
            f"{path} is not in the math format (problem, expected_answer): its fields are {', '.join(rows[0])}. "
            "Prepare it with stage=rl_data stage.format=math."
        )
    return rows[:limit] if limit else rows
