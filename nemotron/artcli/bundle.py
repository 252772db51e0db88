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
import re
import shutil
import socket
import sys
import uuid
from argparse import Namespace
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nemotron.artcli import make_console, print_json
from nemotron.artcli.lineage import upstream_closure
from nemotron.artifacts.refs import SCHEME, ArtifactRef, validate_alias, validate_name
from nemotron.errors import CommitError, NemotronError
from nemotron.store.files import digest_file, new_hasher
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

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
    if index_file.is_symlink():
        raise NemotronError(
            f"{index_file} is a symlink; a bundle's index is a plain file inside it (import reads nothing outside "
            "the bundle), so nothing was imported."
        )
    try:
        index = json.loads(index_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise NemotronError(f"{index_file} is not valid JSON ({exc}): the bundle is damaged.") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise NemotronError(f"{index_file} is not a {FORMAT} index (format {found!r}).")
    return bundle, index


# -- containment: a bundle is read only inside its directory, and gc deletes only the copy a store claimed ---

_DATA_DIR = re.compile(r"data/[^/]+/v[0-9]+")
_ALGORITHMS = ("xxh3_128", "sha256", "md5")


def _inside(path: str | Path, base: Path) -> bool:
    """Whether `path`, once every symlink is resolved, is `base` or below it."""
    return Path(os.path.realpath(path)).is_relative_to(base)


def _relative(bundle: Path, relative: Any, what: str, base: Path | None = None) -> tuple[Path | None, str]:
    """`base/relative` (base: the bundle) if `relative` is a plain relative path that stays inside it after
    symlinks, else (None, why). Nothing is read: only names and links are looked at."""
    base = base or bundle
    if not isinstance(relative, str) or not relative:
        return None, f"{what} {relative!r} is not a relative path"
    if relative.startswith("/") or "\x00" in relative or any(p in ("", ".", "..") for p in relative.split("/")):
        return None, f"{what} {relative!r} points outside the bundle (an absolute path, or '.' and '..' parts)"
    location = base / relative
    if not _inside(location, base):
        return None, f"{what} {relative!r} leads outside the bundle through a symlink (to {os.path.realpath(location)})"
    return location, ""


def _entry_problem(entry: Any) -> str:
    """What makes an index entry unusable (wrong shape or kind of value); '' if it is well formed."""
    if not isinstance(entry, dict):
        return f"artifact entry {entry!r} is not an object"
    label = f"artifact entry {entry.get('ref')!r}"
    for key in ("ref", "manifest", "manifest_digest"):
        if not isinstance(entry.get(key), str):
            return f"{label}: {key} is missing or not a string"
    files, data = entry.get("files"), entry.get("data")
    if not isinstance(files, list) or not all(_file_record_ok(record) for record in files):
        return f"{label}: files is not a list of {{path, size, digest}} records"
    if data is None:
        return f"{label}: it lists files but no data directory" if files else ""
    if not isinstance(data, str) or not _DATA_DIR.fullmatch(data) or "/../" in f"{data}/" or "/./" in f"{data}/":
        return f"{label}: data {data!r} points outside the bundle's data/NAME/vN directories"
    if not files or not isinstance(entry.get("data_is_file", False), bool):
        return f"{label}: data {data!r} without files, or data_is_file is not true/false"
    if entry.get("data_is_file") and len(files) != 1:
        return f"{label}: data_is_file with {len(files)} files"
    return ""


def _file_record_ok(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("path"), str)
        and type(record.get("size")) is int
        and record["size"] >= 0
        and isinstance(record.get("digest"), str)
        and record["digest"].split(":", 1)[0] in _ALGORITHMS
    )


