"""Bad input, end to end: each case is a clear one-paragraph error on stderr (no traceback), a non-zero exit,
and nothing written to the store."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.clitools import (
    PLUGIN_STAGE,
    clean_env,
    make_data,
    make_plugin,
    nemotron,
    nemotron_art,
    register,
    tree,
)

pytestmark = pytest.mark.integration

CORRUPT_MANIFEST = b'{"name": "broken", "version": 1, "type": "Artif'


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with raw-text:v1 and a corrupt broken:v1, a plugin stage reading run.src, and a regular file."""
    base = tmp_path_factory.mktemp("errors")
    work = base / "work"
    work.mkdir()
    root = base / "store"
    config_dir, module_dir = make_plugin(base)
    data = make_data(base / "raw")
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=root, PYTHONPATH=module_dir)
    register("raw-text", data, work, env)
    (root / "broken" / "v1").mkdir(parents=True)
    (root / "broken" / "v1" / "manifest.json").write_bytes(CORRUPT_MANIFEST)
    (root / "broken" / "latest").write_text("v1")
    (root / "raw-text" / "aliases").mkdir()
    (root / "raw-text" / "aliases" / "gone").write_text("v7")  # a dangling alias, as an older gc could leave
    a_file = base / "a-regular-file"
    a_file.write_text("not a directory\n")
    broken = make_data(base / "with-a-broken-link")
    (broken / "gone").symlink_to(base / "no-such-target")  # listed, but cannot be read for its digest
    copies = base / "copies"
    copies.mkdir()
    paths = {"copies": copies, "work": work, "root": root, "config_dir": config_dir, "data": data, "file": a_file}
    paths["broken"] = broken
    return {**paths, "env": env}


def _plugin(*overrides: str):
    return lambda s: ["--config-dir", s["config_dir"], f"stage={PLUGIN_STAGE}", *overrides]


def _register(*overrides: str, name: str = "fresh"):
    return lambda s: ["stage=register", f"stage.path={s['data']}", f"stage.name={name}", *overrides]


# (id, arguments of `python -m nemotron` built from the fixture, phrase the error must contain)
NEMOTRON_CASES = [
    ("ref-two-colons", _plugin("run.src=a:b:c"), "'a:b:c' is not a valid artifact reference"),
    ("ref-no-name", _plugin("run.src=:v1"), "':v1' has no artifact name"),
    ("ref-version-0", _plugin("run.src=raw-text:v0"), "versions start at v1"),
    ("ref-version-negative", _plugin("run.src=raw-text:v-1"), "versions start at v1"),
    ("ref-bad-name", _plugin("run.src=Raw-Text:v1"), "'Raw-Text' is not a valid artifact name"),
    ("unknown-name", _plugin("run.src=no-such-data"), "No artifact named 'no-such-data'"),
    ("unknown-version", _plugin("run.src=raw-text:v9"), "raw-text:v9 does not exist"),
    ("unknown-alias", _plugin("run.src=raw-text:prod"), "raw-text has no alias 'prod'"),
    ("alias-of-a-deleted-version", _plugin("run.src=raw-text:gone"), "The alias raw-text:gone points at v7"),
    ("ref-is-a-url", _plugin("run.src=s3://x"), "'s3://x' is a URL, not an artifact reference"),
    ("art-no-arguments", _plugin("stage.source=${art:}"), "takes a reference and optionally a field"),
    ("art-three-arguments", _plugin("stage.source=${art:src,path,x}"), "got 3 argument(s)"),
    ("unknown-field", _plugin("stage.source=${art:src,nope}"), "has no field 'nope'"),
    ("direct-ref-unknown", _plugin("stage.source=${art:other-data:v1,path}"), "No artifact named 'other-data'"),
    ("corrupt-manifest", _plugin("run.src=broken"), "The manifest of broken:v1"),
    ("corrupt-manifest-pinned", _plugin("run.src=broken:v1"), "is corrupt"),
    ("stdin-empty", _plugin("run.src=-"), "it held 0 lines"),
    ("missing-root-for-reading", _plugin("artifacts.manifest.root=/nonexistent/store"), "does not exist"),
    ("name-with-slash", _register(name="team/data"), "'team/data' is not a valid artifact name"),
    ("name-with-dotdot", _register(name="data..v2"), "'data..v2' is not a valid artifact name"),
    ("name-uppercase", _register(name="MyData"), "'MyData' is not a valid artifact name"),
    ("unknown-stage", lambda s: ["stage=nope"], "Could not find 'stage/nope'"),
    ("unknown-launcher", lambda s: ["stage=register", "launcher=nope"], "Could not find 'launcher/nope'"),
    ("unknown-key", _register("stage.nope=1"), "Could not override 'stage.nope'"),
    ("unknown-type", _register("stage.type=NoSuchArtifact"), "Unknown artifact type 'NoSuchArtifact'"),
    (
        "invalid-model-step",
        _register("stage.type=ModelArtifact", "+stage.fields.step=-1"),
        "step: Input should be greater than or equal to 0",
    ),
    (
        "invalid-sft-pack-size",
        _register("stage.type=SFTDataArtifact", "+stage.fields.pack_size=0"),
        "pack_size: Input should be greater than or equal to 1",
    ),
    ("unknown-typed-field", _register("stage.type=ModelArtifact", "+stage.fields.nope=1"), "nope: Extra inputs"),
    ("missing-data-path", lambda s: ["stage=register", "stage.path=/no/such/dir", "stage.name=x"], "does not exist"),
    ("missing-required-param", lambda s: ["stage=register", "stage.name=x"], "The stage needs a value for path"),
    (
        "unreadable-file-in-the-output",
        lambda s: ["stage=register", f"stage.path={s['broken']}", "stage.name=x"],
        "Nothing was committed: No such file or directory",
    ),
    (
        "root-beneath-a-file",
        _register("artifacts.manifest.root={file}/store"),
        "Cannot write to the artifact store root",
    ),
]


