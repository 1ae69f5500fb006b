"""The one retry layer (hubfit/_http.py): the policy, the Retry-After parser, the shared pause, and no nested
retries, as unit tests and against the local fake Hub (fixtures/hub_server.py)."""

from __future__ import annotations

import email.utils
import itertools
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import requests
import responses

from hubfit import constants
from hubfit._http import (
    Backoff,
    Pause,
    RetriesExhausted,
    RetryPolicy,
    Transient,
    TransientError,
    call_with_retries,
    classify,
    retry_after,
)
from hubfit.errors import NetworkError, RateLimitedError
from hubfit.source.hub import HubClient
from hubfit.source.lfs import LfsClient

LLAMA = "meta-llama/Llama-2-70b-hf"
QWEN = "Qwen/Qwen2.5-0.5B"
TOKEN = "hf_granted"
NOW = 1_700_000_000.0  # a fixed wall-clock time for dates and resets
_repos = itertools.count()


class HTTPError(Exception):
    """An error carrying its answer, the shape huggingface_hub's and requests' HTTP errors have."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = SimpleNamespace(status_code=status, headers=headers or {})


def failing(*errors: BaseException, result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """An attempt that raises ``errors`` in turn, then returns ``result``; the list counts the calls."""
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return attempt, calls


def recording_backoff(**policy: float) -> tuple[Backoff, list[float]]:
    sleeps: list[float] = []
    return Backoff(RetryPolicy(**policy), sleep=sleeps.append), sleeps  # type: ignore[arg-type]


# ---- Retry-After -------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_case_insensitive():
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": " 7 "}) == 7.0
    assert retry_after({"Retry-After": "-3"}) == 0.0
    assert retry_after({}) is None
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"Retry-After": "inf"}) is None and retry_after({"Retry-After": "nan"}) is None


def test_retry_after_as_an_http_date():
    in_30_s = email.utils.formatdate(NOW + 30, usegmt=True)  # "Tue, 14 Nov 2023 22:13:50 GMT"
    assert retry_after({"Retry-After": in_30_s}, now=NOW) == 30.0
    assert retry_after({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, now=NOW) == 0.0
    assert retry_after({"Retry-After": email.utils.formatdate(NOW + 30)}, now=NOW) == 30.0  # "-0000" zone


def test_ratelimit_header_and_github_reset():
    # The Hub's 429 (fixtures/hub_server.py sends what huggingface.co sends).
    assert retry_after({"RateLimit": '"api";r=0;t=55'}) == 55.0
    assert retry_after({"RateLimit": '"api";r=12;t=55'}) is None  # quota left: t is the window, not a wait
    assert retry_after({"Retry-After": "7", "RateLimit": '"api";r=0;t=55'}) == 7.0  # Retry-After first
    github = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 10)}
    assert retry_after(github, now=NOW) == 10.0
    assert retry_after({**github, "x-ratelimit-remaining": "4"}, now=NOW) is None


# ---- the policy ------------------------------------------------------------------------------------------------


def test_policy_reads_the_constants(monkeypatch):
    monkeypatch.setattr(constants, "RETRY_ATTEMPTS", 3)
    monkeypatch.setattr(constants, "RETRY_AFTER_MAX_S", 9.0)
    policy = RetryPolicy.from_constants()
    assert (policy.attempts, policy.retry_after_max_s) == (3, 9.0)
    assert RetryPolicy.from_constants(attempts=7).attempts == 7
    assert HubClient(token=False).backoff.policy == policy


def test_jitter_is_bounded_and_the_backoff_capped():
    policy = RetryPolicy(base_s=1.0, max_s=16.0, jitter=0.25)
    for failures in range(1, 9):
        raw = min(16.0, 2.0 ** (failures - 1))
        low, high = policy.delay(failures, rand=lambda: 0.0), policy.delay(failures, rand=lambda: 1.0)
        assert low == raw * 0.75 and high == min(16.0, raw * 1.25)
        for _ in range(200):
            assert low <= policy.delay(failures) <= high <= 16.0
    assert RetryPolicy(jitter=0.0).delay(3) == 4.0
    assert policy.delay(1, retry_after=7.0) == 7.0  # a server-given wait is exact, never jittered


def test_a_huge_retry_after_is_capped_and_slept():
    backoff, sleeps = recording_backoff(retry_after_max_s=120.0)
    attempt, calls = failing(HTTPError(429, {"Retry-After": "86400"}))
    assert backoff.call(attempt) == "ok"
    assert sleeps == [120.0] and len(calls) == 2


def test_a_huge_retry_after_from_the_hub_is_capped(hub):
    hub.retry_after = 86_400
    hub.fail_next(rf"^/api/models/{LLAMA}$", 1, 429)
    sleeps: list[float] = []
    client = HubClient(token=TOKEN, sleep=sleeps.append)
    assert client.snapshot(LLAMA).sha == hub.repos[LLAMA].refs["refs/heads/main"]
    assert sleeps == [constants.RETRY_AFTER_MAX_S]


def test_an_http_date_retry_after_from_the_hub(hub):
    hub.retry_after = email.utils.formatdate(time.time() + 30, usegmt=True)
    hub.fail_next(rf"^/api/models/{LLAMA}$", 1, 429)
    sleeps: list[float] = []
    HubClient(token=TOKEN, sleep=sleeps.append).snapshot(LLAMA)
    assert len(sleeps) == 1 and 28.0 <= sleeps[0] <= 30.0  # the date has whole seconds


def test_server_errors_then_success(hub):
    hub.fail_next(rf"^/api/models/{LLAMA}$", 2, 503)
    sleeps: list[float] = []
    client = HubClient(token=TOKEN, sleep=sleeps.append)
    client.snapshot(LLAMA)
    policy = client.backoff.policy
    assert len(sleeps) == 2 and client.stats.retries == 2
    for failures, slept in enumerate(sleeps, start=1):
        assert policy.delay(failures, rand=lambda: 0.0) <= slept <= policy.delay(failures, rand=lambda: 1.0)
    assert [e.status for e in hub.log if e.path == f"/api/models/{LLAMA}"] == [503, 503, 200]


def test_what_is_not_retried_is_raised_at_once():
    backoff, sleeps = recording_backoff()
    for error in (HTTPError(404), HTTPError(401), ValueError("bad")):
        attempt, calls = failing(error)
        with pytest.raises(type(error)):
            backoff.call(attempt)
        assert len(calls) == 1
    assert sleeps == []


def test_timeouts_are_retried_then_one_network_error():
    backoff, sleeps = recording_backoff(attempts=3, base_s=0.5)
    attempt, calls = failing(*[TimeoutError("read timed out")] * 10)
    with pytest.raises(NetworkError, match="TimeoutError after 3 attempts") as err:
        backoff.call(attempt)
    assert isinstance(err.value, RetriesExhausted) and err.value.last == Transient("TimeoutError")
    assert len(calls) == 3 and len(sleeps) == 2
    attempt, calls = failing(ConnectionResetError(104, "reset"), ConnectionResetError(104, "reset"))
    assert call_with_retries(attempt, backoff=backoff) == "ok" and len(calls) == 3


@responses.activate
def test_lfs_timeouts_are_retried_then_one_network_error(monkeypatch):
    monkeypatch.setattr(constants, "RETRY_BASE_S", 0.0)
    url = "https://github.com/octo-org/llama.git/info/lfs"
    responses.add(responses.POST, f"{url}/objects/batch", body=requests.Timeout("read timed out"))
    with pytest.raises(NetworkError, match="github.com unreachable: Timeout"):
        LfsClient(url)._request("POST", f"{url}/objects/batch", json={})
    assert len(responses.calls) == constants.RETRY_ATTEMPTS


def test_classify_sees_library_transport_errors_only_when_told():
    class ReadTimeout(Exception):
        pass

    assert classify(ReadTimeout()) is None
    assert classify(ReadTimeout(), transport=(ReadTimeout,)) == Transient("ReadTimeout")
    assert classify(HTTPError(503)) == Transient("HTTP 503", 503)
    assert classify(HTTPError(429, {"Retry-After": "2"})) == Transient(
        "HTTP 429", 429, 2.0, rate_limited=True
    )
    assert classify(TransientError(Transient("custom"))) == Transient("custom")


# ---- one pause for every thread -------------------------------------------------------------------------------


class FakeTime:
    """A clock that moves only when something sleeps; sleeps are recorded per thread."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[tuple[str, float]] = []
        self.hook: Callable[[], None] = lambda: None
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append((threading.current_thread().name, seconds))
        self.hook()
        with self._lock:
            self.now += seconds


