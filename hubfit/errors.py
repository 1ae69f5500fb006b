"""Every exception hubfit raises.

Each error carries the process exit code the CLI uses and a one-line message (``str(error)``) that tells the
user what went wrong and, where possible, what to do. Callers catch at the level they care about:
``RepoNotFoundError`` also catches ``PrivateRepoError``; ``HubfitError`` catches everything.

Exit codes (documented in the README):

====  =======================================================
 1    unexpected internal error (a bug: please report it)
 2    usage error (bad flag, unknown GPU, bad size)
 3    repository not found, or private without access
 4    gated repository without access
 5    revision not found
 6    no safetensors weights
 7    malformed or hostile safetensors header, LFS pointer
 8    network failure or rate limiting after retries
 9    publishing failed
10    conflict: the repository changed while hubfit wrote
11    discussions are disabled on the repository
12    config.json holds a value no model can have, or contradicts the checkpoint's tensors
13    the scan cache cannot be used: corrupted, locked, read-only or on a full disk
====  =======================================================
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ConfigError",
    "ConfigMismatchError",
    "ConflictError",
    "DiscussionsDisabledError",
    "GatedRepoError",
    "HeaderError",
    "HubfitError",
    "LfsPointerError",
    "NetworkError",
    "NoWeightsError",
    "PrivateRepoError",
    "PublishError",
    "RateLimitedError",
    "RepoNotFoundError",
    "RevisionNotFoundError",
    "UnknownGPUError",
    "UsageError",
]


class HubfitError(Exception):
    """Base class: a failure hubfit can explain in one line."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        # One line, always: the CLI prints it after "hubfit: error: ".
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(HubfitError):
    """A flag or argument the user gave is invalid."""

    exit_code = 2


class UnknownGPUError(UsageError):
    """A GPU name matched nothing in the catalog."""


class RepoNotFoundError(HubfitError):
    """The repository does not exist, or it is private and the token cannot read it."""

    exit_code = 3


class PrivateRepoError(RepoNotFoundError):
    """The repository is private and no token with access was given."""


class GatedRepoError(HubfitError):
    """The repository is gated and the token has not been granted access."""

    exit_code = 4


class RevisionNotFoundError(HubfitError):
    """The branch, tag or commit does not exist in the repository."""

    exit_code = 5


class NoWeightsError(HubfitError):
    """The repository (or directory) holds no safetensors weights."""

    exit_code = 6


class HeaderError(HubfitError):
    """A safetensors header is malformed or hostile."""

    exit_code = 7


class LfsPointerError(HeaderError):
    """A weight file is a Git LFS pointer, not the file itself."""


class NetworkError(HubfitError):
    """The Hub could not be reached, or kept failing, after bounded retries."""

    exit_code = 8


class RateLimitedError(NetworkError):
    """The Hub kept answering 429 Too Many Requests after bounded retries."""


class PublishError(HubfitError):
    """Writing a model card, comment or pull request failed; nothing was left half-written."""

    exit_code = 9


class ConflictError(PublishError):
    """The repository changed between hubfit's read and its write; nothing was written."""

    exit_code = 10


class DiscussionsDisabledError(PublishError):
    """The repository's owner has disabled discussions and pull requests."""

    exit_code = 11


class ConfigError(HubfitError):
    """``config.json`` holds a value no model can have (a type, a range or a relation between fields broken).

    The message names the file, the field, the value and the rule; nothing is sized from such a config.
    """

    exit_code = 12


class ConfigMismatchError(ConfigError):
    """The checkpoint's tensors contradict ``config.json`` (a projection width, the vocabulary rows, the
    experts): the model cannot load as configured. The message names the tensor and the field."""


class CacheError(HubfitError):
    """The scan's SQLite cache cannot be read or written (corrupted, locked, read-only, disk full).

    Results committed before the failure are kept; the same command resumes once the cause is fixed.
    """

    exit_code = 13
