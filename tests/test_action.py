"""The GitHub Action end to end, without GitHub.

Each test builds a Git repository the way a model repo on GitHub looks after ``actions/checkout`` without
``lfs: true``: small files as they are, weights as Git LFS pointer files. The weights are the fixture repos of
the fake Hub (fixtures/catalog.py), so every header is real public metadata (fixtures/README.md). A local
server (:class:`FakeGitHub`, started by the test, since the action runs in a subprocess) answers the GitHub
REST calls (issue comments, pulls) and the Git LFS batch API with ranged object reads, recording every request.
``HF_ENDPOINT`` points at the session's fake Hub (tests/conftest.py).

The action runs as the runner runs it: the ``Run hubfit`` step of ``action.yml`` is executed with bash, its
``env:`` evaluated from the inputs (``${{ inputs.* }}``, with ``action.yml``'s defaults), with the runner's
``GITHUB_*`` variables and a real ``pull_request`` webhook payload.

Published figures used below (fixtures/README.md): meta-llama/Llama-2-70b-hf has 68,976,648,192 parameters,
stored as F16 (2 bytes each) plus 80 x 64 F32 ``rotary_emb.inv_freq`` buffers: 137,953,316,864 bytes.
Qwen/Qwen2.5-0.5B has 494,032,768 BF16 parameters.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.catalog import LLAMA2_70B, LLAMA2_70B_GPTQ, QWEN25_05B, TOKEN_GRANTED
from fixtures.hub_server import FileEntry
from hubfit.action.comment import marker
from hubfit.action.git import write_tree
from hubfit.action.inputs import ActionInputs, FitTarget, RunnerContext
from hubfit.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
ACTION_YML = ROOT / "action.yml"
REPO = "octo-org/llama"
TOKEN = "ghs_test_installation_token"
BOT = "github-actions[bot]"

LLAMA2_70B_PARAMS = 68_976_648_192
LLAMA2_70B_BYTES = 68_976_648_192 * 2 + 80 * 64 * 4  # = 137,953,316,864
QWEN_PARAMS = 494_032_768


# ---- a fake GitHub: REST API + Git LFS server --------------------------------------------------------------


class FakeGitHub:
    """GitHub's REST API (comments, pulls, /user) and a Git LFS server for ``REPO``, on 127.0.0.1.

    ``objects`` maps LFS oids to the fixture files they stand for. ``requests`` logs (method, path, headers).
    """

    def __init__(self, objects: dict[str, FileEntry]) -> None:
        self.objects = objects
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[int, str] = {}
        self.lfs_missing = False
        self.ranges: list[tuple[int, int]] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                with server._lock:
                    server.requests.append((method, self.path, dict(self.headers)))
                    status, payload, raw = server.dispatch(method, self.path, self.headers, self._body())
                self._send(status, payload, raw)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str, pattern: str) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if r[0] == method and re.search(pattern, r[1])]

    def dispatch(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any, bytes | None]:
        if path.startswith("/lfs/"):
            entry = self.objects[path.rsplit("/", 1)[1]]
            start, end = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", headers["Range"]).groups())
            self.ranges.append((start, end))
            return 206, None, entry.read(start, end + 1)
        if path == f"/{REPO}.git/info/lfs/objects/batch":
            assert headers["Content-Type"] == "application/vnd.git-lfs+json"
            if (
                headers.get("Authorization")
                != "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
            ):
                return 401, {"message": "Credentials needed"}, None
            out = []
            for obj in body["objects"]:
                if self.lfs_missing or obj["oid"] not in self.objects:
                    out.append({**obj, "error": {"code": 404, "message": "Object does not exist"}})
                else:
                    out.append({**obj, "actions": {"download": {"href": f"{self.url}/lfs/{obj['oid']}"}}})
            return 200, {"transfer": "basic", "objects": out}, None
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}, None
        if path == "/user":  # an Actions installation token cannot read /user
            return 403, {"message": "Resource not accessible by integration"}, None
        match = re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments(\?.*)?", path)
        if match and method == "GET":
            return 200, self.comments.get(int(match.group(1)), []), None
        if match and method == "POST":
            self._next_id += 1
            comment = {
                "id": self._next_id,
                "body": body["body"],
                "user": {"login": BOT},
                "html_url": f"{self.url}/{REPO}/pull/{match.group(1)}#issuecomment-{self._next_id}",
            }
            self.comments.setdefault(int(match.group(1)), []).append(comment)
            return 201, comment, None
        match = re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", path)
        if match and method == "PATCH":
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(match.group(1)):
                    comment["body"] = body["body"]
                    return 200, comment, None
        match = re.fullmatch(rf"/repos/{REPO}/pulls/(\d+)", path)
        if match and int(match.group(1)) in self.pulls:
            return (
                200,
                {"number": int(match.group(1)), "head": {"sha": self.pulls[int(match.group(1))]}},
                None,
            )
        return 404, {"message": "Not Found"}, None


def _files(fake_hub, repo_id: str) -> dict[str, FileEntry]:
    return dict(fake_hub.repos[repo_id].head.files)


@pytest.fixture
def github(fake_hub) -> Iterator[FakeGitHub]:
    objects = {}
    for repo_id in (LLAMA2_70B, LLAMA2_70B_GPTQ, QWEN25_05B):
        objects.update({e.sha256: e for e in _files(fake_hub, repo_id).values() if e.lfs})
    server = FakeGitHub(objects)
    yield server
    server.stop()


# ---- a checkout ----------------------------------------------------------------------------------------------


class Checkout:
    """A Git repository in ``path`` whose ``model/`` directory holds a fixture repo's files per commit."""

    def __init__(self, path: Path, remote: str | None) -> None:
        self.path = path
        if remote is None:  # an existing clone
            return
        path.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ci@example.test")
        self.git("config", "user.name", "CI")
        self.git("remote", "add", "origin", remote)

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, files: dict[str, FileEntry], message: str) -> str:
        """Replace model/ with ``files`` (LFS files as pointer files) and commit; returns the sha."""
        self.write(files, pointers=True)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def write(self, files: dict[str, FileEntry], *, pointers: bool) -> None:
        """Replace model/ with ``files``: LFS files as pointer files, or as the real files (``pointers=False``)."""
        model = self.path / "model"
        shutil.rmtree(model, ignore_errors=True)
        for name, entry in files.items():
            target = model / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.lfs and pointers:
                target.write_bytes(entry.lfs_pointer)
            elif entry.lfs:
                # The real file: its header, then a sparse hole up to its size (no disk blocks for the zeros).
                with target.open("wb") as fh:
                    fh.write(entry.prefix)
                    fh.truncate(entry.size)
            else:
                target.write_bytes(entry.prefix)


