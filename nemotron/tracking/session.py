"""`Tracking`: the artifact stores of one job, and the inputs that job has used.

One `Tracking` exists per job (the Hydra callback creates it on rank 0) or per script
(`setup_artifact_tracking`). Every reference the job resolves, through `${art:}`, `Artifact.from_uri` or
`Artifact.load`, goes through `resolve`, which pins it: the same reference gives the same exact version for
the whole job, and the version is recorded as an input of everything the job commits.
"""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from nemotron.artifacts.base import Artifact, artifact_from_record
from nemotron.artifacts.refs import SCHEME, ArtifactRef
from nemotron.errors import CommitError, NemotronError
from nemotron.tracking.files import scan_files
from nemotron.tracking.records import Manifest, RunRecord
from nemotron.tracking.settings import resolve_root
from nemotron.tracking.store import ManifestStore

STDIN_REF = "-"
# The tracking of the current job, or the error that prevented setting it up (raised on first use).
_ACTIVE: contextvars.ContextVar[Tracking | NemotronError | None] = contextvars.ContextVar(
    "nemotron_tracking", default=None
)


class ArtifactSettings(BaseModel):
    """The `artifacts:` config node: which stores are active."""

    model_config = ConfigDict(extra="ignore")

    root: str | None = None
    single_writer: bool = False
    hash_files: bool = True
    wandb: bool = False

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> ArtifactSettings:
        node = dict(node or {})
        manifest = dict(node.get("manifest") or {})
        return cls(
            root=manifest.get("root"),
            single_writer=manifest.get("single_writer", False),
            hash_files=manifest.get("hash_files", True),
            wandb=bool(node.get("wandb", False)),
        )


class Tracking:
    """Stores plus the pinned inputs of one job."""

    def __init__(self, settings: ArtifactSettings | None = None) -> None:
        self.settings = settings or ArtifactSettings(root=resolve_root())
        if self.settings.wandb:
            raise NemotronError(
                "The W&B mirror (artifacts=wandb or manifest_wandb, or [artifacts] wandb = true in "
                "env.toml) is not available in this version of nemotron yet. Use artifacts=manifest, or "
                "set artifacts.wandb=false."
            )
        self.store = ManifestStore(self.settings.root, self.settings.single_writer) if self.settings.root else None
        self._pins: dict[str, Manifest] = {}
        self._roles: dict[str, str] = {}  # run.<role> -> reference as written
        self._stdin_line: str | None = None

    # -- activation -----------------------------------------------------------------------------------

    @contextmanager
    def activate(self) -> Iterator[Tracking]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def start(self) -> contextvars.Token:
        return _ACTIVE.set(self)

    @staticmethod
    def stop(token: contextvars.Token) -> None:
        _ACTIVE.reset(token)

    # -- inputs ---------------------------------------------------------------------------------------

    def _require_store(self, action: str) -> ManifestStore:
        if self.store is None:
            raise NemotronError(
                f"Cannot {action}: no artifact store is configured (artifacts=none or "
                "artifacts.manifest.root=null). Choose one with artifacts=manifest "
                "artifacts.manifest.root=PATH."
            )
        return self.store

    def resolve(self, reference: str, role: str | None = None) -> Manifest:
        """The exact version a reference names, pinned for the rest of the job and recorded as used."""
        reference = self._read_stdin() if reference.strip() == STDIN_REF else reference.strip()
        if role:
            self._roles[role] = reference
        if reference not in self._pins:
            ref = ArtifactRef.parse(reference)
            self._pins[reference] = self._require_store(f"resolve {reference!r}").resolve(ref)
        return self._pins[reference]

    def load(self, reference: str, expected: type[Artifact] = Artifact, role: str | None = None) -> Artifact:
        manifest = self.resolve(reference, role)
        record = self.store.metadata(manifest)
        try:
            artifact = artifact_from_record({**record, "name": manifest.name}, expected)
        except ValidationError as exc:
            raise NemotronError(
                f"{manifest.ref} does not hold a valid {record.get('type')}: {exc.errors()[0]['msg']}."
            ) from exc
        artifact._version = manifest.version
        return artifact

    @property
    def used_artifacts(self) -> list[str]:
        return sorted({m.ref for m in self._pins.values()})

    def pinned(self) -> list[dict[str, str | None]]:
        """Each input as written, its `run.<role>` if any, and the exact `name:vN` (for lineage.json)."""
        roles = {reference: role for role, reference in self._roles.items()}
        return [
            {"role": roles.get(text), "reference": text, "version": manifest.ref}
            for text, manifest in self._pins.items()
        ]

    def _read_stdin(self) -> str:
        if self._stdin_line is None:
            lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
            if len(lines) != 1:
                raise NemotronError(
                    f"An input given as '-' is read from stdin, which must hold exactly one JSON line as "
                    f"printed by a nemotron stage; it held {len(lines)} lines."
                )
            try:
                self._stdin_line = json.loads(lines[0])["uri"]
            except (ValueError, KeyError, TypeError) as exc:
                raise NemotronError(
                    f"stdin does not hold a nemotron JSON line with a 'uri' key: {lines[0][:200]!r}."
                ) from exc
        return self._stdin_line

    # -- outputs --------------------------------------------------------------------------------------

    def commit(self, artifact: Artifact, name: str | None = None, run: RunRecord | None = None) -> Manifest:
        """Commit `artifact` as the next version of `name` with its lineage; sets its name and version."""
        name = name or artifact.name
        if not name:
            raise CommitError(
                f"The {artifact.type} at {artifact.path} has no name; pass name=... or set artifact.name."
            )
        store = self._require_store(f"commit {name}")
        used = self._lineage_of(artifact)
        record = {
            "type": artifact.type,
            "path": artifact.path,
            "created_at": artifact.created_at,
            "producer": artifact.producer,
            "metadata": _redacted_fields(artifact),
            "inputs": [s.model_dump(mode="json") for s in getattr(artifact, "source_datasets", [])],
            "used_artifacts": used,
            "files": scan_files(artifact.path, with_digests=self.settings.hash_files),
            "run": run,
        }
        manifest = store.commit(name, record)
        artifact.name = name
        artifact._version = manifest.version
        return manifest

    def _lineage_of(self, artifact: Artifact) -> list[str]:
        """Inputs resolved by the job plus the artifact's own upstream references, each exact."""
        used = set(self.used_artifacts)
        for uri in artifact.get_input_uris():
            if uri.startswith(SCHEME):  # other values name external things (a hub tokenizer id)
                used.add(self.resolve(uri).ref)
        return sorted(used)


def _redacted_fields(artifact: Artifact) -> dict[str, Any]:
    """The artifact's fields as stored, with secret-named keys of its free-form `metadata` redacted."""
    from nemotron.tracking.runinfo import redact

    fields = artifact.model_dump(mode="json")
    fields["metadata"] = redact(fields.get("metadata") or {})
    return fields


def active_tracking() -> Tracking | None:
    """The current job's tracking; raises the setup error if the job's tracking could not be set up."""
    current = _ACTIVE.get()
    if isinstance(current, NemotronError):
        raise current
    return current


def fail_tracking(error: NemotronError) -> contextvars.Token:
    """Make every later use of the job's tracking raise `error` (the job must not run without it)."""
    return _ACTIVE.set(error)


def tracking_for(root: str | None) -> Tracking:
    """The active tracking, unless an explicit root asks for another store."""
    active = active_tracking()
    if active is not None and (root is None or (active.store and active.store.url == root)):
        return active
    return Tracking(ArtifactSettings(root=resolve_root(root)))
