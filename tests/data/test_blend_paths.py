"""blend.json prefixes: absolute (Megatron reads them verbatim), rebased when the data moves.

Megatron-LM's `--per-split-data-args-path` and Megatron-Bridge's `get_blend_fields_from_data_paths` hand the
prefixes to `IndexedDataset` as they are, so a relative prefix would resolve against the training job's
working directory; the pretrain_data stage therefore writes absolute prefixes, and data that is copied
elsewhere gets its blend.json rewritten by `rebase_blend`. The embedded trainer's reader (`blend_split`)
accepts both forms, resolving a relative prefix against the blend file's directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nemotron.data.indexed import IndexedDatasetReader, token_dtype
from nemotron.data.pretrain import BLEND_FILE, DataPlan, ShardSettings, build_shards, rebase_blend, write_blend
from nemotron.data.sources import BlendConfig, ScaleConfig
from nemotron.data.synthetic import pretrain_documents
from nemotron.data.tokenizer import TokenEncoder, load_tokenizer
from nemotron.training.batches import blend_split


def _prepare(tmp_path: Path, bpe_dir: str) -> Path:
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in pretrain_documents(400, seed=5)))
    blend = BlendConfig(sources=[{"name": "c", "uri": str(jsonl)}], splits={"train": 0.8, "valid": 0.2, "test": 0})
    tokenizer = load_tokenizer(bpe_dir)
    data_dir = tmp_path / "run" / "data"
    result = build_shards(
        blend, ScaleConfig(), ShardSettings(shard_rows=100), TokenEncoder(tokenizer), tokenizer.eos_token_id,
        token_dtype(len(tokenizer)), DataPlan.make(test=True), data_dir, workers=1,
    )  # fmt: skip
    write_blend(blend, result.receipts, data_dir)
    return data_dir


def _prefixes(blend_file: Path) -> list[str]:
    content = json.loads(blend_file.read_text())
    return [p for entries in content.values() if entries for p in entries[1::2]]


def test_prefixes_are_absolute_and_exist(tmp_path, bpe_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_dir = _prepare(Path("."), bpe_dir)  # even for a relative data directory
    prefixes = _prefixes(data_dir / BLEND_FILE)
    assert len(prefixes) >= 4
    for prefix in prefixes:
        assert Path(prefix).is_absolute() and Path(f"{prefix}.bin").is_file() and Path(f"{prefix}.idx").is_file()


def test_moved_data_is_rebased_and_read_at_its_new_place(tmp_path, bpe_dir):
    data_dir = _prepare(tmp_path, bpe_dir)
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data_dir, moved)
    shutil.rmtree(data_dir)  # the old place is gone (another machine)
    assert all(not Path(f"{p}.idx").exists() for p in _prefixes(moved / BLEND_FILE))

    count = rebase_blend(moved / BLEND_FILE, data_dir, moved)
    prefixes = _prefixes(moved / BLEND_FILE)
    assert count == len(prefixes)
    assert all(Path(p).is_relative_to(moved) for p in prefixes)
    for split in ("train", "valid"):
        for _, prefix in blend_split(moved, BLEND_FILE, split):
            assert IndexedDatasetReader(prefix).num_documents > 0
    assert rebase_blend(moved / BLEND_FILE, data_dir, moved) == 0  # idempotent


def test_rebase_keeps_outside_prefixes_and_null_splits(tmp_path):
    blend_file = tmp_path / "blend.json"
    content = {"train": ["1", "/old/data/shards/a", "2", "/other/b", "1", "rel/c"], "valid": None, "test": None}
    blend_file.write_text(json.dumps(content))
    assert rebase_blend(blend_file, "/old/data", "/new/data") == 1
    assert json.loads(blend_file.read_text()) == {
        "train": ["1", "/new/data/shards/a", "2", "/other/b", "1", "rel/c"],
        "valid": None,
        "test": None,
    }


def test_training_reader_resolves_relative_prefixes_against_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    blend = {"train": ["0.5", "shards/a", "0.5", "/abs/b"], "valid": None, "test": None}
    (tmp_path / "sub" / "blend.json").write_text(json.dumps(blend))
    assert blend_split(tmp_path, "sub/blend.json", "train") == [
        (0.5, tmp_path / "sub" / "shards" / "a"),
        (0.5, Path("/abs/b")),
    ]
