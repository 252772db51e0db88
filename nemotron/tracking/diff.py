"""What differs between two versions: config keys, inputs, code version, typed fields (metrics included).

Each section maps a key to `{"a": value, "b": value}`; a side is left out where the key is absent there.
Config keys come from the run record's resolved config, flattened to dotted keys (`stage.lr`).
"""

from __future__ import annotations

from typing import Any

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


def diff_manifests(a: Manifest, b: Manifest) -> dict[str, Any]:
    return {
        "a": a.ref,
        "b": b.ref,
        "artifact": compare(_artifact_summary(a), _artifact_summary(b)),
        "config": compare(flatten(a.run.config if a.run else {}), flatten(b.run.config if b.run else {})),
        "inputs": compare(_inputs(a), _inputs(b)),
        "code": compare(_code(a), _code(b)),
        "fields": compare(_fields(a), _fields(b)),
        "files": _files(a, b),
    }


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
