"""Typed artifacts for data and checkpoints made elsewhere: zero-copy, nothing is written into them.

`typed_artifact` is the one way to turn (type, path, fields) into a validated artifact: `stage=register`
and `nemotron-art import` both use it, then commit the artifact like any stage output (files listed with
sizes and digests, a run record, and the inputs it names). For the types whose layout the pipeline relies on
(a model checkpoint, packed SFT Parquet, RL JSONL splits, a Megatron blend) it checks the data itself and
reads what a directory already says about itself (a Megatron `.idx` header, an SFT `metadata.json`, JSONL
split files), so that the artifact is one the pipeline's stages consume as if they had made it, and a
directory that cannot be one is refused the same way by both commands.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
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


def artifact_for_existing(
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
        raise _invalid_fields(cls, exc) from exc


def _invalid_fields(cls: type[Artifact], exc: ValidationError) -> NemotronError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
    )
    return NemotronError(f"Invalid fields for an artifact of type {cls.__name__}: {problems}.")


# How each command takes the values the checks may ask for ({} is the value): the messages name the right one.
IMPORT_OPTIONS = {"pack_size": "--pack-size {}", "format": "--format {}"}
REGISTER_OPTIONS = {"pack_size": "+stage.fields.pack_size={}", "format": "+stage.fields.format={}"}

Inspector = Callable[[str, dict[str, Any], dict[str, str]], tuple[str, dict[str, Any], str]]


def typed_artifact(
    type_name: str | type[Artifact],
    path: str,
    name: str | None = None,
    fields: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    path_label: str = "path",
    options: dict[str, str] = IMPORT_OPTIONS,
) -> Artifact:
    """The one check of existing data as a typed artifact, for `nemotron-art import` and `stage=register`.

    The name and the given fields are validated first. Then, for a type whose layout nemotron knows and a local
    path, the data itself is checked and the fields it states about itself are read (`_INSPECTORS`; a given
    field wins where the data agrees, a contradiction is an error). Other types and remote URLs are taken as
    they are.
    """
    cls = artifact_type(type_name) if isinstance(type_name, str) else type_name
    fields = {key: value for key, value in (fields or {}).items() if value is not None}
    inspect = _INSPECTORS.get(cls)
    if inspect is None or "://" in path:
        return artifact_for_existing(cls, path, name or default_name(path, "the data"), fields, metadata, path_label)
    if name is not None:
        validate_name(name)
    try:  # the given fields, before the data is looked at: a bad value is named as such
        cls(path=path, **{key: value for key, value in fields.items() if value != "auto"})
    except ValidationError as exc:
        raise _invalid_fields(cls, exc) from exc
    path, fields, what = inspect(path, fields, options)
    return artifact_for_existing(cls, path, name or default_name(path, what), fields, metadata, path_label)


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


def detect_model_format(directory: Path, option: str = IMPORT_OPTIONS["format"]) -> str:
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
        f"Pass {option.format('hf|megatron|nemo_rl')}."
    )


def _inspect_model(path: str, fields: dict[str, Any], options: dict[str, str]) -> tuple[str, dict[str, Any], str]:
    """A checkpoint is a directory; format `auto` is detected from its files (a given format is trusted)."""
    directory = _directory(path, "a checkpoint")
    if fields.get("format") == "auto":
        fields = {**fields, "format": detect_model_format(directory, options["format"])}
    return str(directory), fields, "the model"


def model_artifact(
    path: str, stage: str, step: int, fmt: str = "auto", base_model: str | None = None, name: str | None = None
) -> ModelArtifact:
    fields = {"stage": stage, "step": step, "format": fmt, "base_model": base_model}
    return typed_artifact(ModelArtifact, path, name, fields)


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


def _blend_file(path: str, fields: dict[str, Any]) -> tuple[Path, Path | None]:
    """(the blend file, the artifact directory if one was given): `path` is the blend, or a directory
    holding it at `blend_path` (default blend.json)."""
    location = Path(path).expanduser().resolve()
    if location.is_dir():
        blend_file = location / str(fields.get("blend_path", "blend.json"))
        if not blend_file.is_file():
            raise NemotronError(
                f"{location} has no blend at {blend_file.name}; pretraining data is a Megatron blend (a "
                "per-split blend.json, blend_path) and the .bin/.idx shards it names, under one directory."
            )
        return blend_file, location
    if not location.is_file():
        raise NemotronError(f"{path!r} is not a file; import data pretrain takes the path of a blend.json.")
    return location, None


def _count_shards(blend_file: Path, splits: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """prefix -> (tokens, sequences) from each prefix's .bin size and .idx header; every prefix needs both."""
    counted: dict[str, tuple[int, int]] = {}
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
    return counted


