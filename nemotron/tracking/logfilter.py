"""A logging filter for Hydra's own log lines: its launchers log each job's overrides (`#0 : a=1 b=2`), which
would print a secret given on the command line (`+wandb.api_key=...`). Installed on the console handler of
`hydra.hydra_logging` in conf/config.yaml."""

from __future__ import annotations

import logging


class RedactSecrets(logging.Filter):
    """Replace the value of every secret-named `key=value` word of a log message."""

    def filter(self, record: logging.LogRecord) -> bool:
        from nemotron.tracking.runinfo import redact_override  # only when Hydra logs: composing stays light

        message = record.getMessage()
        redacted = " ".join(redact_override(word) for word in message.split(" "))
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
