"""The W&B mirror: the one module that talks to Weights & Biases (`wandb` is imported inside functions).

The manifest store is the source of truth; W&B mirrors what it committed:

    job end (rank 0): commit every output to the manifest store, then one W&B run per job:
        wandb.init(id=<our run id>, job_type=<stage>, config=<resolved config, redacted>)
        use_artifact(...)        an input edge per used artifact (online only: it raises offline)
        log_artifact(...)        the same artifact: same name, the artifact's fields as metadata plus a
                                 `nemotron` block (ref, store, inputs, file digest, run), data by reference
                                 (`file://`, `s3://`, checksum=False: lineage only, never downloaded), our
                                 manifest as the one uploaded file, aliases `latest` and `manifest-vN`
        run.log(metrics); run.finish()

Our versions are never W&B's: W&B numbers from v0 on its own, and re-logging the same reference would not make
a new W&B version, so each mirrored version uploads its manifest (unique per version) and carries the alias
`manifest-vN`, which is how `name:vN` finds its W&B twin.

Where the W&B name lands in our record. `manifest.json` is immutable and is committed *before* W&B is
called, so it holds what is known then: `wandb = {entity, project, run_id, artifact, status: "pending"}`
(we choose the run id). What W&B assigns later (qualified name, W&B version, run URL; or, offline, the run
directory and its `wandb sync` command; or the error) goes into the sidecar `v{N}/wandb.json`, written
after the commit like `metadata.json`. `wandb_record(store, manifest)` merges the two.

A failing or unreachable W&B never fails the job and never touches the committed manifest: it costs one
warning. The API key is read by wandb from its usual places (WANDB_API_KEY, ~/.netrc); nemotron never reads,
prints or stores it, and scrubs secret-named environment values from the warning it prints.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nemotron.artifacts.base import Artifact
from nemotron.distributed import is_rank0
from nemotron.errors import NemotronError
from nemotron.secrets import redact, redact_override, redact_text
from nemotron.store.records import Manifest, RunRecord

SIDECAR = "wandb.json"
DEFAULT_PROJECT = "nemotron"
WAIT_TIMEOUT_S = 120
API_TIMEOUT_S = 30
_LOG = logging.getLogger("nemotron.wandb")
# W&B artifact types by our class (or a base class) name; anything else is a generic "artifact".
_WANDB_TYPES = {
    "ModelArtifact": "model",
    "TokenizerArtifact": "tokenizer",
    "EvalResultsArtifact": "evaluation",
    "_DataArtifact": "dataset",
}
_REFERENCE_SCHEMES = ("file://", "s3://", "gs://", "http://", "https://")
# Local files or directories W&B uploads into an artifact, by our class (or a base class) name. The data stays
# where it is (recorded by reference), so the built-in types upload nothing; a type with small files worth
# having in W&B (a tokenizer, an eval report) registers a function here.
UPLOADS: dict[str, Callable[[Artifact], list[str]]] = {}


# -- the one seam where W&B objects come from ----------------------------------------------------------------


def _wandb_init(**kwargs: Any) -> Any:
    """`wandb.init` with nemotron's quiet settings: a run to log to."""
    import wandb

    settings = wandb.Settings(silent=True, console="off", save_code=False, x_disable_stats=True)
    return wandb.init(settings=settings, **kwargs)


def _wandb_api() -> Any:
    """`wandb.Api`: the public API (resolving `wandb://` references, changing aliases; online only)."""
    import wandb

    return wandb.Api(timeout=API_TIMEOUT_S)


@dataclass(frozen=True)
class WandbClient:
    """Where every W&B object nemotron uses comes from: `init(**kwargs)` gives a run (the arguments of
    `wandb.init`, settings aside), `api()` a public API object. The real ones by default; tests install fakes
    with `using_client(...)` and assert what nemotron sends (nothing patches the wandb library)."""

    init: Callable[..., Any] = _wandb_init
    api: Callable[[], Any] = _wandb_api


_CLIENT: contextvars.ContextVar[WandbClient | None] = contextvars.ContextVar("nemotron_wandb_client", default=None)


def _client() -> WandbClient:
    return _CLIENT.get() or WandbClient()


