"""`stage=pretrain_data`: tokenize the pretraining blend into Megatron `.bin/.idx` shards and a `blend.json`.

    python -m nemotron stage=pretrain_data                          # data=tiny: synthetic corpus, trained BPE
    python -m nemotron stage=pretrain_data data.tokenizer.name_or_path=/models/llama-tokenizer scale=full
    python -m nemotron stage=pretrain_data launcher=slurm launcher.nodes=4 launcher.tasks_per_node=8   # 32 ranks
    python -m nemotron stage=pretrain_data stage.output_dir=s3://bucket/corpus-v1
    python -m nemotron stage=pretrain_data stage.resume_from=outputs/pretrain_data/<interrupted run>

Commits two artifacts, the tokenizer first so the data can name its exact version:

    tokenizer{suffix}      TokenizerArtifact       {output dir}/tokenizer   (a Hugging Face tokenizer dir)
    pretrain-data{suffix}  PretrainBlendsArtifact  {output dir}/data        (shards, receipts, blend.json)

`{suffix}` is the scale's (`-tiny`, `-small`, `-medium`, none for full). The output dir is the job's own
(`hydra.runtime.output_dir`), so every run writes a fresh directory.

The recipe: rank 0 prepares the tokenizer and the plan (`_prepare`); every rank makes the shards
`shard_owner` gives it (`build_shards`); rank 0 gathers the ranks' receipts, writes `blend.json` and returns
the artifacts (nemotron/data/ranks.py says how the ranks meet). One task is the same with one rank.

**Resume.** Finished shards (per-shard receipts with checksums) are linked, not tokenized again, from: the
job's own first attempt when Slurm requeued it; the run named by `stage.resume_from=`; or else an interrupted
run of the same config beside this one, so resubmitting the same command resumes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import PretrainBlendsArtifact, TokenizerArtifact
from nemotron.data.indexed import token_dtype
from nemotron.data.parallel import resolve_workers
from nemotron.data.pretrain import (
    BLEND_FILE,
    PLAN_FILE,
    BuildResult,
    DataPlan,
    PreviousRun,
    ShardKey,
    ShardReceipt,
    ShardSettings,
    build_shards,
    remake_sources,
    write_blend,
)
from nemotron.data.ranks import RankGroup
from nemotron.data.remote import check_fresh, remote_url, upload, upload_tree
from nemotron.data.sources import SPLITS, BlendConfig, ScaleConfig, read_source
from nemotron.data.stage_parts import prepare_tokenizer, print_table
from nemotron.data.tokenizer import TokenEncoder, TokenizerConfig, tokenizer_digest
from nemotron.distributed import is_rank0
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
    workers: int | None = Field(description="Tokenizer processes; default the task's CPUs, 0 or 1 inline.")
    rank_timeout_s: float = Field(gt=0, description="A multi-task job fails when a rank shows no life this long.")
    chunk_rows: int = Field(ge=1, description="Documents per unit of work sent to a worker (or 8 MB).")
    eod_token: str | None = Field(description="Default: the tokenizer's eos_token.")
    gigatoken: bool = Field(description="Use gigatoken where it gives the same ids as HF tokenizers.")


def run(cfg: DictConfig) -> dict[str, Any] | None:
    params = stage_params(cfg, PretrainDataParams)
    workers = resolve_workers(params.workers)  # a bad number is refused before anything is made
    remote = remote_url(params.output_dir)  # s3://...: made in the job's output dir, copied there (remote.py)
    out = _output_dir(params, remote)
    with RankGroup.of_job(out, params.rank_timeout_s) as ranks:
        if ranks.world > 1:
            log.info("Rank %d of %d: making the shards shard_owner gives this rank", ranks.rank, ranks.world)
        job = _prepare(params, out, ranks)
        build = partial(
            build_shards,
            scale=params.scale,
            settings=job.settings,
            encoder=_encoder(params, job.tokenizer),
            eod=job.eod,
            dtype=job.dtype,
            plan=job.plan,
            data_dir=out / "data",
            workers=workers,
            chunk_rows=params.chunk_rows,
            previous=job.previous,
        )
        result = build(params.blend, rank=ranks.rank, world=ranks.world)
        if remote:  # this rank's shards, before it says it is done
            upload(out / "data", f"{remote}/data", [f for r in result.receipts for f in _shard_files(r)])
        if not ranks.is_rank0:
            ranks.finish(RankResult.of(result).model_dump_json())
            log.info("Rank %d done: %d shard(s), %d of them reused", ranks.rank, len(result.receipts),
                     result.reused_shards)  # fmt: skip
            return None
        result = RankResult.merge(result, ranks.gather("making its shards"))
        if result.recount:  # rows counted by every rank were not all rows (malformed lines): rank 0 alone
            result = remake_sources(result, build, params.blend, out / "data")
    blend_json = write_blend(params.blend, result.receipts, out / "data")
    _print_summary(result, blend_json)
    _check_training_tokens(result)
    if remote:  # the shared files last: the data is complete once blend.json is there
        upload(out / "data", f"{remote}/data", [PLAN_FILE, BLEND_FILE])
        upload_tree(out / "tokenizer", f"{remote}/tokenizer")
    return _artifacts(params, job, result, ranks.world, remote or str(out))


def _output_dir(params: PretrainDataParams, remote: str | None) -> Path:
    """The job's output dir (or stage.output_dir); rank 0 checks that it, or the remote one, is fresh. The other
    ranks of a multi-task job write into the directory rank 0 checked and made."""
    fresh = ("data", "tokenizer") if is_rank0() else ()
    hint = ", or resume into a new one with stage.resume_from"
    out = output_dir(None if remote else params.output_dir, fresh, hint=hint, resume_if_requeued=True)
    if remote and fresh:
        check_fresh(remote, fresh)
    return out


@dataclass
class _Prepared:
    """What every rank knows before tokenizing: the tokenizer, the plan, and the run whose shards are reused."""

    tokenizer: Any
    tokenizer_source: str
    eod: int | None
    dtype: str
    settings: ShardSettings
    plan: DataPlan
    previous: PreviousRun | None


def _prepare(params: PretrainDataParams, out: Path, ranks: RankGroup) -> _Prepared:
    """Rank 0 prepares the tokenizer and the plan and picks the run to resume; the other ranks wait for it,
    then load the same tokenizer, check they make the same plan and resume the run rank 0 picked."""
    resumed = ranks.wait_ready("rank 0 prepared the tokenizer and the plan")
    previous = _previous_run(params, out) if ranks.is_rank0 else (PreviousRun.open(resumed) if resumed else None)
    # found beside this run, not named: its tokenizer is made again, and must come out the same (the plan)
    automatic = previous is not None and not params.resume_from and previous.data_dir.parent != out
    tokenizer, source = _prepare_tokenizer(params, out / "tokenizer", None if automatic else previous, ranks.is_rank0)
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
    previous = _check_plan(plan, previous, out / "data", ranks, automatic)
    return _Prepared(tokenizer, source, eod, dtype, settings, plan, previous)


def _check_training_tokens(result: BuildResult) -> None:
    documents, _, tokens = result.split_totals("train")
    if not tokens:
        raise NemotronError(
            f"stage=pretrain_data produced no training tokens ({documents} document(s) in the train split, "
            f"{sum(r.tokens for r in result.receipts)} tokens in all), so nothing is committed. Check that the "
            "documents are not empty and that the blend's split fractions give the train split a share."
        )


def _artifacts(params: PretrainDataParams, job: _Prepared, result: BuildResult, ranks: int, where: str) -> dict:
    """The tokenizer and the data, `where` they are (the output dir or its remote copy)."""
    tokenizer, tokenizer_name = job.tokenizer, params.scale.artifact_name(params.tokenizer_name)
    counts = {split: result.split_totals(split) for split in SPLITS}
    metadata = {"dtype": job.dtype, "eod_id": job.eod, "vocab_size": len(tokenizer), "plan_hash": job.plan.plan_hash}
    metadata |= {"documents": sum(c[0] for c in counts.values()), "reused_shards": result.reused_shards}
    metadata |= {"tokenized_shards": len(result.receipts) - result.reused_shards, "ranks": ranks}
    metadata |= {"scale": params.scale.name}
    return {
        "tokenizer": TokenizerArtifact(
            path=f"{where}/tokenizer",
            name=tokenizer_name,
            vocab_size=len(tokenizer),
            metadata={
                "source": job.tokenizer_source,
                "digest": tokenizer_digest(tokenizer),
                "eos": tokenizer.eos_token,
            },  # fmt: skip
        ),
        # `art://<name>` with no version: the callback commits the tokenizer first and pins this to its version.
        "data": PretrainBlendsArtifact(
            path=f"{where}/data",
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


def _shard_files(receipt: ShardReceipt) -> list[str]:
    """A finished shard's files, relative to the data directory: .bin, .idx, then its receipt."""
    key = ShardKey(receipt.source, receipt.split, receipt.index)
    return [f"{receipt.prefix}.bin", f"{receipt.prefix}.idx", key.receipt]


