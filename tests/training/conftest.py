"""Fixtures of the training tests (the store the data stages make: helpers/training_store.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training tests need the train extra: pip install -e '.[train]'")
pytest.importorskip("transformers", reason="the training tests need the train extra: pip install -e '.[train]'")

from helpers.training_store import Store


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("training"))
    store.make("pretrain_data")
    store.make("sft_data", "data.tokenizer.name_or_path=${art:tokenizer-tiny:latest,path}",
               "stage.tokenizer_uri=${art:tokenizer-tiny:latest,uri}", "stage.pack_size=64")  # fmt: skip
    store.make("rl_data")
    return store
