"""Data-prep throughput at steady state: our pretrain_data engine against Megatron's classic and fast methods.

    python bench/data_prep.py [--sizes 100 1000] [--classic-sizes 20 100] [--workers 2] [--cache DIR]

The corpus is natural-language JSONL made offline: the docstrings of the Python standard library and
`pydoc_data.topics`, cut into paragraphs and recombined (seeded) into documents of 1-11 paragraphs (~135k
documents per 100 MB; JSON escapes as `json.dumps` writes them). The tokenizer is a 32k byte-level BPE
(`train_bpe`, vocab_size=32000) trained on the first 10 MB of it. Corpora and tokenizer are cached in `--cache`.

Each method runs in a fresh process (so its peak RSS is its own) with the same number of processes or threads:

    ours     nemotron.data.pretrain.build_shards with its fast-path check (TokenEncoder.with_fast_path on 1,000
             rows) inside the timing: work units of 16 MB of whole lines, each read, parsed and tokenized
             (gigatoken where proven equal to HF tokenizers) in a worker process; numpy arrays back; shards
             cut and written in bulk in the main process
    classic  `tools/preprocess_data.py`'s method: Pool.imap(one HF tokenizer call per document, chunksize=32)
             feeding megatron-core's IndexedDatasetBuilder.add_document (our writer if megatron-core is missing)
    fast     `tools/preprocess_data_fast.py`'s method (Megatron-LM, `--use-gigatoken`): gigatoken reads and
             encodes the whole JSONL in Rust (`encode_files(JsonlFileSource)`, RAYON_NUM_THREADS = workers),
             an EOD column is concatenated to every document (empty ones included) with awkward, and the
             documents go to IndexedDatasetBuilder in one bulk `add_documents`. The script and
             `add_documents` are not in the megatron-core wheel (0.16.1), so this is a faithful
             reimplementation of both on top of the wheel's builder (`_add_documents`, one sequence per
             document); it needs gigatoken and awkward.
    encode_files  gigatoken alone: `encode_files(JsonlFileSource)` on the same threads, nothing written
    ceiling  gigatoken's encoding alone, the bound of any pipeline: the texts parsed beforehand (not timed),
             `encode_batch` on one thread, the time divided by the workers (perfect scaling)

Fixed costs (imports, pool start, the fast-path check, megatron-core's ~7 s import) would decide a comparison
at one size, so the rates are MARGINAL between two corpus sizes (default 100 MB and 1 GB):
rate = (tokens_large - tokens_small) / (seconds_large - seconds_small), and MB/s alike. Classic is ~25x
slower, so it is measured between smaller sizes (default 20 and 100 MB), marginal too. Targets: ours >= 1.2x
fast, >= 8x classic, ours' .bin/.idx byte-identical to classic's (at the largest size both ran), and ours' peak
RSS at the large size within 10% of that at the small one (memory stays flat). The fast method's output
differs by design (it gives empty documents an EOD), so it is not compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS_VERSION = 1  # bump when make_corpus changes: cached corpora are named by it


def stdlib_paragraphs() -> list[str]:
    """The paragraphs of every docstring of the standard library (tests excluded) and of pydoc_data.topics."""
    import ast
    import sysconfig
    from pydoc_data.topics import topics

    paragraphs: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if {"test", "tests", "site-packages", "idle_test"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                paragraphs += _paragraphs(ast.get_docstring(node) or "")
    for key in sorted(topics):
        paragraphs += _paragraphs(topics[key])
    return paragraphs


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def make_corpus(path: Path, megabytes: float, paragraphs: list[str]) -> int:
    """JSONL of documents of 1-11 paragraphs (neighbours 7 apart), seeded; returns the number of documents."""
    import random

    rng = random.Random(42)
    target, size, count = int(megabytes * 1e6), 0, 0
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        while size < target:
            first, k = rng.randrange(len(paragraphs)), rng.randint(1, 11)
            text = "\n\n".join(paragraphs[(first + 7 * j) % len(paragraphs)] for j in range(k))
            line = json.dumps({"text": text}) + "\n"
            f.write(line)
            size += len(line)
            count += 1
    os.replace(tmp, path)
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


def run_encode_files(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """gigatoken alone: read and encode the JSONL in Rust (RAYON_NUM_THREADS = workers), nothing written."""
    import awkward as ak
    import gigatoken

    start = time.perf_counter()
    tokenizer = gigatoken.Tokenizer(tokenizer_dir)
    documents = tokenizer.encode_files(gigatoken.JsonlFileSource([str(corpus)], field="text"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": int(ak.sum(ak.num(documents, axis=1))), "peak_rss_mb": _peak_rss_mb()}


def run_ceiling(corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """The ceiling of any pipeline on `workers` cores: gigatoken's encoding of the texts alone, on one thread,
    the time divided by `workers` (perfect scaling). The JSON is parsed beforehand, outside the timing."""
    import awkward as ak
    import gigatoken
    import orjson

    tokenizer = gigatoken.Tokenizer(tokenizer_dir)
    with open(corpus, "rb") as f:
        texts = [orjson.loads(line)["text"] for line in f]
    start = time.perf_counter()
    documents = tokenizer.encode_batch(texts, parallel=False)
    seconds = (time.perf_counter() - start) / workers
    return {"seconds": seconds, "tokens": int(ak.sum(ak.num(documents, axis=1))), "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


RUNNERS = {
    "ours": run_ours, "classic": run_classic, "fast": run_fast, "encode_files": run_encode_files,
    "ceiling": run_ceiling,
}  # fmt: skip
LABELS = {
    "ours": "ours",
    "fast": "fast (preprocess_data_fast.py method, gigatoken)",
    "encode_files": "gigatoken encode_files alone (Rust JSONL reading)",
    "ceiling": "ceiling: gigatoken encode alone, 1 thread x workers",
    "classic": "classic (preprocess_data.py method)",
}


def _in_subprocess(method: str, corpus: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    """Run one method in a fresh process, so its peak RSS is its own; gigatoken's thread pool gets `workers`."""
    args = [sys.executable, __file__, "--_run", method, str(corpus), tokenizer_dir, str(out), str(workers)]
    env = {**os.environ, "RAYON_NUM_THREADS": str(workers)}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _prepare(cache: Path, sizes: set[float]) -> tuple[dict[float, Path], str]:
    """The corpora (made once, cached by size and CORPUS_VERSION) and the 32k BPE trained on the first 10 MB."""
    from nemotron.data.tokenizer import train_bpe

    cache.mkdir(parents=True, exist_ok=True)
    paths = {mb: cache / f"stdlib-docs-v{CORPUS_VERSION}-{mb:g}MB.jsonl" for mb in {*sizes, 10.0}}
    paragraphs = None
    for mb, path in sorted(paths.items()):
        if not path.is_file():
            paragraphs = paragraphs or stdlib_paragraphs()
            count = make_corpus(path, mb, paragraphs)
            print(f"made {path} ({count:,} documents)", flush=True)
    tokenizer_dir = cache / f"bpe32k-v{CORPUS_VERSION}"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        with open(paths[10.0]) as f:
            texts = [json.loads(line)["text"] for line in f]
        train_bpe(texts, tokenizer_dir, vocab_size=32000, min_frequency=1)
    return paths, str(tokenizer_dir)


