"""The building blocks of the training loops, each checked against a direct computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nemotron.errors import NemotronError
from nemotron.training import checkpoint as ckpt
from nemotron.training.batches import PackedRowReader, TokenWindows, collate_packed
from nemotron.training.generation import Generated, exact_match, extract_answer
from nemotron.training.grpo import Rollout, group_advantages, grpo_loss, token_logprobs
from nemotron.training.losses import forward_logits, next_token_loss
from nemotron.training.optim import adamw, lr_at

pytestmark = pytest.mark.unit


def tiny_llama(vocab: int = 64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         attn_implementation="sdpa")  # fmt: skip
    return LlamaForCausalLM(config).eval()


def loop_params(**given):
    """LoopParams as a stage YAML fills them (the model has no defaults of its own), with `given` on top."""
    from nemotron.training.trainer import LoopParams

    values = dict(min_lr=0.0, warmup_steps=0, weight_decay=0.0, grad_clip=1.0, eval_every=100, checkpoint_every=100)
    values |= dict(log_every=10, resume="auto", output_dir=None, seed=1234, device="cpu", dry_run=False)
    values |= dict(select_best=None, select_min_delta=0.0)
    return LoopParams(**{**values, **given})


def test_a_packed_row_gives_the_logits_of_its_samples_run_separately() -> None:
    model = tiny_llama()
    first, second, third = [5, 9, 11, 3, 7], [20, 21, 22, 23], [40, 41, 42]
    packed = collate_packed([(first + second + third, [1] * 12, [0, 5, 9])], pad_id=0)
    assert packed["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]
    with torch.no_grad():
        logits = forward_logits(model, packed)[0]
        for sample, start in ((first, 0), (second, 5), (third, 9)):
            alone = model(input_ids=torch.tensor([sample])).logits[0]
            torch.testing.assert_close(logits[start : start + len(sample)], alone, atol=1e-5, rtol=1e-4)


def test_padding_a_shorter_packed_row_does_not_change_its_logits() -> None:
    model = tiny_llama()
    short, long = ([1, 2, 3, 4], [1, 1, 1, 1], [0, 2]), ([5, 6, 7, 8, 9, 10], [1] * 6, [0])
    with torch.no_grad():
        together = forward_logits(model, collate_packed([short, long], pad_id=0))
        alone = forward_logits(model, collate_packed([short], pad_id=0))
    torch.testing.assert_close(together[0, :4], alone[0], atol=1e-5, rtol=1e-4)


def test_the_loss_mask_says_which_next_token_is_trained() -> None:
    torch.manual_seed(1)
    logits, ids = torch.randn(1, 5, 10), torch.tensor([[1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 1, 1, 0, 1]])  # positions 1 and 2 train tokens 3 and 4; the last entry is ignored
    loss, count = next_token_loss(logits, ids, mask)
    expected = [-torch.log_softmax(logits[0, t], dim=-1)[ids[0, t + 1]] for t in (1, 2)]
    assert count == 2
    assert loss.item() == pytest.approx(float(sum(expected) / 2), rel=1e-6)


def test_warmup_then_cosine_to_the_minimum() -> None:
    schedule = [lr_at(s, lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110) for s in range(111)]
    assert schedule[0] == pytest.approx(0.1) and schedule[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(schedule[10:], schedule[11:], strict=False))
    assert schedule[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert schedule[110] == pytest.approx(0.1)


def test_norms_and_embeddings_are_not_decayed() -> None:
    model = tiny_llama()
    decayed, plain = adamw(model, lr=1e-3, weight_decay=0.1).param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert any(p is model.get_input_embeddings().weight for p in plain["params"])
    embedding = model.get_input_embeddings().weight
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert all(p.dim() == 1 or p is embedding for p in plain["params"])


def _shards(tmp_path: Path, documents: list[list[int]]) -> Path:
    from nemotron.data.indexed import IndexedDatasetWriter

    writer = IndexedDatasetWriter(tmp_path / "train_0", dtype="uint16")
    for doc in documents:
        writer.add_document(doc)
    writer.finalize()
    (tmp_path / "blend.json").write_text(json.dumps({"train": ["1.0", "train_0"], "valid": [], "test": []}))
    return tmp_path


def test_token_windows_are_a_function_of_seed_step_and_rank(tmp_path: Path) -> None:
    corpus = list(range(1000))
    data = _shards(tmp_path, [corpus[:300], corpus[300:]])
    windows = TokenWindows(data, "blend.json", "train", seq_len=16, seed=3)
    batch = windows.batch(step=7, batch_size=4)["input_ids"]
    assert torch.equal(batch, TokenWindows(data, "blend.json", "train", 16, 3).batch(7, 4)["input_ids"])
    assert not torch.equal(batch, windows.batch(7, 4, rank=1)["input_ids"])
    assert not torch.equal(batch, windows.batch(8, 4)["input_ids"])
    for row in batch.tolist():  # contiguous slices of the token stream (documents run on, as in Megatron)
        assert row == list(range(row[0], row[0] + 16))


def _packed_split(tmp_path: Path, rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "splits" / "train").mkdir(parents=True)
    table = {"input_ids": [[i, i, i] for i in range(rows)], "loss_mask": [[1, 1, 0]] * rows,
             "seq_start_id": [[0]] * rows}  # fmt: skip
    pq.write_table(pa.table(table), tmp_path / "splits" / "train" / "part-0.parquet")
    return tmp_path


def test_packed_rows_visit_every_row_once_per_epoch_across_ranks(tmp_path: Path) -> None:
    rows = PackedRowReader(_packed_split(tmp_path, 12), "train", seed=0, pad_id=0)
    seen = [[] for _ in range(3)]
    for step in range(6):  # 2 ranks x batch 3 = 6 rows a step: an epoch every 2 steps
        for rank in (0, 1):
            epoch = step // 2
            seen[epoch] += [r[0] for r in rows.batch(step, 3, rank, world_size=2)["input_ids"].tolist()]
    assert all(sorted(s) == list(range(12)) for s in seen)
    assert seen[0] != seen[1]  # a fresh order every epoch


def _run(directory: Path, config: str, finished: bool, steps: list[int]) -> Path:
    directory.mkdir(parents=True)
    ckpt.write_run_state(directory, config, finished)
    for step in steps:
        (directory / "checkpoints" / f"step_{step:06d}").mkdir(parents=True)
        (directory / "checkpoints" / f"step_{step:06d}" / "state.json").write_text(json.dumps({"step": step}))
    return directory


def test_resume_picks_the_last_checkpoint_of_an_unfinished_run_of_the_same_config(tmp_path: Path) -> None:
    runs = tmp_path / "outputs" / "pretrain"
    _run(runs / "a_finished", "same", True, [10, 20])
    _run(runs / "b_other_config", "other", False, [10, 20, 30])
    _run(runs / "c_killed", "same", False, [10, 20])
    (runs / "c_killed" / "checkpoints" / ".step_000030.tmp").mkdir()  # a checkpoint being written when killed
    new = _run(runs / "d_new", "same", False, [])
    assert ckpt.find_resume_checkpoint("auto", new, "same") == runs / "c_killed" / "checkpoints" / "step_000020"
    assert ckpt.find_resume_checkpoint("never", new, "same") is None
    assert ckpt.find_resume_checkpoint("auto", new, "unseen") is None
    explicit = ckpt.find_resume_checkpoint(str(runs / "a_finished"), new, "same")
    assert explicit == runs / "a_finished" / "checkpoints" / "step_000020"
    with pytest.raises(NemotronError, match="no checkpoint there"):
        ckpt.find_resume_checkpoint(str(tmp_path / "nowhere"), new, "same")


def test_group_advantages_are_normalised_within_each_group() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    advantages = group_advantages(rewards, group_size=4)
    first, second = advantages[:4], advantages[4:]
    assert first.sum().abs() < 1e-5 and first[0] > 0 > first[1]
    assert first[0] == pytest.approx((1 - 0.25) / (rewards[:4].std().item() + 1e-4), rel=1e-5)
    assert torch.all(second == 0)  # all answers agree: nothing to learn from this prompt


@pytest.mark.parametrize(
    ("completion", "expected", "reward"),
    [("12 + 7 = 19. The answer is 19", "19", 1.0), ("The answer is 1,234.", "1234", 1.0),
     ("so 3, then 5", "5", 1.0), ("The answer is 18", "19", 0.0), ("no idea", "19", 0.0)],
)  # fmt: skip
def test_the_reward_is_an_exact_answer_match(completion: str, expected: str, reward: float) -> None:
    assert exact_match(completion, expected) == reward
    assert extract_answer("no number") is None


def _two_completions() -> Generated:
    """Two sampled answers to one prompt [3, 4]: the first stops after 2 tokens, the second runs 3."""
    sequences = torch.tensor([[3, 4, 10, 11, 0], [3, 4, 12, 13, 14]])
    completion = torch.tensor([[1, 1, 0], [1, 1, 1]])
    attention = torch.cat([torch.ones(2, 2, dtype=torch.long), completion], dim=1)
    return Generated(sequences, attention, completion, prompt_len=2, texts=["", ""])


def test_grpo_loss_on_fresh_samples_is_minus_the_mean_token_advantage() -> None:
    model, generated = tiny_llama(), _two_completions()
    with torch.no_grad():
        old = token_logprobs(model, generated)
    advantages = torch.tensor([1.0, -1.0])
    batch = Rollout(generated, torch.tensor([1.0, 0.0]), advantages, old, ref_logprobs=old)
    loss, stats = grpo_loss(model, batch, clip_eps=0.2, kl_coef=0.1)
    # ratio = 1 and KL = 0 at the sampling policy: the loss is -(2 tokens x 1 + 3 tokens x -1) / 5
    assert loss.item() == pytest.approx(1 / 5, abs=1e-6)
    assert stats == {"kl": pytest.approx(0.0, abs=1e-6), "clip_fraction": 0.0}
    loss.backward()
    step = torch.optim.SGD(model.parameters(), lr=0.5)
    step.step()
    with torch.no_grad():
        new = token_logprobs(model, generated)
    assert new[0, 1:3].sum() > old[0, 1:3].sum()  # the rewarded answer became more likely
    assert new[1, 1:4].sum() < old[1, 1:4].sum()  # the wrong one less likely


def test_select_best_carries_over_a_resume(tmp_path: Path) -> None:
    """A run killed after its step-2 checkpoint, whose best evaluation was step 0, resumes in a new directory:
    later, worse evaluations must not replace the step-0 model."""
    from nemotron.data.tokenizer import train_bpe
    from nemotron.distributed import DistEnv
    from nemotron.training.trainer import Trainer

    tokenizer = train_bpe(["12 + 7 = 19", "3 + 4 = 7"] * 20, tmp_path / "tokenizer", vocab_size=300)
    params = loop_params(name="t", steps=4, lr=1e-2, max_skipped_steps=0, eval_every=1, checkpoint_every=2,
                        select_best="val_accuracy")  # fmt: skip
    scores = {0: 0.5, 1: 0.1, 2: 0.2, 3: 0.3, 4: 0.3}
    ids = torch.tensor([tokenizer("12 + 7 = 19")["input_ids"]])

    def run(out: Path, kill_at: int | None = None):
        trainer = Trainer(tiny_llama(len(tokenizer)), tokenizer, params, out, DistEnv(), torch.device("cpu"),
                          identity={"test": 1})  # fmt: skip
        trainer.resume()
        done = {"steps": trainer.start_step}

        def train_step(step: int) -> dict[str, float]:
            if step == kill_at:
                raise KeyboardInterrupt
            loss = trainer.wrapped(input_ids=ids, labels=ids).loss
            trainer.update(loss)
            done["steps"] = step + 1
            return {"loss": loss.item()}

        return trainer.fit(train_step, lambda: {"val_accuracy": scores[done["steps"]]})

    runs = tmp_path / "outputs"
    (runs / "a").mkdir(parents=True), (runs / "b").mkdir()
    with pytest.raises(KeyboardInterrupt):
        run(runs / "a", kill_at=3)
    result = run(runs / "b")
    assert result.resumed_from == runs / "a" / "checkpoints" / "step_000002"
    assert result.step == 0 and result.metrics["selected_val_accuracy"] == 0.5
    best = runs / "a" / "checkpoints" / "step_000002" / "best_model" / "model.safetensors"
    assert (runs / "b" / "model" / "model.safetensors").read_bytes() == best.read_bytes()


# -- non-finite losses: skipped up to stage.max_skipped_steps, then a clear error and no model ----------------


def _nan_run(tmp_path: Path, bad_steps: set[int], max_skipped: int, evaluate=None, steps: int = 5):
    """A trainer whose loss is NaN at `bad_steps` (0-based); returns (result or error, trainer)."""
    from nemotron.data.tokenizer import train_bpe
    from nemotron.distributed import DistEnv
    from nemotron.training.trainer import Trainer

    tokenizer = train_bpe(["12 + 7 = 19", "3 + 4 = 7"] * 20, tmp_path / "tokenizer", vocab_size=300)
    params = loop_params(name="t", steps=steps, lr=1e-2, max_skipped_steps=max_skipped, eval_every=0,
                        checkpoint_every=0, log_every=1)  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    trainer = Trainer(tiny_llama(len(tokenizer)), tokenizer, params, out, DistEnv(), torch.device("cpu"), {"t": 1})
    ids = torch.tensor([tokenizer("12 + 7 = 19")["input_ids"]])

    def train_step(step: int) -> dict[str, float]:
        loss = trainer.wrapped(input_ids=ids, labels=ids).loss
        if step in bad_steps:
            loss = loss * float("nan")
        trainer.update(loss)
        return {"loss": loss.item()}

    try:
        return trainer.fit(train_step, evaluate), trainer
    except NemotronError as error:
        return error, trainer


def test_non_finite_steps_are_skipped_up_to_the_limit(tmp_path: Path) -> None:
    result, trainer = _nan_run(tmp_path, bad_steps={1, 3}, max_skipped=2)
    assert not isinstance(result, NemotronError)
    assert trainer.skipped == 2
    assert all(torch.isfinite(p).all() for p in trainer.module.parameters())  # no update from a NaN step
    assert math.isfinite(result.metrics["loss"])
    rows = [json.loads(line) for line in result.history.read_text().splitlines()]
    assert [r["step"] for r in rows if "skipped_steps" in r] == [2, 4]
    assert all(math.isfinite(v) for r in rows for v in r.values())


def test_one_skip_too_many_stops_training_and_saves_no_model(tmp_path: Path) -> None:
    result, _ = _nan_run(tmp_path, bad_steps={1, 2}, max_skipped=1)
    assert isinstance(result, NemotronError)
    message = str(result)
    assert "step 3 of 5" in message and "stage.max_skipped_steps=1" in message and "nothing is committed" in message
    assert "\n" not in message
    assert not (tmp_path / "run" / "model").exists()


def test_a_nan_evaluation_is_never_recorded(tmp_path: Path) -> None:
    result, trainer = _nan_run(tmp_path, bad_steps=set(), max_skipped=0, evaluate=lambda: {"val_loss": math.nan})
    assert isinstance(result, NemotronError) and "val_loss=nan" in str(result)
    assert not (tmp_path / "run" / "model").exists()
    assert not any("val_loss" in row for row in trainer.metrics.rows)


def test_weights_made_non_finite_by_the_last_step_are_refused(tmp_path: Path) -> None:

    result, trainer = _nan_run(tmp_path, bad_steps=set(), max_skipped=0, steps=1)
    assert not isinstance(result, NemotronError)
    with torch.no_grad():
        next(trainer.module.parameters()).fill_(math.inf)
    with pytest.raises(NemotronError, match="non-finite values"):
        trainer._finish(0, 1.0)
    with pytest.raises(ValueError):
        loop_params(name="t", steps=1, lr=math.inf, max_skipped_steps=0)


def test_perplexity_of_a_diverged_model_is_an_error_not_a_metric(tmp_path: Path) -> None:
    from nemotron.training.evaluate import perplexity

    model = tiny_llama()
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    windows = TokenWindows(_shards(tmp_path, [list(range(1, 60))] * 4), "blend.json", "train", 16, seed=1)
    with pytest.raises(NemotronError, match="perplexity is not a finite number"):
        perplexity(model, windows, batches=1, batch_size=2, device="cpu")
