"""The one retry layer for every HTTP request hubfit sends: the Hub, its CDN, Git LFS servers and GitHub.

Each client (:class:`hubfit.source.hub.HubClient`, :class:`hubfit.source.lfs.LfsClient`,
:class:`hubfit.publish._hub.Publisher`, :class:`hubfit.publish.github.GitHubClient`) sends one attempt and
hands it to :meth:`Backoff.call`, which owns the rest:

- which failures are worth sending again (:func:`classify`): 408, 429, 500, 502, 503, 504, timeouts and dropped
  connections; anything else is raised at once;
- how long to wait (:class:`RetryPolicy`): the server's wait when it gives one (:func:`retry_after`: the
  ``Retry-After`` header in seconds or as an HTTP date, the ``RateLimit`` header's ``t=``, GitHub's
  ``x-ratelimit-reset``), capped at ``retry_after_max_s``; otherwise exponential backoff with bounded jitter;
- one pause shared by every thread (:class:`Pause`): after a rate-limited answer that names a wait, no thread
  sends another request to that server before the wait is over, so a scan's threads back off together
  instead of each spending its own attempts on the same quota;
- giving up: after ``attempts`` tries, :class:`RetriesExhausted` (a :class:`~hubfit.errors.NetworkError`) says
  how the last attempt failed, and the caller words the message.

Nothing here imports an HTTP library: failures are recognised by their shape (an exception whose ``response``
has a ``status_code``), by the standard ``TimeoutError`` / ``ConnectionError``, or by the transport exception
classes a caller passes in. Sleep and clock are injectable, so tests can assert what was actually slept.

huggingface_hub has its own retry layer (``http_backoff``); hubfit calls only huggingface_hub functions that do
not use it (``HfApi`` reads, ``get_hf_file_metadata(retry_on_errors=False)``, ``get_session()``), so no
request is retried by two layers (see :meth:`hubfit.source.hub.HubClient.read_file`).
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar
from urllib.parse import urlsplit

from hubfit import constants
from hubfit.errors import NetworkError

__all__ = [
    "PAUSE",
    "RETRY_STATUSES",
    "Backoff",
    "Pause",
    "RetriesExhausted",
    "RetryPolicy",
    "Transient",
    "TransientError",
    "call_with_retries",
    "classify",
    "retry_after",
    "server_key",
    "status_of",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Statuses worth sending again: request timeout, too many requests, and the transient server errors.
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

_RATELIMIT_T = re.compile(r"(?:^|[;,\s])t\s*=\s*([0-9]+(?:\.[0-9]+)?)")
_RATELIMIT_R = re.compile(r"(?:^|[;,\s])r\s*=\s*([0-9]+)")


# ---- policy ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait in between.

    Attributes:
        attempts: requests sent at most, the first one included.
        base_s: backoff after the first failure; it doubles after each further failure.
        max_s: cap on one backoff.
        retry_after_max_s: the longest wait a server may ask for (``Retry-After``, ``RateLimit``,
            ``x-ratelimit-reset``); a longer one is waited for this long, then the request is sent again.
        jitter: a backoff is multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]`` (and still capped at
            ``max_s``), so clients that failed together do not retry together. Server-given waits are exact.
    """

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 16.0
    retry_after_max_s: float = 120.0
    jitter: float = 0.25

    @classmethod
    def from_constants(cls, *, attempts: int | None = None) -> RetryPolicy:
        """The policy ``hubfit.constants`` sets (``HUBFIT_RETRY_*``), read now; ``attempts`` overrides its count."""
        return cls(
            attempts=constants.RETRY_ATTEMPTS if attempts is None else attempts,
            base_s=constants.RETRY_BASE_S,
            max_s=constants.RETRY_MAX_S,
            retry_after_max_s=constants.RETRY_AFTER_MAX_S,
        )

    def delay(
        self, failures: int, retry_after: float | None = None, *, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1 for the first).

        Args:
            failures: how many attempts have failed so far.
            retry_after: the wait the server asked for, if any (capped at ``retry_after_max_s``).
            rand: a uniform ``[0, 1)`` source for the jitter.
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_max_s)
        backoff = min(self.max_s, self.base_s * 2.0 ** min(max(failures - 1, 0), 64))
        return min(self.max_s, backoff * (1.0 - self.jitter + 2.0 * self.jitter * rand()))


