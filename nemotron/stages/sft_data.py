"""`stage=sft_data`: chat conversations -> packed Parquet for Megatron-Bridge's packed-sequence SFT loader.

    python -m nemotron stage=sft_data                              # data=tiny: synthetic chats, a BPE trained on them
    python -m nemotron stage=sft_data +run.tokenizer=tokenizer-tiny \
        'data.tokenizer.name_or_path=${art:tokenizer,path}' 'stage.tokenizer_uri=${art:tokenizer,uri}'
    python -m nemotron stage=sft_data stage.pack_size=8192 stage.algorithm=first_fit_decreasing stage.overlong=drop

**Tokenizer.** The same rule as `stage=pretrain_data`: `data.tokenizer.name_or_path` (a hub id, a local dir, or
the pretraining tokenizer as `${art:tokenizer,path}`, which also records it as an input, with
`stage.tokenizer_uri=${art:tokenizer,uri}` as the artifact's `tokenizer_uri`) is loaded as is;
when it is null, a byte-level BPE with a ChatML template is trained on the conversations and committed first,
as `sft-tokenizer{suffix}`. To fine-tune a model pretrained here, pass its tokenizer (second line above).

Output (`{output dir}/data`, formats.md 5.5), committed as `sft-data{suffix}` (`SFTDataArtifact`):

    runs/<run_hash>/datasets/<source>/<plan_hash>/shard_NNNNNN.parquet     the packed rows
    splits/{train,valid,test}/{pos:06d}__<source>__shard_NNNNNN.parquet    relative links to them
    blend.json      {"train": ["weight", "splits/train/000000__src__shard_000000", ...], "valid": ..., ...}
    metadata.json   pack_size, algorithm, per-split rows / sequences / tokens / truncated / dropped / efficiency
    {pack_size}_metadata.jsonl   Megatron-Bridge's packing metadata [train, valid] (for pad_cu_seqlens=True)

Megatron-Bridge reads it as `PackedSequenceSpecs(packed_sequence_size=pack_size,
packed_train_data_path=<data>/splits/train/, packed_val_data_path=<data>/splits/valid/)` with
`seq_length = pack_size`. It concatenates every file of a directory, so the blend weights in `blend.json`
(a source's weight, shared by its shards in proportion to their tokens) are a record, not a subsampling.

**Several tasks** (`launcher.tasks_per_node`, `launcher.nodes`): rank 0 prepares the tokenizer, each rank packs
the sources `source_owner` gives it, and rank 0 links, writes the blend and returns the artifact: the same
files as one task (nemotron/data/sft_dataset.py). A rank that fails or stops fails the job; nothing is committed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from nemotron.artifacts.types import SFTDataArtifact, TokenizerArtifact
from nemotron.data.progress import RateProgress
from nemotron.data.ranks import RankGroup
from nemotron.data.remote import check_fresh, remote_url, upload, upload_tree
from nemotron.data.sft import ChatTokenizer
from nemotron.data.sft_dataset import (
    PackSettings,
    SourcePack,
    conversations,
    digest,
    pack_source,
    source_owner,
    write_dataset,
)
from nemotron.data.sources import BlendConfig, ScaleConfig
from nemotron.data.stage_parts import prepare_tokenizer, print_table
from nemotron.data.tokenizer import TokenizerConfig, tokenizer_digest
from nemotron.distributed import is_rank0
from nemotron.errors import NemotronError
from nemotron.job import output_dir, stage_params

log = logging.getLogger(__name__)


class SFTDataParams(PackSettings):
    """`conf/stage/sft_data.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Data artifact name; the scale suffix is appended.")
    tokenizer_name: str = Field(description="Name of a tokenizer trained here (+ scale suffix).")
    blend: BlendConfig
    tokenizer: TokenizerConfig
    scale: ScaleConfig
    tokenizer_uri: str | None = Field(description="Recorded for a given tokenizer, e.g. ${art:tokenizer,uri}.")
    output_dir: str | None = Field(description="Default: the job's output dir.")
    rank_timeout_s: float = Field(gt=0, description="A multi-task job fails when a rank shows no life this long.")


class RankPacks(BaseModel):
    """What a rank other than 0 packed, for rank 0 to gather."""

    run_hash: str
    packs: dict[str, SourcePack]
    elapsed_sec: float


def run(cfg: DictConfig) -> dict[str, Any] | None:
    params = stage_params(cfg, SFTDataParams)
    fresh = ("data", "tokenizer") if is_rank0() else ()
    remote = remote_url(params.output_dir)  # s3://...: made in the job's output dir, copied there (remote.py)
    # A job that Slurm requeued (preempted) packs again in its own directory: packing is quick next to pretraining.
    out = output_dir(None if remote else params.output_dir, fresh, resume_if_requeued=True)
    data_dir = out / "data"
    if remote and fresh:
        check_fresh(remote, fresh)
    settings = PackSettings(**params.model_dump(include=set(PackSettings.model_fields)))
    with RankGroup.of_job(out, params.rank_timeout_s) as ranks:
        ranks.wait_ready("rank 0 prepared the tokenizer")
        tokenizer, trained = _prepare_tokenizer(params, out / "tokenizer", trains=ranks.is_rank0)
        chat = ChatTokenizer(tokenizer)
        _check_pack_size(params, chat)
        run_hash = digest(blend=params.blend.model_dump(), scale=params.scale.model_dump(exclude={"suffix"}),
                          **settings.files_part(), tokenizer=tokenizer_digest(tokenizer))  # fmt: skip
        ranks.publish_ready()
        mine = [s for i, s in enumerate(params.blend.sources) if source_owner(i, ranks.world) == ranks.rank]
        with RateProgress("tokenizing + packing", total_rows=params.scale.expected_rows(mine)) as progress:
            packs = {s.name: pack_source(s, params.blend, params.scale, settings, chat, data_dir, run_hash, progress)
                     for s in mine}  # fmt: skip
        elapsed = progress.elapsed
        if remote:  # this rank's packed files, before it says it is done
            upload(data_dir, f"{remote}/data", [path for pack in packs.values() for part in pack.parts
                                                for path, _, _ in part.shards])  # fmt: skip
        own = RankPacks(run_hash=run_hash, packs=packs, elapsed_sec=elapsed)
        if not ranks.is_rank0:
            ranks.finish(own.model_dump_json())
            return None
        packs, elapsed = _gather(ranks, own)
    ordered = [packs[s.name] for s in params.blend.sources]
    _check_not_empty(params, ordered)
    metadata, blend_json = write_dataset(params.blend, ordered, settings, data_dir, run_hash, params.scale.name)
    _print_summary(metadata, blend_json)
    if remote:  # the split links (as copies: object stores have no links), blend and metadata last
        links = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / "splits").rglob("*.parquet"))
        upload(
            data_dir, f"{remote}/data", [*links, "blend.json", "metadata.json", f"{params.pack_size}_metadata.jsonl"]
        )
        if trained:
            upload_tree(out / "tokenizer", f"{remote}/tokenizer")
    where = remote or str(out)
    return _artifacts(params, where, tokenizer if trained else None, metadata, ordered, elapsed, ranks.world)


def _gather(ranks: RankGroup, own: RankPacks) -> tuple[dict[str, SourcePack], float]:
    """Rank 0: every rank's packs (its own included) and the slowest rank's time."""
    packs, elapsed = dict(own.packs), own.elapsed_sec
    for text in ranks.gather("packing its sources"):
        theirs = RankPacks.model_validate_json(text)
        if theirs.run_hash != own.run_hash:
            raise NemotronError(
                "The ranks of this job hashed the run differently (another tokenizer or "
                "config): the tasks of one job must run the same software on the same inputs."
            )
        packs |= theirs.packs
        elapsed = max(elapsed, theirs.elapsed_sec)
    return packs, elapsed


def _artifacts(
    params: SFTDataParams,
    where: str,
    trained: Any | None,
    metadata: dict[str, Any],
    ordered: list[SourcePack],
    elapsed: float,
    world: int,
) -> dict[str, Any]:
    """The SFT data, and the tokenizer when this run trained it (`trained`: that tokenizer, else None)."""
    tokenizer_name = params.scale.artifact_name(params.tokenizer_name)
    # `art://<name>` with no version: the callback commits the tokenizer first and pins this to its version.
    tokenizer_uri = params.tokenizer_uri or params.tokenizer.name_or_path
    outputs: dict[str, Any] = {}
    if trained is not None:
        tokenizer_uri = f"art://{tokenizer_name}"
        outputs["tokenizer"] = TokenizerArtifact(
            path=f"{where}/tokenizer",
            name=tokenizer_name,
            vocab_size=len(trained),
            metadata={"source": "trained (byte-level BPE on the SFT blend)", "digest": tokenizer_digest(trained)},
        )
    outputs["data"] = SFTDataArtifact(
        path=f"{where}/data",
        name=params.scale.artifact_name(params.name),
        pack_size=params.pack_size,
        num_shards=metadata["num_shards"],
        packing_efficiency=metadata["packing_efficiency"],
        blend_path="blend.json",
        total_sequences=metadata["total_sequences"],
        total_tokens=metadata["total_tokens"],
        elapsed_sec=elapsed,
        tokenizer_uri=tokenizer_uri,
        source_datasets=[pack.info for pack in ordered],
        metadata={k: metadata[k] for k in ("algorithm", "overlong", "splits", "run_hash", "scale")} | {"ranks": world},
    )
    return outputs