def _inspect_pretrain(path: str, fields: dict[str, Any], options: dict[str, str]) -> tuple[str, dict[str, Any], str]:
    """The blend's shards exist with both files; token counts per split come from them; the artifact's path is
    the directory holding the blend and its shards (the one given, or their common directory)."""
    blend_file, given = _blend_file(path, fields)
    try:
        splits = _blend_prefixes(json.loads(blend_file.read_text()), blend_file)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NemotronError(f"{blend_file} is not valid JSON ({exc}).") from exc
    counted = _count_shards(blend_file, splits)
    root = Path(os.path.commonpath([str(blend_file.parent), *(str(Path(p).parent) for p in counted)]))
    if given is not None and not root.is_relative_to(given):
        raise NemotronError(
            f"The blend {blend_file} names shards outside {given} (their common directory is {root}); keep the "
            "shards under the artifact's directory, or register their common directory."
        )
    if root == Path(root.anchor):
        raise NemotronError(
            f"The blend {blend_file} and the shards it names share no directory below {root}; keep the shards "
            "and the blend under one directory (the artifact's path) and import again."
        )
    root = given or root
    split_tokens = {split: sum(counted[p][0] for p in set(prefixes)) for split, prefixes in splits.items()}
    measured = {
        "blend_path": str(blend_file.relative_to(root)),
        "num_shards": len(counted),
        "total_tokens": sum(tokens for tokens, _ in counted.values()),
        "total_sequences": sum(sequences for _, sequences in counted.values()),
        "train_tokens": split_tokens.get("train", 0),
        "valid_tokens": split_tokens.get("valid", 0),
        "test_tokens": split_tokens.get("test", 0),
    }
    return str(root), {**_own_metadata(blend_file.parent, PretrainBlendsArtifact), **fields, **measured}, "the blend"


def pretrain_artifact(blend_path: str, name: str | None = None) -> PretrainBlendsArtifact:
    return typed_artifact(PretrainBlendsArtifact, blend_path, name)


# -- SFT and RL data -------------------------------------------------------------------------------------


def _inspect_sft(path: str, fields: dict[str, Any], options: dict[str, str]) -> tuple[str, dict[str, Any], str]:
    """Packed Parquet under the directory; pack_size given or in its metadata.json, and never both differing."""
    directory = _directory(path, "packed SFT data")
    shards = sorted(directory.rglob("*.parquet"))
    if not shards:
        raise NemotronError(
            f"{directory} holds no .parquet files; packed SFT data is a directory of packed SFT Parquet "
            "(input_ids, loss_mask, seq_start_id)."
        )
    own = _own_metadata(directory, SFTDataArtifact)
    given, recorded = fields.get("pack_size"), own.get("pack_size")
    option = options["pack_size"]
    if given is not None and recorded is not None and int(recorded) != int(given):
        raise NemotronError(
            f"{option.format(given)} contradicts {directory / 'metadata.json'} (pack_size {recorded}); the packs "
            f"were built for one sequence length. Drop {option.format(given)}, or fix metadata.json."
        )
    if given is None and recorded is None:
        raise NemotronError(
            f"{directory} has no metadata.json with a pack_size; pass {option.format('N')} (the sequence length "
            "the Parquet rows were packed to)."
        )
    merged = {**own, **fields}
    merged.setdefault("num_shards", len({s.resolve() for s in shards}))
    merged.setdefault("blend_path", "blend.json" if (directory / "blend.json").is_file() else "")
    return str(directory), merged, "the SFT data"


def sft_artifact(path: str, pack_size: int | None = None, name: str | None = None) -> SFTDataArtifact:
    return typed_artifact(SFTDataArtifact, path, name, {"pack_size": pack_size})


_RL_SPLITS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


def _inspect_rl(path: str, fields: dict[str, Any], options: dict[str, str]) -> tuple[str, dict[str, Any], str]:
    """A train split (train.jsonl, or the file `train` names) and optional val/test, each JSONL records."""
    directory = _directory(path, "RL data")
    merged: dict[str, Any] = {**_own_metadata(directory, SplitJsonlDataArtifact), **fields}
    total = 0
    for field_name, stems in _RL_SPLITS.items():
        if fields.get(field_name):
            found = directory / str(fields[field_name])  # an absolute path stays as it is
            if not found.is_file():
                raise NemotronError(f"{field_name}={fields[field_name]!r} is not a file (under {directory}).")
        else:
            found = next(
                (directory / f"{stem}.jsonl" for stem in stems if (directory / f"{stem}.jsonl").is_file()), None
            )
            if found is None:
                continue
        merged[field_name] = str(found)
        total += _count_jsonl(found)
    if "train" not in merged:
        raise NemotronError(
            f"{directory} has no train.jsonl; RL data is a directory of train.jsonl (and optionally val.jsonl / "
            "validation.jsonl and test.jsonl), one JSON object per line."
        )
    merged.setdefault("total_sequences", total)
    return str(directory), merged, "the RL data"


def rl_artifact(path: str, name: str | None = None) -> SplitJsonlDataArtifact:
    return typed_artifact(SplitJsonlDataArtifact, path, name)


_INSPECTORS: dict[type[Artifact], Inspector] = {
    ModelArtifact: _inspect_model,
    PretrainBlendsArtifact: _inspect_pretrain,
    SFTDataArtifact: _inspect_sft,
    SplitJsonlDataArtifact: _inspect_rl,
}


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
