"""`nemotron-art lineage`: the versions (and external sources) an artifact was made from, or those made from it.

Two shapes of the same information:

- `upstream` / `downstream`: a nested dict per version (`nemotron-art lineage --format json|tree`);
- `lineage_graph`: a flat graph of artifact, run and source nodes with data-flow edges
  (input -> run -> output), which `lineage_render` draws as Mermaid, DOT or a self-contained HTML page.
"""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

from nemotron.artcli import make_console
from nemotron.errors import ArtifactNotFoundError, NemotronError
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

# -- nested trees (json / tree) -------------------------------------------------------------------------


def upstream(store: ManifestStore, reference: str, depth: int | None = None) -> dict[str, Any]:
    """A nested dict: {ref, type, path, producer, sources, inputs: [same shape, ...]} down to `depth` levels."""
    return _up_node(store, store.resolve(reference).ref, depth, seen={})


def _up_node(store: ManifestStore, ref: str, depth: int | None, seen: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if ref in seen:  # a version used twice upstream is expanded once
        return {"ref": ref, "type": seen[ref]["type"], "repeated": True}
    manifest = _manifest_or_none(store, ref)
    if manifest is None:
        return {"ref": ref, "type": None, "missing": True, "inputs": []}
    node = _describe(manifest)
    node["sources"] = [source.get("uri") for source in manifest.inputs]
    node["inputs"] = []
    seen[ref] = node
    if depth is None or depth > 0:
        child_depth = None if depth is None else depth - 1
        node["inputs"] = [_up_node(store, used, child_depth, seen) for used in manifest.used_artifacts]
    return node


def upstream_closure(store: ManifestStore, reference: str) -> list[Manifest]:
    """The version `reference` names and every version upstream of it, upstream first."""
    root = store.resolve(reference)
    found: dict[str, Manifest] = {}
    order: list[Manifest] = []

    def visit(manifest: Manifest, path: tuple[str, ...]) -> None:
        if manifest.ref in found:
            return
        found[manifest.ref] = manifest
        for used in manifest.used_artifacts:
            try:
                upstream = store.resolve(used)
            except NemotronError as exc:
                chain = " <- ".join((*path, manifest.ref))
                raise NemotronError(
                    f"The lineage is incomplete: {used} (used by {chain}) is not in {store.url} ({exc})."
                ) from exc
            visit(upstream, (*path, manifest.ref))
        order.append(manifest)

    visit(root, ())
    return order


def downstream(store: ManifestStore, reference: str, depth: int | None = None) -> dict[str, Any]:
    """A nested dict: {ref, type, path, producer, used_by: [same shape, ...]}: every version made from it."""
    consumers = consumers_index(store.all_manifests())
    return _down_node(_ByRef(store), store.resolve(reference).ref, consumers, depth, seen=set())


def _down_node(
    manifests: _ByRef, ref: str, consumers: dict[str, list[Manifest]], depth: int | None, seen: set[str]
) -> dict[str, Any]:
    manifest = manifests[ref]
    if ref in seen:
        return {"ref": ref, "type": manifest.type, "repeated": True}
    seen.add(ref)
    node = {**_describe(manifest), "used_by": []}
    if depth is None or depth > 0:
        child_depth = None if depth is None else depth - 1
        node["used_by"] = [_down_node(manifests, c.ref, consumers, child_depth, seen) for c in consumers.get(ref, [])]
    return node


def consumers_index(manifests: list[Manifest]) -> dict[str, list[Manifest]]:
    """`name:vN` -> the versions that list it in `used_artifacts` (ordered by name and version)."""
    index: dict[str, list[Manifest]] = {}
    for manifest in sorted(manifests, key=lambda m: (m.name, m.version)):
        for used in manifest.used_artifacts:
            index.setdefault(used, []).append(manifest)
    return index


class _ByRef:
    """Manifests by `name:vN`, read from the store once each."""

    def __init__(self, store: ManifestStore, known: list[Manifest] | None = None) -> None:
        self.store = store
        self.cache: dict[str, Manifest | None] = {m.ref: m for m in known or []}

    def __getitem__(self, ref: str) -> Manifest:
        manifest = self.get(ref)
        if manifest is None:
            raise ArtifactNotFoundError(f"{ref} does not exist in {self.store.url}.")
        return manifest

    def get(self, ref: str) -> Manifest | None:
        if ref not in self.cache:
            self.cache[ref] = _manifest_or_none(self.store, ref)
        return self.cache[ref]


def _manifest_or_none(store: ManifestStore, ref: str) -> Manifest | None:
    """A lineage may name a version that is gone (deleted, or in another store): show it, do not fail."""
    try:
        return store.resolve(ref)
    except ArtifactNotFoundError:
        return None


def _describe(manifest: Manifest) -> dict[str, Any]:
    return {
        "ref": manifest.ref,
        "type": manifest.type,
        "path": manifest.path,
        "producer": manifest.run.hydra_job_name if manifest.run else None,
        "reproduces": manifest.reproduces,
    }


def render_tree(node: dict[str, Any]):
    """A rich Tree of a nested lineage: the artifact at the root, its inputs (or its users) below."""
    from rich.tree import Tree

    tree = Tree(_label(node))
    _add_children(tree, node)
    return tree


def _label(node: dict[str, Any]) -> str:
    if node.get("missing"):
        return f"[bold red]{node['ref']}[/] [dim](not in this store)[/]"
    if node.get("repeated"):
        return f"[bold]{node['ref']}[/] [dim]({node['type']}, shown above)[/]"
    again = f"  [magenta]reproduces {node['reproduces']}[/]" if node.get("reproduces") else ""
    return f"[bold]{node['ref']}[/] [dim]{node['type']}[/]  {node['path']}{again}"


def _add_children(tree, node: dict[str, Any]) -> None:
    for child in node.get("inputs", []):
        _add_children(tree.add(_label(child)), child)
    for child in node.get("used_by", []):
        _add_children(tree.add(f"[green]used by[/] {_label(child)}"), child)
    for source in node.get("sources", []):
        tree.add(f"[cyan]source[/] {source}")


# -- flat graph (mermaid / dot / html) ------------------------------------------------------------------


@dataclass
class GraphNode:
    """An artifact version, a run that produced versions, or an external source."""

    id: str
    kind: str  # "artifact" | "run" | "source"
    label: str
    subtitle: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None  # the manifest of an artifact node, as stored
    manifest_url: str | None = None


@dataclass
class LineageGraph:
    root: str
    direction: str  # "up" or "down"
    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # data flow: input -> run -> output

    def add_edge(self, source: str, target: str) -> None:
        if (source, target) not in self.edges:
            self.edges.append((source, target))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [vars(node) for node in self.nodes.values()],
            "edges": [list(edge) for edge in self.edges],
        }


