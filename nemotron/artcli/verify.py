"""`nemotron-art verify`: check that the data a version points at is still what was committed.

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
from argparse import Namespace
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from nemotron.artcli import make_console, print_json
from nemotron.errors import NemotronError
from nemotron.store.files import digest_file
from nemotron.store.manifest_store import ManifestStore
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


# -- the command ------------------------------------------------------------------------------------

console = make_console()
_STYLE = {"OK": "green", "UNCHECKED": "dim", "MODIFIED": "bold red", "MISSING": "bold red", "NEW": "yellow"}


def verify(store: ManifestStore, args: Namespace) -> int:
    """Exit 0 when every recorded file is OK (or UNCHECKED by --sample), 1 otherwise."""
    from nemotron.artcli.lineage import upstream_closure

    manifests = upstream_closure(store, args.ref)[::-1] if args.upstream else [store.resolve(args.ref)]
    reports = [verify_manifest(m, sample=args.sample, seed=args.seed, workers=args.workers) for m in manifests]
    passed = all(report.ok for report in reports)
    if args.json:
        data = [report.to_dict() for report in reports]
        print_json(data if args.upstream else data[0])
        return 0 if passed else 1
    for report in reports:
        _print_report(report, args.all)
    if args.upstream:
        failed = [report.ref for report in reports if not report.ok]
        summary = f"{len(reports)} version(s) checked" + (
            f", {len(failed)} failed: {', '.join(failed)}" if failed else ""
        )
        console.print(("[green]OK[/]  " if passed else "[bold red]FAILED[/]  ") + summary)
    return 0 if passed else 1


def _print_report(report, show_all: bool) -> None:
    from rich.table import Table

    shown = [check for check in report.files if show_all or check.status not in PASSING]
    if shown:
        table = Table("status", "file", "recorded size", "size now", "detail", title=f"{report.ref}  {report.path}")
        for check in shown:
            style = _STYLE.get(check.status, "")
            table.add_row(
                f"[{style}]{check.status}[/]",
                check.path,
                _size(check.size),
                _size(check.actual_size),
                check.detail,
            )
        console.print(table)
    counts = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items())) or "no files"
    verdict = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"{verdict}  {report.ref} ({report.mode}): {counts}")


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
