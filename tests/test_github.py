"""The GitHub sticky-comment client, against a stateful fake of the REST API built with ``responses``."""

from __future__ import annotations

import json
import logging
import re

import pytest
import responses

from hubfit.errors import NetworkError, PublishError, RateLimitedError, UsageError
from hubfit.publish.github import DEFAULT_MARKER, GitHubClient, parse_pr_ref

API = "https://ghe.example.com/api/v3"
TOKEN = "ghp_SECRETtoken1234567890"
REPO = "octo-org/models"


class FakeGitHub:
    """Issue comments of one pull request, answered the way the REST API answers them."""

    def __init__(
        self, rsps: responses.RequestsMock, *, viewer: str | None = "hubfit-bot", per_page: int = 100
    ):
        self.comments: list[dict] = []
        self.next_id = 1000
        self.viewer = viewer
        self.per_page = per_page
        self.writes: list[tuple[str, str]] = []
        self.fail_next: list[tuple[str, int, dict]] = []  # (method, status, headers) injected before handling
        self.lose_answer_of_next_post = False
        base = re.escape(API)
        rsps.add_callback(responses.GET, re.compile(base + r"/user$"), callback=self._user)
        rsps.add_callback(
            responses.GET,
            re.compile(base + rf"/repos/{REPO}/issues/(\d+)/comments(\?.*)?$"),
            callback=self._list,
        )
        rsps.add_callback(
            responses.POST, re.compile(base + rf"/repos/{REPO}/issues/(\d+)/comments$"), callback=self._create
        )
        rsps.add_callback(
            responses.PATCH, re.compile(base + rf"/repos/{REPO}/issues/comments/(\d+)$"), callback=self._edit
        )

    def add(self, login: str, body: str) -> dict:
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.example/{REPO}/pull/7#issuecomment-{self.next_id}",
        }
        self.comments.append(comment)
        return comment

    def _fault(self, method: str):
        if self.fail_next and self.fail_next[0][0] == method:
            _, status, headers = self.fail_next.pop(0)
            return status, headers, json.dumps({"message": "injected"})
        return None

    def _check_auth(self, request) -> None:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"

    def _user(self, request):
        self._check_auth(request)
        if self.viewer is None:
            return 403, {}, json.dumps({"message": "Resource not accessible by integration"})
        return 200, {}, json.dumps({"login": self.viewer})

    def _list(self, request):
        self._check_auth(request)
        if fault := self._fault("GET"):
            return fault
        match = re.search(r"[?&]page=(\d+)", request.url)
        page = int(match.group(1)) if match else 1
        start = (page - 1) * self.per_page
        items = self.comments[start : start + self.per_page]
        headers = {}
        if start + self.per_page < len(self.comments):
            headers["Link"] = (
                f'<{API}/repos/{REPO}/issues/7/comments?per_page=100&page={page + 1}>; rel="next"'
            )
        return 200, headers, json.dumps(items)

    def _create(self, request):
        self._check_auth(request)
        if fault := self._fault("POST"):
            return fault
        comment = self.add(self.viewer or "github-actions[bot]", json.loads(request.body)["body"])
        self.writes.append(("POST", comment["body"]))
        if self.lose_answer_of_next_post:
            self.lose_answer_of_next_post = False
            return 502, {}, json.dumps({"message": "Server Error"})
        return 201, {}, json.dumps(comment)

    def _edit(self, request):
        self._check_auth(request)
        if fault := self._fault("PATCH"):
            return fault
        comment_id = int(request.url.rsplit("/", 1)[1])
        comment = next(c for c in self.comments if c["id"] == comment_id)
        comment["body"] = json.loads(request.body)["body"]
        self.writes.append(("PATCH", comment["body"]))
        return 200, {}, json.dumps(comment)


@pytest.fixture
def gh():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitHub(rsps)


