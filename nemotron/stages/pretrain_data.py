"""`stage=pretrain_data`: tokenize the pretraining blend into Megatron `.bin/.idx` shards and a `blend.json`.

    python -m nemotron stage=pretrain_data                          # data=tiny: synthetic corpus, trained BPE
    python -m nemotron stage=pretrain_data data.tokenizer.name_or_path=/models/llama-tokenizer scale=full
    python -m nemotron stage=pretrain_data stage.resume_from=outputs/pretrain_data/<interrupted run>

Commits two artifacts, the tokenizer first so the data can name its exact version:

    tokenizer{suffix}      TokenizerArtifact       {output dir}/tokenizer   (a Hugging Face tokenizer dir)
    pretrain-data{suffix}  PretrainBlendsArtifact  {output dir}/data        (shards, receipts, blend.json)

`{suffix}` is the scale's (`-tiny`, `-small`, `-medium`, none for full). The output dir is the job's own
(`hydra.runtime.output_dir`), so every run writes a fresh directory. A run that was interrupted is resumed by
a new run with the same config plus `stage.resume_from=` its output directory: finished shards (per-shard
receipts with checksums) are linked, not tokenized again. Each run prints the option to use at its start.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import ConfigDict, Field

from nemotron.artifacts.types import PretrainBlendsArtifact, TokenizerArtifact
from nemotron.data.indexed import token_dtype
from nemotron.data.parallel import default_workers
from nemotron.data.pretrain import PLAN_FILE, DataPlan, PreviousRun, ShardSettings, build_shards, write_blend
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, read_source
from nemotron.data.tokenizer import TokenEncoder, TokenizerConfig, load_tokenizer, tokenizer_digest, train_bpe
from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

log = logging.getLogger(__name__)


class PretrainDataParams(ShardSettings):
    """`conf/stage/pretrain_data.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Data artifact name; the scale suffix is appended.")
    tokenizer_name: str = Field(description="Tokenizer artifact name; the scale suffix is appended.")
    blend: BlendConfig
    tokenizer: TokenizerConfig
    scale: ScaleConfig
    output_dir: str | None = Field(description="Default: the job's output dir.")
    resume_from: str | None = Field(description="Output dir of an interrupted run with the same config.")
    workers: int | None = Field(ge=0, description="Tokenizer processes; default all CPUs, 0 or 1 inline.")
    chunk_rows: int = Field(ge=1, description="Documents per unit of work sent to a worker (or 8 MB).")
    eod_token: str | None = Field(description="Default: the tokenizer's eos_token.")
    gigatoken: bool = Field(description="Use gigatoken where it gives the same ids as HF tokenizers.")


def run(cfg: DictConfig) -> dict[str, Any]:
    params = stage_params(cfg, PretrainDataParams)
    out = output_dir(params.output_dir, ("data", "tokenizer"), hint=", or resume into a new one with stage.resume_from")
    data_dir, tokenizer_dir = out / "data", out / "tokenizer"
    previous = PreviousRun.open(params.resume_from) if params.resume_from else None

    tokenizer, tokenizer_source = _prepare_tokenizer(params, tokenizer_dir, previous)
    eod = _eod_id(params, tokenizer)
    dtype = token_dtype(len(tokenizer))
    settings = ShardSettings(**params.model_dump(include=set(ShardSettings.model_fields)))
    plan = DataPlan.make(
        blend=params.blend.model_dump(),
        scale=params.scale.model_dump(exclude={"suffix"}),
        settings=settings.model_dump(),
        tokenizer=tokenizer_digest(tokenizer),
        dtype=dtype,
        eod=eod,
    )
    if previous is not None and previous.plan.plan_hash != plan.plan_hash:
        raise NemotronError(
            f"Cannot resume from {previous.data_dir}: it was made with a different "
            f"{', '.join(previous.plan.differences(plan))}. Resume with the same config, or drop stage.resume_from."
        )
    data_dir.mkdir(parents=True)
    (data_dir / PLAN_FILE).write_text(plan.model_dump_json(indent=2) + "\n")
    log.info("Writing %s. If this run is interrupted, resume it with stage.resume_from=%s", data_dir, out)

    result = build_shards(
        params.blend,
        params.scale,
        settings,
        _encoder(params, tokenizer),
        eod,
        dtype,
        plan,
        data_dir,
        workers=default_workers() if params.workers is None else params.workers,
        chunk_rows=params.chunk_rows,
        previous=previous,
    )
    blend_json = write_blend(params.blend, result.receipts, data_dir)
    _print_summary(result, blend_json)

    tokenizer_name = params.scale.artifact_name(params.tokenizer_name)
    counts = {split: result.split_totals(split) for split in SPLITS}
    if not counts["train"][2]:
        raise NemotronError(
            f"stage=pretrain_data produced no training tokens ({counts['train'][0]} document(s) in the train "
            f"split, {sum(c[2] for c in counts.values())} tokens in all), so nothing is committed. Check that the "
            "documents are not empty and that the blend's split fractions give the train split a share."
        )
    metadata = {"dtype": dtype, "eod_id": eod, "vocab_size": len(tokenizer), "plan_hash": plan.plan_hash}
    metadata |= {"documents": sum(c[0] for c in counts.values()), "reused_shards": result.reused_shards}
    metadata |= {"scale": params.scale.name}
    return {
        "tokenizer": TokenizerArtifact(
            path=str(tokenizer_dir),
            name=tokenizer_name,
            vocab_size=len(tokenizer),
            metadata={"source": tokenizer_source, "digest": tokenizer_digest(tokenizer), "eos": tokenizer.eos_token},
        ),
        # `art://<name>` with no version: the callback commits the tokenizer first and pins this to its version.
        "data": PretrainBlendsArtifact(
            path=str(data_dir),
            name=params.scale.artifact_name(params.name),
            blend_path="blend.json",
            num_shards=len(result.receipts),
            total_tokens=sum(c[2] for c in counts.values()),
            total_sequences=sum(c[1] for c in counts.values()),
            **{f"{split}_tokens": counts[split][2] for split in SPLITS},
            **{f"{split}_sequences": counts[split][1] for split in SPLITS},
            elapsed_sec=result.elapsed_sec,
            tokenizer_uri=f"art://{tokenizer_name}",
            source_datasets=result.sources,
            metadata=metadata,
        ),
    }