class RankResult(BaseModel):
    """What a rank other than 0 made, for rank 0 to gather (`.ranks/<attempt>/rank_NNNNN.done`)."""

    receipts: list[ShardReceipt]
    reused_shards: int
    elapsed_sec: float
    recount: list[str] = Field(default_factory=list, description="BuildResult.recount")

    @classmethod
    def of(cls, result: BuildResult) -> RankResult:
        return cls(
            receipts=result.receipts,
            reused_shards=result.reused_shards,
            elapsed_sec=result.elapsed_sec,
            recount=result.recount,
        )

    @classmethod
    def merge(cls, own: BuildResult, others: list[str]) -> BuildResult:
        """Rank 0's result with the other ranks' shards added (every rank read the same sources)."""
        parts = [cls.model_validate_json(text) for text in others]
        return BuildResult(
            receipts=own.receipts + [r for part in parts for r in part.receipts],
            sources=own.sources,
            elapsed_sec=max([own.elapsed_sec, *(part.elapsed_sec for part in parts)]),
            reused_shards=own.reused_shards + sum(part.reused_shards for part in parts),
            recount=sorted({*own.recount, *(name for part in parts for name in part.recount)}),
        )


def _previous_run(params: PretrainDataParams, out: Path) -> PreviousRun | None:
    """The run whose finished shards are reused: this job's own first attempt when Slurm requeued it (a
    preempted job resumes in place), else `stage.resume_from`, else an interrupted run of the same config
    beside this one (resubmitting the same command resumes), else none."""
    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    if requeued and (out / "data" / PLAN_FILE).is_file():
        return PreviousRun.open(out / "data")
    if params.resume_from:
        return PreviousRun.open(params.resume_from)
    return _interrupted_run(params, out)


