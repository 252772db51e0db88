"""Draw a `LineageGraph` as Mermaid, Graphviz DOT, or one self-contained HTML page.

The HTML page needs nothing but a browser: the layout is computed here (layered left to right, in data-flow
order) and drawn as inline SVG; a few lines of inline JavaScript show a node's manifest in a side panel when
it is clicked. A Content-Security-Policy forbids every network request, so the page works air-gapped and
cannot leak anything.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from nemotron.artcli.lineage import GraphNode, LineageGraph

_SHAPES_MERMAID = {"artifact": ('["', '"]'), "run": ('(["', '"])'), "source": ('[/"', '"/]')}
_SHAPES_DOT = {"artifact": "box", "run": "ellipse", "source": "parallelogram"}
_COLORS = {"artifact": "#dbeafe", "run": "#fef3c7", "source": "#e5e7eb"}


def _short_ids(graph: LineageGraph) -> dict[str, str]:
    """n0, n1, ...: ids every tool accepts, in a stable order (the root first)."""
    ordered = [graph.root, *(node_id for node_id in graph.nodes if node_id != graph.root)]
    return {node_id: f"n{i}" for i, node_id in enumerate(ordered)}


# -- Mermaid ---------------------------------------------------------------------------------------------


def to_mermaid(graph: LineageGraph) -> str:
    ids = _short_ids(graph)
    lines = ["flowchart LR"]
    for node_id, node in graph.nodes.items():
        start, end = _SHAPES_MERMAID[node.kind]
        text = _mermaid_text(node.label) + (
            f"<br/><small>{_mermaid_text(node.subtitle)}</small>" if node.subtitle else ""
        )
        lines.append(f"  {ids[node_id]}{start}{text}{end}")
    for source, target in graph.edges:
        lines.append(f"  {ids[source]} --> {ids[target]}")
    for kind, color in _COLORS.items():
        lines.append(f"  classDef {kind} fill:{color},stroke:#475569")
    for node_id, node in graph.nodes.items():
        lines.append(f"  class {ids[node_id]} {node.kind}")
    for node_id, node in graph.nodes.items():
        if node.manifest_url:
            lines.append(f'  click {ids[node_id]} href "{_mermaid_text(node.manifest_url)}" "manifest of {node.label}"')
    lines.append(f"  style {ids[graph.root]} stroke-width:3px")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid labels are quoted; quotes and markup characters become entity codes."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


# -- Graphviz DOT ----------------------------------------------------------------------------------------


def to_dot(graph: LineageGraph) -> str:
    ids = _short_ids(graph)
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11, style="filled,rounded"];',
        '  edge [color="#64748b"];',
    ]
    for node_id, node in graph.nodes.items():
        label = node.label + (f"\n{node.subtitle}" if node.subtitle else "")
        attributes = {
            "label": label,
            "shape": _SHAPES_DOT[node.kind],
            "fillcolor": _COLORS[node.kind],
            "tooltip": node.label,
        }
        if node.manifest_url:
            attributes["URL"] = node.manifest_url
        if node_id == graph.root:
            attributes["penwidth"] = "3"
        rendered = ", ".join(f"{key}={_dot_quote(value)}" for key, value in attributes.items())
        lines.append(f"  {ids[node_id]} [{rendered}];")
    for source, target in graph.edges:
        lines.append(f"  {ids[source]} -> {ids[target]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_quote(value: str) -> str:
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# -- HTML ------------------------------------------------------------------------------------------------

_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _MARGIN = 210, 52, 24, 46, 20
_LANE_W = 36  # the width a long edge takes where it passes a row


@dataclass
class Layout:
    positions: dict[str, tuple[float, float]]  # top-left corner of every node
    routes: dict[tuple[str, str], list[tuple[float, float]]]  # points every edge passes, start to end
    width: float
    height: float


def layout(graph: LineageGraph) -> Layout:
    """Top to bottom in data-flow order: one row per layer (longest path from the sources); an edge that
    spans several rows passes through a lane in each (a dummy node), so it never crosses a node; the nodes of
    a row are ordered by the mean position of their neighbours (fewer crossings)."""
    layer = _layers(graph)
    rows: dict[int, list[str]] = {}
    for node_id in graph.nodes:
        rows.setdefault(layer[node_id], []).append(node_id)
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    chains: dict[tuple[str, str], list[str]] = {}
    for source, target in graph.edges:
        chain = [source]
        for row in range(layer[source] + 1, layer[target]):
            lane = f"lane:{source}->{target}:{row}"
            rows.setdefault(row, []).append(lane)
            chain.append(lane)
        chain.append(target)
        chains[(source, target)] = chain
        for upper, lower in zip(chain, chain[1:], strict=False):
            parents.setdefault(lower, []).append(upper)
            children.setdefault(upper, []).append(lower)
    order = sorted(rows)
    for sweep in range(6):  # alternate downward and upward sweeps
        sequence, neighbours = (order[1:], parents) if sweep % 2 == 0 else (order[-2::-1], children)
        for row in sequence:
            rank = {n: i for r in rows.values() for i, n in enumerate(r)}
            rows[row].sort(key=lambda n, r=rank: _mean([r[m] for m in neighbours.get(n, [])], r[n]))

    def slot(node_id: str) -> float:
        return _LANE_W if node_id.startswith("lane:") else _NODE_W + _GAP_X

    widest = max(sum(slot(n) for n in nodes) for nodes in rows.values())
    positions: dict[str, tuple[float, float]] = {}
    centers: dict[str, tuple[float, float]] = {}
    for row, nodes in rows.items():
        x = _MARGIN + (widest - sum(slot(n) for n in nodes)) / 2
        y = _MARGIN + row * (_NODE_H + _GAP_Y)
        for node_id in nodes:
            if node_id.startswith("lane:"):
                centers[node_id] = (x + _LANE_W / 2, y)
            else:
                positions[node_id] = (x, y)
            x += slot(node_id)
    routes = {}
    for edge, chain in chains.items():
        (sx, sy), (tx, ty) = positions[edge[0]], positions[edge[1]]
        points = [(sx + _NODE_W / 2, sy + _NODE_H)]
        for lane in chain[1:-1]:  # straight down through the row, curves only between rows
            lx, ly = centers[lane]
            points += [(lx, ly), (lx, ly + _NODE_H)]
        routes[edge] = [*points, (tx + _NODE_W / 2, ty)]
    height = _MARGIN * 2 + (max(rows) + 1) * (_NODE_H + _GAP_Y) - _GAP_Y
    return Layout(positions, routes, widest + 2 * _MARGIN - _GAP_X, height)


def _layers(graph: LineageGraph) -> dict[str, int]:
    """Longest path from the sources; then a node without inputs moves down next to what it feeds."""
    incoming = {n: 0 for n in graph.nodes}
    for _, target in graph.edges:
        incoming[target] += 1
    roots = [n for n, count in incoming.items() if count == 0]
    layer = {n: 0 for n in graph.nodes}
    ready = list(roots)
    while ready:
        node_id = ready.pop()
        for source, target in graph.edges:
            if source == node_id:
                layer[target] = max(layer[target], layer[node_id] + 1)
                incoming[target] -= 1
                if incoming[target] == 0:
                    ready.append(target)
    for node_id in roots:  # a cycle (never made by nemotron) leaves its nodes where they were reached
        below = [layer[target] for source, target in graph.edges if source == node_id]
        if below:
            layer[node_id] = min(below) - 1
    return layer


def _mean(values: list[int], default: int) -> float:
    return sum(values) / len(values) if values else default


def to_html(graph: LineageGraph, title: str, store_url: str) -> str:
    drawing = layout(graph)
    ids = _short_ids(graph)
    width, height = drawing.width, drawing.height
    edges = "\n".join(_svg_edge(drawing.routes[edge]) for edge in graph.edges)
    nodes = "\n".join(_svg_node(ids[n], node, drawing.positions[n], n == graph.root) for n, node in graph.nodes.items())
    data = {
        ids[node_id]: {
            "kind": node.kind,
            "label": node.label,
            "subtitle": node.subtitle,
            "details": node.details,
            "manifest": node.manifest,
            "manifest_url": node.manifest_url,
        }
        for node_id, node in graph.nodes.items()
    }
    direction = "downstream (what used it)" if graph.direction == "down" else "upstream (what it was made from)"
    counts = {kind: sum(1 for n in graph.nodes.values() if n.kind == kind) for kind in _COLORS}
    summary = f"{counts['artifact']} artifact(s), {counts['run']} run(s), {counts['source']} source(s)"
    return _PAGE.format(
        title=html.escape(title),
        store=html.escape(store_url),
        direction=direction,
        summary=summary,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        width=int(width),
        fit="fit" if width <= 1600 else "",
        height=int(height),
        edges=edges,
        nodes=nodes,
        data=json.dumps(data, default=str).replace("<", "\\u003c"),
        css=_CSS,
        script=_SCRIPT,
        root=ids[graph.root],
    )


def _svg_edge(points: list[tuple[float, float]]) -> str:
    """A smooth path through `points`, leaving and entering every point vertically."""
    (x, y), *rest = points
    path = [f"M{x:.0f},{y:.0f}"]
    for index, (nx, ny) in enumerate(rest):
        ny = ny - 2 if index == len(rest) - 1 else ny  # stop short of the box: the arrowhead touches it
        bend = (ny - y) / 2
        path.append(f"C{x:.0f},{y + bend:.0f} {nx:.0f},{ny - bend:.0f} {nx:.0f},{ny:.0f}")
        x, y = nx, ny
    return f'<path class="edge" d="{" ".join(path)}"/>'


def _svg_node(short_id: str, node: GraphNode, position: tuple[float, float], is_root: bool) -> str:
    x, y = position
    radius = _NODE_H / 2 if node.kind == "run" else 6
    classes = f"node {node.kind}{' root' if is_root else ''}{' missing' if node.details.get('missing') else ''}"
    label, subtitle = html.escape(_clip(node.label, 28)), html.escape(_clip(node.subtitle, 34))
    href = html.escape(node.manifest_url or f"#{short_id}")
    return (
        f'<a id="{short_id}" class="{classes}" href="{href}" data-node="{short_id}" tabindex="0">'
        f"<title>{html.escape(node.label)}</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{_NODE_W}" height="{_NODE_H}" rx="{radius:.0f}"/>'
        f'<text class="label" x="{x + _NODE_W / 2:.0f}" y="{y + 22:.0f}">{label}</text>'
        f'<text class="subtitle" x="{x + _NODE_W / 2:.0f}" y="{y + 40:.0f}">{subtitle}</text>'
        "</a>"
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


_CSS = """
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #0f172a; }
header { padding: 12px 20px; border-bottom: 1px solid #cbd5e1; background: #f8fafc; }
header h1 { font-size: 18px; margin: 0 0 4px; }
header p { margin: 0; color: #475569; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #475569;
  border-radius: 4px; }
main { display: flex; height: calc(100vh - 86px); }
#graph { flex: 1 1 auto; overflow: auto; padding: 4px; }
#graph svg.fit { max-width: 100%; height: auto; }
#panel { flex: 0 0 420px; overflow: auto; border-left: 1px solid #cbd5e1; padding: 12px 16px; background: #fff; }
#panel h2 { font-size: 16px; margin: 0 0 8px; word-break: break-all; }
#panel table { border-collapse: collapse; margin-bottom: 10px; }
#panel td { padding: 2px 8px 2px 0; vertical-align: top; word-break: break-all; }
#panel td:first-child { color: #475569; white-space: nowrap; }
#panel pre { font-size: 12px; background: #f1f5f9; padding: 8px; overflow: auto; white-space: pre-wrap;
  word-break: break-all; }
