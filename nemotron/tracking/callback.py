"""The Hydra callback that gives every job its lineage.

    job start (rank 0): set up the stores, resolve every ${art:} once (pinning `latest` and aliases to an
                        exact name:vN), write lineage.json and config.resolved.yaml, redact Hydra's copies
    job end   (rank 0): commit each returned artifact to every store with its run record and inputs,
                        then show it (panel on stderr, JSON line on stdout)

Hydra turns exceptions raised in callbacks into warnings, so failures are handled explicitly: a setup
failure makes the job's first use of tracking raise (the task stops before doing any work), and a failed
commit marks the job FAILED, so the command exits non-zero with the message.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from nemotron.artifacts.base import Artifact
from nemotron.distributed import is_rank0
from nemotron.errors import NemotronError, job_error, user_error
from nemotron.secrets import REDACTED, is_secret_name, redact, redact_override
from nemotron.tracking import report
from nemotron.tracking.runinfo import build_run_record, command_line, raw_overrides
from nemotron.tracking.session import ArtifactSettings, Tracking, fail_tracking

LINEAGE_FILE = "lineage.json"
RESOLVED_CONFIG_FILE = "config.resolved.yaml"
_LOG = logging.getLogger("nemotron")


class ArtifactCallback(Callback):
    """Pins inputs at job start and commits outputs at job end. Holds no clients: it is pickled to nodes."""

    def __init__(self) -> None:
        self._tokens: list[Any] = []
        # Instantiated on the submitting host and pickled to the job: under submitit, the job's own
        # sys.argv is submitit's, so the run record takes the command line from here.
        self._command = command_line()

    # -- host side ------------------------------------------------------------------------------------

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _show_submission(config, mode="run (in this process)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _show_submission(config, mode="multirun (one job per sweep point)")

    # -- job side -------------------------------------------------------------------------------------

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank0():
            return
        output_dir = Path(config.hydra.runtime.output_dir)
        secrets = _secret_values(config)
        _redact_hydra_files(output_dir / str(config.hydra.output_subdir or ".hydra"), secrets)
        if config.hydra.mode == RunMode.MULTIRUN:  # the sweep's multirun.yaml, written by the host
            _redact_hydra_files(output_dir.parent, secrets, names=("multirun.yaml",))
        # A failure here is recorded, and raised by the task's first use of tracking, before any work.
        try:
            tracking = Tracking(ArtifactSettings.from_config(config.get("artifacts"), config.get("wandb")))
        except Exception as exc:  # OmegaConf wraps what a resolver raises (a bad env.toml)
            error = user_error(exc)
            if error is None:
                raise
            self._tokens.append(fail_tracking(error))
            return
        token = tracking.start()
        try:
            resolved = _resolve_task_config(config)
            if tracking.store is not None:
                tracking.store.check_writable()  # a read-only root fails now, not after the stage ran
        except Exception as exc:
            Tracking.stop(token)
            error = user_error(exc) or NemotronError(f"The job config cannot be resolved: {exc}")
            self._tokens.append(fail_tracking(error))
            return
        self._tokens.append(token)
        (output_dir / RESOLVED_CONFIG_FILE).write_text(OmegaConf.to_yaml(redact(resolved)))
        _write_lineage(output_dir, tracking, outputs=[])

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not self._tokens:
            return
        try:
            if job_return.status == JobStatus.COMPLETED:
                self._commit_outputs(config, job_return)
        finally:
            Tracking.stop(self._tokens.pop())

    def _commit_outputs(self, config: DictConfig, job_return: JobReturn) -> None:
        from nemotron.tracking.session import active_tracking

        output_dir = Path(config.hydra.runtime.output_dir)
        committed: list[tuple[Artifact, Any]] = []
        outputs: list[tuple[str | None, Artifact]] = []
        try:
            tracking = active_tracking()
            outputs = _outputs_of(job_return._return_value)
            run = build_run_record(
                config=_load_resolved(output_dir),
                overrides=raw_overrides(config.hydra),
                output_dir=str(output_dir),
                hydra_job_id=_optional_str(config.hydra.job.get("id")),
                hydra_job_name=config.hydra.job.name,
                command=self._command,
            )
            alias = OmegaConf.select(config, "artifacts.alias", default=None)  # stage=pipeline's run alias
            for name, artifact in outputs:
                if artifact.producer is None:
                    artifact.producer = run.slurm_job_id or output_dir.name
                manifest = tracking.commit(artifact, name=name, run=run) if tracking.store else None
                if manifest is None and name:
                    artifact.name = name
                committed.append((artifact, manifest))
                if manifest is not None and alias:
                    tracking.store.set_alias(manifest.ref, str(alias), note="the pipeline run's step committed it")
                _redact_returned(artifact)  # what the job returns is pickled (submitit) and printed as is
        except (NemotronError, OSError) as exc:  # OSError: a full disk, a permission, outside the store's own
            message = _commit_failure(exc, committed, outputs)
            report.print_error(message)
            job_return.status = JobStatus.FAILED
            job_return._return_value = job_error(message)
            return
        try:
            _write_lineage(output_dir, tracking, outputs=[m.ref for _, m in committed if m])
        except OSError as exc:  # the versions are committed: a lineage.json that cannot be written is a warning
            _LOG.warning("Could not write %s: %s.", output_dir / LINEAGE_FILE, exc.strerror or exc)
        # The manifests are committed: W&B mirrors them now, and only warns if it fails.
        stage = config.hydra.runtime.choices.get("stage")
        mirrored = tracking.mirror(committed, run=run, job_type=stage, run_dir=str(output_dir))
        for (artifact, manifest), wandb in zip(committed, mirrored or [None] * len(committed), strict=True):
            report.print_completion(artifact, manifest, tracking.store.url if tracking.store else None, wandb)
            report.emit_json_line(artifact)


def _commit_failure(
    exc: BaseException, committed: list[tuple[Artifact, Any]], outputs: list[tuple[str | None, Artifact]]
) -> str:
    """What happened, exactly: the versions that were committed (they stay) and the outputs that were not."""
    reason = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, NemotronError):
        where = f" ({exc.filename})" if exc.filename else ""
        reason = f"{exc.strerror or exc}{where}"
    done = [manifest.ref for _, manifest in committed if manifest is not None]
    if not done:
        return f"Nothing was committed: {reason}"
    left = [name or artifact.name or artifact.type for name, artifact in outputs[len(committed) :]]
    missing = f"; not committed: {', '.join(left)}" if left else ""
    return f"Committed {', '.join(done)} (committed versions stay){missing}. The commit failed: {reason}"


def _show_submission(config: DictConfig, mode: str) -> None:
    """The submission panel; a config that cannot be shown (a bad env.toml) fails in the job, with a clear
    message, instead of as a warning from Hydra's callback machinery here."""
    try:
        report.print_submission(config, mode=mode)
    except Exception as exc:
        if user_error(exc) is None:
            raise


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _resolve_task_config(config: DictConfig) -> dict[str, Any]:
    """Resolve every interpolation of the job's own config (not `hydra:`), pinning each ${art:}."""
    task_config = copy.deepcopy(config)
    with open_dict(task_config):
        task_config.pop("hydra", None)
    return OmegaConf.to_container(task_config, resolve=True)


