"""The manifest store: versioned artifact records on any fsspec filesystem.

Layout under `root`:

    {name}/v{N}/manifest.json    the version: it exists iff this file exists and parses
    {name}/v{N}/metadata.json    the artifact's fields, written by the winner after the commit
    {name}/latest                "vN": a hint, confirmed by probing v{N+1}, v{N+2}, ...
    {name}/aliases/{alias}       "vN"
    {name}/aliases/.lock         held while an alias changes or gc deletes a version (create-only file)
    {name}/alias_history/*.json  one file per alias change (append-only)
    {name}/deletions/*-vN.json   one file per deleted version, written before it goes (`nemotron-art gc`)
    {name}/.staging/*            a local writer's temporary files

A commit is one conditional create of `v{N}/manifest.json`: locally a hard link from a fully written
temporary file (atomic, fails if the name exists); on object stores a create-only put (S3
`If-None-Match: *`, GCS `ifGenerationMatch=0`, both raised as FileExistsError by s3fs/gcsfs; Hugging Face Hub
repositories: a commit with `parent_commit`, hf_commit.py). On conflict the writer takes N+1. Filesystems without
such a put (http://, hf:// storage buckets, ...) are refused for writing unless the user opts into single-writer
mode. Nothing is written into `v{N}/` before that create succeeds, so two
writers racing for the same N never mix their files, and a writer killed at any point leaves no visible partial version.

Numbers are never reused: a commit takes a number above both the highest committed version (found by listing
when the `latest` hint names a version that is not there) and every deleted one. After the create, the commit
is done: `metadata.json` and `latest` are written if they can be (a full disk only costs the copy and the hint,
which readers do without), and a failed write never leaves a temporary file behind.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from nemotron.artifacts.refs import ArtifactRef, validate_alias, validate_name
from nemotron.errors import ArtifactNotFoundError, BadReferenceError, CommitError, StoreError
from nemotron.store.records import Manifest

_VERSION_DIR = re.compile(r"v([1-9]\d*)")
# Filesystems whose writes can be made conditional ("create only if absent").
_CONDITIONAL_PROTOCOLS = {"memory", "s3", "s3a", "gs", "gcs"}
# Object stores whose directory listings fsspec would cache: other writers change them, so never cache.
_UNCACHED_LISTINGS = {"s3", "s3a", "gs", "gcs"}
_MAX_COMMIT_ATTEMPTS = 100_000
_DELETION_FILE = re.compile(r".*-v([1-9]\d*)\.json")
_LOCK_STALE_S = 30.0  # an alias change or one deletion takes milliseconds: an older lock's holder died
_LOCK_WAIT_S = 60.0
_LOG = logging.getLogger("nemotron.store")


class LocalFiles:
    """Every write the store makes to a local filesystem, in one place (tests inject faults such as ENOSPC
    here, one call at a time). Removing files is not here: it frees space and cannot fail for lack of it."""

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def write(self, path: str, data: bytes, sync: bool = False) -> None:
        with open(path, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())

    def link(self, source: str, target: str) -> None:
        os.link(source, target)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)


class VersionInUseError(StoreError):
    """A version gc must keep after all: an alias points at it (set after the plan was made)."""


@dataclass(frozen=True)
class Orphan:
    """What fsck reports: something left by a writer that died (never a visible version; removable), or a
    committed version whose manifest.json was damaged afterwards (`removable=False`: only ever reported)."""

    path: str
    reason: str
    removable: bool = True


class ManifestStore:
    """Versioned artifact records under one fsspec root."""

    local_files = LocalFiles()

    def __init__(self, root: str, single_writer: bool = False) -> None:
        import fsspec

        if not root or not isinstance(root, str):
            raise StoreError(f"The artifact store root must be a path or URL, got {root!r}.")
        self.url = root
        protocol = fsspec.utils.get_protocol(root)
        options = {"use_listings_cache": False} if protocol in _UNCACHED_LISTINGS else {}
        try:
            self.fs, path = fsspec.core.url_to_fs(root, **options)
        except ImportError as exc:  # s3fs, gcsfs, huggingface_hub are extras
            raise StoreError(
                f"The artifact store root {root!r} needs a filesystem package that is not installed ({exc}). "
                "Install the extra for it: pip install 'nemotron[s3]' (s3://), 'nemotron[gcs]' (gs://) "
                "or 'nemotron[hf]' (hf://)."
            ) from exc
        self.root = path.rstrip("/") or "/"
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.is_local = bool(protocols & {"file", "local"})
        self._hub = self._hub_creator() if "hf" in protocols else None
        self.can_create_conditionally = self.is_local or bool(protocols & _CONDITIONAL_PROTOCOLS) or bool(self._hub)
        self.single_writer = single_writer
        self._reached = False  # a remote root answered once (check_writable)
        self.file_ops = 0  # every filesystem call, for the store benchmark

    def _hub_creator(self) -> Any:
        """hf:// roots in a Hub repository create with a `parent_commit` commit (see hf_commit.py)."""
        from nemotron.store.hf_commit import hub_creator

        return hub_creator(self.fs, self.root)

    def __repr__(self) -> str:
        return f"ManifestStore({self.url!r})"

    # -- low-level filesystem calls (counted) -----------------------------------------------------------

    def _p(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        """Turn what a remote filesystem raises for missing credentials or an unreachable endpoint into a
        StoreError (FileNotFoundError and FileExistsError pass through: callers handle them)."""
        try:
            yield
        except (FileNotFoundError, FileExistsError):
            raise
        except Exception as exc:
            problem = _access_problem(exc)
            if problem is None:
                raise
            raise StoreError(f"Cannot use the artifact store {self.url!r}: {problem}") from exc

    def _cat(self, path: str) -> bytes | None:
        self.file_ops += 1
        try:
            with self._io():
                return self.fs.cat_file(path)
        except (FileNotFoundError, NotADirectoryError):  # NotADirectoryError: a root beneath a file
            return None

    def _exists(self, path: str) -> bool:
        self.file_ops += 1
        with self._io():
            return self.fs.exists(path)

    def _ls(self, path: str) -> list[str]:
        self.file_ops += 1
        try:
            with self._io():
                return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(path, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _put(self, path: str, data: bytes) -> None:
        """Overwrite `path` so that readers see the old or the new content, never a torn file."""
        self.file_ops += 1
        if self.is_local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                self.local_files.makedirs(os.path.dirname(path))
                self.local_files.write(tmp, data)
                self.local_files.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        else:
            with self._io():
                self.fs.pipe_file(path, data)

    def _create(self, path: str, data: bytes) -> None:
        """Create `path` with `data` only if it does not exist; raises FileExistsError otherwise."""
        self.file_ops += 1
        if self._hub is not None:
            self._create_on_hub(path, data)
            return
        if not self.is_local:
            with self._io():
                if self.can_create_conditionally:
                    self.fs.pipe_file(path, data, mode="create")
                elif self.fs.exists(path):  # single-writer mode: nobody else writes
                    raise FileExistsError(path)
                else:
                    self.fs.pipe_file(path, data)
            return
        staging = os.path.join(os.path.dirname(os.path.dirname(path)), ".staging")
        tmp = os.path.join(staging, f"{uuid.uuid4().hex}.json")
        try:
            self.local_files.makedirs(staging)
            self.local_files.write(tmp, data, sync=True)
            self._link_into_place(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _link_into_place(self, tmp: str, path: str) -> None:
        """Link the staged file to `path`; if that fails (a full disk), remove the directory it would have
        made if it is empty, so a failed commit leaves no version directory behind."""
        directory = os.path.dirname(path)
        for _ in range(3):
            self.local_files.makedirs(directory)
            try:
                self.local_files.link(tmp, path)
                return
            except FileExistsError:
                raise
            except FileNotFoundError:  # another writer's failed link removed the empty directory: again
                continue
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)  # only if empty: never another writer's version
                raise
        self.local_files.link(tmp, path)

    def _create_on_hub(self, path: str, data: bytes) -> None:
        from nemotron.store.hf_commit import hub_location

        with self._io():
            try:
                self._hub.create(hub_location(self.fs, path), data)
            finally:
                self.fs.invalidate_cache(path)  # readers of this store must see the new commit

    # -- checks -------------------------------------------------------------------------------------------

    def check_readable(self) -> None:
        if not self._exists(self.root):
            raise StoreError(
                f"The artifact store root {self.url!r} does not exist. Point artifacts.manifest.root "
                "(or --root, or NEMOTRON_ARTIFACTS_ROOT) at an existing store, or commit an artifact "
                "there first."
            )

    def check_writable(self) -> None:
        if not (self.can_create_conditionally or self.single_writer):
            raise StoreError(
                f"The filesystem of {self.url!r} ({_protocol_name(self.fs)}) cannot create files "
                "conditionally (create-only-if-absent), so two concurrent writers could overwrite each "
                "other's versions. Use a local or shared path, memory://, s3://, gs:// or a Hub repository "
                "(hf://datasets/...), or set "
                "artifacts.manifest.single_writer=true (ManifestStore(root, single_writer=True) in Python) "
                "if only one process ever writes to this store."
            )
        if not self.is_local and not self._reached:
            self._ls(self.root)  # missing credentials or an unreachable endpoint fail here, before any work
            self._reached = True
        if self.is_local:
            probe = os.path.join(self.root, f".write-test-{uuid.uuid4().hex}")
            try:
                self.local_files.makedirs(self.root)
                self.local_files.write(probe, b"")
                os.unlink(probe)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(probe)
                raise StoreError(
                    f"Cannot write to the artifact store root {self.url!r}: {exc.strerror or exc}. "
                    "Choose a writable directory with artifacts.manifest.root=... (or --root)."
                ) from exc

    # -- reading ------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        self.check_readable()
        return sorted(n for n in self._ls(self.root) if not n.startswith(".") and _is_name(n))

    def versions(self, name: str) -> list[int]:
        """Committed versions of `name`, ascending (one listing plus one check per version)."""
        validate_name(name)
        found = [int(m.group(1)) for d in self._ls(self._p(name)) if (m := _VERSION_DIR.fullmatch(d))]
        return sorted(v for v in found if self._exists(self._p(name, f"v{v}", "manifest.json")))

    def latest_version(self, name: str) -> int | None:
        """The highest committed version: the `latest` hint, then probe upward until a gap."""
        found = self._latest(name)
        return found[0] if found else None

    def _latest(self, name: str) -> tuple[int, bytes | None] | None:
        """The highest committed version and, if it was read on the way, its manifest (None: not read).

        Probing reads `v{N+1}/manifest.json` rather than asking whether it exists: a miss costs the same
        one call (on object stores fewer: no directory fallback), and a hit is the manifest itself. A hint
        whose own version is not there (edited by hand, or deleted) is not trusted: the listing decides.
        """
        hint = _parse_version_text(self._cat(self._p(name, "latest")))
        if hint is not None:
            version, raw = hint, None
            while (probe := self._cat(self._p(name, f"v{version + 1}", "manifest.json"))) is not None:
                version, raw = version + 1, probe
            if raw is None:
                raw = self._cat(self._p(name, f"v{hint}", "manifest.json"))
            if raw is not None:
                return version, raw
        versions = self.versions(name)
        return (versions[-1], None) if versions else None

    def manifest(self, name: str, version: int) -> Manifest:
        raw = self._cat(self._p(name, f"v{version}", "manifest.json"))
        if raw is None:
            raise ArtifactNotFoundError(f"{name}:v{version} does not exist in {self.url}.")
        return self._parse_manifest(raw, f"{name}:v{version}")

    def _parse_manifest(self, raw: bytes, label: str) -> Manifest:
        try:
            return Manifest.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreError(
                f"The manifest of {label} in {self.url} is corrupt ({exc.errors()[0]['msg']}). "
                "Versions are never rewritten, so the file was damaged outside nemotron; run "
                "`nemotron-art fsck` to list damaged records."
            ) from exc

    def resolve(self, ref: ArtifactRef | str) -> Manifest:
        """The manifest of the exact version a reference names (`latest`: 3 file operations)."""
        if isinstance(ref, str):
            ref = ArtifactRef.parse(ref)
        try:
            return self._resolve(ref)
        except ArtifactNotFoundError:
            self.check_readable()  # a missing root explains every miss: say that instead
            raise

    def _resolve(self, ref: ArtifactRef) -> Manifest:
        raw = None
        if ref.version is not None:
            version = ref.version
        elif ref.alias is not None:
            version = self.alias_version(ref.name, ref.alias)
        else:
            found = self._latest(ref.name)
            if found is None:
                raise ArtifactNotFoundError(self._unknown_name_message(ref.name))
            version, raw = found
        if raw is None:
            raw = self._cat(self._p(ref.name, f"v{version}", "manifest.json"))
        if raw is None:
            if not self._ls(self._p(ref.name)):
                raise ArtifactNotFoundError(self._unknown_name_message(ref.name))
            if ref.alias is not None:
                raise ArtifactNotFoundError(
                    f"The alias {ref.name}:{ref.alias} points at v{version}, which no longer exists in "
                    f"{self.url}{self._deleted_note(ref.name, version)}. Point it at an existing version with "
                    f"`nemotron-art alias {ref.name}:vN {ref.alias}` (`nemotron-art ls {ref.name}` lists them)."
                )
            latest = self.latest_version(ref.name)
            if version in self.deleted_versions(ref.name):
                raise ArtifactNotFoundError(
                    f"{ref.name}:v{version} does not exist in {self.url}: it was deleted by `nemotron-art gc` "
                    f"(see {ref.name}/deletions/). The latest version is v{latest}; `nemotron-art ls {ref.name}` "
                    "lists the versions that remain."
                )
            raise ArtifactNotFoundError(
                f"{ref.name}:v{version} does not exist in {self.url}; the latest version is "
                f"v{latest}. Use {ref.name}:latest or one of v1..v{latest}."
            )
        return self._parse_manifest(raw, f"{ref.name}:v{version}")

    def metadata(self, manifest: Manifest) -> dict[str, Any]:
        """The artifact fields of a version: `metadata.json`, or the manifest's copy if it is missing."""
        raw = self._cat(self._p(manifest.name, f"v{manifest.version}", "metadata.json"))
        if raw is not None:
            try:
                return json.loads(raw)
            except ValueError:  # a torn metadata.json: the manifest carries the same fields
                return manifest.metadata
        return manifest.metadata

    def _unknown_name_message(self, name: str) -> str:
        names = self.names() if self._exists(self.root) else []
        close = [n for n in names if name in n or n in name][:5]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        return f"No artifact named {name!r} in {self.url}.{hint} `nemotron-art ls` lists what is there."

    # -- files beside a committed version --------------------------------------------------------------

    def write_sidecar(self, manifest: Manifest, filename: str, data: dict[str, Any]) -> str:
        """Write `v{N}/{filename}` (JSON) after the commit, e.g. the W&B mirror record; returns its URL.

        A sidecar never changes what the version *is* (manifest.json stays immutable); it records what was
        learnt later. Readers that find it missing carry on without it.
        """
        if filename in ("manifest.json", "metadata.json") or "/" in filename:
            raise ValueError(f"{filename!r} is not a sidecar name")
        path = self._p(manifest.name, f"v{manifest.version}", filename)
        self._put(path, json.dumps(data, indent=2, default=str).encode())
        return f"{self.url.rstrip('/')}/{manifest.name}/v{manifest.version}/{filename}"

    def read_sidecar(self, manifest: Manifest, filename: str) -> dict[str, Any] | None:
        raw = self._cat(self._p(manifest.name, f"v{manifest.version}", filename))
        try:
            return json.loads(raw) if raw is not None else None
        except ValueError:
            return None

    # -- committing -----------------------------------------------------------------------------------

    def commit(self, name: str, record: dict[str, Any], version: int | None = None) -> Manifest:
        """Commit `record` (a Manifest without name/version) as the next version of `name`.

        With `version`, commit exactly that version or raise CommitError if it exists (bundle imports keep
        their version numbers where they are free).
        """
        validate_name(name)
        self.check_writable()
        exact = version is not None
        if exact and version in self.deleted_versions(name):
            raise CommitError(f"{name}:v{version} was deleted from {self.url}; version numbers are never reused.")
        if not exact:
            version = max(self.latest_version(name) or 0, max(self.deleted_versions(name), default=0)) + 1
        for _ in range(_MAX_COMMIT_ATTEMPTS):
            manifest = Manifest.model_validate(
                {**record, "name": name, "version": version, "committed_at": datetime.now(timezone.utc)}
            )
            manifest.metadata["name"] = name
            try:
                self._create(self._p(name, f"v{version}", "manifest.json"), _dump(manifest))
            except FileExistsError:
                if exact:
                    raise CommitError(f"{name}:v{version} already exists in {self.url}.") from None
                version += 1
                continue
            except OSError as exc:
                where = f" ({exc.filename})" if exc.filename else ""
                raise CommitError(
                    f"Could not commit {name}:v{version} to {self.url}: {_reason(exc)}{where}; the store is "
                    "unchanged (no version, no temporary file)."
                ) from exc
            self._after_commit(manifest)
            return manifest
        raise CommitError(f"Gave up committing {name} after {_MAX_COMMIT_ATTEMPTS} conflicting versions.")

    def _after_commit(self, manifest: Manifest) -> list[str]:
        """Write `metadata.json` and raise `latest`. The version exists already, so a failure here (a full
        disk) is a warning, not an error: readers take the fields from the manifest and confirm the hint.
        Returns what could not be written."""
        name, version = manifest.name, manifest.version
        missed = []
        try:
            self._put(self._p(name, f"v{version}", "metadata.json"), json.dumps(manifest.metadata, indent=2).encode())
        except (OSError, StoreError) as exc:
            missed.append(f"metadata.json ({_reason(exc)})")
        try:
            self._raise_latest(name, version)
        except (OSError, StoreError) as exc:
            missed.append(f"the latest hint ({_reason(exc)})")
        if missed:
            _LOG.warning(
                "%s:v%d is committed to %s, but %s could not be written; readers use the manifest instead, "
                "so nothing is lost (free some space and run `nemotron-art fsck`).",
                name,
                version,
                self.url,
                " and ".join(missed),
            )
        return missed

    def _raise_latest(self, name: str, version: int) -> None:
        """Make the hint at least `version`; a hint naming a version that does not exist is replaced."""
        current = _parse_version_text(self._cat(self._p(name, "latest"))) or 0
        if version > current or (version < current and not self._exists(self._p(name, f"v{current}", "manifest.json"))):
            self._put(self._p(name, "latest"), f"v{version}".encode())

    def deleted_versions(self, name: str) -> set[int]:
        """Versions of `name` that gc deleted (or is deleting): their numbers are never given out again."""
        found = set()
        for entry in self._ls(self._p(name, "deletions")):
            if match := _DELETION_FILE.fullmatch(entry):
                found.add(int(match.group(1)))
            elif entry.endswith(".json"):  # a record written before the version was in the file name
                raw = self._cat(self._p(name, "deletions", entry))
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    found.add(int(json.loads(raw or b"{}").get("version")))
        return found

    def _deleted_note(self, name: str, version: int) -> str:
        return f" (deleted: see {name}/deletions/)" if version in self.deleted_versions(name) else ""

    # -- aliases ----------------------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        result = {}
        for alias in self._ls(self._p(name, "aliases")):
            if alias.startswith(".") or ".tmp-" in alias:  # a writer's temporary file, not an alias
                continue
            version = _parse_version_text(self._cat(self._p(name, "aliases", alias)))
            if version is not None:
                result[alias] = version
        return result

    def alias_version(self, name: str, alias: str) -> int:
        version = _parse_version_text(self._cat(self._p(name, "aliases", alias)))
        if version is None:
            known = ", ".join(sorted(self.aliases(name))) or "none"
            if not self._ls(self._p(name)):
                raise ArtifactNotFoundError(self._unknown_name_message(name))
            raise ArtifactNotFoundError(
                f"{name} has no alias {alias!r} in {self.url} (aliases: {known}). "
                f"Set one with `nemotron-art alias {name}:vN {alias}`."
            )
        return version

    def set_alias(self, ref: ArtifactRef | str, alias: str, note: str | None = None) -> int:
        """Point `alias` at the version `ref` names; the change (with `note`, if given: what made it) is
        appended to the alias history.

        Under the name's lock (see `_lock`), so the newest history entry always agrees with the alias, and a
        version that gc deletes (or is deleting) is refused: an alias never dangles.
        """
        validate_alias(alias)
        manifest = self.resolve(ref)
        name, version = manifest.name, manifest.version
        self.check_writable()
        with self._lock(name):
            if (
                version in self.deleted_versions(name)
                or self._cat(self._p(name, f"v{version}", "manifest.json")) is None
            ):
                raise ArtifactNotFoundError(
                    f"{name}:v{version} was deleted (or is being deleted) by `nemotron-art gc` in {self.url}, "
                    f"so the alias {alias!r} was not set. Pick a version that exists (`nemotron-art ls {name}`)."
                )
            previous = _parse_version_text(self._cat(self._p(name, "aliases", alias)))
            event = {
                "alias": alias,
                "version": version,
                "previous": previous,
                "at": datetime.now(timezone.utc).isoformat(),
                "user": getpass.getuser(),
                "host": socket.gethostname(),
            }
            if note:
                event["note"] = note
            stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            entry = self._p(name, "alias_history", f"{stamp}.json")
            self._create(entry, json.dumps(event).encode())
            try:
                self._put(self._p(name, "aliases", alias), f"v{version}".encode())
            except BaseException:  # the alias did not move (a full disk): its history entry must not say it did
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(entry)
                raise
        return version

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """`{name}/aliases/.lock`, made with the store's create-only write: alias changes and gc deletions of
        one name take turns. A lock older than _LOCK_STALE_S was left by a process that died: it is removed."""
        path = self._p(name, "aliases", ".lock")
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}).encode()
        deadline = time.monotonic() + _LOCK_WAIT_S
        delay = 0.001
        while True:
            try:
                self._create(path, body)
                break
            except FileExistsError:
                holder = self._lock_holder(path)
                if holder is not None and _lock_is_stale(holder):
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(path)
                    continue
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{path} has been held for over {_LOCK_WAIT_S:.0f} s by {holder or 'another process'}: "
                        "another alias change or gc of this name is stuck. Remove the file if nothing is running."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path)

    def _lock_is_orphan(self, path: str) -> bool:
        holder = self._lock_holder(path)
        return holder is not None and _lock_is_stale(holder)

    def _lock_holder(self, path: str) -> dict[str, Any] | None:
        raw = self._cat(path)
        if raw is None:
            return None  # released meanwhile: try again
        try:
            holder = json.loads(raw)
        except ValueError:
            holder = None
        return holder if isinstance(holder, dict) else {"at": self._mtime(path)}

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        events = []
        for entry in sorted(self._ls(self._p(name, "alias_history"))):
            raw = self._cat(self._p(name, "alias_history", entry))
            if raw is not None:
                events.append(json.loads(raw))
        return events

    # -- whole-store reads and deletion (lineage --down, gc) -------------------------------------------

    def all_manifests(self) -> list[Manifest]:
        """Every committed version of every name (one read per version: for whole-store operations)."""
        return [self.manifest(name, version) for name in self.names() for version in self.versions(name)]

    def delete_version(self, name: str, version: int, event: dict[str, Any] | None = None) -> None:
        """Remove `name:v{version}` (its manifest first, so it stops existing at once), and record why.

        Refuses the highest version (`latest` must never go backwards) and a version an alias points at, checked
        under the lock that alias changes take, so an alias set while gc runs either stops the deletion or is
        refused itself. The deletion record is written first: from then on the number is never reused.
        Policy (what may go) is the caller's.
        """
        validate_name(name)
        self.check_writable()
        latest = self.latest_version(name) or 0
        if version >= latest:
            raise StoreError(f"Refusing to delete {name}:v{version}: it is the latest version of {name}.")
        self._raise_latest(name, latest)  # a lower hint would stop probing at the gap this deletion leaves
        with self._lock(name):
            aliased = sorted(a for a, v in self.aliases(name).items() if v == version)
            if aliased:
                raise VersionInUseError(
                    f"Refusing to delete {name}:v{version}: the alias {', '.join(aliased)} points at it."
                )
            if version in self.deleted_versions(name) or not self._exists(
                self._p(name, f"v{version}", "manifest.json")
            ):
                raise ArtifactNotFoundError(f"{name}:v{version} does not exist in {self.url}.")
            record = {"version": version, "at": datetime.now(timezone.utc).isoformat(), "user": getpass.getuser()}
            stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-v{version}"
            self._create(self._p(name, "deletions", f"{stamp}.json"), json.dumps({**record, **(event or {})}).encode())
        directory = self._p(name, f"v{version}")
        self.file_ops += 2
        with self._io(), contextlib.suppress(FileNotFoundError):
            self.fs.rm(f"{directory}/manifest.json")
        with self._io(), contextlib.suppress(FileNotFoundError):
            self.fs.rm(directory, recursive=True)

    # -- integrity ------------------------------------------------------------------------------------

    def fsck(self, clean: bool = False, grace_s: float = 300.0) -> list[Orphan]:
        """Find what crashed writers left behind; with `clean`, remove what is older than `grace_s`.

        A version directory whose manifest.json exists but does not parse is reported too, never removed: the
        commit wrote that file whole, so it was damaged later, and its data or a copy may still restore it.
        """
        orphans = []
        now = time.time()
        for name in self.names():
            for entry in self._ls(self._p(name, ".staging")):
                orphans.append(Orphan(self._p(name, ".staging", entry), "temporary file of a writer"))
            for entry in self._ls(self._p(name)):
                if _VERSION_DIR.fullmatch(entry):
                    orphans.extend(self._check_version_dir(name, entry))
                elif ".tmp-" in entry:
                    orphans.append(Orphan(self._p(name, entry), "temporary file of a writer"))
            for entry in self._ls(self._p(name, "aliases")):
                if ".tmp-" in entry:
                    orphans.append(Orphan(self._p(name, "aliases", entry), "temporary file of a writer"))
                elif entry == ".lock" and self._lock_is_orphan(self._p(name, "aliases", entry)):
                    orphans.append(Orphan(self._p(name, "aliases", entry), "lock of a writer that died"))
        if clean:
            for orphan in orphans:
                if not orphan.removable:
                    continue
                if grace_s <= 0 or now - self._mtime(orphan.path) >= grace_s:
                    self.fs.rm(orphan.path, recursive=True)
        return orphans

    def _check_version_dir(self, name: str, entry: str) -> list[Orphan]:
        raw = self._cat(self._p(name, entry, "manifest.json"))
        if raw is None:
            return [Orphan(self._p(name, entry), "version directory without manifest.json")]
        try:
            Manifest.model_validate_json(raw)
        except ValidationError:
            return [Orphan(self._p(name, entry), "manifest.json does not parse", removable=False)]
        # a committed version: only a writer killed while writing metadata.json or a sidecar leaves more
        temporary = [f for f in self._ls(self._p(name, entry)) if ".tmp-" in f]
        return [Orphan(self._p(name, entry, f), "temporary file of a writer") for f in temporary]

    def _mtime(self, path: str) -> float:
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return 0.0
        stamp = info.get("mtime") or info.get("created") or info.get("LastModified")
        if not stamp and info.get("type") == "directory":
            # object stores and memory:// keep no time for a directory: its newest file's, else unknown = now
            return max((self._mtime(p) for p in self.fs.find(path)), default=time.time())
        if isinstance(stamp, datetime):
            return stamp.timestamp()
        return float(stamp) if stamp else 0.0


