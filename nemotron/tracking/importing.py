"""Typed artifacts for data and checkpoints made elsewhere: zero-copy, nothing is written into them.

`build_artifact` is the one way to turn (type, path, fields) into a validated artifact: `stage=register`
and `nemotron-art import` both use it, then commit the artifact like any stage output (files listed with
sizes and digests, a run record, and the inputs it names). The `*_artifact` helpers read what a directory
already says about itself (a Megatron `.idx` header, an SFT `metadata.json`, JSONL split files) so that
the imported artifact is one the pipeline's stages consume as if they had made it.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nemotron.artifacts import ARTIFACT_TYPES, Artifact, GenericArtifact, validate_name
from nemotron.artifacts.types import ModelArtifact, PretrainBlendsArtifact, SFTDataArtifact, SplitJsonlDataArtifact
from nemotron.errors import NemotronError


def artifact_type(name: str) -> type[Artifact]:
    import nemotron.artifacts.types  # noqa: F401  (registers the built-in types)

    types = dict(ARTIFACT_TYPES)
    types.pop(GenericArtifact.__name__, None)
    if name not in types:
        raise NemotronError(f"Unknown artifact type {name!r}. Known types: {', '.join(sorted(types))}.")
    return types[name]


def build_artifact(
    type_name: str | type[Artifact],
    path: str,
    name: str,
    fields: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    path_label: str = "path",
) -> Artifact:
    """A validated artifact of `type_name` for existing data at `path` (made absolute; it must exist)."""
    validate_name(name)
    cls = artifact_type(type_name) if isinstance(type_name, str) else type_name
    try:
        return cls(path=absolute_path(path, path_label), name=name, metadata=metadata or {}, **(fields or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise NemotronError(f"Invalid fields for an artifact of type {cls.__name__}: {problems}.") from exc


def absolute_path(path: str, label: str = "path") -> str:
    """The path as a later job in another working directory finds it; it must exist."""
    import fsspec

    fs, stripped = fsspec.core.url_to_fs(path)
    if not fs.exists(stripped):
        raise NemotronError(f"{label}={path!r} does not exist; register points at existing data.")
    return path if "://" in path else os.path.abspath(path)


def default_name(path: str | Path, what: str) -> str:
    """An artifact name from a directory name: `/ckpt/Llama 3 8B` -> `llama-3-8b`."""
    base = Path(str(path).rstrip("/")).name.lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._")[:128].replace("..", ".")
    if not name:
        raise NemotronError(f"Cannot derive an artifact name for {what} from {str(path)!r}; pass --name NAME.")
    return name


def _directory(path: str, what: str) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise NemotronError(f"{path!r} is not a directory; {what} is imported from the directory that holds it.")
    return directory.resolve()


def _own_metadata(directory: Path, cls: type[Artifact]) -> dict[str, Any]:
    """Typed fields of `cls` found in `directory/metadata.json` (top level, or under `metadata`)."""
    path = directory / "metadata.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise NemotronError(f"{path} is not valid JSON ({exc}); fix it or move it aside.") from exc
    if not isinstance(data, dict):
        return {}
    nested = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    wanted = set(cls.model_fields) - set(Artifact.model_fields)
    return {k: v for source in (nested, data) for k, v in source.items() if k in wanted and v is not None}


# -- models ----------------------------------------------------------------------------------------------


def detect_model_format(directory: Path) -> str:
    if (directory / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") or p.name.endswith(".safetensors.index.json") for p in directory.iterdir()
    ):
        return "hf"
    if (directory / "latest_checkpointed_iteration.txt").is_file() or any(
        p.is_dir() and re.fullmatch(r"iter_\d+", p.name) for p in directory.iterdir()
    ):
        return "megatron"
    if (directory / "training_info.json").is_file() or (directory / "policy").is_dir():
        return "nemo_rl"
    raise NemotronError(
        f"Cannot tell the checkpoint format of {directory}: no Hugging Face config.json with weights, no "
        "Megatron latest_checkpointed_iteration.txt or iter_* directories, no NeMo-RL training_info.json. "
        "Pass --format hf|megatron|nemo_rl."
    )


def model_artifact(
    path: str, stage: str, step: int, fmt: str = "auto", base_model: str | None = None, name: str | None = None
) -> ModelArtifact:
    directory = _directory(path, "a checkpoint")
    fields = {
        "stage": stage,
        "step": step,
        "format": detect_model_format(directory) if fmt == "auto" else fmt,
        "base_model": base_model,
    }
    return build_artifact(ModelArtifact, str(directory), name or default_name(directory, "the model"), fields)


# -- pretraining blends ----------------------------------------------------------------------------------

_IDX_MAGIC = b"MMIDIDX\x00\x00"
_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 4, 8: 2}
_SPLITS = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}


def read_idx_header(path: Path) -> tuple[int, int, int]:
    """(token item size, sequences, documents) from a Megatron `.idx` header."""
    with open(path, "rb") as f:
        header = f.read(34)
    if len(header) < 34 or header[:9] != _IDX_MAGIC:
        raise NemotronError(f"{path} is not a Megatron .idx file (its header does not start with MMIDIDX).")
    version, code, sequences, documents = struct.unpack("<QBQQ", header[9:34])
    if version != 1 or code not in _ITEMSIZE:
        raise NemotronError(f"{path}: unsupported .idx version {version} or dtype code {code}.")
    return _ITEMSIZE[code], sequences, max(documents - 1, 0)


def _blend_prefixes(blend: Any, blend_file: Path) -> dict[str, list[str]]:
    """{split: [prefix, ...]} from a per-split blend ({"train": [w, prefix, ...]}) or a flat list (train)."""
    if isinstance(blend, list):
        blend = {"train": blend}
    if not isinstance(blend, dict) or not blend or set(blend) - set(_SPLITS):
        raise NemotronError(
            f"{blend_file} is not a Megatron blend: expected {{'train': [weight, prefix, ...], 'valid': [...], "
            "'test': [...]}} (per_split_data_args_path) or a flat [weight, prefix, ...] list."
        )
    splits: dict[str, list[str]] = {}
    for key, items in blend.items():
        items = items or []
        if not isinstance(items, list) or len(items) % 2:
            raise NemotronError(f"{blend_file}: the {key!r} entry must alternate weights and prefixes.")
        prefixes = []
        for weight, prefix in zip(items[::2], items[1::2], strict=True):
            try:
                if float(weight) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise NemotronError(f"{blend_file}: {weight!r} in {key!r} is not a weight (a number >= 0).") from None
            location = Path(str(prefix))
            prefixes.append(str(location if location.is_absolute() else (blend_file.parent / location).resolve()))
        splits.setdefault(_SPLITS[key], []).extend(prefixes)
    return splits


def pretrain_artifact(blend_path: str, name: str | None = None) -> PretrainBlendsArtifact:
    blend_file = Path(blend_path).expanduser().resolve()
    if not blend_file.is_file():
        raise NemotronError(f"{blend_path!r} is not a file; import data pretrain takes the path of a blend.json.")
    try:
        splits = _blend_prefixes(json.loads(blend_file.read_text()), blend_file)
    except ValueError as exc:
        raise NemotronError(f"{blend_file} is not valid JSON ({exc}).") from exc
    counted: dict[str, tuple[int, int]] = {}  # prefix -> (tokens, sequences)
    missing = []
    for prefix in {p for prefixes in splits.values() for p in prefixes}:
        bin_file, idx_file = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
        if not (bin_file.is_file() and idx_file.is_file()):
            missing.append(prefix)
            continue
        itemsize, sequences, _ = read_idx_header(idx_file)
        counted[prefix] = (bin_file.stat().st_size // itemsize, sequences)
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        raise NemotronError(f"{blend_file} names {len(missing)} prefix(es) without both .bin and .idx: {shown}.")
    root = Path(os.path.commonpath([str(blend_file.parent), *(str(Path(p).parent) for p in counted)]))
    if root == Path(root.anchor):
        raise NemotronError(
            f"The blend {blend_file} and the shards it names share no directory below {root}; keep the shards "
            "and the blend under one directory (the artifact's path) and import again."
        )
    split_tokens = {split: sum(counted[p][0] for p in set(prefixes)) for split, prefixes in splits.items()}
    fields = {
        **_own_metadata(blend_file.parent, PretrainBlendsArtifact),
        "blend_path": str(blend_file.relative_to(root)),
        "num_shards": len(counted),
        "total_tokens": sum(tokens for tokens, _ in counted.values()),
        "total_sequences": sum(sequences for _, sequences in counted.values()),
        "train_tokens": split_tokens.get("train", 0),
        "valid_tokens": split_tokens.get("valid", 0),
        "test_tokens": split_tokens.get("test", 0),
    }
    return build_artifact(PretrainBlendsArtifact, str(root), name or default_name(root, "the blend"), fields)


# -- SFT and RL data -------------------------------------------------------------------------------------


def sft_artifact(path: str, pack_size: int | None = None, name: str | None = None) -> SFTDataArtifact:
    directory = _directory(path, "packed SFT data")
    shards = sorted(directory.rglob("*.parquet"))
    if not shards:
        raise NemotronError(
            f"{directory} holds no .parquet files; import data sft takes a directory of packed SFT Parquet "
            "(input_ids, loss_mask, seq_start_id)."
        )
    fields = _own_metadata(directory, SFTDataArtifact)
    recorded = fields.get("pack_size")
    if pack_size is not None and recorded is not None and int(recorded) != pack_size:
        raise NemotronError(
            f"--pack-size {pack_size} contradicts {directory / 'metadata.json'} (pack_size {recorded}); the packs "
            "were built for one sequence length. Drop --pack-size, or fix metadata.json."
        )
    if pack_size is None and recorded is None:
        raise NemotronError(
            f"{directory} has no metadata.json with a pack_size; pass --pack-size N (the sequence length the "
            "Parquet rows were packed to)."
        )
    fields["pack_size"] = pack_size if pack_size is not None else recorded
    fields.setdefault("num_shards", len({s.resolve() for s in shards}))
    fields.setdefault("blend_path", "blend.json" if (directory / "blend.json").is_file() else "")
    return build_artifact(SFTDataArtifact, str(directory), name or default_name(directory, "the SFT data"), fields)


_RL_SPLITS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


def rl_artifact(path: str, name: str | None = None) -> SplitJsonlDataArtifact:
    directory = _directory(path, "RL data")
    fields: dict[str, Any] = _own_metadata(directory, SplitJsonlDataArtifact)
    total = 0
    for field_name, stems in _RL_SPLITS.items():
        found = next((directory / f"{stem}.jsonl" for stem in stems if (directory / f"{stem}.jsonl").is_file()), None)
        if found is None:
            continue
        fields[field_name] = str(found)
        total += _count_jsonl(found)
    if "train" not in fields:
        raise NemotronError(
            f"{directory} has no train.jsonl; import data rl takes a directory of train.jsonl (and optionally "
            "val.jsonl / validation.jsonl and test.jsonl), one JSON object per line."
        )
    fields.setdefault("total_sequences", total)
    return build_artifact(
        SplitJsonlDataArtifact, str(directory), name or default_name(directory, "the RL data"), fields
    )


def _count_jsonl(path: Path) -> int:
    """Non-empty lines; the first one must be a JSON object (a cheap check that this is JSONL)."""
    count, first = 0, None
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                count += 1
                first = first or line
    if first is not None:
        try:
            ok = isinstance(json.loads(first), dict)
        except ValueError:
            ok = False
        if not ok:
            raise NemotronError(f"{path}: the first line is not a JSON object; expected JSONL records.")
    return count
