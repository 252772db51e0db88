"""The embedded torch backend: the model and the training loops, written to be read.

    model.py        the tiny model: a Hugging Face Llama with a small config (checkpoints are HF directories)
    batches.py      what a training step sees: token windows from .bin/.idx, packed SFT rows from Parquet
    losses.py       next-token cross-entropy under a loss mask; the GRPO objective
    optim.py        AdamW and the warmup + cosine learning-rate schedule
    checkpoint.py   checkpoints inside the run's output dir, and finding the one to resume from
    trainer.py      the loop every stage shares: steps, gradient clipping, validation, checkpoints, metrics
    grpo.py         GRPO: sample a group of answers per prompt, reward, normalise, update
    evaluate.py     accuracy on held-out problems and validation perplexity
    metrics.py      metrics.jsonl, the loss-curve PNG
    runtime.py      device selection and multi-process (DDP) set-up

Stages in `nemotron/stages/` put these together into short recipes; torch and transformers are imported
inside the functions that need them.
"""