def _outputs_of(value: Any) -> list[tuple[str | None, Artifact]]:
    if value is None:
        return []
    if isinstance(value, Artifact):
        return [(value.name, value)]
    if isinstance(value, dict) and all(isinstance(v, Artifact) for v in value.values()):
        return [(artifact.name or key, artifact) for key, artifact in value.items()]
    raise NemotronError(
        f"A stage must return an Artifact, a dict of Artifacts or None; it returned {type(value).__name__}."
    )


def _write_lineage(output_dir: Path, tracking: Tracking, outputs: list[str]) -> None:
    lineage = redact({"inputs": tracking.pinned(), "used_artifacts": tracking.used_artifacts, "outputs": outputs})
    (output_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n")


def _redact_returned(artifact: Artifact) -> None:
    """Redact the artifact the stage returned, in place, as its committed copy is: submitit pickles the job's
    return value into its folder, and the JSON line on stdout is printed from it."""
    fields = artifact.model_dump()
    clean = redact(fields)
    for key, value in fields.items():
        if isinstance(value, (str, dict, list)) and clean[key] != value:
            setattr(artifact, key, clean[key])


def _load_resolved(output_dir: Path) -> dict[str, Any]:
    path = output_dir / RESOLVED_CONFIG_FILE
    return OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else {}


def _secret_values(config: DictConfig) -> set[str]:
    """Values given on the command line for secret-named keys (`+wandb.api_key=...`)."""
    overrides = [*raw_overrides(config.hydra), *raw_overrides(config.hydra, "hydra")]
    values = set()
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if sep and is_secret_name(key) and len(value.strip("'\"")) >= 4:  # shorter ones would hit unrelated text
            values.add(value)
            values.add(value.strip("'\""))
    return values


def _redact_hydra_files(
    hydra_dir: Path,
    secrets: set[str] = frozenset(),
    names: tuple[str, ...] = ("config.yaml", "hydra.yaml", "overrides.yaml"),
) -> None:
    """Hydra saves the job config and overrides as given; remove secrets from those copies.

    Secret-named keys and `key=value` items are redacted by name; the values of secret-named overrides are
    also removed from any other string (Hydra joins the overrides into `hydra.job.override_dirname`).
    """
    import yaml

    for path in (hydra_dir / name for name in names):
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text())
        if isinstance(data, list):
            clean = [redact_override(item) if isinstance(item, str) else item for item in data]
        else:
            clean = redact(_redact_override_lists(data))
        clean = _scrub_values(clean, secrets)
        if clean != data:
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(yaml.safe_dump(clean, sort_keys=False))
            os.replace(tmp, path)  # concurrent jobs of a sweep may rewrite multirun.yaml together


def _scrub_values(node: Any, secrets: set[str]) -> Any:
    if not secrets:
        return node
    if isinstance(node, dict):
        return {k: _scrub_values(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub_values(v, secrets) for v in node]
    if isinstance(node, str):
        for secret in sorted(secrets, key=len, reverse=True):
            node = node.replace(secret, REDACTED)
    return node


def _redact_override_lists(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _redact_override_lists(v) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_override(v) if isinstance(v, str) else _redact_override_lists(v) for v in node]
    return node
