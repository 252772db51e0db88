"""`stage=sft_data`: packed Parquet that unpacks to the tokenized conversations, the shifted assistant mask,
packing efficiency, the formats.md 5.5 layout, `${art:data,pack_size}`, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nemotron.data.sft import ChatTokenizer, Tokenized, pack, pack_sequences, shift_mask, unpack
from nemotron.data.synthetic import sft_conversations

CONF = Path(__file__).resolve().parents[2] / "conf"

pytestmark = pytest.mark.integration

TIMEOUT_S = 120


def nemotron(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nemotron", *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, input=""
    )


@pytest.fixture(scope="module")
def chat(bpe_dir) -> ChatTokenizer:
    from transformers import AutoTokenizer

    return ChatTokenizer(AutoTokenizer.from_pretrained(bpe_dir))


def test_the_mask_covers_exactly_the_assistant_turns(chat):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "And 4 * 4?"},
        {"role": "assistant", "content": "4 * 4 = 16."},
    ]
    (sequence,) = chat.encode([messages])
    tokenizer = chat.tokenizer
    assert sequence.input_ids == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    trained = [tokenizer.decode([t]) for t, m in zip(sequence.input_ids, sequence.mask, strict=True) if m]
    assert "".join(trained) == "2 + 3 = 5.<|im_end|>\n4 * 4 = 16.<|im_end|>\n"
    assert shift_mask([0, 1, 1, 0, 1]) == [1, 1, 0, 1, 0]


@pytest.mark.parametrize("algorithm", ["first_fit_decreasing", "first_fit_shuffle"])
def test_packed_rows_unpack_to_the_conversations_with_shifted_masks(chat, algorithm):
    sequences = chat.encode([row["messages"] for row in sft_conversations(5000, seed=3)])
    rows = pack_sequences(sequences, 2048, algorithm, "truncate", seed=5)
    assert rows.sequences == 5000 and rows.truncated == rows.dropped == 0
    assert rows.efficiency >= 0.98
    unpacked = []
    for ids, mask, starts in zip(rows.input_ids, rows.loss_mask, rows.seq_start_id, strict=True):
        assert len(ids) == len(mask) <= 2048 and starts[0] == 0 and starts == sorted(starts)
        for sub_ids, sub_mask in unpack(ids, mask, starts):
            assert sub_mask[-1] == 0
            unpacked.append((tuple(sub_ids), tuple(sub_mask)))
    expected = [(tuple(s.input_ids), tuple(shift_mask(s.mask))) for s in sequences]
    assert sorted(unpacked) == sorted(expected)


def test_first_fit_places_each_item_in_the_first_bin_with_room():
    assert pack([6, 5, 4, 3, 2], 10, "first_fit_decreasing") == [[0, 2], [1, 3, 4]]
    bins = pack([3] * 7 + [10], 10, "first_fit_shuffle", seed=1)
    assert sorted(i for b in bins for i in b) == list(range(8)) and len(bins) == 4


def test_overlong_sequences_are_truncated_or_dropped_and_counted():
    sequences = [Tokenized(list(range(n)), [1] * n) for n in (3, 12, 5)]
    truncated = pack_sequences(sequences, 8, "first_fit_decreasing", "truncate")
    assert truncated.truncated == 1 and truncated.sequences == 3 and max(map(len, truncated.input_ids)) == 8
    dropped = pack_sequences(sequences, 8, "first_fit_decreasing", "drop")
    assert dropped.dropped == 1 and dropped.sequences == 2 and dropped.tokens == 8


# -- the stage, in subprocesses ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sft")
    result = nemotron("stage=sft_data", f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


def test_tiny_run_writes_megatron_bridge_packed_parquet(tiny_run):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    cwd, result = tiny_run
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["uri"] for line in lines] == ["art://sft-tokenizer-tiny:v1", "art://sft-data-tiny:v1"]
    fields = json.loads((cwd / "store" / "sft-data-tiny" / "v1" / "manifest.json").read_text())["metadata"]
    assert fields["tokenizer_uri"] == "art://sft-tokenizer-tiny:v1" and fields["pack_size"] == 2048
    rows = sum(source.num_rows for source in OmegaConf.load(CONF / "data" / "tiny.yaml").sft.sources)
    assert fields["total_sequences"] == rows  # every conversation packed (the efficiency per split: below)
    data = Path(fields["path"])
    metadata = json.loads((data / "metadata.json").read_text())
    assert metadata["splits"]["train"]["packing_efficiency"] >= 0.98
    train, valid = json.loads((data / "2048_metadata.jsonl").read_text())  # one JSON array, as Megatron-Bridge's
    assert train["pack_size"] == 2048 and train["packing_efficiency"] >= 98 and valid["max_samples_per_bin"] >= 1
    assert 0 < train["dataset_max_seqlen"] <= train["min_packed_seqlen"] <= 2048

    blend = json.loads((data / "blend.json").read_text())
    assert list(blend) == ["train", "valid", "test"]
    tokenizer = AutoTokenizer.from_pretrained(str(data.parent / "tokenizer"))
    for split in ("train", "valid", "test"):
        files = sorted((data / "splits" / split).iterdir())
        assert blend[split][1::2] == [f.relative_to(data).as_posix()[: -len(".parquet")] for f in files]  # relative
        for file in files:
            assert file.is_symlink() and not Path(file.readlink()).is_absolute()
            assert file.resolve().parent.parent.parent.parent.parent.name == "runs"
            table = pq.read_table(file)
            assert table.schema.field("input_ids").type == pa.list_(pa.int32())
            assert table.schema.field("loss_mask").type == pa.list_(pa.uint8())
            assert table.schema.field("seq_start_id").type == pa.list_(pa.int32())
            row = table.slice(0, 1).to_pylist()[0]
            assert len(row["input_ids"]) <= 2048
            first, mask = next(unpack(row["input_ids"], row["loss_mask"], row["seq_start_id"]))
            text = tokenizer.decode(first)
            assert text.startswith("<|im_start|>user\n") and "<|im_start|>assistant\n" in text
            trained = tokenizer.decode([t for t, m in zip(first[1:], mask, strict=False) if m])
            assert trained == text.split("<|im_start|>assistant\n")[1]
    assert "sft data" in result.stderr and "efficiency" in result.stderr


def test_pack_size_resolves_as_an_int(tiny_run):
    import yaml

    cwd, _ = tiny_run
    result = nemotron(
        "stage=sft_data", f"artifacts.manifest.root={cwd / 'store'}", "+run.data=sft-data-tiny",
        "+check.pack_size=${art:data,pack_size}", "--cfg=job", "--resolve", cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert yaml.safe_load(result.stdout)["check"]["pack_size"] == 2048


USER = {"role": "user", "content": "2 + 2"}
BAD_ROWS = {  # file name -> its JSON lines (the second is the bad one)
    "role.jsonl": [[USER, {"role": "assistant", "content": "4"}], [USER, {"role": "robot", "content": "4"}]],
    "empty.jsonl": [
        [USER, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": ""}, {"role": "assistant", "content": " "}],
    ],  # fmt: skip
    "null.jsonl": [[USER, {"role": "assistant", "content": "4"}], None],
}


def _source(name: str) -> str:
    return f"data.sft.sources=[{{name: s, uri: '{{d}}/{name}'}}]"


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["stage.pack_size=4"], ["stage.pack_size=4 is smaller than the chat template's minimum"]),
        (["stage.messages_field=conversation"], ["has no 'conversation' field", "synthetic:arithmetic-chat#0"]),
        (
            ["stage.pack_size=20", "stage.overlong=drop"],
            ["made no training rows", "were longer than stage.pack_size=20", "stage.overlong=drop dropped them"],
        ),  # fmt: skip
        ([_source("role.jsonl")], ["role.jsonl:2", "the role 'robot'"]),
        ([_source("empty.jsonl")], ["empty.jsonl:2", "Every message", "is empty"]),
        ([_source("null.jsonl")], ["null.jsonl:2", "'messages' field", "is null"]),
    ],
    ids=[
        "pack_size too small",
        "missing messages field",
        "every conversation dropped",
        "unknown role",
        "only empty contents",
        "null messages",
    ],  # fmt: skip
)
def test_bad_input_fails_clearly_and_commits_nothing(tmp_path, bpe_dir, overrides, fragments):
    for name, rows in BAD_ROWS.items():
        (tmp_path / name).write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    root = tmp_path / "store"
    args = ["stage=sft_data", f"data.tokenizer.name_or_path={bpe_dir}", f"artifacts.manifest.root={root}"]
    result = nemotron(*args, *[o.replace("{d}", str(tmp_path)) for o in overrides], cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in " ".join(result.stderr.split()), result.stderr[-2000:]
    assert not root.exists() or not list(root.iterdir())


def test_the_pretraining_tokenizer_artifact_is_reused_and_recorded(tmp_path, bpe_dir):
    store = f"artifacts.manifest.root={tmp_path / 'store'}"
    register = ["stage=register", f"stage.path={bpe_dir}", "stage.name=tokenizer-tiny", "stage.type=TokenizerArtifact"]
    result = nemotron(*register, "+stage.fields.vocab_size=400", store, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    args = ["stage=sft_data", "+run.tokenizer=tokenizer-tiny", "data.tokenizer.name_or_path=${art:tokenizer,path}"]
    args += ["stage.tokenizer_uri=${art:tokenizer,uri}", "scale.max_rows_per_source=500"]
    result = nemotron(*args, store, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [json.loads(line)["uri"] for line in result.stdout.splitlines()] == ["art://sft-data-tiny:v1"]
    manifest = json.loads((tmp_path / "store" / "sft-data-tiny" / "v1" / "manifest.json").read_text())
    assert manifest["used_artifacts"] == ["tokenizer-tiny:v1"]
    assert manifest["metadata"]["tokenizer_uri"] == "art://tokenizer-tiny:v1"


def _packed_files(data: Path) -> dict[str, bytes | str]:
    """Every file of an SFT data dir (links as their targets), its run hash made neutral."""
    files: dict[str, bytes | str] = {}
    for path in sorted(data.rglob("*")):
        name = str(path.relative_to(data))
        if path.is_symlink():
            files[name] = str(path.readlink())
        elif path.is_file():
            files[name] = path.read_bytes()
    return files


def test_two_tasks_pack_the_same_files_as_one(tmp_path):
    """launcher=submitit_local with 2 tasks: each packs its own source, rank 0 links and commits once."""
    small = ["stage=sft_data", "scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400"]
    runs = {}
    for tasks in (1, 2):
        cwd = tmp_path / f"tasks{tasks}"
        cwd.mkdir()
        launcher = ["launcher=submitit_local", f"launcher.tasks_per_node={tasks}"]
        result = nemotron(*small, *launcher, f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd)
        assert result.returncode == 0, result.stderr[-3000:]
        assert sorted(p.parent.parent.name for p in (cwd / "store").glob("*/v*/manifest.json")) == [
            "sft-data-tiny", "sft-tokenizer-tiny"]  # fmt: skip
        (data,) = cwd.glob("multirun/*/*/0/data")
        runs[tasks] = _packed_files(data)
    assert len([name for name in runs[2] if name.endswith(".parquet")]) >= 4
    assert runs[2] == runs[1]


def test_an_s3_output_holds_the_files_with_the_links_as_copies(tmp_path):
    pytest.importorskip("s3fs", reason="s3:// outputs need the s3 extra: pip install -e '.[dev]'")
    import os

    import fsspec
    from helpers.s3server import moto_s3, s3_env

    small = ["stage=sft_data", "scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400"]
    with moto_s3("sft-bucket") as endpoint:
        env = {**os.environ, **s3_env(endpoint)}
        result = subprocess.run(
            [sys.executable, "-m", "nemotron", *small, "stage.output_dir=s3://sft-bucket/run",
             f"artifacts.manifest.root={tmp_path / 'store'}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, input="",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        manifest = json.loads((tmp_path / "store" / "sft-data-tiny" / "v1" / "manifest.json").read_text())
        assert manifest["path"] == "s3://sft-bucket/run/data"
        (local,) = tmp_path.glob("outputs/*/*/data")  # where the job made them
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, key=env["AWS_ACCESS_KEY_ID"],
                               secret=env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        blend = json.loads(fs.cat_file("sft-bucket/run/data/blend.json"))
        for prefix in blend["train"][1::2]:
            assert fs.cat_file(f"sft-bucket/run/data/{prefix}.parquet") == (local / f"{prefix}.parquet").read_bytes()
        assert fs.exists("sft-bucket/run/tokenizer/tokenizer.json")


def test_a_requeued_job_packs_again_in_its_own_directory(tmp_path):
    """SLURM_RESTART_COUNT > 0 (what a requeued job sees): the same output dir is packed again, same files."""
    import os

    small = ["stage=sft_data", "scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400"]
    out = tmp_path / "job"
    first = nemotron(*small, f"stage.output_dir={out}", f"artifacts.manifest.root={tmp_path / 's1'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _packed_files(out / "data")
    store = f"artifacts.manifest.root={tmp_path / 's2'}"
    requeued = subprocess.run(
        [sys.executable, "-m", "nemotron", *small, f"stage.output_dir={out}", store],
        cwd=tmp_path, env={**os.environ, "SLURM_RESTART_COUNT": "1"}, capture_output=True, text=True,
        timeout=TIMEOUT_S, input="",
    )  # fmt: skip
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert _packed_files(out / "data") == before
