"""The base `Artifact`: a typed, validated record of one output that lives at `path`.

An artifact is zero-copy: `path` points at data written by a stage (a directory of shards, a checkpoint),
and the artifact itself is only the record of it. Committing (`save`) writes the record into the manifest
store, never into `path`, which may be read-only or shared.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from nemotron.artifacts.refs import SCHEME
from nemotron.errors import NemotronError

ARTIFACT_TYPES: dict[str, type[Artifact]] = {}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Artifact(BaseModel):
    """Base of every artifact type; subclasses add typed, validated fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    path: str = Field(description="Where the data lives (a local path or any fsspec URL).")
    name: str | None = Field(None, description="Artifact name in the store, set when committed.")
    type: str = Field("", description="The artifact class name; filled in automatically.")
    created_at: datetime = Field(default_factory=_utcnow)
    producer: str | None = Field(None, description="Id of the run that produced it.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    _version: int | None = PrivateAttr(None)
    _base_fields: ClassVar[frozenset[str]] = frozenset({"path", "name", "type", "created_at", "producer", "metadata"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ARTIFACT_TYPES[cls.__name__] = cls

    @field_validator("path", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        """`path=Path(...)`, as scripts written against the seed kit pass it, is kept as its text."""
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _fill_type(self) -> Artifact:
        if not self.type:
            object.__setattr__(self, "type", type(self).__name__)
        return self

    # -- identity -------------------------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The committed version number, or None before the artifact is committed."""
        return self._version

    @property
    def uri(self) -> str | None:
        """`art://name:vN` once committed."""
        if self.name is None or self._version is None:
            return None
        return f"{SCHEME}{self.name}:v{self._version}"

    def get_input_uris(self) -> list[str]:
        """References to upstream artifacts this one was made from (beyond the job's `${art:}` inputs)."""
        return []

    # -- typed field access -----------------------------------------------------------------------------

    def field(self, name: str) -> Any:
        """The value of a typed field, or of a `metadata` key, with its type preserved."""
        if name in type(self).model_fields:
            return getattr(self, name)
        if name in ("version", "uri"):
            return getattr(self, name)
        if self.model_extra and name in self.model_extra:
            return self.model_extra[name]
        if name in self.metadata:
            return self.metadata[name]
        known = sorted({*type(self).model_fields, "version", "uri", *self.metadata})
        raise NemotronError(
            f"{self.type} {self.name or self.path!r} has no field {name!r}. Available fields: {', '.join(known)}."
        )

    def to_json_line(self) -> str:
        """One JSON object describing the artifact, for piping into the next stage."""
        return json.dumps(
            {"uri": self.uri, "name": self.name, "version": self.version, "type": self.type, "path": self.path}
        )

    # -- persistence (delegates to the store; see nemotron.tracking) ------------------------------------

    def save(self, name: str | None = None, root: str | None = None) -> Artifact:
        """Commit this artifact as a new version of `name` and return it (now with `version`/`uri`)."""
        from nemotron.tracking.api import log_artifact

        return log_artifact(self, name=name, root=root)

    @classmethod
    def from_uri(cls, uri: str, root: str | None = None) -> Artifact:
        """Load a committed artifact from a reference such as `art://name:v3`, `name:latest` or `name:prod`."""
        from nemotron.tracking.api import load_artifact

        return load_artifact(uri, root=root, expected=cls)

    @classmethod
    def load(cls, source: str | None = None, root: str | None = None) -> Artifact:
        """Load from a reference, a JSON line (as printed by a stage), or, with no argument, stdin."""
        text = sys.stdin.readline() if source is None else source
        text = text.strip()
        if source is None and not text:
            raise NemotronError(
                "Nothing to read on stdin: Artifact.load() with no argument reads the JSON line the previous step "
                "printed (python a.py | python b.py), and none came (did the previous step fail or commit nothing?)."
            )
        if text.startswith("{"):
            try:
                text = json.loads(text)["uri"]
            except (ValueError, KeyError, TypeError) as exc:
                raise NemotronError(
                    f"Expected a JSON line with a 'uri' key (as printed by a nemotron stage), got {text!r}."
                ) from exc
            if not isinstance(text, str):  # null: the stage ran without an artifact store
                raise NemotronError(
                    f"The JSON line names no committed artifact ('uri' is {json.dumps(text)}): the stage that "
                    "printed it ran without an artifact store. Run it with artifacts=manifest to commit its output."
                )
        return cls.from_uri(text, root=root)


ARTIFACT_TYPES[Artifact.__name__] = Artifact


class GenericArtifact(Artifact):
    """An artifact whose type is not importable here: typed fields are kept as extra attributes."""

    model_config = ConfigDict(extra="allow")


def artifact_class(type_name: str) -> type[Artifact]:
    """The class registered for `type_name`; unknown types load as `GenericArtifact`."""
    import nemotron.artifacts.types  # noqa: F401  (registers the built-in types)

    return ARTIFACT_TYPES.get(type_name, GenericArtifact)


def artifact_from_record(data: dict[str, Any], expected: type[Artifact] = Artifact) -> Artifact:
    """Build the right typed artifact from a stored record and check it is an `expected`."""
    cls = artifact_class(str(data.get("type", "")))
    if expected is not Artifact and not issubclass(cls, expected):
        label = data.get("name") or data.get("path")
        raise NemotronError(
            f"Artifact {label!r} is a {data.get('type')}, but a {expected.__name__} is needed here. "
            "Check that the reference points at the right artifact."
        )
    return cls.model_validate(data)