def client(**kw) -> GitHubClient:
    sleeps: list[float] = []
    c = GitHubClient(TOKEN, API, sleep=sleeps.append, **kw)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def test_created_then_updated_then_unchanged_never_duplicated(gh):
    c = client()
    first = c.upsert_sticky_comment(REPO, 7, "## Hardware\n\nBF16: 16.06 GB")
    assert first.action == "created"
    assert [w[0] for w in gh.writes] == ["POST"]
    assert gh.comments[0]["body"] == "## Hardware\n\nBF16: 16.06 GB\n\n" + DEFAULT_MARKER

    second = c.upsert_sticky_comment(REPO, 7, "## Hardware\n\nBF16: 16.10 GB")
    assert second.action == "updated"
    assert second.comment_id == first.comment_id
    assert second.url == first.url
    third = c.upsert_sticky_comment(REPO, 7, "## Hardware\n\nBF16: 16.10 GB")
    assert third.action == "unchanged"
    assert [w[0] for w in gh.writes] == ["POST", "PATCH"]
    assert len(gh.comments) == 1
    assert gh.comments[0]["body"].startswith("## Hardware\n\nBF16: 16.10 GB")


def test_finds_own_comment_on_a_later_page(gh):
    gh.per_page = 2
    for i in range(5):
        gh.add("someone", f"comment {i}")
    mine = gh.add("hubfit-bot", "old report\n\n" + DEFAULT_MARKER)
    gh.add("someone", "after")
    result = client().upsert_sticky_comment(REPO, 7, "new report")
    assert result.action == "updated" and result.comment_id == mine["id"]
    assert gh.writes == [("PATCH", "new report\n\n" + DEFAULT_MARKER)]
    assert len(gh.comments) == 7


def test_marker_in_someone_elses_comment_is_not_edited(gh):
    other = gh.add("mallory", "quoting it: " + DEFAULT_MARKER)
    result = client().upsert_sticky_comment(REPO, 7, "report")
    assert result.action == "created"
    assert other["body"] == "quoting it: " + DEFAULT_MARKER
    assert [w[0] for w in gh.writes] == ["POST"]


def test_installation_token_is_treated_as_the_actions_bot(gh):
    gh.viewer = None  # GET /user answers 403 for the Actions GITHUB_TOKEN
    mine = gh.add("github-actions[bot]", "old\n\n" + DEFAULT_MARKER)
    result = client().upsert_sticky_comment(REPO, 7, "new")
    assert result.action == "updated" and result.comment_id == mine["id"]


def test_custom_marker_keeps_independent_sticky_comments(gh):
    c = client()
    c.upsert_sticky_comment(REPO, 7, "a", marker="<!-- hubfit:one -->")
    c.upsert_sticky_comment(REPO, 7, "b", marker="<!-- hubfit:two -->")
    c.upsert_sticky_comment(REPO, 7, "a2", marker="<!-- hubfit:one -->")
    assert [c["body"] for c in gh.comments] == ["a2\n\n<!-- hubfit:one -->", "b\n\n<!-- hubfit:two -->"]


def test_retry_after_is_honoured_within_bounds(gh):
    gh.fail_next = [("GET", 429, {"Retry-After": "3"}), ("GET", 503, {})]
    c = client()
    assert c.upsert_sticky_comment(REPO, 7, "x").action == "created"
    # 429 waits the server's 3 s; the 503 has no Retry-After, so the second wait is exponential backoff.
    assert c.sleeps[0] == 3.0
    assert len(c.sleeps) == 2


