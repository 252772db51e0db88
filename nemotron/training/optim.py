"""AdamW with decoupled weight decay on the weight matrices only, and a warmup + cosine schedule."""

from __future__ import annotations

import math
from typing import Any


def adamw(model: Any, lr: float, weight_decay: float) -> Any:
    """AdamW; norms, biases and embeddings are not decayed (the usual GPT practice)."""
    import torch

    embeddings = {id(model.get_input_embeddings().weight)}
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 and id(param) not in embeddings else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to `lr`, then a cosine decay to `min_lr` at `total_steps`."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: Any, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value
