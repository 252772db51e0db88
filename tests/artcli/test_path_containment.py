"""Path containment, property-based: no bundle makes the store read or delete outside its root and the bundle.

Hypothesis generates hostile bundles from one real export: index and manifest entries set to absolute paths,
`..` segments and odd names (with the data planted there, so every digest still matches), data copies,
files and whole `data/` trees swapped for symlinks to directories and files outside, and the same edits made
after a clean import. Each example runs `nemotron-art import-bundle`, commits newer versions, then
`gc --keep-last 0 --data --apply` (in-process, through the command's own `main`), and requires:

- the command either imports cleanly (exit 0) or refuses with a one-paragraph error (exit 2, nothing committed);
- every file import opened (an audit hook sees each `open`) lies in the bundle or the store root;
- every imported version's path lies in the bundle (after symlinks);
- a sentinel tree beside the bundle (files, directories and links) is byte-for-byte intact after gc.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.adversarial

_OPENED: list[str] | None = None  # the audit hook records absolute paths opened while this is a list


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if os.path.isabs(path):
            _OPENED.append(path)


sys.addaudithook(_audit)  # cannot be removed; it does nothing outside `_recording`


@contextlib.contextmanager
def _recording():
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def _commit(root: Path, data: Path, name: str, uses: tuple[str, ...] = ()) -> None:
    from nemotron import Artifact
    from nemotron.tracking.runinfo import build_run_record
    from nemotron.tracking.session import ArtifactSettings, Tracking

    tracking = Tracking(ArtifactSettings(root=str(root)))
    for reference in uses:
        tracking.resolve(reference)
    run = build_run_record(config={"stage": {"_target_": "nemotron.stages.register.run"}}, hydra_job_name="nemotron")
    tracking.commit(Artifact(path=str(data)), name=name, run=run)


def _write(directory: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(content)
    return directory


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A real bundle of model:v1 and its input raw:v1 (raw first in the index, with an internal relative link),
    exported from a real store."""
    from nemotron.artcli import main

    base = tmp_path_factory.mktemp("template")
    raw = _write(base / "raw", {"a.txt": "alpha\n", "sub/b.txt": "beta\n"})
    (raw / "sub" / "a-link.txt").symlink_to("../a.txt")  # a relative link inside the copy is legitimate
    model = _write(base / "model", {"weights.bin": "w" * 64})
    _commit(base / "source", raw, "raw")
    _commit(base / "source", model, "model", ("raw",))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--root", str(base / "source"), "export", "model", "--closure", str(base / "bundle")]) == 0
    return base / "bundle"


# -- the generated edits ---------------------------------------------------------------------------------

_SEGMENTS = ["..", ".", "", "data", "raw", "v1", "model", "outside", "odd name", "ünï", "a\\b", "-rf", "*", "\x00"]
_ABSOLUTE = ["{W}/outside", "{W}", "/", "/etc", "/etc/passwd", "{W}/site", "{W}/site/shelf/bundle/data/raw/v1"]
paths = st.one_of(
    st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=5).map("/".join),
    st.sampled_from(_ABSOLUTE),
    st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=3).map(lambda parts: "{W}/" + "/".join(parts)),
)
entries = st.integers(0, 1)
before_import = st.one_of(
    st.tuples(st.just("data"), entries, paths),
    st.tuples(st.just("manifest"), entries, paths),
    st.tuples(st.just("file"), entries, paths),
    st.tuples(st.just("link-copy"), entries),
    st.tuples(st.just("link-file"), entries),
    st.tuples(st.just("link-top"), st.sampled_from(["data", "manifests"])),
    st.tuples(st.just("owner-link")),
)
after_import = st.one_of(
    st.tuples(st.just("data"), entries, paths),
    st.tuples(st.just("link-copy"), entries),
    st.tuples(st.just("link-top"), st.just("data")),
    st.tuples(st.just("owner-link")),
    st.tuples(st.just("store-path"), entries, paths),  # the store's own record edited too
    st.tuples(st.just("store-bundle"), entries, paths),
)