def run_threads(**targets: Callable[[], object]) -> dict[str, object]:
    results: dict[str, object] = {}

    def wrap(name: str, target: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                results[name] = target()
            except BaseException as exc:  # reported by the assertion below
                results[name] = exc

        return run

    threads = [threading.Thread(target=wrap(n, t), name=n) for n, t in targets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_a_429_pauses_every_thread_until_its_deadline():
    fake = FakeTime()
    backoff = Backoff(RetryPolicy(attempts=3), sleep=fake.sleep, clock=fake.clock, pause=Pause())
    paused, b_done = threading.Event(), threading.Event()
    sent_at: dict[str, float] = {}

    def hold_a_while_b_runs() -> None:  # A's sleep: let B send while A waits out the 429
        if threading.current_thread().name == "A":
            paused.set()
            b_done.wait(5)

    fake.hook = hold_a_while_b_runs
    attempt_a, calls_a = failing(HTTPError(429, {"Retry-After": "5"}), result="a")

    def thread_b() -> str:
        paused.wait(5)

        def attempt() -> str:
            sent_at["B"] = fake.clock()
            return "b"

        try:
            return backoff.call(attempt, key="hub.example")
        finally:
            b_done.set()

    def thread_c() -> str:  # another server is not paused
        paused.wait(5)
        return backoff.call(lambda: "c", key="api.github.example")

    results = run_threads(A=lambda: backoff.call(attempt_a, key="hub.example"), B=thread_b, C=thread_c)
    assert results == {"A": "a", "B": "b", "C": "c"}
    # A waits the server's 5 s; B, which never saw a 429, waits until the same deadline before sending.
    assert sorted(fake.slept) == [("A", 5.0), ("B", 5.0)]
    assert sent_at["B"] >= 1000.0 + 5.0 and len(calls_a) == 2


def test_a_429_pauses_every_thread_on_the_fake_hub(hub):
    hub.retry_after = 1
    hub.fail_next(rf"^/api/models/{LLAMA}$", 1, 429)
    first_sleep = threading.Event()
    slept: dict[str, list[float]] = {}

    def sleep(seconds: float) -> None:
        slept.setdefault(threading.current_thread().name, []).append(seconds)
        first_sleep.set()
        time.sleep(seconds)

    backoff = Backoff(RetryPolicy(attempts=3), sleep=sleep, clock=time.monotonic, pause=Pause())
    client = HubClient(token=TOKEN, backoff=backoff)

    def thread_b() -> float:
        first_sleep.wait(5)  # A has its 429 and waits
        start = time.monotonic()
        client.snapshot(QWEN)
        return time.monotonic() - start

    results = run_threads(A=lambda: client.snapshot(LLAMA).sha, B=thread_b)
    assert results["A"] == hub.repos[LLAMA].refs["refs/heads/main"]
    assert slept["A"] == [1.0]
    assert len(slept["B"]) == 1 and 0.5 < slept["B"][0] <= 1.0  # the rest of A's second
    assert isinstance(results["B"], float) and results["B"] >= 0.5
    statuses = [(e.path, e.status) for e in hub.log if e.path.startswith("/api/models/")]
    assert statuses[0] == (f"/api/models/{LLAMA}", 429)  # B's request went out only after the pause


def test_a_recorded_sleep_counts_as_time_passed():
    # A sleep given without a clock does not pass real time; the Backoff's clock advances by it instead,
    # so the thread that waited out a 429 (and any other thread) does not wait for it again.
    backoff, sleeps = recording_backoff(attempts=3)
    attempt, _ = failing(HTTPError(429, {"Retry-After": "30"}))
    backoff.call(attempt, key="hub")
    backoff.call(lambda: "next", key="hub")
    run_threads(other=lambda: backoff.call(lambda: "other", key="hub"))
    assert sleeps == [30.0]


def test_persistent_429_names_the_rate_limit(hub, monkeypatch):
    monkeypatch.setattr(constants, "RETRY_ATTEMPTS", 2)
    hub.retry_after = 0
    hub.fail_next(rf"^/api/models/{LLAMA}$", 10, 429)
    with pytest.raises(RateLimitedError, match="rate-limiting requests to read .* after 2 attempts"):
        HubClient(token=TOKEN, sleep=lambda s: None).snapshot(LLAMA)


# ---- no nested retries -----------------------------------------------------------------------------------------


def _fresh_repo(hub) -> tuple[str, str]:
    """A repo no test has downloaded from yet (huggingface_hub's cache is per repo)."""
    repo_id = f"http-tests/config-{next(_repos)}"
    hub.add_repo(repo_id, {"config.json": b'{"model_type": "llama", "hidden_size": 8}'})
    return repo_id, hub.repos[repo_id].refs["refs/heads/main"]


def test_a_failing_config_json_is_sent_exactly_attempts_times(hub):
    repo_id, sha = _fresh_repo(hub)
    hub.fail_next(rf"^/{repo_id}/resolve/.*/config\.json$", 1000, 500)
    backoff, sleeps = recording_backoff(attempts=3, base_s=0.5)
    with pytest.raises(NetworkError, match="HTTP 500 after 3 attempts"):
        HubClient(token=TOKEN, backoff=backoff).read_json(repo_id, "config.json", sha)
    sent = [e for e in hub.log if e.path.endswith("/config.json")]
    # huggingface_hub's hf_hub_download would send 7 HEADs per attempt (one, then http_backoff's 1 + 5 retries).
    assert [(e.method, e.status) for e in sent] == [("GET", 500)] * 3
    assert len(sleeps) == 2


def test_a_downloaded_file_is_in_huggingface_hubs_cache(hub):
    from huggingface_hub import hf_hub_download

    repo_id, sha = _fresh_repo(hub)
    client = HubClient(token=TOKEN, sleep=lambda s: None)
    assert client.read_json(repo_id, "config.json", sha) == {"model_type": "llama", "hidden_size": 8}
    # one GET: its headers carry what hf_hub_download's HEAD asks for
    assert [e.method for e in hub.log] == ["GET"]
    hub.reset_log()
    assert HubClient(token=TOKEN).read_json(repo_id, "config.json", sha)["hidden_size"] == 8
    with open(hf_hub_download(repo_id, "config.json", revision=sha, token=TOKEN), "rb") as fh:
        assert fh.read() == b'{"model_type": "llama", "hidden_size": 8}'
    assert hub.requests == 0  # served from the cache, by hubfit and by huggingface_hub
    assert client.read_file(repo_id, "missing.json", sha, missing_ok=True) is None
