"""``hubfit scan``: listing, cache hits, sha changes, failures, resume, gating and output formats.

Every scanned repo is a copy of the meta-llama/Llama-2-70b-hf fixture (real metadata, fixtures/README.md) under a
per-test author on the session's fake Hub, so each test owns its repos. The figure asserted for an analysed copy
is the published one: 68,976,648,192 parameters (F16 elements, the 80 x 64 F32 ``inv_freq`` buffers left out).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hubfit.constants
from hubfit.cli.commands import main
from hubfit.errors import UsageError
from hubfit.fit.planner import HardwareQuery
from hubfit.scan.runner import ScanOptions, ScanQuery, run_scan
from hubfit.scan.store import ListedRepo, ScanStore
from hubfit.scan.table import write

ROOT = Path(__file__).resolve().parent.parent
LLAMA = "meta-llama/Llama-2-70b-hf"
LLAMA_PARAMS = 68_976_648_192


def make_org(hub, author: str, n: int, *, nobin: bool = False, gated: bool = False) -> list[str]:
    """``n`` copies of the Llama-2-70b fixture under ``author`` (plus a repo without safetensors, plus a gated one)."""
    files = dict(hub.repos[LLAMA].head.files)
    repos = []
    for i in range(n):
        repo_id = f"{author}/llama-{i}"
        hub.add_repo(repo_id, dict(files), library_name="transformers", tags=["text-generation"])
        repos.append(repo_id)
    if nobin:
        # Only a PyTorch pickle: the analyzer says no safetensors weights (a failure the same commit repeats).
        bin_files = {"config.json": files["config.json"], "pytorch_model.bin": files["config.json"]}
        hub.add_repo(f"{author}/only-bin", bin_files, tags=["text-generation"])
        repos.append(f"{author}/only-bin")
    if gated:
        hub.add_repo(f"{author}/gated", dict(files), gated="manual", authorized_tokens={"hf_granted"})
        repos.append(f"{author}/gated")
    return repos


def requested_repos(hub) -> set[str]:
    """The repos whose files or info were requested (listing calls excluded)."""
    out = set()
    for entry in hub.log:
        parts = entry.path.strip("/").split("/")
        if entry.path.startswith("/api/models/") and len(parts) >= 4:
            out.add(f"{parts[2]}/{parts[3]}")
        elif "/resolve/" in entry.path:
            out.add(f"{parts[0]}/{parts[1]}")
        elif entry.path.startswith("/repos/"):  # the CDN origin LFS reads are redirected to
            out.add(f"{parts[1]}/{parts[2]}")
    return out


@pytest.fixture
def store(tmp_path):
    with ScanStore(tmp_path / "scan.sqlite") as s:
        yield s


@pytest.fixture
def fast_retries(monkeypatch):
    """Retries without waiting: the tests force failures and must stay fast."""
    monkeypatch.setattr(hubfit.constants, "RETRY_ATTEMPTS", 2)  # the one retry policy (hubfit._http)
    monkeypatch.setattr(hubfit.constants, "RETRY_BASE_S", 0.0)


def by_repo(store, scan_id):
    return {row.repo_id: row for row in store.rows(scan_id)}


def test_second_scan_costs_the_listing_only(hub, store):
    repos = make_org(hub, "scan-cache", 3, nobin=True)
    first = run_scan(store, ScanQuery("scan-cache"), ScanOptions(concurrency=3), progress=None)
    assert (first.listed, first.analysed, first.failed, first.cached) == (4, 3, 1, 0)
    rows = by_repo(store, first.scan_id)
    for repo_id in repos[:3]:
        assert rows[repo_id].status == "ok"
        assert rows[repo_id].report["parameters"]["total"] == LLAMA_PARAMS
        assert rows[repo_id].sha == hub.repos[repo_id].refs["refs/heads/main"]
    assert rows["scan-cache/only-bin"].error["type"] == "NoWeightsError"

    hub.reset_log()
    second = run_scan(store, ScanQuery("scan-cache"), ScanOptions(concurrency=3), progress=None)
    assert (second.listed, second.cached, second.analysed, second.failed) == (4, 4, 0, 0)
    # Nothing per repo: every request is a page of the listing (the failure without weights is not retried).
    assert {entry.path for entry in hub.log} == {"/api/models"}
    assert len(hub.log) == 1
    assert {r.repo_id: r.status for r in store.rows(second.scan_id)} == {r: rows[r].status for r in rows}


def test_listing_pages_are_followed(hub, store):
    make_org(hub, "scan-pages", 5)
    hub.page_size = 2
    try:
        result = run_scan(store, ScanQuery("scan-pages"), ScanOptions(concurrency=2), progress=None)
    finally:
        hub.page_size = 1000
    assert result.listed == 5 and result.analysed == 5
    assert sum(1 for e in hub.log if e.path == "/api/models") == 3  # ceil(5 / 2) pages


def test_a_new_commit_rereads_only_that_repo(hub, store):
    repos = make_org(hub, "scan-sha", 3)
    first = run_scan(store, ScanQuery("scan-sha"), ScanOptions(concurrency=3), progress=None)
    old_sha = hub.repos[repos[1]].refs["refs/heads/main"]
    new_sha = hub.commit(repos[1], {"README.md": b"# a new card\n"}, message="Update README.md")

    hub.reset_log()
    second = run_scan(store, ScanQuery("scan-sha"), ScanOptions(concurrency=3), progress=None)
    assert (second.cached, second.analysed) == (2, 1)
    assert requested_repos(hub) == {repos[1]}
    # the analysis read the listed commit, never a moving branch
    assert all(new_sha in e.path for e in hub.log if "/resolve/" in e.path)
    row = by_repo(store, second.scan_id)[repos[1]]
    assert row.sha == new_sha and row.report["sha"] == new_sha
    assert row.report["parameters"]["total"] == LLAMA_PARAMS
    # the result for the old commit is pruned; the others keep their first (and only) attempt
    assert store.attempts(repos[1]) == [(new_sha, "ok", 1)]
    assert store.attempts(repos[0])[0][2] == 1
    assert old_sha != new_sha and first.scan_id != second.scan_id


def test_a_failure_is_recorded_does_not_block_others_and_is_retried_next_run(hub, store, fast_retries):
    repos = make_org(hub, "scan-fail", 3, nobin=True)
    hub.fail_next(r"^/scan-fail/llama-1/resolve/.*\.safetensors$", n=1000, status=503, method="GET")
    first = run_scan(store, ScanQuery("scan-fail"), ScanOptions(concurrency=2), progress=None)
    rows = by_repo(store, first.scan_id)
    assert rows[repos[1]].status == "error"
    assert rows[repos[1]].error["type"] == "NetworkError" and rows[repos[1]].error["exit_code"] == 8
    assert "503" in rows[repos[1]].error["message"]
    assert rows[repos[0]].status == rows[repos[2]].status == "ok"
    assert first.counts == {"listed": 4, "ok": 2, "error": 2, "pending": 0, "retry": 1}

    hub.reset_faults()
    hub.reset_log()
    second = run_scan(store, ScanQuery("scan-fail"), ScanOptions(concurrency=2), progress=None)
    # only the transient failure is tried again; the repo without weights would fail the same way
    assert requested_repos(hub) == {repos[1]}
    assert (second.analysed, second.failed, second.cached) == (1, 0, 3)
    row = by_repo(store, second.scan_id)[repos[1]]
    assert row.status == "ok" and row.report["parameters"]["total"] == LLAMA_PARAMS
    assert store.attempts(repos[1])[0][2] == 2

    # --retry-errors analyses the repo without weights again; the listing's file names already show it has
    # none, so that costs no request at all
    hub.reset_log()
    third = run_scan(store, ScanQuery("scan-fail"), ScanOptions(retry_errors=True), progress=None)
    assert third.failed == 1 and third.analysed == 0 and third.cached == 3
    assert store.attempts("scan-fail/only-bin")[0][1:] == ("error", 2)
    assert requested_repos(hub) == set()


def test_gated_repos_skipped_or_recorded(hub, store):
    make_org(hub, "scan-gated", 1, gated=True)
    skipped = run_scan(store, ScanQuery("scan-gated", gated="skip"), progress=None)
    assert skipped.skipped_gated == 1 and skipped.listed == 1
    assert [r.repo_id for r in store.rows(skipped.scan_id)] == ["scan-gated/llama-0"]

    included = run_scan(store, ScanQuery("scan-gated"), progress=None)
    rows = by_repo(store, included.scan_id)
    assert rows["scan-gated/gated"].error["type"] == "GatedRepoError"
    assert rows["scan-gated/gated"].error["exit_code"] == 4
    assert rows["scan-gated/gated"].gated == "manual"
    assert included.counts["retry"] == 1  # access can be granted later: retried on the next run
    with_access = run_scan(store, ScanQuery("scan-gated"), ScanOptions(token="hf_granted"), progress=None)
    assert (
        by_repo(store, with_access.scan_id)["scan-gated/gated"].report["parameters"]["total"] == LLAMA_PARAMS
    )


def test_search_filter_and_limit_narrow_the_listing(hub, store):
    make_org(hub, "scan-query", 3, nobin=True)
    assert run_scan(store, ScanQuery("scan-query", search="llama-2"), progress=None).listed == 1
    # the repo without weights has no library tag: only the three copies carry "transformers"
    assert run_scan(store, ScanQuery("scan-query", filters=("transformers",)), progress=None).listed == 3
    assert run_scan(store, ScanQuery("scan-query", limit=2), progress=None).listed == 2


def test_ctrl_c_keeps_finished_results_and_the_next_run_resumes(hub, store, monkeypatch):
    repos = make_org(hub, "scan-ctrlc", 4)
    real = ScanStore.record_ok
    calls = []

    def record_then_interrupt(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls.append(args[1].repo_id)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ScanStore, "record_ok", record_then_interrupt)
    first = run_scan(store, ScanQuery("scan-ctrlc"), ScanOptions(concurrency=1), progress=None)
    monkeypatch.setattr(ScanStore, "record_ok", real)
    assert first.interrupted and first.counts["ok"] == 2
    assert store.scan_info(first.scan_id)["state"] == "interrupted"

    hub.reset_log()
    second = run_scan(store, ScanQuery("scan-ctrlc"), ScanOptions(concurrency=1), progress=None)
    assert not second.interrupted and (second.cached, second.analysed) == (2, 2)
    assert requested_repos(hub) == set(repos) - set(calls)


def test_killed_process_resumes_without_redoing_finished_repos(hub, tmp_path):
    """SIGKILL the real CLI mid-scan (no cleanup at all), then run it again."""
    repos = make_org(hub, "scan-kill", 6)
    db = tmp_path / "kill.sqlite"
    hub.latency_s = 0.02  # about 0.7 s per repo at concurrency 1, so the kill lands mid-scan
    cmd = [
        sys.executable,
        "-m",
        "hubfit.cli",
        "scan",
        "scan-kill",
        "--db",
        str(db),
        "--concurrency",
        "1",
        "-q",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    done: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    done = [r for (r,) in con.execute("SELECT repo_id FROM results WHERE status = 'ok'")]
            except sqlite3.OperationalError:
                done = []
            if len(done) >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 2 <= len(done) < len(repos), "the kill should land mid-scan"
    with sqlite3.connect(db) as con:
        done = [r for (r,) in con.execute("SELECT repo_id FROM results WHERE status = 'ok'")]

    hub.latency_s = 0.0
    hub.reset_log()
    out, err = io.StringIO(), io.StringIO()
    with ScanStore(db) as store:
        result = run_scan(store, ScanQuery("scan-kill"), ScanOptions(concurrency=2), progress=err)
        rows = by_repo(store, result.scan_id)
    assert requested_repos(hub) == set(repos) - set(done)
    assert result.cached == len(done) and result.analysed == len(repos) - len(done)
    assert sorted(rows) == sorted(repos) and {r.status for r in rows.values()} == {"ok"}
    assert all(r.report["parameters"]["total"] == LLAMA_PARAMS for r in rows.values())
    assert out.getvalue() == ""


def test_json_and_jsonl_rows_are_the_analyze_json_plus_error(hub, store, capsys):
    repos = make_org(hub, "scan-json", 2, nobin=True)
    result = run_scan(store, ScanQuery("scan-json"), progress=None)
    jsonl = io.StringIO()
    assert write("jsonl", lambda: store.rows(result.scan_id), jsonl) == 3
    lines = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    as_json = io.StringIO()
    write("json", lambda: store.rows(result.scan_id), as_json)
    assert json.loads(as_json.getvalue()) == lines

    sha = hub.repos[repos[0]].refs["refs/heads/main"]
    assert main(["analyze", repos[0], "--revision", sha, "--json", "-q"]) == 0
    expected = json.loads(capsys.readouterr().out)  # what `hubfit REPO --revision SHA --json` prints
    assert lines[0] == {**expected, "error": None}
    assert lines[0]["parameters"]["total"] == LLAMA_PARAMS
    failed = next(line for line in lines if line["repo_id"] == "scan-json/only-bin")
    assert failed["error"]["type"] == "NoWeightsError" and failed["error"]["exit_code"] == 6
    assert "pytorch_model.bin" in failed["error"]["message"]
    assert failed["sha"] == hub.repos["scan-json/only-bin"].refs["refs/heads/main"]


def test_csv_md_and_table_have_one_row_per_repo(hub, store):
    make_org(hub, "scan-flat", 2, nobin=True)
    result = run_scan(store, ScanQuery("scan-flat"), progress=None)
    rows = lambda: store.rows(result.scan_id)  # noqa: E731

    out = io.StringIO()
    write("csv", rows, out)
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["repo_id"] for r in records] == ["scan-flat/llama-0", "scan-flat/llama-1", "scan-flat/only-bin"]
    assert records[0]["parameters"] == str(LLAMA_PARAMS) and records[0]["status"] == "ok"
    assert records[0]["weights_bytes"] == str(LLAMA_PARAMS * 2 + 80 * 64 * 4)
    assert records[2]["status"] == "error" and records[2]["error_type"] == "NoWeightsError"

    out = io.StringIO()
    write("md", rows, out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 + 3 and lines[1].startswith("|---|")
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])

    out = io.StringIO()
    write("table", rows, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("MODEL") and len(lines) == 1 + 3
    # 68,976,648,192 parameters and 137,953,316,864 weight bytes, written by hubfit.units as every output does
    assert "68.98B" in lines[1] and "137.95 GB" in lines[1]


def test_fits_columns_are_the_reports_fitting_row_with_fewest_devices(hub, store):
    """The fits columns read each report's fit rows: among the rows whose detail says ``fits``, the fewest
    devices, then the least memory per device, whatever the order the GPUs were asked in."""
    for name, source in (("llama", LLAMA), ("mistral", "mistralai/Mistral-7B-v0.1")):
        hub.add_repo(f"scan-fits/{name}", dict(hub.repos[source].head.files))
    gpus = ("rtx-3060-12gb", "rtx-4090", "l4", "h200")

    def fits_columns(hardware: HardwareQuery) -> tuple[dict, dict[str, dict[str, str]]]:
        result = run_scan(store, ScanQuery("scan-fits"), ScanOptions(hardware=hardware), progress=None)
        out = io.StringIO()
        write("csv", lambda: store.rows(result.scan_id), out)
        records = {r["repo_id"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
        return by_repo(store, result.scan_id)["scan-fits/llama"].report, records

    llama, records = fits_columns(HardwareQuery(gpus=gpus))
    bf16 = [(f["gpu"], f["count"]) for f in llama["fits"] if f["precision"] == "bf16"]
    assert bf16 == [("RTX 3060 12GB", 16), ("RTX 4090", 8), ("L4", 8), ("H200 141GB", 1)]
    assert records["scan-fits/llama"]["smallest_fit_bf16"] == "1x H200 141GB"
    # one RTX 4090 (24 GiB) and one L4 (22.5 GiB) both hold Mistral-7B in bf16 (16.0 GB): the smaller card
    assert records["scan-fits/mistral"]["smallest_fit_bf16"] == "1x L4"

    # --gpus 1: every row has one device; a row whose detail says does_not_fit is no fit
    llama, records = fits_columns(HardwareQuery(gpus=gpus, count=1))
    verdicts = [(f["count"], d["verdict"]) for f, d in zip(llama["fits"], llama["fit_details"], strict=True)]
    assert (1, "does_not_fit") in verdicts
    assert records["scan-fits/llama"]["smallest_fit_bf16"] == "1x H200 141GB"
    assert records["scan-fits/llama"]["smallest_fit_fp32"] == ""  # 278.7 GB: no single listed GPU holds it


def test_cli_scan_writes_files_and_lists_failures(hub, tmp_path, capsys):
    make_org(hub, "scan-cli", 1, nobin=True)
    db, out, page = tmp_path / "c.sqlite", tmp_path / "scan.jsonl", tmp_path / "scan.html"
    code = main(
        ["scan", "scan-cli", "--db", str(db), "--format", "jsonl", "-o", str(out), "--html", str(page)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert [json.loads(line)["repo_id"] for line in out.read_text().splitlines()] == [
        "scan-cli/llama-0",
        "scan-cli/only-bin",
    ]
    assert captured.out.startswith("scan-cli/only-bin: NoWeightsError: ")
    assert "scan scan-cli: done" in captured.err and "1 analysed, 1 failed" in captured.err
    assert page.read_text().count('<tr class="') == 2

    code = main(["scan", "scan-cli", "--db", str(db), "-q"])
    captured = capsys.readouterr()
    assert code == 0 and "2 cached, 0 analysed" in captured.err
    assert captured.out.splitlines()[0].startswith("MODEL")


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    with pytest.raises(UsageError):
        ScanQuery("org/name")
    with pytest.raises(UsageError):
        ScanOptions(concurrency=0)
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    assert main(["scan", "someone", "--db", str(bad)]) == 2
    assert "not a usable hubfit scan database" in capsys.readouterr().err


def test_listed_files_are_validated_as_strictly_as_a_single_analysis(hub, store):
    """The listing gives file names without sizes; the size comes from the first read's Content-Range, so
    a header pointing past the end of its file is still rejected (fixtures/README.md: hostile-* repos)."""
    result = run_scan(store, ScanQuery("hubfit-fixtures", search="hostile"), progress=None)
    rows = by_repo(store, result.scan_id)
    assert {
        "hubfit-fixtures/hostile-out-of-file-offsets",
        "hubfit-fixtures/hostile-length-beyond-file",
    } <= set(rows)
    for repo_id, row in rows.items():
        assert row.status == "error" and row.error["type"] == "HeaderError", repo_id
    assert "the file is" in rows["hubfit-fixtures/hostile-out-of-file-offsets"].error["message"]
    assert "runs past the end" in rows["hubfit-fixtures/hostile-length-beyond-file"].error["message"]
    assert result.counts["retry"] == 0  # the same commit would fail the same way: not retried
    # no model_info per repo: the listing said which files exist
    assert not [e for e in hub.log if e.path.startswith("/api/models/")]


def test_markdown_output_keeps_hub_text_inert(tmp_path):
    """Error messages quote repository contents; in ``--format md`` they cannot become HTML or links."""
    cmarkgfm = pytest.importorskip("cmarkgfm")
    hostile = "tensor '<img src=x onerror=alert(1)>' has unknown dtype '[x](https://evil.example)'"
    with ScanStore(tmp_path / "s.sqlite") as store:
        scan_id = store.begin_scan("evil", {}, "s")
        repo = ListedRepo("evil/model", "0" * 40)
        store.add_items(scan_id, [repo])
        error = {"type": "HeaderError", "message": hostile, "exit_code": 7}
        store.record_error(scan_id, repo, "s", error, retry=False, version="test")
        out = io.StringIO()
        write("md", lambda: store.rows(scan_id), out)
    rendered = cmarkgfm.github_flavored_markdown_to_html(out.getvalue())
    assert "<img" not in rendered and "<a " not in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered and rendered.count("<tr>") == 2


class _Clock:
    """A monotonic clock the test moves: each repo of the progress tests takes 0.1 s."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _feed(progress, clock: _Clock, total: int, failed: set[int]) -> None:
    for i in range(1, total + 1):
        clock.now += 0.1
        progress.update(i not in failed)


