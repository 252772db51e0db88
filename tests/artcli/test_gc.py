"""`nemotron-art gc`: a plan first, exactly the expected deletions, aliases and lineage protected."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.clitools import clean_env, nemotron_art, tree
from helpers.pipeline_store import commit, write_files

pytestmark = pytest.mark.integration


def _art(root, cwd, *args, expect=0):
    result = nemotron_art("--root", root, *args, cwd=cwd, env=clean_env())
    assert result.returncode == expect, result.stdout + result.stderr
    return result


@pytest.fixture()
def store(tmp_path):
    """raw v1..v4 (alias golden -> v1), model v1..v4 (alias prod -> v2), eval v1..v2, each with its inputs."""
    from nemotron import Artifact
    from nemotron.store.manifest_store import ManifestStore

    root = tmp_path / "store"
    data = write_files(tmp_path / "user-data", {"a.bin": b"1" * 10})
    for _ in range(4):
        commit(root, Artifact(path=str(data)), "raw", stage="register")
    for used in ("raw:v2", "raw:v3", "raw:v3", "raw:v4"):
        commit(root, Artifact(path=str(data)), "model", (used,))
    commit(root, Artifact(path=str(data)), "eval", ("model:v1",))
    commit(root, Artifact(path=str(data)), "eval", ("model:v4",))
    ManifestStore(str(root)).set_alias("raw:v1", "golden")
    ManifestStore(str(root)).set_alias("model:v2", "prod")
    return {"root": root, "data": data, "cwd": tmp_path}


def test_gc_plan_then_apply_deletes_exactly_the_expected_versions(store):
    root, cwd = store["root"], store["cwd"]
    before = tree(root)
    plan = json.loads(_art(root, cwd, "gc", "--keep-last", "1", "--json").stdout)
    # kept: the latest of each name, aliased versions, and everything upstream of a kept version
    assert plan["keep"] == {
        "raw:v4": ["latest", "one of the last 1", "upstream of model:v4"],
        "model:v4": ["latest", "one of the last 1", "upstream of eval:v2"],
        "eval:v2": ["latest", "one of the last 1"],
        "raw:v1": ["alias golden"],
        "model:v2": ["alias prod"],
        "raw:v3": ["upstream of model:v2"],
    }
    assert sorted(plan["delete"]) == ["eval:v1", "model:v1", "model:v3", "raw:v2"]
    assert plan["applied"] is False
    assert tree(root) == before  # a plan deletes nothing

    text = _art(root, cwd, "gc", "--keep-last", "1").stdout
    assert "dry run: 4 version(s) would be deleted, 6 kept" in text

    applied = json.loads(_art(root, cwd, "gc", "--keep-last", "1", "--apply", "--json").stdout)
    assert applied["applied"] is True and sorted(applied["delete"]) == sorted(plan["delete"])
    remaining = {
        (n, v["ref"]) for n in ("raw", "model", "eval") for v in json.loads(_art(root, cwd, "ls", n, "--json").stdout)
    }
    assert {ref for _, ref in remaining} == {"raw:v1", "raw:v3", "raw:v4", "model:v2", "model:v4", "eval:v2"}
    assert not (root / "raw" / "v2").exists() and not (root / "model" / "v1").exists()
    # the data the deleted versions pointed at is the user's: untouched
    assert (store["data"] / "a.bin").read_bytes() == b"1" * 10
    # latest, aliases and lineage still resolve; every deletion is logged
    for ref, version in (("raw", 4), ("model:latest", 4), ("model:prod", 2), ("raw:golden", 1)):
        assert json.loads(_art(root, cwd, "show", ref, "--json").stdout)["version"] == version
    graph = json.loads(_art(root, cwd, "lineage", "eval", "--json").stdout)
    assert graph["inputs"][0]["ref"] == "model:v4" and graph["inputs"][0]["inputs"][0]["ref"] == "raw:v4"
    assert len(list((root / "model" / "deletions").iterdir())) == 2
    # a second run finds nothing more to delete
    assert json.loads(_art(root, cwd, "gc", "--keep-last", "1", "--json").stdout)["delete"] == []
    # after gc, new commits still get fresh numbers above the old latest
    from nemotron import Artifact

    assert commit(root, Artifact(path=str(store["data"])), "model") == "model:v5"


def test_keep_last_n_keeps_the_n_newest(store):
    plan = json.loads(_art(store["root"], store["cwd"], "gc", "--keep-last", "2", "--json").stdout)
    assert plan["delete"] == []  # eval:v1 is one of the last 2, so its whole lineage (model:v1, raw:v2) stays
    assert plan["keep"]["model:v1"] == ["upstream of eval:v1"] and plan["keep"]["raw:v2"] == ["upstream of model:v1"]
    everything = json.loads(_art(store["root"], store["cwd"], "gc", "--keep-last", "0", "--json").stdout)
    assert sorted(everything["delete"]) == ["eval:v1", "model:v1", "model:v3", "raw:v2"]  # latest and aliases stay


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gc"], "gc needs --keep-last N"),
        (["gc", "--apply"], "gc needs --keep-last N"),
        (["gc", "--keep-last", "-1", "--apply"], "--keep-last must be 0 or more"),
    ],
)
def test_gc_bad_input_is_a_clear_error_and_changes_nothing(store, args, message):
    before = tree(store["root"])
    result = _art(store["root"], store["cwd"], *args, expect=2)
    assert message in result.stderr and "Nothing was deleted" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(store["root"]) == before


def test_gc_data_deletes_only_bundle_copies_this_store_owns(tmp_path):
    from nemotron import Artifact

    source, target, other = tmp_path / "source", tmp_path / "target", tmp_path / "other"
    user = write_files(tmp_path / "user", {"x.bin": b"user data"})
    for i in range(2):
        data = write_files(tmp_path / f"made-{i}", {"x.bin": f"version {i}".encode()})
        commit(source, Artifact(path=str(data)), "raw", stage="register")
    _art(source, tmp_path, "export", "raw:v1", "--closure", str(tmp_path / "b1"))
    _art(source, tmp_path, "export", "raw:v2", "--closure", str(tmp_path / "b2"))
    _art(target, tmp_path, "import-bundle", str(tmp_path / "b1"))  # raw:v1, data in b1 (owned by target)
    _art(other, tmp_path, "import-bundle", str(tmp_path / "b2"))  # b2's data is owned by `other`
    _art(target, tmp_path, "import-bundle", str(tmp_path / "b2"))  # raw:v2 in target, data not owned
    commit(target, Artifact(path=str(user)), "raw", stage="register")  # raw:v3: the user's data, latest
    commit(target, Artifact(path=str(user)), "raw", stage="register")  # raw:v4

    plan = json.loads(_art(target, tmp_path, "gc", "--keep-last", "1", "--data", "--json").stdout)
    assert sorted(plan["delete"]) == ["raw:v1", "raw:v2", "raw:v3"]
    assert plan["delete_data"] == {"raw:v1": str(tmp_path / "b1" / "data" / "raw" / "v1")}
    assert "belongs to" in plan["data_kept"]["raw:v2"]
    assert "raw:v3" not in plan["data_kept"] and "raw:v3" not in plan["delete_data"]

    without = json.loads(_art(target, tmp_path, "gc", "--keep-last", "1", "--json").stdout)
    assert without["delete_data"] == {}  # without --data, records only

    _art(target, tmp_path, "gc", "--keep-last", "1", "--data", "--apply")
    assert not (tmp_path / "b1" / "data" / "raw" / "v1").exists()
    assert (tmp_path / "b1" / "nemotron-bundle.json").is_file()  # the bundle's index stays
    assert (tmp_path / "b2" / "data" / "raw" / "v2" / "x.bin").read_bytes() == b"version 1"
    assert (user / "x.bin").read_bytes() == b"user data"
    assert json.loads(_art(target, tmp_path, "show", "raw", "--json").stdout)["version"] == 4
    _art(other, tmp_path, "verify", "raw:v2")  # the other store's copy is intact


def _imported_then_superseded(tmp_path):
    """raw:v1 imported from a bundle (this store owns its data copy), then raw:v2 committed: v1 may go."""
    from nemotron import Artifact

    source, target = tmp_path / "source", tmp_path / "target"
    made = write_files(tmp_path / "made", {"x.bin": b"made by the source"})
    commit(source, Artifact(path=str(made)), "raw", stage="register")
    shelf = tmp_path / "site" / "shelf"  # deep, so that `../..` from the bundle stays inside tmp_path
    shelf.mkdir(parents=True)
    bundle = shelf / "b1"
    _art(source, tmp_path, "export", "raw:v1", "--closure", str(bundle))
    _art(target, tmp_path, "import-bundle", str(bundle))
    commit(target, Artifact(path=str(write_files(tmp_path / "user", {"y.bin": b"user"}))), "raw", stage="register")
    (tmp_path / "site" / "keep.txt").write_text("everything beside the bundle is the user's")
    return target, bundle


@pytest.mark.parametrize("edit", ["index-dotdot", "index-absolute", "symlinked-copy", "symlinked-data"])
def test_gc_data_deletes_only_the_copy_the_store_claimed_checked_when_deleting(tmp_path, edit):
    target, bundle = _imported_then_superseded(tmp_path)
    victim = write_files(tmp_path / "victim", {"precious.txt": "not nemotron's"})
    copy = bundle / "data" / "raw" / "v1"
    index_file = bundle / "nemotron-bundle.json"
    index = json.loads(index_file.read_text())
    if edit == "index-dotdot":  # the file the old code trusted, edited after a clean import
        index["artifacts"][0]["data"] = "../.."
    elif edit == "index-absolute":
        index["artifacts"][0]["data"] = str(victim)
    elif edit == "symlinked-copy":  # the copy itself swapped for a link to someone else's directory
        shutil.rmtree(copy)
        copy.symlink_to(victim, target_is_directory=True)
    else:  # the bundle's data/ swapped for a link: the recorded path now leads to the user's raw/v1
        shutil.rmtree(bundle / "data")
        (bundle / "data").symlink_to(tmp_path / "site", target_is_directory=True)
        write_files(tmp_path / "site" / "raw" / "v1", {"x.bin": "the user's, at the path the store recorded"})
    index_file.write_text(json.dumps(index))

    def outside_the_copy():
        return {
            place: {k: v for k, v in tree(place).items() if not k.startswith("shelf/b1/data/raw/v1/")}
            for place in (tmp_path / "site", victim, tmp_path / "user")
        }

    before = outside_the_copy()
    applied = json.loads(_art(target, tmp_path, "gc", "--keep-last", "1", "--data", "--apply", "--json").stdout)
    assert applied["delete"] == ["raw:v1"]
    assert outside_the_copy() == before, f"gc deleted outside the bundle's data copy ({edit})"
    if edit.startswith("index-"):  # the index is not trusted: the copy the store claimed at import is what goes
        assert applied["delete_data"] == {"raw:v1": str(copy)} and not copy.exists()
        assert index_file.is_file() and (tmp_path / "site" / "keep.txt").is_file()
    else:  # a symlink on the way: reported, nothing deleted
        assert applied["delete_data"] == {} and "symlink" in applied["data_kept"]["raw:v1"], applied


def test_a_hint_past_the_last_version_breaks_neither_listing_nor_numbering(store):
    """`latest` reading v999 (edited by hand): `ls` works, with the option before or after the command, and the
    next commit is v5, not v1000."""
    from nemotron import Artifact

    root, cwd = store["root"], store["cwd"]
    (root / "raw" / "latest").write_text("v999")
    for args in (("--root", root, "ls", "--json"), ("ls", "--root", root, "--json")):
        result = nemotron_art(*args, cwd=cwd, env=clean_env())
        assert result.returncode == 0, result.stderr
        assert {row["name"]: row["latest"] for row in json.loads(result.stdout)}["raw"] == "v4"
    assert json.loads(_art(root, cwd, "show", "raw", "--json").stdout)["version"] == 4
    assert commit(root, Artifact(path=str(store["data"])), "raw", stage="register") == "raw:v5"
    assert (root / "raw" / "latest").read_text() == "v5"


def test_numbers_deleted_by_gc_are_never_reused(store):
    """gc deletes model:v1 and v3; with `latest` lowered to v1 the next commit still takes v5."""
    from nemotron import Artifact

    root, cwd = store["root"], store["cwd"]
    applied = json.loads(_art(root, cwd, "gc", "--keep-last", "1", "--apply", "--json").stdout)
    assert {"model:v1", "model:v3"} <= set(applied["delete"])
    (root / "model" / "latest").write_text("v1")
    assert commit(root, Artifact(path=str(store["data"])), "model") == "model:v5"
    result = nemotron_art("--root", root, "show", "model:v3", cwd=cwd, env=clean_env())
    assert result.returncode == 2 and "was deleted by `nemotron-art gc`" in result.stderr, result.stderr
