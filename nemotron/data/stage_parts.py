"""What the data stages share around their engines: the tokenizer they start from, and the table they end with.

prepare_tokenizer   `data.tokenizer.name_or_path` loaded as is, else a byte-level BPE trained on the blend
                    (on rank 0; the other ranks of a job load what rank 0 saved), or reused from an
                    interrupted run
print_table         the summary a stage prints on stderr when its data is written
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nemotron.data.sources import ScaleConfig
from nemotron.data.tokenizer import TokenizerConfig, load_tokenizer, train_bpe

log = logging.getLogger(__name__)


def prepare_tokenizer(
    config: TokenizerConfig,
    scale: ScaleConfig,
    out: Path,
    texts: Callable[[ScaleConfig], Iterable[str | list[str]]],
    *,
    what: str,
    trains: bool = True,
    save_loaded: bool = False,
    trained_before: Path | None = None,
) -> tuple[Any, bool]:
    """The tokenizer of a data stage, and whether it was trained here (else loaded from `name_or_path`).

    Trained: a byte-level BPE on `texts(scale)` (the scale capped at `config.train_rows`), saved into `out`;
    with `trains` false (a rank other than 0) the one rank 0 saved into `out` is loaded instead, and with
    `trained_before` (the tokenizer dir of an interrupted run) that one is copied into `out`. `what` names the
    texts in the log line. `save_loaded` also saves a loaded tokenizer into `out` (rank 0 only).
    """
    if config.name_or_path:
        tokenizer = load_tokenizer(config.name_or_path, config.revision, config.trust_remote_code)
        if save_loaded and trains:
            tokenizer.save_pretrained(str(out))
        return tokenizer, False
    if not trains:
        return load_tokenizer(str(out)), True
    if trained_before is not None and (trained_before / "tokenizer.json").is_file():
        if trained_before.resolve() != out.resolve():  # the same directory: a requeued job resumes in place
            shutil.copytree(trained_before, out)
        return load_tokenizer(str(out)), True
    log.info("Training a byte-level BPE tokenizer (vocab_size=%d) on %s", config.vocab_size, what)
    caps = [cap for cap in (scale.max_rows_per_source, config.train_rows) if cap]
    capped = scale.model_copy(update={"max_rows_per_source": min(caps) if caps else None})
    return train_bpe(texts(capped), out, config.vocab_size, config.min_frequency), True


def print_table(title: str, columns: list[str], rows: Iterable[list[str]], footer: str | None = None) -> None:
    """A table on stderr (stdout carries the stage's JSON line): the first column left, the others right."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console(stderr=True)
    console.print(table)
    if footer:
        console.print(footer)