def read_owner(bundle: Path) -> str | None:
    """The store named by the bundle's owner.json, if that is a plain JSON file (never followed as a link)."""
    owner_file = bundle / OWNER
    if owner_file.is_symlink() or not owner_file.is_file():
        return None
    try:
        claim = json.loads(owner_file.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    store = claim.get("store") if isinstance(claim, dict) else None
    return store if isinstance(store, str) else None


def check_bundle(bundle: Path, index: dict[str, Any]) -> dict[str, Manifest]:
    """Every manifest and data file against the index, reading nothing outside the bundle; raises one error
    listing every problem (paths that lead outside the bundle get their own error)."""
    entries = index.get("artifacts", [])
    if not isinstance(entries, list):
        entries, problems = [], ["the index's artifacts are not a list"]
    else:
        problems = []
    manifests: dict[str, Manifest] = {}
    checked: set[str] = set()
    for entry in entries:
        problem = _entry_problem(entry)
        if problem:
            problems.append(problem)
            continue
        manifest, entry_problems = _check_manifest(bundle, entry, manifests)
        problems.extend(entry_problems)
        if manifest is not None:
            manifests[entry["ref"]] = manifest
        if entry["data"] and entry["data"] not in checked:
            checked.add(entry["data"])
            problems.extend(_check_data(bundle, entry))
    if os.path.lexists(bundle / OWNER) and read_owner(bundle) is None:
        problems.append(f"{OWNER} is not a plain JSON file naming a store (a symlink, or edited)")
    problems.extend(_alias_problems(index.get("aliases", []), manifests))
    _raise_problems(bundle, problems)
    return manifests


def _raise_problems(bundle: Path, problems: list[str]) -> None:
    if not problems:
        return
    escapes = [problem for problem in problems if "outside the bundle" in problem]
    shown = "; ".join((escapes or problems)[:10])
    more = len(escapes or problems) - 10
    shown += f"; and {more} more" if more > 0 else ""
    if escapes:
        raise NemotronError(
            f"The bundle {bundle} points outside itself, so nothing was imported and nothing outside it was read: "
            f"{shown}. A bundle keeps its index, manifests and data copies as plain files and directories under "
            "its own directory (`nemotron-art export` writes it so); this one was edited or crafted."
        )
    raise NemotronError(
        f"The bundle {bundle} does not match its index, so nothing was imported: {shown}. "
        "Copy the bundle again from its source (or export it again)."
    )


def _check_manifest(
    bundle: Path, entry: dict[str, Any], earlier: dict[str, Manifest]
) -> tuple[Manifest | None, list[str]]:
    """The entry's manifest, read only from inside the bundle, matching its digest, ref and upstream order."""
    from pydantic import ValidationError

    manifest_file, problem = _relative(bundle, entry["manifest"], "manifest")
    if manifest_file is None:
        return None, [problem]
    if not manifest_file.is_file():
        return None, [f"{entry['manifest']} is missing"]
    if _local_digest(manifest_file) != entry["manifest_digest"]:
        return None, [f"{entry['manifest']} was modified"]
    try:
        manifest = Manifest.model_validate_json(manifest_file.read_bytes())
        validate_name(manifest.name)
    except (ValidationError, NemotronError) as exc:
        return None, [f"{entry['manifest']} is not a valid manifest ({str(exc).splitlines()[0]})"]
    problems = []
    if manifest.ref != entry["ref"]:
        problems.append(f"{entry['manifest']} holds {manifest.ref}, the index says {entry['ref']}")
    if entry["ref"] in earlier:
        problems.append(f"{entry['ref']} is listed twice")
    if manifest.files and not entry["data"]:
        problems.append(f"{entry['ref']} records {len(manifest.files)} file(s) but the bundle carries no copy of them")
    problems.extend(
        f"{entry['ref']} uses {used}, which is not in the bundle (before it)"
        for used in manifest.used_artifacts
        if used not in earlier
    )
    return manifest, problems


def _check_data(bundle: Path, entry: dict[str, Any]) -> list[str]:
    """The entry's data copy: a plain directory of the bundle (no symlink on the way), every listed file inside
    it (a relative symlink may point within the copy), with its size and digest, and nothing unlisted."""
    import fsspec

    fs = fsspec.filesystem("file")
    data = bundle / entry["data"]
    if os.path.lexists(data) and os.path.realpath(data) != str(data):
        return [f"{entry['data']} leads outside the bundle through a symlink (to {os.path.realpath(data)})"]
    problems = []
    expected = {record["path"]: record for record in entry["files"]}
    for relative, record in expected.items():
        location, problem = _relative(bundle, relative, f"{entry['data']} file", base=data)
        if location is None:
            problems.append(problem)
        elif not location.is_file():
            problems.append(f"{entry['data']}/{relative} is missing")
        elif location.stat().st_size != record["size"]:
            problems.append(f"{entry['data']}/{relative} changed size ({record['size']} -> {location.stat().st_size})")
        elif digest_file(fs, str(location), record["digest"].split(":", 1)[0]) != record["digest"]:
            problems.append(f"{entry['data']}/{relative} was modified (digest mismatch)")
    if data.is_dir():
        for path in sorted(data.rglob("*")):
            if (path.is_file() or path.is_symlink()) and str(path.relative_to(data)) not in expected:
                problems.append(f"{entry['data']}/{path.relative_to(data)} is not in the index")
    return problems


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
        owner = read_owner(bundle)
        if owner == store.url:
            return True, ""
        holder = owner or "another store (its owner.json is unreadable)"
        return False, f"the data copy belongs to {holder}, which imported this bundle first; gc here never deletes it"
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
    # what it reproduces is no lineage edge, so it may not have travelled: never name another store's number
    record["reproduces"] = result.mapping.get(source.reproduces) if source.reproduces else None
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


# -- gc --data: deleting a claimed copy ------------------------------------------------------------------


def owned_copy(store_url: str, manifest: Manifest) -> tuple[Path | None, str]:
    """The data copy of an imported version that `gc --data` may delete, else (None, why not).

    Worked out from the store's own record, never from the bundle's files (its index may have been edited
    since), and checked again right before deleting: the version's path, as import wrote it, lies in
    `data/NAME/vN` of the bundle the store recorded; that directory is a plain directory with no symlink
    anywhere on its way; and the bundle's owner.json, a plain file, names this store.
    """
    origin = manifest.origin or {}
    bundle_dir, path = origin.get("bundle"), manifest.path
    if not manifest.data_owned or not isinstance(bundle_dir, str) or not os.path.isabs(bundle_dir):
        return None, "not a bundle data copy this store imported"
    if "\0" in path or "\0" in bundle_dir:  # no file has such a name: an edited record, never deleted
        return None, f"its path {path!r} or bundle {bundle_dir!r} holds a NUL character"
    bundle = Path(bundle_dir)
    if "://" in path or not os.path.isabs(path) or os.path.normpath(path) != path:
        return None, f"its path {path} is not a plain local path inside the bundle {bundle}"
    relative = Path(path).relative_to(bundle / "data") if Path(path).is_relative_to(bundle / "data") else None
    if relative is None or len(relative.parts) < 2:
        return None, f"its path {path} is not inside a data copy of the bundle {bundle} (data/NAME/vN)"
    directory = bundle / "data" / relative.parts[0] / relative.parts[1]
    real = os.path.realpath(directory)
    if real != str(directory):
        return None, f"{directory} leads to {real} through a symlink; gc deletes only the copy the store imported"
    if not directory.is_dir():
        return None, f"the data copy {directory} is gone or not a directory"
    owner = read_owner(bundle)
    if owner != store_url:
        return None, f"the bundle's data belongs to {owner or 'no store (owner.json missing or not a plain file)'}"
    return directory, ""


def delete_copy(store_url: str, manifest: Manifest, planned: str) -> str:
    """Delete the claimed data copy `planned` of `manifest`, checked again now; '' or why it was kept."""
    directory, why = owned_copy(store_url, manifest)
    if directory is None or str(directory) != planned:
        return why or f"the data copy is now {directory}, not the planned {planned}"
    errors: list[str] = []

    def failed(function, path, exc) -> None:  # onexc gets the exception, onerror (3.11) its exc_info
        errors.append(f"{path}: {exc[1] if isinstance(exc, tuple) else exc}")

    handler = {"onexc": failed} if sys.version_info >= (3, 12) else {"onerror": failed}
    if sys.version_info >= (3, 11):  # race-free: the parent opened without following any symlink
        try:
            parent = _open_directory_nofollow(directory.parent)
        except OSError as exc:
            return f"{directory.parent} cannot be opened without following a symlink ({exc.strerror})"
        try:
            shutil.rmtree(directory.name, dir_fd=parent, **handler)
        finally:
            os.close(parent)
    else:
        shutil.rmtree(directory, **handler)  # refuses a symlinked top; never follows links inside
    return f"deleting {directory} failed: {'; '.join(errors[:3])}" if errors else ""


def _open_directory_nofollow(path: Path) -> int:
    """A descriptor of the directory `path`, opened one component at a time without following symlinks."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open("/", flags)
    try:
        for part in path.parts[1:]:
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError:
        os.close(fd)
        raise
    return fd


# -- the commands -----------------------------------------------------------------------------------

console = make_console(stderr=True)


def export_command(store: ManifestStore, args: Namespace) -> int:
    def progress(entry: dict[str, Any]) -> None:
        if not args.json:
            console.print(f"  {entry['ref']:<40} {len(entry['files'])} file(s), {entry['bytes']:,} bytes")

    index = export_closure(store, args.ref, args.closure, progress=progress)
    total = sum(entry["bytes"] for entry in index["artifacts"])
    if args.json:
        print_json(index)
    else:
        console.print(
            f"exported {index['root']} with {len(index['artifacts'])} version(s) of lineage ({total:,} bytes) "
            f"and {len(index['aliases'])} alias(es) to {args.closure}; import it with "
            f"`nemotron-art --root ROOT import-bundle {args.closure}`"
        )
    return 0


def import_bundle_command(store: ManifestStore, args: Namespace) -> int:

    def progress(source: str, target: str, reused: bool) -> None:
        if not args.json:
            note = "already there" if reused else "committed"
            console.print(f"  {source:<40} -> {target}  ({note})")

    result = import_bundle(store, args.bundle, progress=progress)
    conflicts = [conflict.message() for conflict in result.alias_conflicts]
    for conflict in conflicts:
        console.print(f"[yellow]warning:[/] alias {conflict}")
    if args.json:
        print_json(
            {
                "mapping": result.mapping,
                "reused": result.reused,
                "owns_data": result.owned,
                "aliases": result.aliases,
                "alias_conflicts": [asdict(conflict) for conflict in result.alias_conflicts],
            }
        )
        return 0
    committed = len(result.mapping) - len(result.reused)
    console.print(
        f"imported {committed} version(s) into {store.url} ({len(result.reused)} already there); "
        f"{len(result.aliases)} alias(es) set or already in place, {len(conflicts)} left unchanged"
    )
    if result.owner_note:
        console.print(f"[yellow]note:[/] {result.owner_note}")
    return 0
