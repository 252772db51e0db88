"""`python -m nemotron stage=pretrain_data` end to end, in real subprocesses: data=tiny and local files, the
committed tokenizer + data artifacts with lineage, `${art:data,FIELD}`, resume after a kill, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nemotron.data.indexed import IndexedDatasetReader

pytestmark = pytest.mark.integration

TIMEOUT_S = 180
# data=tiny, smaller: 3,000 documents in shards of 300, so that a run has a dozen shards to interrupt.
TINY = ["stage=pretrain_data", "scale.max_rows_per_source=3000", "stage.shard_rows=300", "stage.chunk_rows=100"]


def nemotron(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nemotron", *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        input="",
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_") and k != "HYDRA_FULL_ERROR"}
    return {**env, **extra}


def _manifest(root: Path, name: str, version: int = 1) -> dict:
    return json.loads((root / name / f"v{version}" / "manifest.json").read_text())


def _receipts(data_dir: Path) -> dict[tuple[str, str, int], dict]:
    receipts = (json.loads(p.read_text()) for p in sorted(data_dir.glob("receipts/*/*/*.json")))
    return {(r["source"], r["split"], r["index"]): r for r in receipts}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One complete data=tiny run (3,000 rows) committed into its own store."""
    cwd = tmp_path_factory.mktemp("tiny")
    result = nemotron(*TINY, f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def test_tiny_run_commits_tokenizer_then_data_with_lineage(tiny_run):
    cwd, result = tiny_run
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["uri"] for line in lines] == ["art://tokenizer-tiny:v1", "art://pretrain-data-tiny:v1"]
    tokenizer, data = _manifest(cwd / "store", "tokenizer-tiny"), _manifest(cwd / "store", "pretrain-data-tiny")
    assert tokenizer["type"] == "TokenizerArtifact" and data["type"] == "PretrainBlendsArtifact"
    assert data["metadata"]["tokenizer_uri"] == "art://tokenizer-tiny:v1"  # pinned, never `latest`
    assert data["used_artifacts"] == ["tokenizer-tiny:v1"]
    (source,) = data["inputs"]
    assert source["uri"] == "synthetic://arithmetic/pretrain?seed=1234&split=train"
    assert source["num_rows"] == 3000 and source["digest"].startswith("xxh3_128:")
    lineage = json.loads((Path(data["path"]).parent / "lineage.json").read_text())
    assert lineage["inputs"] == [] and lineage["outputs"] == ["tokenizer-tiny:v1", "pretrain-data-tiny:v1"]
    assert "tokens/s" in result.stderr and "pretrain data" in result.stderr  # progress and summary


def test_tiny_run_writes_megatron_shards_and_a_per_split_blend(tiny_run):
    from transformers import AutoTokenizer

    cwd, _ = tiny_run
    fields = _manifest(cwd / "store", "pretrain-data-tiny")["metadata"]
    data_dir = Path(fields["path"])
    blend = json.loads((data_dir / fields["blend_path"]).read_text())
    assert list(blend) == ["train", "valid", "test"]
    tokenizer = AutoTokenizer.from_pretrained(_manifest(cwd / "store", "tokenizer-tiny")["path"])
    totals = {}
    for split, entries in blend.items():
        assert entries and len(entries) % 2 == 0  # never [] (Megatron cannot parse it)
        weights, prefixes = entries[0::2], entries[1::2]
        assert all(isinstance(w, str) for w in weights)
        assert sum(float(w) for w in weights) == pytest.approx(1.0)  # one source: its weight, shared by tokens
        assert not any(Path(p).is_absolute() for p in prefixes)  # relative to blend.json: relocatable bytes
        readers = [IndexedDatasetReader(data_dir / prefix) for prefix in prefixes]
        assert {str(r.dtype) for r in readers} == {"uint16"}
        totals[split] = (sum(r.num_tokens for r in readers), sum(len(r) for r in readers))
        first = readers[0].document(0).tolist()
        assert first[-1] == tokenizer.eos_token_id and "=" in tokenizer.decode(first[:-1])
    assert len(blend["train"]) // 2 >= 9  # 3,000 x 98% in shards of 300
    for split, (tokens, sequences) in totals.items():
        assert (fields[f"{split}_tokens"], fields[f"{split}_sequences"]) == (tokens, sequences)
    assert fields["total_sequences"] == 3000 and fields["metadata"]["documents"] == 3000