# A pull_request "synchronize" webhook payload, trimmed to the fields a workflow reads, from GitHub's own
# example (octokit/webhooks payload-examples/api.github.com/pull_request/synchronize.payload.json); repository
# names and commit shas are replaced by the test repository's.
PULL_REQUEST_PAYLOAD: dict[str, Any] = {
    "action": "synchronize",
    "number": 2,
    "pull_request": {
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/2",
        "id": 279147437,
        "node_id": "MDExOlB1bGxSZXF1ZXN0Mjc5MTQ3NDM3",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/2",
        "number": 2,
        "state": "open",
        "locked": False,
        "title": "Update the README with new information.",
        "user": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": False},
        "body": "This is a pretty simple change that we need to pull into master.",
        "created_at": "2019-05-15T15:20:33Z",
        "updated_at": "2019-05-15T15:20:33Z",
        "merge_commit_sha": None,
        "head": {
            "label": "Codertocat:changes",
            "ref": "changes",
            "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "user": {"login": "Codertocat", "id": 21031067, "type": "User"},
            "repo": {
                "id": 186853002,
                "name": "Hello-World",
                "full_name": "Codertocat/Hello-World",
                "fork": False,
            },
        },
        "base": {
            "label": "Codertocat:master",
            "ref": "master",
            "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            "user": {"login": "Codertocat", "id": 21031067, "type": "User"},
            "repo": {
                "id": 186853002,
                "name": "Hello-World",
                "full_name": "Codertocat/Hello-World",
                "fork": False,
            },
        },
    },
    "repository": {
        "id": 186853002,
        "name": "Hello-World",
        "full_name": "Codertocat/Hello-World",
        "private": False,
        "default_branch": "master",
    },
    "sender": {"login": "Codertocat", "id": 21031067, "type": "User"},
}


def pull_request_event(base_sha: str, head_sha: str, *, number: int = 2, fork: str | None = None) -> dict:
    event = copy.deepcopy(PULL_REQUEST_PAYLOAD)
    pr = event["pull_request"]
    event["number"] = pr["number"] = number
    pr["base"].update(sha=base_sha, ref="main", label="octo-org:main")
    pr["head"].update(sha=head_sha, ref="gptq", label="octo-org:gptq")
    for side in ("base", "head"):
        pr[side]["repo"].update(name="llama", full_name=REPO)
    if fork:
        pr["head"]["repo"].update(full_name=fork, fork=True)
    event["repository"].update(name="llama", full_name=REPO, default_branch="main")
    return event