def lineage_graph(store: ManifestStore, reference: str, down: bool = False, depth: int | None = None) -> LineageGraph:
    """The graph of `reference` and its upstream (or with `down`, downstream) versions, `depth` levels deep."""
    root = store.resolve(reference)
    everything = store.all_manifests() if down else []
    builder = _GraphBuilder(
        store, _ByRef(store, [root, *everything]), LineageGraph(_artifact_id(root.ref), "down" if down else "up")
    )
    builder.add_artifact(root.ref)
    frontier, level, seen = [root.ref], 0, {root.ref}
    consumers = consumers_index(everything) if down else {}
    while frontier and (depth is None or level < depth):
        following = []
        for ref in frontier:
            neighbours = builder.expand_down(ref, consumers) if down else builder.expand_up(ref)
            following += [n for n in neighbours if n not in seen]
            seen.update(neighbours)
        frontier, level = following, level + 1
    return builder.graph


def _artifact_id(ref: str) -> str:
    return f"artifact:{ref}"


class _GraphBuilder:
    def __init__(self, store: ManifestStore, manifests: _ByRef, graph: LineageGraph) -> None:
        self.store = store
        self.manifests = manifests
        self.graph = graph

    def add_artifact(self, ref: str) -> str:
        node_id = _artifact_id(ref)
        if node_id in self.graph.nodes:
            return node_id
        manifest = self.manifests.get(ref)
        if manifest is None:
            self.graph.nodes[node_id] = GraphNode(node_id, "artifact", ref, "not in this store", {"missing": True})
            return node_id
        details = {"type": manifest.type, "path": manifest.path, "committed": manifest.committed_at.isoformat()}
        files = manifest.files
        details["files"] = f"{len(files)} ({sum(f.size for f in files):,} bytes)"
        aliases = sorted(a for a, v in self.store.aliases(manifest.name).items() if v == manifest.version)
        if aliases:
            details["aliases"] = ", ".join(aliases)
        self.graph.nodes[node_id] = GraphNode(
            node_id,
            "artifact",
            ref,
            manifest.type,
            details,
            manifest.model_dump(mode="json"),
            manifest_location(self.store, manifest),
        )
        return node_id

    def add_run(self, manifest: Manifest) -> str | None:
        """The run that produced `manifest` (one node per job, shared by all of its outputs)."""
        run = manifest.run
        if run is None:
            return None
        key = run.output_dir or run.hydra_job_id or manifest.producer or manifest.ref
        node_id = f"run:{run.host or ''}:{key}"
        if node_id not in self.graph.nodes:
            details = {"command": " ".join(run.command), "host": run.host, "user": run.user}
            if run.git:
                details["git"] = f"{run.git.commit[:12]}{' (dirty)' if run.git.dirty else ''}"
            details.update({"output_dir": run.output_dir, "slurm_job": run.slurm_job_id, "hydra_job": run.hydra_job_id})
            details = {k: v for k, v in details.items() if v}
            subtitle = run.output_dir.rstrip("/").rsplit("/", 1)[-1] if run.output_dir else run.host or ""
            self.graph.nodes[node_id] = GraphNode(node_id, "run", run_label(manifest), subtitle, details)
        self.graph.add_edge(node_id, _artifact_id(manifest.ref))
        return node_id

    def expand_up(self, ref: str) -> list[str]:
        """Add the run that made `ref`, its inputs and sources; returns the input refs."""
        manifest = self.manifests.get(ref)
        if manifest is None:
            return []
        target = self.add_run(manifest) or _artifact_id(ref)
        for used in manifest.used_artifacts:
            self.graph.add_edge(self.add_artifact(used), target)
        for source in manifest.inputs:
            uri = str(source.get("uri"))
            node_id = f"source:{uri}"
            if node_id not in self.graph.nodes:
                details = {k: v for k, v in source.items() if v not in (None, "", [], {})}
                self.graph.nodes[node_id] = GraphNode(node_id, "source", uri, "external source", details)
            self.graph.add_edge(node_id, target)
        return list(manifest.used_artifacts)

    def expand_down(self, ref: str, consumers: dict[str, list[Manifest]]) -> list[str]:
        """Add every version made from `ref` (through the run that made it); returns their refs."""
        found = []
        for consumer in consumers.get(ref, []):
            self.add_artifact(consumer.ref)
            target = self.add_run(consumer) or _artifact_id(consumer.ref)
            self.graph.add_edge(_artifact_id(ref), target)
            found.append(consumer.ref)
        return found


