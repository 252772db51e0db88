"""The synthetic corpus: deterministic, correct arithmetic, and a held-out split that never meets training."""

from __future__ import annotations

import itertools
import re

import pytest
from helpers.arithmetic import problem_of

from nemotron.data import synthetic

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("task", ["pretrain", "sft", "rl"])
def test_same_seed_same_rows_other_seed_other_rows(task):
    first = list(synthetic.generate(task, 50, seed=1))
    assert first == list(synthetic.generate(task, 50, seed=1))
    assert first != list(synthetic.generate(task, 50, seed=2))


@pytest.mark.parametrize("steps", [1, 2])
def test_heldout_problems_never_appear_in_training(steps):
    train = {p.expression for p in itertools.islice(synthetic.problems(1, "train", steps), 30000)}
    heldout = {p.expression for p in itertools.islice(synthetic.problems(1, "heldout", steps), 3000)}
    assert train and heldout and not train & heldout
    # and it is the problem, not the seed, that decides: another seed draws from the same sides
    other = {p.expression for p in itertools.islice(synthetic.problems(99, "train", steps), 3000)}
    assert not other & heldout


def test_two_step_problems_are_made_of_training_facts():
    for split in ("train", "heldout"):
        for problem in itertools.islice(synthetic.problems(3, split, 2), 2000):
            assert len(problem.steps) == 2 and not any(f.is_heldout for f in problem.steps)
            assert problem.steps[1].a == problem.steps[0].answer


def test_rows_have_the_shapes_the_stages_read():
    (doc,) = synthetic.generate("pretrain", 1)
    assert set(doc) == {"text"} and doc["text"].count("\n") >= 2
    for task in ("sft", "sft_two_step"):
        (chat,) = synthetic.generate(task, 1)
        assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
        assert chat["messages"][1]["content"].endswith(".") and "The answer is" in chat["messages"][1]["content"]
    for task, kind in (("rl", "fact"), ("rl_two_step", "two_step")):
        (rl,) = synthetic.generate(task, 1, split="heldout")
        assert set(rl) == {"problem", "expected_answer", "kind"} and rl["expected_answer"].isdigit()
        assert rl["kind"] == kind


def test_every_fact_and_answer_is_true():
    for row in synthetic.generate("pretrain", 300, seed=5):
        for a, op, b, c in re.findall(r"(\d+) ([-+]) (\d+) = (\d+)", row["text"]):
            assert eval(f"{a} {op} {b}") == int(c)  # noqa: S307 (digits and one operator)
    questions = [row for row in synthetic.generate("rl", 300, seed=5) if row["problem"].startswith("What is")]
    assert questions
    for row in questions:
        expression = re.search(r"What is (.*)\?", row["problem"]).group(1)
        assert eval(expression) == int(row["expected_answer"])  # noqa: S307
    for row in synthetic.generate("rl_two_step", 300, seed=5):
        assert problem_of(row["problem"]).answer == int(row["expected_answer"])
    for row in synthetic.generate("sft_two_step", 300, seed=5):
        user, assistant = (m["content"] for m in row["messages"])
        assert assistant.endswith(problem_of(user).terse)
        if assistant != problem_of(user).terse:  # worked: each step's result feeds the next
            first, second = re.findall(r"(\d+) ([-+]) (\d+) = (\d+)", assistant)
            assert first[3] == second[0]


def test_two_step_problems_are_word_problems_and_the_answer_key_gives_the_number_alone():
    """What RL is to teach: SFT shows worked two-step answers, except that most chats about the answer key's things
    give only the number. Some of those are worked, so the SFT model samples both kinds of answer."""
    for task in ("rl_two_step", "sft_two_step"):
        for row in synthetic.generate(task, 200, seed=3):
            assert not (row.get("problem") or row["messages"][0]["content"]).startswith("What is")
    terse = {True: [], False: []}
    for row in synthetic.generate("sft_two_step", 2000, seed=3):
        user, assistant = (m["content"] for m in row["messages"])
        about_key = any(f" {thing} " in user for thing in synthetic.ANSWER_KEY_THINGS)
        terse[about_key].append(assistant.startswith("The answer is"))
    assert not any(terse[False])
    share = sum(terse[True]) / len(terse[True])
    assert abs(share - synthetic.ANSWER_KEY_TERSE) < 0.05 and share < 1
