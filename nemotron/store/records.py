"""What the manifest store persists: one `Manifest` per committed version, with its run record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FileEntry(BaseModel):
    """One file under an artifact's path: relative path, size and content digest (`xxh3_128:<hex>`)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    size: int = Field(ge=0)
    digest: str | None = None


class GitInfo(BaseModel):
    commit: str
    dirty: bool
    repo: str


class RunRecord(BaseModel):
    """How an artifact was produced: enough to rerun the job or to tell two runs apart."""

    model_config = ConfigDict(extra="allow")

    command: list[str] = Field(default_factory=list)
    overrides: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict, description="Resolved job config, secrets redacted.")
    git: GitInfo | None = None
    host: str | None = None
    user: str | None = None
    cwd: str | None = None
    output_dir: str | None = None
    hydra_job_id: str | None = None
    hydra_job_name: str | None = None
    slurm_job_id: str | None = None
    python: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)


class Manifest(BaseModel):
    """`{root}/{name}/v{N}/manifest.json`: the record whose existence *is* the version."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int = Field(ge=1)
    type: str
    path: str
    created_at: datetime
    committed_at: datetime
    producer: str | None = None
    metadata: dict[str, Any] = Field(description="The artifact's model_dump: every typed field.")
    inputs: list[dict[str, Any]] = Field(default_factory=list, description="External sources.")
    used_artifacts: list[str] = Field(default_factory=list, description="Exact `name:vN` of every input.")
    files: list[FileEntry] = Field(default_factory=list)
    run: RunRecord | None = None
    wandb: dict[str, Any] | None = None
    origin: dict[str, Any] | None = Field(
        None, description="Where an imported version came from: bundle, source store, ref, commit time."
    )
    data_owned: bool = Field(
        False, description="nemotron created the data at `path` (a bundle's copy): `gc --data` may delete it."
    )
    reproduces: str | None = Field(
        None, description="The exact `name:vN` this version reproduces (committed by `nemotron-art rerun`)."
    )

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    @property
    def uri(self) -> str:
        return f"art://{self.ref}"
