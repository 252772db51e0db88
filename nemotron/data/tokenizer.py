"""Tokenizers: load any Hugging Face tokenizer, or train a small byte-level BPE on the corpus.

    tokenizer = load_tokenizer("gpt2")                       # hub id, or a local directory
    tokenizer = train_bpe(texts, "out/tokenizer", 2048)      # saved as a HF dir: AutoTokenizer loads it
    encoder = TokenEncoder(tokenizer)                        # picklable: send it to worker processes
    encoder = encoder.with_fast_path(sample_texts)           # gigatoken, where proven equal on the sample
    encoder.encode(["12 + 7 = 19"]) -> [[...]]
    encoder.encode_flat(texts) -> (ids, lengths)             # numpy: all ids concatenated, ids per text

The trained tokenizer splits digits individually (so the model sees place value) and ships a ChatML chat
template with `<|im_start|>`/`<|im_end|>`, so the SFT stage can use it as is. `<|endoftext|>` is its
`eos_token`, the end-of-document (EOD) token of the pretraining data. Its pre-tokenizer is Qwen2's (a split
regex with single digits, then byte-level without a regex), a scheme gigatoken implements natively.

**Fast path.** `gigatoken` (Rust, in the `train` extra) encodes ~10-70x faster than Hugging Face `tokenizers`
on one core, but it implements a fixed set of pre-tokenizers (known split regexes, byte-level, SentencePiece
BPE with byte fallback) and no post-processor. So it is used only where it is proven equal: `with_fast_path`
encodes a sample of the corpus plus `PROBE_TEXTS` (empty, whitespace runs, unicode, special-token text...)
with both, and keeps HF `tokenizers` (logging one warning with the reason) when gigatoken is missing, cannot
load the tokenizer, or gives any different id. For example gigatoken 0.10 refuses a pre-tokenizer that is a
`Sequence` without a known `Split` regex (`Unsupported pre_tokenizer type: Sequence (no Split regex found)`),
which is what this module trained before it switched to Qwen2's regex.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemotron.data.progress import Heartbeat
from nemotron.errors import NemotronError

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, *CHAT_TOKENS)
# Qwen2's split regex: contractions, letter runs (with one leading non-letter), single digits, punctuation
# runs, newlines, other whitespace. gigatoken recognizes it; `tokenizers` applies it as a `Split` pre-tokenizer.
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# Strings that the equality check of the fast path always encodes besides the corpus sample.
PROBE_TEXTS = (
    "",
    " ",
    "   \n\n\t  x  \r\n\r\n  ",
    "héllo wörld, naïve café — 日本語 中文 한국어 العربية 🙂👍🏽 \u200b\u00a0e\u0301",
    "12 + 7 = 19; 3.14159 * 1,000,000 = 3141590; 0x1F; ٣٤٥",
    "it's we'll THEY'RE I'M can't o'clock",
    "<|endoftext|>after<|endoftext|> <|pad|> <|im_start|>user\nhi<|im_end|>\n",
    "tabs\tand\x00nul\x01control\x7f",
    "word " * 400,
    "a" * 3000,
)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class TokenizerConfig(BaseModel):
    """`data.tokenizer`: which tokenizer the data stages use."""

    model_config = ConfigDict(extra="forbid")

    name_or_path: str | None = Field(None, description="Hub id or local dir; None trains a byte-level BPE.")
    revision: str | None = None
    trust_remote_code: bool = False
    vocab_size: int = Field(2048, ge=300, description="Trained tokenizer only (256 bytes + merges + specials).")
    min_frequency: int = Field(2, ge=1, description="Trained tokenizer only: rarest pair that becomes a merge.")
    train_rows: int | None = Field(10000, ge=1, description="Trained tokenizer only: rows per source used.")


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """A `transformers` tokenizer from a local directory or a hub id; a clear error if it cannot be had."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise NemotronError(_load_error(name_or_path, exc)) from exc


def _load_error(name_or_path: str, exc: Exception) -> str:
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
    if os.path.isdir(name_or_path):
        return (
            f"Cannot load the tokenizer in {name_or_path!r} ({reason}). The directory must hold a Hugging Face "
            "tokenizer (tokenizer.json or the vocabulary files, and tokenizer_config.json)."
        )
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return (
            f"Cannot load the tokenizer {name_or_path!r}: it is not a local directory, and HF_HUB_OFFLINE=1 is set, "
            f"so only the Hugging Face cache ({constants.HF_HUB_CACHE}) is used, where it is not. Download it once "
            "with network access, point name_or_path at a local directory, or set name_or_path=null to train a "
            "tokenizer on the data."
        )
    return (
        f"Cannot load the tokenizer {name_or_path!r}: it is not a local directory, and the Hugging Face Hub could "
        f"not provide it ({reason}). Check the id, your network and access token; offline, set HF_HUB_OFFLINE=1 "
        f"to use the cache ({constants.HF_HUB_CACHE}) or point name_or_path at a local directory."
    )


