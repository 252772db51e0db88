"""A deterministic synthetic corpus a tiny model can learn on a CPU in minutes: small-number arithmetic.

One task family feeds every stage, so each stage builds on what the previous one taught:

    pretraining text   "12 + 7 = 19" facts and short word problems with their answers
    SFT conversations  {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
    RL problems        {"problem": ..., "expected_answer": "19"}   (NeMo-RL's math format)

A problem is an operation on two operands (`a + b`, `a - b` with a >= b, `a * b`). About 10% of all
problems are **held out** by a stable hash of the problem itself: `split="train"` never produces them and
`split="heldout"` produces only them, whatever the seed, so evaluating on held-out problems measures
generalisation, not recall. Every generator is a pure function of (number of rows, seed, split).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "heldout"]
Task = Literal["pretrain", "sft", "rl"]

MAX_OPERAND = {"+": 99, "-": 99, "*": 12}
HELDOUT_PERCENT = 10

_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_THINGS = ("apples", "books", "coins", "stickers", "marbles", "cards", "pencils", "shells")
_WORD_TEMPLATES = {
    "+": "{name} has {a} {things} and gets {b} more. How many {things} does {name} have now?",
    "-": "{name} has {a} {things} and gives away {b}. How many {things} does {name} have left?",
    "*": "{name} has {a} boxes with {b} {things} in each box. How many {things} does {name} have in total?",
}


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem, `a op b`."""

    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        return {"+": self.a + self.b, "-": self.a - self.b, "*": self.a * self.b}[self.op]

    @property
    def expression(self) -> str:
        return f"{self.a} {self.op} {self.b}"

    @property
    def fact(self) -> str:
        return f"{self.expression} = {self.answer}"

    @property
    def is_heldout(self) -> bool:
        """Stable across runs, seeds and Python versions (unlike `hash()`)."""
        digest = hashlib.blake2b(self.expression.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % 100 < HELDOUT_PERCENT

    def word_problem(self, rng: random.Random) -> str:
        name, things = rng.choice(_NAMES), rng.choice(_THINGS)
        return _WORD_TEMPLATES[self.op].format(name=name, things=things, a=self.a, b=self.b)


def problems(seed: int, split: Split = "train") -> Iterator[Problem]:
    """An endless stream of random problems of one split."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"problems-{seed}-{split}")
    while True:
        op = rng.choice("+-*")
        a, b = rng.randint(0, MAX_OPERAND[op]), rng.randint(0, MAX_OPERAND[op])
        if op == "-" and a < b:
            a, b = b, a
        problem = Problem(a, op, b)
        if problem.is_heldout == (split == "heldout"):
            yield problem


def pretrain_documents(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, str]]:
    """`{"text": ...}` documents of 3 to 6 lines: facts, and word problems followed by their answer."""
    rng = random.Random(f"pretrain-{seed}-{split}")
    stream = problems(seed, split)
    for _ in range(num_rows):
        lines = []
        for _ in range(rng.randint(3, 6)):
            problem = next(stream)
            if rng.random() < 0.7:
                lines.append(problem.fact)
            else:
                question = problem.word_problem(rng)
                lines.append(f"Question: {question}\nAnswer: {problem.fact}. The answer is {problem.answer}.")
        yield {"text": "\n".join(lines)}


def sft_conversations(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, list]]:
    """Two-turn chats: a user asks a problem, the assistant answers with the worked fact."""
    rng = random.Random(f"sft-{seed}-{split}")
    stream = problems(seed + 1, split)  # a different draw than the pretraining text, same task family
    for _ in range(num_rows):
        problem = next(stream)
        if rng.random() < 0.5:
            question, answer = f"What is {problem.expression}?", f"{problem.fact}."
        else:
            question = problem.word_problem(rng)
            answer = f"{problem.fact}. The answer is {problem.answer}."
        yield {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def rl_problems(num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict[str, str]]:
    """`{"problem", "expected_answer"}` rows, as NeMo-RL's math data processor reads them."""
    rng = random.Random(f"rl-{seed}-{split}")
    stream = problems(seed + 2, split)
    for _ in range(num_rows):
        problem = next(stream)
        question = f"What is {problem.expression}?" if rng.random() < 0.5 else problem.word_problem(rng)
        yield {"problem": question, "expected_answer": str(problem.answer)}


GENERATORS: dict[str, Callable[[int, int, Split], Iterator[dict]]] = {
    "pretrain": pretrain_documents,
    "sft": sft_conversations,
    "rl": rl_problems,
}


def generate(task: Task, num_rows: int, seed: int = 1234, split: Split = "train") -> Iterator[dict]:
    """Rows of one task shape; the entry point `sources.read_source` uses for `kind: synthetic`."""
    return GENERATORS[task](num_rows, seed, split)
