"""`nemotron-art verify` and `nemotron-art diff`."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import Any

from rich.table import Table

from nemotron.artcli import make_console, print_json
from nemotron.store.manifest_store import ManifestStore

console = make_console()
_STYLE = {"OK": "green", "UNCHECKED": "dim", "MODIFIED": "bold red", "MISSING": "bold red", "NEW": "yellow"}


def verify(store: ManifestStore, args: Namespace) -> int:
    """Exit 0 when every recorded file is OK (or UNCHECKED by --sample), 1 otherwise."""
    from nemotron.artcli.verify import verify_manifest
    from nemotron.tracking.lineage import upstream_closure

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
    from nemotron.artcli.verify import PASSING

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


def diff(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.diff import diff_manifests

    result = diff_manifests(store.resolve(args.a), store.resolve(args.b), store=store)
    if args.json:
        print_json(result)
        return 0
    a, b = result["a"], result["b"]
    for this, other in ((b, a), (a, b)):
        if result["reproduces"]["b" if this == b else "a"] == other:
            console.print(f"{this} reproduces {other} (nemotron-art rerun)")
    empty = True
    for section in ("artifact", "config", "inputs", "code", "fields"):
        changes: dict[str, dict[str, Any]] = result[section]
        if not changes:
            continue
        empty = False
        table = Table("key", a, b, title=section, title_justify="left")
        for key, change in changes.items():
            table.add_row(key, _show(change, "a"), _show(change, "b"))
        console.print(table)
    files = result["files"]
    if files["changed"] or files["only_in_a"] or files["only_in_b"]:
        empty = False
        console.print(
            f"files: {len(files['changed'])} changed, {len(files['only_in_a'])} only in {a}, "
            f"{len(files['only_in_b'])} only in {b}, {files['same']} identical"
        )
        for label, paths in (("changed", files["changed"]), (f"only in {a}", files["only_in_a"])):
            for path in paths[:20]:
                console.print(f"  {label}: {path}")
        for path in files["only_in_b"][:20]:
            console.print(f"  only in {b}: {path}")
    if files.get("relocated"):
        console.print(
            f"files: {len(files['relocated'])} differ only by naming their own output directory (expected): "
            + ", ".join(files["relocated"][:20])
        )
    if result["expected"]:
        table = Table("key", a, b, title="expected (time, host, run ids, own output dir)", title_justify="left")
        for key, change in result["expected"].items():
            table.add_row(key, _show(change, "a"), _show(change, "b"), style="dim")
        console.print(table)
    if empty:
        console.print(f"{a} and {b} have the same config, inputs, code version, fields and file contents.")
    return 0


def _show(change: dict[str, Any], side: str) -> str:
    if side not in change:
        return "[dim](absent)[/]"
    value = change[side]
    return value if isinstance(value, str) else json.dumps(value, default=str)
