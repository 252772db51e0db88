"""The training stages run as a user runs them: `python -m nemotron stage=...` in a subprocess on a real store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.clitools import json_line, ok, tree
from helpers.training_store import SMALL_MODEL, Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SHORT = ["stage.batch_size=4", "stage.eval_every=3", "stage.eval_batches=1", "stage.checkpoint_every=3"]


@pytest.fixture(scope="module")
def pretrained(store: Store) -> dict:
    """A 6-step pretrain of the small model: `pretrain-model-tiny:v1`."""
    return store.make("pretrain", *SMALL_MODEL, "stage.steps=6", *SHORT)


def test_checkpoints_are_hugging_face_directories_that_generate(store: Store, pretrained: dict) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(pretrained["path"])
    run_dir = model_dir.parent
    assert (run_dir / "checkpoints" / "step_000003" / "trainer.pt").is_file()
    assert (run_dir / "loss.png").stat().st_size > 0
    for directory in (model_dir, run_dir / "checkpoints" / "step_000003"):
        model = AutoModelForCausalLM.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        prompt = tokenizer("12 + 7 =", return_tensors="pt")
        generated = model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert generated.shape[1] > prompt["input_ids"].shape[1]
        assert isinstance(tokenizer.decode(generated[0]), str)
    record = json.loads((store.root / "pretrain-model-tiny" / "v1" / "manifest.json").read_text())
    assert record["metadata"]["step"] == 6 and record["metadata"]["final_loss"] > 0


def _first_checkpoint(cwd: Path) -> Path | None:
    found = sorted(cwd.glob("outputs/pretrain/*/checkpoints/step_*/state.json"))
    return found[0] if found else None


def test_a_killed_pretrain_resumes_from_its_checkpoint(store: Store, tmp_path: Path) -> None:
    """Kill a run after its first checkpoint, run the same command again: it resumes and ends like an
    uninterrupted run (same step count, the same loss within float noise)."""
    args = ["stage=pretrain", "model.max_seq_len=64", "stage.steps=60", "stage.checkpoint_every=10",
            "stage.batch_size=4", "stage.eval_every=20", "stage.eval_batches=1", "stage.name=resume-model"]  # fmt: skip
    reference_cwd, killed_cwd = tmp_path / "reference", tmp_path / "killed"
    reference_cwd.mkdir(), killed_cwd.mkdir()
    ran = ok(store.run(*args, "stage.resume=never", cwd=reference_cwd))
    reference = json_line(ran)
    # stderr is a pipe, not a terminal: plain progress lines at a steady interval instead of a bar
    lines = re.findall(r"^resume-model: step (\d+)/60 .*loss [\d.]+.*tokens/s, ETA", ran.stderr, re.MULTILINE)
    assert len(lines) >= 3 and lines[-1] == "60", ran.stderr[-3000:]

    process = subprocess.Popen([sys.executable, "-m", "nemotron", *args], cwd=killed_cwd, env=store.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while _first_checkpoint(killed_cwd) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed after its first checkpoint"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (store.root / "resume-model-tiny" / "v2").exists()  # the killed run committed nothing

    restarted = store.run(*args, cwd=killed_cwd)
    resumed = json_line(ok(restarted))
    assert "Resuming from" in restarted.stderr and "checkpoints/step_" in restarted.stderr
    ours = json.loads((store.root / "resume-model-tiny" / f"v{resumed['version']}" / "manifest.json").read_text())
    theirs = json.loads((store.root / "resume-model-tiny" / f"v{reference['version']}" / "manifest.json").read_text())
    assert ours["metadata"]["step"] == theirs["metadata"]["step"] == 60
    assert ours["metadata"]["metadata"]["resumed_from"]
    assert ours["metadata"]["final_loss"] == pytest.approx(theirs["metadata"]["final_loss"], rel=1e-3)
    assert ours["metadata"]["metadata"]["val_loss"] == pytest.approx(theirs["metadata"]["metadata"]["val_loss"],
                                                                     rel=1e-3)  # fmt: skip


def _fails_clearly(store: Store, result: subprocess.CompletedProcess[str], message: str, before: dict) -> None:
    assert result.returncode != 0, result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert tree(store.root) == before  # nothing committed


def test_sft_given_pretraining_data_is_refused(store: Store, pretrained: dict) -> None:
    before = tree(store.root)
    result = store.run("stage=sft", f"run.model={pretrained['uri']}", "run.data=pretrain-data-tiny:latest")
    _fails_clearly(store, result, "PretrainBlendsArtifact", before)
    assert "SFTDataArtifact" in result.stderr


def test_sft_data_from_another_tokenizer_is_refused(store: Store, pretrained: dict) -> None:
    other = store.make("sft_data", "stage.name=sft-data-own-tokenizer", "stage.pack_size=64")
    before = tree(store.root)
    result = store.run("stage=sft", f"run.model={pretrained['uri']}", f"run.data={other['uri']}", *SHORT)
    _fails_clearly(store, result, "was tokenized with a different tokenizer", before)


def test_a_model_artifact_without_a_checkpoint_is_refused(store: Store, tmp_path: Path) -> None:
    empty = tmp_path / "empty-checkpoint"
    empty.mkdir()
    (empty / "README").write_text("no weights here\n")
    registered = store.make("register", f"stage.path={empty}", "stage.name=empty-model", "stage.type=ModelArtifact",
                            "+stage.fields.step=0")  # fmt: skip
    before = tree(store.root)
    result = store.run("stage=sft", f"run.model={registered['uri']}")
    _fails_clearly(store, result, "No model checkpoint in", before)


def test_cuda_without_a_gpu_is_refused_before_any_work(store: Store, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    before = tree(store.root)
    result = store.run("stage=pretrain", "device=cuda", cwd=tmp_path)
    _fails_clearly(store, result, "torch sees no CUDA GPU here", before)
    assert not list(tmp_path.glob("outputs/pretrain/*/checkpoints"))


# -- bad settings and diverging runs: a clear paragraph, a non-zero exit, nothing committed --------------------

DIVERGE = ["stage.lr=1e6", "stage.warmup_steps=0", "stage.steps=8"]
BAD_TRAINING = {  # case: (arguments, what the message says)
    "pretrain diverges": (["stage=pretrain", *SMALL_MODEL, *SHORT, *DIVERGE],
                          "more than stage.max_skipped_steps=3. The model diverged, so nothing is committed"),
    "pretrain lr inf": (["stage=pretrain", *SMALL_MODEL, "stage.lr=inf"], "lr: Input should be a finite number"),
    "pretrain seq_len 0": (["stage=pretrain", *SMALL_MODEL, "stage.seq_len=0"], "seq_len: Input should be greater"),
    "pretrain batch_size 0": (["stage=pretrain", *SMALL_MODEL, "stage.batch_size=0"],
                              "batch_size: Input should be greater than 0"),
    "pretrain seq_len past the positions": (["stage=pretrain", *SMALL_MODEL, "stage.seq_len=128"],
                                            "stage.seq_len=128 is longer than the model's maximum positions"),
    "sft diverges": (["stage=sft", *SHORT, *DIVERGE, "stage.lr=1e30"], "The model diverged, so nothing is committed"),
    "sft lr overflows": (["stage=sft", *SHORT, *DIVERGE, "stage.lr=1e38"], "overflows the optimizer's float32 step"),
    "sft batch_size 0": (["stage=sft", "stage.batch_size=0"], "batch_size: Input should be greater than 0"),
    # eval reads the positions from the checkpoint's config.json (64 here), whatever model.max_seq_len says
    "eval seq_len past the positions": (["stage=eval", "stage.seq_len=128"],
                                        "stage.seq_len=128 is longer than the model's maximum positions (64"),
    "eval too large for the CPU": (["stage=eval", "device=cpu", "stage.seq_len=64", "stage.max_cpu_params=1000"],
                                   "parameters, more than stage.max_cpu_params=1000 for device=cpu"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_TRAINING)
def test_bad_training_settings_fail_clearly(store: Store, pretrained: dict, tmp_path: Path, case: str) -> None:
    args, message = BAD_TRAINING[case]
    if args[0] in ("stage=sft", "stage=eval"):
        args = [*args, f"run.model={pretrained['uri']}"]
    before = tree(store.root)
    _fails_clearly(store, store.run(*args, cwd=tmp_path), message, before)


def test_sft_data_packed_past_the_model_positions_is_refused(store: Store, pretrained: dict) -> None:
    long_rows = store.make("sft_data", "data.tokenizer.name_or_path=${art:tokenizer-tiny:latest,path}",
                           "stage.tokenizer_uri=${art:tokenizer-tiny:latest,uri}", "stage.pack_size=128",
                           "stage.name=sft-data-long")  # fmt: skip
    before = tree(store.root)
    result = store.run("stage=sft", f"run.model={pretrained['uri']}", f"run.data={long_rows['uri']}")
    _fails_clearly(store, result, "packs rows of 128 tokens (pack_size), more than the model", before)