def test_megatron_builds_gpt_datasets_from_the_blend(tiny_run, monkeypatch):
    """blend.json as Megatron reads --per-split-data-args-path (prefixes relative to the working directory: run
    from the data directory, as the README says), into BlendedMegatronDatasetBuilder + GPTDataset."""
    try:
        from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
        from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
        from megatron.core.datasets.utils import get_blend_from_list
        from megatron.core.tokenizers import MegatronTokenizer
    except ImportError as exc:
        pytest.skip(f"megatron-core cannot be imported ({exc}); pip install -e '.[dev]' installs it")
    cwd, _ = tiny_run
    data = _manifest(cwd / "store", "pretrain-data-tiny")["metadata"]
    tokenizer_dir = _manifest(cwd / "store", "tokenizer-tiny")["path"]
    blend = json.loads((Path(data["path"]) / "blend.json").read_text())
    monkeypatch.chdir(data["path"])
    config = GPTDatasetConfig(
        random_seed=1,
        sequence_length=64,
        blend_per_split=[get_blend_from_list(blend[split]) if blend[split] else None for split in blend],
        split=None,
        path_to_cache=None,  # with a cache dir, BlendedDataset needs torch.distributed
        tokenizer=MegatronTokenizer.from_pretrained(tokenizer_dir, metadata_path={"library": "huggingface"}),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    train, valid, test = BlendedMegatronDatasetBuilder(GPTDataset, [200, 20, 20], lambda: True, config).build()
    assert len(train) >= 200 and len(valid) >= 20 and len(test) >= 20
    assert train[0]["tokens"].shape[0] == 64


def test_fields_resolve_through_art_references(tiny_run):
    cwd, _ = tiny_run
    result = nemotron(
        "stage=pretrain_data",
        f"artifacts.manifest.root={cwd / 'store'}",
        "+run.data=pretrain-data-tiny",
        "+check.tokens=${art:data,train_tokens}",
        "+check.tokenizer=${art:data,tokenizer_uri}",
        "+check.vocab=${art:tokenizer-tiny:v1,vocab_size}",
        "--cfg=job",
        "--resolve",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    fields = _manifest(cwd / "store", "pretrain-data-tiny")["metadata"]
    import yaml

    check = yaml.safe_load(result.stdout)["check"]
    assert check["tokens"] == fields["train_tokens"] and isinstance(check["tokens"], int)
    assert check["tokenizer"] == "art://tokenizer-tiny:v1" and 300 < check["vocab"] <= 1024


def test_local_jsonl_and_parquet_files_with_a_local_tokenizer(tmp_path, bpe_dir):
    """A user's blend in a config dir of their own: two file sources, weights, a tokenizer directory."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [f"{i} + {i} = {2 * i}" for i in range(300)]
    jsonl = "".join(json.dumps({"text": d}) + "\n" for d in docs)
    (tmp_path / "web.jsonl.gz").write_bytes(gzip.compress(jsonl.encode()))
    pq.write_table(pa.Table.from_pylist([{"content": d} for d in docs[:100]]), tmp_path / "books.parquet")
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "local.yaml").write_text(
        f"name: local\ntokenizer: {{name_or_path: {bpe_dir}}}\npretrain:\n  sources:\n"
        f"    - {{name: web, uri: '{tmp_path}/*.jsonl.gz', weight: 0.7}}\n"
        f"    - {{name: books, uri: '{tmp_path}/books.parquet', text_field: content, weight: 0.3}}\n"
        "  splits: {train: 0.8, valid: 0.1, test: 0.1}\n"
    )
    result = nemotron(
        "--config-dir", str(tmp_path / "conf"), "data=local", "stage=pretrain_data", "scale=full", "stage.workers=1",
        f"artifacts.manifest.root={tmp_path / 'store'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = _manifest(tmp_path / "store", "pretrain-data")  # scale=full: no suffix
    assert [(s["name"], s["num_rows"], s["weight"]) for s in data["inputs"]] == [("web", 300, 0.7), ("books", 100, 0.3)]
    assert _manifest(tmp_path / "store", "tokenizer")["metadata"]["metadata"]["source"] == bpe_dir
    blend = json.loads((Path(data["path"]) / "blend.json").read_text())
    for entries in blend.values():
        shares: dict[str, float] = {}
        for weight, prefix in zip(entries[0::2], entries[1::2], strict=True):
            source = Path(prefix).relative_to("shards").parts[0]  # relative to blend.json
            shares[source] = shares.get(source, 0) + float(weight)
        assert shares == pytest.approx({"web": 0.7, "books": 0.3})


def test_an_interrupted_run_resumes_from_its_finished_shards(tmp_path, tiny_run):
    store = tmp_path / "store"
    args = [*TINY, f"artifacts.manifest.root={store}", "stage.workers=1"]
    first = subprocess.Popen(
        [sys.executable, "-m", "nemotron", *args],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(list(tmp_path.glob("outputs/pretrain_data/*/data/receipts/*/train/*.json"))) < 3:
            assert first.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the stage and its worker processes
        first.wait()
    (interrupted,) = tmp_path.glob("outputs/pretrain_data/*")
    finished = _receipts(interrupted / "data")
    assert 3 <= len(finished) < 12 and not list(store.glob("*/v*/manifest.json"))  # killed mid-way, nothing committed

    result = nemotron(*args, f"stage.resume_from={interrupted}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = _manifest(store, "pretrain-data-tiny")["metadata"]
    assert data["metadata"]["reused_shards"] == len(finished)
    resumed = Path(data["path"])
    for receipt in finished.values():  # not tokenized again: the very same files, hard-linked
        for suffix in (".bin", ".idx"):
            old, new = interrupted / "data" / f"{receipt['prefix']}{suffix}", resumed / f"{receipt['prefix']}{suffix}"
            assert os.path.samefile(old, new)
    # and the same output as a run that was never interrupted (with two workers instead of one)
    cwd, _ = tiny_run
    complete = Path(_manifest(cwd / "store", "pretrain-data-tiny")["metadata"]["path"])
    assert _receipts(resumed) == _receipts(complete)
    blends = [(d / "blend.json").read_text().replace(str(d), "DIR") for d in (resumed, complete)]
    assert blends[0] == blends[1]


def test_resume_refuses_a_different_config(tmp_path, tiny_run):
    cwd, _ = tiny_run
    previous = Path(_manifest(cwd / "store", "pretrain-data-tiny")["path"]).parent
    overrides = ["stage.shard_rows=200", f"stage.resume_from={previous}", f"artifacts.manifest.root={tmp_path}"]
    result = nemotron(*TINY, *overrides, cwd=tmp_path)
    assert result.returncode != 0 and "Cannot resume" in result.stderr and "settings" in result.stderr
    assert not list(tmp_path.glob("*/v1/manifest.json"))


# -- bad input: a clear one-paragraph error, a non-zero exit, nothing committed ------------------------------

BAD = {
    "missing text field": ("{name: s, uri: '{d}/rows.jsonl', text_field: body}", [":1 has no text field 'body'"]),
    "malformed JSON lines": ("{name: s, uri: '{d}/broken.jsonl'}", ["broken.jsonl:2", "max_bad_fraction"]),
    "empty source": ("{name: s, uri: '{d}/empty.jsonl'}", ["produced no rows"]),
    "weight not positive": ("{name: s, uri: '{d}/rows.jsonl', weight: 0}", ["weight must be a positive number"]),
    "truncated gzip": ("{name: s, uri: '{d}/cut.jsonl.gz'}", ["cut.jsonl.gz as jsonl (gzip)", "EOFError"]),
    "not parquet": ("{name: s, uri: '{d}/fake.parquet'}", ["fake.parquet as parquet", "Parquet magic bytes"]),
    "parquet text null": ("{name: s, uri: '{d}/nulls.parquet'}", ["text field 'text' is null", "nulls.parquet#1"]),
    "no training tokens": ("{name: s, uri: '{d}/blank.jsonl'}", ["produced no training tokens", "is committed"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, bpe_dir):
    """Every bad case at once (each its own store), plus an unknown tokenizer offline."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path_factory.mktemp("bad")
    (base / "rows.jsonl").write_text('{"text": "fine"}\n' * 5)
    (base / "broken.jsonl").write_text('{"text": "fine"}\n{"text": broken\n' * 3)
    (base / "empty.jsonl").write_text("")
    (base / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"text": "fine"}\n' * 5000)[:60])
    (base / "fake.parquet").write_text('{"text": "JSON, not Parquet"}\n')
    pq.write_table(pa.Table.from_pylist([{"text": "fine"}, {"text": None}]), base / "nulls.parquet")
    (base / "blank.jsonl").write_text('{"text": ""}\n' * 5)
    (base / "conf" / "data").mkdir(parents=True)
    cases = {}
    for case, (source, _) in BAD.items():
        slug = case.replace(" ", "_")
        (base / "conf" / "data" / f"{slug}.yaml").write_text(
            f"tokenizer: {{name_or_path: {bpe_dir}}}\npretrain:\n  sources:\n    - {source.replace('{d}', str(base))}\n"
        )
        cases[case] = ([f"data={slug}"], _env())
    cases["unknown tokenizer offline"] = (
        ["data.tokenizer.name_or_path=nobody/no-such-tokenizer"],
        _env(HF_HUB_OFFLINE="1", HF_HOME=str(base / "hf")),
    )

    def run(case: str) -> subprocess.CompletedProcess[str]:
        overrides, env = cases[case]
        root = base / "stores" / case.replace(" ", "_")
        args = ["--config-dir", str(base / "conf"), "stage=pretrain_data", *overrides, "stage.workers=1"]
        return nemotron(*args, f"artifacts.manifest.root={root}", cwd=base, env=env), root

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(cases, pool.map(run, cases), strict=True))


@pytest.mark.parametrize("case", [*BAD, "unknown tokenizer offline"])
def test_bad_input_fails_clearly_and_commits_nothing(bad_runs, case):
    result, root = bad_runs[case]
    fragments = BAD[case][1] if case in BAD else ["'nobody/no-such-tokenizer'", "HF_HUB_OFFLINE=1"]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]
    assert not list(root.glob("*/v1/manifest.json"))