def _check_pack_size(params: SFTDataParams, chat: ChatTokenizer) -> None:
    minimum = chat.min_length()
    if params.pack_size < minimum:
        raise NemotronError(
            f"stage.pack_size={params.pack_size} is smaller than the chat template's minimum: an empty user turn "
            f"and an empty assistant turn alone take {minimum} tokens. Use a pack_size of at least {minimum} "
            "(Megatron-Bridge suggests 8192 as a first value)."
        )


def _check_not_empty(params: SFTDataParams, packs: list[SourcePack]) -> None:
    """No packed training row is an error, not an empty artifact (every conversation dropped, say)."""
    parts = [part for pack in packs for part in pack.parts]
    if any(part.rows for part in parts if part.split == "train"):
        return
    sequences = sum(part.sequences for part in parts)
    dropped = sum(part.dropped for part in parts)
    why = (
        f"{dropped} conversation(s) were longer than stage.pack_size={params.pack_size} and stage.overlong=drop "
        "dropped them; raise stage.pack_size or use stage.overlong=truncate"
        if dropped
        else f"{sequences} conversation(s) were packed and none was assigned to the train split; check the blend "
        "and its split fractions"
    )
    raise NemotronError(f"stage=sft_data made no training rows, so nothing is committed: {why}.")


def _prepare_tokenizer(params: SFTDataParams, out: Path, trains: bool = True) -> tuple[Any, bool]:
    """The tokenizer (stage_parts.prepare_tokenizer), trained on the message contents; True if trained."""

    def texts(scale: ScaleConfig) -> Any:
        for source in params.blend.sources:
            for _, messages in conversations(source, scale, params.messages_field):
                yield [m["content"] for m in messages]

    return prepare_tokenizer(params.tokenizer, params.scale, out, texts, what="the SFT conversations", trains=trains)


def _print_summary(metadata: dict[str, Any], blend_json: dict[str, Any]) -> None:
    rows = []
    for split, s in metadata["splits"].items():
        efficiency = f"{s['packing_efficiency']:.2%}" if s["packing_efficiency"] is not None else "-"
        rows.append([split, f"{s['rows']:,}", f"{s['sequences']:,}", f"{s['tokens']:,}", f"{s['truncated']:,}",
                     f"{s['dropped']:,}", efficiency])  # fmt: skip
    columns = ["split", "packed rows", "sequences", "tokens", "truncated", "dropped", "efficiency"]
    print_table(f"sft data (pack_size {metadata['pack_size']}, {metadata['algorithm']})", columns, rows)
