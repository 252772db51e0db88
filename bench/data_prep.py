"""Data-prep throughput: our pretrain_data engine against Megatron's classic `tools/preprocess_data.py` method.

    python bench/data_prep.py [--mb 20] [--workers N]

Both tokenize the same JSONL corpus with the same HF tokenizer and the same number of worker processes:

    ours     nemotron.data.pretrain.build_shards (batched encoding in workers, bulk index writes)
    classic  preprocess_data.py's method: Pool.imap(one tokenizer call per document, chunksize=32) feeding
             megatron-core's IndexedDatasetBuilder.add_document (our writer if megatron-core is missing)

It checks the two `.bin/.idx` are byte-identical, prints MB/s and tokens/s of each and the ratio, and the peak
RSS of ours at two corpus sizes (it should stay flat as the corpus grows). First version: Megatron's
gigatoken fast path (`preprocess_data_fast.py`) is not measured yet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_corpus(path: Path, megabytes: float) -> int:
    """JSONL of word problems and facts, documents of ~1-3 KB; returns the number of documents."""
    from nemotron.data.synthetic import pretrain_documents

    target, size, count = int(megabytes * 1e6), 0, 0
    rows = pretrain_documents(10**9, seed=42)
    with open(path, "w") as f:
        while size < target:
            text = "\n\n".join(next(rows)["text"] for _ in range(1 + count % 8))
            line = json.dumps({"text": text}) + "\n"
            f.write(line)
            size += len(line)
            count += 1
    return count


def run_ours(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    from nemotron.data.indexed import token_dtype
    from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
    from nemotron.data.sources import BlendConfig, ScaleConfig
    from nemotron.data.tokenizer import TokenEncoder, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    blend = BlendConfig(sources=[{"name": "c", "uri": str(corpus)}], splits={"train": 1, "valid": 0, "test": 0})
    start = time.perf_counter()
    result = build_shards(
        blend, ScaleConfig(), ShardSettings(shard_rows=10**9), TokenEncoder(tokenizer), tokenizer.eos_token_id,
        token_dtype(len(tokenizer)), DataPlan.make(bench=True), out, workers=workers,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    (receipt,) = result.receipts
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    prefix = str(out / receipt.prefix)
    return {"seconds": seconds, "tokens": receipt.tokens, "prefix": prefix, "peak_rss_mb": peak / 1024}


_TOKENIZER = None


def _init_classic(tokenizer_dir: str) -> None:
    global _TOKENIZER
    from transformers import AutoTokenizer

    _TOKENIZER = AutoTokenizer.from_pretrained(tokenizer_dir)


def _encode_classic(line: str) -> tuple[list[int], list[int]]:
    """preprocess_data.py's Encoder.encode with --append-eod (one `text` key, no sentence splitting)."""
    ids = _TOKENIZER(json.loads(line)["text"], add_special_tokens=False).input_ids
    if not ids:
        return [], []
    return [*ids, _TOKENIZER.eos_token_id], [len(ids) + 1]


def run_classic(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    import numpy as np

    from nemotron.data.tokenizer import load_tokenizer

    size = len(load_tokenizer(tokenizer_dir))
    dtype = np.uint16 if size < 65500 else np.int32
    try:
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

        builder, writer = IndexedDatasetBuilder(f"{out}.bin", dtype=dtype), "megatron-core IndexedDatasetBuilder"
    except ImportError:
        from nemotron.data.indexed import IndexedDatasetWriter

        builder, writer = IndexedDatasetWriter(out, dtype.__name__), "nemotron writer (megatron-core missing)"
    start = time.perf_counter()
    tokens = 0
    with multiprocessing.get_context("spawn").Pool(workers, _init_classic, (tokenizer_dir,)) as pool, open(corpus) as f:
        for ids, lengths in pool.imap(_encode_classic, f, 32):
            builder.add_document(ids, lengths)
            tokens += len(ids)
    if hasattr(builder, "data_file"):
        builder.finalize(f"{out}.idx")
    else:
        builder.finalize()
    return {"seconds": time.perf_counter() - start, "tokens": tokens, "prefix": str(out), "writer": writer}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ours_in_subprocess(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """Run ours in a fresh process, so its peak RSS is its own."""
    args = [sys.executable, __file__, "--_ours", str(corpus), tokenizer_dir, str(out), str(workers)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB (the acceptance run uses 200)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--_ours", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._ours:
        corpus, tokenizer_dir, out, workers = args._ours
        print(json.dumps(run_ours(Path(corpus), tokenizer_dir, Path(out), int(workers))))
        return

    from nemotron.data.synthetic import pretrain_documents
    from nemotron.data.tokenizer import train_bpe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus, small = tmp / "corpus.jsonl", tmp / "small.jsonl"
        documents = make_corpus(corpus, args.mb)
        make_corpus(small, args.mb / 4)
        tokenizer_dir = str(tmp / "tokenizer")
        train_bpe((r["text"] for r in pretrain_documents(5000, seed=1)), tokenizer_dir, vocab_size=4096)
        megabytes = corpus.stat().st_size / 1e6
        print(f"corpus: {megabytes:.1f} MB, {documents:,} documents; {args.workers} worker processes")

        ours = _ours_in_subprocess(corpus, tokenizer_dir, tmp / "ours", args.workers)
        ours_small = _ours_in_subprocess(small, tokenizer_dir, tmp / "ours_small", args.workers)
        classic = run_classic(corpus, tokenizer_dir, tmp / "classic_text_document", args.workers)
        identical = all(_sha256(ours["prefix"] + s) == _sha256(classic["prefix"] + s) for s in (".bin", ".idx"))

        for label, run in (("ours", ours), (f"classic ({classic['writer']})", classic)):
            print(
                f"{label:50s} {run['seconds']:7.2f} s {megabytes / run['seconds']:8.2f} MB/s "
                f"{run['tokens'] / run['seconds']:12,.0f} tokens/s"
            )
        print(f"ratio ours / classic: {classic['seconds'] / ours['seconds']:.2f}x   (target >= 8x)")
        print(f".bin/.idx byte-identical to the classic method: {identical}")
        print(
            f"peak RSS of ours: {ours_small['peak_rss_mb']:.0f} MB at {megabytes / 4:.1f} MB, "
            f"{ours['peak_rss_mb']:.0f} MB at {megabytes:.1f} MB"
        )
        if not identical:
            sys.exit("the outputs differ")


if __name__ == "__main__":
    main()
