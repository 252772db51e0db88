"""`wandb://` references in the one reference parser, and the W&B path of a manifest reference."""

from __future__ import annotations

import pytest

from nemotron.artifacts.refs import ArtifactRef, WandbRef, parse_reference
from nemotron.errors import BadReferenceError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "entity", "project", "name", "selector"),
    [
        ("wandb://team/proj/sft-data:v3", "team", "proj", "sft-data", "v3"),
        ("wandb://team/proj/sft-data:v0", "team", "proj", "sft-data", "v0"),  # W&B counts from v0
        ("wandb://proj/sft-data", None, "proj", "sft-data", "latest"),
        ("wandb://team/proj/model:production", "team", "proj", "model", "production"),
    ],
)
def test_wandb_references_parse(text, entity, project, name, selector):
    ref = parse_reference(text)
    assert isinstance(ref, WandbRef)
    assert (ref.entity, ref.project, ref.name, ref.selector) == (entity, project, name, selector)
    assert str(ref) == (text if ":" in text[len("wandb://") :] else f"{text}:latest")


@pytest.mark.parametrize(
    "text", ["wandb://name", "wandb://a/b/c/d", "wandb://e/p/n:", "wandb://e/p/n:a:b", "wandb://e//n"]
)
def test_malformed_wandb_references_are_clear_errors(text):
    with pytest.raises(BadReferenceError, match="not a valid W&B reference"):
        parse_reference(text)


def test_manifest_references_are_unchanged():
    assert parse_reference("art://sft-data:v3") == ArtifactRef("sft-data", version=3)
    assert parse_reference("sft-data:prod") == ArtifactRef("sft-data", alias="prod")
    with pytest.raises(BadReferenceError, match="versions start at v1"):
        parse_reference("sft-data:v0")
    with pytest.raises(BadReferenceError, match="names a W&B artifact"):
        ArtifactRef.parse("wandb://team/proj/sft-data:v3")


def test_manifest_reference_maps_to_the_wandb_alias_of_its_mirror():
    from nemotron.tracking.wandb_mirror import WandbTarget

    target = WandbTarget(project="proj", entity="team")
    assert target.path_for(ArtifactRef("sft-data", version=3)) == "team/proj/sft-data:manifest-v3"
    assert target.path_for(ArtifactRef("sft-data", alias="prod")) == "team/proj/sft-data:prod"
    assert WandbTarget().path_for(ArtifactRef("sft-data")) == "nemotron/sft-data:latest"
