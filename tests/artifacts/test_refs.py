"""The one reference parser: every accepted form, and a table of malformed references, each a clear error."""

from __future__ import annotations

import pytest

from nemotron.artifacts.refs import ArtifactRef, WandbRef, parse_reference, validate_alias, validate_name
from nemotron.errors import BadReferenceError, NemotronError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "version", "alias", "selector"),
    [
        ("art://tiny-data", None, None, "latest"),
        ("tiny-data", None, None, "latest"),
        ("tiny-data:latest", None, None, "latest"),
        ("art://tiny-data:latest", None, None, "latest"),
        ("tiny-data:v3", 3, None, "v3"),
        ("tiny-data:3", 3, None, "v3"),
        ("art://tiny-data:v12", 12, None, "v12"),
        ("tiny-data:production", None, "production", "production"),
        ("tiny-data:best_so-far2", None, "best_so-far2", "best_so-far2"),
        ("  tiny-data:v1 \n", 1, None, "v1"),
    ],
)
def test_accepted_forms(text, version, alias, selector):
    ref = ArtifactRef.parse(text)
    assert ref.name == "tiny-data"
    assert ref.version == version
    assert ref.alias == alias
    assert ref.selector == selector
    assert ref.is_pinned == (version is not None)
    assert str(ref) == f"tiny-data:{selector}"
    assert ref.uri == f"art://tiny-data:{selector}"


@pytest.mark.parametrize("name", ["a", "0", "nano3.5-model", "x_y-z.1", "a" * 128, "9lives"])
def test_valid_names(name):
    assert validate_name(name) == name
    assert ArtifactRef.parse(f"{name}:v2") == ArtifactRef(name, version=2)


def test_round_trip_through_str():
    for text in ["m:v7", "m:prod", "m"]:
        ref = ArtifactRef.parse(text)
        assert ArtifactRef.parse(str(ref)) == ref
        assert ArtifactRef.parse(ref.uri) == ref


# (reference, words the message must contain)
MALFORMED = [
    ("a:b:c", ["'a:b:c'", "not a valid artifact reference", "name:v3"]),
    (":v1", ["':v1'", "no artifact name"]),
    ("name:v0", ["'name:v0'", "versions start at v1"]),
    ("name:0", ["'name:0'", "versions start at v1"]),
    ("name:v-1", ["'name:v-1'", "versions start at v1"]),
    ("name:-3", ["'name:-3'", "versions start at v1"]),
    ("name:", ["'name:'", "not a valid artifact reference"]),
    ("", ["non-empty"]),
    ("   ", ["non-empty"]),
    ("art://", ["no artifact name"]),
    ("team/data", ["'team/data'", "not a valid artifact name", "'/'"]),
    ("team/data:v1", ["'team/data'", "not a valid artifact name"]),
    ("art://a/b", ["'a/b'", "not a valid artifact name"]),
    ("..", ["'..'", "not a valid artifact name"]),
    ("a..b", ["'a..b'", "'..'"]),
    ("../etc:v1", ["'../etc'", "not a valid artifact name"]),
    ("Data", ["'Data'", "lowercase"]),
    ("TINY:v1", ["'TINY'", "lowercase"]),
    ("-data", ["'-data'", "start with a letter or digit"]),
    (".hidden", ["'.hidden'", "not a valid artifact name"]),
    ("a" * 129, ["not a valid artifact name", "1-128"]),
    ("data:Prod", ["'Prod'", "not a valid alias"]),
    ("data:my alias", ["not a valid alias"]),
    ("data:_x", ["'_x'", "not a valid alias"]),
    ("with space", ["'with space'", "not a valid artifact name"]),
]


@pytest.mark.parametrize(("text", "phrases"), MALFORMED, ids=[repr(t)[:40] for t, _ in MALFORMED])
def test_malformed_references(text, phrases):
    with pytest.raises(BadReferenceError) as info:
        ArtifactRef.parse(text)
    message = str(info.value)
    assert isinstance(info.value, NemotronError)
    assert "\n" not in message, "one readable paragraph"
    assert message.endswith(".")
    for phrase in phrases:
        assert phrase in message, (phrase, message)


@pytest.mark.parametrize("value", [None, 3, b"name"])
def test_non_string_reference(value):
    with pytest.raises(BadReferenceError, match="non-empty string"):
        ArtifactRef.parse(value)


def test_parse_reference_dispatches_on_scheme():
    assert parse_reference("data:v2") == ArtifactRef("data", version=2)
    ref = parse_reference("wandb://team/proj/data:v0")
    assert isinstance(ref, WandbRef)
    assert (ref.entity, ref.project, ref.name, ref.selector) == ("team", "proj", "data", "v0")
    assert ref.is_pinned
    with pytest.raises(BadReferenceError, match="W&B"):
        ArtifactRef.parse("wandb://team/proj/data:v0")
    with pytest.raises(BadReferenceError, match="not a valid W&B reference"):
        parse_reference("wandb://onlyname")


def test_latest_is_reserved_for_set_alias():
    with pytest.raises(BadReferenceError) as info:
        validate_alias("latest")
    assert "reserved" in str(info.value)
    assert "highest committed version" in str(info.value)


@pytest.mark.parametrize("alias", ["v3", "v-1", "3", "Prod", "", "-x", "a" * 65])
def test_invalid_aliases(alias):
    with pytest.raises(BadReferenceError, match="not a valid alias"):
        validate_alias(alias)


@pytest.mark.parametrize("alias", ["production", "best", "rc-1", "a_b"])
def test_valid_aliases(alias):
    assert validate_alias(alias) == alias
