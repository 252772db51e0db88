"""`nemotron-art gc --keep-last N [--apply] [--data]`: a plan first; deletion only with --apply.

Retention: which versions it keeps, and deleting the rest.

Kept, with the reason recorded: the last N versions of each name, the latest version of each name (so
`latest` never moves), every version an alias points at, and everything upstream of a kept version (so no
kept lineage loses an input). Everything else is deleted: its record only (`{name}/v{N}/`, with an entry in
`{name}/deletions/`), never the data it points at, except with `--data` the data copies nemotron itself
made (a bundle's data imported by this store, see `nemotron/artcli/bundle.py`), and only when no
remaining version points into them.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from nemotron.artcli import bundle, make_console, print_json
from nemotron.errors import NemotronError
from nemotron.store.manifest_store import ManifestStore, VersionInUseError
from nemotron.store.records import Manifest


@dataclass
class GcPlan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # ref -> why it is kept
    delete: list[Manifest] = field(default_factory=list)  # newest first: consumers before their inputs
    data: dict[str, str] = field(default_factory=dict)  # ref -> data directory to delete (with --data)
    data_kept: dict[str, str] = field(default_factory=dict)  # ref -> why its data stays

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "delete": [m.ref for m in self.delete],
            "delete_data": self.data,
            "data_kept": self.data_kept,
        }


def plan_gc(store: ManifestStore, keep_last: int | None, with_data: bool = False) -> GcPlan:
    if keep_last is None:
        raise NemotronError(
            "gc needs --keep-last N: how many versions of each name to keep (the latest version, aliased "
            "versions and everything upstream of a kept version are always kept). Nothing was deleted."
        )
    if keep_last < 0:
        raise NemotronError(f"--keep-last must be 0 or more, got {keep_last}. Nothing was deleted.")
    manifests = {m.ref: m for m in store.all_manifests()}
    plan = GcPlan()

    def keep(ref: str, reason: str) -> None:
        plan.keep.setdefault(ref, []).append(reason)

    by_name: dict[str, list[int]] = {}
    for manifest in manifests.values():
        by_name.setdefault(manifest.name, []).append(manifest.version)
    for name, versions in sorted(by_name.items()):
        versions.sort()
        keep(f"{name}:v{versions[-1]}", "latest")
        for version in versions[-keep_last:] if keep_last else []:
            keep(f"{name}:v{version}", f"one of the last {keep_last}")
        for alias, version in sorted(store.aliases(name).items()):
            if f"{name}:v{version}" in manifests:
                keep(f"{name}:v{version}", f"alias {alias}")
    pending = list(plan.keep)
    while pending:
        ref = pending.pop()
        for used in manifests[ref].used_artifacts:
            if used in manifests:
                if used not in plan.keep:
                    pending.append(used)
                keep(used, f"upstream of {ref}")
    plan.delete = sorted(
        (m for ref, m in manifests.items() if ref not in plan.keep), key=lambda m: m.committed_at, reverse=True
    )
    if with_data:
        remaining = [manifests[ref].path for ref in plan.keep]
        for manifest in plan.delete:
            directory, reason = owned_data_dir(store, manifest, remaining)
            if directory:
                plan.data[manifest.ref] = directory
            elif manifest.data_owned or manifest.origin:
                plan.data_kept[manifest.ref] = reason
    return plan


def owned_data_dir(store: ManifestStore, manifest: Manifest, remaining: list[str]) -> tuple[str | None, str]:
    """The bundle data directory of `manifest` if this store may delete it, else (None, why not).

    Every condition must hold: the manifest says the store owns its data; its path is in `data/NAME/vN` of
    the bundle the store recorded at import, with no symlink on the way, and that bundle's owner.json names
    this store (`bundle.owned_copy`: the store's own record decides, never the bundle's index); and no
    version that stays points into it (or at a directory containing it). `apply_gc` checks again when deleting.
    """
    origin = manifest.origin or {}
    if not manifest.data_owned:
        if not origin.get("bundle"):
            return None, "not created by nemotron (the user's data)"
        owner = bundle.read_owner(Path(str(origin["bundle"])))
        return None, f"the bundle's data belongs to {owner or 'another store'}"
    directory, why = bundle.owned_copy(store.url, manifest)
    if directory is None:
        return None, why
    for other in remaining:
        other_path = Path(other).resolve() if "://" not in other else None
        if other_path and (
            other_path == directory or directory in other_path.parents or other_path in directory.parents
        ):
            return None, f"a kept version still points at {other}"
    return str(directory), ""


def apply_gc(store: ManifestStore, plan: GcPlan, progress=None) -> None:
    """Delete what `plan` lists. A version aliased since the plan was made stays (the store checks under the
    alias lock), and so does everything it was made from (older, so later in `plan.delete`): they move from
    `plan.delete` to `plan.keep`, and their data stays too."""
    protected: dict[str, str] = {}  # ref -> why it stays after all
    for manifest in list(plan.delete):
        reason = protected.get(manifest.ref)
        try:
            if reason is None:
                store.delete_version(
                    manifest.name, manifest.version, event={"by": "nemotron-art gc", "type": manifest.type}
                )
        except VersionInUseError as exc:
            reason = str(exc).split(": ", 1)[-1].rstrip(".")
        if reason is not None:
            plan.delete.remove(manifest)
            plan.data.pop(manifest.ref, None)
            plan.keep.setdefault(manifest.ref, []).append(reason)
            protected.update({used: f"upstream of {manifest.ref}" for used in manifest.used_artifacts})
            if progress:
                progress(f"kept {manifest.ref}: {reason}")
            continue
        if progress:
            progress(manifest.ref)
        directory = plan.data.get(manifest.ref)
        if directory:
            kept = bundle.delete_copy(store.url, manifest, directory)  # confined and checked again, now
            if kept:
                plan.data.pop(manifest.ref)
                plan.data_kept[manifest.ref] = kept
            if progress:
                progress(f"kept the data of {manifest.ref}: {kept}" if kept else f"{manifest.ref} data {directory}")


# -- the command --------------------------------------------------------------------------------------

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