def test_scan_progress_off_a_terminal_is_a_line_per_100_repos():
    from hubfit.scan.runner import Progress

    out, clock = io.StringIO(), _Clock()
    progress = Progress(out, "scan acme", 250, tty=False, clock=clock)
    _feed(progress, clock, 250, failed={42})
    progress.close()
    assert out.getvalue().splitlines() == [
        "scan acme: 100/250 (40%)  errors 1  ETA 15s",
        "scan acme: 200/250 (80%)  errors 1  ETA 5s",
        "scan acme: 250/250 (100%)  errors 1  done in 25s",
    ]
    assert "\r" not in out.getvalue()


def test_scan_progress_on_a_terminal_is_a_bar_redrawn_with_carriage_returns():
    from hubfit.scan.runner import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, clock = Terminal(), _Clock()
    progress = Progress(out, "scan acme", 250, redraw_s=5.0, clock=clock)  # tty asked of the stream
    _feed(progress, clock, 250, failed={150})
    progress.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and "\x1b" not in text
    frames = text[:-1].split("\r")[1:]
    # drawn at once, then every 5 s (50 repos), then at the end; a shorter frame is padded over the last
    assert [frame.rstrip() for frame in frames] == [
        "scan acme: [--------------------] 0/250 0%  errors 0  ETA --",
        "scan acme: [####----------------] 50/250 20%  errors 0  ETA 20s",
        "scan acme: [########------------] 100/250 40%  errors 0  ETA 15s",
        "scan acme: [############--------] 150/250 60%  errors 1  ETA 10s",
        "scan acme: [################----] 200/250 80%  errors 1  ETA 5s",
        "scan acme: [####################] 250/250 100%  errors 1  done in 25s",
    ]
    assert all(len(later) >= len(earlier) for earlier, later in zip(frames, frames[1:], strict=False))


