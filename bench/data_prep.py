"""Data-prep throughput: our pretrain_data engine against Megatron's classic and fast preprocessing methods.

    python bench/data_prep.py [--mb 200] [--workers N]

All three tokenize the same JSONL corpus (default 200 MB) with the same tokenizer (a byte-level BPE trained on
it) and the same number of processes or threads, each in a fresh process (so its peak RSS is its own):

    ours     nemotron.data.pretrain.build_shards: sources read in the main process, batches encoded in worker
             processes (gigatoken where `TokenEncoder.with_fast_path` proves it equal to HF tokenizers, else HF),
             shard bytes built with numpy, bulk index writes
    classic  `tools/preprocess_data.py`'s method: Pool.imap(one HF tokenizer call per document, chunksize=32)
             feeding megatron-core's IndexedDatasetBuilder.add_document (our writer if megatron-core is missing)
    fast     `tools/preprocess_data_fast.py`'s method (Megatron-LM, `--use-gigatoken`): gigatoken reads and
             encodes the whole JSONL in Rust (`encode_files(JsonlFileSource)`, RAYON_NUM_THREADS = workers),
             an EOD column is concatenated to every document (empty ones included) with awkward, and the
             documents go to IndexedDatasetBuilder in one bulk `add_documents`. The script and
             `add_documents` are not in the megatron-core wheel (0.16.1), so this is a faithful
             reimplementation of both on top of the wheel's builder (`_add_documents`, one sequence per
             document); it needs gigatoken and awkward.

It prints MB/s and tokens/s of each, the ratios ours/fast (target >= 1.2x) and ours/classic (target >= 8x),
whether ours and classic wrote byte-identical `.bin/.idx`, and the peak RSS of ours at two corpus sizes (it
should stay flat as the corpus grows). The fast method's output differs by design (it gives empty documents an
EOD), so it is not compared byte for byte.
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
    """The pretrain_data stage's engine, with its fast-path check (1,000 sample rows) inside the timing."""
    from itertools import islice

    from nemotron.data.indexed import token_dtype
    from nemotron.data.pretrain import DataPlan, ShardSettings, build_shards
    from nemotron.data.sources import BlendConfig, ScaleConfig, read_source
    from nemotron.data.tokenizer import TokenEncoder, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    blend = BlendConfig(sources=[{"name": "c", "uri": str(corpus)}], splits={"train": 1, "valid": 0, "test": 0})
    start = time.perf_counter()
    sample = islice(read_source(blend.sources[0]).texts(), 1000)
    encoder = TokenEncoder(tokenizer).with_fast_path(sample)
    result = build_shards(
        blend, ScaleConfig(), ShardSettings(shard_rows=10**9), encoder, tokenizer.eos_token_id,
        token_dtype(len(tokenizer)), DataPlan.make(bench=True), out, workers=workers,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    (receipt,) = result.receipts
    prefix = str(out / receipt.prefix)
    return {
        "seconds": seconds, "tokens": receipt.tokens, "prefix": prefix, "peak_rss_mb": _peak_rss_mb(),
        "engine": encoder.engine,
    }  # fmt: skip


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
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": tokens, "prefix": str(out), "writer": writer, "peak_rss_mb": _peak_rss_mb()}


def _add_documents(builder, documents) -> None:
    """Megatron-LM's `IndexedDatasetBuilder.add_documents`: one flat write, one sequence per document."""
    import awkward as ak
    import numpy as np

    data = np.asarray(ak.flatten(documents), dtype=builder.dtype)
    builder.data_file.write(data.tobytes(order="C"))
    lengths = np.asarray(ak.num(documents, axis=1))
    offset = len(builder.sequence_lengths)
    builder.sequence_lengths.extend(lengths.tolist())
    builder.document_indices.extend((offset + np.arange(1, len(lengths) + 1)).tolist())


def run_fast(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """preprocess_data_fast.py --use-gigatoken --append-eod (RAYON_NUM_THREADS is set by the parent)."""
    import awkward as ak
    import gigatoken
    import numpy as np
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    from nemotron.data.tokenizer import load_tokenizer

    reference = load_tokenizer(tokenizer_dir)
    eod, vocab = reference.eos_token_id, len(reference)
    start = time.perf_counter()
    tokenizer = gigatoken.Tokenizer(tokenizer_dir)
    documents = tokenizer.encode_files(gigatoken.JsonlFileSource([str(corpus)], field="text"))
    eod_column = ak.singletons(ak.Array(np.full(len(documents), eod, dtype=np.uint32)))
    documents = ak.concatenate([documents, eod_column], axis=1)
    builder = IndexedDatasetBuilder(f"{out}.bin", dtype=DType.optimal_dtype(vocab))
    _add_documents(builder, documents)
    builder.finalize(f"{out}.idx")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": int(ak.sum(ak.num(documents, axis=1))), "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


RUNNERS = {"ours": run_ours, "classic": run_classic, "fast": run_fast}


def _in_subprocess(method: str, corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """Run one method in a fresh process, so its peak RSS is its own; gigatoken's thread pool gets `workers`."""
    args = [sys.executable, __file__, "--_run", method, str(corpus), tokenizer_dir, str(out), str(workers)]
    env = {**os.environ, "RAYON_NUM_THREADS": str(workers)}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _line(label: str, run: dict, megabytes: float) -> str:
    return (
        f"{label:48s} {run['seconds']:8.2f} s {megabytes / run['seconds']:9.2f} MB/s "
        f"{run['tokens'] / run['seconds']:14,.0f} tokens/s  peak RSS {run['peak_rss_mb']:7.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="corpus size in MB (acceptance: >= 200)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-classic", action="store_true", help="quick runs: ours and fast only")
    parser.add_argument("--_run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run:
        method, corpus, tokenizer_dir, out, workers = args._run
        print(json.dumps(RUNNERS[method](Path(corpus), tokenizer_dir, Path(out), int(workers))))
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
        print(f"corpus: {megabytes:.1f} MB, {documents:,} documents; {args.workers} worker processes / threads")

        ours = _in_subprocess("ours", corpus, tokenizer_dir, tmp / "ours", args.workers)
        ours_small = _in_subprocess("ours", small, tokenizer_dir, tmp / "ours_small", args.workers)
        fast = _in_subprocess("fast", corpus, tokenizer_dir, tmp / "fast_text_document", args.workers)
        print(_line(f"ours (encoder: {ours['engine']})", ours, megabytes))
        print(_line("fast (preprocess_data_fast.py method, gigatoken)", fast, megabytes))
        if not args.skip_classic:
            classic = _in_subprocess("classic", corpus, tokenizer_dir, tmp / "classic_text_document", args.workers)
            print(_line(f"classic ({classic['writer']})", classic, megabytes))
        print(f"ratio ours / fast:    {fast['seconds'] / ours['seconds']:6.2f}x   (target >= 1.2x)")
        if not args.skip_classic:
            print(f"ratio ours / classic: {classic['seconds'] / ours['seconds']:6.2f}x   (target >= 8x)")
            identical = all(_sha256(ours["prefix"] + s) == _sha256(classic["prefix"] + s) for s in (".bin", ".idx"))
            print(f".bin/.idx of ours byte-identical to the classic method's: {identical}")
        print(
            f"peak RSS of ours: {ours_small['peak_rss_mb']:.0f} MB at {megabytes / 4:.1f} MB of corpus, "
            f"{ours['peak_rss_mb']:.0f} MB at {megabytes:.1f} MB"
        )
        if not args.skip_classic and not identical:
            sys.exit("the outputs of ours and classic differ")


if __name__ == "__main__":
    main()