def _run(runs: dict, method: str, mb: float, corpus: Path, tokenizer_dir: str, tmp: Path, workers: int) -> None:
    """One run; the fastest per method and size counts, and the output of the last one is kept for comparison."""
    out = tmp / f"{method}-{mb:g}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    run = _in_subprocess(method, corpus, tokenizer_dir, out / "text_document", workers)
    if (method, mb) not in runs or run["seconds"] < runs[method, mb]["seconds"]:
        runs[method, mb] = run
    print(_line(f"{LABELS[method]}, {mb:g} MB", run, mb), flush=True)


def _line(label: str, run: dict, megabytes: float) -> str:
    return (
        f"  {label:58s} {run['seconds']:8.2f} s {run['tokens']:13,} tokens {megabytes / run['seconds']:8.1f} MB/s "
        f"{run['tokens'] / run['seconds'] / 1e6:7.2f}M tokens/s  peak RSS {run['peak_rss_mb']:6.0f} MB"
    )


def _marginal(runs: dict, method: str, small: float, large: float) -> dict:
    a, b = runs[method, small], runs[method, large]
    seconds = b["seconds"] - a["seconds"]
    return {"tokens_per_s": (b["tokens"] - a["tokens"]) / seconds, "mb_per_s": (large - small) / seconds}