@contextlib.contextmanager
def using_client(client: WandbClient) -> Iterator[WandbClient]:
    """Use `client` for every W&B call made inside the block (in this thread or task)."""
    token = _CLIENT.set(client)
    try:
        yield client
    finally:
        _CLIENT.reset(token)


def version_alias(version: int) -> str:
    """The W&B alias that marks the mirror of our `name:vN`."""
    return f"manifest-v{version}"


@dataclass
class WandbTarget:
    """Where a job's outputs are mirrored: plain values only (tracking objects may be pickled)."""

    project: str | None = None
    entity: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def path_for(self, ref: Any) -> str:
        """The W&B path of a manifest-store reference: `name:vN` is the W&B alias `manifest-vN`."""
        selector = version_alias(ref.version) if ref.version is not None else (ref.alias or "latest")
        prefix = f"{self.entity}/" if self.entity else ""
        return f"{prefix}{self.project or DEFAULT_PROJECT}/{ref.name}:{selector}"

    def planned(self, name: str) -> dict[str, Any]:
        """What the manifest records before W&B is called (see the module docstring)."""
        return {
            "entity": self.entity,
            "project": self.project or DEFAULT_PROJECT,
            "run_id": self.run_id,
            "artifact": name,
            "status": "pending",
            "record": SIDECAR,
        }


def wandb_record(store: Any, manifest: Manifest) -> dict[str, Any] | None:
    """The manifest's `wandb` field updated with what W&B assigned later (the `v{N}/wandb.json` sidecar)."""
    later = store.read_sidecar(manifest, SIDECAR) if store is not None else None
    if manifest.wandb is None and later is None:
        return None
    return {**(manifest.wandb or {}), **(later or {})}


# -- mirroring --------------------------------------------------------------------------------------------