def test_blend_json_shape_weights_and_null_splits(tmp_path):
    from nemotron.data.pretrain import ShardReceipt, blend_per_split
    from nemotron.data.sources import BlendConfig

    blend = BlendConfig(sources=[{"name": "a", "uri": "x", "weight": 3}, {"name": "b", "uri": "y", "weight": 1}])
    receipts = []
    for source, split, index, tokens, sequences in [
        ("a", "train", 0, 300, 3), ("a", "train", 1, 100, 1), ("b", "train", 0, 50, 1),
        ("a", "test", 0, 10, 1), ("b", "test", 0, 0, 0),  # an empty shard is left out
    ]:  # fmt: skip
        prefix = f"shards/{source}/{split}/shard_{index:06d}"
        (tmp_path / prefix).parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".bin", ".idx"):
            Path(f"{tmp_path / prefix}{suffix}").write_bytes(b"")
        fields = {"source": source, "split": split, "index": index, "prefix": prefix, "tokens": tokens}
        fields |= {"documents": sequences, "sequences": sequences, "plan_hash": "p", "input_digest": ""}
        fields |= {"bin_bytes": 0, "idx_bytes": 0, "bin_digest": "", "idx_digest": ""}
        receipts.append(ShardReceipt(**fields))
    result = blend_per_split(blend, receipts, tmp_path)
    assert result == {
        "train": ["2.25", "shards/a/train/shard_000000", "0.75", "shards/a/train/shard_000001",
                  "1", "shards/b/train/shard_000000"],
        "valid": None,  # never [] (Megatron cannot unpack it)
        "test": ["3", "shards/a/test/shard_000000"],
    }  # fmt: skip
