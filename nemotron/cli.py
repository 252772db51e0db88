"""`python -m nemotron` / `nemotron`: compose the config, run the selected stage, commit what it returns.

The @hydra.main function lives here (not in __main__.py) so Hydra finds the packaged config as
`pkg://nemotron.conf`; the job name is set to `nemotron` in nemotron/conf/config.yaml.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

import nemotron.tracking.resolvers  # noqa: F401  (registers ${art:} before composition)
from nemotron.stages import run_stage
from nemotron.tracking.callback import JobError, user_error


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    try:
        return run_stage(cfg)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        raise JobError(str(error)) from None


if __name__ == "__main__":
    main()
