"""Prompting and answering: chat prompts from problems, batched generation, and the answer in a completion.

Both GRPO (sampling a group of answers) and evaluation (one greedy answer) go through `generate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ANSWER = re.compile(r"answer is\s*(-?\d[\d,]*)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*")


def extract_answer(completion: str) -> str | None:
    """The number after "The answer is", else the last number in the completion; None if there is none."""
    found = _ANSWER.findall(completion) or _NUMBER.findall(completion)
    return found[-1].replace(",", "") if found else None


def exact_match(completion: str, expected: str) -> float:
    """The verifiable reward: 1.0 when the completion's answer equals the expected answer, else 0.0."""
    answer = extract_answer(completion)
    return float(answer is not None and answer == str(expected).strip().replace(",", ""))


def chat_prompt(tokenizer: Any, problem: str) -> list[int]:
    """The token ids of a one-turn chat asking `problem`, ending where the assistant's answer starts."""
    messages = [{"role": "user", "content": problem}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_token_ids(tokenizer: Any) -> list[int]:
    """End of text, and the end-of-turn marker of chat templates that have one (ChatML's <|im_end|>)."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


@dataclass
class Generated:
    """Prompts and completions, left-padded prompts then completions in one tensor, with their masks."""

    sequences: Any  # (batch, prompt_len + new) token ids
    attention_mask: Any  # 1 on real tokens (prompt and completion up to and including the stop token)
    completion_mask: Any  # 1 on completion tokens only
    prompt_len: int
    texts: list[str]  # the decoded completions


def generate(model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int, temperature: float = 0.0,
             device: Any = "cpu") -> Generated:  # fmt: skip
    """Complete each prompt: greedily at temperature 0, else by sampling. Prompts are left-padded."""
    import torch

    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    stops = stop_token_ids(tokenizer)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature else {
        "do_sample": False}  # fmt: skip
    with torch.no_grad():
        sequences = model.generate(input_ids=input_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
                                   eos_token_id=stops, pad_token_id=pad, **sampling)  # fmt: skip
    completion = sequences[:, width:]
    completion_mask = _until_stop(completion, stops)
    texts = tokenizer.batch_decode(completion.masked_fill(completion_mask == 0, pad), skip_special_tokens=True)
    return Generated(sequences, torch.cat([prompt_mask, completion_mask], dim=1), completion_mask, width, texts)


def _until_stop(completion: Any, stops: list[int]) -> Any:
    """1 on every token up to and including the first stop token of each row."""
    import torch

    is_stop = torch.isin(completion, torch.tensor(stops, device=completion.device))
    stopped_before = (is_stop.long().cumsum(dim=1) - is_stop.long()) > 0
    return (~stopped_before).long()


def position_ids(attention_mask: Any) -> Any:
    """Positions that skip left padding, as `generate` used them."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
