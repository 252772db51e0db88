"""End to end: the W&B mirror with the real wandb SDK, no W&B server.

Offline (`WANDB_MODE=offline`): a real stage commits its manifest, then the W&B run's transaction log is read
back (tests/helpers/wandb_log.py) to check exactly what `wandb sync` would upload. Unreachable (online,
pointed at a closed port): the stage still succeeds and commits, with one warning, and the API key appears
nowhere.
"""

from __future__ import annotations

import contextvars
import json
import socket
from pathlib import Path

import pytest
from helpers.clitools import clean_env, json_line, make_data, manifest, nemotron, nemotron_art, ok, register

pytest.importorskip("wandb", reason="the W&B mirror tests need wandb: pip install -e '.[dev]'")

from helpers.wandb_log import artifact_summary, config_values, history_values, iter_records, records_by_type

pytestmark = pytest.mark.integration

FAKE_KEY = "f" * 8 + "0123456789abcdef0123456789abcdef"  # 40 characters, like a real W&B key
SECRET_VALUE = "s3cr3t-value-never-written"


def _wandb_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    drop = {k: None for k in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_SILENT")}
    return clean_env(
        **{
            **drop,
            "HOME": home,  # ~/.netrc, ~/.config/wandb: checked for the key afterwards
            "WANDB_DIR": tmp_path / "wandb-dir",
            "WANDB_DATA_DIR": tmp_path / "wandb-data",
            "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
            "WANDB_CONFIG_DIR": tmp_path / "wandb-config",
            "NEMOTRON_ARTIFACTS_ROOT": tmp_path / "store",
            **extra,
        }
    )


def test_offline_run_logs_the_artifact_for_wandb_sync(tmp_path):
    env = _wandb_env(tmp_path, WANDB_MODE="offline")
    store = tmp_path / "store"
    register("raw-text", make_data(tmp_path / "raw"), tmp_path, env)  # manifest only: an input to mirror
    data = make_data(tmp_path / "ckpt", "weights\n")
    (data / "shard").mkdir()
    (data / "shard" / "part-0.bin").write_bytes(b"\0" * 64)
    result = ok(
        nemotron(
            "stage=register",
            f"stage.path={data}",
            "stage.name=tiny-model",
            "stage.type=ModelArtifact",
            "+stage.fields.step=7",
            "+run.src=raw-text:latest",
            "+stage.metadata.source=${art:src,path}",
            f"+stage.metadata.api_token={SECRET_VALUE}",
            "artifacts=manifest_wandb",
            "wandb.project=team-proj",
            "wandb.entity=team-ent",
            cwd=tmp_path,
            env=env,
        )
    )
    assert json_line(result)["uri"] == "art://tiny-model:v1"
    assert "W&B mirror failed" not in result.stderr

    committed = manifest(store, "tiny-model", 1)
    planned = committed["wandb"]  # known before W&B ran: the manifest is immutable afterwards
    assert planned["status"] == "pending" and planned["project"] == "team-proj" and planned["entity"] == "team-ent"
    later = json.loads((store / "tiny-model" / "v1" / "wandb.json").read_text())
    assert later["status"] == "offline" and later["run_id"] == planned["run_id"]
    assert later["sync"].startswith("wandb sync ") and later["inputs"] == ["raw-text:v1"]

    shown = json.loads(ok(nemotron_art("show", "tiny-model", "--json", cwd=tmp_path, env=env)).stdout)
    assert shown["wandb"] == {**planned, **later}  # `show` merges what W&B assigned after the commit

    logs = list((tmp_path / "wandb-dir").rglob(f"run-{planned['run_id']}.wandb"))
    assert len(logs) == 1 and Path(later["run_dir"]) == logs[0].parent
    records = records_by_type(logs[0])
    assert records["run"][0].run.run_id == planned["run_id"]
    assert records["run"][0].run.project == "team-proj" and records["run"][0].run.entity == "team-ent"
    assert "use_artifact" not in records  # offline: no input edges; they are in the metadata instead

    [artifact] = [artifact_summary(r) for r in records["artifact"]]
    assert artifact["name"] == "tiny-model" and artifact["type"] == "model"
    assert set(artifact["aliases"]) == {"latest", "manifest-v1"}
    meta = artifact["metadata"]
    assert meta["step"] == 7 and meta["type"] == "ModelArtifact" and meta["path"] == str(data)
    assert meta["metadata"]["api_token"] == "***REDACTED***"
    info = meta["nemotron"]
    assert info["ref"] == "tiny-model:v1" and info["used_artifacts"] == ["raw-text:v1"]
    assert info["store"] == str(store) and info["manifest"].endswith("tiny-model/v1/manifest.json")
    assert info["files"]["count"] == 2 and info["files"]["digest"].startswith("xxh3_128:")
    # the data by reference (file://, one entry per file), and our manifest as the one uploaded file
    entries = artifact["entries"]
    assert entries["input.txt"]["ref"] == (data / "input.txt").as_uri()
    assert entries["shard/part-0.bin"]["ref"] == (data / "shard" / "part-0.bin").as_uri()
    assert entries["nemotron/manifest.json"]["ref"] == ""

    assert history_values(records["history"])["tiny-model/step"] == 7
    config = config_values(records["run"] + records.get("config", []))
    assert config["stage"]["metadata"]["api_token"] == "***REDACTED***"
    assert config["run"]["src"] == "raw-text:latest"
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".txt")
    assert SECRET_VALUE.encode() not in everything


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_wandb_warns_once_and_keeps_the_manifest(tmp_path):
    env = _wandb_env(
        tmp_path,
        WANDB_MODE="online",
        WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
        WANDB_API_KEY=FAKE_KEY,
        WANDB_INIT_TIMEOUT="4",
    )
    data = make_data(tmp_path / "data")
    result = ok(
        nemotron(
            "stage=register",
            f"stage.path={data}",
            "stage.name=offline-safe",
            "artifacts=manifest_wandb",
            cwd=tmp_path,
            env=env,
        )
    )
    assert json_line(result)["uri"] == "art://offline-safe:v1"
    assert result.stderr.count("W&B mirror failed") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "wandb: ERROR" not in result.stderr  # wandb's own banners are silenced
    store = tmp_path / "store"
    assert manifest(store, "offline-safe", 1)["wandb"]["status"] == "pending"
    sidecar = json.loads((store / "offline-safe" / "v1" / "wandb.json").read_text())
    assert sidecar["status"] == "failed" and sidecar["error"]
    # the key is nowhere: not in the output, the store, the job dir, W&B's own dirs or HOME
    assert FAKE_KEY not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_wandb_references_are_clear_errors_when_they_cannot_resolve(tmp_path):
    env = _wandb_env(tmp_path, WANDB_MODE="offline")
    data = make_data(tmp_path / "data")
    for reference, phrase in [
        ("wandb://team/proj/tiny-model:v0", "resolve only online"),
        ("wandb://just-a-name", "not a valid W&B reference"),
    ]:
        result = nemotron(
            "stage=register",
            f"stage.path={data}",
            "stage.name=x",
            f"+stage.metadata.src=${{art:{reference},path}}",
            "artifacts=manifest_wandb",
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode != 0 and phrase in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "store" / "x").exists()


