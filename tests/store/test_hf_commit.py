"""Conditional create on the Hugging Face Hub (`hf://` roots): a commit with `parent_commit`, against a fake
`HfApi` given to `HubConditionalCreate` (the seam). The fake keeps a branch of commits and answers like the
Hub: HTTP 412 when `parent_commit` is no longer the head."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("huggingface_hub", reason="hf:// roots need the hf extra: pip install -e '.[hf]'")

from huggingface_hub.errors import HfHubHTTPError

from nemotron.errors import CommitError
from nemotron.store.hf_commit import HubConditionalCreate, HubLocation, hub_creator
from nemotron.store.manifest_store import ManifestStore

pytestmark = pytest.mark.unit

WHERE = HubLocation("team/artifacts", "dataset", "main", "store/model/v3/manifest.json")


def _http_error(status: int, message: str) -> HfHubHTTPError:
    return HfHubHTTPError(message, response=SimpleNamespace(status_code=status, headers={}, request=None))


class FakeHub:
    """One branch (`main`) of one repository: commits are snapshots of {path: bytes}."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.snapshots: dict[str, dict[str, bytes]] = {"c0": dict(files or {})}
        self.head = "c0"
        self.commits: list[dict[str, Any]] = []  # every create_commit call, accepted or not
        self.before_commit: list[Callable[[], None]] = []  # other writers, one per call

    def repo_info(self, repo_id: str, *, repo_type: str, revision: str) -> Any:
        assert (repo_id, repo_type, revision) == ("team/artifacts", "dataset", "main")
        return SimpleNamespace(sha=self.head)

    def file_exists(self, repo_id: str, filename: str, *, repo_type: str, revision: str) -> bool:
        return filename in self.snapshots[revision]

    def create_commit(self, repo_id: str, *, operations: list, parent_commit: str, **kwargs: Any) -> Any:
        self.commits.append({"parent_commit": parent_commit, "paths": [op.path_in_repo for op in operations], **kwargs})
        if self.before_commit:
            self.before_commit.pop(0)()
        if parent_commit != self.head:
            raise _http_error(412, "412 Client Error: A commit has happened since. Please refresh and try again.")
        return self.push({op.path_in_repo: op.path_or_fileobj for op in operations})

    def push(self, files: dict[str, bytes]) -> Any:
        sha = f"c{len(self.snapshots)}"
        self.snapshots[sha] = {**self.snapshots[self.head], **files}
        self.head = sha
        return SimpleNamespace(oid=sha)

    @property
    def files(self) -> dict[str, bytes]:
        return self.snapshots[self.head]


def test_creates_the_file_on_top_of_the_head_it_checked():
    hub = FakeHub()
    assert HubConditionalCreate(hub).create(WHERE, b'{"v": 3}') == "c1"
    assert hub.files == {WHERE.path_in_repo: b'{"v": 3}'}
    [commit] = hub.commits
    assert commit["parent_commit"] == "c0" and commit["paths"] == [WHERE.path_in_repo]
    assert commit["repo_type"] == "dataset" and commit["revision"] == "main"


def test_an_existing_file_is_file_exists_and_nothing_is_committed():
    hub = FakeHub({WHERE.path_in_repo: b"first"})
    with pytest.raises(FileExistsError):
        HubConditionalCreate(hub).create(WHERE, b"second")
    assert hub.commits == [] and hub.files[WHERE.path_in_repo] == b"first"


def test_another_commit_in_between_means_start_again_from_the_new_head():
    hub = FakeHub()
    hub.before_commit.append(lambda: hub.push({"store/model/latest": b"v2"}))  # someone moved `latest`
    HubConditionalCreate(hub).create(WHERE, b"mine")
    assert [c["parent_commit"] for c in hub.commits] == ["c0", "c1"]  # refused on c0, accepted on c1
    assert hub.files == {"store/model/latest": b"v2", WHERE.path_in_repo: b"mine"}


def test_another_writer_creating_the_same_file_in_between_is_file_exists():
    hub = FakeHub()
    hub.before_commit.append(lambda: hub.push({WHERE.path_in_repo: b"theirs"}))
    with pytest.raises(FileExistsError):
        HubConditionalCreate(hub).create(WHERE, b"mine")
    assert hub.files[WHERE.path_in_repo] == b"theirs"  # never overwritten
    assert len(hub.commits) == 1


def test_a_branch_that_never_settles_is_a_commit_error():
    hub = FakeHub()
    hub.before_commit.extend(lambda i=i: hub.push({f"other/{i}": b"x"}) for i in range(3))
    with pytest.raises(CommitError, match="kept moving.*3 attempts"):
        HubConditionalCreate(hub, max_attempts=3).create(WHERE, b"mine")
    assert WHERE.path_in_repo not in hub.files


def test_other_hub_errors_are_not_retried():
    hub = FakeHub()

    def refuse() -> None:
        raise _http_error(403, "403 Forbidden: no write access to team/artifacts")

    hub.before_commit.append(refuse)
    with pytest.raises(HfHubHTTPError, match="403"):
        HubConditionalCreate(hub).create(WHERE, b"mine")
    assert len(hub.commits) == 1


def test_hub_repositories_are_writable_roots_and_buckets_are_not(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # deciding needs no request
    repo = ManifestStore("hf://datasets/team/artifacts/store")
    assert repo.can_create_conditionally
    bucket = ManifestStore("hf://buckets/team/scratch/store")
    assert not bucket.can_create_conditionally
    assert isinstance(hub_creator(repo.fs, repo.root), HubConditionalCreate)
    assert hub_creator(bucket.fs, bucket.root) is None
