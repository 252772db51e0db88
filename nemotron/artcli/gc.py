"""`nemotron-art gc --keep-last N [--apply] [--data]`: a plan first; deletion only with --apply."""

from __future__ import annotations

from argparse import Namespace

from rich.table import Table

from nemotron.artcli import make_console, print_json
from nemotron.store.manifest_store import ManifestStore
from nemotron.tracking.gc import apply_gc, plan_gc

console = make_console()


def _progress(item: str) -> None:
    console.print(item if item.startswith("kept ") else f"deleted {item}")


def gc(store: ManifestStore, args: Namespace) -> int:
    plan = plan_gc(store, args.keep_last, with_data=args.data)
    if args.apply and plan.delete:
        apply_gc(store, plan, progress=None if args.json else _progress)
    if args.json:
        print_json({**plan.to_dict(), "applied": bool(args.apply)})
        return 0
    table = Table("version", "type", "committed", "action", "why", title=f"gc plan for {store.url}")
    for manifest in plan.delete:
        data = plan.data.get(manifest.ref)
        action = "delete record" + (" + data copy" if data else "")
        why = f"data stays: {plan.data_kept[manifest.ref]}" if manifest.ref in plan.data_kept else ""
        table.add_row(manifest.ref, manifest.type, manifest.committed_at.isoformat()[:19], action, why)
    for ref, reasons in sorted(plan.keep.items()):
        table.add_row(ref, "", "", "[green]keep[/]", "; ".join(dict.fromkeys(reasons)))
    console.print(table)
    count = len(plan.delete)
    if args.apply:
        console.print(f"deleted {count} version(s); kept {len(plan.keep)}")
    else:
        console.print(
            f"dry run: {count} version(s) would be deleted, {len(plan.keep)} kept. "
            "Run again with --apply to delete them"
            + (" (add --data to delete nemotron's data copies too)." if not args.data else ".")
        )
    return 0
