"""`stage=pipeline`: the whole tiny pipeline. Its steps are stages of their own; this version checks that
every step is available and stops with a clear message if one is not yet shipped."""

from __future__ import annotations

from omegaconf import DictConfig

from nemotron.errors import NemotronError


def run(cfg: DictConfig) -> None:
    from hydra.core.global_hydra import GlobalHydra

    repo = GlobalHydra.instance().config_loader().get_sources() if GlobalHydra.instance().is_initialized() else []
    available = {opt for source in repo if source.is_group("stage") for opt in _options(source)}
    missing = [step for step in cfg.stage.steps if step not in available]
    if missing:
        raise NemotronError(
            f"The pipeline needs the stages {', '.join(missing)}, which this version of nemotron does not "
            f"ship yet (available: {', '.join(sorted(available))}). Run a single stage with stage=NAME."
        )
    raise NemotronError("Chaining the pipeline's steps is not implemented yet; run each stage with stage=NAME.")


def _options(source) -> list[str]:
    return [name.removesuffix(".yaml") for name in source.list("stage", results_filter=None)]