def _interrupted_run(params: PretrainDataParams, out: Path) -> PreviousRun | None:
    """The newest unfinished run (a plan.json, finished shards, no blend.json) in a sibling of this job's output
    dir (Hydra's outputs/<stage>/<time> or multirun/<stage>/<time>/<n>) whose config is this one's. Whether
    its tokenizer is this one too is checked against the plan once the tokenizer is ready (`_check_plan`)."""
    settings = ShardSettings(**params.model_dump(include=set(ShardSettings.model_fields)))
    scale = params.scale.model_dump(exclude={"suffix"})
    ours = DataPlan.make(blend=params.blend.model_dump(), scale=scale, settings=settings.model_dump()).parts
    found = [*out.parent.glob(f"*/data/{PLAN_FILE}")]
    if not params.output_dir:  # multirun/<stage>/<time>/<job number>
        found += out.parent.parent.glob(f"*/*/data/{PLAN_FILE}")
    for plan_file in sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True):
        data_dir = plan_file.parent
        if data_dir.parent == out or (data_dir / BLEND_FILE).exists() or not any(data_dir.glob("receipts/*/*/*")):
            continue
        try:
            theirs = DataPlan.model_validate_json(plan_file.read_text())
        except (OSError, ValueError):
            continue
        if all(theirs.parts.get(key) == value for key, value in ours.items()):
            log.info("Resuming the interrupted run in %s (same config): its finished shards are reused",
                     data_dir.parent)  # fmt: skip
            return PreviousRun(data_dir, theirs)
    return None