def test_scan_progress_stopped_early_ends_the_bar_line():
    from hubfit.scan.runner import Progress

    out, clock = io.StringIO(), _Clock()
    progress = Progress(out, "scan acme", 250, tty=True, clock=clock)
    _feed(progress, clock, 7, failed=set())
    progress.close()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    assert out.getvalue().rstrip().endswith("7/250 3%  errors 0  ETA 24s")


@pytest.mark.parametrize("tty", [False, True])
def test_cli_scan_progress_goes_to_stderr_only(hub, tmp_path, monkeypatch, capsys, tty):
    author = f"scan-progress-{int(tty)}"
    make_org(hub, author, 3, nobin=True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    assert main(["scan", author, "--db", str(tmp_path / "p.sqlite")]) == 0
    captured = capsys.readouterr()
    assert "errors" not in captured.out and "\r" not in captured.out
    lines = captured.err.split("\n")  # (splitlines would split the bar's frames too)
    assert lines[0] == f"scan {author}: listing models ..."
    assert lines[1].startswith(f"scan {author}: 4 models listed in ")
    if tty:
        frames = lines[2].split("\r")[1:]
        assert frames[0].rstrip() == f"scan {author}: [--------------------] 0/4 0%  errors 0  ETA --"
        last = frames[-1]
        assert last.startswith(f"scan {author}: [####################] 4/4 100%  errors 1  done in ")
    else:
        assert lines[2].startswith(f"scan {author}: 4/4 (100%)  errors 1  done in ")
        assert "\r" not in captured.err
    assert lines[3].startswith(f"scan {author}: done in ") and lines[4:] == [""]

    # --quiet: the closing summary only
    assert main(["scan", author, "--db", str(tmp_path / "p.sqlite"), "--quiet", "--refresh"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        line for line in err.splitlines() if line.startswith(f"scan {author}: done in ")
    ]
    assert len(err.splitlines()) == 1 and "\r" not in err