def run_label(manifest: Manifest) -> str:
    """What a run was: `register run` for a stage, `nemotron-art import` for a CLI import."""
    run = manifest.run
    target = str(((run.config or {}).get("stage") or {}).get("_target_") or "") if run else ""
    if target:
        parts = target.split(".")
        stage = parts[-2] if len(parts) >= 2 and parts[-1] == "run" else parts[-1]
        return f"{stage} run"
    command = [part.rsplit("/", 1)[-1] for part in (run.command if run else [])]
    return " ".join(command[:2]) or "run"


def manifest_location(store: ManifestStore, manifest: Manifest) -> str:
    """Where the manifest file is: a file:// URI for local stores, else the store URL of it."""
    from pathlib import Path

    relative = f"{manifest.name}/v{manifest.version}/manifest.json"
    if store.is_local:
        return Path(store.root, relative).resolve().as_uri()
    return f"{store.url.rstrip('/')}/{relative}"


# -- the command ------------------------------------------------------------------------------------

console = make_console()


def lineage(store: ManifestStore, args: Namespace) -> int:
    if args.depth is not None and args.depth < 0:
        raise NemotronError(f"--depth must be 0 or more, got {args.depth}.")
    if args.format in ("tree", "json"):
        nested = (downstream if args.down else upstream)(store, args.ref, depth=args.depth)
        if args.format == "json":
            return _emit(json.dumps(nested, indent=2, default=str) + "\n", args.output)
        if args.output:
            from rich.console import Console

            with _output_file(args.output) as f:
                tree_file = Console(file=f, highlight=False, soft_wrap=True, color_system=None, width=1000)
                tree_file.print(render_tree(nested))
            return 0
        console.print(render_tree(nested))
        return 0
    from nemotron.artcli import lineage_render

    graph = lineage_graph(store, args.ref, down=args.down, depth=args.depth)
    if args.format == "mermaid":
        text = lineage_render.to_mermaid(graph)
    elif args.format == "dot":
        text = lineage_render.to_dot(graph)
    else:
        where = store.root if store.is_local else store.url
        text = lineage_render.to_html(graph, title=graph.nodes[graph.root].label, store_url=where)
    return _emit(text, args.output)


def _output_file(output: str):
    """`-o FILE` opened for writing, or a clear error (a missing directory, no permission) before any work."""
    try:
        return open(output, "w", encoding="utf-8")  # noqa: SIM115  (the caller's `with` closes it)
    except OSError as exc:
        parent = os.path.dirname(os.path.abspath(output))
        hint = f" The directory {parent} does not exist: create it first." if not os.path.isdir(parent) else ""
        raise NemotronError(f"Cannot write {output}: {exc.strerror or exc}.{hint}") from exc


def _emit(text: str, output: str | None) -> int:
    if output:
        with _output_file(output) as f:
            f.write(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
