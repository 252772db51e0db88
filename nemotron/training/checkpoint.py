"""Checkpoints inside the run's output directory, and finding the one a restarted run resumes from.

    {out}/train_state.json               what this run is (a hash of its config) and whether it finished
    {out}/checkpoints/step_000100/       a Hugging Face checkpoint (model + tokenizer) plus trainer.pt
                                         (optimizer state, RNG) and state.json (step, loss, best evaluation);
                                         with select_best, best_model/ (the best model so far)
    {out}/model/                         the final model: the directory the ModelArtifact points at

A checkpoint is written to a temporary directory and renamed into place, so a run killed mid-write leaves
no half checkpoint. With `resume: auto`, a run looks for an *unfinished* run of the same config (same
stage parameters and same pinned inputs) in its own output dir and its siblings (`outputs/pretrain/*`:
restarting the same command), and continues from its last checkpoint; its own checkpoints go to its own
directory, so the interrupted run's files are never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError

STATE_FILE = "train_state.json"
TRAINER_FILE = "trainer.pt"
BEST_MODEL = "best_model"


def config_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_run_state(out: Path, config: str, finished: bool) -> None:
    tmp = out / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"config_hash": config, "finished": finished}) + "\n")
    os.replace(tmp, out / STATE_FILE)


def save_checkpoint(out: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, state: dict[str, Any],
                    best_model: Path | None = None) -> Path:  # fmt: skip
    """`{out}/checkpoints/step_{step}`, written atomically; `best_model` is kept in it as `best_model/`."""
    import torch

    final = out / "checkpoints" / f"step_{step:06d}"
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    if best_model is not None:
        copy_model(best_model, tmp / BEST_MODEL)
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, tmp / TRAINER_FILE)
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}) + "\n")
    os.replace(tmp, final)
    return final


def save_model(model: Any, tokenizer: Any, directory: Path) -> None:
    """A standard Hugging Face directory: config.json, model.safetensors and the tokenizer files."""
    from transformers.utils import logging

    logging.disable_progress_bar()  # a bar per save would bury the training progress bar
    model.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))


def save_model_atomically(model: Any, tokenizer: Any, directory: Path) -> None:
    """Replace `directory` with a fresh save of the model: a reader never sees half of one."""
    tmp = directory.with_name(f".{directory.name}.tmp")
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def copy_model(source: Path, destination: Path) -> None:
    """A model directory copied atomically, by hard links where possible (saved files are never rewritten in
    place: a new save replaces the directory)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    tmp = destination.with_name(f".{destination.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=link_or_copy)
    os.replace(tmp, destination)


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = sorted(p for p in (run_dir / "checkpoints").glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_trainer_state(checkpoint: Path, optimizer: Any) -> dict[str, Any]:
    """Restore the optimizer and RNG from a checkpoint (the weights are loaded with the model); its state."""
    import torch

    saved = torch.load(checkpoint / TRAINER_FILE, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return json.loads((checkpoint / "state.json").read_text())


def find_resume_checkpoint(resume: str, out: Path, config: str) -> Path | None:
    """The checkpoint to continue from: `never`, `auto` (an unfinished run of this config), or a path."""
    if resume == "never":
        return None
    if resume != "auto":
        path = Path(resume).expanduser()
        checkpoint = path if (path / "state.json").is_file() else latest_checkpoint(path)
        if checkpoint is None:
            raise NemotronError(
                f"stage.resume={resume}: no checkpoint there. Give a checkpoint directory (checkpoints/step_N, "
                "holding state.json and trainer.pt) or a run's output directory that has checkpoints, or use "
                "stage.resume=auto / never."
            )
        return checkpoint
    candidates = []
    for run_dir in [out, *sorted(p for p in out.parent.iterdir() if p.is_dir() and p != out)]:
        state = _run_state(run_dir)
        checkpoint = latest_checkpoint(run_dir)
        if state and state["config_hash"] == config and not state["finished"] and checkpoint:
            candidates.append(checkpoint)
    return max(candidates, key=lambda c: c.name, default=None)


def _run_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
