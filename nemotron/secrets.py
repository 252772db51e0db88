"""Redaction of secrets from everything nemotron writes, in one place: by name and by value.

    by name    a config key or variable whose name says it holds a credential (`api_key`, `HF_TOKEN`,
               `db.password`, `auth`, `bearer`, `private_key`) has its value replaced
    by value   the values of the secret-named environment variables (HF_TOKEN, WANDB_API_KEY, *_TOKEN, *_KEY,
               *_SECRET, *_PASSWORD, ...) are removed from every string, whatever key holds it: a config that
               reaches a token through `${oc.env:HF_TOKEN}` under `stage.metadata.hub` writes no token
    in text    the password of a URL (`scheme://user:PASS@host`), a `Bearer TOKEN` and a PEM private key block

`redact(obj)` applies all three to nested dicts, lists and strings. Used by the run record, the Hydra callback
and log filter, the W&B mirror, the cluster checks and the backends' scripts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***REDACTED***"
# A value shorter than this is not looked for in text: it would match unrelated words and numbers.
MIN_SECRET_LEN = 8

_SECRET_WORDS = {
    "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase", "credential", "credentials",
    "apikey", "auth", "authorization", "bearer", "privatekey",
}  # fmt: skip
# A name ending in `key` or `token` is a secret (api_key, HF_TOKEN, my_token) unless the word before says
# what kind of key or token it is: `input_key` names a column, `eod_token` a vocabulary entry.
_NOT_SECRET_BEFORE = {"input", "output", "answer", "problem", "text", "label", "sort", "partition", "cache",
                      "eod", "eos", "bos", "pad", "unk", "sep", "cls", "mask", "special"}  # fmt: skip
# Environment variables named like secrets that hold none: the shell's working directories.
_NOT_SECRET_VARIABLES = {"PWD", "OLDPWD"}

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)([^\s/@]+)(@)")
_BEARER = re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{8,}")
_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL)


def is_secret_name(name: str) -> bool:
    """Whether a config key or variable name holds a secret: `WANDB_API_KEY`, `hf_token`, `db.password`,
    `auth`, `private_key`, but not `tokens`, `tokenizer`, `max_new_tokens`, `input_key` or `eod_token`."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower())
    words = [w for w in words if w]
    if not words or _SECRET_WORDS.intersection(words):
        return bool(words)
    return words[-1] in ("key", "token") and (len(words) == 1 or words[-2] not in _NOT_SECRET_BEFORE)


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{variable: value} of the secret-named environment variables whose values are long enough to look for.

    A value naming an existing file or directory is left out: it is a location (SSH_AUTH_SOCK), not a secret,
    and removing it would break the paths recorded next to it.
    """
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if name not in _NOT_SECRET_VARIABLES
        and is_secret_name(name)
        and len(value) >= MIN_SECRET_LEN
        and not os.path.exists(value)
    }


def redact_text(text: str, values: Iterable[str] | None = None) -> str:
    """`text` without secret values (default: the environment's), URL passwords, bearer tokens or PEM keys."""
    values = secret_values().values() if values is None else values
    for value in sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}\3", text)
    if "earer" in text:
        text = _BEARER.sub(rf"\1{REDACTED}", text)
    if "PRIVATE KEY" in text:
        text = _PEM_KEY.sub(REDACTED, text)
    return text


def redact(value: Any, values: Iterable[str] | None = None) -> Any:
    """A copy of nested data (dicts, lists, tuples, strings) with secrets replaced by REDACTED: the values of
    secret-named keys, and secret values (default: the environment's) wherever they appear in a string.

    Empty values (None, "", [], {}) hide nothing and are kept, so `exclude_keys: []` stays a list.
    """
    values = tuple(secret_values().values() if values is None else values)
    return _redact(value, values)


def _redact(value: Any, values: tuple[str, ...]) -> Any:
    if isinstance(value, Mapping):
        return {
            _redact(k, values): REDACTED if is_secret_name(str(k)) and not _is_empty(v) else _redact(v, values)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, values) for v in value]
    if isinstance(value, str):
        return redact_text(value, values)
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and not value)


def redact_override(text: str, values: Iterable[str] | None = None) -> str:
    """One `key=value` command-line item: a secret-named key's value replaced (`wandb.api_key=abc` ->
    `wandb.api_key=***REDACTED***`), secret values removed from any other."""
    key, sep, _ = text.partition("=")
    if sep and is_secret_name(key):
        return f"{key}={REDACTED}"
    return redact_text(text, values)
