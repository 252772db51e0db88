"""Training objectives.

Next-token cross-entropy is the loss of pretraining and SFT alike; they differ only in the loss mask
(all ones for pretraining, the assistant tokens for SFT). GRPO's clipped policy-gradient loss is in grpo.py.
"""

from __future__ import annotations

from typing import Any


def forward_logits(model: Any, batch: dict[str, Any]) -> Any:
    """The model's logits for a batch (packed rows pass their position ids and 4-D attention mask)."""
    kwargs = {k: batch[k] for k in ("position_ids", "attention_mask") if batch.get(k) is not None}
    return model(input_ids=batch["input_ids"], **kwargs, use_cache=False).logits


def next_token_loss(logits: Any, input_ids: Any, loss_mask: Any) -> tuple[Any, Any]:
    """Mean cross-entropy of predicting token t+1 at every position t where `loss_mask[t]` is 1.

    Returns (loss, number of trained tokens). `loss_mask` follows Megatron's convention: position t says
    whether the *label* `input_ids[t + 1]` is trained, so the mask of the last position is ignored.
    """
    import torch.nn.functional as F

    logits, labels, mask = logits[:, :-1], input_ids[:, 1:], loss_mask[:, :-1].float()
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="none")
    count = mask.sum()
    return (losses * mask.reshape(-1)).sum() / count.clamp(min=1), count


def lm_loss(model: Any, batch: dict[str, Any], device: Any) -> tuple[Any, int]:
    """Loss of one language-modelling batch and the number of tokens the model read."""
    batch = {k: v.to(device) if v is not None else None for k, v in batch.items()}
    loss, _ = next_token_loss(forward_logits(model, batch), batch["input_ids"], batch["loss_mask"])
    return loss, batch["input_ids"].numel()
