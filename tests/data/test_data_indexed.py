"""Megatron `.bin/.idx`: byte identity with megatron-core's IndexedDatasetBuilder driven the way
`tools/preprocess_data.py` drives it, and megatron-core's IndexedDataset reading every document back."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from nemotron.data.indexed import IndexedDatasetReader, IndexedDatasetWriter, token_dtype
from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
from nemotron.data.sources import BlendConfig, ScaleConfig
from nemotron.data.tokenizer import TokenEncoder, load_tokenizer

pytestmark = pytest.mark.unit

# Every edge preprocess_data.py handles: empty documents, whitespace, list values (sentences) with empty
# sentences, an all-empty list, unicode, special-token text, long documents.
EDGE_DOCS = [
    "12 + 7 = 19",
    "",
    "   ",
    ["Ana has 3 apples.", "", "She gets 4 more."],
    [],
    ["", ""],
    "naïve café — 東京 🙂 <|endoftext|> inside text",
    "\n\nQuestion: 9 * 9?\nAnswer: 81\n",
    " ".join(f"{i} + {i} = {2 * i}" for i in range(300)),
]


@pytest.fixture(scope="module")
def mcore():
    """megatron-core's indexed dataset module and its HF tokenizer wrapper (from the dev extra)."""
    try:
        from megatron.core.datasets import indexed_dataset
        from megatron.core.tokenizers.text.libraries.huggingface_tokenizer import HuggingFaceTokenizer
    except ImportError as exc:  # the only reason to skip: the reference implementation is not installed
        pytest.skip(f"megatron-core cannot be imported ({exc}); pip install -e '.[dev]' installs it")
    return indexed_dataset, HuggingFaceTokenizer


@pytest.fixture(scope="module")
def big_tokenizer_dir(bpe_dir, tmp_path_factory) -> str:
    """The BPE plus 65,200 added tokens: len(tokenizer) >= 65500, so the shards are int32."""
    tokenizer = load_tokenizer(bpe_dir)
    tokenizer.add_tokens([f"<x{i}>" for i in range(65200)])
    out = tmp_path_factory.mktemp("big-tokenizer")
    tokenizer.save_pretrained(str(out))
    return str(out)


def test_the_worked_example_of_the_format_notes(tmp_path):
    writer = IndexedDatasetWriter(tmp_path / "ex", "uint16")
    for document in ([1, 2, 3, 0], [], [4, 5, 0]):
        writer.add_document(document)
    writer.finalize()
    idx = bytes.fromhex(
        "4d4d4944494458 0000 0100000000000000 08 0200000000000000 0400000000000000"
        "04000000 03000000  0000000000000000 0800000000000000"
        "0000000000000000 0100000000000000 0100000000000000 0200000000000000"
    )
    assert (tmp_path / "ex.idx").read_bytes() == idx
    assert (tmp_path / "ex.bin").read_bytes() == bytes.fromhex("0100 0200 0300 0000 0400 0500 0000")
    reader = IndexedDatasetReader(tmp_path / "ex")
    assert [reader[i].tolist() for i in range(len(reader))] == [[1, 2, 3, 0], [4, 5, 0]]
    assert [reader.document(j).tolist() for j in range(reader.num_documents)] == [[1, 2, 3, 0], [], [4, 5, 0]]


def test_dtype_rule():
    assert token_dtype(407) == "uint16" and token_dtype(65499) == "uint16"
    assert token_dtype(65500) == "int32" and token_dtype(151_000) == "int32"


@pytest.mark.parametrize("dtype", ["uint16", "int32"])
def test_writer_is_byte_identical_to_the_builder(tmp_path, mcore, dtype):
    import numpy as np

    indexed_dataset, _ = mcore
    rng = random.Random(dtype)
    documents = []
    for _ in range(200):
        sentences = [[rng.randrange(60000) for _ in range(rng.choice([0, 1, 5, 40]))] for _ in range(rng.randint(0, 4))]
        documents.append(sentences)
    ours = IndexedDatasetWriter(tmp_path / "ours", dtype)
    theirs = indexed_dataset.IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=getattr(np, dtype))
    batch_tokens, batch_lengths, batch_counts = [], [], []
    for sentences in documents:
        tokens = [t for s in sentences for t in s]
        lengths = [len(s) for s in sentences if s]
        theirs.add_document(tokens, lengths)
        batch_tokens += tokens
        batch_lengths += lengths
        batch_counts.append(len(lengths))
        if len(batch_counts) == 37:  # the batched form, in uneven batches
            ours.add_documents(batch_tokens, batch_lengths, batch_counts)
            batch_tokens, batch_lengths, batch_counts = [], [], []
    ours.add_documents(batch_tokens, batch_lengths, batch_counts)
    ours.finalize()
    theirs.finalize(str(tmp_path / "theirs.idx"))
    for suffix in (".bin", ".idx"):
        assert _sha256(tmp_path / f"ours{suffix}") == _sha256(tmp_path / f"theirs{suffix}")