def _check_plan(
    plan: DataPlan, previous: PreviousRun | None, data_dir: Path, ranks: RankGroup, automatic: bool = False
) -> PreviousRun | None:
    """Refuse to resume a different plan (an interrupted run found beside this one is then just not resumed);
    rank 0 writes `plan.json` and names the run it resumes, the other ranks check they made the same plan.
    Returns the run to resume."""
    if previous is not None and previous.plan.plan_hash != plan.plan_hash:
        differences = ", ".join(previous.plan.differences(plan))
        if automatic:
            log.info("Not resuming %s: it was made with a different %s", previous.data_dir.parent, differences)
            return None
        raise NemotronError(
            f"Cannot resume from {previous.data_dir}: it was made with a different {differences}. Resume with the "
            "same config, or drop stage.resume_from."
        )
    if not ranks.is_rank0:
        theirs = DataPlan.model_validate_json((data_dir / PLAN_FILE).read_text())
        if theirs.plan_hash != plan.plan_hash:
            raise NemotronError(
                f"Rank {ranks.rank} computed another plan than rank 0 (a different "
                f"{', '.join(theirs.differences(plan))}): the tasks of one job must run the same software on the "
                "same inputs."
            )
        return previous
    data_dir.mkdir(parents=True, exist_ok=previous is not None and previous.data_dir == data_dir)
    (data_dir / PLAN_FILE).write_text(plan.model_dump_json(indent=2) + "\n")
    log.info("Writing %s. If this run is interrupted, resume it with stage.resume_from=%s", data_dir, data_dir.parent)
    ranks.publish_ready(str(previous.data_dir) if previous else "")
    return previous


def _prepare_tokenizer(
    params: PretrainDataParams, out: Path, previous: PreviousRun | None, trains: bool = True
) -> tuple[Any, str]:
    """The tokenizer, saved into `out` (stage_parts.prepare_tokenizer); resuming, the one the interrupted run
    trained. Returns it and where it came from."""
    tokenizer, trained = prepare_tokenizer(
        params.tokenizer,
        params.scale,
        out,
        lambda scale: (text for source in params.blend.sources for text in read_source(source, scale).texts()),
        what="the blend",
        trains=trains,
        save_loaded=True,
        trained_before=previous.data_dir.parent / "tokenizer" if previous else None,
    )
    return tokenizer, "trained (byte-level BPE on the blend)" if trained else str(params.tokenizer.name_or_path)


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
    rows = []
    for split in SPLITS:
        documents, sequences, tokens = result.split_totals(split)
        shards = sum(1 for r in result.receipts if r.split == split)
        entries = len(blend_json[split] or []) // 2
        rows.append([split, f"{shards:,}", f"{documents:,}", f"{sequences:,}", f"{tokens:,}", f"{entries:,}"])
    read = sum(s.num_rows or 0 for s in result.sources)
    tokens = sum(r.tokens for r in result.receipts)
    seconds = max(result.elapsed_sec, 1e-9)
    footer = (
        f"{read:,} rows from {len(result.sources)} source(s) in {result.elapsed_sec:.1f} s: {read / seconds:,.0f} "
        f"rows/s, {tokens / seconds:,.0f} tokens/s"
        + (f"; {result.reused_shards} finished shard(s) reused" if result.reused_shards else "")
    )
    columns = ["split", "shards", "documents", "sequences", "tokens", "blend entries"]
    print_table("pretrain data", columns, rows, footer)
