"""`stage=pipeline` end to end on a very small configuration: every step runs as a real job, each step
consumes the exact versions its own pipeline produced, and the eval table is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.clitools import clean_env, manifest, nemotron_art, ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PER_STEP = {
    "pretrain": "steps:4,batch_size:4,eval_every:2,eval_batches:1",
    "sft": "steps:3,batch_size:2,eval_every:0,eval_batches:1",
    "rl": "steps:2,prompts_per_step:2,group_size:2,max_new_tokens:6,eval_every:0,eval_problems:4",
    "eval": "max_problems:1000,perplexity_batches:1,batch_size:128,max_new_tokens:6",  # both held-out sets
}
SMALL = [
    "scale.max_rows_per_source=300",
    "data.tokenizer.vocab_size=400",
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.num_kv_heads=2",
    "model.intermediate_size=64",
    "model.max_seq_len=128",
    *(
        f"+stage.overrides.{step}.{setting.replace(':', '=')}"
        for step, settings in PER_STEP.items()
        for setting in settings.split(",")
    ),
]


def start_pipeline(cwd: Path, root: Path, out: Path) -> subprocess.Popen[str]:
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root)
    command = [sys.executable, "-m", "nemotron", *SMALL, f"stage.output_dir={out}"]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict:
    stdout, stderr = process.communicate(timeout=800)
    assert process.returncode == 0, f"exit {process.returncode}\n{stdout}\n{stderr[-6000:]}"
    return stderr


def assert_drawn(path: Path) -> None:
    """A PNG of a readable size with something drawn on it: not one colour, not nearly all background."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 300 and image.height >= 200, (path, image.size)
        counts = image.convert("L").histogram()  # pixels per grey level
        background = max(range(256), key=counts.__getitem__)
        drawn = sum(n for level, n in enumerate(counts) if abs(level - background) > 30) / sum(counts)
    assert 0.01 < drawn < 0.9, (path, drawn)


def used(root: Path, uri: str) -> set[str]:
    name, version = uri.removeprefix("art://").split(":v")
    return set(manifest(root, name, int(version))["used_artifacts"])


def refs(node: dict) -> list[str]:
    """The names of a `lineage --format json` tree, its root included."""
    return [node["ref"].split(":")[0], *(name for child in node.get("inputs", []) for name in refs(child))]


def plain(uri: str) -> str:
    return uri.removeprefix("art://")


def test_pipeline_trains_evaluates_and_records_lineage(tmp_path: Path) -> None:
    root, out = tmp_path / "store", tmp_path / "pipeline"
    stderr = finish(start_pipeline(tmp_path, root, out))
    results = json.loads((out / "results.json").read_text())
    assert [row["stage"] for row in results["eval"]] == ["pretrain", "sft", "rl"]
    assert [(row["step"], row["trained_steps"]) for row in results["eval"]][:2] == [(4, 4), (3, 3)]
    assert results["eval"][2]["trained_steps"] == 2 and results["eval"][2]["step"] in (0, 2)  # rl: select_best
    for row in results["eval"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["perplexity"] > 1.0
        for kind in ("two_step", "fact"):  # the two held-out sets, side by side
            assert 0.0 <= row[f"accuracy_{kind}"] <= 1.0
            assert f"{row[f'accuracy_{kind}']:.1%}" in stderr  # the final table shows the numbers
    assert "3 held-out problems and each model's answer:" in stderr
    assert stderr.count("    pretrain ") == stderr.count("    rl ") == 3  # each model's answer to each problem
    pictures = [Path(results["figure"]), *(Path(row["plot"]) for row in results["eval"])]
    assert pictures[0] == out / "pipeline.png" and str(pictures[0]) in stderr  # linked from the table
    for picture in pictures:
        assert_drawn(picture)
    sft_rows = [json.loads(line) for line in Path(results["eval"][1]["history"]).read_text().splitlines()]
    assert all(row["text_loss"] > 0 for row in sft_rows if "loss" in row)  # SFT replays the pretraining text
    replayed = results["artifacts"]["pretrain_data"]["PretrainBlendsArtifact"]
    assert plain(replayed) in used(root, results["artifacts"]["sft"]["ModelArtifact"])  # and its lineage says so
    lineage = ok(nemotron_art("lineage", results["artifacts"]["rl"]["ModelArtifact"], "--format", "json", cwd=tmp_path,
                              env=clean_env(NEMOTRON_ARTIFACTS_ROOT=root)))  # fmt: skip
    names = set(refs(json.loads(lineage.stdout)))
    expected = {"rl-model-tiny", "sft-model-hf-tiny", "sft-model-tiny", "pretrain-model-tiny", "sft-data-tiny",
                "rl-data-tiny", "pretrain-data-tiny", "tokenizer-tiny"}  # fmt: skip
    assert expected <= names


def test_two_pipelines_at_once_each_chain_their_own_versions(tmp_path: Path) -> None:
    root = tmp_path / "store"
    runs = [start_pipeline(tmp_path, root, tmp_path / f"p{i}") for i in (1, 2)]
    for process in runs:
        finish(process)
    chains = [json.loads((tmp_path / f"p{i}" / "results.json").read_text())["artifacts"] for i in (1, 2)]
    assert chains[0]["rl"]["ModelArtifact"] != chains[1]["rl"]["ModelArtifact"]
    for chain in chains:
        pretrain, sft, rl = (chain[step]["ModelArtifact"] for step in ("pretrain", "sft", "rl"))
        assert plain(chain["pretrain_data"]["PretrainBlendsArtifact"]) in used(root, pretrain)
        assert {plain(pretrain), plain(chain["sft_data"]["SFTDataArtifact"])} <= used(root, sft)
        converted = chain["convert"]["ModelArtifact"]  # the SFT model handed on as a Hugging Face model
        assert plain(sft) in used(root, converted)
        assert {plain(converted), plain(chain["rl_data"]["SplitJsonlDataArtifact"])} <= used(root, rl)
        # the SFT data was tokenized with this pipeline's own pretraining tokenizer
        assert plain(chain["pretrain_data"]["TokenizerArtifact"]) in used(root, chain["sft_data"]["SFTDataArtifact"])


@pytest.mark.unit
def test_examples_show_the_first_problem_then_what_the_last_stage_changed() -> None:
    from nemotron.stages.pipeline import _example_indices

    def stage(right: list[int]) -> list[dict]:
        kinds = ["two_step"] * 5 + ["fact"] * 2
        return [{"kind": kind, "correct": i in right} for i, kind in enumerate(kinds)]

    sft, rl = stage([0, 1]), stage([0, 1, 3])  # RL changed problem 3
    assert _example_indices([sft, rl], 3) == [0, 3, 5]
    assert _example_indices([sft, sft], 3) == [0, 1, 5]  # nothing changed: the first ones
    assert _example_indices([rl, sft], 4) == [0, 3, 1, 5]  # a change for the worse is shown too
