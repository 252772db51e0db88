"""The training tests' store: the three datasets made by the real data stages, and a model small enough to train
in seconds (the `store` fixture in tests/training/conftest.py makes one per session)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.clitools import clean_env, nemotron, ok

# A model small enough that a few steps take a second or two.
SMALL_MODEL = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.num_kv_heads=2",
    "model.intermediate_size=64",
    "model.max_seq_len=64",
]
SMALL_DATA = ["scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400"]


class Store:
    """A store root with `pretrain-data-tiny`, `sft-data-tiny` (pretrain's tokenizer) and `rl-data-tiny`."""

    def __init__(self, base: Path) -> None:
        self.base, self.root = base, base / "store"
        self.env = clean_env(NEMOTRON_ARTIFACTS_ROOT=self.root)

    def run(self, *args: str, cwd: Path | None = None):
        return nemotron(*args, cwd=cwd or self.base, env=self.env)

    def make(self, stage: str, *args: str) -> dict:
        """Run a stage; the JSON line of the artifact it committed last (data stages also commit a tokenizer)."""
        result = ok(self.run(f"stage={stage}", *SMALL_DATA, *args))
        return json.loads(result.stdout.splitlines()[-1])
