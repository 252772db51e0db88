"""`stage=rl_data`: problems with expected answers -> NeMo-RL JSONL train/val/test splits + `manifest.json`.

    python -m nemotron stage=rl_data                                # data=tiny: synthetic arithmetic problems
    python -m nemotron stage=rl_data stage.format=input_output      # {"input", "output"} rows instead

Output (`{output dir}/data`), committed as `rl-data{suffix}` (`SplitJsonlDataArtifact`, fields `train`, `val`,
`test` = the absolute paths of the files):

    train.jsonl  val.jsonl  test.jsonl   {"problem": ..., "expected_answer": ...} per line (format=math)
    manifest.json                        {"train": abs, "val": abs, "test": abs, "format", "input_key",
                                          "output_key", "source_splits": [...], "run_hash"}

Each row goes to a split by a stable hash of (split_seed, source, row index), except the rows of the sources
named in `source_splits` (`data.rl_source_splits`), which all go to the split named there: data=tiny sends its
held-out arithmetic problems to test, so an evaluation never sees a problem trained on. Exact duplicate
problems are dropped (first kept, counted), so no problem is in two splits.

NeMo-RL (v0.6+) reads it as `data.train: {data_path: <data>/train.jsonl, input_key: problem, output_key:
expected_answer}`, `data.validation: {data_path: <data>/val.jsonl}`, with `processor: math_hf_data_processor`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import SplitJsonlDataArtifact
from nemotron.data.rl import FILES, KEYS, RowFormat, write_splits
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig
from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

log = logging.getLogger(__name__)


class RLDataParams(BaseModel):
    """`conf/stage/rl_data.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Data artifact name; the scale suffix is appended.")
    blend: BlendConfig
    scale: ScaleConfig
    output_dir: str | None = Field(description="Default: the job's output dir.")
    format: RowFormat = Field(description="math: problem/expected_answer; input_output: input/output.")
    problem_field: str
    answer_field: str
    source_splits: dict[str, str] | None = Field(description="Sources whose rows all go to one split.")
    split_seed: int = Field(description="Seed of the row -> split assignment.")
    dedupe: bool = Field(description="Drop exact duplicate problems (first one kept).")


def run(cfg: DictConfig) -> dict[str, Any]:
    params = stage_params(cfg, RLDataParams)
    pinned = params.source_splits or {}
    names = {s.name for s in params.blend.sources}
    for source, split in pinned.items():
        if source not in names or split not in SPLITS:
            raise NemotronError(
                f"stage.source_splits: {source!r} -> {split!r} must name a source of the blend "
                f"({', '.join(sorted(names))}) and one of {', '.join(SPLITS)}."
            )
    data_dir = output_dir(params.output_dir, ("data",)) / "data"
    data_dir.mkdir(parents=True)

    written = write_splits(
        params.blend,
        params.scale,
        data_dir,
        row_format=params.format,
        problem_field=params.problem_field,
        answer_field=params.answer_field,
        pinned=pinned,
        split_seed=params.split_seed,
        dedupe=params.dedupe,
    )
    if not written.rows["train"]:
        raise NemotronError(
            f"stage=rl_data wrote no training rows ({sum(written.rows.values())} row(s) in all, "
            f"{written.duplicates} duplicate problem(s) dropped), so nothing is committed. Check the blend, its split "
            "fractions and stage.source_splits: the train split is the one RL trains on."
        )

    input_key, output_key = KEYS[params.format]
    run_hash = hashlib.sha256(json.dumps(params.model_dump(exclude={"output_dir"}), sort_keys=True).encode())
    manifest = {**written.paths, "format": params.format, "input_key": input_key, "output_key": output_key}
    manifest |= {"source_splits": written.source_splits, "duplicates_dropped": written.duplicates}
    manifest |= {"run_hash": run_hash.hexdigest()[:16]}
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "RL data: %s; %d duplicate problem(s) dropped",
        ", ".join(f"{FILES[s]} {written.rows[s]:,} rows" for s in SPLITS),
        written.duplicates,
    )
    return {
        "data": SplitJsonlDataArtifact(
            path=str(data_dir),
            name=params.scale.artifact_name(params.name),
            train=written.paths["train"] or None,
            val=written.paths["val"] or None,
            test=written.paths["test"] or None,
            total_sequences=sum(written.rows.values()),
            elapsed_sec=written.elapsed_sec,
            source_datasets=written.sources,
            metadata={k: manifest[k] for k in ("format", "input_key", "output_key", "source_splits", "run_hash")}
            | {"duplicates_dropped": written.duplicates, "scale": params.scale.name},
        )
    }
