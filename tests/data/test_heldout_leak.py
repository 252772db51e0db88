"""No held-out problem of the default data (data=tiny) is in any training row of any stage.

The rows are generated from the blends of `conf/data/tiny.yaml` exactly as the data stages read them. A problem
is found in a training row by what it asks, parsed from the text (not from the generator's own objects): a fact
`a op b` anywhere (a fact line, a question, a step of a worked answer), a two-step chain `a op b op c` (a bare
question, a worked answer, a word problem), and the normalised question text.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest
from omegaconf import OmegaConf

from nemotron.data import synthetic

pytestmark = pytest.mark.unit

FACT = re.compile(r"(\d+) ([-+]) (\d+)")
BARE_CHAIN = re.compile(r"(\d+) ([-+]) (\d+) ([-+]) (\d+)")
WORKED_CHAIN = re.compile(r"(\d+) ([-+]) (\d+) = (\d+)\. (\d+) ([-+]) (\d+) = ")
WORD_START = re.compile(r"has (\d+) \w+")
WORD_STEP = re.compile(r"(gets|gives away) (\d+)")


def normalised(question: str) -> str:
    return " ".join(re.sub(r"[^\w\s+-]", " ", question.lower()).split())


def expressions(text: str) -> tuple[set[str], set[str]]:
    """(facts `a op b`, two-step chains `a op b op c`) that a row's text asks or works out."""
    facts = {" ".join(m) for m in FACT.findall(text)}
    chains = {" ".join(m) for m in BARE_CHAIN.findall(text)}
    for a, op, b, _, middle, op2, c in WORKED_CHAIN.findall(text):
        chains.add(f"{a} {op} {b} {op2} {c}")
        facts.add(f"{middle} {op2} {c}")
    for sentence in text.split("\n"):
        start = WORD_START.search(sentence)
        steps = [("+" if verb == "gets" else "-", n) for verb, n in WORD_STEP.findall(sentence)]
        if start and steps:
            value, chain = int(start.group(1)), start.group(1)
            for op, n in steps:
                facts.add(f"{value} {op} {n}")
                chain += f" {op} {n}"
                value = value + int(n) if op == "+" else value - int(n)
            (chains if len(steps) > 1 else facts).add(chain)
    return facts, chains


def rows_of(blend: dict, split: str) -> list[dict]:
    return [
        row
        for source in blend["sources"]
        if source.get("split", "train") == split
        for row in synthetic.generate(source["task"], min(source["num_rows"], 10_000), source["seed"], split)
    ]


@pytest.fixture(scope="module")
def data() -> dict:
    return OmegaConf.to_container(OmegaConf.load(resources.files("nemotron.conf") / "data" / "tiny.yaml"))


def training_texts(data: dict) -> list[tuple[str, str]]:
    """(row text, question) of every training row of every stage: pretraining documents, SFT chats, RL problems."""
    texts = []
    for row in rows_of(data["pretrain"], "train"):
        for question in re.findall(r"Question: (.*)", row["text"]) or [""]:
            texts.append((row["text"], question))
    for row in rows_of(data["sft"], "train"):
        user, assistant = (m["content"] for m in row["messages"])
        texts.append((f"{user}\n{assistant}", user))
    pinned = data.get("rl_source_splits") or {}
    training = {**data["rl"], "sources": [s for s in data["rl"]["sources"] if s["name"] not in pinned]}
    texts += [(row["problem"], row["problem"]) for row in rows_of(training, "train")]
    return texts


def test_no_heldout_problem_is_in_any_training_row(data):
    heldout = [*rows_of(data["rl"], "heldout"), *rows_of(data["rl"], "valid")]  # tested, or selected on
    assert {row["kind"] for row in heldout} == {"fact", "two_step"}
    train_facts, train_chains, train_questions = set(), set(), set()
    texts = training_texts(data)
    for text, question in texts:
        facts, chains = expressions(text)
        train_facts |= facts
        train_chains |= chains
        train_questions.add(normalised(question))
    assert len(texts) > 10_000 and len(train_facts) > 300 and len(train_chains) > 1000  # the parser finds them
    for row in heldout:
        facts, chains = expressions(row["problem"])
        assert len(facts | chains) >= 1, row  # the held-out problem itself is parsed
        if row["kind"] == "fact":
            assert not facts & train_facts, row
        else:
            (chain,) = chains
            assert chain not in train_chains, row
            assert facts <= train_facts, row  # made of known facts: each step was taught
        assert normalised(row["problem"]) not in train_questions, row


def test_training_rows_of_each_stage_hold_no_heldout_fact(data):
    """The same from the generator's side: every fact in any training row is a training fact."""
    for text, _ in training_texts(data)[::7]:
        facts, _ = expressions(text)
        for fact in facts:
            a, op, b = fact.split()
            assert not synthetic.Fact(int(a), op, int(b)).is_heldout, (fact, text)
