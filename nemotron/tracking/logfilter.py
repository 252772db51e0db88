"""A logging filter for Hydra's own log lines: its launchers log each job's overrides (`#0 : a=1 b=2`), which
would print a secret given on the command line (`+wandb.api_key=...`). Installed on the console handler of
`hydra.hydra_logging` in conf/config.yaml."""

from __future__ import annotations

import logging


class RedactSecrets(logging.Filter):
    """Replace the value of every secret-named `key=value` word of a log message, and secret values (the
    environment's, URL passwords) wherever they appear in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from nemotron.secrets import redact_override, secret_values

        message = record.getMessage()
        values = list(secret_values().values())
        redacted = " ".join(redact_override(word, values) for word in message.split(" "))
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