def _prepare_tokenizer(params: PretrainDataParams, out: Path, previous: PreviousRun | None) -> tuple[Any, str]:
    """The tokenizer to use, saved into `out`: loaded by id or path, trained on the blend, or (resuming) the
    one the interrupted run trained. Returns it and a label of where it came from."""
    config = params.tokenizer
    if config.name_or_path:
        tokenizer = load_tokenizer(config.name_or_path, config.revision, config.trust_remote_code)
        tokenizer.save_pretrained(str(out))
        return tokenizer, config.name_or_path
    trained_before = previous.data_dir.parent / "tokenizer" if previous else None
    if trained_before is not None and (trained_before / "tokenizer.json").is_file():
        shutil.copytree(trained_before, out)
        return load_tokenizer(str(out)), "trained (byte-level BPE on the blend)"
    log.info("Training a byte-level BPE tokenizer (vocab_size=%d) on the blend", config.vocab_size)
    caps = [cap for cap in (params.scale.max_rows_per_source, config.train_rows) if cap]
    scale = params.scale.model_copy(update={"max_rows_per_source": min(caps) if caps else None})
    texts = (text for source in params.blend.sources for text in read_source(source, scale).texts())
    return train_bpe(texts, out, config.vocab_size, config.min_frequency), "trained (byte-level BPE on the blend)"


FAST_PATH_SAMPLE_ROWS = 1000


def _encoder(params: PretrainDataParams, tokenizer: Any) -> TokenEncoder:
    """HF tokenizers, or gigatoken where it encodes the first rows of every source the same (see tokenizer.py)."""
    from itertools import islice

    encoder = TokenEncoder(tokenizer, add_special_tokens=params.add_special_tokens)
    if not params.gigatoken:
        return encoder
    sample = (
        text
        for source in params.blend.sources
        for text in islice(read_source(source, params.scale).texts(), FAST_PATH_SAMPLE_ROWS)
    )
    return encoder.with_fast_path(sample)


def _eod_id(params: PretrainDataParams, tokenizer: Any) -> int | None:
    if not params.append_eod:
        return None
    token = params.eod_token or tokenizer.eos_token
    token_id = tokenizer.convert_tokens_to_ids(token) if token else None
    if token_id is None or (token != tokenizer.unk_token and token_id == tokenizer.unk_token_id):
        raise NemotronError(
            f"append_eod is set, but the tokenizer has no {'token ' + repr(token) if token else 'eos_token'} to "
            "end documents with. Set stage.eod_token to one of its tokens, or stage.append_eod=false."
        )
    return int(token_id)


def _print_summary(result: Any, blend_json: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pretrain data", title_justify="left")
    for column in ("split", "shards", "documents", "sequences", "tokens", "blend entries"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in SPLITS:
        documents, sequences, tokens = result.split_totals(split)
        shards = sum(1 for r in result.receipts if r.split == split)
        entries = len(blend_json[split] or []) // 2
        table.add_row(split, f"{shards:,}", f"{documents:,}", f"{sequences:,}", f"{tokens:,}", f"{entries:,}")
    console = Console(stderr=True)
    console.print(table)
    rows = sum(s.num_rows or 0 for s in result.sources)
    tokens = sum(r.tokens for r in result.receipts)
    seconds = max(result.elapsed_sec, 1e-9)
    console.print(
        f"{rows:,} rows from {len(result.sources)} source(s) in {result.elapsed_sec:.1f} s: {rows / seconds:,.0f} "
        f"rows/s, {tokens / seconds:,.0f} tokens/s"
        + (f"; {result.reused_shards} finished shard(s) reused" if result.reused_shards else "")
    )