def mirror(
    outputs: list[tuple[Artifact, Manifest | None]],
    target: WandbTarget,
    *,
    store: Any = None,
    run: RunRecord | None = None,
    used: list[str] | None = None,
    wandb_inputs: list[str] | None = None,
    job_type: str | None = None,
    run_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Log `outputs` (already committed to `store`, or not tracked there) to W&B; never raises.

    Returns one record per output (status `logged`, `offline`, `disabled` or `failed`), also written to each
    committed version's `wandb.json`.
    """
    if not outputs or not is_rank0():
        return []
    try:
        with _quiet_wandb():
            records = _log_run(outputs, target, store, run, used or [], wandb_inputs or [], job_type, run_dir)
    except Exception as exc:
        error = " ".join(_scrub(f"{type(exc).__name__}: {exc}").split())
        kept = ", ".join(m.ref for _, m in outputs if m) or "none (no manifest store)"
        _LOG.warning(
            "W&B mirror failed; the job goes on and its committed manifest records are unaffected (%s). "
            "W&B said: %s.%s To mirror later, rerun when W&B is reachable (WANDB_INIT_TIMEOUT sets how long to "
            "wait), or set WANDB_MODE=offline and `wandb sync` the run.",
            kept,
            error,
            _comm_hint(exc, target.entity, target.project or DEFAULT_PROJECT, "write to"),
        )
        records = [{**target.planned(_name(a, m)), "status": "failed", "error": error} for a, m in outputs]
    for (_, manifest), record in zip(outputs, records, strict=True):
        if manifest is not None and store is not None:
            try:
                store.write_sidecar(manifest, SIDECAR, record)
            except Exception as exc:  # the manifest is committed; losing the sidecar loses only W&B's version
                _LOG.warning("Could not record the W&B mirror of %s in the store: %s", manifest.ref, _scrub(str(exc)))
    return records


def _log_run(
    outputs: list[tuple[Artifact, Manifest | None]],
    target: WandbTarget,
    store: Any,
    record: RunRecord | None,
    used: list[str],
    wandb_inputs: list[str],
    job_type: str | None,
    run_dir: str | None,
) -> list[dict[str, Any]]:
    import wandb

    run = _LIVE.pop(target.run_id, None)  # the run a training loop logged its curves to as it went
    live = run is not None
    if live:
        run.config.update(_run_config(record), allow_val_change=True)
    else:
        run = _client().init(
            project=target.project or DEFAULT_PROJECT,
            entity=target.entity,
            id=target.run_id,
            job_type=job_type,
            config=_run_config(record),
            dir=os.environ.get("WANDB_DIR") or run_dir,
            reinit="create_new",  # never finish a run the user's own script has open
        )
    try:
        if run.disabled:
            return [{**target.planned(_name(a, m)), "status": "disabled"} for a, m in outputs]
        online = not run.offline
        missing = _use_inputs(run, used, wandb_inputs) if online else []
        results = []
        for artifact, manifest in outputs:
            logged = run.log_artifact(
                _build(wandb, artifact, manifest, store, used, wandb_inputs), aliases=_aliases(manifest)
            )
            name = _name(artifact, manifest)
            base = {**target.planned(name), "entity": run.entity or target.entity, "project": run.project}
            base.update(inputs=used, wandb_inputs=wandb_inputs, aliases=_aliases(manifest))
            if online:
                logged.wait(timeout=WAIT_TIMEOUT_S)
                base.update(
                    status="logged",
                    qualified_name=logged.qualified_name,
                    version=logged.version,
                    run_url=run.url,
                    missing_input_edges=missing,
                )
            else:
                base.update(status="offline", run_dir=run.settings.sync_dir, sync=f"wandb sync {run.settings.sync_dir}")
            results.append(base)
        for artifact, manifest in outputs:
            if not live:  # a live run has every row of the curves already, at its step
                _log_history(run, artifact, _name(artifact, manifest))
        metrics = {f"{_name(a, m)}/{k}": v for a, m in outputs for k, v in _metrics(a).items()}
        if metrics:
            run.log(metrics)
        return results
    finally:
        run.finish()


# -- training curves as they grow -------------------------------------------------------------------------------

# The job's W&B run, opened by a training loop to log its metrics live (`live_logger`), by run id: the mirror at
# job end logs the committed artifacts into that same run and finishes it (one W&B run per job).
_LIVE: dict[str, Any] = {}


def live_logger(target: WandbTarget, job_type: str | None, run_dir: str | None) -> Callable[[dict], None] | None:
    """A function that logs one metrics row (`{"step": N, "loss": ...}`) to the job's W&B run at its step, as
    training goes, so a user watches the curves grow; None when W&B is disabled or cannot start (one warning:
    the job goes on). Rank 0 only."""
    if not is_rank0():
        return None
    run = _LIVE.get(target.run_id)
    if run is None:
        try:
            with _quiet_wandb():
                run = _client().init(project=target.project or DEFAULT_PROJECT, entity=target.entity,
                                     id=target.run_id, job_type=job_type, dir=os.environ.get("WANDB_DIR") or run_dir,
                                     reinit="create_new")  # fmt: skip
        except Exception as exc:  # W&B never fails a job: the curves still go to metrics.jsonl and the PNG
            _LOG.warning("W&B could not start, so the curves are not logged live (%s); the job goes on.",
                         " ".join(_scrub(f"{type(exc).__name__}: {exc}").split()))  # fmt: skip
            return None
        if run.disabled:
            run.finish()
            return None
        _LIVE[target.run_id] = run

    def log(row: dict) -> None:
        values = dict(row)
        step = values.pop("step")
        run.log(values, step=step)

    return log


def _log_history(run: Any, artifact: Artifact, name: str) -> None:
    """The training curves: each row of the `metrics.jsonl` named by the artifact's `history`, at its step."""
    history = artifact.metadata.get("history")
    if not history or not Path(history).is_file():
        return
    for line in Path(history).read_text().splitlines():
        row = json.loads(line)
        step = row.pop("step")
        run.log({f"{name}/{key}": value for key, value in row.items()}, step=step)


def _use_inputs(run: Any, used: list[str], wandb_inputs: list[str]) -> list[str]:
    """Declare an input edge for every used artifact; returns those W&B does not know (never mirrored)."""
    missing = []
    prefix = f"{run.entity}/{run.project}/" if run.entity else f"{run.project}/"
    for ref in used:
        name, _, version = ref.rpartition(":v")
        try:
            run.use_artifact(f"{prefix}{name}:{version_alias(int(version))}")
        except Exception:
            missing.append(ref)
    for path in wandb_inputs:
        try:
            run.use_artifact(path)
        except Exception:
            missing.append(path)
    if missing:
        _LOG.info("W&B knows no mirror of %s; the inputs are kept in the artifact metadata", ", ".join(missing))
    return missing


def _build(
    wandb: Any, artifact: Artifact, manifest: Manifest | None, store: Any, used: list[str], wandb_inputs: list[str]
) -> Any:
    name = _name(artifact, manifest)
    fields = manifest.metadata if manifest is not None else redact(artifact.model_dump(mode="json"))
    out = wandb.Artifact(
        name,
        type=wandb_type(artifact),
        metadata={**fields, "nemotron": _provenance(manifest, store, used, wandb_inputs, artifact)},
    )
    reference = _reference_uri(artifact.path)  # the data by reference; a local path becomes a file:// URI
    if reference is not None:
        out.add_reference(reference, checksum=False)  # lineage only: W&B must never download it
    for path in _uploads(artifact):
        local = Path(path)
        if local.is_dir():
            out.add_dir(str(local), name=local.name)
        else:
            out.add_file(str(local), name=local.name)
    record = manifest.model_dump(mode="json") if manifest is not None else fields
    with out.new_file("nemotron/manifest.json") as f:  # unique per version: W&B makes a new version each time
        f.write(json.dumps(record, indent=2, default=str))
    return out


def _provenance(
    manifest: Manifest | None, store: Any, used: list[str], wandb_inputs: list[str], artifact: Artifact
) -> dict[str, Any]:
    """The `nemotron` block of the W&B metadata: how to find the record, and the inputs even offline."""
    info: dict[str, Any] = {"path": artifact.path, "used_artifacts": used, "wandb_inputs": wandb_inputs}
    if manifest is not None:
        files = manifest.files
        info.update(
            ref=manifest.ref,
            uri=manifest.uri,
            version=manifest.version,
            used_artifacts=manifest.used_artifacts,
            inputs=manifest.inputs,
            files={"count": len(files), "bytes": sum(f.size for f in files), "digest": _files_digest(manifest)},
        )
        if store is not None:
            info.update(
                store=store.url, manifest=f"{store.url.rstrip('/')}/{manifest.name}/v{manifest.version}/manifest.json"
            )
        run = manifest.run
        if run is not None:
            info["run"] = {
                "host": run.host,
                "git": run.git.model_dump() if run.git else None,
                "slurm_job_id": run.slurm_job_id,
                "hydra_job_id": run.hydra_job_id,
                "output_dir": run.output_dir,
            }
    return info


def _files_digest(manifest: Manifest) -> str | None:
    """One digest over the files' (path, size, digest): equal iff the recorded contents are equal."""
    if not manifest.files or any(f.digest is None for f in manifest.files):
        return None
    import xxhash

    listing = "\n".join(f"{f.path}\t{f.size}\t{f.digest}" for f in sorted(manifest.files, key=lambda f: f.path))
    return f"xxh3_128:{xxhash.xxh3_128_hexdigest(listing.encode())}"


def _reference_uri(uri: str) -> str | None:
    if uri.startswith(_REFERENCE_SCHEMES):
        return uri
    if "://" in uri:  # a filesystem W&B cannot reference (hf://, memory://): the metadata keeps the path
        return None
    return Path(uri).resolve().as_uri()


def _aliases(manifest: Manifest | None) -> list[str]:
    return ["latest", version_alias(manifest.version)] if manifest is not None else ["latest"]


def _name(artifact: Artifact, manifest: Manifest | None) -> str:
    return manifest.name if manifest is not None else str(artifact.name)


def _uploads(artifact: Artifact) -> list[str]:
    for cls in type(artifact).__mro__:
        if cls.__name__ in UPLOADS:
            return UPLOADS[cls.__name__](artifact)
    return []


def wandb_type(artifact: Artifact) -> str:
    for cls in type(artifact).__mro__:
        if cls.__name__ in _WANDB_TYPES:
            return _WANDB_TYPES[cls.__name__]
    return "artifact"


def _run_config(record: RunRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    config = dict(record.config)
    config["nemotron"] = {"command": record.command, "overrides": record.overrides, "host": record.host}
    return redact(config)


def _metrics(artifact: Artifact) -> dict[str, int | float]:
    fields = artifact.model_dump(exclude=set(Artifact.model_fields))
    numbers = {k: v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    numbers.update(
        {k: v for k, v in artifact.metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    )
    return numbers


@contextlib.contextmanager
def _quiet_wandb() -> Iterator[None]:
    """wandb prints banners and, on a terminal without a key, prompts for a login: neither belongs in a
    job's output. Silent mode also turns the prompt into an error (caught by `mirror`). wandb also records
    the command line (sys.argv) in the run's metadata: it sees it with secret-named overrides redacted."""
    previous, argv = os.environ.get("WANDB_SILENT"), sys.argv
    os.environ["WANDB_SILENT"] = "true"
    sys.argv = [_scrub(redact_override(arg)) for arg in argv]
    try:
        yield
    finally:
        sys.argv = argv
        if previous is None:
            os.environ.pop("WANDB_SILENT", None)
        else:
            os.environ["WANDB_SILENT"] = previous


def _scrub(text: str) -> str:
    """`text` without the value of any secret-named environment variable (WANDB_API_KEY, ...)."""
    return redact_text(text)


# -- aliases ------------------------------------------------------------------------------------------------


def mirror_alias(store: Any, manifest: Manifest, alias: str) -> dict[str, Any] | None:
    """Give the W&B mirror of `manifest` the alias `alias` too (after the store set it); never raises.

    None if the version has no W&B mirror record. Otherwise a record with `status`: `applied` (W&B moved the
    alias there: W&B keeps one version per alias and name, like the store), `pending` (not possible now:
    offline, or W&B failed; kept in the version's `wandb.json` under `pending_aliases`, and rerunning the alias
    command online applies it), or `skipped` (the version never reached W&B, or W&B is disabled).
    """
    record = wandb_record(store, manifest)
    if record is None:
        return None
    target = _alias_target(record, manifest)
    base = {"alias": alias, "wandb": target}
    if manifest.origin:
        origin = manifest.origin.get("store")
        return {**base, "status": "skipped", "reason": f"imported from {origin}: its W&B mirror belongs to that store"}
    if record.get("status") in ("failed", "disabled"):
        return {**base, "status": "skipped", "reason": f"this version was never mirrored to W&B ({record['status']})"}
    if _mode() == "disabled":
        return {**base, "status": "skipped", "reason": "WANDB_MODE=disabled"}
    if _mode() in ("offline", "dryrun"):
        reason = f"WANDB_MODE={_mode()}: W&B aliases can only be changed online"
        return _pending(store, manifest, record, {**base, "status": "pending", "reason": reason})
    try:
        with _quiet_wandb():
            _add_alias(_client().api(), target, alias)
    except Exception as exc:
        entity, project = _entity_project(target)
        error = " ".join(_scrub(f"{type(exc).__name__}: {exc}").split()) + _comm_hint(exc, entity, project, "write to")
        _LOG.warning("W&B did not take the alias %s of %s (the store has it): %s", alias, manifest.ref, error)
        return _pending(store, manifest, record, {**base, "status": "pending", "reason": error})
    _forget_pending(store, manifest, record, alias)
    return {**base, "status": "applied"}


def _alias_target(record: dict[str, Any], manifest: Manifest) -> str:
    """The W&B path of a version's mirror: its qualified name once known, else its `manifest-vN` alias."""
    if record.get("qualified_name"):
        return str(record["qualified_name"])
    prefix = f"{record['entity']}/" if record.get("entity") else ""
    return f"{prefix}{record.get('project') or DEFAULT_PROJECT}/{record.get('artifact') or manifest.name}:" + (
        version_alias(manifest.version)
    )


def _add_alias(api: Any, path: str, alias: str) -> None:
    artifact = api.artifact(path)
    if alias not in artifact.aliases:
        artifact.aliases = [*artifact.aliases, alias]
        artifact.save()


def _pending(store: Any, manifest: Manifest, record: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Record an alias W&B does not have yet in the version's `wandb.json`; returns `result`."""
    pending = [p for p in record.get("pending_aliases", []) if p.get("alias") != result["alias"]]
    pending.append({"alias": result["alias"], "at": datetime.now(timezone.utc).isoformat(), "reason": result["reason"]})
    _update_sidecar(store, manifest, {"pending_aliases": pending})
    return result


def _forget_pending(store: Any, manifest: Manifest, record: dict[str, Any], alias: str) -> None:
    pending = record.get("pending_aliases", [])
    if any(p.get("alias") == alias for p in pending):
        _update_sidecar(store, manifest, {"pending_aliases": [p for p in pending if p.get("alias") != alias]})


def _update_sidecar(store: Any, manifest: Manifest, changes: dict[str, Any]) -> None:
    try:
        store.write_sidecar(manifest, SIDECAR, {**(store.read_sidecar(manifest, SIDECAR) or {}), **changes})
    except Exception as exc:  # the alias is set in the store; only the note about W&B is lost
        _LOG.warning("Could not record the W&B alias state of %s in the store: %s", manifest.ref, _scrub(str(exc)))


# -- resolving wandb:// references ------------------------------------------------------------------------


@dataclass
class WandbArtifact:
    """A W&B artifact version as nemotron sees it."""

    path: str  # entity/project/name:vK
    type: str
    digest: str
    metadata: dict[str, Any]
    references: list[str]

    @property
    def uri(self) -> str:
        return f"wandb://{self.path}"

    @property
    def nemotron_ref(self) -> str | None:
        """`name:vN` in the manifest store, if this W&B version mirrors one."""
        info = self.metadata.get("nemotron")
        return info.get("ref") if isinstance(info, dict) else None

    def fields(self) -> dict[str, Any]:
        """Artifact fields: those nemotron mirrored, else a generic record pointing at the references."""
        if self.nemotron_ref:
            return {k: v for k, v in self.metadata.items() if k != "nemotron"}
        path = _common_path(self.references) or self.uri
        return {"path": path, "type": "", "metadata": {**self.metadata, "wandb_type": self.type}}


def fetch(path: str) -> WandbArtifact:
    """The W&B artifact at `entity/project/name:selector` (online only)."""
    if _mode() in ("offline", "disabled", "dryrun"):
        raise NemotronError(
            f"wandb://{path} cannot be resolved with WANDB_MODE={os.environ['WANDB_MODE']}: W&B references "
            "resolve only online. Use the manifest store's reference (name:vN) instead."
        )
    entity, project = _entity_project(path)
    try:
        with _quiet_wandb():
            found = _client().api().artifact(path)
            references = [e.ref for e in found.manifest.entries.values() if e.ref]
            return WandbArtifact(
                path=found.qualified_name,
                type=found.type,
                digest=found.digest,
                metadata=dict(found.metadata or {}),
                references=references,
            )
    except ImportError as exc:
        raise NemotronError("wandb:// references need the wandb extra: pip install 'nemotron[wandb]'.") from exc
    except Exception as exc:
        hint = _comm_hint(exc, entity, project, "read") or (
            " Check the entity, project, name and alias, that WANDB_API_KEY (or `wandb login`) is set up, and "
            "that W&B is reachable."
        )
        raise NemotronError(f"Cannot resolve wandb://{path}: {_scrub(f'{type(exc).__name__}: {exc}')}.{hint}") from exc


def _mode() -> str:
    return os.environ.get("WANDB_MODE", "").lower()


def _entity_project(path: str) -> tuple[str | None, str]:
    """(entity, project) of `entity/project/name:selector` or `project/name:selector`."""
    parts = path.split("/")
    return (parts[0], parts[1]) if len(parts) >= 3 else (None, parts[0])


def _comm_hint(exc: BaseException, entity: str | None, project: str, action: str) -> str:
    """For W&B's CommError (what it raises for an unknown entity or project, or no access): a sentence that
    names both; else ''."""
    try:
        from wandb.errors import AuthenticationError, CommError
    except ImportError:
        return ""
    if isinstance(exc, AuthenticationError):
        return " W&B rejected the credentials: set WANDB_API_KEY or run `wandb login`."
    if not isinstance(exc, CommError):
        return ""
    who = f"entity {entity!r}" if entity else "your default W&B entity"
    return (
        f" Check that the W&B {who} and project {project!r} exist and that your W&B user may {action} them "
        "(wandb.entity=..., wandb.project=...), and that W&B is reachable."
    )


def _common_path(references: list[str]) -> str | None:
    """The one directory or file the references point into (file:// refs become local paths)."""
    if not references:
        return None
    paths = [r[len("file://") :] if r.startswith("file://") else r for r in references]
    common = os.path.commonprefix(paths)
    if len(paths) > 1 and not common.endswith("/"):
        common = common.rsplit("/", 1)[0]
    return common.rstrip("/") or None
