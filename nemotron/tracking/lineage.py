"""Upstream lineage: the graph of versions (and external sources) an artifact was made from."""

from __future__ import annotations

from typing import Any

from nemotron.tracking.store import ManifestStore


def upstream(store: ManifestStore, reference: str, depth: int | None = None) -> dict[str, Any]:
    """A nested dict: {ref, type, path, sources, inputs: [same shape, ...]} down to `depth` levels."""
    return _node(store, store.resolve(reference).ref, depth, seen={})


def _node(store: ManifestStore, ref: str, depth: int | None, seen: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if ref in seen:  # a version used twice upstream is expanded once
        return {"ref": ref, "type": seen[ref]["type"], "repeated": True}
    manifest = store.resolve(ref)
    node = {
        "ref": manifest.ref,
        "type": manifest.type,
        "path": manifest.path,
        "producer": manifest.run.hydra_job_name if manifest.run else None,
        "sources": [source.get("uri") for source in manifest.inputs],
        "inputs": [],
    }
    seen[ref] = node
    if depth is None or depth > 0:
        child_depth = None if depth is None else depth - 1
        node["inputs"] = [_node(store, used, child_depth, seen) for used in manifest.used_artifacts]
    return node


def render_tree(node: dict[str, Any]):
    """A rich Tree of the upstream graph, the artifact at the root and its inputs below."""
    from rich.tree import Tree

    tree = Tree(_label(node))
    _add_children(tree, node)
    return tree


def _label(node: dict[str, Any]) -> str:
    if node.get("repeated"):
        return f"[bold]{node['ref']}[/] [dim]({node['type']}, shown above)[/]"
    return f"[bold]{node['ref']}[/] [dim]{node['type']}[/]  {node['path']}"


def _add_children(tree, node: dict[str, Any]) -> None:
    for child in node.get("inputs", []):
        _add_children(tree.add(_label(child)), child)
    for source in node.get("sources", []):
        tree.add(f"[cyan]source[/] {source}")