.edge { fill: none; stroke: #64748b; stroke-width: 1.5; marker-end: url(#arrow); }
.node rect { stroke: #475569; stroke-width: 1.2; cursor: pointer; }
.node.artifact rect { fill: #dbeafe; }
.node.run rect { fill: #fef3c7; }
.node.source rect { fill: #e5e7eb; stroke-dasharray: 4 3; }
.node.missing rect { fill: #fee2e2; stroke: #b91c1c; }
.node.root rect { stroke-width: 3; }
.node.selected rect, .node:focus rect { stroke: #dc2626; stroke-width: 3; outline: none; }
.node text { text-anchor: middle; pointer-events: none; fill: #0f172a; }
.node .label { font-weight: 600; font-size: 13px; }
.node .subtitle { font-size: 11px; fill: #475569; }
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("lineage-data").textContent);
  var panel = document.getElementById("panel");
  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }
  function show(id) {
    var node = data[id];
    if (!node) { return; }
    document.querySelectorAll(".node.selected").forEach(function (el) { el.classList.remove("selected"); });
    document.getElementById(id).classList.add("selected");
    panel.textContent = "";
    var title = document.createElement("h2");
    title.textContent = node.label;
    panel.appendChild(title);
    var table = document.createElement("table");
    var rows = [["kind", node.kind]];
    Object.keys(node.details || {}).forEach(function (key) { rows.push([key, String(node.details[key])]); });
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(row[0])); tr.appendChild(cell(row[1])); table.appendChild(tr);
    });
    panel.appendChild(table);
    if (node.manifest_url) {
      var link = document.createElement("a");
      link.href = node.manifest_url; link.textContent = "open manifest.json"; link.className = "manifest-link";
      panel.appendChild(link);
    }
    if (node.manifest) {
      var pre = document.createElement("pre");
      pre.className = "manifest";
      pre.textContent = JSON.stringify(node.manifest, null, 2);
      panel.appendChild(pre);
    }
  }
  document.querySelectorAll(".node").forEach(function (el) {
    el.addEventListener("click", function (event) { event.preventDefault(); show(el.dataset.node); });
    el.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); show(el.dataset.node); }
    });
  });
  show(document.body.dataset.root);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lineage of {title}</title>
<style>{css}</style>
</head>
<body data-root="{root}">
<header>
<h1>Lineage of {title}</h1>
<p>{direction} &middot; {summary} &middot; store {store} &middot; generated {generated} by nemotron-art</p>
<p class="legend"><span style="background:#dbeafe">artifact version</span>
<span style="background:#fef3c7">run</span><span style="background:#e5e7eb">external source</span>
click a node to see its manifest</p>
</header>
<main>
<div id="graph">
<svg xmlns="http://www.w3.org/2000/svg" class="{fit}" width="{width}" height="{height}"
  viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
  orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>
{edges}
{nodes}
</svg>
</div>
<aside id="panel"><p>Click a node to see its manifest.</p></aside>
</main>
<script type="application/json" id="lineage-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
