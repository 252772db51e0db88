"""Move a version and its whole upstream lineage to another store: `export --closure` / `import-bundle`.

A bundle is a plain directory (copy it with rsync, a tarball, a disk):

    OUT/nemotron-bundle.json            the index: format, source store, root ref, and per version its
                                        manifest file, data directory and every file with size and digest
    OUT/manifests/{name}/v{N}/manifest.json   the manifests as committed in the source store
    OUT/data/{name}/v{N}/...            a copy of each version's files (relative symlinks kept as symlinks)
    OUT/owner.json                      written by the first import: the store that owns the data copy

Export copies exactly the files each manifest recorded and refuses data that no longer matches its
digests. Import checks every manifest and every file against the index before it writes anything, then
commits the versions upstream first with the same names: a name new to the target keeps its version numbers,
a name that already has versions gets the next free ones, and `used_artifacts` (and pinned `art://`
references in fields) follow the mapping. The versions' paths point at the bundle's data copy, so import is
zero-copy too; the store that owns the copy (owner.json) may delete it with `gc --data`. Importing the same
bundle again maps each version to the one committed the first time instead of duplicating it.

Aliases travel too: the index lists every alias of the source store that points at an exported version, and
import points the same alias at the mapped version in the target (recorded in the alias history like any
alias change). An alias the target already has is never moved: if it points elsewhere, import skips it and
reports the conflict (`ImportResult.alias_conflicts`) with the command that would move it.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nemotron.artifacts.refs import SCHEME, ArtifactRef, validate_alias
from nemotron.errors import CommitError, NemotronError
from nemotron.tracking.files import digest_file, new_hasher
from nemotron.tracking.lineage import upstream_closure
from nemotron.tracking.records import Manifest
from nemotron.tracking.store import ManifestStore

INDEX = "nemotron-bundle.json"
OWNER = "owner.json"
FORMAT = "nemotron-bundle/1"
_CHUNK = 8 << 20


# -- export ----------------------------------------------------------------------------------------------


def export_closure(store: ManifestStore, reference: str, out: str, progress=None) -> dict[str, Any]:
    """Write the bundle of `reference` into the new directory `out`; returns the index."""
    target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NemotronError(f"{out} already exists and is not empty; export writes a new bundle directory.")
    versions = upstream_closure(store, reference)
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        entries: list[dict[str, Any]] = []
        copies: dict[tuple, dict[str, Any]] = {}  # versions that share one path and content share one copy
        for manifest in versions:
            key = (manifest.path, tuple((f.path, f.size, f.digest) for f in manifest.files))
            entries.append(_export_version(manifest, staging, copies.get(key)))
            copies.setdefault(key, entries[-1])
            if progress:
                progress(entries[-1])
        index = {
            "format": FORMAT,
            "root": versions[-1].ref,
            "source_store": store.url,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "created_by": f"{getpass.getuser()}@{socket.gethostname()}",
            "artifacts": entries,
            "aliases": _exported_aliases(store, versions),
        }
        (staging / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return index


def _exported_aliases(store: ManifestStore, versions: list[Manifest]) -> list[dict[str, Any]]:
    """Every alias of the source store that points at one of the exported versions."""
    exported = {(m.name, m.version) for m in versions}
    found = []
    for name in sorted({m.name for m in versions}):
        for alias, version in sorted(store.aliases(name).items()):
            if (name, version) in exported:
                found.append({"name": name, "alias": alias, "version": version})
    return found


def _export_version(manifest: Manifest, bundle: Path, same_data: dict[str, Any] | None) -> dict[str, Any]:
    import fsspec

    relative_manifest = f"manifests/{manifest.name}/v{manifest.version}/manifest.json"
    manifest_file = bundle / relative_manifest
    manifest_file.parent.mkdir(parents=True)
    manifest_file.write_bytes(manifest.model_dump_json(indent=2).encode())
    entry: dict[str, Any] = {
        "ref": manifest.ref,
        "name": manifest.name,
        "version": manifest.version,
        "type": manifest.type,
        "manifest": relative_manifest,
        "manifest_digest": _local_digest(manifest_file),
        "data": None,
        "data_is_file": False,
        "files": [],
        "bytes": 0,
    }
    if not manifest.files:
        return entry  # nothing was recorded under the path (an external id): the path is kept as it is
    if same_data and same_data["files"]:
        keys = ("data", "data_is_file", "files")
        return {**entry, **{key: same_data[key] for key in keys}, "bytes": 0, "shared_with": same_data["ref"]}
    fs, root = fsspec.core.url_to_fs(manifest.path)
    is_file = fs.isfile(root)
    data_dir = f"data/{manifest.name}/v{manifest.version}"
    entry.update({"data": data_dir, "data_is_file": is_file})
    for record in manifest.files:
        source = root if is_file else f"{root.rstrip('/')}/{record.path}"
        destination = bundle / data_dir / record.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        algorithm = (record.digest or "xxh3_128:").split(":", 1)[0]
        if _copy_symlink(fs, source, root, destination):
            size, digest = record.size, digest_file(fs, source, algorithm)
        else:
            size, digest = _copy(fs, source, destination, algorithm)
        if size != record.size or (record.digest and digest != record.digest):
            raise NemotronError(
                f"{manifest.ref}: {record.path} under {manifest.path} no longer matches its manifest "
                f"(size {record.size} -> {size}). Export copies only data that matches what was committed; "
                f"`nemotron-art verify {manifest.ref}` lists what changed."
            )
        entry["files"].append({"path": record.path, "size": size, "digest": digest})
        entry["bytes"] += size
    return entry


def _copy(fs, source: str, destination: Path, algorithm: str) -> tuple[int, str]:
    """Copy one file, hashing it on the way: (size, digest)."""
    hasher = new_hasher(algorithm)
    size = 0
    try:
        with fs.open(source, "rb") as src, open(destination, "wb") as dst:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                dst.write(chunk)
                size += len(chunk)
    except FileNotFoundError as exc:
        raise NemotronError(f"{source} is recorded in its manifest but missing: cannot export it.") from exc
    return size, f"{algorithm}:{hasher.hexdigest()}"


def _copy_symlink(fs, source: str, root: str, destination: Path) -> bool:
    """Keep a local relative symlink that stays inside the artifact (SFT split links) as a symlink."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if not protocols & {"file", "local"} or not os.path.islink(source):
        return False
    link = os.readlink(source)
    inside = os.path.realpath(os.path.join(os.path.dirname(source), link))
    if os.path.isabs(link) or not inside.startswith(os.path.realpath(root) + os.sep):
        return False
    os.symlink(link, destination)
    return True


