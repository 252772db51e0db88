"""`python -m nemotron` / `nemotron`: compose the config, run the selected stage, commit what it returns.

The @hydra.main function lives here (not in __main__.py) so Hydra finds the packaged config as
`pkg://nemotron.conf` (the top-level conf/, shipped as that package); the job name is set to `nemotron` in
conf/config.yaml.

Module-level imports are only what composing a config needs (Hydra, OmegaConf, the resolvers): the stage
machinery (Pydantic models, the store, rich) is imported when a job runs, so `--cfg job` and `--help` start
about as fast as a bare Hydra app.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

import nemotron.tracking.resolvers  # noqa: F401  (registers ${art:} before composition)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def job(cfg: DictConfig) -> Any:
    from nemotron.errors import job_error, user_error
    from nemotron.stages import run_stage

    try:
        return run_stage(cfg)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        raise job_error(str(error)) from None


def main() -> Any:
    """The `nemotron` command: the Hydra app, and Ctrl-C as one line (exit status 130, as a shell reports
    SIGINT) instead of a KeyboardInterrupt traceback. A stage interrupted this way commits nothing: Hydra
    only calls the commit callback for a job that returned or raised an Exception."""
    try:
        return job()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
