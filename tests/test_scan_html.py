"""``hubfit scan --html``: the page renders in a real headless browser with one table row per model.

The scanned repos are copies of real fixture repos (fixtures/README.md) on the session's fake Hub. Chromium
(Debian's ``chromium``, installed by ci/install-chromium.sh) loads the page from disk with ``--dump-dom``: the
DOM it prints is the page after its script ran (sorting, filtering, the "shown" counter).
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hubfit.fit.planner import HardwareQuery
from hubfit.scan.html import PageInfo, write_html
from hubfit.scan.runner import ScanOptions, ScanQuery, run_scan, write_outputs
from hubfit.scan.store import ListedRepo, ScanStore

# Debian's chromium (ci/install-chromium.sh); GitHub's Ubuntu runners ship Google Chrome instead.
CHROMIUM = next(
    (
        p
        for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))
        if p
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (ci/install-chromium.sh)"
)

SOURCES = {
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",  # 68,976,648,192 parameters
    "llama-2-70b-gptq": "TheBloke/Llama-2-70B-GPTQ",  # the same parameters, 4-bit
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",  # tied embeddings, about half a billion
}


class _Dom(HTMLParser):
    """Collects the table rows (their attributes and text) and the chart's circles from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.circles: list[dict] = []
        self.shown: str | None = None
        self._in_tbody = False
        self._in_shown = False
        self._row: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tbody":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody:
            self._row = {**a, "cells": [], "text": ""}
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None:
            self._row["cells"].append(a.get("data-v"))
        elif tag == "circle":
            self.circles.append(a)
        elif tag == "b" and a.get("id") == "shown":
            self._in_shown = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_tbody = False
        elif tag == "tr":
            self._row = None
        elif tag == "b":
            self._in_shown = False

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row["text"] += data
        if self._in_shown:
            self.shown = data


def dump_dom(page: Path, fragment: str = "") -> _Dom:
    profile = page.parent / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.resolve().as_uri() + fragment,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    dom = _Dom()
    dom.feed(out)
    return dom


def visible(row: dict) -> bool:
    return "display: none" not in (row.get("style") or "")


@pytest.fixture(scope="module")
def scanned(fake_hub, tmp_path_factory):
    """A scan of an author holding three real models and one repo without safetensors."""
    author = "scan-html"
    for name, source in SOURCES.items():
        fake_hub.add_repo(f"{author}/{name}", dict(fake_hub.repos[source].head.files))
    only_bin = {"config.json": b"{}", "pytorch_model.bin": b"PK\x03\x04"}
    fake_hub.add_repo(f"{author}/only-bin", only_bin)
    tmp = tmp_path_factory.mktemp("scan-html")
    store = ScanStore(tmp / "scan.sqlite")
    result = run_scan(store, ScanQuery(author))
    page = tmp / "report.html"
    write_outputs(store, result.scan_id, fmt="jsonl", output=tmp / "rows.jsonl", html=page)
    yield store, result, page
    store.close()


def test_page_is_self_contained(scanned):
    _, _, page = scanned
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # no external assets: no script/style/image/font fetched from anywhere
    for pattern in (r"<script[^>]+src=", r"<link\b", r"<img\b", r"@import", r"url\(", r"<iframe\b"):
        assert not re.search(pattern, text), pattern
    # the only URLs are the links to the models' pages on the Hub the scan read (HF_ENDPOINT: the fake Hub)
    urls = set(re.findall(r"https?://[^\"' <)]+", text))
    endpoint = os.environ["HF_ENDPOINT"]
    assert urls == {f"{endpoint}/scan-html/{name}" for name in [*SOURCES, "only-bin"]} | {
        "http://www.w3.org/2000/svg"
    }


