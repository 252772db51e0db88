"""Tokenizers: load any Hugging Face tokenizer, or train a small byte-level BPE on the corpus.

    tokenizer = load_tokenizer("gpt2")                       # hub id, or a local directory
    tokenizer = train_bpe(texts, "out/tokenizer", 2048)      # saved as a HF dir: AutoTokenizer loads it
    encoder = TokenEncoder(tokenizer)                        # picklable: send it to worker processes
    encoder.encode(["12 + 7 = 19"]) -> [[...]]

The trained tokenizer splits digits individually (so the model sees place value) and ships a ChatML chat
template with `<|im_start|>`/`<|im_end|>`, so the SFT stage can use it as is. `<|endoftext|>` is its
`eos_token`, the end-of-document (EOD) token of the pretraining data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nemotron.errors import NemotronError

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, *CHAT_TOKENS)
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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_flat(texts), trainer=trainer)
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
    (Python) tokenizer is pickled as is.
    """

    def __init__(self, tokenizer: Any, add_special_tokens: bool = False) -> None:
        self.add_special_tokens = add_special_tokens
        self._json = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else None
        self._slow = None if self._json else tokenizer
        self._fast = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fast": None}

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self._slow is not None:
            return self._slow(texts, add_special_tokens=self.add_special_tokens)["input_ids"]
        if self._fast is None:
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(self._json)
            self._fast.no_truncation()
            self._fast.no_padding()
        encode = getattr(self._fast, "encode_batch_fast", self._fast.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=self.add_special_tokens)]
