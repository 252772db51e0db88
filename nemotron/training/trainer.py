"""The loop every training stage shares.

    for step in range(start, steps):
        set the learning rate (warmup + cosine)
        metrics = train_step(step)          # the stage's own work: a forward pass and `trainer.update(loss)`
        every log_every steps:        record the metrics
        every eval_every steps:       evaluate() -> validation metrics
        every checkpoint_every steps: save a checkpoint (rank 0), so a restart can resume here
    the final model is the last step's, or with `select_best` the evaluated step (step 0 included) where
    that validation metric was best: early stopping, as NeMo-RL's checkpointing keeps its top-k by `metric_name`

A stage supplies `train_step` and `evaluate`; the trainer owns the optimizer, gradient clipping, the
progress bar, the metrics file, checkpoints and resuming. With several processes the model is wrapped in
DistributedDataParallel and only rank 0 writes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemotron.distributed import DistEnv
from nemotron.errors import NemotronError
from nemotron.training import checkpoint as ckpt
from nemotron.training.metrics import MetricsLog
from nemotron.training.optim import adamw, lr_at, set_lr


class LoopParams(BaseModel):
    """The `stage:` keys every training stage has. Their defaults are in the stage YAML (one source of truth)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    steps: int = Field(ge=1)
    lr: float = Field(gt=0, allow_inf_nan=False)
    min_lr: float = Field(ge=0)
    warmup_steps: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float | None = Field(gt=0)
    eval_every: int = Field(ge=0, description="0 = only at the end")
    checkpoint_every: int = Field(ge=0, description="0 = no intermediate checkpoints")
    log_every: int = Field(ge=1)
    resume: str = Field(description="auto | never | a checkpoint or run directory")
    output_dir: str | None
    seed: int
    device: str
    dry_run: bool
    select_best: str | None = Field(description="val_accuracy (higher is better) or val_loss (lower)")
    select_min_delta: float = Field(ge=0, description="how much better a later step must be to be kept")
    max_skipped_steps: int = Field(ge=0, description="steps with a non-finite loss or grad norm skipped, at most")

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (for resume): everything but where and how it runs."""
        return self.model_dump(exclude={"resume", "output_dir", "device", "dry_run", "log_every", "max_skipped_steps"})


@dataclass
class TrainResult:
    step: int
    model_dir: Path
    metrics: dict[str, float]
    history: Path
    plot: Path | None
    resumed_from: Path | None = None
    selected_step: int | None = None


class Trainer:
    """Owns the optimizer, checkpoints and metrics of one training run."""

    def __init__(self, model: Any, tokenizer: Any, params: LoopParams, out: Path, env: DistEnv, device: Any,
                 identity: dict[str, Any]) -> None:  # fmt: skip
        self.tokenizer, self.params, self.out, self.env, self.device = tokenizer, params, out, env, device
        self.module = model.to(device)  # the model itself: saved, evaluated, used to generate
        self.wrapped = self._wrap(self.module)  # what the training step calls: the module, or its DDP wrapper
        self.optimizer = adamw(self.module, params.lr, params.weight_decay)
        self.config = ckpt.config_hash(identity)
        self.metrics = MetricsLog(out, enabled=env.is_rank0, live=_live_metrics(out) if env.is_rank0 else None)
        self.start_step = 0
        self.resumed_from: Path | None = None
        self.best: tuple[float, int] | None = None  # (metric, step) of the model in {out}/model with select_best
        self.skipped = 0  # optimizer steps skipped for a non-finite loss or gradient norm
        self.step = 0  # the step `fit` is running, for error messages

    def _wrap(self, module: Any) -> Any:
        if not self.env.is_distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- resume ---------------------------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the checkpoint `params.resume` names or finds: weights, optimizer, step, metrics."""
        checkpoint = ckpt.find_resume_checkpoint(self.params.resume, self.out, self.config)
        if self.env.is_rank0:
            ckpt.write_run_state(self.out, self.config, finished=False)
        if checkpoint is None:
            return
        from nemotron.training.model import load_model

        self.module.load_state_dict(load_model(checkpoint).state_dict())
        state = ckpt.load_trainer_state(checkpoint, self.optimizer)
        self.start_step, self.resumed_from = state["step"], checkpoint
        self.metrics.restore(checkpoint.parent.parent, state["step"])
        if state.get("best"):  # select_best: the best evaluation so far and its model carry over
            self.best = (state["best"][0], state["best"][1])
            if self.env.is_rank0:
                ckpt.copy_model(checkpoint / ckpt.BEST_MODEL, self.out / "model")
        if self.env.is_rank0:
            print(f"Resuming from {checkpoint} (step {state['step']} of {self.params.steps}).")

    # -- the loop -------------------------------------------------------------------------------------------

    def update(self, loss: Any) -> float | None:
        """Backward, clip the global gradient norm, step, zero: one optimizer step. Returns the norm.

        A step whose loss or global gradient norm is not finite is skipped (no optimizer step), as Megatron-LM
        skips an iteration whose grad norm is inf/nan (megatron/training/training.py `train_step`:
        `skipped_iter` when `optimizer.step()` reports no update; its log counts "number of skipped
        iterations" and "number of nan iterations"). More than `max_skipped_steps` of them stop the run with
        an error instead of committing a broken model (Megatron's `check_for_nan_in_loss_and_grad` raises).
        """
        import torch

        loss.backward()
        max_norm = self.params.grad_clip or float("inf")  # inf: measure the norm without clipping
        norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm))
        if self._all_finite(float(loss.detach()), norm):
            self._optimizer_step()
        else:
            self._skip(float(loss.detach()), norm)
        self.optimizer.zero_grad(set_to_none=True)
        return norm if self.params.grad_clip else None

    def _optimizer_step(self) -> None:
        try:
            self.optimizer.step()
        except RuntimeError as exc:  # AdamW's step size lr / (1 - beta1^t) beyond float32
            if "overflow" not in str(exc):
                raise
            raise NemotronError(
                f"Training stopped at step {self.step + 1} of {self.params.name}: the learning rate "
                f"{self.optimizer.param_groups[0]['lr']:g} overflows the optimizer's float32 step ({exc}), so "
                f"nothing is committed. Lower stage.lr (now {self.params.lr:g})."
            ) from exc

    def _all_finite(self, loss: float, norm: float) -> bool:
        """Whether the loss and the norm are finite on every rank (all ranks skip the same steps)."""
        finite = math.isfinite(loss) and math.isfinite(norm)
        if not self.env.is_distributed:
            return finite
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0.0 if finite else 1.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return not bool(flag.item())

    def _skip(self, loss: float, norm: float) -> None:
        self.skipped += 1
        limit = self.params.max_skipped_steps
        if self.skipped > limit:
            raise NemotronError(
                f"Training stopped at step {self.step + 1} of {self.params.steps}: the loss is {loss} and the "
                f"gradient norm {norm}, and {self.skipped} optimizer step(s) had a non-finite loss or gradient "
                f"norm, more than stage.max_skipped_steps={limit}. The model diverged, so nothing is committed. "
                f"Lower stage.lr (now {self.params.lr:g}) or raise stage.warmup_steps (now "
                f"{self.params.warmup_steps}), and run again."
            )
        if self.env.is_rank0:
            print(f"Skipping step {self.step + 1}: loss {loss}, gradient norm {norm} ({self.skipped} of at most "
                  f"{limit} skipped).", file=sys.stderr)  # fmt: skip

    def set_lr(self, step: int) -> float:
        p = self.params
        value = lr_at(step, lr=p.lr, min_lr=p.min_lr, warmup_steps=p.warmup_steps, total_steps=p.steps)
        set_lr(self.optimizer, value)
        return value

    def fit(self, train_step: Callable[[int], dict[str, float]],
            evaluate: Callable[[], dict[str, float]] | None = None) -> TrainResult:  # fmt: skip
        """Run steps `start_step .. steps-1`; `train_step(step)` returns its metrics (`loss`, `tokens`, ...)."""
        p = self.params
        if evaluate and self.start_step == 0 and p.eval_every:  # where training starts from, for the curves
            self._evaluate(0, evaluate)
        seconds, tokens = 0.0, 0  # time in training steps: evaluations and checkpoints are not counted
        with _Progress(p.name, p.steps, self.start_step, self.env.is_rank0) as progress:
            for step in range(self.start_step, p.steps):
                self.step = step
                skipped_before = self.skipped
                started = time.perf_counter()
                lr = self.set_lr(step)
                self.wrapped.train()
                values = train_step(step)
                seconds += time.perf_counter() - started
                tokens += int(values.pop("tokens", 0))
                rate = tokens / max(seconds, 1e-9)
                done = step + 1
                if self.skipped > skipped_before:  # a skipped step's non-finite values are not metrics
                    values = {k: v for k, v in values.items() if math.isfinite(v)} | {"skipped_steps": self.skipped}
                if done % p.log_every == 0 or done == p.steps:
                    self.metrics.log(done, **values, lr=lr, tokens_per_s=rate)
                if evaluate and ((p.eval_every and done % p.eval_every == 0) or done == p.steps):
                    self._evaluate(done, evaluate)
                if p.checkpoint_every and done % p.checkpoint_every == 0 and done < p.steps:
                    self.checkpoint(done)
                progress.update(done, values.get("loss"), rate)
        return self._finish(tokens, seconds)

    def _evaluate(self, step: int, evaluate: Callable[[], dict[str, float]]) -> None:
        self.module.eval()
        values = evaluate()
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise NemotronError(
                f"The evaluation at step {step} of {self.params.name} gave "
                f"{', '.join(f'{k}={v}' for k, v in bad.items())}: the model diverged, so nothing is committed. "
                f"Lower stage.lr (now {self.params.lr:g}) or raise stage.warmup_steps, and run again."
            )
        self.metrics.log(step, **values)
        metric = self.params.select_best
        if metric and metric in values:
            sign = -1.0 if metric.endswith("loss") else 1.0
            if self.best is None or sign * (values[metric] - self.best[0]) > self.params.select_min_delta:
                self.best = (values[metric], step)
                if self.env.is_rank0:
                    ckpt.save_model_atomically(self.module, self.tokenizer, self.out / "model")

    def checkpoint(self, step: int) -> None:
        if self.env.is_rank0:
            best_model = self.out / "model" if self.best else None
            ckpt.save_checkpoint(self.out, step, self.module, self.tokenizer, self.optimizer,
                                 {"loss": self.metrics.last("loss"), "best": self.best}, best_model)  # fmt: skip
        from nemotron.training.runtime import barrier

        barrier(self.env)

    def _finish(self, tokens: int, seconds: float) -> TrainResult:
        model_dir = self.out / "model"
        self._check_finite_weights()
        plot = None
        if self.env.is_rank0:
            if self.best is None:
                ckpt.save_model_atomically(self.module, self.tokenizer, model_dir)
            ckpt.write_run_state(self.out, self.config, finished=True)
            plot = self.metrics.plot(self.params.name)
        last = {k: self.metrics.last(k) for k in ("loss", "val_loss", "reward", "val_accuracy")}
        summary = {k: v for k, v in last.items() if v is not None}
        summary |= {"train_seconds": round(seconds, 2), "tokens_per_s": round(tokens / max(seconds, 1e-9), 1)}
        if self.best is not None:
            summary[f"selected_{self.params.select_best}"] = self.best[0]
        step = self.best[1] if self.best else self.params.steps
        return TrainResult(step, model_dir, summary, self.metrics.path, plot, self.resumed_from,
                           self.best[1] if self.best else None)  # fmt: skip

    def _check_finite_weights(self) -> None:
        """A last update can leave non-finite weights that no later step saw: never save such a model."""
        import torch

        broken = [name for name, p in self.module.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:
            raise NemotronError(
                f"After {self.params.steps} steps of {self.params.name}, {len(broken)} weight tensor(s) hold "
                f"non-finite values (the first: {broken[0]}): the model diverged, so nothing is committed. Lower "
                f"stage.lr (now {self.params.lr:g}) or raise stage.warmup_steps, and run again."
            )


def _live_metrics(out: Path) -> Callable[[dict], None] | None:
    """With artifacts=manifest_wandb (or wandb): every metrics row also goes to the job's W&B run at its step, as
    training goes, so the curves grow in W&B while the job runs. None without W&B or outside a job."""
    from nemotron.tracking.session import active_tracking

    tracking = active_tracking()
    if tracking is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    stage = HydraConfig.get().runtime.choices.get("stage") if HydraConfig.initialized() else None
    return tracking.live_metrics(stage, str(out))


class _Progress:
    """Progress on stderr (rank 0 only): a rich bar on a terminal; in a file (a Slurm log, `2> file`, CI), where
    rich draws nothing until the end, a plain line every `every_s` seconds or tenth of the run, and at the end."""

    every_s = 10.0

    def __init__(self, name: str, total: int, start: int, enabled: bool) -> None:
        self.name, self.total, self.start, self.enabled = name, total, start, enabled
        self._bar: Any = None
        self._began = self._last_line = time.perf_counter()
        self._next_step = start  # the next step at which a plain line is due (tenths of the run)

    def __enter__(self) -> _Progress:
        self._began = self._last_line = time.perf_counter()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn(f"[bold]{self.name}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:,.0f} tok/s"), TimeElapsedColumn(),
                console=Console(stderr=True), refresh_per_second=2,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.start, loss=float("nan"),
                                            rate=0.0)  # fmt: skip
        return self

    def update(self, step: int, loss: float | None, rate: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=loss if loss is not None else float("nan"), rate=rate)
        elif self.enabled:
            now = time.perf_counter()
            if step >= self._next_step or now - self._last_line >= self.every_s or step == self.total:
                self._last_line = now
                self._next_step = step + max(1, (self.total - self.start) // 10)
                print(self.line(step, loss, rate, now - self._began), file=sys.stderr, flush=True)

    def line(self, step: int, loss: float | None, rate: float, elapsed: float) -> str:
        """`pretrain: step 30/60 (50%), loss 4.1234, 12.3 steps/s, 45,678 tokens/s, ETA 0:00:02`."""
        done = step - self.start
        steps_per_s = done / max(elapsed, 1e-9)
        eta = (self.total - step) / steps_per_s if done else float("nan")
        parts = [f"{self.name}: step {step}/{self.total} ({step / max(self.total, 1):.0%})"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts += [f"{steps_per_s:,.2f} steps/s", f"{rate:,.0f} tokens/s"]
        parts.append(f"ETA {self._duration(eta)}" if math.isfinite(eta) else "ETA ?")
        return ", ".join(parts)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    @staticmethod
    def _duration(seconds: float) -> str:
        minutes, secs = divmod(int(seconds + 0.5), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