def _protocol_name(fs: Any) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def _access_problem(exc: BaseException) -> str | None:
    """A sentence for credential, permission and connection errors of remote filesystems, else None."""
    kind = type(exc).__name__
    module = type(exc).__module__ or ""
    if kind in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError") or (
        "credential" in kind.lower()
    ):
        return (
            f"no credentials were found ({exc}). Provide them the usual way for this filesystem (for s3://: "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role, plus AWS_ENDPOINT_URL "
            "for an S3-compatible server; for gs://: GOOGLE_APPLICATION_CREDENTIALS or gcloud auth)."
        )
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc}). Check the credentials' access to this bucket and prefix."
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or (
        module.startswith(("aiohttp", "botocore")) and "connect" in kind.lower()
    ):
        return f"the endpoint cannot be reached ({exc}). Check the URL, AWS_ENDPOINT_URL and the network."
    return None


def _lock_is_stale(holder: dict[str, Any]) -> bool:
    """A lock whose process is gone (same host), or older than any alias change or deletion takes."""
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, another user's
            pass
    try:
        return time.time() - float(holder.get("at") or 0) > _LOCK_STALE_S
    except (TypeError, ValueError):
        return True


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc)


def _is_name(text: str) -> bool:
    try:
        validate_name(text)
    except BadReferenceError:
        return False
    return True


def _parse_version_text(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    match = _VERSION_DIR.fullmatch(raw.decode(errors="replace").strip())
    return int(match.group(1)) if match else None


def _dump(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()