def _local_digest(path: Path) -> str:
    import fsspec

    return digest_file(fsspec.filesystem("file"), str(path), "xxh3_128")


# -- import ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasConflict:
    """A bundle alias the target already has on another version: import leaves it where it is."""

    name: str
    alias: str
    wanted: str  # the target ref the bundle's alias maps to
    current: str  # the target ref the alias points at now

    def message(self) -> str:
        return (
            f"{self.name}:{self.alias} already points at {self.current} here, the bundle has it on {self.wanted}; "
            f"left unchanged (move it with `nemotron-art alias {self.wanted} {self.alias}`)"
        )


@dataclass
class ImportResult:
    mapping: dict[str, str] = field(default_factory=dict)  # bundle ref -> ref in the target store
    reused: list[str] = field(default_factory=list)  # bundle refs that were already there
    aliases: dict[str, str] = field(default_factory=dict)  # "name:alias" -> target ref it points at
    alias_conflicts: list[AliasConflict] = field(default_factory=list)  # aliases left where they were
    owned: bool = False
    owner_note: str = ""


def read_bundle(path: str) -> tuple[Path, dict[str, Any]]:
    bundle = Path(path).expanduser().resolve()
    index_file = bundle / INDEX
    if not index_file.is_file():
        raise NemotronError(f"{path} is not a nemotron bundle (no {INDEX}); make one with `nemotron-art export`.")
    try:
        index = json.loads(index_file.read_text())
    except ValueError as exc:
        raise NemotronError(f"{index_file} is not valid JSON ({exc}): the bundle is damaged.") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise NemotronError(f"{index_file} is not a {FORMAT} index (format {index.get('format')!r}).")
    return bundle, index


