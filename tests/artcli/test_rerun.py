"""`nemotron-art rerun`: data stages run again from their manifests give the same files; diff and lineage say so.

One store, made by the real stages in subprocesses (a few seconds each):

    pretrain_data -> pretrain-data-tiny:v1 + tokenizer-tiny:v1
    sft_data (tokenizer-tiny:latest = v1) -> sft-data-tiny:v1
    rerun pretrain-data-tiny:v1 -> pretrain-data-tiny:v2 + tokenizer-tiny:v2   (tokenizer-tiny:latest is now v2)
    rerun sft-data-tiny:v1 -> sft-data-tiny:v2, made from tokenizer-tiny:v1 (pinned, never latest)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.clitools import clean_env, nemotron, nemotron_art, ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SMALL_DATA = ["scale.max_rows_per_source=300", "data.tokenizer.vocab_size=400"]
SFT = [
    "data.tokenizer.name_or_path=${art:tokenizer-tiny:latest,path}",
    "stage.tokenizer_uri=${art:tokenizer-tiny:latest,uri}",
    "stage.pack_size=64",
]


class Rerun:
    def __init__(self, base: Path) -> None:
        self.base, self.root = base, base / "store"
        self.env = clean_env(NEMOTRON_ARTIFACTS_ROOT=self.root)

    def stage(self, *args: str) -> None:
        ok(nemotron(*args, cwd=self.base, env=self.env))

    def art(self, *args: str, expect: int = 0):
        result = nemotron_art(*args, cwd=self.base, env=self.env)
        assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def manifest(self, ref: str) -> dict:
        name, version = ref.split(":v")
        return json.loads((self.root / name / f"v{version}" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def reran(tmp_path_factory) -> Rerun:
    store = Rerun(tmp_path_factory.mktemp("rerun"))
    store.stage("stage=pretrain_data", *SMALL_DATA)
    store.stage("stage=sft_data", *SMALL_DATA, *SFT)
    store.data_rerun = store.art("rerun", "pretrain-data-tiny:v1")
    store.sft_rerun = store.art("rerun", "sft-data-tiny:v1")
    return store


def _digests(manifest: dict) -> dict[str, str]:
    return {entry["path"]: entry["digest"] for entry in manifest["files"]}


@pytest.mark.parametrize("name", ["pretrain-data-tiny", "tokenizer-tiny", "sft-data-tiny"])
def test_a_rerun_of_a_data_stage_gives_the_same_files(reran: Rerun, name: str) -> None:
    old, new = reran.manifest(f"{name}:v1"), reran.manifest(f"{name}:v2")
    assert new["reproduces"] == f"{name}:v1" and old.get("reproduces") is None
    assert new["path"] != old["path"]  # a new output directory: the old version's files are untouched
    before, after = _digests(old), _digests(new)
    assert before.keys() == after.keys() and len(before) >= 3
    # blend.json names its shards relative to itself: no file names the output directory
    assert [path for path in before if before[path] != after[path]] == []


def test_a_rerun_pins_every_input_to_the_version_the_original_used(reran: Rerun) -> None:
    assert reran.manifest("tokenizer-tiny:v2")["reproduces"] == "tokenizer-tiny:v1"  # latest is v2 now
    assert reran.manifest("sft-data-tiny:v1")["used_artifacts"] == ["tokenizer-tiny:v1"]
    assert reran.manifest("sft-data-tiny:v2")["used_artifacts"] == ["tokenizer-tiny:v1"]  # not latest (v2)
    assert "inputs pinned: tokenizer-tiny:v1" in reran.sft_rerun.stderr
    assert "sft-data-tiny:v2 reproduces sft-data-tiny:v1: " in reran.sft_rerun.stderr
    assert "promised: byte-identical files" in reran.data_rerun.stderr
    # the data's own tokenizer is the rerun's new one, which reproduces the old one
    assert reran.manifest("pretrain-data-tiny:v2")["used_artifacts"] == ["tokenizer-tiny:v2"]


@pytest.mark.parametrize("name", ["pretrain-data-tiny", "sft-data-tiny"])
def test_diff_of_a_rerun_shows_only_time_host_and_run_ids(reran: Rerun, name: str) -> None:
    result = json.loads(reran.art("diff", f"{name}:v1", f"{name}:v2", "--json").stdout)
    assert result["reproduces"] == {"a": None, "b": f"{name}:v1"}
    assert result["artifact"] == {} and result["config"] == {} and result["inputs"] == {} and result["fields"] == {}
    assert set(result["code"]) <= {"git.commit", "git.dirty"}  # other helpers commit to this checkout meanwhile
    assert result["files"]["changed"] == [] and result["files"]["only_in_a"] == result["files"]["only_in_b"] == []
    expected = {key.split(".")[0] for key in result["expected"]}
    assert expected <= {"created_at", "committed_at", "producer", "run", "artifact", "config", "inputs", "fields"}
    assert {"committed_at", "run.output_dir", "artifact.path", "config.artifacts.reproduces"} <= set(result["expected"])
    assert all(
        key.endswith(("elapsed_sec", "tokenizer_uri")) for key in result["expected"] if key.startswith("fields.")
    )
    text = reran.art("diff", f"{name}:v1", f"{name}:v2").stdout
    assert f"{name}:v2 reproduces {name}:v1" in text and "expected (time, host, run ids" in text


def test_lineage_shows_what_a_version_reproduces(reran: Rerun) -> None:
    tree = reran.art("lineage", "sft-data-tiny:v2").stdout
    assert "sft-data-tiny:v2" in tree.splitlines()[0] and "reproduces sft-data-tiny:v1" in tree.splitlines()[0]
    assert "tokenizer-tiny:v1" in tree
    assert re.search(r"^reproduces +sft-data-tiny:v1 *$", reran.art("show", "sft-data-tiny:v2").stdout, re.M)
    nested = json.loads(reran.art("lineage", "pretrain-data-tiny:v2", "--json").stdout)
    assert nested["reproduces"] == "pretrain-data-tiny:v1"
    assert nested["inputs"][0]["reproduces"] == "tokenizer-tiny:v1"


def test_dry_run_prints_the_command_and_runs_nothing(reran: Rerun) -> None:
    versions = sorted(p.name for p in (reran.root / "sft-data-tiny").glob("v*"))
    result = reran.art("rerun", "sft-data-tiny:v1", "--dry-run", "--launcher", "submitit_local")
    assert "++artifacts.pins=" in result.stderr and "tokenizer-tiny=tokenizer-tiny:v1" in result.stderr
    assert "launcher=submitit_local" in result.stderr and "stage=sft_data" in result.stderr
    assert result.stdout == "" and sorted(p.name for p in (reran.root / "sft-data-tiny").glob("v*")) == versions


def test_a_rerun_through_a_launcher_is_checked_from_the_store(reran: Rerun) -> None:
    """launcher=submitit_local runs the job in a process of its own: its JSON lines never reach rerun's stdout,
    so the reproduced versions are found in the store."""
    result = reran.art("rerun", "pretrain-data-tiny:v1", "--launcher", "submitit_local")
    new = reran.manifest("pretrain-data-tiny:v3")
    assert new["reproduces"] == "pretrain-data-tiny:v1" and "launcher=submitit_local" in new["run"]["overrides"]
    assert "pretrain-data-tiny:v3 reproduces pretrain-data-tiny:v1: 11 files identical\n" in result.stderr


def test_pins_apply_to_references_by_text_and_by_name(tmp_path: Path) -> None:
    """What `++artifacts.pins` does inside the job: `x:latest`, `x` and `x:prod` all resolve to the pinned
    version; an exact reference and other names are left alone."""
    from nemotron import Artifact
    from nemotron.tracking.session import ArtifactSettings, Tracking

    root = str(tmp_path / "store")
    (tmp_path / "d").mkdir()
    plain = Tracking(ArtifactSettings(root=root))
    for name in ("x", "x", "x", "y"):
        plain.commit(Artifact(path=str(tmp_path / "d")), name=name)
    plain.store.set_alias("x:v3", "prod")
    settings = ArtifactSettings.from_config({"manifest": {"root": root}, "pins": ["x=x:v1", "y:latest=y:v1"]})
    pinned = Tracking(settings)
    assert [pinned.resolve(r).ref for r in ("x:latest", "art://x", "x:prod", "x:v2", "y:latest")] == [
        "x:v1",
        "x:v1",
        "x:v1",
        "x:v2",
        "y:v1",
    ]
    with pytest.raises(Exception, match="NAME=NAME:vN"):
        ArtifactSettings.from_config({"pins": ["x=x:latest"]})


def test_a_stage_from_a_users_config_dir_reruns_on_the_version_its_role_named(tmp_path: Path) -> None:
    """`--config-dir DIR` (not an override, so only the command line has it) is given again, and `run.src:
    raw-text:latest` reads raw-text:v1 as the original did, though raw-text:v2 is the latest now."""
    from helpers.clitools import make_data, make_plugin, register

    config_dir, module_dir = make_plugin(tmp_path)
    env = clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "store", PYTHONPATH=module_dir)
    register("raw-text", make_data(tmp_path / "raw1", "first\n"), tmp_path, env)
    ok(nemotron("--config-dir", str(config_dir), "stage=e2e_plugin", cwd=tmp_path, env=env))
    register("raw-text", make_data(tmp_path / "raw2", "second, longer\n"), tmp_path, env)
    result = nemotron_art("rerun", "derived:v1", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"--config-dir {config_dir}" in result.stderr and "inputs pinned: raw-text:v1" in result.stderr
    new = json.loads((tmp_path / "store" / "derived" / "v2" / "manifest.json").read_text())
    assert new["reproduces"] == "derived:v1" and new["used_artifacts"] == ["raw-text:v1"]
    assert (Path(new["path"]) / "output.txt").read_text() == "FIRST\n" and new["metadata"]["metadata"]["chars"] == 6


def test_an_exported_reproduction_never_names_a_version_of_another_store(reran: Rerun, tmp_path: Path) -> None:
    """`reproduces` is no lineage edge: sft-data-tiny:v1 is not in v2's closure, so the import records none."""
    reran.art("export", "sft-data-tiny:v2", "--closure", str(tmp_path / "bundle"))
    other = tmp_path / "other-store"
    reran.art("--root", str(other), "import-bundle", str(tmp_path / "bundle"))
    imported = json.loads((other / "sft-data-tiny" / "v2" / "manifest.json").read_text())
    assert imported["origin"]["ref"] == "sft-data-tiny:v2" and imported["reproduces"] is None


def test_a_rerun_whose_input_was_deleted_is_one_clear_error(reran: Rerun) -> None:
    """tokenizer-tiny:v1 deleted as gc deletes (its record, a deletion entry): sft-data-tiny:v1 cannot be rerun."""
    from nemotron.store.manifest_store import ManifestStore

    ManifestStore(str(reran.root)).delete_version("tokenizer-tiny", 1, {"by": "nemotron-art gc"})
    versions = sorted(p.name for p in (reran.root / "sft-data-tiny").glob("v*"))
    result = reran.art("rerun", "sft-data-tiny:v1", expect=2)
    message = result.stderr.strip()
    assert message.startswith("nemotron-art: error: Cannot rerun sft-data-tiny:v1: its input tokenizer-tiny:v1 is")
    assert (
        "deleted by `nemotron-art gc`" in message and "never a later one" in message and len(message.splitlines()) == 1
    )
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(p.name for p in (reran.root / "sft-data-tiny").glob("v*")) == versions  # nothing ran
