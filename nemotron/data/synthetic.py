"""A deterministic synthetic corpus a tiny model can learn on a CPU in minutes: small-number arithmetic.

One task family feeds every stage, and each stage has its own job in it:

    pretraining text   knowledge: facts "12 + 7 = 19", and one-step word problems worked in plain text
    SFT conversations  the format and the habit of answering: {"messages": [user, assistant]} chats of one-step
                       questions, and two-step word problems, some of them answered the way an answer key
                       answers them: the number alone
    RL problems        {"problem", "expected_answer"} (NeMo-RL's math format): two-step word problems
                       ("Ana has 9 coins and gets 7 more, then gives away 5 ..."), rewarded for the exact answer

An assistant answer works the problem out, one fact per step, and ends with "The answer is N.":

    9 + 7 = 16. 16 - 5 = 11. The answer is 11.

except in the SFT chats of two-step problems about the *answer key's things* (coins, cards, stickers, shells):
4 in 5 of those answer "The answer is 11." with no work shown. SFT imitates that: asked such a problem, the
SFT model gives a number without working it out, and a tiny model cannot add two numbers to a third in its
head, so it is mostly wrong (about 12%, against 75% to 99% where it works the steps out). No answer tells the
model that working pays; the reward does: RL samples both kinds of answer, the worked ones are right far more
often, and GRPO moves the model to work out every problem. That is the effect of RL with a verifiable reward on real
models too (reasoning "emerges" because it earns reward), in a form a CPU shows in a minute.

A fact is `a + b` or `a - b` with a <= 20, b <= 9 (and a >= b for `-`): 375 facts, few enough for a tiny model
to learn them in minutes. Two kinds of problems are **held out** by a stable hash, whatever the seed:

- held-out *facts* (10%): no training row of any stage holds them, not even as a step of a two-step problem.
  Answering them needs arithmetic the model never saw: the hard generalisation.
- held-out *two-step problems* (10% of the combinations of two training facts): no training row holds the
  problem (its expression `12 + 7 - 5`, its question, or its worked answer), but each of its steps is a known
  fact. Answering them needs the stages' skills on a new problem: what SFT and RL are meant to improve.

`split="train"` never produces a held-out problem and `split="heldout"` produces only them. Another 5% of the
two-step problems are `split="valid"`: RL selects its checkpoint on them, so the test sets play no part in any
choice made in training. RL rows carry a
`kind` (`fact` or `two_step`) so evaluation reports each held-out set on its own. Every generator is a pure
function of (number of rows, seed, split).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "heldout", "valid"]
Task = Literal["pretrain", "sft", "rl", "sft_two_step", "rl_two_step"]

MAX_FIRST = 20  # the largest first operand of a fact (a two-step problem's middle result stays below it)
MAX_SECOND = 9  # the largest second operand
MAX_START = 9  # the largest first operand of a two-step problem
ANSWER_KEY_THINGS = ("coins", "cards", "stickers", "shells")  # two-step SFT chats about these ...
ANSWER_KEY_TERSE = 0.8  # ... give the number alone this often (sometimes worked: RL samples both kinds)
HELDOUT_PERCENT = 10
VALID_PERCENT = 5  # two-step problems set aside for RL's checkpoint selection: neither trained on nor tested

_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_THINGS = ("apples", "books", "coins", "stickers", "marbles", "cards", "pencils", "shells")
_FIRST = {"+": "{name} has {a} {things} and gets {b} more", "-": "{name} has {a} {things} and gives away {b}"}
_THEN = {"+": "then gets {c} more", "-": "then gives away {c}"}
_ASK = " How many {things} does {name} have now?"


def _stable_percent(text: str) -> int:
    """Stable across runs, seeds and Python versions (unlike `hash()`)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % 100


@dataclass(frozen=True)
class Fact:
    """`a op b`, one step of arithmetic."""

    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def expression(self) -> str:
        return f"{self.a} {self.op} {self.b}"

    @property
    def text(self) -> str:
        return f"{self.expression} = {self.answer}"

    @property
    def in_range(self) -> bool:
        return 0 <= self.a <= MAX_FIRST and 0 <= self.b <= MAX_SECOND and self.answer >= 0

    @property
    def is_heldout(self) -> bool:
        return _stable_percent(self.expression) < HELDOUT_PERCENT


@dataclass(frozen=True)
class Problem:
    """A problem of one or two steps: `a op b`, or `(a op b) op2 c` worked left to right."""

    steps: tuple[Fact, ...]

    @property
    def answer(self) -> int:
        return self.steps[-1].answer

    @property
    def kind(self) -> str:
        return "fact" if len(self.steps) == 1 else "two_step"

    @property
    def expression(self) -> str:
        return " ".join([self.steps[0].expression, *(f"{s.op} {s.b}" for s in self.steps[1:])])

    @property
    def worked(self) -> str:
        """The assistant's answer: each step as a fact, then the final answer."""
        return " ".join(f"{s.text}." for s in self.steps) + f" The answer is {self.answer}."

    @property
    def is_heldout(self) -> bool:
        """One step: a held-out fact. Two steps: a held-out combination of two training facts."""
        return self.split == "heldout"

    @property
    def split(self) -> Split:
        """Where the problem belongs, by a stable hash: train, heldout (the test sets) or valid (two-step only)."""
        if len(self.steps) == 1:
            return "heldout" if self.steps[0].is_heldout else "train"
        percent = _stable_percent(self.expression)
        if percent < HELDOUT_PERCENT:
            return "heldout"
        return "valid" if percent < HELDOUT_PERCENT + VALID_PERCENT else "train"

    @property
    def terse(self) -> str:
        """The answer key's answer: the number alone."""
        return f"The answer is {self.answer}."

    def question(self, rng: random.Random) -> str:
        """A one-step problem is asked bare ("What is 12 + 7?") or as a word problem, half and half; a two-step
        problem always in words (asked bare, "What is 7 + 3 - 5?", this model learns to copy the third number
        only in some runs, which would make every stage's result a coin toss)."""
        bare = rng.random() < 0.5
        if bare and len(self.steps) == 1:
            return f"What is {self.expression}?"
        words = {"name": rng.choice(_NAMES), "things": rng.choice(_THINGS)}
        first, *rest = self.steps
        text = _FIRST[first.op].format(a=first.a, b=first.b, **words)
        text += "".join(", " + _THEN[s.op].format(c=s.b) for s in rest)
        return text + "." + _ASK.format(**words)


