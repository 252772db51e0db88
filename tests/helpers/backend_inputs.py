"""Inputs of the backend tests: minimal real data artifacts committed to a temp store, and the composed config.

The data are real files in the formats the backends point Megatron-Bridge and NeMo-RL at: Megatron `.bin/.idx`
shards (our writer) with a per-split `blend.json`, packed SFT Parquet with the three required columns, and
math JSONL splits. Nothing needs a GPU, Megatron-Bridge or NeMo-RL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

SECRET = "wandb-test-key-0123456789abcdef"  # set as WANDB_API_KEY by the tests; must appear nowhere
PROFILE = ("launcher=gpu_2x8", "model=nano3")


def compose(store: Path, stage: str, *overrides: str) -> DictConfig:
    """The job config of `python -m nemotron stage=STAGE model=nano3 launcher=gpu_2x8 OVERRIDES`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import nemotron.cli  # noqa: F401  (registers the resolvers the primary config uses)

    with initialize_config_module("nemotron.conf", version_base="1.3"):
        return hydra_compose(
            "config",
            [
                f"stage={stage}",
                *PROFILE,
                f"artifacts.manifest.root={store}",
                "wandb.project=nemotron-tests",
                "wandb.entity=team",
                *overrides,
            ],
        )


def pretrain_data(base: Path) -> Path:
    """Two real Megatron shards and the per-split blend.json the pretrain_data stage writes."""
    from nemotron.data.indexed import IndexedDatasetWriter

    out = base / "pretrain-data"
    (out / "shards").mkdir(parents=True)
    prefixes = []
    for index in range(3):
        prefix = out / "shards" / f"shard_{index:06d}"
        writer = IndexedDatasetWriter(prefix, dtype="uint16")
        writer.add_document([1, 2, 3, index])
        writer.finalize()
        prefixes.append(str(prefix))
    blend = {"train": ["0.7", prefixes[0], "0.3", prefixes[1]], "valid": ["1.0", prefixes[2]], "test": None}
    (out / "blend.json").write_text(json.dumps(blend))
    return out


def sft_data(base: Path) -> Path:
    """Packed Parquet rows (input_ids, loss_mask, seq_start_id) under splits/{train,valid}/."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = base / "sft-data"
    for split in ("train", "valid"):
        (out / "splits" / split).mkdir(parents=True)
        table = pa.table(
            {
                "input_ids": [[1, 2, 3, 4, 5, 6]],
                "loss_mask": [[0, 1, 0, 0, 1, 0]],
                "seq_start_id": [[0, 3]],
            }
        )
        pq.write_table(table, out / "splits" / split / f"000000__chat__shard_00000{split == 'valid'}.parquet")
    (out / "blend.json").write_text(
        json.dumps({"train": ["1.0", str(out / "splits/train/x")], "valid": None, "test": None})
    )
    return out


def rl_data(base: Path) -> Path:
    out = base / "rl-data"
    out.mkdir(parents=True)
    rows = [{"problem": f"What is {i} + {i}?", "expected_answer": str(2 * i)} for i in range(4)]
    for split in ("train", "val"):
        (out / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def checkpoint(base: Path) -> Path:
    out = base / "checkpoint"
    out.mkdir(parents=True)
    (out / "latest_checkpointed_iteration.txt").write_text("100\n")
    return out


def commit_inputs(base: Path) -> dict[str, Any]:
    """Commit one artifact of each input type to `base/store`; returns their pinned references."""
    from nemotron import (
        ModelArtifact,
        PretrainBlendsArtifact,
        SFTDataArtifact,
        SplitJsonlDataArtifact,
        log_artifact,
        setup_artifact_tracking,
    )

    store = base / "store"
    tracking = setup_artifact_tracking({"artifacts": {"manifest": {"root": str(store)}}})
    rl = rl_data(base)
    artifacts = {
        "pretrain": PretrainBlendsArtifact(path=str(pretrain_data(base)), name="pretrain-data-nano3", num_shards=3),
        "sft": SFTDataArtifact(path=str(sft_data(base)), name="sft-data-nano3", pack_size=4096, num_shards=2),
        "rl": SplitJsonlDataArtifact(
            path=str(rl), name="rl-data-nano3", train=str(rl / "train.jsonl"), val=str(rl / "val.jsonl")
        ),
        "model": ModelArtifact(path=str(checkpoint(base)), name="nano3-base", format="megatron", step=100),
    }
    refs = {role: log_artifact(artifact, tracking).uri for role, artifact in artifacts.items()}
    return {"store": store, **refs}
