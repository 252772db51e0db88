"""The gigatoken fast path gives exactly HF `tokenizers`' ids, or is not used.

Proves, on the tiny corpus (`data=tiny`'s synthetic documents) and on our trained byte-level BPE, that both
engines give the same tokens and the same `.bin/.idx` bytes, and that a tokenizer gigatoken encodes
differently (a post-processor that adds BOS) or cannot load (a pre-tokenizer it does not implement) stays on
HF tokenizers with one warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("gigatoken", reason="gigatoken is not installed (it is in the train extra)")

from nemotron.data.indexed import token_dtype
from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
from nemotron.data.sources import BlendConfig, ScaleConfig
from nemotron.data.synthetic import pretrain_documents
from nemotron.data.tokenizer import PROBE_TEXTS, TokenEncoder, load_tokenizer, train_bpe

pytestmark = pytest.mark.unit

TINY_ROWS = 10_000  # scale=tiny reads at most 10,000 rows per source


@pytest.fixture(scope="module")
def tiny_corpus() -> list[str]:
    return [row["text"] for row in pretrain_documents(TINY_ROWS)]


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory, tiny_corpus):
    """The tokenizer `data=tiny` trains: the default vocab_size on the tiny corpus."""
    return train_bpe(tiny_corpus, tmp_path_factory.mktemp("tiny-bpe"), vocab_size=2048)


def _gigatoken_encoder(tokenizer, sample, caplog) -> TokenEncoder:
    with caplog.at_level(logging.INFO, logger="nemotron.data.tokenizer"):
        encoder = TokenEncoder(tokenizer).with_fast_path(sample)
    assert encoder.engine == "gigatoken", caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    return encoder


@pytest.mark.parametrize("which", ["tiny", "bpe_dir"])
def test_same_tokens_as_hf_on_the_tiny_corpus(which, tiny_corpus, tiny_tokenizer, bpe_dir, caplog):
    tokenizer = tiny_tokenizer if which == "tiny" else load_tokenizer(bpe_dir)
    fast = _gigatoken_encoder(tokenizer, tiny_corpus[:100], caplog)
    texts = [*tiny_corpus, *PROBE_TEXTS]
    expected = [tokenizer(text, add_special_tokens=False).input_ids for text in texts]
    assert fast.encode(texts) == expected
    ids, lengths = fast.encode_flat(texts)
    assert lengths.tolist() == [len(e) for e in expected]
    assert ids.tolist() == [i for e in expected for i in e]


def test_special_token_text_is_one_token(bpe_dir, caplog):
    tokenizer = load_tokenizer(bpe_dir)
    fast = _gigatoken_encoder(tokenizer, [], caplog)
    (ids,) = fast.encode(["a<|endoftext|>b"])
    assert tokenizer.eos_token_id in ids and len(ids) == 3


def test_shards_are_byte_identical_with_either_engine(tmp_path, bpe_dir, caplog):
    tokenizer = load_tokenizer(bpe_dir)
    corpus = [*PROBE_TEXTS, ["Ana has 3 apples.", "", "She gets 4 more."], [], ["", ""]]
    corpus += [row["text"] for row in pretrain_documents(300, seed=3)]
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"text": text}) + "\n" for text in corpus))
    blend = BlendConfig(sources=[{"name": "c", "uri": str(jsonl)}], splits={"train": 1.0, "valid": 0.0, "test": 0.0})
    hf = TokenEncoder(tokenizer)
    outputs = []
    for name, encoder in (("hf", hf), ("gigatoken", _gigatoken_encoder(tokenizer, corpus[:50], caplog))):
        result = build_shards(
            blend, ScaleConfig(), ShardSettings(), encoder, tokenizer.eos_token_id, token_dtype(len(tokenizer)),
            DataPlan.make(test=True), tmp_path / name, workers=2, chunk_rows=13,
        )  # fmt: skip
        (receipt,) = result.receipts
        prefix = tmp_path / name / receipt.prefix
        outputs.append([hashlib.sha256(Path(f"{prefix}{s}").read_bytes()).hexdigest() for s in (".bin", ".idx")])
    assert outputs[0] == outputs[1]


def test_a_tokenizer_gigatoken_encodes_differently_falls_back(bpe_dir, caplog):
    """A post-processor that adds BOS: HF applies it with add_special_tokens=True, gigatoken does not."""
    from tokenizers import processors

    tokenizer = load_tokenizer(bpe_dir)
    eos = tokenizer.eos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{eos} $A", special_tokens=[(eos, tokenizer.eos_token_id)]
    )
    encoder = TokenEncoder(tokenizer, add_special_tokens=True)
    with caplog.at_level(logging.INFO, logger="nemotron.data.tokenizer"):
        chosen = encoder.with_fast_path(["12 + 7 = 19"])
    assert chosen is encoder and chosen.engine == "tokenizers"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "not gigatoken" in warning.getMessage() and "encodes" in warning.getMessage()
    assert chosen.encode(["1"])[0][0] == tokenizer.eos_token_id


def test_a_tokenizer_gigatoken_cannot_load_falls_back(tmp_path, caplog):
    """A pre-tokenizer outside gigatoken's set (digits split, then GPT-2 byte-level): HF stays, one warning."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator([row["text"] for row in pretrain_documents(200)], trainer=trainer)
    encoder = TokenEncoder(PreTrainedTokenizerFast(tokenizer_object=backend))
    with caplog.at_level(logging.INFO, logger="nemotron.data.tokenizer"):
        chosen = encoder.with_fast_path(["12 + 7 = 19"])
    assert chosen is encoder and chosen.engine == "tokenizers"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "cannot load this tokenizer.json" in warning.getMessage()
