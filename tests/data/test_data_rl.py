"""`stage=rl_data`: NeMo-RL math JSONL (problem / expected_answer) or input / output, disjoint splits with the
held-out problems in test, manifest.json, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.arithmetic import problem_of

pytestmark = pytest.mark.integration

TIMEOUT_S = 120


def nemotron(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nemotron", *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, input=""
    )


def _rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _response_dataset_messages(path: str, input_key: str, output_key: str) -> list[list[dict]]:
    """What NeMo-RL's ResponseDataset makes of a JSONL file (read as HF's json builder does, with pyarrow):
    `{"messages": [user: row[input_key], assistant: row[output_key]]}`; math_hf_data_processor then takes
    messages[0] as the problem and messages[1] as the ground truth."""
    import pyarrow.json as pj

    table = pj.read_json(path)
    return [
        [{"role": "user", "content": row[input_key]}, {"role": "assistant", "content": row[output_key]}]
        for row in table.to_pylist()
    ]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("rl")
    result = nemotron("stage=rl_data", f"artifacts.manifest.root={cwd / 'store'}", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    fields = json.loads((cwd / "store" / "rl-data-tiny" / "v1" / "manifest.json").read_text())["metadata"]
    return cwd, fields


def test_the_jsonl_loads_with_the_math_processor_field_names(tiny_run):
    _, fields = tiny_run
    manifest = json.loads((Path(fields["path"]) / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("train", "val", "test")} == {k: fields[k] for k in ("train", "val", "test")}
    assert (manifest["input_key"], manifest["output_key"]) == ("problem", "expected_answer")
    total = 0
    for split in ("train", "val", "test"):
        assert Path(fields[split]).is_absolute() and Path(fields[split]).name == f"{split}.jsonl"
        assert all(set(row) == {"problem", "expected_answer", "kind"} for row in _rows(fields[split]))
        messages = _response_dataset_messages(fields[split], "problem", "expected_answer")
        for user, assistant in messages:
            assert user["content"] and isinstance(assistant["content"], str) and assistant["content"].isdigit()
        total += len(messages)
    assert total == fields["total_sequences"] > 1500


def test_splits_do_not_overlap_and_heldout_problems_are_in_test(tiny_run):
    _, fields = tiny_run
    problems = {split: [row["problem"] for row in _rows(fields[split])] for split in ("train", "val", "test")}
    for split, rows in problems.items():
        assert len(rows) == len(set(rows)), split
    assert not set(problems["train"]) & set(problems["val"])
    assert not set(problems["train"]) & set(problems["test"])
    assert not set(problems["val"]) & set(problems["test"])

    assert all(problems.values())
    assert {problem_of(p).split for p in problems["train"]} == {"train"}
    assert {problem_of(p).split for p in problems["val"]} == {"valid"}  # selected on: neither trained on nor tested
    assert {problem_of(p).split for p in problems["test"]} == {"heldout"}
    by_source = {s["source"]: s for s in fields["metadata"]["source_splits"]}
    for name in ("two-step-heldout", "facts-heldout"):
        assert by_source[name]["train"] == by_source[name]["val"] == 0
    assert by_source["two-step-heldout"]["test"] > 250 and by_source["facts-heldout"]["test"] > 80
    assert by_source["two-step-valid"]["train"] == by_source["two-step-valid"]["test"] == 0
    assert by_source["two-step-valid"]["val"] > 100  # fewer than 200: duplicate problems dropped
    kinds = {split: {row["kind"] for row in _rows(fields[split])} for split in ("train", "val", "test")}
    assert kinds == {"train": {"two_step"}, "val": {"two_step"}, "test": {"two_step", "fact"}}


def test_input_output_form_and_bad_input(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"question": "2 + 2", "answer": 4}\n' * 3 + '{"question": "1 + 1"}\n')
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "local.yaml").write_text(
        f"rl:\n  sources:\n    - {{name: mine, uri: '{tmp_path}/rows.jsonl'}}\n"
        "  splits: {train: 1, valid: 0, test: 0}\n"
    )
    args = ["--config-dir", str(tmp_path / "conf"), "data=local", "stage=rl_data", "scale=full"]
    args += ["stage.format=input_output", "stage.problem_field=question", "stage.answer_field=answer"]
    bad = nemotron(*args, f"artifacts.manifest.root={tmp_path / 'bad'}", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and bad.stdout == ""
    assert "rows.jsonl:4 has no 'answer' field" in bad.stderr, bad.stderr[-2000:]
    assert not list((tmp_path / "bad").glob("*/v1/manifest.json"))

    (tmp_path / "rows.jsonl").write_text('{"question": "2 + 2", "answer": 4}\n{"question": "3 + 3", "answer": 6}\n')
    good = nemotron(*args, f"artifacts.manifest.root={tmp_path / 'good'}", cwd=tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    fields = json.loads((tmp_path / "good" / "rl-data" / "v1" / "manifest.json").read_text())["metadata"]
    assert _rows(fields["train"]) == [{"input": "2 + 2", "output": "4"}, {"input": "3 + 3", "output": "6"}]
    assert fields["val"] is None and fields["test"] is None
    assert _response_dataset_messages(fields["train"], "input", "output")[0][1]["content"] == "4"


BAD_RL = {  # case: (rows.jsonl, split fractions, what the message says)
    "expected_answer null": ('{"problem": "2 + 2", "expected_answer": "4"}\n'
                             '{"problem": "1 + 1", "expected_answer": null}\n',
                             "{train: 1, valid: 0, test: 0}", ["rows.jsonl:2", "'expected_answer'", "is null"]),
    "no train rows": ('{"problem": "2 + 2", "expected_answer": "4"}\n', "{train: 0, valid: 0, test: 1}",
                      ["wrote no training rows", "1 row(s) in all", "nothing is committed"]),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_RL)
def test_bad_rows_fail_clearly_and_commit_nothing(tmp_path, case):
    rows, splits, fragments = BAD_RL[case]
    (tmp_path / "rows.jsonl").write_text(rows)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "local.yaml").write_text(
        f"rl:\n  sources:\n    - {{name: mine, uri: '{tmp_path}/rows.jsonl'}}\n  splits: {splits}\n"
    )
    root = tmp_path / "store"
    args = ["--config-dir", str(tmp_path / "conf"), "data=local", "stage=rl_data", "scale=full"]
    result = nemotron(*args, f"artifacts.manifest.root={root}", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in " ".join(result.stderr.split()), result.stderr[-2000:]
    assert not root.exists() or not list(root.iterdir())
