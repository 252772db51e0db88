"""The synthetic corpus's problems read back from their text (bare or in words), to check rows by what they ask."""

from __future__ import annotations

import re

from nemotron.data.synthetic import Fact, Problem

WORD_PROBLEM = re.compile(r"has (\d+) \w+ and (gets|gives away) (\d+)(?: more)?(?:, then (gets|gives away) (\d+))?")
OPS = {"gets": "+", "gives away": "-"}


def problem_of(question: str) -> Problem:
    """`What is 7 + 3?` or `Dara has 7 cards and gets 2 more, then gives away 4. ...` as a Problem."""
    if question.startswith("What is "):
        start, *rest = question.removeprefix("What is ").removesuffix("?").split()
        moves = list(zip(rest[::2], rest[1::2], strict=True))
    else:
        start, verb, first, then, second = WORD_PROBLEM.search(question).groups()
        moves = [(OPS[verb], first), *([(OPS[then], second)] if then else [])]
    steps, value = [], int(start)
    for op, number in moves:
        steps.append(Fact(value, op, int(number)))
        value = steps[-1].answer
    return Problem(tuple(steps))
