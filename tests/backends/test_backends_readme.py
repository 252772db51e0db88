"""The README's cluster guide names only artifacts the stages really commit, with the scale suffix of its command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
CONF = ROOT / "conf"
STAGE_OUTPUTS = ("pretrain-", "sft-", "rl-")


def committed_names(scale: str) -> set[str]:
    """What the data, training and convert stages commit under `scale=<scale>` (their stage.name + suffix)."""
    suffix = OmegaConf.load(CONF / "scale" / f"{scale}.yaml").get("suffix") or ""
    bases = {"pretrain-data", "sft-data", "rl-data"}
    for stage in ("pretrain", "sft", "rl"):
        bases.add(str(OmegaConf.load(CONF / "stage" / f"{stage}.yaml").stage.name))
    converted = {f"{base}-{fmt}" for base in bases for fmt in ("hf", "megatron")}  # stage=convert's names
    return {f"{base}{suffix}" for base in bases | converted}


def guide_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Cluster guide")
    guide = text[start : text.index("\n## ", start)]
    return [line for line in guide.replace("\\\n", " ").splitlines() if "python -m nemotron" in line]


def test_cluster_guide_uses_names_the_stages_commit():
    commands = guide_commands()
    assert commands
    checked = 0
    for command in commands:
        scale = (re.search(r"\bscale=(\w+)", command) or re.match(r"()", "")).group(1) or "tiny"
        for ref in re.findall(r"run\.(?:model|data)=([\w.-]+):", command):
            if not ref.startswith(STAGE_OUTPUTS):
                continue  # a name the user registered (my-hf-model), not a stage's output
            assert ref in committed_names(scale), f"{ref} is never committed with scale={scale}: {command}"
            checked += 1
    assert checked >= 2


def test_old_guide_name_is_caught():
    assert "pretrain-model" not in committed_names("tiny") and "pretrain-model-tiny" in committed_names("tiny")
    assert "pretrain-model" in committed_names("full")
