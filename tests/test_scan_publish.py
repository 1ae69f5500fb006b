"""``hubfit scan AUTHOR --apply card|comment``: dry run by default, then polite bulk writes on the fake Hub.

The scanned repos are copies of the meta-llama/Llama-2-70b-hf fixture (real metadata; fixtures/README.md) under
namespaces this module owns. The fake Hub's write endpoints (fixtures/hub_writes.py) record every accepted
write in ``hub.state["writes"]``, so each test checks exactly what was written.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from collections import Counter

import pytest

import hubfit.constants
from fixtures.hub_writes import discussions, readme, writes
from hubfit.cli.commands import main
from hubfit.pipeline import analyze
from hubfit.publish.card import PR_TITLE
from hubfit.publish.cardtext import current_section
from hubfit.publish.discussions import DISCUSSION_TITLE
from hubfit.render.report import card_section
from hubfit.report import SCHEMA_VERSION
from hubfit.scan.options import resolved
from hubfit.scan.publish import publish_scan
from hubfit.scan.runner import ScanOptions, ScanQuery, run_scan
from hubfit.scan.store import ScanStore

LLAMA = "meta-llama/Llama-2-70b-hf"
BOT, BOT_TOKEN = "scan-bot", "hf_scan_bot"  # may open pull requests and discussions anywhere
_n = itertools.count()


def make_org(hub, n: int, *, disabled: int | None = None, nobin: bool = False) -> tuple[str, list[str]]:
    """A fresh author with ``n`` Llama-2-70b copies (``disabled``: index of one with discussions disabled)."""
    hub.users[BOT_TOKEN] = BOT
    author = f"scan-pub-{next(_n)}"
    files = {p: e for p, e in hub.repos[LLAMA].head.files.items() if p != "README.md"}
    files["README.md"] = b"---\nlicense: llama2\n---\n# A model\n"
    repos = []
    for i in range(n):
        repo_id = f"{author}/llama-{i}"
        hub.add_repo(repo_id, dict(files), discussions_disabled=i == disabled)
        repos.append(repo_id)
    if nobin:
        hub.add_repo(f"{author}/only-bin", {"config.json": files["config.json"], "pytorch_model.bin": b"PK"})
    return author, repos


def scan(store, author: str, token: str = BOT_TOKEN):
    return run_scan(store, ScanQuery(author), ScanOptions(token=token))


def publish(store, result, kind: str, *, token: str = BOT_TOKEN, sleeps=None, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    outcomes = publish_scan(
        store,
        result.scan_id,
        kind,
        options=ScanOptions(token=token),
        out=out,
        err=err,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kwargs,
    )
    return {o.repo_id: o for o in outcomes}, out.getvalue(), err.getvalue()


def writes_to(hub, author: str) -> list[dict]:
    return [w for w in writes(hub) if w["repo_id"].startswith(author + "/")]


@pytest.fixture
def store(tmp_path):
    with ScanStore(tmp_path / "scan.sqlite") as s:
        yield s


def test_dry_run_says_what_would_change_and_writes_nothing(hub, store):
    author, repos = make_org(hub, 2, disabled=1, nobin=True)
    result = scan(store, author)
    outcomes, out, err = publish(store, result, "card")
    assert outcomes[repos[0]].action == "open_pr" and not outcomes[repos[0]].written
    assert "opening a pull request against main" in outcomes[repos[0]].reason
    assert outcomes[repos[1]].action == "skip" and "disabled" in outcomes[repos[1]].reason
    assert (
        outcomes[f"{author}/only-bin"].action == "skip"
        and "not analysed" in outcomes[f"{author}/only-bin"].reason
    )
    assert writes_to(hub, author) == []
    assert f"{repos[0]}: would open a pull request" in out
    assert out.rstrip().endswith("would write 1, skipped 2, failed 0 (dry run: pass --yes to write)")
    assert err.startswith(f"hubfit: dry run: publishing the card as {BOT}")


def test_yes_opens_pull_requests_with_a_pause_and_a_second_run_skips(hub, store):
    author, repos = make_org(hub, 3, disabled=1)
    result = scan(store, author)
    sleeps: list[float] = []
    outcomes, out, _ = publish(store, result, "card", yes=True, pause_s=2.5, sleeps=sleeps)
    opened = [r for r in repos if outcomes[r].action == "open_pr"]
    assert opened == [repos[0], repos[2]]
    assert sleeps == [2.5, 2.5]  # one pause after each write, none after a skip
    for repo_id in opened:
        prs = [d for d in discussions(hub.repos[repo_id]) if d["isPullRequest"]]
        assert [(d["title"], d["author"]) for d in prs] == [(PR_TITLE, BOT)]
        assert outcomes[repo_id].url.endswith(f"/{repo_id}/discussions/{prs[0]['num']}")
        assert outcomes[repo_id].url in out
        # a pull request, never a push: main still has the original card
        assert current_section(readme(hub, repo_id)) is None
        section = current_section(readme(hub, repo_id, f"refs/pr/{prs[0]['num']}"))
        assert "68,976,648,192" in section  # the published parameter count of Llama-2-70b-hf
    assert [(w["kind"], w["repo_id"]) for w in writes_to(hub, author)] == [
        ("pull_request", repos[0]),
        ("pull_request", repos[2]),
    ]

    again, _, _ = publish(store, scan(store, author), "card", yes=True, sleeps=sleeps)
    assert {again[r].action for r in repos} == {"skip"}
    assert len(writes_to(hub, author)) == 2 and sleeps == [2.5, 2.5]


def test_commit_pushes_to_main_only_when_asked(hub, store):
    author, repos = make_org(hub, 1)
    hub.repos[repos[0]].state["writers"] = {BOT}
    result = scan(store, author)
    outcomes, _, _ = publish(store, result, "card", yes=True, direct=True)
    assert outcomes[repos[0]].action == "commit"
    assert "68,976,648,192" in current_section(readme(hub, repos[0]))
    assert not [d for d in discussions(hub.repos[repos[0]]) if d["isPullRequest"]]
    # the card commit moved main: the next scan re-reads that repo, then finds the card up to date
    rescan = scan(store, author)
    assert rescan.analysed == 1
    again, _, _ = publish(store, rescan, "card", yes=True, direct=True)
    assert again[repos[0]].action == "skip" and "already has these figures" in again[repos[0]].reason


def test_comment_opens_one_discussion_then_skips(hub, store):
    author, repos = make_org(hub, 2, disabled=0)
    result = scan(store, author)
    outcomes, _, _ = publish(store, result, "comment", yes=True, pause_s=0)
    assert outcomes[repos[0]].action == "skip" and "disabled" in outcomes[repos[0]].reason
    assert outcomes[repos[1]].action == "open"
    threads = discussions(hub.repos[repos[1]])
    assert [(d["title"], d["author"]) for d in threads] == [(DISCUSSION_TITLE, BOT)]
    again, _, _ = publish(store, result, "comment", yes=True, pause_s=0)
    assert again[repos[1]].action == "skip"
    assert len(discussions(hub.repos[repos[1]])) == 1 and len(writes_to(hub, author)) == 1


def test_repo_changed_since_the_scan_is_skipped(hub, store):
    author, repos = make_org(hub, 2)
    result = scan(store, author)
    hub.commit(repos[0], {"README.md": b"# rewritten by its owner\n"}, message="Update README.md")
    outcomes, _, _ = publish(store, result, "card", yes=True, pause_s=0)
    assert outcomes[repos[0]].action == "skip" and "changed since the scan" in outcomes[repos[0]].reason
    assert outcomes[repos[1]].action == "open_pr"
    assert [w["repo_id"] for w in writes_to(hub, author)] == [repos[1]]


def test_rate_limiting_stops_the_run(hub, store, monkeypatch):
    author, repos = make_org(hub, 3)
    result = scan(store, author)
    monkeypatch.setattr(hubfit.constants, "RETRY_ATTEMPTS", 2)  # the one retry policy (hubfit._http)
    hub.retry_after = 0
    hub.fail_next(rf"^/api/models/{author}/llama-0/commit/", n=10, status=429, method="POST")
    outcomes, out, _ = publish(store, result, "card", yes=True, pause_s=0)
    assert outcomes[repos[0]].action == "failed" and outcomes[repos[0]].exit_code == 8
    assert repos[1] not in outcomes and repos[2] not in outcomes  # nothing more is tried
    assert "stopped early: the Hub is rate-limiting this token" in out
    assert writes_to(hub, author) == []


def test_cli_apply_is_a_dry_run_without_yes(hub, tmp_path, capsys):
    author, repos = make_org(hub, 1)
    db = str(tmp_path / "c.sqlite")
    code = main(
        ["scan", author, "--db", db, "-q", "--token", BOT_TOKEN, "--apply", "card", "-o", str(tmp_path / "t")]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert f"{repos[0]}: would open a pull request" in captured.out
    assert "pass --yes to write" in captured.out
    assert writes_to(hub, author) == []
    assert main(["scan", author, "--db", db, "--yes"]) == 2
    assert "--yes and --commit go with --apply" in capsys.readouterr().err


# ---- publishing reads the stored report: no header is read again ---------------------------------------------
def header_reads(hub) -> list[str]:
    """Requests that read weight files: ranged reads, any safetensors path, the CDN the LFS reads go to."""
    return [e.path for e in hub.log if e.range or ".safetensors" in e.path or e.path.startswith("/repos/")]


def requests(hub) -> Counter:
    return Counter((e.method, e.path) for e in hub.log)


def main_sha(hub, repo_id: str) -> str:
    return hub.repos[repo_id].refs["refs/heads/main"]


def planning_requests(hub, repos: list[str], kind: str) -> Counter:
    """What planning costs once the scan is stored. Before, each repo was analysed again first: 36 requests per
    repo for a card and 33 for a comment on these 15-shard copies, 30 of them header reads."""
    expected = Counter({("GET", "/api/whoami-v2"): 1})  # the token's identity, once per run
    for repo_id in repos:
        sha = main_sha(hub, repo_id)
        expected[("GET", f"/api/models/{repo_id}/revision/main")] += 1  # still the scanned commit?
        if kind == "card":
            # the card at that commit, into huggingface_hub's cache (one GET: HubClient.read_file)
            expected[("GET", f"/{repo_id}/resolve/{sha}/README.md")] += 1
        expected[("GET", f"/api/models/{repo_id}/discussions")] += 1  # hubfit's pull request or discussion
    return expected


def test_apply_publishes_the_stored_report_without_reading_a_header(hub, store):
    author, repos = make_org(hub, 3)
    result = scan(store, author)

    hub.reset_log()
    outcomes, _, _ = publish(store, result, "card")
    assert [outcomes[r].action for r in repos] == ["open_pr"] * 3
    assert header_reads(hub) == []
    assert requests(hub) == planning_requests(hub, repos, "card")
    assert len(hub.log) == 1 + 3 * 3

    hub.reset_log()
    outcomes, _, _ = publish(store, result, "comment")
    assert [outcomes[r].action for r in repos] == ["open"] * 3
    assert header_reads(hub) == []
    assert requests(hub) == planning_requests(hub, repos, "comment")
    assert len(hub.log) == 1 + 2 * 3

    # what is written is what a live analysis at that commit renders, figure for figure
    hub.reset_log()
    outcomes, _, _ = publish(store, result, "card", yes=True, max_writes=1)
    assert outcomes[repos[0]].action == "open_pr" and outcomes[repos[0]].written
    assert header_reads(hub) == []
    pr = next(d for d in discussions(hub.repos[repos[0]]) if d["isPullRequest"])
    options = resolved(ScanOptions(token=BOT_TOKEN))
    live = analyze(
        repos[0],
        revision=main_sha(hub, repos[0]),
        token=BOT_TOKEN,
        workload=options.workload,
        hardware=options.hardware,
    )
    assert current_section(readme(hub, repos[0], f"refs/pr/{pr['num']}")) == card_section(live)


def test_cli_apply_on_a_cached_scan_costs_the_listing_and_the_planning(hub, tmp_path, capsys):
    author, repos = make_org(hub, 2)
    db, table = str(tmp_path / "c.sqlite"), str(tmp_path / "t")
    assert main(["scan", author, "--db", db, "-q", "--token", BOT_TOKEN, "-o", table]) == 0
    capsys.readouterr()

    hub.reset_log()
    code = main(["scan", author, "--db", db, "-q", "--token", BOT_TOKEN, "-o", table, "--apply", "card"])
    captured = capsys.readouterr()
    assert code == 0 and "2 cached, 0 analysed" in captured.err
    for repo_id in repos:
        assert f"{repo_id}: would open a pull request" in captured.out
    assert header_reads(hub) == []
    assert requests(hub) == planning_requests(hub, repos, "card") + Counter({("GET", "/api/models"): 1})
    assert len(hub.log) == 1 + 1 + 3 * 2  # one listing page, whoami, 3 per repo


def test_a_stored_report_of_another_schema_version_is_analysed_again(hub, store):
    author, repos = make_org(hub, 2)
    result = scan(store, author)
    settings = store.scan_info(result.scan_id)["settings"]
    rows = {row.repo_id: row for row in store.rows(result.scan_id)}
    old = {**rows[repos[0]].report, "schema_version": SCHEMA_VERSION - 1}
    store.record_ok(result.scan_id, rows[repos[0]].listed(), settings, old, "0.0.0")

    hub.reset_log()
    outcomes, _, err = publish(store, result, "card")
    assert outcomes[repos[0]].action == outcomes[repos[1]].action == "open_pr"
    assert f"hubfit: {repos[0]}: cannot use the stored report (report document of schema_version" in err
    assert "analysing it again" in err and repos[1] not in err
    # only that repo's headers were read again; the other was published from its stored report
    reads = header_reads(hub)
    assert reads and all(f"/{repos[0]}/" in path for path in reads)

    # the fresh report replaced the old one: the next run reads no header
    row = next(r for r in store.rows(result.scan_id) if r.repo_id == repos[0])
    assert row.report["schema_version"] == SCHEMA_VERSION
    assert row.report["parameters"]["total"] == 68_976_648_192  # published count (fixtures/README.md)
    identity = {key: row.report[key] for key in ("repo_id", "revision", "sha")}
    assert row.report == rows[repos[1]].report | identity  # the same figures as the copy never re-read
    hub.reset_log()
    outcomes, _, err = publish(store, result, "card")
    assert "analysing it again" not in err and header_reads(hub) == []
    assert outcomes[repos[0]].action == "open_pr"


def test_publish_does_not_import_the_runner():
    """No import cycle: the scan runs the publishing; the publishing needs nothing of the scan runner."""
    code = "import sys, hubfit.scan.publish; print('hubfit.scan.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
