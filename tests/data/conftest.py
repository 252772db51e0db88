"""Fixtures of the data-prep tests: a byte-level BPE trained once on the synthetic corpus."""

from __future__ import annotations

import pytest

pytest.importorskip("tokenizers", reason="the data tests need the train extra: pip install -e '.[train]'")
pytest.importorskip("transformers", reason="the data tests need the train extra: pip install -e '.[train]'")


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory) -> str:
    """A tokenizer directory (byte-level BPE, about 400 tokens) trained on 2,000 synthetic documents."""
    from nemotron.data.synthetic import pretrain_documents
    from nemotron.data.tokenizer import train_bpe

    out = tmp_path_factory.mktemp("bpe")
    train_bpe((row["text"] for row in pretrain_documents(2000, seed=7)), out, vocab_size=1024)
    return str(out)