def _assert_clear_error(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    stderr = result.stderr
    assert result.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "warnings.warn" not in stderr and "Warning:" not in stderr, stderr
    assert phrase in stderr, stderr
    # the message is one paragraph: the phrase sits on one line of plain text (not only inside a wrapped panel)
    lines = [line for line in stderr.splitlines() if phrase in line and not line.startswith("│")]
    assert lines and len(lines[0]) < 1000, stderr


def _run_cases(store, cases, command):
    """Run every case of a table at once, each on its own copy of the store (the table then costs about
    len(cases) / cores process start-ups): {id: (result, store before, store after)}."""

    def one(case):
        case_id, args = case[0], case[1]
        root = store["copies"] / f"{command.__name__}-{case_id}"
        shutil.copytree(store["root"], root)
        if callable(args):
            args = [str(a).replace("{file}", str(store["file"])) for a in args(store)]
        before = tree(root)
        result = command(*args, cwd=store["work"], env={**store["env"], "NEMOTRON_ARTIFACTS_ROOT": str(root)})
        return case_id, (result, before, tree(root))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(one, cases))


@pytest.fixture(scope="module")
def nemotron_results(store):
    return _run_cases(store, NEMOTRON_CASES, nemotron)


@pytest.fixture(scope="module")
def art_results(store):
    return _run_cases(store, ART_CASES, nemotron_art)


@pytest.mark.parametrize("phrase", [c[2] for c in NEMOTRON_CASES], ids=[c[0] for c in NEMOTRON_CASES])
def test_bad_input_to_nemotron(nemotron_results, request, phrase):
    result, before, after = nemotron_results[request.node.callspec.id]
    _assert_clear_error(result, phrase)
    assert result.stdout == ""
    assert after == before
    assert not Path("/nonexistent").exists()


