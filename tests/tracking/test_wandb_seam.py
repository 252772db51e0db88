"""The online W&B paths, without a W&B server: fakes installed at the one seam (`wandb_mirror.using_client`).

What is checked is what nemotron sends (the `wandb.init` arguments, `use_artifact` input edges, the path given
to `wandb.Api().artifact`, alias changes) and how it handles W&B's errors (`wandb.errors.CommError` for an
unknown entity or project). Nothing patches the wandb library; `wandb.Artifact` objects are the real ones.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("wandb", reason="the W&B seam tests need wandb: pip install -e '.[dev]'")

from wandb.errors import CommError

from nemotron.artcli import main as nemotron_art
from nemotron.artifacts.types import Artifact, ModelArtifact
from nemotron.errors import NemotronError
from nemotron.store.manifest_store import ManifestStore
from nemotron.tracking import wandb_mirror
from nemotron.tracking.session import ArtifactSettings, Tracking
from nemotron.tracking.wandb_mirror import WandbClient, using_client

pytestmark = pytest.mark.unit

# -- fakes: what `wandb.init` and `wandb.Api` return, recording what they were asked ----------------------


@dataclass
class FakeEntry:
    ref: str | None


@dataclass
class FakeManifest:
    entries: dict[str, FakeEntry]


@dataclass
class FakeApiArtifact:
    """A logged W&B artifact as `wandb.Api().artifact(path)` returns it."""

    qualified_name: str
    type: str = "dataset"
    digest: str = "d1g3st"
    metadata: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=lambda: ["latest"])
    manifest: FakeManifest = field(default_factory=lambda: FakeManifest({}))
    saved: int = 0

    def save(self) -> None:
        self.saved += 1


class FakeApi:
    def __init__(self, artifacts: dict[str, FakeApiArtifact] | None = None, error: Exception | None = None) -> None:
        self.artifacts = artifacts or {}
        self.error = error
        self.asked: list[str] = []

    def artifact(self, path: str) -> FakeApiArtifact:
        self.asked.append(path)
        if self.error is not None:
            raise self.error
        if path not in self.artifacts:
            raise ValueError(f"Artifact {path!r} not found in response")
        return self.artifacts[path]


class FakeLogged:
    """What `run.log_artifact` returns, once `wait()` has run online."""

    def __init__(self, artifact: Any, version: str) -> None:
        self.artifact, self.version = artifact, version
        self.qualified_name = f"team/proj/{artifact.name}:{version}"
        self.waited = False

    def wait(self, timeout: float | None = None) -> FakeLogged:
        self.waited = True
        return self


class FakeRun:
    def __init__(self, unknown_inputs: set[str] = frozenset(), **init: Any) -> None:
        self.init = init
        self.entity, self.project = init.get("entity"), init.get("project")
        self.disabled = self.offline = False
        self.url = f"https://wandb.example/{self.entity}/{self.project}/runs/{init.get('id')}"
        self.unknown_inputs = unknown_inputs
        self.used: list[str] = []
        self.logged: list[tuple[Any, list[str]]] = []
        self.history: list[dict[str, Any]] = []
        self.finished = False

    def use_artifact(self, path: str) -> None:
        if path in self.unknown_inputs:
            raise CommError(f"artifact {path} not found")
        self.used.append(path)

    def log_artifact(self, artifact: Any, aliases: list[str]) -> FakeLogged:
        self.logged.append((artifact, aliases))
        return FakeLogged(artifact, f"v{len(self.logged) - 1}")

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        self.history.append(row)

    def finish(self) -> None:
        self.finished = True


class FakeInit:
    def __init__(self, error: Exception | None = None, unknown_inputs: set[str] = frozenset()) -> None:
        self.error, self.unknown_inputs = error, unknown_inputs
        self.runs: list[FakeRun] = []

    def __call__(self, **kwargs: Any) -> FakeRun:
        if self.error is not None:
            raise self.error
        self.runs.append(FakeRun(self.unknown_inputs, **kwargs))
        return self.runs[-1]


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("W&B must not be called here")


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)


def _tracking(root: Path, **settings: Any) -> Tracking:
    options = {"wandb": True, "wandb_project": "proj", "wandb_entity": "team", **settings}
    return Tracking(ArtifactSettings(root=str(root), **options))


def _data(directory: Path, text: str = "weights") -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.bin").write_text(text)
    return str(directory)


def _sidecar(root: Path, name: str, version: int) -> dict[str, Any]:
    return json.loads((root / name / f"v{version}" / "wandb.json").read_text())


# -- mirroring: what a job sends to W&B ------------------------------------------------------------------


def test_mirror_sends_input_edges_the_artifact_and_records_what_wandb_assigned(tmp_path):
    root = tmp_path / "store"
    _tracking(root, wandb=False).commit(Artifact(path=_data(tmp_path / "raw")), name="raw-text")
    tracking = _tracking(root)
    tracking.resolve("raw-text")  # a pinned input: an input edge to its W&B mirror
    tracking.resolve("raw-text:v1")
    model = ModelArtifact(path=_data(tmp_path / "ckpt"), step=7)
    committed = tracking.commit(model, name="tiny-model")
    init = FakeInit(unknown_inputs={"team/proj/raw-text:manifest-v1"})  # W&B never saw raw-text's mirror
    run_id = tracking.wandb_target.run_id

    with using_client(WandbClient(init=init, api=_never)):
        [record] = tracking.mirror([(model, committed)], job_type="register")

    [run] = init.runs
    assert run.init["project"] == "proj" and run.init["entity"] == "team" and run.init["id"] == run_id
    assert run.init["job_type"] == "register" and run.init["reinit"] == "create_new"
    assert run.used == [] and record["missing_input_edges"] == ["raw-text:v1"]
    [(artifact, aliases)] = run.logged
    assert aliases == ["latest", "manifest-v1"]
    assert artifact.name == "tiny-model" and artifact.type == "model"
    assert artifact.metadata["nemotron"]["ref"] == "tiny-model:v1"
    assert artifact.metadata["nemotron"]["used_artifacts"] == ["raw-text:v1"]
    assert {e.ref for e in artifact.manifest.entries.values() if e.ref} == {(tmp_path / "ckpt/model.bin").as_uri()}
    assert run.history == [{"tiny-model/step": 7}] and run.finished
    assert record["status"] == "logged" and record["qualified_name"] == "team/proj/tiny-model:v0"
    assert _sidecar(root, "tiny-model", 1) == record  # what W&B assigned, beside the immutable manifest


class ReportArtifact(Artifact):
    """A type with a small file worth uploading to W&B (registered in `wandb_mirror.UPLOADS`)."""


def test_a_type_registered_in_uploads_uploads_its_files_and_the_data_stays_a_reference(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    tracking, init = _tracking(tmp_path / "store"), FakeInit()
    wandb_mirror.UPLOADS["ReportArtifact"] = lambda artifact: [str(tmp_path / "summary.json")]
    try:
        report = ReportArtifact(path=_data(tmp_path / "report"))
        with using_client(WandbClient(init=init, api=_never)):
            tracking.mirror([(report, tracking.commit(report, name="report"))])
    finally:
        del wandb_mirror.UPLOADS["ReportArtifact"]
    [(artifact, _)] = init.runs[0].logged
    uploaded = {path for path, entry in artifact.manifest.entries.items() if not entry.ref}
    assert uploaded == {"summary.json", "nemotron/manifest.json"}
    referenced = {entry.ref for entry in artifact.manifest.entries.values() if entry.ref}
    assert referenced == {(tmp_path / "report/model.bin").as_uri()}


def test_input_edges_name_each_mirror_and_each_wandb_input(tmp_path):
    root = tmp_path / "store"
    _tracking(root, wandb=False).commit(Artifact(path=_data(tmp_path / "raw")), name="raw-text")
    tracking = _tracking(root)
    external = FakeApiArtifact("team/proj/hub-data:v3", metadata={"source": "elsewhere"})
    init = FakeInit()
    api = FakeApi({"team/proj/hub-data:v3": external})
    with using_client(WandbClient(init=init, api=lambda: api)):
        tracking.resolve("raw-text")
        tracking.load("wandb://team/proj/hub-data:v3")
        model = ModelArtifact(path=_data(tmp_path / "ckpt"), step=1)
        [record] = tracking.mirror([(model, tracking.commit(model, name="m"))])
    assert init.runs[0].used == ["team/proj/raw-text:manifest-v1", "team/proj/hub-data:v3"]
    assert record["missing_input_edges"] == [] and record["wandb_inputs"] == ["team/proj/hub-data:v3"]


def test_an_unknown_entity_or_project_is_one_warning_naming_both_and_the_manifest_stays(tmp_path, caplog):
    root = tmp_path / "store"
    tracking = _tracking(root, wandb_entity="no-such-team", wandb_project="no-such-proj")
    model = ModelArtifact(path=_data(tmp_path / "ckpt"), step=1)
    committed = tracking.commit(model, name="m")
    init = FakeInit(error=CommError("project not found"))
    with caplog.at_level(logging.WARNING, logger="nemotron.wandb"), using_client(WandbClient(init=init, api=_never)):
        [record] = tracking.mirror([(model, committed)])
    [warning] = [r.getMessage() for r in caplog.records]
    assert "W&B mirror failed" in warning and "CommError: project not found" in warning
    assert "entity 'no-such-team' and project 'no-such-proj'" in warning
    assert record["status"] == "failed" and _sidecar(root, "m", 1)["status"] == "failed"
    assert ManifestStore(str(root)).resolve("m").wandb["status"] == "pending"  # the committed record is intact


# -- wandb:// references: what is asked of the public API --------------------------------------------------


def test_wandb_reference_resolves_through_the_api_and_is_recorded_as_an_external_input(tmp_path):
    ckpt = _data(tmp_path / "hub")
    found = FakeApiArtifact(
        "team/proj/sft-data:v3",
        metadata={"rows": 10},
        manifest=FakeManifest({"model.bin": FakeEntry(Path(ckpt, "model.bin").as_uri()), "x": FakeEntry(None)}),
    )
    api = FakeApi({"team/proj/sft-data:v3": found})
    tracking = _tracking(tmp_path / "store")
    with using_client(WandbClient(init=_never, api=lambda: api)):
        loaded = tracking.load("wandb://team/proj/sft-data:v3")
        tracking.load("wandb://team/proj/sft-data:v3")  # pinned: W&B is asked once
    assert api.asked == ["team/proj/sft-data:v3"]
    assert loaded.path == str(Path(ckpt, "model.bin")) and loaded.metadata["rows"] == 10
    assert loaded.metadata["wandb_type"] == "dataset"
    assert tracking.pinned()[0]["version"] == "wandb://team/proj/sft-data:v3"
    committed = tracking.commit(Artifact(path=_data(tmp_path / "out")), name="out")
    assert committed.inputs == [
        {"uri": "wandb://team/proj/sft-data:v3", "name": "team/proj/sft-data:v3", "digest": "d1g3st", "kind": "wandb"}
    ]


def test_a_wandb_mirror_of_this_store_resolves_to_the_manifest_version(tmp_path):
    root = tmp_path / "store"
    _tracking(root, wandb=False).commit(Artifact(path=_data(tmp_path / "raw")), name="raw-text")
    store_url = ManifestStore(str(root)).url
    mirror = FakeApiArtifact("team/proj/raw-text:v0", metadata={"nemotron": {"ref": "raw-text:v1", "store": store_url}})
    api = FakeApi({"team/proj/raw-text:v0": mirror, "team/proj/raw-text:manifest-v1": mirror})
    tracking = _tracking(root, resolve_order=["wandb", "manifest"])
    with using_client(WandbClient(init=_never, api=lambda: api)):
        assert tracking.resolve("wandb://team/proj/raw-text:v0").ref == "raw-text:v1"
        assert tracking.resolve("raw-text:v1").ref == "raw-text:v1"  # W&B first: asked for the mirror's alias
    assert api.asked == ["team/proj/raw-text:v0", "team/proj/raw-text:manifest-v1"]
    assert tracking.used_artifacts == ["raw-text:v1"]


@pytest.mark.parametrize(
    ("reference", "error", "phrases"),
    [
        (
            "wandb://no-such-team/proj/x:v1",
            CommError("Could not find project proj"),
            ["Cannot resolve wandb://no-such-team/proj/x:v1", "CommError", "entity 'no-such-team'", "project 'proj'"],
        ),
        (
            "wandb://no-such-proj/x:latest",
            CommError("Could not find project"),
            ["your default W&B entity and project 'no-such-proj'"],
        ),
        ("wandb://team/proj/missing:v9", None, ["not found in response", "Check the entity, project, name and alias"]),
    ],
)
def test_wandb_references_that_do_not_resolve_are_clear_errors(tmp_path, reference, error, phrases):
    tracking = _tracking(tmp_path / "store")
    fake = WandbClient(init=_never, api=lambda: FakeApi(error=error))
    with using_client(fake), pytest.raises(NemotronError) as raised:
        tracking.load(reference)
    for phrase in phrases:
        assert phrase in str(raised.value)


# -- alias changes mirrored to W&B ----------------------------------------------------------------------


def _mirrored_store(tmp_path: Path) -> tuple[Path, FakeApiArtifact]:
    """A store whose tiny-model:v1 was mirrored (online, through the fakes) as team/proj/tiny-model:v0."""
    root = tmp_path / "store"
    tracking = _tracking(root)
    model = ModelArtifact(path=_data(tmp_path / "ckpt"), step=1)
    with using_client(WandbClient(init=FakeInit(), api=_never)):
        tracking.mirror([(model, tracking.commit(model, name="tiny-model"))])
    return root, FakeApiArtifact("team/proj/tiny-model:v0", type="model", aliases=["latest", "manifest-v1"])


def test_alias_is_given_to_the_wandb_mirror(tmp_path, capsys):
    root, logged = _mirrored_store(tmp_path)
    api = FakeApi({"team/proj/tiny-model:v0": logged})
    with using_client(WandbClient(init=_never, api=lambda: api)):
        assert nemotron_art(["--root", str(root), "alias", "tiny-model:v1", "production"]) == 0
    assert api.asked == ["team/proj/tiny-model:v0"]  # the qualified name W&B assigned, from wandb.json
    assert logged.aliases == ["latest", "manifest-v1", "production"] and logged.saved == 1
    assert "W&B: team/proj/tiny-model:v0 has the alias production" in capsys.readouterr().out
    assert ManifestStore(str(root)).aliases("tiny-model") == {"production": 1}


def test_alias_offline_is_pending_then_applied_online(tmp_path, capsys, monkeypatch):
    root, logged = _mirrored_store(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with using_client(WandbClient(init=_never, api=_never)):
        assert nemotron_art(["--root", str(root), "alias", "tiny-model:v1", "production"]) == 0
    out = capsys.readouterr().out
    assert "tiny-model:production -> v1" in out
    assert "W&B: alias production is pending for team/proj/tiny-model:v0 (WANDB_MODE=offline" in out
    assert "rerun `nemotron-art alias tiny-model:v1 production` online" in out
    [pending] = _sidecar(root, "tiny-model", 1)["pending_aliases"]
    assert pending["alias"] == "production" and "offline" in pending["reason"]
    assert _sidecar(root, "tiny-model", 1)["status"] == "logged"  # the rest of the record is kept

    monkeypatch.delenv("WANDB_MODE")
    api = FakeApi({"team/proj/tiny-model:v0": logged})
    with using_client(WandbClient(init=_never, api=lambda: api)):
        assert nemotron_art(["--root", str(root), "alias", "tiny-model:v1", "production"]) == 0
    assert "production" in logged.aliases and _sidecar(root, "tiny-model", 1)["pending_aliases"] == []


def test_alias_when_wandb_refuses_is_pending_with_the_reason(tmp_path, capsys):
    root, _ = _mirrored_store(tmp_path)
    api = FakeApi(error=CommError("permission denied"))
    with using_client(WandbClient(init=_never, api=lambda: api)):
        assert nemotron_art(["--root", str(root), "alias", "tiny-model:v1", "production"]) == 0
    out = capsys.readouterr().out
    assert "W&B: alias production is pending" in out and "permission denied" in out
    assert "entity 'team' and project 'proj'" in out
    assert ManifestStore(str(root)).aliases("tiny-model") == {"production": 1}  # the store has it regardless
    assert _sidecar(root, "tiny-model", 1)["pending_aliases"][0]["alias"] == "production"


def test_alias_of_a_version_without_a_wandb_mirror_never_calls_wandb(tmp_path, capsys):
    root = tmp_path / "store"
    _tracking(root, wandb=False).commit(Artifact(path=_data(tmp_path / "raw")), name="raw-text")
    with using_client(WandbClient(init=_never, api=_never)):
        assert nemotron_art(["--root", str(root), "alias", "raw-text", "production"]) == 0
    assert "W&B" not in capsys.readouterr().out


def test_alias_of_a_version_whose_mirror_failed_is_skipped(tmp_path, capsys):
    root = tmp_path / "store"
    tracking = _tracking(root)
    model = ModelArtifact(path=_data(tmp_path / "ckpt"), step=1)
    with using_client(WandbClient(init=FakeInit(error=CommError("down")), api=_never)):
        tracking.mirror([(model, tracking.commit(model, name="m"))])
        assert nemotron_art(["--root", str(root), "alias", "m:v1", "production"]) == 0
    assert "W&B: not changed (this version was never mirrored to W&B (failed))" in capsys.readouterr().out


def test_offline_mirrors_are_addressed_by_their_manifest_alias(tmp_path):
    record = {"entity": "team", "project": "proj", "artifact": "m", "status": "offline"}
    manifest = type("M", (), {"name": "m", "version": 4})()
    assert wandb_mirror._alias_target(record, manifest) == "team/proj/m:manifest-v4"
    assert wandb_mirror._alias_target({**record, "qualified_name": "team/proj/m:v2"}, manifest) == "team/proj/m:v2"
