"""`nemotron-art import model|data`, `export --closure` and `import-bundle`: data in and out of a store."""

from __future__ import annotations

import sys
from argparse import Namespace
from dataclasses import asdict
from typing import Any

from nemotron.artcli import make_console, print_json
from nemotron.artifacts.base import Artifact
from nemotron.store.manifest_store import ManifestStore

console = make_console(stderr=True)


def import_model(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.registration import model_artifact

    base_model = _pinned(store, args.base_model) if args.base_model else None
    artifact = model_artifact(args.path, args.stage, args.step, args.format, base_model, args.name)
    params = {"kind": "model", "path": artifact.path, "stage": args.stage, "step": args.step, "format": args.format}
    return _commit(store, artifact, {**params, "base_model": base_model})


def import_data(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking import registration

    if args.data_kind == "pretrain":
        artifact = registration.pretrain_artifact(args.path, args.name)
    elif args.data_kind == "sft":
        artifact = registration.sft_artifact(args.path, args.pack_size, args.name)
    else:
        artifact = registration.rl_artifact(args.path, args.name)
    return _commit(store, artifact, {"kind": f"data {args.data_kind}", "path": artifact.path})


def _pinned(store: ManifestStore, reference: str) -> str:
    """`art://name:vN` for the version a reference names now: the lineage records the exact version."""
    return f"art://{store.resolve(reference).ref}"


def _commit(store: ManifestStore, artifact: Artifact, params: dict[str, Any]) -> int:
    """Commit like a stage output: files with digests, a run record, the inputs the artifact names."""
    from nemotron.tracking.runinfo import build_run_record
    from nemotron.tracking.session import ArtifactSettings, Tracking

    tracking = Tracking(ArtifactSettings(root=store.url, single_writer=store.single_writer))
    run = build_run_record(config={"import": params}, command=["nemotron-art", *sys.argv[1:]])
    manifest = tracking.commit(artifact, name=artifact.name, run=run)
    console.print(
        f"imported {artifact.path} as [bold]{manifest.uri}[/] ({manifest.type}, {len(manifest.files)} files, "
        f"{sum(f.size for f in manifest.files):,} bytes); nothing was written into it"
    )
    print(artifact.to_json_line())
    return 0


def export(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.bundle import export_closure

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


def import_bundle(store: ManifestStore, args: Namespace) -> int:
    from nemotron.tracking.bundle import import_bundle as run_import

    def progress(source: str, target: str, reused: bool) -> None:
        if not args.json:
            note = "already there" if reused else "committed"
            console.print(f"  {source:<40} -> {target}  ({note})")

    result = run_import(store, args.bundle, progress=progress)
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