ART_CASES = [
    ("ref-two-colons", ["show", "a:b:c"], "'a:b:c' is not a valid artifact reference"),
    ("ref-version-0", ["show", "raw-text:v0"], "versions start at v1"),
    ("unknown-name", ["show", "no-such-data"], "No artifact named 'no-such-data'"),
    ("unknown-version", ["lineage", "raw-text:v9"], "raw-text:v9 does not exist"),
    ("unknown-alias", ["show", "raw-text:prod"], "raw-text has no alias 'prod'"),
    ("corrupt-manifest", ["show", "broken"], "is corrupt"),
    ("bad-alias-name", ["alias", "raw-text:v1", "v2"], "'v2' is not a valid alias"),
    ("reserved-alias", ["alias", "raw-text:v1", "latest"], "'latest' is reserved"),
    ("missing-root", ["--root", "/nonexistent", "ls"], "The artifact store root '/nonexistent' does not exist"),
    ("root-after-command", ["ls", "--root", "/nonexistent"], "The artifact store root '/nonexistent' does not exist"),
    ("alias-of-a-deleted-version", ["show", "raw-text:gone"], "The alias raw-text:gone points at v7"),
    ("ref-is-a-url", ["show", "s3://x"], "'s3://x' is a URL, not an artifact reference"),
    ("lineage-into-a-missing-dir", ["lineage", "raw-text", "-o", "/nonexistent/out.txt"], "create it first"),
    (
        "lineage-html-into-a-missing-dir",
        ["lineage", "raw-text", "--format", "html", "-o", "/nonexistent/l.html"],
        "Cannot write /nonexistent/l.html",
    ),
]


@pytest.mark.parametrize("phrase", [c[2] for c in ART_CASES], ids=[c[0] for c in ART_CASES])
def test_bad_input_to_nemotron_art(art_results, request, phrase):
    result, before, after = art_results[request.node.callspec.id]
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one line: `nemotron-art: error: ...`
    assert lines[0].startswith("nemotron-art: error: ")
    assert phrase in lines[0]
    assert after == before


def _read_only_mount_works(directory: Path) -> bool:
    """Whether this machine lets us make a private read-only bind mount (root in a user namespace or not)."""
    script = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} {directory}"
    try:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def test_read_only_root(store, tmp_path):
    """A store root on a read-only filesystem: a clear error at commit, nothing written."""
    root = tmp_path / "ro-store"
    root.mkdir()
    if not _read_only_mount_works(root):
        pytest.skip("cannot create a read-only bind mount here (needs unshare -m); root-beneath-a-file covers it")
    command = [
        sys.executable,
        "-m",
        "nemotron",
        "stage=register",
        f"stage.path={store['data']}",
        "stage.name=fresh",
        f"artifacts.manifest.root={root}",
    ]
    script = f"mount --bind {root} {root} && mount -o remount,ro,bind {root} {root} && exec {shlex.join(command)}"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        cwd=store["work"],
        env=store["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_clear_error(result, "Cannot write to the artifact store root")
    assert "Read-only file system" in result.stderr
    assert list(root.iterdir()) == []


SLOW_STAGE_YAML = """\
# @package _global_
stage:
  _target_: slow_stage.run
  started: ???
"""

SLOW_STAGE_CODE = """\
import time
from pathlib import Path


def run(cfg):
    Path(cfg.stage.started).touch()
    time.sleep(300)
"""


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """SIGINT while a stage runs: `interrupted` on one line, exit status 130, no traceback, nothing committed."""
    import signal
    import time

    (tmp_path / "conf" / "stage").mkdir(parents=True)
    (tmp_path / "conf" / "stage" / "slow.yaml").write_text(SLOW_STAGE_YAML)
    (tmp_path / "slow_stage.py").write_text(SLOW_STAGE_CODE)
    started, root = tmp_path / "started", tmp_path / "store"
    args = ["--config-dir", tmp_path / "conf", "stage=slow", f"stage.started={started}"]
    args.append(f"artifacts.manifest.root={root}")
    process = subprocess.Popen(
        [sys.executable, "-m", "nemotron", *map(str, args)],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a command started in the background by a non-interactive shell (`pytest &`, as CI
        # scripts do) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stage never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted", stderr
    assert stdout == ""
    assert not root.exists() or not any(root.glob("*/v*/manifest.json"))


def test_ls_lists_every_name_even_when_one_is_damaged(store):
    """A corrupt manifest (broken:v1) or a `latest` hint past the end shows on its own row; `ls` still lists the
    other names and exits 0 (fsck is the command that fails on damage)."""
    root = store["copies"] / "ls-damaged"
    shutil.copytree(store["root"], root)
    (root / "raw-text" / "latest").write_text("v999")
    result = nemotron_art("ls", "--json", "--root", root, cwd=store["work"], env=store["env"])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["raw-text"]["latest"] == "v1"
    assert rows["broken"]["type"].startswith("error: The manifest of broken:v1") and "corrupt" in rows["broken"]["type"]