class Workspace:
    """W/site/shelf/bundle (a copy of the template), W/store, and outside them the sentinels."""

    def __init__(self, template: Path):
        self.w = Path(tempfile.mkdtemp(prefix="containment-")).resolve()
        self.bundle = self.w / "site" / "shelf" / "bundle"
        shutil.copytree(template, self.bundle, symlinks=True)
        self.store = self.w / "store"
        _write(self.w / "outside", {"precious.txt": "not nemotron's", "deep/er.txt": "also not"})
        _write(self.w / "site", {"keep.txt": "beside the bundle"})
        self.secret = _write(self.w / "secret", {"passwd": "root:x:0:0::/root:/bin/sh\n"}) / "passwd"
        self.originals = [dict(entry) for entry in self.index()["artifacts"]]  # what edits plant copies of

    def sandboxed(self, path: Path) -> Path:
        """`path`, after making sure that the test itself only ever removes or moves things inside W."""
        assert Path(os.path.realpath(path.parent)).is_relative_to(self.w) and path.is_relative_to(self.w), path
        return path

    def index(self) -> dict[str, Any]:
        return json.loads((self.bundle / "nemotron-bundle.json").read_text())

    def save(self, index: dict[str, Any]) -> None:
        (self.bundle / "nemotron-bundle.json").write_text(json.dumps(index))

    def place(self, path: str, relative_to: Path) -> Path | None:
        """Where `path` lands lexically, if that is inside W (so planting data there stays in the sandbox)."""
        path = path.replace("{W}", str(self.w))
        if "\x00" in path:
            return None
        landed = Path(os.path.normpath(path if os.path.isabs(path) else relative_to / path))
        return landed if landed.is_relative_to(self.w) and landed != self.w else None

    def snapshot(self) -> dict[str, Any]:
        """Everything under W except the store and the bundle's own data copies and owner.json (gc may delete
        those): files with their bytes, directories, and links with their targets (never followed)."""
        seen: dict[str, Any] = {}
        for top, dirs, files in os.walk(self.w, followlinks=False):
            for name in dirs + files:
                path = Path(top) / name
                key = str(path.relative_to(self.w))
                if key == "store" or key.startswith(("store/", "site/shelf/bundle/data/", "site/shelf/bundle/owner.")):
                    continue
                if path.is_symlink():
                    seen[key] = ("link", os.readlink(path))
                elif path.is_dir():
                    seen[key] = ("dir",)
                else:
                    seen[key] = ("file", path.read_bytes())
        return seen


def _digest(path: Path) -> str:
    import fsspec

    from nemotron.store.files import digest_file

    return digest_file(fsspec.filesystem("file"), str(path), "xxh3_128")


def _plant_copy(source: Path, landed: Path | None) -> None:
    """A copy of the bundle's own `source` at `landed`, so that an edit pointing there passes every digest."""
    if landed is None or os.path.lexists(landed) or not source.exists() or landed.is_relative_to(source):
        return
    with contextlib.suppress(OSError):  # a name the file system refuses: the edit stays, nothing is planted
        landed.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, landed, symlinks=True)
        else:
            shutil.copy(source, landed)


def _edit(ws: Workspace, edit: tuple) -> None:
    """Apply one hostile edit, keeping the index self-consistent wherever the edit allows."""
    index = ws.index()
    kind = edit[0]
    entry = index["artifacts"][edit[1]] if kind in ("data", "manifest", "file", "link-copy", "link-file") else None
    original = ws.originals[edit[1]] if entry is not None else {}
    copy = ws.bundle / original["data"] if original.get("data") else None  # the export's copy, never an edit's
    if kind == "data":
        if copy is not None:
            _plant_copy(copy, ws.place(edit[2], ws.bundle))
        entry["data"] = edit[2].replace("{W}", str(ws.w))
    elif kind == "manifest":
        _plant_copy(ws.bundle / original["manifest"], ws.place(edit[2], ws.bundle))
        entry["manifest"] = edit[2].replace("{W}", str(ws.w))
    elif kind == "file" and copy is not None:
        _plant_copy(copy / original["files"][0]["path"], ws.place(edit[2], copy))
        entry["files"][0]["path"] = edit[2].replace("{W}", str(ws.w))
    elif kind == "link-copy" and copy is not None and copy.is_dir() and not copy.is_symlink():
        elsewhere = ws.w / f"elsewhere-{edit[1]}"
        if not elsewhere.exists():
            shutil.copytree(copy, elsewhere, symlinks=True)
        shutil.rmtree(ws.sandboxed(copy))
        copy.symlink_to(elsewhere, target_is_directory=True)
    elif kind == "link-file" and copy is not None and (copy / original["files"][0]["path"]).is_file():
        victim = ws.sandboxed(copy / original["files"][0]["path"])
        victim.unlink()
        victim.symlink_to(ws.secret)
        entry["files"][0].update(size=ws.secret.stat().st_size, digest=_digest(ws.secret))
    elif kind == "link-top" and (ws.bundle / edit[1]).is_dir() and not (ws.bundle / edit[1]).is_symlink():
        moved = ws.w / f"moved-{edit[1]}"
        shutil.move(ws.sandboxed(ws.bundle / edit[1]), moved)
        (ws.bundle / edit[1]).symlink_to(moved, target_is_directory=True)
    elif kind == "owner-link":
        (ws.w / "owner-elsewhere.json").write_text(json.dumps({"store": str(ws.store)}))
        with contextlib.suppress(FileNotFoundError):
            ws.sandboxed(ws.bundle / "owner.json").unlink()
        (ws.bundle / "owner.json").symlink_to(ws.w / "owner-elsewhere.json")
    elif kind in ("store-path", "store-bundle"):
        record_file = ws.store / ("raw", "model")[edit[1]] / "v1" / "manifest.json"
        record = json.loads(record_file.read_text())
        value = edit[2].replace("{W}", str(ws.w))
        if kind == "store-path":
            record["path"] = value if os.path.isabs(value) else f"{record['origin']['bundle']}/{value}"
        else:
            record["origin"]["bundle"] = value if os.path.isabs(value) else f"{ws.w}/{value}"
        record_file.write_text(json.dumps(record))
    ws.save(index)


