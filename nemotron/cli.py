"""`python -m nemotron` / `nemotron`: compose the config, run the selected stage, commit what it returns.

The @hydra.main function lives here (not in __main__.py) so Hydra finds the packaged config as
`pkg://nemotron.conf`; the job name is set to `nemotron` in nemotron/conf/config.yaml.

Module-level imports are only what composing a config needs (Hydra, OmegaConf, the resolvers): the stage
machinery (Pydantic models, the store, rich) is imported when a job runs, so `--cfg job` and `--help` start
about as fast as a bare Hydra app.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

import nemotron.tracking.resolvers  # noqa: F401  (registers ${art:} before composition)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    from nemotron.stages import run_stage
    from nemotron.tracking.callback import JobError, user_error

    try:
        return run_stage(cfg)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        raise JobError(str(error)) from None


if __name__ == "__main__":
    main()
