"""`nemotron-art lineage`: every format, up and down, and the HTML page in a real headless Chromium.

The renderers' own tools check the Mermaid and DOT outputs (mmdc, graphviz `dot`); each test skips with the
reason when its tool is not installed (.ci/run installs them).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from helpers.clitools import nemotron_art, ok
from helpers.pipeline_store import PIPELINE, SOURCE

pytestmark = pytest.mark.integration

ARTIFACTS = {f"{name}:v1" for name in PIPELINE}
RUNS = {f"{name.replace('-', '_') if name != 'raw-text' else 'register'} run" for name in PIPELINE}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-extensions",
]


def _art(pipeline, *args: str) -> str:
    return ok(nemotron_art("--root", pipeline["root"], *args, cwd=pipeline["base"], env=pipeline["env"])).stdout


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium is not installed (apt-get install chromium); .ci/run installs it")


def test_html_page_renders_every_node_in_chromium(pipeline, tmp_path):
    page = tmp_path / "lineage.html"
    _art(pipeline, "lineage", "eval", "--format", "html", "-o", str(page))
    text = page.read_text()
    # self-contained: no external resource can be requested (CSP), no script or style comes from elsewhere
    assert "default-src 'none'" in text
    assert not re.search(r"""(src|href)=["']https?:""", text)
    assert "<script src" not in text and "<link" not in text

    browser = _chromium()
    profile = tmp_path / "profile"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1600,900"]
    shot = tmp_path / "lineage.png"
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1600, 900) and len(png) > 20_000, "the screenshot is empty"

    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    nodes = {html.unescape(t) for t in re.findall(r'<a id="n\d+" class="node[^"]*"[^>]*><title>([^<]*)</title>', dom)}
    assert nodes == ARTIFACTS | RUNS | {SOURCE}
    labels = {html.unescape(t) for t in re.findall(r'<text class="label"[^>]*>([^<]*)</text>', dom)}
    assert labels >= ARTIFACTS
    # the script ran: the root's manifest is in the side panel, with the link to its manifest.json
    panel = re.search(r'<aside id="panel">(.*)</aside>', dom, re.S).group(1)
    assert "<h2>eval:v1</h2>" in panel
    assert '"model_uri": "art://sft-model:v1"' in html.unescape(panel)
    manifest_link = (pipeline["root"] / "eval" / "v1" / "manifest.json").resolve().as_uri()
    assert f'href="{manifest_link}"' in panel
    # every artifact node links to its own manifest (clickable without the script too)
    for ref in ARTIFACTS:
        name = ref.split(":")[0]
        assert (pipeline["root"] / name / "v1" / "manifest.json").resolve().as_uri() in dom


def test_dot_output_parses_with_graphviz(pipeline, tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz `dot` is not installed (apt-get install graphviz); .ci/run installs it")
    source = _art(pipeline, "lineage", "eval", "--format", "dot")
    result = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('class="node"') == len(ARTIFACTS | RUNS) + 1
    texts = {html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", result.stdout)}
    assert texts >= ARTIFACTS | RUNS


def test_mermaid_output_parses_with_mermaid_cli(pipeline, tmp_path):
    mmdc = shutil.which("mmdc")
    if mmdc is None:
        pytest.skip(
            "mermaid-cli (mmdc) is not installed: it needs Node.js and "
            "`PUPPETEER_SKIP_DOWNLOAD=1 npm install -g @mermaid-js/mermaid-cli` (.ci/run tries when npm exists)"
        )
    browser = _chromium()
    source = tmp_path / "lineage.mmd"
    _art(pipeline, "lineage", "eval", "--format", "mermaid", "-o", str(source))
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": browser, "args": ["--no-sandbox", "--disable-gpu"]}))
    out = tmp_path / "lineage.svg"
    result = subprocess.run(
        [mmdc, "--quiet", "-p", str(config), "-i", str(source), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    svg = out.read_text()
    for ref in ARTIFACTS:
        assert ref in svg
    # a broken diagram does fail the tool, so the check above means something
    source.write_text('flowchart LR\n  n0["unclosed --> n1\n')
    broken = subprocess.run(
        [mmdc, "--quiet", "-p", str(config), "-i", str(source), "-o", str(tmp_path / "bad.svg")],
        capture_output=True,
        timeout=180,
    )
    assert broken.returncode != 0


def test_tree_and_json_upstream(pipeline):
    tree = _art(pipeline, "lineage", "sft-model")
    for ref in ("sft-model:v1", "sft-data:v1", "pretrain-model:v1", "pretrain-data:v1", "raw-text:v1"):
        assert ref in tree
    assert SOURCE in tree
    graph = json.loads(_art(pipeline, "lineage", "sft-model", "--format", "json"))
    assert graph == json.loads(_art(pipeline, "lineage", "sft-model", "--json"))  # --json is --format json
    assert graph["ref"] == "sft-model:v1"
    assert sorted(node["ref"] for node in graph["inputs"]) == ["pretrain-model:v1", "sft-data:v1"]
    shallow = json.loads(_art(pipeline, "lineage", "sft-model", "--json", "--depth", "1"))
    assert all(node["inputs"] == [] for node in shallow["inputs"])


def test_downstream_lists_every_user(pipeline):
    graph = json.loads(_art(pipeline, "lineage", "raw-text", "--down", "--format", "json"))

    def refs(node):
        return {node["ref"]} | {r for child in node.get("used_by", []) for r in refs(child)}

    assert refs(graph) == ARTIFACTS  # everything in the pipeline was made from the raw text
    assert {c["ref"] for c in graph["used_by"]} == {"tokenizer:v1", "pretrain-data:v1", "sft-data:v1"}
    one_level = json.loads(_art(pipeline, "lineage", "raw-text", "--down", "--json", "--depth", "1"))
    assert all(child["used_by"] == [] for child in one_level["used_by"])
    dot = _art(pipeline, "lineage", "sft-model", "--down", "--format", "dot")
    assert "eval:v1" in dot and "raw-text:v1" not in dot
    assert "used by" in _art(pipeline, "lineage", "pretrain-model", "--down")


def test_mermaid_and_dot_quote_what_they_must(pipeline):
    mermaid = _art(pipeline, "lineage", "pretrain-data", "--format", "mermaid")
    assert mermaid.startswith("flowchart LR\n")
    assert f'[/"{SOURCE}<br/><small>external source</small>"/]' in mermaid
    assert re.search(r'click n0 href "file://[^"]+/pretrain-data/v1/manifest.json"', mermaid)
    dot = _art(pipeline, "lineage", "pretrain-data", "--format", "dot")
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert 'shape="parallelogram"' in dot
