"""blend.json prefixes: relative to the blend file, so the data is the same bytes wherever it lies.

Megatron-LM's `--per-split-data-args-path` and Megatron-Bridge's `get_blend_fields_from_data_paths` hand the
prefixes to `IndexedDataset` as they are (relative to the training job's working directory), so readers (the
embedded trainer's `blend_split`, the Megatron-Bridge config) resolve each prefix with `locate_prefix`: a
relative prefix against the blend file, an absolute one (Megatron-LM's tools, older versions) found in the
data's own copy when the data moved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nemotron.data.indexed import IndexedDatasetReader, locate_prefix, token_dtype
from nemotron.data.pretrain import BLEND_FILE, DataPlan, ShardSettings, build_shards, write_blend
from nemotron.data.sources import BlendConfig, ScaleConfig
from nemotron.data.synthetic import pretrain_documents
from nemotron.data.tokenizer import TokenEncoder, load_tokenizer
from nemotron.training.batches import blend_split

pytestmark = pytest.mark.unit


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


def test_prefixes_are_relative_to_the_file_and_exist(tmp_path, bpe_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_dir = _prepare(Path("."), bpe_dir)  # even for a relative data directory
    prefixes = _prefixes(data_dir / BLEND_FILE)
    assert len(prefixes) >= 4
    for prefix in prefixes:
        assert not Path(prefix).is_absolute() and ".." not in Path(prefix).parts
        located = locate_prefix(prefix, data_dir)
        assert Path(f"{located}.bin").is_file() and Path(f"{located}.idx").is_file()


def test_moved_data_with_absolute_prefixes_reads_its_own_copy(tmp_path, bpe_dir):
    """A blend written with absolute prefixes (Megatron-LM's tools) still reads its own copy once moved."""
    data_dir = _prepare(tmp_path, bpe_dir)
    blend_file = data_dir / BLEND_FILE
    content = json.loads(blend_file.read_text())
    absolute = {k: v and [str(data_dir / x) if i % 2 else x for i, x in enumerate(v)] for k, v in content.items()}
    blend_file.write_text(json.dumps(absolute))
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data_dir, moved)
    for split in ("train", "valid"):  # the old place still exists, but the moved blend reads the copy
        located = blend_split(moved, BLEND_FILE, split)
        assert located and all(prefix.is_relative_to(moved) for _, prefix in located)


def test_moved_data_reads_its_own_copy(tmp_path, bpe_dir):
    data_dir = _prepare(tmp_path, bpe_dir)
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data_dir, moved)
    for split in ("train", "valid"):  # the old place still exists, but the moved blend reads the copy
        located = blend_split(moved, BLEND_FILE, split)
        assert located and all(prefix.is_relative_to(moved) for _, prefix in located)
    shutil.rmtree(data_dir)  # the old place is gone (another machine): the copy still reads
    for split in ("train", "valid"):
        for _, prefix in blend_split(moved, BLEND_FILE, split):
            assert IndexedDatasetReader(prefix).num_documents > 0


def test_a_prefix_found_nowhere_is_kept_as_written(tmp_path):
    assert locate_prefix("/other/place/shard_0", tmp_path) == Path("/other/place/shard_0")
    assert locate_prefix("shards/a", tmp_path) == tmp_path / "shards" / "a"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "shard_0.idx").write_bytes(b"")
    assert locate_prefix("/old/run/data/train/shard_0", tmp_path) == tmp_path / "train" / "shard_0"


def test_training_reader_resolves_relative_prefixes_against_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    blend = {"train": ["0.5", "shards/a", "0.5", "/abs/b"], "valid": None, "test": None}
    (tmp_path / "sub" / "blend.json").write_text(json.dumps(blend))
    assert blend_split(tmp_path, "sub/blend.json", "train") == [
        (0.5, tmp_path / "sub" / "shards" / "a"),
        (0.5, Path("/abs/b")),
    ]
