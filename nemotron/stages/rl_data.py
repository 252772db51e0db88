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
from nemotron.data.progress import RateProgress
from nemotron.data.rl import KEYS, JsonlWriter, RowFormat, rl_row
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, read_source
from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

log = logging.getLogger(__name__)

FILES = {"train": "train.jsonl", "valid": "val.jsonl", "test": "test.jsonl"}  # NeMo-RL's names: train/val/test


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

    writers = {split: JsonlWriter(data_dir / FILES[split]) for split in SPLITS}
    seen: set[str] = set()
    duplicates = 0
    sources, source_splits = [], []
    input_key = KEYS[params.format][0]
    with RateProgress("writing RL rows") as progress:
        for source in params.blend.sources:
            stream = read_source(source, params.scale)
            counts = dict.fromkeys(SPLITS, 0)
            for row_index, row in enumerate(stream):
                out = rl_row(row, stream.location, params.problem_field, params.answer_field, params.format)
                if params.dedupe:
                    if out[input_key] in seen:
                        duplicates += 1
                        continue
                    seen.add(out[input_key])
                split = pinned.get(source.name) or params.blend.splits.assign(params.split_seed, source.name, row_index)
                writers[split].write(out)
                counts[split] += 1
                progress.advance(rows=1)
            sources.append(stream.info())
            source_splits.append({"source": source.name, **{FILES[s].split(".")[0]: counts[s] for s in SPLITS}})
    for writer in writers.values():
        writer.close()
    if not writers["train"].rows:
        raise NemotronError(
            f"stage=rl_data wrote no training rows ({sum(w.rows for w in writers.values())} row(s) in all, "
            f"{duplicates} duplicate problem(s) dropped), so nothing is committed. Check the blend, its split "
            "fractions and stage.source_splits: the train split is the one RL trains on."
        )

    paths = {FILES[s].split(".")[0]: str(writers[s].path) if writers[s].rows else "" for s in SPLITS}
    run_hash = hashlib.sha256(json.dumps(params.model_dump(exclude={"output_dir"}), sort_keys=True).encode())
    manifest = {**paths, "format": params.format, "input_key": input_key, "output_key": KEYS[params.format][1]}
    manifest |= {"source_splits": source_splits, "duplicates_dropped": duplicates}
    manifest |= {"run_hash": run_hash.hexdigest()[:16]}
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "RL data: %s; %d duplicate problem(s) dropped",
        ", ".join(f"{FILES[s]} {writers[s].rows:,} rows" for s in SPLITS),
        duplicates,
    )
    return {
        "data": SplitJsonlDataArtifact(
            path=str(data_dir),
            name=params.scale.artifact_name(params.name),
            train=paths["train"] or None,
            val=paths["val"] or None,
            test=paths["test"] or None,
            total_sequences=sum(w.rows for w in writers.values()),
            elapsed_sec=progress.elapsed,
            source_datasets=sources,
            metadata={k: manifest[k] for k in ("format", "input_key", "output_key", "source_splits", "run_hash")}
            | {"duplicates_dropped": duplicates, "scale": params.scale.name},
        )
    }