def check_bundle(bundle: Path, index: dict[str, Any]) -> dict[str, Manifest]:
    """Every manifest and data file against the index; raises one error listing every problem."""
    import fsspec

    fs = fsspec.filesystem("file")
    problems: list[str] = []
    manifests: dict[str, Manifest] = {}
    checked: set[str] = set()
    for entry in index.get("artifacts", []):
        manifest_file = bundle / entry["manifest"]
        if not manifest_file.is_file():
            problems.append(f"{entry['manifest']} is missing")
            continue
        if digest_file(fs, str(manifest_file), "xxh3_128") != entry["manifest_digest"]:
            problems.append(f"{entry['manifest']} was modified")
            continue
        manifest = Manifest.model_validate_json(manifest_file.read_bytes())
        if manifest.ref != entry["ref"]:
            problems.append(f"{entry['manifest']} holds {manifest.ref}, the index says {entry['ref']}")
        manifests[entry["ref"]] = manifest
        if entry.get("data") and entry["data"] not in checked:
            checked.add(entry["data"])
            problems.extend(_check_data(fs, bundle, entry))
    problems.extend(_alias_problems(index.get("aliases", []), manifests))
    for ref, manifest in manifests.items():
        problems.extend(
            f"{ref} uses {used}, which is not in the bundle"
            for used in manifest.used_artifacts
            if used not in manifests
        )
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise NemotronError(
            f"The bundle {bundle} does not match its index, so nothing was imported: {shown}. "
            "Copy the bundle again from its source (or export it again)."
        )
    return manifests


def _alias_problems(aliases: Any, manifests: dict[str, Manifest]) -> list[str]:
    """Alias entries of the index that could not be imported: checked before anything is written."""
    if not isinstance(aliases, list):
        return ["the index's aliases are not a list"]
    problems = []
    for entry in aliases:
        try:
            validate_alias(entry["alias"])
            ref = f"{entry['name']}:v{int(entry['version'])}"
        except (KeyError, TypeError, ValueError, NemotronError):
            problems.append(f"alias entry {entry!r} is malformed")
            continue
        if ref not in manifests:
            problems.append(f"alias {entry['name']}:{entry['alias']} points at {ref}, which is not in the bundle")
    return problems


def _check_data(fs, bundle: Path, entry: dict[str, Any]) -> list[str]:
    data = bundle / entry["data"]
    problems = []
    expected = {record["path"]: record for record in entry["files"]}
    for relative, record in expected.items():
        location = data / relative
        if not location.is_file():
            problems.append(f"{entry['data']}/{relative} is missing")
        elif location.stat().st_size != record["size"]:
            problems.append(f"{entry['data']}/{relative} changed size ({record['size']} -> {location.stat().st_size})")
        elif digest_file(fs, str(location), record["digest"].split(":", 1)[0]) != record["digest"]:
            problems.append(f"{entry['data']}/{relative} was modified (digest mismatch)")
    if data.is_dir():
        for path in sorted(data.rglob("*")):
            if path.is_file() and str(path.relative_to(data)) not in expected:
                problems.append(f"{entry['data']}/{path.relative_to(data)} is not in the index")
    return problems


def import_bundle(store: ManifestStore, path: str, progress=None) -> ImportResult:
    bundle, index = read_bundle(path)
    manifests = check_bundle(bundle, index)  # before anything is written anywhere
    store.check_writable()
    result = ImportResult()
    existing = {name: store.versions(name) for name in {m.name for m in manifests.values()}}
    for entry in index["artifacts"]:
        source = manifests[entry["ref"]]
        reused = _same_version(store, source, existing[source.name])
        if reused is not None:
            result.mapping[source.ref] = reused
            result.reused.append(source.ref)
        else:
            if not result.owner_note and not result.owned:  # the first version to commit claims the data
                result.owned, result.owner_note = _claim(bundle, store)
            record = _rewritten(source, bundle, entry, index, result)
            exact = source.version if not existing[source.name] else None
            result.mapping[source.ref] = _commit(store, source.name, record, exact).ref
        if progress:
            progress(source.ref, result.mapping[source.ref], source.ref in result.reused)
    _import_aliases(store, index.get("aliases", []), result, bundle)
    return result