def test_rate_limit_403_waits_until_reset(gh, monkeypatch):
    monkeypatch.setattr("hubfit._http.time.time", lambda: 1_000.0)  # the one Retry-After parser
    gh.fail_next = [("GET", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1010"})]
    c = client()
    assert c.upsert_sticky_comment(REPO, 7, "x").action == "created"
    assert c.sleeps == [10.0]


def test_retry_after_is_capped(gh, monkeypatch):
    monkeypatch.setattr("hubfit.constants.RETRY_AFTER_MAX_S", 5.0)
    gh.fail_next = [("PATCH", 429, {"Retry-After": "86400"})]
    gh.add("hubfit-bot", "old\n\n" + DEFAULT_MARKER)
    c = client()
    assert c.upsert_sticky_comment(REPO, 7, "x").action == "updated"
    assert c.sleeps == [5.0]


def test_lost_answer_to_a_post_does_not_duplicate(gh):
    gh.lose_answer_of_next_post = True  # the comment is stored, but the client sees 502
    c = client()
    result = c.upsert_sticky_comment(REPO, 7, "report")
    assert len(gh.comments) == 1
    assert [w[0] for w in gh.writes] == ["POST"]
    assert result.action == "unchanged" and result.comment_id == gh.comments[0]["id"]


def test_gives_up_after_bounded_attempts(gh):
    gh.fail_next = [("GET", 503, {})] * 50
    c = client(max_attempts=3)
    with pytest.raises(NetworkError) as err:
        c.upsert_sticky_comment(REPO, 7, "x")
    assert not isinstance(err.value, RateLimitedError)
    assert len(c.sleeps) == 2
    assert gh.writes == []


def test_persistent_429_is_a_rate_limited_error(gh):
    gh.fail_next = [("GET", 429, {"Retry-After": "1"})] * 50
    with pytest.raises(RateLimitedError):
        client(max_attempts=2).upsert_sticky_comment(REPO, 7, "x")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_errors_never_contain_the_token(gh, status, caplog):
    gh.fail_next = [("POST", status, {})]
    caplog.set_level(logging.DEBUG)
    c = client()
    with pytest.raises(PublishError) as err:
        c.upsert_sticky_comment(REPO, 7, "x")
    assert str(status) in str(err.value)
    assert TOKEN not in str(err.value)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(c)
    assert gh.writes == []


def test_api_url_and_token_come_from_the_environment(gh, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", API + "/")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    c = GitHubClient()
    assert c.api_url == API
    assert c.upsert_sticky_comment(REPO, 7, "x").action == "created"


def test_missing_token_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(UsageError):
        GitHubClient(api_url=API)


def test_body_over_githubs_limit_is_refused_before_any_request(gh):
    with pytest.raises(PublishError, match="65,536"):
        client().upsert_sticky_comment(REPO, 7, "x" * 65_536)
    assert gh.writes == []


def test_parse_pr_ref():
    assert parse_pr_ref("octo-org/models#12") == ("octo-org/models", 12)
    assert parse_pr_ref(" a/b.c_d-e#1 ") == ("a/b.c_d-e", 1)
    for bad in ("octo-org/models", "octo-org/models#0", "models#3", "a/b#x", "-a/b#1", "a/b/c#1"):
        with pytest.raises(UsageError):
            parse_pr_ref(bad)


def test_cli_github_pr_comment_created_then_updated(gh, hub, monkeypatch, capsys):
    from publish_support import new_repo, resave_in_bf16

    from hubfit.cli.commands import main

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", API)
    repo_id = new_repo(hub)
    assert main(["comment", repo_id, "--github-pr", f"{REPO}#7", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == gh.comments[0]["html_url"]
    assert gh.comments[0]["body"].startswith("## Hardware requirements\n")
    assert gh.comments[0]["body"].endswith(DEFAULT_MARKER)
    resave_in_bf16(hub, repo_id)
    assert main(["comment", repo_id, "--github-pr", f"{REPO}#7"]) == 0
    out2, err2 = capsys.readouterr()
    assert [w[0] for w in gh.writes] == ["POST", "PATCH"] and len(gh.comments) == 1
    assert "`BF16`" in gh.comments[0]["body"]
    assert TOKEN not in out + err + out2 + err2


def test_cli_github_pr_without_token_exits_2(monkeypatch, capsys):
    from hubfit.cli.commands import main

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert main(["comment", "examples/whatever", "--github-pr", "a/b#1"]) == 2
    assert "GITHUB_TOKEN" in capsys.readouterr().err
