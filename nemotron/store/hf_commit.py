"""Create-only-if-absent on the Hugging Face Hub, for `hf://` store roots: a commit with `parent_commit`.

The Hub has no create-only put, but a commit can name the commit it builds on: `HfApi.create_commit(...,
parent_commit=sha)` is refused with HTTP 412 ("A commit has happened since") when the branch has moved. So a
conditional create is:

    head = the branch's current commit
    the file exists at head?          -> FileExistsError (another writer took this version)
    commit the file on top of head    -> done
    412: the branch moved meanwhile   -> start again from the new head

Any commit to the branch moves it (another writer's `latest`, an alias), so a 412 does not mean the file was
taken: only the re-check at the new head says so. Dataset, model and space repositories have commits; storage
buckets (`hf://buckets/...`) do not, and stay refused for concurrent writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron.errors import CommitError

MAX_ATTEMPTS = 50
_PRECONDITION_FAILED = 412


@dataclass(frozen=True)
class HubLocation:
    """A file in a Hub repository, at the head of a branch."""

    repo_id: str
    repo_type: str
    revision: str
    path_in_repo: str


class HubConditionalCreate:
    """Conditional creates through an `HfApi`-like object (`repo_info`, `file_exists`, `create_commit`).

    `api` is the seam: the store passes a real `HfApi`, tests a fake that records what it is asked.
    """

    def __init__(self, api: Any, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.api = api
        self.max_attempts = max_attempts

    def create(self, where: HubLocation, data: bytes) -> str:
        """Create the file with `data` only if it does not exist; returns the new commit's id.

        Raises FileExistsError if it exists (before or after another writer's commit), CommitError if the
        branch keeps moving for `max_attempts` tries.
        """
        for _ in range(self.max_attempts):
            head = self._head(where)
            if self.api.file_exists(where.repo_id, where.path_in_repo, repo_type=where.repo_type, revision=head):
                raise FileExistsError(f"{where.repo_id}/{where.path_in_repo}")
            try:
                return self._commit(where, data, head)
            except Exception as exc:
                if not _branch_moved(exc):
                    raise
        raise CommitError(
            f"{where.repo_id}@{where.revision} kept moving while committing {where.path_in_repo} "
            f"({self.max_attempts} attempts): too many concurrent writers on one branch."
        )

    def _head(self, where: HubLocation) -> str:
        return self.api.repo_info(where.repo_id, repo_type=where.repo_type, revision=where.revision).sha

    def _commit(self, where: HubLocation, data: bytes, head: str) -> str:
        from huggingface_hub import CommitOperationAdd

        info = self.api.create_commit(
            where.repo_id,
            operations=[CommitOperationAdd(path_in_repo=where.path_in_repo, path_or_fileobj=data)],
            commit_message=f"nemotron: create {where.path_in_repo}",
            repo_type=where.repo_type,
            revision=where.revision,
            parent_commit=head,
        )
        return getattr(info, "oid", "") or ""


def _branch_moved(exc: BaseException) -> bool:
    """The Hub's answer to a `parent_commit` that is no longer the branch head: HTTP 412."""
    from huggingface_hub.errors import HfHubHTTPError

    response = getattr(exc, "response", None)
    return isinstance(exc, HfHubHTTPError) and getattr(response, "status_code", None) == _PRECONDITION_FAILED


def hub_creator(fs: Any, root: str) -> HubConditionalCreate | None:
    """The conditional create for an `hf://` filesystem rooted at `root`, or None where the Hub cannot
    (storage buckets have no commits)."""
    if root.lstrip("/").startswith("buckets/"):
        return None
    from huggingface_hub import HfApi

    return HubConditionalCreate(HfApi(endpoint=fs.endpoint, token=fs.token))


def hub_location(fs: Any, path: str) -> HubLocation:
    """Where an `hf://` path lives: repository, type, branch and path inside it (the filesystem's parser)."""
    resolved = fs.resolve_path(path)
    return HubLocation(resolved.repo_id, resolved.repo_type, resolved.revision, resolved.path_in_repo)
