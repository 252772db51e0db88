"""Artifact names and references: the one parser of the project.

A reference names an artifact and optionally picks a version of it:

    art://name   name   name:latest   -> the highest committed version
    name:v3      name:3               -> version 3 (versions start at v1)
    name:production                   -> whatever the alias `production` points at

Names are `[a-z0-9][a-z0-9._-]{0,127}` without `..`; aliases are `[a-z][a-z0-9_-]*`, must not look
like a version (`v7`, `v-1`) and `latest` is reserved.

A W&B reference names a version in Weights & Biases instead (its numbering starts at v0 and is not ours):

    wandb://entity/project/name:v3   wandb://project/name:latest   wandb://entity/project/name:alias

`parse_reference` accepts both kinds; `ArtifactRef.parse` only the manifest store's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nemotron.errors import BadReferenceError

SCHEME = "art://"
WANDB_SCHEME = "wandb://"
LATEST = "latest"

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_VERSION = re.compile(r"v?(-?\d+)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # s3://, gs://, hf://, file://, https://
_WANDB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_WANDB_SELECTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_FORMS = "art://name, name, name:latest, name:v3, name:3 or name:ALIAS"


def validate_name(name: str) -> str:
    """Return `name` if it is a valid artifact name, else raise a clear error."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BadReferenceError(
            f"{name!r} is not a valid artifact name. Names are 1-128 characters of lowercase letters, "
            "digits, '.', '_' and '-', start with a letter or digit, and contain no '/' or '..' "
            "(for example 'tiny-sft-data' or 'nano3.5-model')."
        )
    return name


def validate_alias(alias: str) -> str:
    """Return `alias` if it can be set by a user, else raise a clear error."""
    if alias == LATEST:
        raise BadReferenceError(
            "'latest' is reserved: it always means the highest committed version and cannot be set."
        )
    if not _ALIAS.fullmatch(alias) or _VERSION.fullmatch(alias):
        raise BadReferenceError(
            f"{alias!r} is not a valid alias. Aliases are lowercase letters, digits, '_' and '-', start "
            "with a letter and must not look like a version such as 'v3' (for example 'production')."
        )
    return alias


@dataclass(frozen=True)
class ArtifactRef:
    """A parsed reference: a name plus exactly one of version or alias (neither means latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ArtifactRef:
        if not isinstance(text, str) or not text.strip():
            raise BadReferenceError(f"An artifact reference must be a non-empty string, got {text!r}.")
        body = text.strip()
        if body.startswith(WANDB_SCHEME):
            raise BadReferenceError(
                f"{text!r} names a W&B artifact; it resolves through the W&B mirror (artifacts=manifest_wandb or "
                f"wandb), not in the manifest store. Use one of: {_FORMS}."
            )
        if body.startswith(SCHEME):
            body = body[len(SCHEME) :]
        elif _URL.match(body):
            raise BadReferenceError(
                f"{text!r} is a URL, not an artifact reference: a reference names a version in the artifact "
                f"store ({_FORMS}). To record the data at that URL as an artifact, register it first "
                f"(`python -m nemotron stage=register stage.path={body} stage.name=NAME`) and use NAME."
            )
        name, sep, selector = body.partition(":")
        if sep and (not selector or ":" in selector):
            raise BadReferenceError(f"{text!r} is not a valid artifact reference. Use one of: {_FORMS}.")
        if not name:
            raise BadReferenceError(f"{text!r} has no artifact name before ':'. Use one of: {_FORMS}.")
        validate_name(name)
        if not sep or selector == LATEST:
            return cls(name)
        version = _VERSION.fullmatch(selector)
        if version:
            number = int(version.group(1))
            if number < 1:
                raise BadReferenceError(f"{text!r} asks for version {number}, but versions start at v1.")
            return cls(name, version=number)
        return cls(name, alias=validate_alias(selector))

    @property
    def selector(self) -> str:
        if self.version is not None:
            return f"v{self.version}"
        return self.alias or LATEST

    @property
    def is_pinned(self) -> bool:
        return self.version is not None

    def __str__(self) -> str:
        return f"{self.name}:{self.selector}"

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self}"


@dataclass(frozen=True)
class WandbRef:
    """`wandb://[entity/]project/name[:selector]`: a version in W&B (selector `vK`, an alias or `latest`)."""

    entity: str | None
    project: str
    name: str
    selector: str = LATEST

    @classmethod
    def parse(cls, text: str) -> WandbRef:
        body = text.strip()[len(WANDB_SCHEME) :] if text.strip().startswith(WANDB_SCHEME) else text.strip()
        path, sep, selector = body.partition(":")
        parts = path.split("/")
        forms = "wandb://entity/project/name:v3, wandb://project/name or wandb://entity/project/name:alias"
        if (
            len(parts) not in (2, 3)
            or not all(_WANDB_PART.fullmatch(p) for p in parts)
            or (sep and not _WANDB_SELECTOR.fullmatch(selector))
        ):
            raise BadReferenceError(f"{text!r} is not a valid W&B reference. Use one of: {forms}.")
        entity = parts[0] if len(parts) == 3 else None
        return cls(entity, parts[-2], parts[-1], selector if sep else LATEST)

    @property
    def path(self) -> str:
        """`entity/project/name:selector` as the W&B API takes it."""
        prefix = f"{self.entity}/" if self.entity else ""
        return f"{prefix}{self.project}/{self.name}:{self.selector}"

    @property
    def is_pinned(self) -> bool:
        return bool(re.fullmatch(r"v\d+", self.selector))

    def __str__(self) -> str:
        return f"{WANDB_SCHEME}{self.path}"


def parse_reference(text: str) -> ArtifactRef | WandbRef:
    """A manifest-store reference (`name:v3`, `art://name`, ...) or a W&B one (`wandb://...`)."""
    if isinstance(text, str) and text.strip().startswith(WANDB_SCHEME):
        return WandbRef.parse(text)
    return ArtifactRef.parse(text)
