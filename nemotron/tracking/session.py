"""`Tracking`: the artifact stores of one job, and the inputs that job has used.

One `Tracking` exists per job (the Hydra callback creates it on rank 0) or per script
(`setup_artifact_tracking`). Every reference the job resolves, through `${art:}`, `Artifact.from_uri` or
`Artifact.load`, goes through `resolve`, which pins it: the same reference gives the same exact version for
the whole job, and the version is recorded as an input of everything the job commits.

References are looked up in `artifacts.resolve_order` (manifest store first by default, then W&B when the
mirror is on); `wandb://entity/project/name:v3` goes to W&B directly. A W&B version that mirrors one of this
store's versions pins that version; any other W&B artifact is recorded as an external input.
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
from nemotron.artifacts.refs import SCHEME, ArtifactRef, WandbRef, parse_reference
from nemotron.env_toml import resolve_root
from nemotron.errors import ArtifactNotFoundError, CommitError, NemotronError
from nemotron.store.files import scan_files
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest, RunRecord

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
    wandb_project: str | None = None
    wandb_entity: str | None = None
    resolve_order: list[str] = ["manifest", "wandb"]
    # `nemotron-art rerun`: input name (or reference as written) -> the exact `name:vN` the original used,
    # and the versions this job reproduces (each output records the one with its name).
    pins: dict[str, str] = {}
    reproduces: list[str] = []

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, wandb: Mapping[str, Any] | None = None) -> ArtifactSettings:
        """From the `artifacts:` node, plus the top-level `wandb:` node (project, entity) if given."""
        node = dict(node or {})
        manifest = dict(node.get("manifest") or {})
        wandb = dict(wandb or {})
        order = list(node.get("resolve_order") or ["manifest", "wandb"])
        unknown = [backend for backend in order if backend not in ("manifest", "wandb")]
        if unknown:
            raise NemotronError(
                f"artifacts.resolve_order={order} names unknown backends {unknown}; use manifest and/or wandb, "
                "for example artifacts.resolve_order=[wandb,manifest]."
            )
        return cls(
            root=manifest.get("root"),
            single_writer=manifest.get("single_writer", False),
            hash_files=manifest.get("hash_files", True),
            wandb=bool(node.get("wandb", False)),
            wandb_project=wandb.get("project"),
            wandb_entity=wandb.get("entity"),
            resolve_order=order,
            pins=_pins_of(node.get("pins")),
            reproduces=[str(ref) for ref in node.get("reproduces") or []],
        )


def _pins_of(value: Any) -> dict[str, str]:
    """`artifacts.pins` as a mapping, or as the list `["NAME=NAME:vN", ...]` that `nemotron-art rerun` passes."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    pins = {}
    for item in value or []:
        key, sep, exact = str(item).partition("=")
        if not sep or ArtifactRef.parse(exact).version is None:
            raise NemotronError(f"artifacts.pins entries are NAME=NAME:vN (an exact version); got {item!r}.")
        pins[key] = exact
    return pins


