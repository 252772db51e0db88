"""Check that the data a version points at is still what was committed.

Every manifest records, per file under the artifact's path, its size and a content digest (`xxh3_128:<hex>`
by default; `sha256:` and `md5:` are understood too). `verify_manifest` lists the files there now and
compares:

    OK         size and digest match
    MODIFIED   size or digest differ
    MISSING    recorded, not there any more
    NEW        there, but not recorded (an immutable version gained a file)
    UNCHECKED  size matches; the digest was not computed (--sample left it out, or none was recorded)

Listing the files costs one call; digests read every byte, in parallel threads (xxhash releases the GIL).
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from nemotron.errors import NemotronError
from nemotron.store.files import digest_file
from nemotron.store.records import Manifest

OK, MODIFIED, MISSING, NEW, UNCHECKED = "OK", "MODIFIED", "MISSING", "NEW", "UNCHECKED"
PASSING = {OK, UNCHECKED}


@dataclass
class FileCheck:
    path: str
    status: str
    size: int | None = None  # as recorded
    actual_size: int | None = None
    detail: str = ""


@dataclass
class VerifyReport:
    ref: str
    path: str
    mode: str
    files: list[FileCheck]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(check.status for check in self.files))

    @property
    def ok(self) -> bool:
        return all(check.status in PASSING for check in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "path": self.path,
            "mode": self.mode,
            "ok": self.ok,
            "counts": self.counts,
            "files": [asdict(check) for check in self.files],
        }


def list_files(url: str) -> tuple[Any, str, dict[str, int]]:
    """(fs, root, {relative path: size}) of what is under `url` now, named as `scan_files` names them."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        return fs, root, {}
    if fs.isfile(root):
        return fs, root, {root.rsplit("/", 1)[-1]: fs.size(root)}
    prefix = len(root.rstrip("/")) + 1
    return fs, root, {path[prefix:]: info.get("size") or 0 for path, info in fs.find(root, detail=True).items()}


def verify_manifest(
    manifest: Manifest, sample: int | None = None, seed: int | None = None, workers: int = 4
) -> VerifyReport:
    """Compare the files under `manifest.path` with the record; `sample` digests only that many files."""
    if sample is not None and sample < 0:
        raise NemotronError(f"--sample must be 0 or more, got {sample}.")
    fs, root, present = list_files(manifest.path)
    single_file = len(manifest.files) == 1 and fs.exists(root) and fs.isfile(root)
    checks: dict[str, FileCheck] = {}
    to_hash = []
    for entry in manifest.files:
        actual = present.get(entry.path)
        if actual is None:
            checks[entry.path] = FileCheck(entry.path, MISSING, entry.size)
        elif actual != entry.size:
            checks[entry.path] = FileCheck(entry.path, MODIFIED, entry.size, actual, f"size {entry.size} -> {actual}")
        else:
            checks[entry.path] = FileCheck(entry.path, UNCHECKED, entry.size, actual, "size matches")
            if entry.digest:
                to_hash.append(entry)
            else:
                checks[entry.path].detail = "no digest recorded (committed with hash_files=false); size matches"
    if sample is not None and sample < len(to_hash):
        to_hash = random.Random(seed).sample(to_hash, sample)

    def check(entry) -> None:
        location = root if single_file else f"{root.rstrip('/')}/{entry.path}"
        algorithm = entry.digest.split(":", 1)[0]
        actual = digest_file(fs, location, algorithm)
        result = checks[entry.path]
        if actual == entry.digest:
            result.status, result.detail = OK, ""
        else:
            result.status, result.detail = MODIFIED, "content differs (same size)"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(check, to_hash))
    recorded = {entry.path for entry in manifest.files}
    new = [FileCheck(path, NEW, None, size) for path, size in sorted(present.items()) if path not in recorded]
    mode = "full" if sample is None else f"sample of {sample}"
    return VerifyReport(manifest.ref, manifest.path, mode, [*checks.values(), *new])