def _art(*argv: str) -> tuple[int, str, str]:
    """`nemotron-art ARGV` in this process: (exit code, stderr, stdout)."""
    from nemotron.artcli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue(), out.getvalue()


def _manifests(store: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(store.glob("*/v*/manifest.json"))] if store.exists() else []


def _assert_inside(path: str, places: tuple[Path, ...], what: str) -> None:
    real = Path(os.path.realpath(path))
    assert any(real.is_relative_to(place) for place in places), f"{what} {path} (really {real}) is outside"


def _import(ws: Workspace) -> int:
    """import-bundle: a clean import or a one-paragraph refusal, opening nothing outside the bundle and store."""
    owner_before = os.path.lexists(ws.bundle / "owner.json")
    with _recording() as opened:
        code, err, _ = _art("--root", str(ws.store), "import-bundle", str(ws.bundle))
    assert code in (0, 2) and "Traceback" not in err, err
    event(f"import exit {code}")
    if code == 2:  # refused: one clear paragraph, nothing committed, no claim made
        assert err.startswith("nemotron-art: error: ") and err.count("\n") == 1, err
        assert _manifests(ws.store) == [] and os.path.lexists(ws.bundle / "owner.json") == owner_before
    for path in opened:
        if Path(path).is_relative_to(ws.w) or Path(os.path.realpath(path)).is_relative_to(ws.w):
            _assert_inside(path, (ws.bundle, ws.store), "import opened")
    for record in _manifests(ws.store):
        _assert_inside(record["path"], (ws.bundle,), f"{record['name']}:v{record['version']} points at")
    return code


def _supersede_then_gc(ws: Workspace) -> None:
    """Newer versions of both names (so the imported ones may go), then gc --data --apply: outside intact."""
    user = _write(ws.w / "user-data", {"u.txt": "user"})
    _commit(ws.store, user, "raw")
    _commit(ws.store, user, "model")
    before = ws.snapshot()
    code, err, out = _art("--root", str(ws.store), "gc", "--keep-last", "0", "--data", "--apply", "--json")
    assert code == 0, err
    event(f"gc deleted {len(json.loads(out)['delete_data'])} data copies")
    assert ws.snapshot() == before, "gc changed something outside the bundle's data copies"
    assert ws.secret.read_text() == "root:x:0:0::/root:/bin/sh\n"


_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(edits=st.lists(before_import, max_size=3))
def test_no_bundle_makes_import_read_or_gc_delete_outside_it(template, edits):
    ws = Workspace(template)
    try:
        for edit in edits:
            _edit(ws, edit)
        before = ws.snapshot()
        if _import(ws) == 0:
            _supersede_then_gc(ws)
        else:
            assert ws.snapshot() == before
    finally:
        shutil.rmtree(ws.w, ignore_errors=True)


@_SETTINGS
@given(later=st.lists(after_import, min_size=1, max_size=3))
def test_edits_after_a_clean_import_never_make_gc_delete_outside_the_copy(template, later):
    ws = Workspace(template)
    try:
        assert _import(ws) == 0
        for edit in later:
            _edit(ws, edit)
        _supersede_then_gc(ws)
    finally:
        shutil.rmtree(ws.w, ignore_errors=True)


def test_an_untouched_bundle_imports_and_gc_deletes_exactly_its_data_copies(template):
    """The property above must not hold by refusing everything: a clean bundle imports, and gc removes it."""
    ws = Workspace(template)
    try:
        before = ws.snapshot()
        assert _art("--root", str(ws.store), "import-bundle", str(ws.bundle))[0] == 0
        user = _write(ws.w / "user-data", {"u.txt": "user"})
        _commit(ws.store, user, "raw")
        _commit(ws.store, user, "model")
        before = ws.snapshot()
        code, err, _ = _art("--root", str(ws.store), "gc", "--keep-last", "0", "--data", "--apply")
        assert code == 0, err
        assert not (ws.bundle / "data" / "raw" / "v1").exists() and not (ws.bundle / "data" / "model" / "v1").exists()
        assert ws.snapshot() == before and (ws.bundle / "nemotron-bundle.json").is_file()
    finally:
        shutil.rmtree(ws.w, ignore_errors=True)
