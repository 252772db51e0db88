"""`nemotron-art diff A B`: config, inputs, code version, fields and files that differ between two versions."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import Any

from rich.table import Table

from nemotron.artcli import make_console, print_json
from nemotron.store.manifest_store import ManifestStore

console = make_console()


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
