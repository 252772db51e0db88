"""GRPO (Group Relative Policy Optimization, Shao et al. 2024), one step at a time.

for each prompt, sample `group_size` completions from the current policy
reward each completion: 1 if its final answer is exactly the expected answer, else 0
advantage of a completion = (its reward - the group's mean reward) / (the group's std + eps)
    (no value network: the group is the baseline; a group where all answers agree teaches nothing)
loss per completion token = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + kl_coef * KL
    ratio = pi(token) / pi_old(token), where pi_old is the policy that sampled the completions
    KL    = the k3 estimator of KL(pi || pi_ref) against the frozen starting model
average over all completion tokens, and take `updates_per_step` optimizer steps on the batch
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron.training.generation import Generated, chat_prompt, exact_match, generate, position_ids


@dataclass
class Rollout:
    """A batch of sampled completions with everything the loss needs."""

    generated: Generated
    rewards: Any  # (prompts * group_size,)
    advantages: Any  # (prompts * group_size,)
    old_logprobs: Any  # (batch, length - 1) log-probabilities under the sampling policy
    ref_logprobs: Any | None  # the same under the reference model (None without a KL penalty)


def token_logprobs(model: Any, generated: Generated) -> Any:
    """log pi(token t+1 | tokens <= t) for every position of the sequences."""
    import torch

    logits = model(input_ids=generated.sequences, attention_mask=generated.attention_mask,
                   position_ids=position_ids(generated.attention_mask), use_cache=False).logits  # fmt: skip
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logprobs.gather(-1, generated.sequences[:, 1:, None]).squeeze(-1)


def group_advantages(rewards: Any, group_size: int, eps: float = 1e-4) -> Any:
    """Rewards normalised within each group of completions of the same prompt."""
    groups = rewards.view(-1, group_size)
    mean, std = groups.mean(dim=1, keepdim=True), groups.std(dim=1, keepdim=True)
    return ((groups - mean) / (std + eps)).view(-1)


def rollout(policy: Any, reference: Any | None, tokenizer: Any, problems: list[dict[str, str]], *,
            group_size: int, max_new_tokens: int, temperature: float, device: Any) -> Rollout:  # fmt: skip
    """Sample `group_size` completions per problem and score them."""
    import torch

    prompts = [chat_prompt(tokenizer, p["problem"]) for p in problems for _ in range(group_size)]
    generated = generate(policy, tokenizer, prompts, max_new_tokens, temperature=temperature, device=device)
    expected = [p["expected_answer"] for p in problems for _ in range(group_size)]
    rewards = torch.tensor([exact_match(t, e) for t, e in zip(generated.texts, expected, strict=True)], device=device)
    with torch.no_grad():
        old = token_logprobs(policy, generated)
        ref = token_logprobs(reference, generated) if reference is not None else None
    return Rollout(generated, rewards, group_advantages(rewards, group_size), old, ref)


def grpo_loss(policy: Any, batch: Rollout, *, clip_eps: float, kl_coef: float) -> tuple[Any, dict[str, float]]:
    """The clipped surrogate objective with a KL penalty, averaged over the completion tokens."""
    import torch

    logprobs = token_logprobs(policy, batch.generated)
    mask = _completion_positions(batch.generated)
    ratio = torch.exp(logprobs - batch.old_logprobs)
    advantages = batch.advantages[:, None]
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    per_token = -surrogate
    kl = torch.zeros_like(logprobs)
    if batch.ref_logprobs is not None and kl_coef:
        log_ratio = batch.ref_logprobs - logprobs
        kl = torch.exp(log_ratio) - log_ratio - 1  # k3: unbiased, always >= 0
        per_token = per_token + kl_coef * kl
    tokens = mask.sum().clamp(min=1)
    loss = (per_token * mask).sum() / tokens
    clipped = ((ratio - 1).abs() > clip_eps).float()
    with torch.no_grad():
        stats = {"kl": float((kl * mask).sum() / tokens), "clip_fraction": float((clipped * mask).sum() / tokens)}
    return loss, stats


def _completion_positions(generated: Generated) -> Any:
    """1 at position t when token t+1 is a completion token (the logprob at t scores it)."""
    import torch

    prompt_part = torch.zeros(generated.sequences.shape[0], generated.prompt_len - 1,
                              device=generated.sequences.device)  # fmt: skip
    return torch.cat([prompt_part, generated.completion_mask.float()], dim=1)
