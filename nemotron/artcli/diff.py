"""`nemotron-art diff A B`: what differs between two versions: config keys, inputs, code version, typed
fields (metrics included), files.

Each section maps a key to `{"a": value, "b": value}`; a side is left out where the key is absent there.
Config keys come from the run record's resolved config, flattened to dotted keys (`stage.lr`).
"""

from __future__ import annotations

import json
from argparse import Namespace
from typing import Any

from nemotron.artcli import make_console, print_json
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

# Fields every version has that differ by construction: not worth a line.
_NOISE_FIELDS = {"name", "created_at", "producer", "path", "type"}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are values; an empty dict is a value too."""
    if not isinstance(node, dict) or (not node and prefix):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    changes = {}
    for key in sorted(a.keys() | b.keys()):
        if key in a and key in b and a[key] == b[key]:
            continue
        change = {}
        if key in a:
            change["a"] = a[key]
        if key in b:
            change["b"] = b[key]
        changes[key] = change
    return changes


def diff_manifests(a: Manifest, b: Manifest, store: Any = None) -> dict[str, Any]:
    """The differences by section; those two runs of one job always have (time, host, run ids, the output
    directory, the job's own other outputs: see artcli/reproduce.py) are moved to the `expected` section.
    `store` (optional) lets an input version that reproduces the other side's count as expected."""
    result = {
        "a": a.ref,
        "b": b.ref,
        "reproduces": {"a": a.reproduces, "b": b.reproduces},
        "artifact": compare(_artifact_summary(a), _artifact_summary(b)),
        "config": compare(flatten(a.run.config if a.run else {}), flatten(b.run.config if b.run else {})),
        "inputs": compare(_inputs(a), _inputs(b)),
        "code": compare(_code(a), _code(b)),
        "fields": compare(_fields(a), _fields(b)),
        "files": _files(a, b),
    }
    result["expected"] = _split_expected(result, a, b, store)
    return result


def _split_expected(result: dict[str, Any], a: Manifest, b: Manifest, store: Any) -> dict[str, Any]:
    """Move what differs by construction out of the sections into one `expected` section."""
    from nemotron.artcli import reproduce

    expected: dict[str, Any] = compare(_run_ids(a), _run_ids(b))
    for section in ("artifact", "config", "inputs", "fields"):
        for key, change in list(result[section].items()):
            old, new = change.get("a"), change.get("b")
            if (
                reproduce.is_timing(key)
                or reproduce.relocated(old, new, a, b)
                or (section == "config" and key.startswith(("artifacts.pins", "artifacts.reproduces")))
                or _reproduced_input(section, key, old, new, store)
            ):
                expected[f"{section}.{key}"] = result[section].pop(key)
    return expected


def _reproduced_input(section: str, key: str, old: Any, new: Any, store: Any) -> bool:
    """An input (or an `art://` field) whose new version reproduces the old one: the job's own other output."""
    from nemotron.artcli import reproduce

    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    if section == "inputs" and "," not in old + new and not key.startswith("source "):
        return reproduce.reproduced_by(store, f"{key}:{old}", f"{key}:{new}")
    if section == "fields" and old.startswith("art://") and new.startswith("art://"):
        return reproduce.reproduced_by(store, old[len("art://") :], new[len("art://") :])
    return False


def _run_ids(manifest: Manifest) -> dict[str, Any]:
    run = manifest.run
    ids = {"created_at": str(manifest.created_at), "committed_at": str(manifest.committed_at)}
    ids["producer"] = manifest.producer
    if run is not None:
        ids.update({f"run.{key}": getattr(run, key) for key in ("host", "user", "cwd", "output_dir")})
        ids.update({f"run.{key}": getattr(run, key) for key in ("hydra_job_id", "slurm_job_id")})
    return ids


def _artifact_summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "type": manifest.type,
        "path": manifest.path,
        "files": len(manifest.files),
        "bytes": sum(entry.size for entry in manifest.files),
    }


def _inputs(manifest: Manifest) -> dict[str, Any]:
    """Inputs by name: `raw-text: v1` vs `raw-text: v2` reads as one change, not an add and a remove."""
    by_name: dict[str, list[str]] = {}
    for ref in manifest.used_artifacts:
        name, _, version = ref.partition(":")
        by_name.setdefault(name, []).append(version)
    sources = {f"source {source.get('uri')}": source.get("digest") or "-" for source in manifest.inputs}
    return {**{name: ", ".join(versions) for name, versions in by_name.items()}, **sources}


def _code(manifest: Manifest) -> dict[str, Any]:
    run = manifest.run
    if run is None:
        return {}
    code: dict[str, Any] = {"python": run.python}
    if run.git:
        code.update({"git.commit": run.git.commit, "git.dirty": run.git.dirty})
    code.update({f"packages.{name}": version for name, version in run.packages.items()})
    return code


def _fields(manifest: Manifest) -> dict[str, Any]:
    return {k: v for k, v in flatten(manifest.metadata).items() if k not in _NOISE_FIELDS}


def _files(a: Manifest, b: Manifest) -> dict[str, Any]:
    """Content changes by relative path (from the recorded digests; nothing is read)."""
    digests_a = {entry.path: entry.digest for entry in a.files}
    digests_b = {entry.path: entry.digest for entry in b.files}
    return {
        "changed": sorted(p for p in digests_a.keys() & digests_b.keys() if digests_a[p] != digests_b[p]),
        "only_in_a": sorted(digests_a.keys() - digests_b.keys()),
        "only_in_b": sorted(digests_b.keys() - digests_a.keys()),
        "same": sum(1 for p in digests_a.keys() & digests_b.keys() if digests_a[p] == digests_b[p]),
    }


# -- the command ------------------------------------------------------------------------------------

console = make_console()


def diff(store: ManifestStore, args: Namespace) -> int:
    from rich.table import Table

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