class Tracking:
    """Stores plus the pinned inputs of one job."""

    def __init__(self, settings: ArtifactSettings | None = None) -> None:
        self.settings = settings or ArtifactSettings(root=resolve_root())
        self.store = ManifestStore(self.settings.root, self.settings.single_writer) if self.settings.root else None
        self.wandb_target = self._new_wandb_target()
        self._pins: dict[str, Manifest] = {}
        self._external: dict[str, Any] = {}  # reference -> WandbArtifact known only to W&B
        self._roles: dict[str, str] = {}  # run.<role> -> reference as written
        self._outputs: dict[str, Manifest] = {}  # name -> the version this job committed last
        self._stdin_line: str | None = None
        # A script's config and overrides (nemotron.kit.cli), recorded in the run record of what it commits.
        self.run_config: dict[str, Any] | None = None
        self.run_overrides: list[str] = []

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
        found = self._pin(reference, role)
        if not isinstance(found, Manifest):
            raise NemotronError(
                f"{reference!r} resolves to {found.uri}, which exists only in W&B and has no manifest record "
                "here. Read it through ${art:...} or Artifact.from_uri instead."
            )
        return found

    def load(self, reference: str, expected: type[Artifact] = Artifact, role: str | None = None) -> Artifact:
        found = self._pin(reference, role)
        if isinstance(found, Manifest):
            label, name, record = found.ref, found.name, self.store.metadata(found)
        else:
            label, name, record = found.uri, found.path.rsplit("/", 1)[-1].split(":")[0], found.fields()
        try:
            artifact = artifact_from_record({**record, "name": name}, expected)
        except ValidationError as exc:
            raise NemotronError(
                f"{label} does not hold a valid {record.get('type')}: {exc.errors()[0]['msg']}."
            ) from exc
        artifact._version = found.version if isinstance(found, Manifest) else None
        return artifact

    def _pin(self, reference: str, role: str | None = None) -> Any:
        """The Manifest (or, for an artifact only W&B knows, the WandbArtifact) a reference names, pinned."""
        reference = self._read_stdin() if reference.strip() == STDIN_REF else reference.strip()
        if role:
            self._roles[role] = reference
        if reference not in self._pins and reference not in self._external:
            ref = parse_reference(self._rerun_pin(reference))
            found = self._from_wandb(ref.path) if isinstance(ref, WandbRef) else self._resolve_in_order(ref)
            if isinstance(found, Manifest):
                self._pins[reference] = found
            else:
                self._external[reference] = found
        return self._pins.get(reference) or self._external[reference]

    def _rerun_pin(self, reference: str) -> str:
        """The exact version `artifacts.pins` gives for a reference (by its text, else by its name), if any."""
        pins = self.settings.pins
        if not pins or reference in pins:
            return pins.get(reference, reference)
        ref = parse_reference(reference)
        if isinstance(ref, ArtifactRef) and ref.version is None and ref.name in pins:
            return pins[ref.name]
        return reference

    def _resolve_in_order(self, ref: ArtifactRef) -> Any:
        """Try each backend of `artifacts.resolve_order` that is active; the first error if none has it."""
        first_error: NemotronError | None = None
        for backend in self.settings.resolve_order:
            try:
                if backend == "manifest" and self.store is not None:
                    return self.store.resolve(ref)
                if backend == "wandb" and self.wandb_target is not None:
                    return self._from_wandb(self.wandb_target.path_for(ref))
            except ArtifactNotFoundError as exc:
                first_error = first_error or exc
            except NemotronError as exc:
                if backend == "manifest":
                    raise  # a missing root or a corrupt record: say so, do not look elsewhere
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return self._require_store(f"resolve {str(ref)!r}").resolve(ref)

    def _from_wandb(self, path: str) -> Any:
        """A W&B version; if it mirrors a version of this manifest store, that version instead."""
        from nemotron.tracking import wandb_mirror

        found = wandb_mirror.fetch(path)
        origin = found.metadata.get("nemotron") or {}
        if (
            found.nemotron_ref
            and self.store is not None
            and "manifest" in self.settings.resolve_order
            and origin.get("store") == self.store.url
        ):
            return self.store.resolve(found.nemotron_ref)
        return found

    @property
    def used_artifacts(self) -> list[str]:
        return sorted({m.ref for m in self._pins.values()})

    def pinned(self) -> list[dict[str, str | None]]:
        """Each input as written, its `run.<role>` if any, and the exact version (for lineage.json): `name:vN`,
        or `wandb://entity/project/name:vK` for an artifact only W&B knows."""
        roles = {reference: role for role, reference in self._roles.items()}
        pins = {**{t: m.ref for t, m in self._pins.items()}, **{t: w.uri for t, w in self._external.items()}}
        return [{"role": roles.get(text), "reference": text, "version": version} for text, version in pins.items()]

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
        self._pin_own_outputs(artifact)
        used = self._lineage_of(artifact)
        record = {
            "type": artifact.type,
            "path": artifact.path,
            "created_at": artifact.created_at,
            "producer": artifact.producer,
            "metadata": _redacted_fields(artifact),
            "inputs": [
                *(s.model_dump(mode="json") for s in getattr(artifact, "source_datasets", [])),
                *({"uri": w.uri, "name": w.path, "digest": w.digest, "kind": "wandb"} for w in self._external.values()),
            ],
            "used_artifacts": used,
            "files": scan_files(artifact.path, with_digests=self.settings.hash_files),
            "run": run,
            "wandb": self.wandb_target.planned(name) if self.wandb_target else None,
            "reproduces": next((r for r in self.settings.reproduces if r.partition(":")[0] == name), None),
        }
        manifest = store.commit(name, record)
        artifact.name = name
        artifact._version = manifest.version
        self._outputs[name] = manifest
        return manifest

    def _pin_own_outputs(self, artifact: Artifact) -> None:
        """Pin `art://NAME` fields that name an artifact this job committed earlier to that exact version.

        A stage that returns `{"tokenizer": ..., "data": ...}` cannot know the tokenizer's version when it
        builds the data artifact: it writes `tokenizer_uri="art://<tokenizer name>"`, the callback commits the
        outputs in order, and the reference becomes `art://<tokenizer name>:vN` here, never a later `latest`.
        """
        for field, value in artifact:
            if not (isinstance(value, str) and value.startswith(SCHEME)):
                continue
            ref = ArtifactRef.parse(value)
            if ref.version is None and ref.alias is None and ref.name in self._outputs:
                setattr(artifact, field, self._outputs[ref.name].uri)

    def _lineage_of(self, artifact: Artifact) -> list[str]:
        """Inputs resolved by the job plus the artifact's own upstream references, each exact.

        A reference to one of this job's own outputs is recorded as is, not pinned as an input of the job.
        """
        used = set(self.used_artifacts)
        own = {manifest.uri: manifest.ref for manifest in self._outputs.values()}
        for uri in artifact.get_input_uris():
            if uri in own:
                used.add(own[uri])
            elif uri.startswith(SCHEME):  # other values name external things (a hub tokenizer id)
                found = self._pin(uri)
                if isinstance(found, Manifest):  # else it is recorded among the external inputs
                    used.add(found.ref)
        return sorted(used)

    # -- the W&B mirror -------------------------------------------------------------------------------

    def _new_wandb_target(self) -> Any:
        if not self.settings.wandb:
            return None
        from nemotron.tracking.wandb_mirror import WandbTarget

        return WandbTarget(project=self.settings.wandb_project, entity=self.settings.wandb_entity)

    def live_metrics(self, job_type: str | None, run_dir: str | None) -> Any:
        """A function logging one metrics row to this job's W&B run as training goes (the run the mirror then
        logs the outputs to); None when the mirror is off or W&B cannot start."""
        if self.wandb_target is None:
            return None
        from nemotron.tracking import wandb_mirror

        return wandb_mirror.live_logger(self.wandb_target, job_type, run_dir)

    def mirror(
        self,
        committed: list[tuple[Artifact, Manifest | None]],
        run: RunRecord | None = None,
        job_type: str | None = None,
        run_dir: str | None = None,
    ) -> list[dict[str, Any]]:
        """Mirror what was just committed to W&B (one W&B run); never raises. [] when the mirror is off."""
        if self.wandb_target is None or not committed:
            return []
        from nemotron.tracking import wandb_mirror

        used = {ref for _, manifest in committed if manifest for ref in manifest.used_artifacts}
        records = wandb_mirror.mirror(
            committed,
            self.wandb_target,
            store=self.store,
            run=run,
            used=sorted(used | set(self.used_artifacts)),
            wandb_inputs=[w.path for w in self._external.values()],
            job_type=job_type,
            run_dir=run_dir,
        )
        self.wandb_target = self._new_wandb_target()  # later commits of this process get a W&B run of their own
        return records


def _redacted_fields(artifact: Artifact) -> dict[str, Any]:
    """The artifact's fields as stored: secret values removed everywhere (nemotron.secrets), secret-named keys
    redacted (no artifact field is named like one)."""
    from nemotron.secrets import redact

    fields = redact(artifact.model_dump(mode="json"))
    fields["metadata"] = fields.get("metadata") or {}
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
