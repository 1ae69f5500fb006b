"""Hub reads and writes for publishing, on top of :class:`hubfit.source.hub.HubClient`.

Reads reuse ``HubClient``'s bounded retries and error translation. Writes need more care, because a write
that timed out or got a 5xx may still have landed; sending it again could open a second pull request or post
a second comment. :meth:`Publisher.write` therefore goes through the same retry layer (:mod:`hubfit._http`)
with one addition:

* a 429 is retried after ``Retry-After`` (the Hub rejected the request, nothing was written);
* after a 5xx or a dropped connection, it first asks ``landed()`` (a read) whether the write is already there,
  returns that when it is, and only otherwise sends the write again;
* maps the Hub's answers to hubfit errors: 412/409 (the branch moved since it was read) ->
  :class:`~hubfit.errors.ConflictError`; 403 on a repo whose discussions are disabled ->
  :class:`~hubfit.errors.DiscussionsDisabledError`; other 401/403 -> :class:`~hubfit.errors.PublishError`
  saying which permission is missing.

Every publish is one Hub write (one commit of one file, one comment, one new discussion), so a failure leaves
nothing half-done. Error messages are built from the status and the server's message only: never from request
headers, so the token cannot leak into them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hubfit._http import Backoff, RetriesExhausted, Transient, classify, server_key
from hubfit.errors import (
    ConflictError,
    DiscussionsDisabledError,
    HubfitError,
    NetworkError,
    PublishError,
    RateLimitedError,
    UsageError,
)

if TYPE_CHECKING:  # pragma: no cover
    from hubfit.source.hub import HubClient

__all__ = ["Publisher"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _server_message(exc: BaseException) -> str:
    message = getattr(exc, "server_message", None) or ""
    return " ".join(str(message).split())[:300]


class Publisher:
    """One publishing session on the Hub: a ``HubClient`` plus the identity of the token.

    Args:
        client: the :class:`hubfit.source.hub.HubClient` (its ``api`` is an ``HfApi`` with the token).
        sleep: injectable for tests of the retry policy; writes then wait through a :class:`~hubfit._http.Backoff`
            of their own. Default: the client's.
    """

    def __init__(self, client: HubClient, *, sleep: Callable[[float], None] | None = None) -> None:
        self.client = client
        self.api = client.api
        self.backoff = client.backoff if sleep is None else Backoff(client.backoff.policy, sleep=sleep)
        self._user: str | None = None

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    def whoami(self) -> str:
        """The user name of the token (writes need one)."""
        if self._user is None:
            from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

            def call() -> dict:
                try:
                    return self.api.whoami(cache=True)
                except LocalTokenNotFoundError:
                    raise UsageError(
                        "publishing needs a Hub token with write access: pass --token, set HF_TOKEN or run "
                        "`hf auth login`"
                    ) from None
                except HfHubHTTPError as exc:
                    if _status(exc) == 401:
                        raise PublishError(
                            "the Hub rejected the token (invalid or expired); pass a valid --token"
                        ) from None
                    raise

            self._user = str(self.read("check the Hub token", call, repo_id="")["name"])
        return self._user

    def head(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha ``revision`` points to now."""
        return self.client.snapshot(repo_id, revision).sha

    def read_file(self, repo_id: str, path: str, sha: str) -> bytes | None:
        """A small file's bytes at ``sha`` (through the huggingface_hub cache), or None when it does not exist."""
        return self.client.read_file(repo_id, path, sha, what=f"read {path} of {repo_id}", missing_ok=True)

    def read(self, what: str, fn: Callable[[], T], *, repo_id: str, revision: str | None = None) -> T:
        """Run a read with ``HubClient``'s retries and error translation (discussions disabled included)."""
        from huggingface_hub.errors import HfHubHTTPError

        def guarded() -> T:
            try:
                return fn()
            except HfHubHTTPError as exc:
                disabled = self._disabled(exc, repo_id)
                if disabled is not None:
                    raise disabled from None
                raise

        return self.client.call(what, guarded, repo_id=repo_id, revision=revision)

    def write(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        repo_id: str,
        landed: Callable[[], T | None] | None = None,
        conflict_hint: str = "",
    ) -> T:
        """Run a write once, retrying only where that cannot duplicate it (see the module docstring)."""
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import httpx

        def attempt() -> T:
            try:
                return fn()
            except ValueError as exc:
                # huggingface_hub validates README.md's YAML with the Hub before committing.
                if "metadata" in str(exc):
                    detail = " ".join(str(exc).split())
                    raise PublishError(
                        f"the Hub rejected README.md's YAML front matter ({detail}); hubfit never edits metadata: "
                        "fix the front matter first"
                    ) from None
                raise

        def already_landed(failure: Transient) -> T | None:
            if landed is None or failure.status == 429:  # a 429 was refused: nothing can have landed
                return None
            done = landed()
            if done is not None:
                logger.info("%s: the earlier attempt had landed", what)
            return done

        try:
            return self.backoff.call(
                attempt,
                classify=lambda exc: classify(exc, transport=(httpx.TimeoutException, httpx.TransportError)),
                key=server_key(self.endpoint),
                what=what,
                before_retry=already_landed,
            )
        except RetriesExhausted as exc:
            done = already_landed(exc.last)
            if done is not None:
                return done
            cls = RateLimitedError if exc.last.status == 429 else NetworkError
            raise cls(
                f"cannot {what}: {exc.last.reason} after {exc.attempts} attempts; nothing was changed, "
                "run hubfit again later"
            ) from None
        except HfHubHTTPError as exc:
            raise self._translate(exc, what, repo_id, conflict_hint) from None

    def _disabled(self, exc: BaseException, repo_id: str) -> DiscussionsDisabledError | None:
        message = _server_message(exc).lower()
        if _status(exc) == 403 and "disabled" in message and "discussion" in message:
            return DiscussionsDisabledError(
                f"discussions and pull requests are disabled on {repo_id} (its owner turned off the Community "
                "tab): hubfit cannot comment or open a pull request there; with write access, "
                "`hubfit card --commit` still works"
            )
        return None

    def _translate(self, exc: BaseException, what: str, repo_id: str, conflict_hint: str) -> HubfitError:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        status = _status(exc)
        message = _server_message(exc)
        disabled = self._disabled(exc, repo_id)
        if disabled is not None:
            return disabled
        if status in (409, 412):
            return ConflictError(
                f"{repo_id} changed while hubfit was preparing to {what} ({message or f'HTTP {status}'}); "
                f"nothing was written{conflict_hint}. Run the command again to build on the new state"
            )
        if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError):
            return self.client.translate(exc, repo_id=repo_id, revision=None, what=what)
        if status == 401:
            return PublishError(
                f"the Hub rejected the token when trying to {what} (401); pass a valid --token"
            )
        if status == 403:
            return PublishError(
                f"the token may not {what} ({message or '403 Forbidden'}): use a token with write access to "
                f"{repo_id}, or open a pull request instead of committing directly"
            )
        return PublishError(f"cannot {what}: the Hub answered HTTP {status} {message}".rstrip())
