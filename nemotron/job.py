"""What stages and backends share about the job they run in: validated stage parameters, pinned inputs, the
output directory, and the scale (with the artifact names it implies).

Both `nemotron.stages` and `nemotron.backends` import this module; it imports neither, so a backend never
reaches into the stage recipes that call it. Only light imports at module level (Pydantic, OmegaConf).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ValidationError

from nemotron.errors import NemotronError

if TYPE_CHECKING:
    from nemotron.artifacts import Artifact
    from nemotron.data.sources import ScaleConfig

P = TypeVar("P", bound=BaseModel)
A = TypeVar("A", bound="Artifact")


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


def load_input(cfg: DictConfig, reference: str, expected: type[A]) -> A:
    """A pinned input artifact, checked to be an `expected` (SFT given pretraining data fails here)."""
    from nemotron.tracking.session import ArtifactSettings, Tracking, active_tracking

    tracking = active_tracking() or Tracking(ArtifactSettings.from_config(cfg.get("artifacts"), cfg.get("wandb")))
    return tracking.load(reference, expected)  # type: ignore[return-value]


def output_dir(
    explicit: str | None,
    fresh: tuple[str, ...] = (),
    *,
    hint: str = "",
    create: bool = False,
    resume_if_requeued: bool = False,
) -> Path:
    """Where a stage writes: `stage.output_dir`, else the job's own output dir.

    Its `fresh` entries must not exist yet: every run writes fresh, so the data behind a committed version is
    never rewritten. With `resume_if_requeued`, a job Slurm requeued skips that check: it resumes from what its
    first attempt saved there (the GPU backends' checkpoints). `create` makes the directory.
    """
    if explicit:
        out = Path(explicit).expanduser().absolute()
    else:
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir).absolute()
    requeued = resume_if_requeued and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    for sub in () if requeued else fresh:
        if (out / sub).exists():
            raise NemotronError(
                f"{out / sub} already exists: every run writes a fresh output directory (committed data is "
                f"immutable). Choose another stage.output_dir{hint}."
            )
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def scale_config(cfg: DictConfig) -> ScaleConfig:
    """The job's `scale:` (conf/scale/*.yaml), validated."""
    from nemotron.data.sources import ScaleConfig

    return ScaleConfig.model_validate(OmegaConf.to_container(cfg.scale, resolve=True))


def artifact_name(cfg: DictConfig, base: str) -> str:
    """`base` with the job's scale suffix (`pretrain-model` -> `pretrain-model-tiny`)."""
    return scale_config(cfg).artifact_name(base)