def train_bpe(texts: Iterable[str | list[str]], out_dir: str | Path, vocab_size: int = 2048, min_frequency: int = 2):
    """Train a byte-level BPE on `texts`, save it as a Hugging Face tokenizer directory and return it.

    Deterministic: the same texts give the same `tokenizer.json`.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    counted = _Counted(_flat(texts))
    with Heartbeat(lambda: f"training the byte-level BPE tokenizer: {counted.count:,} texts read"):
        backend.train_from_iterator(counted, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(CHAT_TOKENS),
        model_max_length=1 << 30,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    _portable_config(Path(out_dir))
    return tokenizer


def _portable_config(out_dir: Path) -> None:
    """Name the class and extra tokens the way transformers 4.x also reads them (5.x writes its own names)."""
    import json

    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    extra = config.pop("extra_special_tokens", None)
    if isinstance(extra, list):
        config["additional_special_tokens"] = extra
    config["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


class _Counted:
    """An iterator that counts what it yields (read by the heartbeat thread)."""

    def __init__(self, items: Iterable[str]) -> None:
        self.items, self.count = iter(items), 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> str:
        item = next(self.items)
        self.count += 1
        return item


def _flat(texts: Iterable[str | list[str]]) -> Iterable[str]:
    for text in texts:
        if isinstance(text, str):
            yield text
        else:
            yield from text


def vocab_size(tokenizer: Any) -> int:
    """The number of token ids, added tokens included (`len(tokenizer)`, Megatron's rule for the dtype)."""
    return len(tokenizer)


def tokenizer_digest(tokenizer: Any) -> str:
    """An xxh3-128 digest of what maps text to ids: the fast tokenizer's JSON, else the vocabulary."""
    import json

    import xxhash

    if getattr(tokenizer, "is_fast", False):
        data = tokenizer.backend_tokenizer.to_str()
    else:
        data = json.dumps(sorted(tokenizer.get_vocab().items()))
    return f"xxh3_128:{xxhash.xxh3_128_hexdigest(data.encode())}"


class TokenEncoder:
    """Texts to token ids, in this process or a worker.

    A fast tokenizer travels as its JSON and is rebuilt with the `tokenizers` library alone (workers never
    import transformers); its ids are those of `tokenizer(text, add_special_tokens=...).input_ids`. A slow
    (Python) tokenizer is pickled as is. `engine` names what encodes: "tokenizers", "gigatoken" (after
    `with_fast_path` proved it equal) or "transformers" (slow tokenizers).
    """

    def __init__(self, tokenizer: Any, add_special_tokens: bool = False) -> None:
        self.add_special_tokens = add_special_tokens
        self._json = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else None
        self._slow = None if self._json else tokenizer
        self.engine = "tokenizers" if self._json else "transformers"
        self._backend: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_backend": None}

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text."""
        if self.engine == "transformers":
            return self._slow(texts, add_special_tokens=self.add_special_tokens)["input_ids"]
        if self.engine == "gigatoken":
            return self._gigatoken().encode_batch_list(texts)
        return [e.ids for e in self._encode_hf(texts)]

    def encode_flat(self, texts: list[str]) -> tuple[Any, Any]:
        """(ids, lengths) as numpy arrays: the ids of all texts concatenated, and how many belong to each."""
        import numpy as np

        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self.engine == "gigatoken":
            import awkward as ak

            encoded = self._gigatoken().encode_batch(texts)
            return np.asarray(ak.flatten(encoded, axis=1)), np.asarray(ak.num(encoded, axis=1), dtype=np.int64)
        ids = self.encode(texts)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def with_fast_path(self, sample: Iterable[str | list[str]]) -> TokenEncoder:
        """This encoder on gigatoken if gigatoken gives the same ids on `sample` and `PROBE_TEXTS`; else self.

        Logs one warning (the reason) when gigatoken is installed but not used, one info line when it is.
        """
        with Heartbeat("comparing gigatoken with HF tokenizers on the first rows of every source"):
            texts = [*_flat(sample), *PROBE_TEXTS]
            fast, reason = self._gigatoken_candidate()
            if fast is not None:
                reason = _first_difference(self.encode(texts), fast.encode(texts), texts)
            if reason is None:
                log.info("Tokenizing with gigatoken: it gave the same ids as HF tokenizers on %d texts", len(texts))
                return fast
        if reason is not None:
            log.warning("Tokenizing with HF tokenizers, not gigatoken: %s", reason)
        return self

    def _gigatoken_candidate(self) -> tuple[TokenEncoder | None, str | None]:
        """A copy of this encoder on gigatoken, or None and why not (None: gigatoken is not installed)."""
        if self.engine != "tokenizers":
            return None, f"the tokenizer is a slow (Python) one ({self.engine}), gigatoken needs tokenizer.json"
        try:
            import gigatoken
        except ImportError:
            log.info("gigatoken is not installed: tokenizing with HF tokenizers (pip install gigatoken)")
            return None, None
        try:
            backend = gigatoken.Tokenizer.from_json(self._json)
        except Exception as exc:  # noqa: BLE001 (any load failure means: not supported, use the exact path)
            return None, f"gigatoken {_version('gigatoken')} cannot load this tokenizer.json: {_one_line(exc)}"
        fast = TokenEncoder.__new__(TokenEncoder)
        fast.__dict__.update(self.__getstate__(), engine="gigatoken", _backend=backend)
        return fast, None

    def _gigatoken(self) -> Any:
        if self._backend is None:
            import gigatoken

            self._backend = gigatoken.Tokenizer.from_json(self._json)
        return self._backend

    def _encode_hf(self, texts: list[str]) -> list[Any]:
        if self._backend is None:
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_str(self._json)
            self._backend.no_truncation()
            self._backend.no_padding()
        encode = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)
        return encode(texts, add_special_tokens=self.add_special_tokens)


def _first_difference(expected: list[list[int]], actual: list[list[int]], texts: list[str]) -> str | None:
    for text, want, got in zip(texts, expected, actual, strict=True):
        if list(want) != list(got):
            return (
                f"it encodes {text[:60]!r} as {list(got)[:12]}... where HF tokenizers gives {list(want)[:12]}... "
                f"(one of {len(texts)} sample texts)"
            )
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
