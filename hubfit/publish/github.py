"""A small GitHub REST client: one sticky comment per pull request.

``GitHubClient(token, api_url).upsert_sticky_comment("owner/repo", 12, body, marker)`` posts ``body`` (with
the hidden ``marker`` appended) as a comment on pull request 12, or, when a comment of the same author carrying
the marker is already there, edits that comment in place (and does nothing when its body is already equal).
It follows the rules of marocchino/sticky-pull-request-comment (research/ecosystem.md §4): comments are read
page by page (100 per page, ``Link: rel="next"``), and only a comment written by the token's own identity is
ever edited, so a marker pasted by someone else cannot make hubfit overwrite a human's comment.

Transport rules:

* ``api_url`` defaults to ``$GITHUB_API_URL`` and then ``https://api.github.com`` (GitHub Enterprise Server
  sets ``GITHUB_API_URL`` to ``https://HOST/api/v3``).
* 408, 429, 5xx and rate-limit 403s (``x-ratelimit-remaining: 0`` or a ``Retry-After``) are retried a bounded
  number of times through hubfit's one retry layer (:mod:`hubfit._http`, ``hubfit.constants.RETRY_*``), waiting
  ``Retry-After`` seconds or until ``x-ratelimit-reset`` when given (capped), else exponential backoff; a
  rate-limited answer pauses every thread's GitHub requests. A POST that fails with a retryable status or a
  dropped connection may still have created the comment, so before posting again the comments are listed again
  and a comment that did land is updated instead: retries never duplicate.
* The token is sent only in the ``Authorization`` header. It never appears in an exception message, a log
  line or ``repr(client)``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubfit import constants
from hubfit._http import (
    RETRY_STATUSES,
    Backoff,
    RetriesExhausted,
    RetryPolicy,
    Transient,
    TransientError,
    server_key,
)
from hubfit.errors import NetworkError, PublishError, RateLimitedError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_MARKER",
    "GitHubClient",
    "StickyResult",
    "parse_pr_ref",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
#: Hidden marker hubfit appends to its pull request comment (an HTML comment: invisible when rendered).
DEFAULT_MARKER = "<!-- hubfit:github-comment -->"
#: GitHub rejects comment bodies over 65,536 characters ("Body is too long (maximum is 65536 characters)").
MAX_BODY_CHARS = 65_536
#: Identity assumed when the token cannot call ``GET /user``: the Actions ``GITHUB_TOKEN`` is an installation
#: token, and installation tokens get 403 "Resource not accessible by integration" there.
ACTIONS_BOT_LOGIN = "github-actions[bot]"

_PR_REF = re.compile(
    r"^(?P<repo>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100})#(?P<num>[1-9][0-9]{0,9})$"
)


def parse_pr_ref(ref: str) -> tuple[str, int]:
    """Split ``"OWNER/REPO#N"`` into ``("OWNER/REPO", N)``; :class:`~hubfit.errors.UsageError` otherwise."""
    match = _PR_REF.match(ref.strip())
    if not match:
        raise UsageError(f"--github-pr expects OWNER/REPO#NUMBER (e.g. octo-org/models#12), got {ref!r}")
    return match.group("repo"), int(match.group("num"))


@dataclass(frozen=True)
class StickyResult:
    """What :meth:`GitHubClient.upsert_sticky_comment` did.

    ``action`` is ``"created"``, ``"updated"`` or ``"unchanged"``; ``url`` is the comment's ``html_url``;
    ``comment_id`` its REST id.
    """

    action: str
    url: str
    comment_id: int


class GitHubClient:
    """Minimal GitHub REST client for sticky pull-request comments.

    Args:
        token: a token with ``pull-requests: write`` (``issues: write`` also works); defaults to
            ``$GITHUB_TOKEN``.
        api_url: the REST root; defaults to ``$GITHUB_API_URL``, then ``https://api.github.com``.
        author: the login whose comments may be edited. Default: the token's own login from ``GET /user``,
            or ``github-actions[bot]`` when the token is an Actions installation token.
        session: a ``requests.Session`` (tests, connection reuse); one is created when omitted.
        max_attempts: retry budget (default ``hubfit.constants.RETRY_ATTEMPTS``).
        sleep: the sleep function (tests pass a recorder; see :class:`hubfit._http.Backoff`).
        timeout_s: seconds to wait for GitHub to send data.
    """

    def __init__(
        self,
        token: str | None = None,
        api_url: str | None = None,
        *,
        author: str | None = None,
        session: requests.Session | None = None,
        max_attempts: int | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get("GITHUB_TOKEN")
        if not token:
            raise UsageError(
                "no GitHub token: set GITHUB_TOKEN (a token with pull-requests: write) to comment on a pull request"
            )
        api_url = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        if not api_url.startswith(("https://", "http://")):
            raise UsageError(f"GITHUB_API_URL must be an http(s) URL, got {api_url!r}")
        if session is None:
            import requests

            session = requests.Session()
        self.api_url = api_url
        self._token = token
        self._author = author
        self._session = session
        self._backoff = Backoff(RetryPolicy.from_constants(attempts=max_attempts), sleep=sleep)
        self._key = server_key(api_url)
        self._timeout_s = timeout_s if timeout_s is not None else constants.HTTP_TIMEOUT_S

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, token=<hidden>)"

    # -- public API ---------------------------------------------------------------------------------------

    def upsert_sticky_comment(
        self, repo: str, number: int, body: str, marker: str = DEFAULT_MARKER
    ) -> StickyResult:
        """Create or update the one comment on ``repo``'s pull request ``number`` that carries ``marker``.

        Returns a :class:`StickyResult`; its ``url`` is the comment's address on GitHub.
        """
        full_body = body.rstrip("\n") + "\n\n" + marker
        if len(full_body) > MAX_BODY_CHARS:
            raise PublishError(
                f"the comment is {len(full_body):,} characters; GitHub accepts at most {MAX_BODY_CHARS:,}"
            )
        author = self.viewer_login()

        def attempt() -> StickyResult:
            existing = self.find_comment(repo, number, marker, author)
            if existing is not None:
                if existing.get("body") == full_body:
                    return StickyResult("unchanged", existing["html_url"], existing["id"])
                data = self._request(
                    "PATCH", f"/repos/{repo}/issues/comments/{existing['id']}", json={"body": full_body}
                )
                return StickyResult("updated", data["html_url"], data["id"])
            # Sent once per attempt: a failed POST may have created the comment although its answer was lost,
            # so the next attempt looks for it again before posting.
            data = self._request(
                "POST", f"/repos/{repo}/issues/{number}/comments", json={"body": full_body}, retry=False
            )
            return StickyResult("created", data["html_url"], data["id"])

        try:
            return self._backoff.call(attempt, key=self._key, what="GitHub comment")
        except RetriesExhausted as exc:
            raise self._exhausted(exc) from None

    def get_pull_request(self, repo: str, number: int) -> dict:
        """The pull request ``repo#number`` as GitHub's REST API describes it (head, base, state ...)."""
        pull: dict = self._request("GET", f"/repos/{repo}/pulls/{number}")
        return pull

    def viewer_login(self) -> str:
        """The login whose comments this client may edit (see the ``author`` argument)."""
        if self._author is None:
            response = self._send("GET", self.api_url + "/user", accept=(403,))
            self._author = ACTIONS_BOT_LOGIN if response.status_code == 403 else response.json()["login"]
        return self._author

    def find_comment(self, repo: str, number: int, marker: str, author: str) -> dict | None:
        """The first comment on the pull request by ``author`` whose body contains ``marker``, or None."""
        for comment in self.iter_comments(repo, number):
            login = (comment.get("user") or {}).get("login") or ""
            if login.lower() == author.lower() and marker in (comment.get("body") or ""):
                return comment
        return None

    def iter_comments(self, repo: str, number: int) -> Iterator[dict]:
        """Every issue comment on the pull request, oldest first, following ``Link: rel="next"``."""
        url: str | None = f"{self.api_url}/repos/{repo}/issues/{number}/comments?per_page=100"
        pages = 0
        while url:
            pages += 1
            if pages > 1000:
                raise PublishError(
                    f"{repo}#{number} has more than 100,000 comments; refusing to page further"
                )
            response = self._send("GET", url)
            yield from response.json()
            url = response.links.get("next", {}).get("url")

    # -- transport ----------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json: dict | None = None, retry: bool = True) -> Any:
        response = self._send(method, self.api_url + path, json=json, retry=retry)
        return response.json()

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: dict | None = None,
        retry: bool = True,
        accept: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send with retries (:mod:`hubfit._http`); ``retry=False`` sends once and raises
        :class:`~hubfit._http.TransientError` for a retryable failure, for the caller to handle."""
        if not retry:
            return self._send_once(method, url, json, accept)
        try:
            return self._backoff.call(
                lambda: self._send_once(method, url, json, accept), key=self._key, what="GitHub"
            )
        except RetriesExhausted as exc:
            raise self._exhausted(exc) from None

    def _send_once(
        self, method: str, url: str, json: dict | None, accept: tuple[int, ...] = ()
    ) -> requests.Response:
        import requests

        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "hubfit",
        }
        where = f"{method} {_redact_query(url)}"
        logger.debug("GitHub request: %s", where)
        try:
            response = self._session.request(method, url, headers=headers, json=json, timeout=self._timeout_s)
        except requests.RequestException as exc:
            # str(exc) may quote the request; report only the exception class and where it happened.
            raise TransientError(Transient(f"{where}: {type(exc).__name__}")) from None
        status = response.status_code
        rate_limited_403 = status == 403 and _is_rate_limit(response)
        if status < 400 or (status in accept and not rate_limited_403):
            return response
        message = _error_message(response)
        if status in RETRY_STATUSES or rate_limited_403:
            raise TransientError(
                Transient.from_answer(
                    status,
                    response.headers,
                    reason=f"{where}: {status} {message}",
                    rate_limited=status in (403, 429),
                )
            )
        if status == 401:
            raise PublishError(f"GitHub rejected the token (401 {message}) on {where}")
        if status == 403:
            raise PublishError(
                f"GitHub refused {where} (403 {message}); the token needs 'pull-requests: write' permission"
            )
        if status == 404:
            raise PublishError(
                f"GitHub answered 404 for {where}: no such repository or pull request, "
                "or the token cannot see it"
            )
        raise PublishError(f"GitHub answered {status} {message} for {where}")

    def _exhausted(self, exc: RetriesExhausted) -> NetworkError:
        cls = RateLimitedError if exc.last.rate_limited else NetworkError
        return cls(f"GitHub kept failing after {exc.attempts} attempts: {exc.last.reason}")


def _redact_query(url: str) -> str:
    return url.split("?", 1)[0]


def _error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return " ".join(data["message"].split())[:200]
    return response.reason or ""


def _is_rate_limit(response: requests.Response) -> bool:
    headers = response.headers
    return headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers
