"""The red-team suite (issue 19): one test per attack, each listed in docs/redteam.md with what hubfit answers.

Attacks come from where hubfit reads untrusted text: the Action's inputs (a workflow author or a pull request
may set them), repository contents (directory and file names, config.json strings), the Hub's answers
(Retry-After), a model card's existing text, and the scan's own cache file on disk. Several were already
handled before issue 19; their tests document it, and each fails against an implementation that is wrong in
the way named in its docstring.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import cmarkgfm
import pytest
import yaml
from cmarkgfm.cmark import Options
from markdown_it import MarkdownIt
from tinymodel import TINY, prefix_only, tiny_tensors, write_model

import hubfit.constants
from fixtures.hub_server import FileEntry
from hubfit._http import Backoff, RetryPolicy
from hubfit.action.inputs import ActionInputs
from hubfit.action.outputs import log
from hubfit.cli import main
from hubfit.errors import PublishError
from hubfit.publish.cardtext import END_MARKER, START_MARKER, apply_section, current_section, find_section
from hubfit.render.comment import render_comment
from hubfit.render.report import card_section, to_markdown
from hubfit.scan.html import PageInfo, write_html
from hubfit.scan.store import ScanStore
from hubfit.source.hub import HubClient
from tests.test_action import ACTION_YML, REPO, Checkout, FakeGitHub, run_step

SECRET = "hf_RedTeamSecret0123456789abcdefXYZ"
GH_SECRET = "ghs_RedTeamGitHubSecret0123456789abc"


@pytest.fixture
def gh(fake_hub) -> Iterator[FakeGitHub]:
    server = FakeGitHub({})
    yield server
    server.stop()


def _tiny_weights() -> FileEntry:
    return FileEntry.safetensors(prefix_only(tiny_tensors())[8:])


def _checkout(tmp_path: Path, gh: FakeGitHub, config: dict | None = None) -> Checkout:
    """A checkout whose ``model/`` holds the tiny model's real files (as after ``lfs: true``)."""
    checkout = Checkout(tmp_path / "repo", f"{gh.url}/{REPO}")
    checkout.git("commit", "-q", "--allow-empty", "-m", "start")
    files = {
        "config.json": FileEntry.blob(json.dumps(config or TINY).encode()),
        "model.safetensors": _tiny_weights(),
    }
    checkout.write(files, pointers=False)
    return checkout


PUSH = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}


def _command_lines(stdout: str) -> list[str]:
    """The lines the runner would read as workflow commands."""
    return [line for line in stdout.splitlines() if line.lstrip().startswith("::")]


# ---- 1. the Action's inputs: shell metacharacters and line breaks ------------------------------------------


