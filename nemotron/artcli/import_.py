"""`nemotron-art import model|data`: register existing checkpoints or data (zero-copy) as new versions; what
they describe is worked out by `nemotron.tracking.registration`, which `stage=register` shares."""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import Any

from nemotron.artcli import make_console
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
