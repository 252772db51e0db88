"""The corpus, settings and comparisons of the several-task pretrain_data tests (submitit_local and Slurm)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

SETTINGS = ["stage=pretrain_data", "data=multi", "scale=full", "stage.workers=1", "stage.rank_timeout_s=15"]


def write_corpus(base: Path, bpe_dir: str, files: int, rows: int) -> list[str]:
    """`files` JSONL files of `rows` documents (source `web`) and one Parquet file (source `books`), as a
    config dir with data=multi; returns the `--config-dir` arguments."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nemotron.data.synthetic import pretrain_documents

    docs = [row["text"] for row in pretrain_documents(files * rows + rows, seed=11)]
    (base / "corpus").mkdir(parents=True)
    for i in range(files):
        lines = (json.dumps({"text": text}) + "\n" for text in docs[i * rows : (i + 1) * rows])
        (base / "corpus" / f"web_{i:02d}.jsonl").write_text("".join(lines))
    pq.write_table(pa.Table.from_pylist([{"text": t} for t in docs[files * rows :]]), base / "corpus" / "books.parquet")
    (base / "conf" / "data").mkdir(parents=True)
    (base / "conf" / "data" / "multi.yaml").write_text(
        f"name: multi\ntokenizer: {{name_or_path: {bpe_dir}}}\npretrain:\n  sources:\n"
        f"    - {{name: web, uri: '{base}/corpus/web_*.jsonl', weight: 0.6}}\n"
        f"    - {{name: books, uri: '{base}/corpus/books.parquet', weight: 0.4}}\n"
        "  splits: {train: 0.8, valid: 0.1, test: 0.1}\n"
    )
    return ["--config-dir", str(base / "conf")]


def data_dirs(cwd: Path) -> list[Path]:
    return sorted([*cwd.glob("outputs/pretrain_data/*/data"), *cwd.glob("multirun/*/*/0/data")])


def shard_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every shard file and receipt, and blend.json (its prefixes made relative if they are absolute)."""
    files = {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.glob("shards/**/*")) if p.is_file()}
    files |= {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.glob("receipts/**/*.json"))}
    files["blend.json"] = (data_dir / "blend.json").read_text().replace(f"{data_dir}/", "").encode()
    return files


def committed(store: Path) -> dict[str, list[str]]:
    return {d.name: sorted(v.parent.name for v in d.glob("v*/manifest.json")) for d in sorted(store.iterdir())}


def one_task_shards(base: Path, conf: list[str], run: Callable[..., subprocess.CompletedProcess[str]]) -> dict:
    """The shard bytes of a 1-task run: what every several-task run must equal."""
    cwd = base / "tasks1"
    cwd.mkdir()
    result = run(*conf, *SETTINGS, "stage.shard_rows=100", f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (data_dir,) = data_dirs(cwd)
    return shard_bytes(data_dir)