def test_one_node_is_what_the_fit_row_says(fake_hub, tmp_path):
    """The chart's classes follow each fit row's layout. Qwen2.5-0.5B (its config.json: 14 attention heads,
    2 KV heads, so tensor parallelism of 1 or 2 only) on devices of 1 GiB (``--gpu-memory``): bf16 needs 4 of
    them as 2 pipeline stages of TP 2, two nodes although 4 devices would fit one; int8 needs 2 in one node."""
    fake_hub.add_repo("scan-nodes/qwen", dict(fake_hub.repos[SOURCES["qwen2.5-0.5b"]].head.files))
    page = io.StringIO()
    with ScanStore(tmp_path / "s.sqlite") as store:
        options = ScanOptions(hardware=HardwareQuery(gpu_memory=2**30))
        result = run_scan(store, ScanQuery("scan-nodes"), options)
        report = next(store.rows(result.scan_id)).report
        write_html(lambda: store.rows(result.scan_id), PageInfo("t", "scan-nodes", 0.0, "test"), page)
    layout = {
        (d["precision"], f["count"], d["tp"], d["pp"])
        for f, d in zip(report["fits"], report["fit_details"], strict=True)
    }
    assert {("bf16", 4, 2, 2), ("int8", 2, 2, 1)} <= layout
    text = page.getvalue()
    label = dict(re.findall(r'<span><i style="background:(#[0-9A-Fa-f]{6})"></i>([^<]+)</span>', text))
    fill = {
        precision: colour
        for colour, precision in re.findall(
            r'<circle [^>]*fill="(#[0-9A-Fa-f]{6})" data-repo="scan-nodes/qwen" data-precision="([^"]+)"',
            text,
        )
    }
    assert label[fill["bf16"]] == "several nodes (pipeline stages)"
    assert label[fill["int8"]] == "several GPUs in one node"
    assert "bf16: 1.72 GB, 494.0M parameters - 4x custom 1 GiB" in text  # the point's tooltip


@needs_chromium
def test_chromium_renders_one_row_per_model(scanned):
    store, result, page = scanned
    dom = dump_dom(page)
    repos = [row.repo_id for row in store.rows(result.scan_id)]
    assert [row["data-repo"] for row in dom.rows] == repos
    assert len(dom.rows) == result.listed == 4
    # the script ran: it counted the visible rows
    assert dom.shown == "4"
    statuses = {row["data-repo"]: row["data-status"] for row in dom.rows}
    assert statuses["scan-html/only-bin"] == "error" and list(statuses.values()).count("ok") == 3
    # every analysed model has a point on the chart; the failed one has none
    assert {c["data-repo"] for c in dom.circles} == {f"scan-html/{name}" for name in SOURCES}
    # the parameters column holds the exact count (published for Llama-2-70b: 68,976,648,192)
    params = {row["data-repo"]: row["cells"][2] for row in dom.rows}
    assert params["scan-html/llama-2-70b"] == params["scan-html/llama-2-70b-gptq"] == "68976648192"


@needs_chromium
def test_filter_and_sort_from_the_link(scanned):
    _, _, page = scanned
    dom = dump_dom(page, "#q=qwen")
    assert dom.shown == "1"
    assert [row["data-repo"] for row in dom.rows if visible(row)] == ["scan-html/qwen2.5-0.5b"]
    assert not [
        c for c in dom.circles if "hidden" not in (c.get("class") or "") and "qwen" not in c["data-repo"]
    ]

    dom = dump_dom(page, "#status=error")
    assert [row["data-repo"] for row in dom.rows if visible(row)] == ["scan-html/only-bin"]

    dom = dump_dom(page, "#sort=parameters&dir=desc")
    order = [row["data-repo"] for row in dom.rows]
    values = [int(row["cells"][2]) for row in dom.rows if row["cells"][2]]
    assert values == sorted(values, reverse=True)
    assert order[-1] == "scan-html/only-bin"  # no figure: last either way
    assert order.index("scan-html/qwen2.5-0.5b") == 2


@needs_chromium
def test_text_from_the_hub_is_escaped(tmp_path):
    """A hostile string in an error message shows as text; the browser builds no element from it."""
    hostile = '<img src=x onerror="document.title=1"><script>document.title=2</script>'
    with ScanStore(tmp_path / "s.sqlite") as store:
        scan_id = store.begin_scan("evil", {}, "s")
        repo = ListedRepo("evil/model", "0" * 40)
        store.add_items(scan_id, [repo])
        store.record_error(
            scan_id,
            repo,
            "s",
            {"type": "HeaderError", "message": hostile, "exit_code": 7},
            retry=False,
            version="test",
        )
        page = tmp_path / "evil.html"
        with open(page, "w") as fh:
            write_html(lambda: store.rows(scan_id), PageInfo("t", "evil", 0.0, "test"), fh)
    raw = page.read_text()
    assert "<img src=x" not in raw and html.escape(hostile) in raw
    dump = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'p'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "<img" not in dump and "<title>t</title>" in dump
    assert dump.count("<script>") == 1  # the page's own script only