def test_action_yml_never_interpolates_an_input_into_a_script():
    """``${{ inputs.x }}`` inside ``run:`` is script injection: every input reaches the step as INPUT_*."""
    spec = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    steps = spec["runs"]["steps"]
    for step in steps:
        assert "${{" not in str(step.get("run", "")), step.get("name")
    env = next(s for s in steps if s.get("id") == "hubfit")["env"]
    for name in spec["inputs"]:
        assert env[f"INPUT_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}"


def _payload(canary: Path) -> str:
    return (
        f"$(touch {canary}/1)`touch {canary}/2`;touch {canary}/3|touch {canary}/4&&touch {canary}/5 '\"$HOME"
    )


def test_shell_metacharacters_in_every_input_are_data(tmp_path, fake_hub, gh):
    """The real step run by bash with every input set to command substitutions, pipes and quotes: nothing runs,
    one error line, no forged workflow command."""
    canary = tmp_path / "canary"
    canary.mkdir()
    spec = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    inputs = {name: _payload(canary) for name in spec["inputs"]}
    done, outputs, _ = run_step(tmp_path, gh, _checkout(tmp_path, gh), "push", PUSH, inputs)
    assert list(canary.iterdir()) == []
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = _command_lines(done.stdout)
    assert line.startswith("::error title=hubfit::input ") and outputs == {}


@pytest.mark.parametrize(
    "name",
    ["model", "hub-repo", "revision", "context", "batch", "gpus", "precisions", "comment", "update-card",
     "hf-token", "github-token", "fail-if-exceeds", "report-dir"],
)  # fmt: skip
def test_a_line_break_in_any_input_is_refused_or_splits_a_list(name):
    """A newline in an input that reached a log line would start a workflow command of the attacker's."""
    env = {f"INPUT_{name.upper().replace('-', '_')}": "x\n::set-output name=fits::true\n::add-mask::y"}
    if name in ("gpus", "precisions"):  # lists: a line break separates items, as a comma does
        items = getattr(ActionInputs.from_env(env), name)
        assert items == ("x", "::set-output name=fits::true", "::add-mask::y")
        return
    with pytest.raises(Exception, match=f"^input {name} must be one line") as caught:
        ActionInputs.from_env(env)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    if name.endswith("token"):
        assert "set-output" not in str(caught.value)  # a secret's value is never quoted


def test_a_line_break_in_an_input_run_by_the_runner(tmp_path, fake_hub, gh):
    done, outputs, _ = run_step(
        tmp_path,
        gh,
        _checkout(tmp_path, gh),
        "push",
        PUSH,
        {"revision": "main\n::set-output name=fits::true"},
    )
    assert done.returncode == 2 and outputs == {}
    (line,) = _command_lines(done.stdout)
    assert line == (
        "::error title=hubfit::input revision must be one line without control characters "
        "(got 'main\\n::set-output name=fits::true')"
    )


def test_log_lines_escape_what_they_quote(capsys):
    """Whatever a message quotes (an input, a repository's text), it stays one line and one command."""
    log("::error title=hubfit::bad\n::add-mask::x 100%\r")
    log("hubfit: model\n::set-output name=fits::true")
    assert capsys.readouterr().out.splitlines() == [
        "::error title=hubfit::bad%0A::add-mask::x 100%25%0D",
        "hubfit: model ::set-output name=fits::true",
    ]


def test_the_base_commit_is_never_read_as_a_git_option(tmp_path):
    from hubfit.action.git import ensure_commit
    from hubfit.errors import HubfitError

    with pytest.raises(HubfitError, match="not a full commit id"):
        ensure_commit(tmp_path, "--upload-pack=touch /tmp/x")


# ---- 2. the token is never printed ------------------------------------------------------------------------------


def _secret_repo(hub, **attrs) -> str:
    repo_id = f"redteam-token/tiny-{len(hub.repos)}"
    files = {"config.json": json.dumps(TINY).encode(), "model.safetensors": _tiny_weights()}
    hub.add_repo(repo_id, files, **attrs)
    return repo_id


def test_the_hub_token_is_never_printed_or_logged(hub, capsys, caplog, monkeypatch):
    """Success (text, JSON, Markdown), a gated repo the token cannot read (4), a private one (3), a token the Hub
    rejects (exit 3: 401), a Hub that keeps failing (8): no output, error or log record holds the token."""
    monkeypatch.setattr(hubfit.constants, "RETRY_ATTEMPTS", 2)
    monkeypatch.setattr(hubfit.constants, "RETRY_BASE_S", 0.0)
    caplog.set_level(logging.DEBUG)
    readable = _secret_repo(hub, gated="auto", authorized_tokens={SECRET})
    seen = ""
    for args, code in [
        ([readable], 0),
        ([readable, "--json"], 0),
        ([readable, "--markdown"], 0),
        ([_secret_repo(hub, gated="auto")], 4),
        ([_secret_repo(hub, private=True)], 3),
    ]:
        assert main([*args, "--token", SECRET, "--gpu", "RTX 4090"]) == code, args
        seen += "".join(capsys.readouterr())
    hub.fail_next(r"/resolve/", 10, 500)
    assert main([readable, "--token", SECRET]) == 8
    seen += "".join(capsys.readouterr())
    hub.reset_faults()
    hub.invalid_tokens.add(SECRET)
    try:
        assert main([readable, "--token", SECRET]) != 0
    finally:
        hub.invalid_tokens.discard(SECRET)
    seen += "".join(capsys.readouterr())
    seen += "\n".join(record.getMessage() for record in caplog.records)
    assert "hubfit: error: " in seen and '"schema": "hubfit/1"' in seen
    assert SECRET not in seen and SECRET[3:] not in seen
    assert SECRET not in repr(HubClient(token=SECRET))


def test_the_action_never_prints_its_tokens(tmp_path, fake_hub, gh):
    """The step's log, its outputs, the job summary and every file it leaves (report.json, comment.md,
    action.json); and a token broken by a line break is refused without quoting it."""
    inputs = {"model": "model", "gpus": "RTX 4090", "hf-token": SECRET, "github-token": GH_SECRET}
    done, outputs, summary = run_step(tmp_path, gh, _checkout(tmp_path, gh), "push", PUSH, inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    texts = [done.stdout, done.stderr, summary, json.dumps(outputs)]
    texts += [p.read_text(errors="replace") for p in Path(outputs["dir"]).rglob("*") if p.is_file()]
    broken = {**inputs, "hf-token": SECRET + "\nmore"}
    (tmp_path / "b").mkdir()
    done, _, _ = run_step(tmp_path, gh, _checkout(tmp_path / "b", gh), "push", PUSH, broken)
    assert done.returncode == 2 and "its value is not shown" in done.stdout
    texts += [done.stdout, done.stderr]
    for text in texts:
        assert SECRET not in text and GH_SECRET not in text and SECRET[:12] not in text
    assert SECRET not in repr(ActionInputs.from_env({"INPUT_HF_TOKEN": SECRET}))


def test_a_scans_outputs_never_hold_the_token(hub, tmp_path, capsys):
    """The table, JSON, Markdown, the HTML page and the cache file itself."""
    author = "redteam-scan-token"
    for i in range(2):
        hub.add_repo(
            f"{author}/m{i}",
            {"config.json": json.dumps(TINY).encode(), "model.safetensors": _tiny_weights()},
            gated="auto" if i else None,
            authorized_tokens={SECRET},
        )
    db, page = tmp_path / "scan.sqlite", tmp_path / "scan.html"
    seen = ""
    for fmt in ("table", "json", "md"):
        args = [
            "scan",
            author,
            "--db",
            str(db),
            "--token",
            SECRET,
            "--format",
            fmt,
            "-q",
            "--html",
            str(page),
        ]
        assert main(args) == 0
        seen += "".join(capsys.readouterr())
    blobs = [db.read_bytes(), page.read_bytes(), *(p.read_bytes() for p in tmp_path.glob("scan.sqlite*"))]
    assert '"repo_id"' in seen
    assert SECRET not in seen and all(SECRET.encode() not in blob for blob in blobs)


# ---- 3. Markdown and HTML injection from repository strings ----------------------------------------------------

HOSTILE_DIR = "x](https:evil.example)<img src=x onerror=alert(1)>`<!-- hubfit:end -->"
HOSTILE_CONFIG = {
    **TINY,
    "model_type": "<script>alert(1)</script>",
    "architectures": ["[click](javascript:alert(1))", "\n<!-- hubfit:end -->\n<b>bold</b>"],
    "torch_dtype": "![pixel](https://tracker.example/p.png)",
    "quantization_config": {"quant_method": "<img src=q onerror=alert(2)> https://evil.example"},
}


@pytest.fixture
def hostile_report(tmp_path):
    """A local model whose directory name, config strings, quantization method and weight file name are
    hostile (a local directory's name is the report's repo id)."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import analyze
    from hubfit.sizing import Workload

    model = write_model(tmp_path / HOSTILE_DIR, HOSTILE_CONFIG)
    (model / "model.safetensors").rename(model / "model-<img src=f onerror=alert(3)>.safetensors")
    return analyze(str(model), workload=Workload(), hardware=HardwareQuery(gpus=("RTX 4090",)))


def _rendered(markdown: str) -> list[str]:
    return [
        cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE),
        MarkdownIt("gfm-like", {"linkify": True, "html": True}).render(markdown),
    ]


def _inert(html: str) -> None:
    for tag in ("<img", "<script", "<a ", "<b>"):
        assert tag not in html, (tag, html)


def test_repository_strings_are_inert_in_the_card_section(hostile_report):
    section = card_section(hostile_report)
    assert HOSTILE_DIR[:20] in section.replace("\\|", "|") or "x](https:evil.example)" in section
    lines = section.split("\n")
    assert lines.count(START_MARKER) == 1 and lines.count(END_MARKER) == 1  # no marker line forged
    card = apply_section(b"# Card\n", section, repo_id="org/model")
    assert current_section(card) == section
    for html in _rendered(section):
        _inert(html)


def test_repository_strings_are_inert_in_markdown_and_comments(hostile_report):
    """The report's strings, and the Action's column title for a Hub model at a branch whose name is HTML
    (git allows ``<``, ``>``, ``(``, ``)`` and ``!`` in a branch name)."""
    from hubfit.action.analysis import hub_label

    label = hub_label("org/model", "main<img/src=x/onerror=alert(1)>|x")
    documents = [
        to_markdown(hostile_report),
        render_comment(hostile_report, hostile_report, head_label=label),
        render_comment(hostile_report, None, head_label="head", base_error=f"base: {HOSTILE_DIR}"),
    ]
    for document in documents:
        for html in _rendered(document):
            _inert(html)


def test_repository_strings_are_escaped_in_the_scan_page(hostile_report, tmp_path):
    from hubfit.scan.store import ListedRepo

    with ScanStore(tmp_path / "s.sqlite") as store:
        scan_id = store.begin_scan("evil", {}, "s")
        repo = ListedRepo(hostile_report.repo_id, "0" * 40)
        store.add_items(scan_id, [repo])
        store.record_ok(scan_id, repo, "s", hostile_report.to_dict(), "test")
        out = io.StringIO()
        write_html(lambda: store.rows(scan_id), PageInfo("t", "evil", 0.0, "test"), out)
    page = out.getvalue()
    for raw in ("<img src=", "<script>alert", "<b>bold"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown as text


# ---- 4. model-card marker confusion -------------------------------------------------------------------------

SECTION = f"{START_MARKER}\n## Hardware requirements\n\nnew\n{END_MARKER}"
OLD = f"{START_MARKER}\nold\n{END_MARKER}"


@pytest.mark.parametrize(
    "card",
    [
        f"# Card\n{OLD}\n\n{OLD}\n",  # duplicated
        f"# Card\n{START_MARKER}\nold\n",  # a start without an end
        f"# Card\nold\n{END_MARKER}\n",  # an end without a start
        f"# Card\n{END_MARKER}\nold\n{START_MARKER}\n",  # an end before its start
        f"# Card\n{OLD}\n{START_MARKER}\n",  # a section, then a stray start
    ],
    ids=["duplicated", "start-only", "end-only", "end-before-start", "stray-start"],
)
def test_markers_that_do_not_pair_are_refused(card):
    with pytest.raises(PublishError, match="in an order hubfit cannot pair"):
        apply_section(card.encode(), SECTION, repo_id="org/model")


def test_a_card_with_duplicated_markers_is_left_as_it_is_on_the_hub(hub, capsys):
    """End to end: ``hubfit card`` refuses (exit 9) and writes nothing."""
    from publish_support import OWNER_TOKEN, new_repo, publish_writes

    repo_id = new_repo(hub, readme=f"# Card\n{OLD}\n\n{OLD}\n".encode())
    assert main(["card", repo_id, "--token", OWNER_TOKEN, "--commit"]) == 9
    assert "cannot pair" in capsys.readouterr().err
    assert publish_writes(hub, repo_id) == []


@pytest.mark.parametrize(
    "fence",
    [
        f"```markdown\n{OLD}\n```\n",
        f"~~~~\n{OLD}\n~~~~\n",
        f"    {START_MARKER}\n    old\n    {END_MARKER}\n",
    ],
    ids=["backticks", "tildes", "indented-code"],
)
def test_markers_in_code_are_documentation_not_a_section(fence):
    """Appended once outside the code, then updated in place; the documented markers stay as they were."""
    card = f"# Card\n\nHow hubfit marks its section:\n\n{fence}".encode()
    assert find_section(card) is None
    first = apply_section(card, SECTION, repo_id="org/model")
    assert first.startswith(card) and current_section(first) == SECTION
    updated = SECTION.replace("new", "newer")
    second = apply_section(first, updated, repo_id="org/model")
    assert second == card + b"\n" + updated.encode() + b"\n"


def test_a_card_ending_inside_an_unclosed_fence_is_refused():
    with pytest.raises(PublishError, match="never closed"):
        apply_section(b"# Card\n\n```\nexample\n", SECTION, repo_id="org/model")


def test_markers_in_the_front_matter_are_not_a_section():
    card = f"---\nnote: |\n  {START_MARKER}\n  {END_MARKER}\n---\n# Card\n".encode()
    new = apply_section(card, SECTION, repo_id="org/model")
    assert new == card + b"\n" + SECTION.encode() + b"\n"


# ---- 5. Retry-After: huge or malformed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "slept"),
    [
        ("86400", 120.0),  # a day: capped at HUBFIT_RETRY_AFTER_MAX_S
        ("9" * 300, 120.0),  # 10^300 seconds: capped
        ("9" * 400, 1.0),  # past float range, infinity: not a wait, the backoff
        ("Fri, 31 Dec 9999 23:59:59 GMT", 120.0),  # a date in 8,000 years: capped
        ("soon", 1.0),  # not a wait: the backoff (1 s, no jitter here)
        ("1e999", 1.0),  # infinity
        ("nan", 1.0),
        ("9" * 5000, 1.0),  # past float range: infinity
        ("Mon, 01 Jan 99999999999999999999 00:00:00 GMT", 1.0),  # a year that overflows
        ("-30", 0.0),  # a past wait: send again now
    ],
)
def test_a_huge_or_malformed_retry_after_is_capped_and_slept(hub, value, slept):
    """Through the Hub client against the fake Hub: the wait actually slept is recorded."""
    hub.retry_after = value
    hub.fail_next(r"^/api/models/Qwen/Qwen2.5-0.5B$", 1, 429)
    sleeps: list[float] = []
    client = HubClient(token=None, sleep=sleeps.append)
    client.backoff = Backoff(RetryPolicy(attempts=3, base_s=1.0, jitter=0.0), sleep=sleeps.append)
    assert client.snapshot("Qwen/Qwen2.5-0.5B").sha
    assert sleeps == ([slept] if slept else [])


# ---- 6. the scan's SQLite cache: corrupted, locked, read-only, full ------------------------------------------

AUTHOR = "redteam-cache"


@pytest.fixture
def org(fake_hub) -> list[str]:
    """Four tiny models under one author (made once per session)."""
    repos = [f"{AUTHOR}/m{i}" for i in range(4)]
    for repo_id in repos:
        if repo_id not in fake_hub.repos:
            files = {"config.json": json.dumps(TINY).encode(), "model.safetensors": _tiny_weights()}
            fake_hub.add_repo(repo_id, files)
    return repos


def _scan(db: Path, capsys) -> tuple[int, str]:
    code = main(["scan", AUTHOR, "--db", str(db), "-q", "--format", "json"])
    return code, capsys.readouterr().err


def _ok(db: Path) -> int:
    with ScanStore(db) as store:
        scan_id = store.latest_scan(AUTHOR)
        return 0 if scan_id is None else store.counts(scan_id)["ok"]


def test_a_file_that_is_not_a_database_is_a_usage_error(org, tmp_path, capsys):
    """Already handled: a wrong --db (exit 2), the file left alone."""
    db = tmp_path / "notes.txt"
    db.write_bytes(b"these are my notes, not a database" * 100)
    code, err = _scan(db, capsys)
    assert code == 2 and "is not a usable hubfit scan database" in err
    assert db.read_bytes().startswith(b"these are my notes")


def test_a_damaged_cache(org, hub, tmp_path, capsys):
    db = tmp_path / "scan.sqlite"
    assert _scan(db, capsys)[0] == 0
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\x5a" * (len(data) - page)  # every page but the first (the schema) overwritten
    db.write_bytes(bytes(data))
    for extra in tmp_path.glob("scan.sqlite-*"):
        extra.unlink()
    code, err = _scan(db, capsys)
    assert code == 13 and err.startswith(f"hubfit: error: scan cache {db}: it is damaged; move it away")
    assert "internal error" not in err


def test_a_locked_cache(org, tmp_path, capsys, monkeypatch):
    """Another process holds the write lock: a clear error after HUBFIT_SCAN_DB_TIMEOUT_S, nothing lost."""
    db = tmp_path / "scan.sqlite"
    assert _scan(db, capsys)[0] == 0
    monkeypatch.setattr(hubfit.constants, "SCAN_DB_TIMEOUT_S", 0.2)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        code, err = _scan(db, capsys)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert code == 13 and "it is locked by another process" in err and err.count("\n") == 1
    assert _ok(db) == 4


def test_a_read_only_cache(org, tmp_path, capsys, monkeypatch):
    """The file opened read-only (as on a read-only mount; chmod does not stop root, so SQLite is asked)."""
    db = tmp_path / "scan.sqlite"
    assert _scan(db, capsys)[0] == 0
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda path, **kw: connect(f"file:{path}?mode=ro", uri=True, **kw)
    )
    code, err = _scan(db, capsys)
    monkeypatch.undo()
    assert code == 13 and "it is read-only; make it writable, or pass another --db" in err
    assert _ok(db) == 4


def test_a_full_disk_mid_scan_loses_no_result_and_resumes(org, hub, tmp_path, capsys, monkeypatch):
    """SQLite's own SQLITE_FULL after two results (max_page_count pinned where the file stands): exit 13, the
    two results kept, and the next run analyses only the other two."""
    db = tmp_path / "scan.sqlite"
    record_ok = ScanStore.record_ok
    written: list[str] = []

    def record_then_fill(self, scan_id, repo, *args, **kwargs):
        record_ok(self, scan_id, repo, *args, **kwargs)
        written.append(repo.repo_id)
        if len(written) == 2:
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            self._db.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(ScanStore, "record_ok", record_then_fill)
    code, err = _scan(db, capsys)
    monkeypatch.undo()
    assert code == 13 and "the disk is full; free space (database or disk is full)" in err
    assert "results recorded before this are kept" in err
    assert _ok(db) == 2
    hub.reset_log()
    assert _scan(db, capsys)[0] == 0 and _ok(db) == 4
    read = {e.path.split("/resolve/")[0].strip("/") for e in hub.log if "/resolve/" in e.path}
    assert read == set(org) - set(written)
