"""Evaluation: accuracy on held-out problems, and perplexity on validation text."""

from __future__ import annotations

import math
from typing import Any

from nemotron.errors import NemotronError
from nemotron.training.generation import chat_prompt, exact_match, generate

MAX_LOSS = 700.0  # math.exp overflows a float beyond about 709.78


def answer_accuracy(model: Any, tokenizer: Any, problems: list[dict[str, str]], *, max_new_tokens: int,
                    batch_size: int, device: Any) -> tuple[float, list[dict[str, Any]]]:  # fmt: skip
    """The share of problems whose greedy answer is exactly the expected one, and every answer given."""
    model.eval()
    answers = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        prompts = [chat_prompt(tokenizer, p["problem"]) for p in chunk]
        completions = generate(model, tokenizer, prompts, max_new_tokens, temperature=0.0, device=device).texts
        for problem, completion in zip(chunk, completions, strict=True):
            correct = exact_match(completion, problem["expected_answer"])
            answers.append({**problem, "completion": completion, "correct": bool(correct)})
    accuracy = sum(a["correct"] for a in answers) / len(answers) if answers else 0.0
    return accuracy, answers


def perplexity(model: Any, windows: Any, *, batches: int, batch_size: int, device: Any) -> tuple[float, float]:
    """(mean next-token loss, perplexity) over `batches` validation windows."""
    import torch

    from nemotron.training.losses import lm_loss

    model.eval()
    with torch.no_grad():
        losses = [lm_loss(model, windows.batch(i, batch_size), device)[0].item() for i in range(batches)]
    loss = sum(losses) / len(losses)
    if not math.isfinite(loss) or loss > MAX_LOSS:
        raise NemotronError(
            f"The model's mean validation loss is {loss} over {batches} batch(es): its perplexity is not a finite "
            "number, so no evaluation is committed. The model diverged in training (a non-finite or huge loss); "
            "evaluate an earlier version of it, or train it again with a lower stage.lr."
        )
    return loss, math.exp(loss)