def test_resolve_order_must_name_known_backends(tmp_path):
    env = _wandb_env(tmp_path)
    result = nemotron(
        "stage=register", f"stage.path={make_data(tmp_path / 'd')}", "stage.name=x", "artifacts.resolve_order=[cache]",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode != 0 and "resolve_order" in result.stderr and "Traceback" not in result.stderr


def test_wandb_only_mirrors_without_a_manifest_store(tmp_path):
    env = _wandb_env(tmp_path, WANDB_MODE="offline")
    data = make_data(tmp_path / "data")
    result = ok(
        nemotron("stage=register", f"stage.path={data}", "stage.name=w-only", "artifacts=wandb", cwd=tmp_path, env=env)
    )
    assert json_line(result)["uri"] is None  # not in a manifest store...
    assert not (tmp_path / "store").exists()
    [log] = (tmp_path / "wandb-dir").rglob("run-*.wandb")
    [artifact] = [artifact_summary(r) for r in records_by_type(log)["artifact"]]
    assert artifact["name"] == "w-only" and artifact["aliases"] == ["latest"]  # ...but in W&B
    assert artifact["entries"]["input.txt"]["ref"] == (data / "input.txt").as_uri()


def test_log_artifact_from_python_mirrors_too(tmp_path, monkeypatch):
    for key, value in _wandb_env(tmp_path, WANDB_MODE="offline").items():
        if key.startswith("WANDB_"):
            monkeypatch.setenv(key, value)
    # in a copy of the context: the tracking that setup_artifact_tracking activates stays inside it
    records = contextvars.copy_context().run(_log_two_versions, tmp_path / "store", tmp_path)
    assert [r["status"] for r in records] == ["offline", "offline"]
    assert records[0]["project"] == "py-proj" and records[0]["run_id"] != records[1]["run_id"]  # a W&B run each


def _log_two_versions(store: Path, tmp_path: Path) -> list[dict]:
    from nemotron import Artifact, log_artifact, setup_artifact_tracking
    from nemotron.tracking.wandb_mirror import wandb_record

    config = {"artifacts": {"manifest": {"root": str(store)}, "wandb": True}, "wandb": {"project": "py-proj"}}
    tracking = setup_artifact_tracking(config)
    logged = [log_artifact(Artifact(path=str(make_data(tmp_path / d))), tracking, name="py-data") for d in "ab"]
    return [wandb_record(tracking.store, tracking.store.manifest("py-data", a.version)) for a in logged]


def test_training_curves_are_logged_at_their_steps(tmp_path):
    env = _wandb_env(tmp_path, WANDB_MODE="offline")
    history = tmp_path / "metrics.jsonl"
    rows = [{"step": 0, "val_loss": 3.0}, {"step": 10, "loss": 2.5, "lr": 1e-3}, {"step": 20, "loss": 2.0}]
    history.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ckpt = make_data(tmp_path / "ckpt", "weights\n")
    ok(nemotron("stage=register", f"stage.path={ckpt}", "stage.name=curves", "stage.type=ModelArtifact",
                f"+stage.metadata.history={history}", "artifacts=manifest_wandb", cwd=tmp_path, env=env))  # fmt: skip
    [log] = (tmp_path / "wandb-dir").rglob("run-*.wandb")
    logged = {}
    for record in records_by_type(log)["history"]:
        items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        logged.setdefault(items.pop("_step", record.history.step.num), {}).update(items)
    assert logged[0]["curves/val_loss"] == 3.0
    assert logged[10]["curves/loss"] == 2.5 and logged[10]["curves/lr"] == 1e-3
    assert logged[20]["curves/loss"] == 2.0


def test_a_training_stage_logs_its_curves_live(tmp_path):
    """With artifacts=manifest_wandb, every metrics row goes to the job's W&B run at its step while the stage
    trains: in the run's log, the rows come before the model artifact, which is logged when the job ends."""
    env = _wandb_env(tmp_path, WANDB_MODE="offline")
    small = ["scale.max_rows_per_source=200", "data.tokenizer.vocab_size=400", "model.hidden_size=32",
             "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=2", "model.intermediate_size=64",
             "model.max_seq_len=64"]  # fmt: skip
    ok(nemotron("stage=pretrain_data", *small, cwd=tmp_path, env=env))
    ok(nemotron("stage=pretrain", *small, "stage.steps=6", "stage.batch_size=2", "stage.log_every=1",
                "stage.eval_every=3", "stage.eval_batches=1", "stage.checkpoint_every=0", "artifacts=manifest_wandb",
                cwd=tmp_path, env=env))  # fmt: skip
    [log] = [p for p in (tmp_path / "wandb-dir").rglob("run-*.wandb") if "pretrain" in _job_type(p)]
    order, logged = [], {}
    for record in iter_records(log):
        kind = record.WhichOneof("record_type")
        order.append(kind)
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            logged.setdefault(items.pop("_step", record.history.step.num), {}).update(items)
    assert sorted(step for step, row in logged.items() if "loss" in row) == [1, 2, 3, 4, 5, 6]
    assert sorted(step for step, row in logged.items() if "val_loss" in row) == [0, 3, 6]
    assert all(row["loss"] > 0 and row["tokens_per_s"] > 0 for row in logged.values() if "loss" in row)
    first_artifact = order.index("artifact")
    assert order.index("history") < first_artifact and order.count("run") == 1  # live, and one run per job


def _job_type(log: Path) -> str:
    return next((r.run.job_type for r in iter_records(log) if r.WhichOneof("record_type") == "run"), "")
