"""The config validation and the checkpoint comparison are reached from every source (issue 19).

The model stage's one door, ``component_from_headers``, is where a config is validated and compared with the
tensors; these tests take the same hostile configs through each way hubfit reads a model: a Hub repo (the
fake Hub), a local directory, a Git LFS checkout read through the LFS batch API by the Action, an organization
scan, and the Action on a checkout with the real files. Each answers the same one-line ``ConfigError`` with
exit code 12 (a scan records it as that repo's result, not retried: the same commit fails the same way), and
the layer-count warning reaches the user: stderr, the JSON document, the scan's stored report, the Action's
``::warning`` line.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tinymodel import TINY, prefix_only, tiny_tensors, write_model

from fixtures.hub_server import FileEntry
from hubfit.cli import main
from hubfit.scan.options import ScanQuery
from hubfit.scan.runner import run_scan
from hubfit.scan.store import ScanStore
from tests.test_action import REPO, Checkout, FakeGitHub, run_step

BAD = {**TINY, "num_key_value_heads": 0}
EIGHTY = {**TINY, "num_hidden_layers": 80}
BAD_LINE = "config.json: num_key_value_heads is 0; it must be a whole number from 1 to 23,200"
WARNING = "config.json says num_hidden_layers 80 but the checkpoint holds 2 decoder layers"
_n = itertools.count()


@pytest.fixture
def gh(fake_hub) -> Iterator[FakeGitHub]:
    """GitHub's REST API and LFS server (tests/test_action.py), serving the LFS objects a test adds."""
    server = FakeGitHub({})
    yield server
    server.stop()


def weights() -> FileEntry:
    return FileEntry.safetensors(prefix_only(tiny_tensors())[8:])


def hub_repo(hub, author: str, config: dict) -> str:
    repo_id = f"{author}/tiny-{next(_n)}"
    hub.add_repo(repo_id, {"config.json": json.dumps(config).encode(), "model.safetensors": weights()})
    return repo_id


def test_a_hub_repo(hub, capsys):
    assert main([hub_repo(hub, "cfg-hub", BAD), "--gpu", "RTX 4090"]) == 12
    assert capsys.readouterr().err.startswith(f"hubfit: error: {BAD_LINE}")


def test_a_hub_repo_with_a_layer_disagreement_warns_on_stderr_and_in_the_json(hub, capsys):
    assert main([hub_repo(hub, "cfg-hub", EIGHTY), "--json", "--gpu", "RTX 4090"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert err.startswith(f"hubfit: warning: {WARNING}") and err.count("\n") == 1
    assert [w[: len(WARNING)] for w in document["warnings"]] == [WARNING]
    # sized as the checkpoint holds: 2 layers x 2 KV heads x 16 x (K and V) x 2 bytes
    assert document["kv_cache"]["bytes_per_token"] == 2 * 2 * 16 * 2 * 2


def test_a_local_directory(tmp_path, capsys):
    assert main([str(write_model(tmp_path / "m", BAD))]) == 12
    assert capsys.readouterr().err.startswith(f"hubfit: error: {BAD_LINE}")


def test_a_scan_records_the_error_once_and_the_warning_in_the_report(hub, tmp_path):
    bad, eighty, good = (
        hub_repo(hub, "cfg-scan", BAD),
        hub_repo(hub, "cfg-scan", EIGHTY),
        hub_repo(hub, "cfg-scan", TINY),
    )
    with ScanStore(tmp_path / "scan.sqlite") as store:
        result = run_scan(store, ScanQuery("cfg-scan"), progress=None)
        rows = {row.repo_id: row for row in store.rows(result.scan_id)}
        assert rows[bad].status == "error" and rows[bad].error is not None
        assert rows[bad].error["type"] == "ConfigError" and rows[bad].error["exit_code"] == 12
        assert rows[bad].error["message"].startswith(BAD_LINE)
        assert result.counts["retry"] == 0  # the same commit would fail the same way
        assert (
            rows[good].status == "ok"
            and rows[good].report is not None
            and rows[good].report["warnings"] == []
        )
        assert rows[eighty].report is not None and rows[eighty].report["warnings"][0].startswith(WARNING)
        assert rows[eighty].to_report().warnings == rows[eighty].report["warnings"]


def _tiny_checkout(tmp_path: Path, gh: FakeGitHub, config: dict, *, pointers: bool) -> Checkout:
    entry = weights()
    gh.objects[entry.sha256] = entry
    checkout = Checkout(tmp_path / "repo", f"{gh.url}/{REPO}")
    files = {"config.json": FileEntry.blob(json.dumps(config).encode()), "model.safetensors": entry}
    if pointers:
        checkout.commit(files, "tiny")
    else:
        checkout.git("commit", "-q", "--allow-empty", "-m", "start")
        checkout.write(files, pointers=False)
    return checkout


@pytest.mark.parametrize("pointers", [False, True], ids=["real-files", "lfs-pointers"])
def test_the_action_on_a_checkout(tmp_path, fake_hub, gh, pointers):
    """Real files (a checkout with ``lfs: true``) and Git LFS pointers read through the LFS batch API."""
    checkout = _tiny_checkout(tmp_path, gh, BAD, pointers=pointers)
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, _, _ = run_step(tmp_path, gh, checkout, "push", event, {"model": "model", "gpus": "RTX 4090"})
    assert done.returncode == 12, done.stdout + done.stderr
    assert f"::error title=hubfit::{BAD_LINE}" in done.stdout
    assert "internal error" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert bool(gh.calls("POST", "objects/batch")) is pointers


def test_the_action_shows_the_warning(tmp_path, fake_hub, gh):
    checkout = _tiny_checkout(tmp_path, gh, EIGHTY, pointers=False)
    event = {"ref": "refs/heads/main", "repository": {"full_name": REPO, "default_branch": "main"}}
    done, outputs, _ = run_step(tmp_path, gh, checkout, "push", event, {"model": "model", "gpus": "RTX 4090"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"::warning title=hubfit::{WARNING}" in done.stdout
    report = json.loads(Path(outputs["json"]).read_text())
    assert report["warnings"][0].startswith(WARNING)


def test_the_warning_is_in_the_markdown_and_the_card_section(hub):
    """Published text carries the warning too (stderr does not reach a model card), as an inert code span."""
    import hubfit
    from hubfit.render.report import card_section, to_markdown

    report = hubfit.analyze(hub_repo(hub, "cfg-hub", EIGHTY), token=False)
    assert report.warnings and report.warnings[0].startswith(WARNING)
    for text in (to_markdown(report), card_section(report)):
        assert f"- Warning: `{WARNING}" in text
