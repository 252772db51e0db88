"""The store the `nemotron-art` operation tests read (tests/artcli; the `pipeline` fixture is in its conftest).

`build_pipeline` commits the lineage of a small pipeline into a fresh root through the tracking API (real
files, real commits with digests and run records, no mocks):

    raw-text -> tokenizer -----------+------------------+
       |                             v                  v
       +-----> pretrain-data -> pretrain-model      sft-data
               (source hf://...)         \\            /
                                          sft-model <-+
                                              |
                                            eval

Command-line behaviour is tested through `python -m nemotron.artcli` in subprocesses (clitools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PIPELINE = ["raw-text", "tokenizer", "pretrain-data", "pretrain-model", "sft-data", "sft-model", "eval"]
SOURCE = "hf://datasets/example/tiny-corpus"


def write_files(directory: Path, files: dict[str, bytes | str]) -> Path:
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return directory


def commit(root: Path, artifact, name: str, uses: tuple[str, ...] = (), stage: str | None = None) -> str:
    """Commit `artifact` as a stage would: its inputs resolved (pinned) first, a run record with a config."""
    from nemotron.tracking.runinfo import build_run_record
    from nemotron.tracking.session import ArtifactSettings, Tracking

    tracking = Tracking(ArtifactSettings(root=str(root)))
    for reference in uses:
        tracking.resolve(reference)
    config: dict[str, Any] = {"stage": {"_target_": f"nemotron.stages.{stage or name.replace('-', '_')}.run"}}
    run = build_run_record(config=config, output_dir=str(root.parent / "outputs" / name), hydra_job_name="nemotron")
    return tracking.commit(artifact, name=name, run=run).ref


def build_pipeline(base: Path) -> Path:
    from nemotron.artifacts.types import (
        Artifact,
        EvalResultsArtifact,
        InputDatasetInfo,
        ModelArtifact,
        PretrainBlendsArtifact,
        SFTDataArtifact,
        TokenizerArtifact,
    )

    root, data = base / "store", base / "data"
    raw = write_files(data / "raw", {"part-0.jsonl": '{"text": "one plus one is two"}\n', "part-1.jsonl": "{}\n"})
    tok = write_files(data / "tok", {"tokenizer.json": '{"vocab": 256}'})
    pt = write_files(
        data / "pt", {"shard_000000.bin": b"\x01\x00" * 64, "shard_000000.idx": b"MMIDIDX", "blend.json": "{}"}
    )
    ckpt = write_files(data / "ckpt-pt", {"config.json": "{}", "model.safetensors": bytes(range(256)) * 4})
    sft = write_files(data / "sft", {"splits/train/shard_000000.parquet": b"PAR1" * 32, "blend.json": "{}"})
    ckpt_sft = write_files(data / "ckpt-sft", {"config.json": "{}", "model.safetensors": bytes(range(255, -1, -1)) * 4})
    ev = write_files(data / "eval", {"results.json": '{"gsm8k": {"accuracy": 0.5}}'})

    commit(root, Artifact(path=str(raw)), "raw-text", stage="register")
    commit(root, TokenizerArtifact(path=str(tok), vocab_size=256), "tokenizer", ("raw-text",))
    source = InputDatasetInfo(uri=SOURCE, num_rows=2)
    blends = PretrainBlendsArtifact(path=str(pt), tokenizer_uri="art://tokenizer:v1", source_datasets=[source])
    commit(root, blends, "pretrain-data", ("raw-text",))
    commit(root, ModelArtifact(path=str(ckpt), step=10, stage="pretrain"), "pretrain-model", ("pretrain-data",))
    sft_data = SFTDataArtifact(path=str(sft), pack_size=64, tokenizer_uri="art://tokenizer:v1")
    commit(root, sft_data, "sft-data", ("raw-text",))
    model = ModelArtifact(path=str(ckpt_sft), step=5, stage="sft", base_model="art://pretrain-model:v1")
    commit(root, model, "sft-model", ("sft-data",))
    results = EvalResultsArtifact(path=str(ev), model_uri="art://sft-model:v1", metrics={"gsm8k": {"accuracy": 0.5}})
    commit(root, results, "eval")
    return root
