"""Training-loop overhead: `stage=pretrain` against a plain `transformers` forward/backward loop.

    python bench/train_tiny.py                 # model=tiny, 60 steps of 16 x 256 tokens
    python bench/train_tiny.py --steps 200 --batch-size 8

Both train the same model (model=tiny, the same initial weights) with the same batch shape, AdamW and
gradient clipping, on the same CPU threads:

    ours    `python -m nemotron stage=pretrain` in a subprocess, on data from `stage=pretrain_data`: token
            windows read from .bin/.idx, the learning-rate schedule, metrics, progress bar (no validation and
            no intermediate checkpoints, which are periodic costs a user chooses). Its tokens/s is the one
            the stage records: tokens over the time spent in training steps (evaluation and saving excluded).
    plain   `loss = model(input_ids, labels=input_ids).loss; loss.backward(); clip; step` on one batch of
            random token ids held in memory: the same arithmetic with no data path and no bookkeeping.

The two run alternately, `--repeats` times each, and the best of each counts. It prints tokens/s of
each and the ratio plain/ours. Target: ours within 1.2x of plain (ratio <= 1.2);
exit status 1 if missed. The first steps of the plain loop are a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.2


def nemotron(cwd: Path, *args: str) -> dict:
    """Run a stage; the JSON line of the artifact it committed last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
    env["NEMOTRON_ARTIFACTS_ROOT"] = str(cwd / "store")
    result = subprocess.run([sys.executable, "-m", "nemotron", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    if result.returncode:
        sys.exit(f"python -m nemotron {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def manifest(cwd: Path, artifact: dict) -> dict:
    return json.loads((cwd / "store" / artifact["name"] / f"v{artifact['version']}" / "manifest.json").read_text())


def run_ours(cwd: Path, steps: int, batch_size: int, seq_len: int) -> float:
    model = nemotron(cwd, "stage=pretrain", f"stage.steps={steps}", f"stage.batch_size={batch_size}",
                     f"model.max_seq_len={seq_len}", "stage.eval_every=0", "stage.checkpoint_every=0",
                     "stage.warmup_steps=5")  # fmt: skip
    return manifest(cwd, model)["metadata"]["metadata"]["tokens_per_s"]


def run_plain(tokenizer_dir: str, steps: int, batch_size: int, seq_len: int, warmup: int = 5) -> float:
    import torch

    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.training.model import TinyModelConfig, build_model

    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_model(TinyModelConfig(max_seq_len=seq_len), tokenizer).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    input_ids = torch.randint(0, len(tokenizer), (batch_size, seq_len))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = model(input_ids=input_ids, labels=input_ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * batch_size * seq_len / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        cwd = Path(tmp)
        data = manifest(cwd, nemotron(cwd, "stage=pretrain_data"))
        tokenizer_dir = manifest(cwd, {"name": "tokenizer-tiny", "version": 1})["path"]
        print(f"data: {data['metadata']['total_tokens']:,} tokens; torch threads: {torch.get_num_threads()}")
        plain, ours = 0.0, 0.0
        for _ in range(args.repeats):  # alternated, best of each: a busy machine slows both alike
            plain = max(plain, run_plain(tokenizer_dir, args.steps, args.batch_size, args.seq_len))
            ours = max(ours, run_ours(cwd, args.steps, args.batch_size, args.seq_len))
    ratio = plain / ours
    print(f"{'plain transformers loop':<26}{plain:>12,.0f} tokens/s")
    print(f"{'ours (stage=pretrain)':<26}{ours:>12,.0f} tokens/s")
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"ratio plain/ours: {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