# ---- running the action's step as the runner does ---------------------------------------------------------


def action_yml() -> dict[str, Any]:
    return yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))


def run_step(
    tmp_path: Path,
    github: FakeGitHub,
    checkout: Checkout,
    event_name: str,
    event: dict[str, Any],
    inputs: dict[str, str],
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run the ``Run hubfit`` step of action.yml with bash; returns (process, outputs, summary)."""
    spec = action_yml()
    step = next(s for s in spec["runs"]["steps"] if s.get("id") == "hubfit")
    values = {name: str(decl.get("default", "")) for name, decl in spec["inputs"].items()}
    values["github-token"] = TOKEN  # the default ${{ github.token }}
    values.update(inputs)
    assert set(inputs) <= set(spec["inputs"]), "a test input action.yml does not declare"

    def evaluate(template: str) -> str:
        def one(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            if expr.startswith("inputs."):
                return values[expr.removeprefix("inputs.")]
            if expr == "steps.install.outputs.python":
                return sys.executable
            raise AssertionError(f"unexpected expression in the step's env: {expr}")

        return re.sub(r"\$\{\{(.*?)\}\}", one, str(template))

    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir()
    event_path = run_dir / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_WORKSPACE": str(checkout.path),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SERVER_URL": github.url,
            "GITHUB_API_URL": github.url,
            "GITHUB_SHA": checkout.git("rev-parse", "HEAD"),
            "GITHUB_RUN_ID": "42",
            "GITHUB_STEP_SUMMARY": str(run_dir / "summary.md"),
            "GITHUB_OUTPUT": str(run_dir / "output.txt"),
            "RUNNER_TEMP": str(run_dir / "temp"),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({name: evaluate(value) for name, value in step["env"].items()})
    (run_dir / "summary.md").touch()
    (run_dir / "output.txt").touch()
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=checkout.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = dict(
        line.split("=", 1) for line in (run_dir / "output.txt").read_text().splitlines() if "=" in line
    )
    return done, outputs, (run_dir / "summary.md").read_text(encoding="utf-8")


def _stored_bytes(files: dict[str, FileEntry]) -> int:
    """Bytes of tensor data in the fixture's safetensors headers: the sum of end - begin over every tensor."""
    total = 0
    for name, entry in files.items():
        if name.endswith(".safetensors"):
            header = entry.json_header()
            total += sum(
                t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__"
            )
    return total


# ---- the tests --------------------------------------------------------------------------------------------


def test_pull_request_comment_summary_outputs_and_update_in_place(
    tmp_path: Path, fake_hub, github: FakeGitHub
) -> None:
    base_files, head_files = _files(fake_hub, LLAMA2_70B), _files(fake_hub, LLAMA2_70B_GPTQ)
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    base = checkout.commit(base_files, "Llama-2-70b-hf in F16")
    head = checkout.commit(head_files, "Quantize to GPTQ 4-bit")
    event = pull_request_event(base, head)
    inputs = {
        "model": "model",
        "gpus": "RTX 4090, H100 80GB",
        "precisions": "stored, bf16, int4",
        "fail-if-exceeds": "1x A100 80GB @ stored",
    }
    done, outputs, summary = run_step(tmp_path, github, checkout, "pull_request", event, inputs)
    assert done.returncode == 0, done.stdout + done.stderr

    # One comment, created.
    assert len(github.calls("POST", r"/issues/2/comments")) == 1
    [comment] = github.comments[2]
    body = comment["body"]
    assert body.endswith(marker("model"))
    # The parameter count is the published one on both sides: GPTQ's packed I32 words are unpacked
    # (8 four-bit weights each), not counted as elements.
    assert f"| Parameters | {LLAMA2_70B_PARAMS:,} | {LLAMA2_70B_PARAMS:,} | — |" in body
    gptq_bytes = _stored_bytes(head_files)
    delta = LLAMA2_70B_BYTES - gptq_bytes
    assert (
        f"| Weights as stored | {LLAMA2_70B_BYTES / 1e9:,.2f} GB | {gptq_bytes / 1e9:,.2f} GB | "
        f"−{delta / 1e9:,.2f} GB (−{delta / LLAMA2_70B_BYTES:.1%}) |"
    ) in body
    assert "| Memory at `stored` |" in body and "| Memory at `int4` |" in body
    assert "✅ `fail-if-exceeds` `1x A100 80GB @ stored`: the model fits" in body
    # 15 base shards + 1 GPTQ file were pointers; every header came through the LFS batch API.
    assert "16 through the Git LFS batch API of 127.0.0.1" in body
    assert "no weights downloaded" in body
    # Only header bytes were read: no range goes past a file's prefix + header plus one 8 KiB first read.
    largest = max(len(e.prefix) for e in [*base_files.values(), *head_files.values()] if e.lfs)
    assert github.ranges and all(end < largest + 8192 for _, end in github.ranges)

    # The summary holds the same report, the full one included.
    assert summary.startswith("## hubfit: hardware report")
    assert f"| Parameters | {LLAMA2_70B_PARAMS:,} | {LLAMA2_70B_PARAMS:,} | — |" in summary
    assert "<summary>Full report</summary>" in summary

    # Outputs: every output action.yml declares.
    assert set(outputs) == set(action_yml()["outputs"])
    assert outputs["total-parameters"] == str(LLAMA2_70B_PARAMS)
    assert outputs["fits"] == "true"
    report = json.loads(Path(outputs["json"]).read_text())
    assert report["schema"] == "hubfit/1" and report["parameters"]["total"] == LLAMA2_70B_PARAMS
    assert (
        json.loads((Path(outputs["dir"]) / "base.json").read_text())["weights"]["bytes"] == LLAMA2_70B_BYTES
    )

    # Second run, another context: the same comment is edited in place.
    done, _, _ = run_step(tmp_path, github, checkout, "pull_request", event, {**inputs, "context": "8192"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(github.calls("POST", r"/issues/2/comments")) == 1
    assert len(github.calls("PATCH", r"/issues/comments/")) == 1
    [comment] = github.comments[2]
    assert "KV cache (8,192 tokens × 1, fp16)" in comment["body"]
    assert "pull request comment updated" in done.stdout

    # Third run, same inputs: nothing to edit.
    done, _, _ = run_step(tmp_path, github, checkout, "pull_request", event, {**inputs, "context": "8192"})
    assert done.returncode == 0
    assert len(github.calls("PATCH", r"/issues/comments/")) == 1
    assert "pull request comment unchanged" in done.stdout


def test_fail_if_exceeds(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    # The pull request replaces the GPTQ checkpoint with the F16 one: its weights alone, 137.95 GB, are more
    # than an A100 80GB holds (80 GiB = 85.90 GB), so the target is exceeded.
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    base = checkout.commit(_files(fake_hub, LLAMA2_70B_GPTQ), "GPTQ")
    head = checkout.commit(_files(fake_hub, LLAMA2_70B), "F16")
    inputs = {
        "model": "model",
        "gpus": "A100 80GB",
        "precisions": "stored",
        "fail-if-exceeds": "1x A100 80GB @ stored",
    }
    done, outputs, summary = run_step(
        tmp_path, github, checkout, "pull_request", pull_request_event(base, head), inputs
    )

    assert done.returncode == 1
    assert "::error title=hubfit::the model exceeds 1x A100 80GB @ stored" in done.stdout
    assert outputs["fits"] == "false"
    [comment] = github.comments[2]  # the comment and the summary are written before the step fails
    assert "❌ `fail-if-exceeds` `1x A100 80GB @ stored`: the model **exceeds**" in comment["body"]
    assert "the model **exceeds**" in summary


def test_headers_from_hub_repo_when_lfs_cannot_serve(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    github.lfs_missing = True
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    checkout.commit(_files(fake_hub, LLAMA2_70B), "F16")
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    inputs = {"model": "model", "hub-repo": LLAMA2_70B, "hf-token": TOKEN_GRANTED, "gpus": "H100 80GB"}
    done, outputs, summary = run_step(tmp_path, github, checkout, "push", event, inputs)

    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["total-parameters"] == str(LLAMA2_70B_PARAMS)
    assert outputs["fits"] == ""  # no fail-if-exceeds target
    assert f"15 from the Hub files with the same sha256 ({LLAMA2_70B})" in summary
    assert not github.comments  # a push has no pull request to comment on
    assert TOKEN_GRANTED not in done.stdout + done.stderr


def test_pointer_without_any_way_to_read_it(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    github.lfs_missing = True
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    checkout.commit(_files(fake_hub, QWEN25_05B), "Qwen")
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(tmp_path, github, checkout, "push", event, {"model": "model"})
    assert done.returncode == 7  # LfsPointerError
    [line] = [x for x in done.stdout.splitlines() if x.startswith("::error")]
    assert "model.safetensors is a Git LFS pointer" in line and "Object does not exist" in line
    assert "Traceback" not in done.stderr


def test_local_weights_push_without_pull_request(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    # As after a checkout with `lfs: true`: the real files (not committed here: git would hash ~1 GB).
    checkout.git("commit", "-q", "--allow-empty", "-m", "start")
    checkout.write(_files(fake_hub, QWEN25_05B), pointers=False)
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, outputs, summary = run_step(
        tmp_path, github, checkout, "push", event, {"model": "model", "gpus": "RTX 4090"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["total-parameters"] == str(QWEN_PARAMS)
    assert f"| Parameters | {QWEN_PARAMS:,} |" in summary
    assert "Git LFS" not in summary  # real files: headers read from disk
    assert not github.calls("POST", "lfs")


def test_lfs_token_only_sent_to_the_github_host(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    # A pull request can change .lfsconfig: the GitHub token must not follow it to another host.
    elsewhere = FakeGitHub(github.objects)
    try:
        checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
        base = checkout.commit(_files(fake_hub, QWEN25_05B), "Qwen")
        (checkout.path / ".lfsconfig").write_text(f"[lfs]\n\turl = {elsewhere.url}/{REPO}.git/info/lfs\n")
        head = checkout.commit(_files(fake_hub, QWEN25_05B), "point LFS elsewhere")
        done, _, _ = run_step(
            tmp_path,
            github,
            checkout,
            "pull_request",
            pull_request_event(base, head),
            {"model": "model", "comment": "false"},
        )
        batches = elsewhere.calls("POST", "objects/batch")
        assert batches and all("Authorization" not in headers for _, _, headers in batches)
        assert done.returncode == 7  # that server wants credentials hubfit did not send
        assert not github.calls("POST", "objects/batch")
    finally:
        elsewhere.stop()


def test_fork_pull_request_then_workflow_run(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    base = checkout.commit(_files(fake_hub, LLAMA2_70B), "F16")
    head = checkout.commit(_files(fake_hub, LLAMA2_70B_GPTQ), "GPTQ")
    event = pull_request_event(base, head, number=7, fork="mallory/llama")
    done, outputs, _ = run_step(tmp_path, github, checkout, "pull_request", event, {"model": "model"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pull request from a fork" in done.stdout
    assert not github.calls("POST", "/comments")  # the fork's token is read-only: nothing posted

    # The artifact, as a workflow_run job downloads it; the fork controls its content.
    artifact = checkout.path.parent / "artifact"
    shutil.copytree(outputs["dir"], artifact)
    comment = (artifact / "comment.md").read_text()
    (artifact / "comment.md").write_text(
        comment + "\ncc @octo-org/maintainers <!-- hubfit:action 000000000000 -->\n"
    )
    run_event = {
        "action": "completed",
        "workflow_run": {"id": 42, "event": "pull_request", "head_sha": head, "conclusion": "success"},
        "repository": {"full_name": REPO, "default_branch": "main"},
    }

    # The pull request has moved on since: nothing is posted.
    github.pulls[7] = base
    done, _, _ = run_step(
        tmp_path, github, checkout, "workflow_run", run_event, {"report-dir": str(artifact)}
    )
    assert done.returncode == 9 and "not at commit" in done.stdout
    assert not github.comments

    github.pulls[7] = head
    done, _, _ = run_step(
        tmp_path, github, checkout, "workflow_run", run_event, {"report-dir": str(artifact)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [posted] = github.comments[7]
    assert f"| Parameters | {LLAMA2_70B_PARAMS:,} | {LLAMA2_70B_PARAMS:,} | — |" in posted["body"]
    assert "@\u200bocto-org/maintainers" in posted["body"]  # mentions from the artifact do not notify
    assert "hubfit:action 000000000000" not in posted["body"]
    assert posted["body"].endswith(marker("model"))


def test_render_comment_is_a_function_of_two_reports(fake_hub) -> None:
    # The comment renders the reports as they are stored (report.json / base.json round-trip), so a comment
    # rebuilt from the artifacts is the one that was posted.
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import analyze
    from hubfit.render.comment import TargetCheck, render_comment
    from hubfit.report import Report
    from hubfit.sizing import Workload

    def report(repo_id: str) -> Report:
        return analyze(
            repo_id,
            token=TOKEN_GRANTED,
            workload=Workload(precisions=("stored",)),
            hardware=HardwareQuery(gpus=("H100 80GB",)),
        )

    head, base = report(LLAMA2_70B_GPTQ), report(LLAMA2_70B)
    target = TargetCheck("1x H100 80GB @ stored", True, "H100 80GB", 40 * 2**30, 79 * 2**30)
    body = render_comment(head, base, head_label="this pull request", target=target)
    stored = [Report.from_dict(json.loads(json.dumps(r.to_dict()))) for r in (head, base)]
    assert render_comment(*stored, head_label="this pull request", target=target) == body
    assert body.startswith(f"## hubfit: hardware report\n\n**`{LLAMA2_70B_GPTQ}`** at `{head.sha[:12]}`.\n")
    assert f"| | base `{base.revision}` `{base.sha[:7]}` | this pull request | change |" in body
    assert f"| Parameters | {LLAMA2_70B_PARAMS:,} | {LLAMA2_70B_PARAMS:,} | — |" in body
    assert "✅ `fail-if-exceeds` `1x H100 80GB @ stored`: the model fits (40.00 GiB per GPU" in body
    assert "<summary>Full report</summary>" in body and "Git LFS" not in body
    compact = render_comment(head, None, head_label="checkout", run_url="https://x/run/1", compact=True)
    assert "| change |" not in compact and "<details>" not in compact
    assert "The full report is in the [job summary](https://x/run/1)." in compact


# ---- action.yml ---------------------------------------------------------------------------------------------


def test_action_yml_parses_and_every_input_is_used() -> None:
    spec = action_yml()
    assert spec["name"] and spec["description"] and spec["branding"]["icon"] and spec["branding"]["color"]
    assert spec["runs"]["using"] == "composite"
    steps = spec["runs"]["steps"]
    step = next(s for s in steps if s.get("id") == "hubfit")
    # Inputs reach scripts through env only: no expression inside any run: script (script injection).
    for s in steps:
        assert "${{" not in s.get("run", ""), s.get("name")
    # Every input is mapped to its INPUT_* variable, and the action reads every one of them.
    mapped = {
        m.group(1): name
        for name, value in step["env"].items()
        if (m := re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", str(value)))
    }
    assert set(mapped) == set(spec["inputs"])
    for input_name, env_name in mapped.items():
        assert env_name == "INPUT_" + input_name.upper().replace("-", "_")
    values = {
        "model": "models/llama",
        "hub-repo": "octo-org/llama",
        "revision": "v1.0",
        "context": "8192",
        "batch": "4",
        "gpus": "RTX 4090, H100 80GB",
        "precisions": "bf16, int4",
        "engine": "vllm",
        "engine-version": "0.19",
        "max-model-len": "8192",
        "comment": "false",
        "update-card": "commit",
        "hf-token": "hf_x",
        "github-token": "ghs_x",
        "fail-if-exceeds": "2x RTX 4090 @ int4",
        "report-dir": "artifact",
    }
    assert set(values) == set(spec["inputs"])
    got = ActionInputs.from_env({mapped_name: values[i] for i, mapped_name in mapped.items()})
    assert got == ActionInputs(
        model="models/llama",
        hub_repo="octo-org/llama",
        revision="v1.0",
        context=8192,
        batch=4,
        gpus=("RTX 4090", "H100 80GB"),
        precisions=("bf16", "int4"),
        engine="vllm",
        engine_version="0.19",
        max_model_len=8192,
        comment=False,
        update_card="commit",
        hf_token="hf_x",
        github_token="ghs_x",
        fail_if_exceeds=FitTarget(2, "RTX 4090", "int4"),
        report_dir="artifact",
    )
    # Outputs come from the run step, and the install step pins this action's own checkout.
    for output in spec["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.hubfit\.outputs\.[\w-]+ \}\}", output["value"])
    install = next(s for s in steps if s.get("id") == "install")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert re.fullmatch(r"actions/setup-python@[0-9a-f]{40}", setup["uses"])  # pinned by commit


# ---- units ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1x RTX 4090 @ int4", FitTarget(1, "RTX 4090", "int4")),
        ("2 × H100 80GB @ fp8", FitTarget(2, "H100 80GB", "fp8")),
        ("A100 80GB@stored", FitTarget(1, "A100 80GB", "stored")),
    ],
)
def test_fit_target_parse(text: str, expected: FitTarget) -> None:
    assert FitTarget.parse(text) == expected


@pytest.mark.parametrize("text", ["RTX 4090", "0x RTX 4090 @ int4", "1x @ int4", "1x RTX 4090 @ int 4"])
def test_fit_target_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="fail-if-exceeds"):
        FitTarget.parse(text)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"INPUT_UPDATE_CARD": "yes"}, "update-card"),
        ({"INPUT_COMMENT": "maybe"}, "comment"),
        ({"INPUT_BATCH": "0"}, "batch"),
        ({"INPUT_CONTEXT": "4k"}, "context"),
    ],
)
def test_inputs_rejected_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ActionInputs.from_env(env)


def test_unknown_gpu_in_target_fails_before_analysis(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    checkout.commit(_files(fake_hub, QWEN25_05B), "Qwen")
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(
        tmp_path, github, checkout, "push", event, {"fail-if-exceeds": "1x Voodoo 5 @ int4"}
    )
    assert done.returncode == 2
    assert done.stdout.startswith("::error title=hubfit::") and "Voodoo" in done.stdout
    assert not github.requests  # nothing was read


def test_write_tree_keeps_pointers(tmp_path: Path, fake_hub) -> None:
    checkout = Checkout(tmp_path / "repo", "https://github.com/octo-org/llama")
    files = _files(fake_hub, QWEN25_05B)
    sha = checkout.commit(files, "Qwen")
    checkout.commit({}, "remove the model")
    dest = tmp_path / "base"
    count = write_tree(checkout.path, sha, "model", dest)
    assert count == len(files)
    for name, entry in files.items():
        assert (dest / name).read_bytes() == (entry.lfs_pointer if entry.lfs else entry.prefix)


def test_push_to_default_branch_refreshes_the_card(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    from fixtures.hub_writes import readme, writes

    repo_id = "hubfit-action-tests/qwen-card"
    if repo_id not in fake_hub.repos:
        fake_hub.add_repo(
            repo_id, {**_files(fake_hub, QWEN25_05B), "README.md": b"---\nlicense: apache-2.0\n---\n# Qwen\n"}
        )
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    checkout.commit(_files(fake_hub, QWEN25_05B), "Qwen")
    inputs = {
        "model": "model",
        "hub-repo": repo_id,
        "hf-token": TOKEN_GRANTED,
        "update-card": "pr",
        "gpus": "RTX 4090",
    }

    # A push to another branch does not touch the card.
    other = {"ref": "refs/heads/feature", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(tmp_path, github, checkout, "push", other, inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [w for w in writes(fake_hub) if w.get("repo_id") == repo_id]

    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(tmp_path, github, checkout, "push", event, inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"refreshing the model card of {repo_id} (pr)" in done.stdout
    assert f"{repo_id}: opening a pull request against main" in done.stdout  # the plan, then the write
    commits = [w for w in writes(fake_hub) if w.get("repo_id") == repo_id and w.get("kind") == "pull_request"]
    assert len(commits) == 1
    card = readme(fake_hub, repo_id, commits[0]["ref"]).decode()
    assert card.startswith("---\nlicense: apache-2.0\n---\n# Qwen\n")  # the rest of the card is kept
    assert "<!-- hubfit:start -->" in card and f"{QWEN_PARAMS:,}" in card
    assert readme(fake_hub, repo_id) == b"---\nlicense: apache-2.0\n---\n# Qwen\n"  # a pull request, not main
    assert TOKEN_GRANTED not in done.stdout + done.stderr


def test_update_card_needs_hub_repo(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    checkout.commit(_files(fake_hub, QWEN25_05B), "Qwen")
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(
        tmp_path, github, checkout, "push", event, {"model": "model", "update-card": "commit"}
    )
    assert done.returncode == 2 and "update-card needs hub-repo" in done.stdout


@pytest.mark.parametrize(
    "event_name, event, ref, expected",
    [
        (
            "push",
            {"ref": "refs/heads/main", "repository": {"default_branch": "main"}},
            "refs/heads/main",
            True,
        ),
        (
            "push",
            {"ref": "refs/heads/dev", "repository": {"default_branch": "main"}},
            "refs/heads/dev",
            False,
        ),
        ("schedule", {"schedule": "17 4 * * 1"}, "refs/heads/main", True),
        ("workflow_dispatch", {"ref": "refs/heads/main", "repository": {"default_branch": "main"}}, "", True),
        ("workflow_dispatch", {"ref": "refs/heads/x", "repository": {"default_branch": "main"}}, "", False),
        ("pull_request", pull_request_event("a" * 40, "b" * 40), "refs/pull/2/merge", False),
    ],
)
def test_on_default_branch(tmp_path: Path, event_name: str, event: dict, ref: str, expected: bool) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    ctx = RunnerContext.from_env(
        {"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(path), "GITHUB_REF": ref}
    )
    assert ctx.on_default_branch is expected


def test_docs_examples_are_valid_workflows() -> None:
    """The Action page's examples (docs/action.md) parse, pin third-party actions, keep secrets in inputs."""
    text = (ROOT / "docs" / "action.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 4  # PR comment, card refresh, fork report + fork comment
    inputs = set(action_yml()["inputs"])
    for block in blocks:
        workflow = yaml.safe_load(block)
        triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
        assert triggers and workflow["jobs"]
        permissions = workflow["permissions"]
        assert set(permissions.values()) <= {"read", "write"}
        for job in workflow["jobs"].values():
            hubfit_steps = [s for s in job["steps"] if str(s.get("uses", "")).startswith("OWNER/hubfit@")]
            assert len(hubfit_steps) == 1
            step = hubfit_steps[0]
            assert set(step.get("with", {})) <= inputs
            comments = step.get("with", {}).get("comment", "true") != "false" and "pull_request" in triggers
            posts = comments or "report-dir" in step.get("with", {})
            # Write access only where a comment is posted; a fork's report run gets read-only permissions.
            assert (permissions.get("pull-requests") == "write") is posts
            for other in job["steps"]:
                uses = str(other.get("uses", ""))
                if uses and not uses.startswith("OWNER/hubfit@"):
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
                assert "run" not in other  # no shell lines that could carry a secret
        # Secrets appear only as inputs of the hubfit step.
        for line in block.splitlines():
            if "secrets." in line:
                assert re.fullmatch(r"\s+hf-token: \$\{\{ secrets\.HF_TOKEN \}\}( #.*)?", line), line


def test_pull_request_for_a_hub_model(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    # `model` names a Hub repo: the pull request cannot change it, so the comment has no comparison.
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    base = checkout.commit({"README.md": FileEntry.blob(b"# Training code\n")}, "readme")
    head = checkout.commit({"train.py": FileEntry.blob(b"print('train')\n")}, "code")
    inputs = {"model": QWEN25_05B, "gpus": "RTX 4090", "precisions": "bf16"}
    done, outputs, _ = run_step(
        tmp_path, github, checkout, "pull_request", pull_request_event(base, head), inputs
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["total-parameters"] == str(QWEN_PARAMS)
    [comment] = github.comments[2]
    assert f"**`{QWEN25_05B}`** at `" in comment["body"]
    assert f"| Parameters | {QWEN_PARAMS:,} |" in comment["body"]
    assert "| change |" not in comment["body"]
    assert "base.json" not in os.listdir(outputs["dir"])


def test_base_commit_fetched_into_a_shallow_checkout(tmp_path: Path, fake_hub, github: FakeGitHub) -> None:
    # actions/checkout fetches one commit: the base is fetched (depth 1) from origin before it is read.
    upstream = Checkout(tmp_path / "upstream", "https://example.test/unused")
    base = upstream.commit(_files(fake_hub, LLAMA2_70B), "F16")
    head = upstream.commit(_files(fake_hub, LLAMA2_70B_GPTQ), "GPTQ")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{upstream.path}", str(clone)], check=True)
    checkout = Checkout(clone, None)
    checkout.git("config", "lfs.url", f"{github.url}/{REPO}.git/info/lfs")
    with pytest.raises(subprocess.CalledProcessError):
        checkout.git("cat-file", "-e", f"{base}^{{commit}}")
    inputs = {"model": "model", "gpus": "H100 80GB", "precisions": "stored"}
    done, _, _ = run_step(tmp_path, github, checkout, "pull_request", pull_request_event(base, head), inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    [comment] = github.comments[2]
    assert f"| Weights as stored | {LLAMA2_70B_BYTES / 1e9:,.2f} GB |" in comment["body"]


def test_engine_input_puts_the_engines_view_in_the_comment(
    tmp_path: Path, fake_hub, github: FakeGitHub
) -> None:
    """`engine: sglang` with two GPUs: the comment names the engine release and each GPU's fewest that start."""
    checkout = Checkout(tmp_path / "repo", f"{github.url}/{REPO}")
    base = checkout.commit({"README.md": FileEntry.blob(b"# Training code\n")}, "readme")
    head = checkout.commit({"train.py": FileEntry.blob(b"print('train')\n")}, "code")
    inputs = {
        "model": QWEN25_05B,
        "gpus": "RTX 4090, H100",
        "precisions": "bf16",
        "engine": "sglang",
        "max-model-len": "8192",
    }
    done, _, _ = run_step(tmp_path, github, checkout, "pull_request", pull_request_event(base, head), inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    [comment] = github.comments[2]
    assert (
        "**SGLang 0.5.23** on each GPU: the fewest GPUs that start it at max_model_len 8,192."
        in comment["body"]
    )
    assert "| `RTX 4090` | 1x |" in comment["body"] and "| `H100 SXM 80GB` | 1x |" in comment["body"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INPUT_ENGINE": "tgi"}, "input engine must be vllm or sglang"),
        ({"INPUT_MAX_MODEL_LEN": "long"}, "input max-model-len must be a whole number"),
    ],
)
def test_engine_inputs_rejected_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ActionInputs.from_env(env)