@pytest.mark.parametrize("which, include_special_tokens", [("uint16", False), ("uint16", True), ("int32", False)])
def test_pipeline_output_is_byte_identical_to_preprocess_data(
    tmp_path, mcore, bpe_dir, big_tokenizer_dir, which, include_special_tokens
):
    """Our shard for a JSONL corpus == IndexedDatasetBuilder fed by preprocess_data.py's Encoder.encode."""
    indexed_dataset, HuggingFaceTokenizer = mcore
    tokenizer_dir = bpe_dir if which == "uint16" else big_tokenizer_dir
    corpus = [*EDGE_DOCS, *(["<x65190> big ids <x5>"] if which == "int32" else [])]
    corpus += [f"Question: {i} + {2 * i}?\nAnswer: {3 * i}" for i in range(150)]
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"text": text}) + "\n" for text in corpus))

    # Megatron: tools/preprocess_data.py, --json-keys text --append-eod, one writer, documents in input order.
    reference = HuggingFaceTokenizer(tokenizer_dir, use_fast=True, include_special_tokens=include_special_tokens)
    dtype = indexed_dataset.DType.optimal_dtype(reference.vocab_size)
    assert dtype.__name__ == which
    builder = indexed_dataset.IndexedDatasetBuilder(str(tmp_path / "megatron_text_document.bin"), dtype=dtype)
    for line in jsonl.read_text().splitlines():
        doc_ids, sentence_lens = _encoder_encode(json.loads(line)["text"], reference)
        builder.add_document(doc_ids, sentence_lens)
    builder.finalize(str(tmp_path / "megatron_text_document.idx"))

    # Ours: the pretrain_data engine, every document to train, units of a line or two through two worker processes.
    tokenizer = load_tokenizer(tokenizer_dir)
    blend = BlendConfig(
        sources=[{"name": "corpus", "uri": str(jsonl)}], splits={"train": 1.0, "valid": 0.0, "test": 0.0}
    )
    data_dir = tmp_path / "ours"
    result = build_shards(
        blend,
        ScaleConfig(),
        ShardSettings(add_special_tokens=include_special_tokens),
        TokenEncoder(tokenizer, add_special_tokens=include_special_tokens),
        eod=tokenizer.eos_token_id,
        dtype=token_dtype(len(tokenizer)),
        plan=DataPlan.make(test=True),
        data_dir=data_dir,
        workers=2,
        chunk_rows=7,
        unit_bytes=97,
    )
    (receipt,) = result.receipts
    assert receipt.documents == len(corpus)
    ours = data_dir / receipt.prefix
    for suffix in (".bin", ".idx"):
        assert _sha256(Path(f"{ours}{suffix}")) == _sha256(tmp_path / f"megatron_text_document{suffix}")

    # megatron-core's reader gives back every document as the tokenizer's ids (+ EOD if non-empty).
    dataset = indexed_dataset.IndexedDataset(str(ours))
    assert len(dataset.document_indices) == len(corpus) + 1
    for j, text in enumerate(corpus):
        first, last = dataset.document_indices[j], dataset.document_indices[j + 1]
        got = [t for i in range(first, last) for t in dataset[i].tolist()]
        sentences = [text] if isinstance(text, str) else text
        expected = [t for s in sentences for t in tokenizer(s, add_special_tokens=include_special_tokens).input_ids]
        assert got == (expected + [tokenizer.eos_token_id] if expected else []), f"document {j}: {text!r}"
    first, last = dataset.document_indices[3], dataset.document_indices[4]
    assert last - first == 2  # the list document: two non-empty sentences, two sequences
    assert IndexedDatasetReader(ours).document(3).tolist() == dataset[first].tolist() + dataset[first + 1].tolist()


def _encoder_encode(text, tokenizer) -> tuple[list[int], list[int]]:
    """tools/preprocess_data.py Encoder.encode for one key, with --append-eod (no sentence splitter)."""
    sentences = text if isinstance(text, list) else [text]
    doc_ids, sentence_lens = [], []
    for sentence in sentences:
        sentence_ids = tokenizer.text_to_ids(sentence)
        if len(sentence_ids) > 0:
            doc_ids.extend(sentence_ids)
            sentence_lens.append(len(sentence_ids))
    if len(doc_ids) > 0:
        doc_ids.append(tokenizer.eod)
        sentence_lens[-1] += 1
    return doc_ids, sentence_lens


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
