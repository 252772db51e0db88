"""The project's error types.

Every error a user can cause (a bad reference, a missing root, an invalid field) is a `NemotronError` whose
message is one readable paragraph. The command-line entry points print that paragraph and exit non-zero
instead of showing a traceback.
"""

from __future__ import annotations


class NemotronError(Exception):
    """A problem the user can fix; the message says what happened and what to do."""


class BadReferenceError(NemotronError):
    """A malformed artifact reference or name."""


class ArtifactNotFoundError(NemotronError):
    """A well-formed reference that names no committed version."""


class StoreError(NemotronError):
    """The manifest store cannot be used (missing or read-only root, corrupt record)."""


class CommitError(NemotronError):
    """An artifact could not be committed."""
