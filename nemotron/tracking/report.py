"""What a person sees (panels on stderr) and what a pipe gets (one JSON line per artifact on stdout)."""

from __future__ import annotations

import sys
from typing import Any

from nemotron.artifacts.base import Artifact
from nemotron.store.records import Manifest


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _grid():
    """Two columns, key and value; a long value (a path, a URI) wraps in a narrow terminal, it is never cut."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    return table


def print_submission(config: Any, mode: str) -> None:
    """Before the job: where the config came from, which stores are active, launcher and mode."""
    from rich.panel import Panel

    hydra = config.hydra
    table = _grid()
    choices = {k: v for k, v in hydra.runtime.choices.items() if not k.startswith("hydra/")}
    table.add_row("config", ", ".join(f"{k}={v}" for k, v in choices.items()))
    sources = [s.path for s in hydra.runtime.config_sources if s.provider not in ("hydra", "schema")]
    table.add_row("config dirs", ", ".join(sources))
    manifest = (config.get("artifacts") or {}).get("manifest") or {}
    stores = []
    if manifest.get("root"):
        stores.append(f"manifest: {manifest['root']}")
    if (config.get("artifacts") or {}).get("wandb"):
        stores.append("wandb")
    table.add_row("artifacts", ", ".join(stores) or "none (nothing is recorded)")
    table.add_row("launcher", f"{choices.get('launcher', '?')} ({hydra.launcher._target_.rsplit('.', 1)[-1]})")
    table.add_row("mode", mode)
    from nemotron.secrets import redact_override
    from nemotron.tracking.runinfo import raw_overrides

    overrides = raw_overrides(hydra)
    if overrides:
        table.add_row("overrides", " ".join(redact_override(o) for o in overrides))
    _console().print(Panel(table, title=f"nemotron: stage {choices.get('stage', '?')}", expand=False))


def print_completion(
    artifact: Artifact, manifest: Manifest | None, store_url: str | None, wandb: dict[str, Any] | None = None
) -> None:
    from rich.panel import Panel

    table = _grid()
    table.add_row("uri", manifest.uri if manifest else "(not tracked: artifacts=none)")
    table.add_row("type", artifact.type)
    table.add_row("path", artifact.path)
    if manifest and store_url:
        table.add_row("manifest", f"{store_url.rstrip('/')}/{manifest.name}/v{manifest.version}/manifest.json")
        if manifest.used_artifacts:
            table.add_row("inputs", ", ".join(manifest.used_artifacts))
    if wandb:
        table.add_row("wandb", _wandb_line(wandb))
    for key, value in _metrics(artifact).items():
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    title = f"[green]committed {artifact.name or ''}" if manifest else f"produced {artifact.name or ''} (not tracked)"
    _console().print(Panel(table, title=title, expand=False))


def _wandb_line(record: dict[str, Any]) -> str:
    status = record.get("status")
    if status == "logged":
        return f"{record.get('qualified_name')}  {record.get('run_url') or ''}".rstrip()
    if status == "offline":
        return f"offline; upload later with: {record.get('sync')}"
    return f"{status} (the manifest record is unaffected)"


def print_error(message: str) -> None:
    from rich.panel import Panel

    _console().print(Panel(message, title="[red]nemotron: error", expand=False), soft_wrap=False)  # wrap, not crop


def emit_json_line(artifact: Artifact) -> None:
    """One JSON line on stdout when stdout is a pipe, so the next stage can read it with `run.X=-`."""
    if not sys.stdout.isatty():
        sys.stdout.write(artifact.to_json_line() + "\n")
        sys.stdout.flush()


def _metrics(artifact: Artifact) -> dict[str, int | float]:
    fields = artifact.model_dump(exclude=set(Artifact.model_fields))
    numbers = {k: v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    numbers.update({k: v for k, v in artifact.metadata.items() if isinstance(v, (int, float))})
    return numbers