def _identical(prefix_a: str, prefix_b: str) -> bool:
    return all(_sha256(prefix_a + s) == _sha256(prefix_b + s) for s in (".bin", ".idx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs=2, default=[100.0, 1000.0], help="MB: ours, fast, ceiling")
    parser.add_argument("--classic-sizes", type=float, nargs=2, default=[20.0, 100.0], help="MB: classic")
    parser.add_argument("--workers", type=int, default=2, help="processes (threads for gigatoken)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of runs; the fastest per method and size counts")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nemotron-bench-data-prep"))
    parser.add_argument("--skip-classic", action="store_true", help="quick runs: no classic, no byte comparison")
    parser.add_argument("--_run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run:
        method, corpus, tokenizer_dir, out, workers = args._run
        print(json.dumps(RUNNERS[method](Path(corpus), tokenizer_dir, Path(out), int(workers))))
        return

    small, large = sorted(args.sizes)
    classic_small, classic_large = sorted(args.classic_sizes)
    compare = classic_large  # ours and classic both run at this size: their bytes are compared there
    ours_sizes = sorted({small, large} | (set() if args.skip_classic else {compare}))
    corpora, tokenizer_dir = _prepare(Path(args.cache), {*ours_sizes, classic_small})
    print(
        f"corpus: stdlib docstrings, {args.workers} processes / threads, a {len(_vocab(tokenizer_dir)):,}-token "
        f"byte-level BPE; load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Rounds: every method and size once per round, so a busy spell of a shared machine hits them alike.
        for _ in range(args.repeat):
            for mb in ours_sizes:
                methods = ("ours",) if mb not in (small, large) else ("ours", "fast", "encode_files", "ceiling")
                for method in methods:
                    _run(runs, method, mb, corpora[mb], tokenizer_dir, tmp, args.workers)
            for mb in () if args.skip_classic else (classic_small, classic_large):
                _run(runs, "classic", mb, corpora[mb], tokenizer_dir, tmp, args.workers)
        if not args.skip_classic:
            identical = _identical(runs["ours", compare]["prefix"], runs["classic", compare]["prefix"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    _report(runs, small, large, classic_small, classic_large, None if args.skip_classic else identical)
    if not args.skip_classic and not identical:
        sys.exit("the outputs of ours and classic differ")


def _vocab(tokenizer_dir: str) -> dict:
    return json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())["model"]["vocab"]


def _report(runs: dict, small: float, large: float, classic_small: float, classic_large: float, identical) -> None:
    print(f"marginal rates, {small:g} MB -> {large:g} MB (classic: {classic_small:g} MB -> {classic_large:g} MB):")
    rates = {m: _marginal(runs, m, small, large) for m in ("ours", "fast", "encode_files", "ceiling")}
    if identical is not None:
        rates["classic"] = _marginal(runs, "classic", classic_small, classic_large)
    for method, rate in rates.items():
        print(f"  {LABELS[method]:58s} {rate['tokens_per_s'] / 1e6:7.2f}M tokens/s {rate['mb_per_s']:8.1f} MB/s")
    ours = rates["ours"]["tokens_per_s"]
    print(f"ratio ours / fast:    {ours / rates['fast']['tokens_per_s']:6.2f}x   (target >= 1.2x)")
    print(f"ratio ours / ceiling: {ours / rates['ceiling']['tokens_per_s']:6.2f}x")
    if identical is not None:
        print(f"ratio ours / classic: {ours / rates['classic']['tokens_per_s']:6.2f}x   (target >= 8x)")
        print(f".bin/.idx of ours byte-identical to the classic method's at {classic_large:g} MB: {identical}")
    rss_small, rss_large = runs["ours", small]["peak_rss_mb"], runs["ours", large]["peak_rss_mb"]
    print(
        f"peak RSS of ours: {rss_small:.0f} MB at {small:g} MB, {rss_large:.0f} MB at {large:g} MB "
        f"({100 * (rss_large / rss_small - 1):+.1f}%, target within 10%)"
    )


if __name__ == "__main__":
    main()
