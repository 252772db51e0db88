"""The artifact API for scripts outside the Hydra entry point.

    tracking = setup_artifact_tracking(config)      # stores from config.artifacts, ${art:} registered
    data = SFTDataArtifact.from_uri("art://tiny-sft-data:latest")
    ...
    log_artifact(ModelArtifact(path=out, step=100), tracking, name="my-model")

Everything the script resolved through the tracking is recorded as an input of what it logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemotron.artifacts.base import Artifact
from nemotron.tracking.runinfo import build_run_record
from nemotron.tracking.session import ArtifactSettings, Tracking, tracking_for


def setup_artifact_tracking(config: Mapping[str, Any] | Any | None = None) -> Tracking:
    """Create the tracking described by `config.artifacts` (a dict or DictConfig) and make it active."""
    from omegaconf import DictConfig, OmegaConf

    import nemotron.tracking.resolvers  # noqa: F401  (registers ${art:})

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    node = (config or {}).get("artifacts") if config is not None else None
    settings = ArtifactSettings.from_config(node, (config or {}).get("wandb") if config is not None else None)
    if node is None or "manifest" not in node:
        from nemotron.env_toml import default_root

        settings.root = default_root()
    tracking = Tracking(settings)
    tracking.start()
    return tracking


def log_artifact(
    artifact: Artifact, tracking: Tracking | None = None, name: str | None = None, root: str | None = None
) -> Artifact:
    """Commit `artifact` with a run record of this process and the inputs `tracking` has resolved, then
    mirror it to W&B if the tracking has the mirror on (a W&B failure only warns)."""
    tracking = tracking or tracking_for(root)
    run = build_run_record(config=tracking.run_config, overrides=tracking.run_overrides)
    if tracking.store is None and tracking.wandb_target is not None:  # W&B only (artifacts=wandb)
        artifact.name = name or artifact.name
        tracking.mirror([(artifact, None)], run=run)
        return artifact
    manifest = tracking.commit(artifact, name=name, run=run)
    tracking.mirror([(artifact, manifest)], run=run)
    return artifact


def load_artifact(uri: str, root: str | None = None, expected: type[Artifact] = Artifact) -> Artifact:
    """Resolve and load a committed artifact, recording it as an input of the active tracking."""
    return tracking_for(root).load(uri, expected)
