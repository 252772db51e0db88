"""Stage plugins: `conf/stage/<name>.yaml` names a function `run(cfg) -> Artifact | dict | None`.

A team adds its own stage with a YAML file in its own config dir whose `_target_` points at its own
function; nothing in this package changes. What a stage needs from its job (validated parameters, inputs, the
output directory, the scale) is `nemotron.job`, which the backends share.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from omegaconf import DictConfig

from nemotron.errors import NemotronError
from nemotron.tracking.session import active_tracking


def run_stage(cfg: DictConfig) -> Any:
    """Import the stage function named by `stage._target_` and call it with the job config."""
    from hydra.utils import get_method

    active_tracking()  # raises now, before any work, if the job's artifact tracking could not be set up
    target = cfg.stage.get("_target_")
    if not target:
        raise NemotronError("The stage config has no `_target_`: it must name a function `run(cfg)`.")
    try:
        stage = get_method(target)
    except Exception as exc:
        raise NemotronError(f"Cannot import the stage function {target!r}: {exc.__cause__ or exc}.") from exc
    # stdout is reserved for the JSON line of each committed artifact, so that stages can be piped:
    # what the stage prints goes to stderr with its logs.
    with contextlib.redirect_stdout(sys.stderr):
        return stage(cfg)
