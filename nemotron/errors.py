"""The project's error types, and the one rule that turns an exception into what a user sees.

Every error a user can cause (a bad reference, a missing root, an invalid field) is a `NemotronError` whose
message is one readable paragraph. The command-line entry points print that paragraph and exit non-zero
instead of showing a traceback (`user_error` finds the NemotronError behind an exception, `job_error` makes
it Hydra's compact, traceback-free error).
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


def user_error(exc: BaseException | None) -> NemotronError | None:
    """The NemotronError behind `exc` (OmegaConf wraps errors raised inside resolvers), if any."""
    while exc is not None:
        if isinstance(exc, NemotronError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def job_error(message: str) -> Exception:
    """A NemotronError's message as Hydra reports it: the paragraph alone, no traceback.

    Hydra is imported here, not at module level, so that importing the error types stays cheap."""
    from hydra.errors import CompactHydraException

    return CompactHydraException(message)
