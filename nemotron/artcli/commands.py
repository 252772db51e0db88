"""The small `nemotron-art` commands `ls`, `show`, `alias` and `fsck` (each of the others has its own module,
named as the command). Each takes the store and the parsed arguments and returns an exit code."""

from __future__ import annotations

from argparse import Namespace

from rich.table import Table

from nemotron.artcli import make_console, print_json
from nemotron.artifacts.refs import ArtifactRef
from nemotron.errors import NemotronError
from nemotron.store.manifest_store import ManifestStore

console = make_console()


def ls(store: ManifestStore, args: Namespace) -> int:
    if args.name:
        return _ls_versions(store, ArtifactRef.parse(args.name).name, args.json)
    rows = []
    for name in store.names():
        try:  # one damaged name must not hide the others
            latest = store.latest_version(name)
            manifest = store.manifest(name, latest) if latest is not None else None
        except NemotronError as exc:
            rows.append({"name": name, "latest": "?", "type": f"error: {exc}", "aliases": {}, "committed_at": ""})
            continue
        if manifest is not None:
            rows.append(
                {
                    "name": name,
                    "latest": f"v{latest}",
                    "type": manifest.type,
                    "aliases": store.aliases(name),
                    "committed_at": manifest.committed_at.isoformat(),
                }
            )
    if args.json:
        print_json(rows)
        return 0
    table = Table("name", "latest", "type", "aliases", "committed", title=f"artifacts in {store.url}")
    for row in rows:
        aliases = ", ".join(f"{a}->v{v}" for a, v in sorted(row["aliases"].items()))
        table.add_row(row["name"], row["latest"], row["type"], aliases, row["committed_at"][:19])
    console.print(table)
    return 0


def _ls_versions(store: ManifestStore, name: str, as_json: bool) -> int:
    store.resolve(name)  # a clear error for an unknown name
    aliases: dict[int, list[str]] = {}
    for alias, version in store.aliases(name).items():
        aliases.setdefault(version, []).append(alias)
    rows = []
    for version in store.versions(name):
        manifest = store.manifest(name, version)
        rows.append(
            {
                "ref": manifest.ref,
                "type": manifest.type,
                "path": manifest.path,
                "aliases": sorted(aliases.get(version, [])),
                "inputs": manifest.used_artifacts,
                "committed_at": manifest.committed_at.isoformat(),
            }
        )
    if as_json:
        print_json(rows)
        return 0
    table = Table("version", "aliases", "inputs", "committed", "path", title=name)
    for row in rows:
        table.add_row(
            row["ref"],
            ", ".join(row["aliases"]),
            ", ".join(row["inputs"]),
            row["committed_at"][:19],
            row["path"],
        )
    console.print(table)
    return 0


def show(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.wandb_mirror import wandb_record

    manifest = store.resolve(args.ref)
    wandb = wandb_record(store, manifest)  # the manifest's W&B fields plus what W&B assigned later
    if args.json:
        print_json({**manifest.model_dump(mode="json"), "wandb": wandb})
        return 0
    table = Table.grid(padding=(0, 2))
    table.add_row("uri", manifest.uri)
    table.add_row("type", manifest.type)
    table.add_row("path", manifest.path)
    table.add_row("committed", manifest.committed_at.isoformat())
    table.add_row("inputs", ", ".join(manifest.used_artifacts) or "-")
    table.add_row("sources", ", ".join(str(s.get("uri")) for s in manifest.inputs) or "-")
    aliases = [a for a, v in store.aliases(manifest.name).items() if v == manifest.version]
    table.add_row("aliases", ", ".join(sorted(aliases)) or "-")
    if manifest.reproduces:
        table.add_row("reproduces", manifest.reproduces)
    table.add_row("files", f"{len(manifest.files)} ({sum(f.size for f in manifest.files):,} bytes)")
    if wandb:
        table.add_row("wandb", str(wandb.get("qualified_name") or wandb.get("sync") or wandb.get("status")))
    hidden = ("path", "name", "type", "created_at")
    fields = {k: v for k, v in manifest.metadata.items() if k not in hidden and v not in (None, {}, [])}
    for key, value in fields.items():
        table.add_row(key, str(value))
    if manifest.run:
        run = manifest.run
        table.add_row("command", " ".join(run.command))
        if run.git:
            table.add_row("git", f"{run.git.commit[:12]}{' (dirty)' if run.git.dirty else ''}")
        table.add_row("host", f"{run.host}  slurm job {run.slurm_job_id or '-'}  hydra job {run.hydra_job_id or '-'}")
    console.print(table)
    return 0


def alias(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.wandb_mirror import mirror_alias

    ref = ArtifactRef.parse(args.ref)
    version = store.set_alias(ref, args.alias)
    console.print(f"{ref.name}:{args.alias} -> v{version}")
    mirrored = mirror_alias(store, store.manifest(ref.name, version), args.alias)  # None: no W&B mirror
    if mirrored is not None:
        console.print(_wandb_alias_line(mirrored, f"{ref.name}:v{version}"))
    return 0


def _wandb_alias_line(mirrored: dict, exact: str) -> str:
    alias, where = mirrored["alias"], mirrored["wandb"]
    if mirrored["status"] == "applied":
        return f"W&B: {where} has the alias {alias}"
    if mirrored["status"] == "pending":
        return (
            f"W&B: alias {alias} is pending for {where} ({mirrored['reason']}); rerun "
            f"`nemotron-art alias {exact} {alias}` online to apply it"
        )
    return f"W&B: not changed ({mirrored['reason']})"


def fsck(store: ManifestStore, args: Namespace) -> int:
    found = store.fsck(clean=args.clean, grace_s=args.grace)
    orphans = [orphan for orphan in found if orphan.removable]
    damaged = [orphan for orphan in found if not orphan.removable]
    for orphan in orphans:
        console.print(f"orphan  {orphan.path}  ({orphan.reason})")
    for version in damaged:
        console.print(f"damaged  {version.path}  ({version.reason}; a committed version: never removed by fsck)")
    verb = "found, removed those older than the grace period" if args.clean else "found"
    console.print(f"{len(orphans)} orphan(s) {verb} in {store.url}")
    if damaged:
        console.print(
            f"{len(damaged)} damaged version(s) kept: restore their manifest.json from a copy (a bundle, a "
            "backup), or delete the directory yourself once nothing needs it"
        )
    return 1 if damaged or (orphans and not args.clean) else 0