def _import_aliases(store: ManifestStore, aliases: list[dict[str, Any]], result: ImportResult, bundle: Path) -> None:
    """Point each bundle alias at its mapped version, unless the target has that alias on another version."""
    for entry in aliases:
        name, alias = entry["name"], entry["alias"]
        wanted = result.mapping[f"{name}:v{entry['version']}"]  # check_bundle: the bundle carries it
        current = store.aliases(name).get(alias)
        if current is None:
            store.set_alias(wanted, alias, note=f"import-bundle {bundle}")
        elif f"{name}:v{current}" != wanted:
            result.alias_conflicts.append(AliasConflict(name, alias, wanted, f"{name}:v{current}"))
            continue
        result.aliases[f"{name}:{alias}"] = wanted


def _claim(bundle: Path, store: ManifestStore) -> tuple[bool, str]:
    """The first store to import a bundle owns its data copy (`gc --data` may delete it); later ones do not."""
    claim = {"store": store.url, "at": datetime.now(timezone.utc).isoformat(), "by": getpass.getuser()}
    owner_file = bundle / OWNER
    try:
        with open(owner_file, "x") as f:
            json.dump(claim, f)
        return True, ""
    except FileExistsError:
        owner = json.loads(owner_file.read_text()).get("store")
        if owner == store.url:
            return True, ""
        return False, f"the data copy belongs to {owner}, which imported this bundle first; gc here never deletes it"
    except OSError as exc:
        return False, f"cannot record ownership in the bundle ({exc.strerror}); gc never deletes its data"


def _fingerprint(manifest: Manifest) -> tuple:
    return (manifest.type, manifest.created_at, tuple((f.path, f.size, f.digest) for f in manifest.files))


def _same_version(store: ManifestStore, source: Manifest, versions: list[int]) -> str | None:
    """A version of the target that is this one (imported before, or the same store): its ref."""
    wanted = _fingerprint(source)
    for version in versions:
        candidate = store.manifest(source.name, version)
        origin = candidate.origin or {}
        if _fingerprint(candidate) == wanted or (
            origin.get("ref") == source.ref and origin.get("committed_at") == source.committed_at.isoformat()
        ):
            return candidate.ref
    return None


def _rewritten(
    source: Manifest, bundle: Path, entry: dict[str, Any], index: dict[str, Any], result: ImportResult
) -> dict[str, Any]:
    """The record to commit: paths into the bundle's data copy, inputs and pinned references mapped."""
    record = source.model_dump(mode="json", exclude={"name", "version", "committed_at"})
    old_path = source.path
    if entry.get("data"):
        data = bundle / entry["data"]
        new_path = str(data / entry["files"][0]["path"]) if entry["data_is_file"] else str(data)
    else:
        new_path = old_path
    record["path"] = new_path
    record["metadata"] = _rewrite(record["metadata"], old_path, new_path, result.mapping)
    record["used_artifacts"] = sorted(result.mapping[used] for used in source.used_artifacts)
    record["origin"] = {
        "ref": source.ref,
        "store": index.get("source_store"),
        "committed_at": source.committed_at.isoformat(),
        "path": old_path,
        "bundle": str(bundle),
        "imported_at": datetime.now(timezone.utc).isoformat(),
    }
    record["data_owned"] = bool(entry.get("data")) and result.owned
    return record


def _rewrite(value: Any, old_path: str, new_path: str, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, old_path, new_path, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, old_path, new_path, mapping) for v in value]
    if not isinstance(value, str):
        return value
    if value == old_path or value.startswith(old_path.rstrip("/") + "/"):
        return new_path + value[len(old_path) :]
    if value.startswith(SCHEME):
        try:
            ref = ArtifactRef.parse(value)
        except NemotronError:
            return value
        if ref.version is not None and f"{ref.name}:v{ref.version}" in mapping:
            return SCHEME + mapping[f"{ref.name}:v{ref.version}"]
    return value


def _commit(store: ManifestStore, name: str, record: dict[str, Any], version: int | None) -> Manifest:
    if version is not None:
        try:
            return store.commit(name, record, version=version)
        except CommitError:
            pass  # taken meanwhile by another writer: take the next free version
    return store.commit(name, record)