def _draw(rng: random.Random, steps: int) -> Problem | None:
    """A random problem of `steps` steps, or None when a step leaves the facts' ranges."""
    value, facts = rng.randint(0, MAX_FIRST if steps == 1 else MAX_START), []
    for _ in range(steps):
        fact = Fact(value, rng.choice("+-"), rng.randint(0 if steps == 1 else 1, MAX_SECOND))
        if not fact.in_range:
            return None
        facts.append(fact)
        value = fact.answer
    return Problem(tuple(facts))


def problems(seed: int, split: Split = "train", steps: int = 1) -> Iterator[Problem]:
    """An endless stream of random problems of one split and number of steps."""
    if split not in ("train", "heldout", "valid") or (split == "valid" and steps == 1):
        raise ValueError(f"split must be 'train' or 'heldout' (or 'valid' for two-step problems), got {split!r}")
    rng = random.Random(f"problems-{seed}-{split}-{steps}")
    while True:
        problem = _draw(rng, steps)
        if problem is None or (steps > 1 and any(f.is_heldout for f in problem.steps)):
            continue  # out of range, or a two-step problem with a held-out fact: they are built of known facts
        if problem.split == split:
            yield problem


def pretrain_documents(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, str]]:
    """`{"text": ...}` documents of 4 to 8 lines: facts, and one-step word problems with their worked answer."""
    rng = random.Random(f"pretrain-{seed}-{split}")
    stream = problems(seed, split)
    for _ in range(num_rows):
        lines = []
        for _ in range(rng.randint(4, 8)):
            problem = next(stream)
            if rng.random() < 0.6:
                lines.append(problem.steps[0].text)
            else:
                lines.append(f"Question: {problem.question(rng)}\nAnswer: {problem.worked}")
        yield {"text": "\n".join(lines)}


def _conversations(num_rows: int, seed: int, split: Split, steps: int) -> Iterator[dict[str, list]]:
    rng = random.Random(f"sft-{seed}-{split}-{steps}")
    stream = problems(seed + 1, split, steps)  # a different draw than the pretraining text, same task family
    for _ in range(num_rows):
        problem = next(stream)
        question = problem.question(rng)
        yield {"messages": [{"role": "user", "content": question},
                            {"role": "assistant", "content": _sft_answer(problem, question, rng)}]}  # fmt: skip


def _sft_answer(problem: Problem, question: str, rng: random.Random) -> str:
    """The worked answer, except for most two-step problems about the answer key's things: the number alone."""
    about = set(re.findall(r"\w+", question))
    if problem.kind == "two_step" and about & set(ANSWER_KEY_THINGS) and rng.random() < ANSWER_KEY_TERSE:
        return problem.terse
    return problem.worked


def sft_conversations(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, list]]:
    """Two-turn chats: a user asks a one-step problem, the assistant works it out and answers."""
    return _conversations(num_rows, seed, split, 1)


def sft_two_step_conversations(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, list]]:
    """The same chats for two-step word problems; most of those about the answer key's things are answered with
    the number alone (`ANSWER_KEY_THINGS`)."""
    return _conversations(num_rows, seed, split, 2)


def _rl_rows(num_rows: int, seed: int, split: Split, steps: int) -> Iterator[dict[str, str]]:
    rng = random.Random(f"rl-{seed}-{split}-{steps}")
    stream = problems(seed + 2, split, steps)
    for _ in range(num_rows):
        problem = next(stream)
        yield {"problem": problem.question(rng), "expected_answer": str(problem.answer), "kind": problem.kind}


def rl_problems(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, str]]:
    """One-step `{"problem", "expected_answer", "kind"}` rows, as NeMo-RL's math data processor reads them."""
    return _rl_rows(num_rows, seed, split, 1)


def rl_two_step_problems(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, str]]:
    """Two-step word problem rows (the RL stage's training problems in data=tiny)."""
    return _rl_rows(num_rows, seed, split, 2)


GENERATORS: dict[str, Callable[[int, int, Split], Iterator[dict]]] = {
    "pretrain": pretrain_documents,
    "sft": sft_conversations,
    "sft_two_step": sft_two_step_conversations,
    "rl": rl_problems,
    "rl_two_step": rl_two_step_problems,
}


def generate(task: Task, num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict]:
    """Rows of one task shape; the entry point `sources.read_source` uses for `kind: synthetic`."""
    return GENERATORS[task](num_rows, seed, split)
