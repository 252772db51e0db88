"""Stage plugins: `conf/stage/<name>.yaml` names a function `run(cfg) -> Artifact | dict | None`.

A team adds its own stage with a YAML file in its own config dir whose `_target_` points at its own
function; nothing in this package changes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ValidationError

from nemotron.errors import NemotronError
from nemotron.tracking.session import active_tracking

P = TypeVar("P", bound=BaseModel)


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


def stage_params(cfg: DictConfig, model: type[P]) -> P:
    """The `stage:` parameters validated by a Pydantic model, with a one-paragraph error if invalid."""
    missing = sorted(key for key in cfg.stage if OmegaConf.is_missing(cfg.stage, key))
    if missing:
        settings = " ".join(f"stage.{key}=..." for key in missing)
        raise NemotronError(f"The stage needs a value for {', '.join(missing)}: add {settings} to the command.")
    values = OmegaConf.to_container(cfg.stage, resolve=True)
    values.pop("_target_", None)
    values.pop("outputs", None)  # the artifact names a stage may declare, for launcher.wait=false to announce
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"stage.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise NemotronError(f"Invalid stage parameters: {problems}.") from exc


def fresh_output_dir(explicit: str | None, subdirs: tuple[str, ...], hint: str = "") -> Path:
    """Where a stage writes: `stage.output_dir`, else the job's own output dir. Its `subdirs` must not exist
    yet: every run writes fresh, so the data behind a committed version is never rewritten."""
    if explicit:
        out = Path(explicit).expanduser().absolute()
    else:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir).absolute()
    for sub in subdirs:
        if (out / sub).exists():
            raise NemotronError(
                f"{out / sub} already exists: every run writes a fresh output directory (committed data is "
                f"immutable). Choose another stage.output_dir{hint}."
            )
    return out