# ---- reading an answer ----------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look the name up without case
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return None if value is None else str(value).strip()


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds an answer asks the client to wait before sending again, or ``None`` when it does not say.

    Read in this order (the first present wins; the result is not capped, :class:`RetryPolicy` caps it):

    - ``Retry-After``: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    - ``RateLimit``: the ``t=`` seconds to reset when ``r=`` (remaining) is 0 or absent (the IETF
      RateLimit-header draft; what the Hub sends with a 429);
    - GitHub's ``x-ratelimit-reset`` (epoch seconds) when ``x-ratelimit-remaining`` is 0.

    Args:
        headers: the answer's headers (any mapping; names are matched without case).
        now: wall-clock seconds since the epoch, for dates and resets; default ``time.time()``.
    """
    value = _header(headers, "Retry-After")
    if value:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
        try:
            import email.utils  # only for an HTTP-date Retry-After (rare): not on every start-up

            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):  # "year 10**20" overflows
            when = None
        if when is not None:
            if when.tzinfo is None:  # "-0000": an HTTP date is always UTC
                when = when.replace(tzinfo=UTC)
            return max(0.0, when.timestamp() - (time.time() if now is None else now))
    ratelimit = _header(headers, "RateLimit")
    if ratelimit:
        remaining = _RATELIMIT_R.search(ratelimit)
        reset = _RATELIMIT_T.search(ratelimit)
        if reset and (remaining is None or int(remaining.group(1)) == 0):
            return _seconds(reset.group(1))
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset_at = _header(headers, "x-ratelimit-reset")
        epoch = _seconds(reset_at) if reset_at else None
        if epoch is not None:
            return max(0.0, epoch - (time.time() if now is None else now))
    return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an error that carries its answer (``exc.response.status_code``), else ``None``."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


@dataclass(frozen=True)
class Transient:
    """A failed attempt that may succeed when sent again.

    Attributes:
        reason: what failed, for messages: ``"HTTP 503"``, an exception class name (``"ReadTimeout"``), or a
            caller's own wording.
        status: the HTTP status; ``None`` for a transport failure (timeout, dropped connection).
        retry_after: the wait the server asked for, uncapped (``None`` when it did not say).
        rate_limited: the server is limiting this client (429, or GitHub's rate-limit 403); with a
            ``retry_after`` it pauses every thread (see :class:`Pause`).
    """

    reason: str
    status: int | None = None
    retry_after: float | None = None
    rate_limited: bool = False

    @classmethod
    def from_answer(
        cls,
        status: int,
        headers: Mapping[str, str],
        *,
        reason: str | None = None,
        rate_limited: bool | None = None,
    ) -> Transient:
        """The failure an answer with ``status`` and ``headers`` stands for (``reason`` defaults to ``HTTP <status>``)."""
        return cls(
            reason=reason or f"HTTP {status}",
            status=status,
            retry_after=retry_after(headers),
            rate_limited=status == 429 if rate_limited is None else rate_limited,
        )


class TransientError(Exception):
    """Raised by an attempt for an answer worth retrying that its HTTP library returned rather than raised."""

    def __init__(self, transient: Transient) -> None:
        super().__init__(transient.reason)
        self.transient = transient


class RetriesExhausted(NetworkError):
    """Every attempt failed; :attr:`last` says how the last one did, :attr:`attempts` how many were sent."""

    def __init__(self, last: Transient, attempts: int) -> None:
        super().__init__(f"{last.reason} after {attempts} attempts")
        self.last = last
        self.attempts = attempts


def classify(exc: BaseException, *, transport: tuple[type[BaseException], ...] = ()) -> Transient | None:
    """The retryable failure ``exc`` stands for, or ``None`` when sending again cannot help.

    Retryable: a :class:`TransientError`; an error carrying an answer whose status is in
    :data:`RETRY_STATUSES` (its ``Retry-After`` read); ``TimeoutError``, ``ConnectionError`` (a connection reset
    or refused) and the ``transport`` classes (an HTTP library's timeout and transport errors).
    """
    if isinstance(exc, TransientError):
        return exc.transient
    status = status_of(exc)
    if status is not None:
        if status not in RETRY_STATUSES:
            return None
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        return Transient.from_answer(status, headers)
    if isinstance(exc, (TimeoutError, ConnectionError, *transport)):
        return Transient(type(exc).__name__)
    return None


def server_key(url: str) -> str:
    """The key a server's pause is kept under: the URL's ``host[:port]``."""
    return urlsplit(url).netloc.lower() or url


# ---- waiting --------------------------------------------------------------------------------------------------


class Pause:
    """Deadlines every thread honours before sending: one per server, set by a rate-limited answer.

    When any thread gets a 429 (or GitHub's rate-limit 403) with a wait, :meth:`hold` records the end of that
    wait; every :meth:`Backoff.call` on the same server, in any thread, sleeps until then before its next
    request. Deadlines are in the clock of the :class:`Backoff` objects sharing the pause.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, key: str, until: float) -> None:
        """Pause requests to ``key`` until ``until`` (a later deadline already held is kept)."""
        with self._lock:
            if until > self._until.get(key, -math.inf):
                self._until[key] = until

    def until(self, key: str) -> float | None:
        """The deadline held for ``key``, if any (it may already be past)."""
        with self._lock:
            return self._until.get(key)

    def clear(self) -> None:
        """Forget every deadline."""
        with self._lock:
            self._until.clear()


#: The process-wide pause shared by every :class:`Backoff` that runs on real time.
PAUSE = Pause()


class Backoff:
    """Runs one request with retries: a policy, a sleep, a clock and the pause shared with other threads.

    Args:
        policy: how often and how long; ``None`` reads ``hubfit.constants`` now (:meth:`RetryPolicy.from_constants`).
        sleep: the sleep function (tests pass a recorder).
        clock: monotonic seconds. A ``sleep`` given without a ``clock`` is taken not to pass real time (a
            recorder returns at once): the clock is then the monotonic clock plus every second this Backoff has
            slept, so waits count as elapsed for every thread that shares it.
        pause: the :class:`Pause` to share. Default: the process-wide :data:`PAUSE` when both ``sleep`` and
            ``clock`` are the real ones; otherwise a pause of this Backoff's own (a deadline in simulated time
            means nothing to threads on real time).
        rand: the uniform ``[0, 1)`` source for the jitter.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        pause: Pause | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy.from_constants()
        real_sleep = sleep is None or sleep is time.sleep
        self._sleep = sleep or time.sleep
        self._clock = clock or time.monotonic
        self._simulated = clock is None and not real_sleep
        self._skew = 0.0
        self._skew_lock = threading.Lock()
        self.pause = pause or (PAUSE if real_sleep and clock is None else Pause())
        self._rand = rand

    def now(self) -> float:
        """This Backoff's clock (simulated time advances by what it sleeps; see the class docstring)."""
        return self._clock() + self._skew

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` with the injected sleep function."""
        if seconds <= 0:
            return
        self._sleep(seconds)
        if self._simulated:
            with self._skew_lock:
                self._skew += seconds

    def wait_for_pause(self, key: str) -> float:
        """Sleep until the pause held for ``key`` is over; returns the seconds slept (0 when there is none)."""
        until = self.pause.until(key)
        if until is None:
            return 0.0
        remaining = until - self.now()
        if remaining <= 0:
            return 0.0
        logger.info("%s is rate-limiting: every request waits %.1f s", key or "the server", remaining)
        self.sleep(remaining)
        return remaining

    def call(
        self,
        attempt: Callable[[], T],
        *,
        classify: Callable[[BaseException], Transient | None] = classify,
        key: str = "",
        what: str = "",
        on_retry: Callable[[Transient, float], None] | None = None,
        before_retry: Callable[[Transient], T | None] | None = None,
    ) -> T:
        """Run ``attempt`` until it returns, raises something not retryable, or the policy's attempts are spent.

        Before each attempt the shared pause for ``key`` is waited out. A rate-limited failure with a server-given
        wait holds the pause for every thread.

        Args:
            attempt: sends the request once; returns the result or raises.
            classify: maps an exception to a :class:`Transient` (retry) or ``None`` (raise it as it is).
            key: the server, for the shared pause (:func:`server_key`).
            what: what is being done, for the log line.
            on_retry: called with the failure and the wait before each retry (counters, logs).
            before_retry: called after the wait and before sending again; a result other than ``None`` is
                returned instead of sending (a write that landed although its answer was lost).

        Raises:
            RetriesExhausted: every attempt failed with a retryable failure.
        """
        attempts = max(1, self.policy.attempts)
        for number in range(1, attempts + 1):
            self.wait_for_pause(key)
            try:
                return attempt()
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
            wait = self.policy.delay(number, failure.retry_after, rand=self._rand)
            if failure.rate_limited and failure.retry_after is not None:
                self.pause.hold(key, self.now() + wait)
            if number == attempts:
                raise RetriesExhausted(failure, attempts)
            logger.info(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                what or key or "request",
                failure.reason,
                wait,
                number + 1,
                attempts,
            )
            if on_retry is not None:
                on_retry(failure, wait)
            self.sleep(wait)
            if before_retry is not None:
                done = before_retry(failure)
                if done is not None:
                    return done
        raise AssertionError("unreachable")  # pragma: no cover


def call_with_retries(
    attempt: Callable[[], T],
    *,
    backoff: Backoff | None = None,
    classify: Callable[[BaseException], Transient | None] = classify,
    key: str = "",
    what: str = "",
) -> T:
    """:meth:`Backoff.call` with a default :class:`Backoff` (the constants' policy, real time, the shared pause)."""
    return (backoff or Backoff()).call(attempt, classify=classify, key=key, what=what)
