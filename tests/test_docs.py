"""The README and every page under docs/ are true: each command shown with its output runs and prints it.

What is checked (the same rule is in docs/development.md):

* In a ```` ```console ```` block, a line starting with ``$ `` is a command (a trailing ``\\`` continues it on
  the next line); the lines after it, up to the next ``$ `` line or the end of the block, are its output.
* A ``hubfit`` command (after any ``HF_ENDPOINT=``, ``HF_TOKEN=`` or ``COLUMNS=`` prefixes) that shows at least
  one output line is run and its output compared. It runs against a fake Hub serving every fixture repo (what
  ``python -m fixtures.hub_server`` serves; a shown ``HF_ENDPOINT`` is replaced by that Hub's URL, and the Hub's
  URL in the output is written as the documented ``http://127.0.0.1:8765``), without a token unless the command
  names one (``--token hf_granted`` or ``HF_TOKEN=hf_granted``: the fixture token with access to the gated
  repos), with ``NO_COLOR=1`` on a pipe (100 columns unless ``COLUMNS=`` says otherwise), in a scratch
  directory that sees ``examples/``; ``2>&1`` (stderr in the output, in order) and ``| head -N`` are honoured;
  otherwise stderr is shown only after a failure. The commands of one page run in order in one
  process (a scan may build on the cache of the one before); pages run side by side.
* The output must be the one shown, line for line, trailing spaces aside; a line ``...`` stands for any run of
  lines (zero or more).
* Not run: a ``hubfit`` command shown without output (``hubfit ./my-model``), any other program (``pip``,
  ``pytest``, the fake Hub itself), and anything outside console blocks. What cannot run offline (publishing
  to the real Hub, scans of real organizations, commands needing a GPU) is shown without output, or as a
  recorded transcript in a ```` ```text ```` block; a ``$ hubfit`` line in a fence without a language fails the
  test, so that no output is left unchecked by accident.

After changing what hubfit prints, rewrite the shown outputs from real runs (never by hand):

    python -m tests.test_docs --write

Every page of docs/ is linked from the README, and every relative link of these pages leads to a file (and a
``#anchor`` to a heading of it).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Shown:
    """One command of a page with the output the page shows (``lines``: the output lines' indices)."""

    page: Path
    line: int  # 1-based line of the command's first line
    command: str
    output: list[str]
    span: tuple[int, int]  # [start, end) indices of the output lines in the page

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _console_blocks(lines: list[str]) -> Iterator[tuple[int, int]]:
    """[start, end) line indices of the body of each console block."""
    start = None
    lang = ""
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if not match:
            continue
        if start is None:
            start, lang = i + 1, match.group(1)
        else:
            if lang == "console":
                yield start, i
            start = None


def shown_commands(page: Path) -> list[Shown]:
    """Every ``$ `` command of the page's console blocks with the output shown under it."""
    lines = page.read_text(encoding="utf-8").split("\n")
    out: list[Shown] = []
    for start, end in _console_blocks(lines):
        i = start
        while i < end:
            if not lines[i].startswith("$ "):
                i += 1
                continue
            first = i
            command = lines[i][2:]
            while command.endswith("\\") and i + 1 < end:
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            output_start = i
            while i < end and not lines[i].startswith("$ "):
                i += 1
            out.append(Shown(page, first + 1, command, lines[output_start:i], (output_start, i)))
    return out


# Prefixes a shown command may carry: the fake Hub replaces HF_ENDPOINT; the others are set for that command.
_PREFIXES = ("HF_ENDPOINT", "HF_TOKEN", "COLUMNS")


def _argv(command: str) -> tuple[list[str], dict[str, str], int | None] | None:
    """The hubfit command's arguments, its ``VAR=value`` prefixes and a ``| head -N`` (``None``: not hubfit); a
    ``2>&1`` is kept among the arguments (``DocsHub.run_page`` takes it out)."""
    words = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or words[0] != "hubfit":
        return None
    unknown = sorted(set(env) - set(_PREFIXES))
    if unknown:
        raise ValueError(
            f"only {', '.join(_PREFIXES)} may prefix a shown hubfit command, not {unknown}: {command}"
        )
    head = None
    if "|" in words:
        cut = words.index("|")
        match = re.fullmatch(r"head -(?:n )?(\d+)", " ".join(words[cut + 1 :]))
        if match is None:
            raise ValueError(f"only '| head -N' is supported after a hubfit command: {command}")
        head = int(match.group(1))
        words = words[:cut]
    return words[1:], env, head


def checked(pages: list[Path] = PAGES) -> list[Shown]:
    """The commands this test runs: hubfit commands that show output."""
    return [s for page in pages for s in shown_commands(page) if s.output and _argv(s.command) is not None]


# Runs in a fresh interpreter per page: the commands of a page, one after the other, as ``hubfit`` would run
# them (the console script is ``hubfit.cli.commands:main``), each with its own prefixes set.
_CHILD = """
import contextlib, io, json, os, sys
from hubfit.cli.commands import main

def capture():
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\\n")

results = []
for job in json.load(sys.stdin):
    saved = dict(os.environ)
    os.environ.update(job["env"])
    out = capture()
    err = out if job["merge"] else capture()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(job["args"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    os.environ.clear()
    os.environ.update(saved)
    out.flush()
    err.flush()
    text = out.buffer.getvalue().decode("utf-8", "replace")
    errors = "" if err is out else err.buffer.getvalue().decode("utf-8", "replace")
    results.append({"code": code, "out": text, "err": errors})
json.dump(results, sys.__stdout__)
"""


class DocsHub:
    """A fake Hub serving what ``python -m fixtures.hub_server`` does, and a runner for the shown commands."""

    def __init__(self) -> None:
        from fixtures.catalog import SERVING_FIXTURES, load_all
        from fixtures.hub_server import FakeHub

        self.hub = FakeHub()
        load_all(self.hub)
        for add in SERVING_FIXTURES.values():
            add(self.hub)
        self.hub.start()
        self.home = tempfile.mkdtemp(prefix="hubfit-docs-")
        # Commands run in a scratch directory (files they write stay there) that sees the repository's examples.
        self.cwd = Path(self.home) / "work"
        self.cwd.mkdir()
        (self.cwd / "examples").symlink_to(ROOT / "examples")

    def build_gguf(self) -> Future[dict[str, tuple[bytes, int]]] | None:
        """Start building the GGUF repository's files (seconds of the gguf writer's Python) in another process,
        so that the pages run meanwhile; ``None`` when this process built them already (the suite's GGUF tests)."""
        from fixtures import gguf_build

        if gguf_build.llama31_repo_files.cache_info().currsize:
            return None
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(gguf_build.llama31_repo_files)
        pool.shutdown(wait=False)
        return future

    def add_gguf(self, files: Future[dict[str, tuple[bytes, int]]] | None) -> None:
        """Serve the GGUF repository, from the files ``build_gguf`` built."""
        from fixtures import gguf_build

        try:
            built = None if files is None else files.result()
        except BrokenProcessPool:  # no second process here: build them in this one
            built = None
        if built is None:
            gguf_build.add_gguf_repo(self.hub)
            return
        with mock.patch.object(gguf_build, "llama31_repo_files", lambda: built):
            gguf_build.add_gguf_repo(self.hub)

    @staticmethod
    def needs_gguf(commands: list[Shown]) -> bool:
        from fixtures.gguf_build import LLAMA31_GGUF

        return any(LLAMA31_GGUF in s.command for s in commands)

    def close(self) -> None:
        self.hub.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def run_page(self, commands: list[Shown]) -> list[list[str]]:
        """The output of each command (stdout, then stderr when it failed), in one process, in page order."""
        jobs, heads = [], []
        for shown in commands:
            parsed = _argv(shown.command)
            assert parsed is not None
            args, prefix, head = parsed
            merge = "2>&1" in args
            jobs.append(
                {
                    "args": [a for a in args if a != "2>&1"],
                    "env": {k: v for k, v in prefix.items() if k != "HF_ENDPOINT"},
                    "merge": merge,
                }
            )
            heads.append(head)
        dropped = (
            "COLUMNS",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN",
            "HF_HUB_CACHE",
        )
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(
            HF_ENDPOINT=self.hub.url,
            HF_HOME=self.home,
            XDG_CACHE_HOME=self.home,
            HF_HUB_DISABLE_TELEMETRY="1",
            NO_COLOR="1",
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(jobs),
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"the runner failed:\n{done.stderr}"
        # The fake Hub listens on a free port; the pages show the one the README starts it on.
        shown_urls = {self.hub.url: "http://127.0.0.1:8765", self.hub.cdn_url: "http://127.0.0.1:8766"}
        outputs = []
        for result, head in zip(json.loads(done.stdout), heads, strict=True):
            text = result["out"].rstrip("\n")
            if result["code"] != 0 and result["err"].strip():
                text = (text + "\n" if text.strip() else "") + result["err"].rstrip("\n")
            for real, documented in shown_urls.items():
                text = text.replace(real, documented)
            lines = [line.rstrip() for line in text.split("\n")] if text.strip() else []
            outputs.append(lines[:head])
        return outputs


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``shown`` line for line, a ``...`` line standing for any run of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(line.rstrip()) + r"\n" for line in shown
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def run_pages(hub: DocsHub, shown: list[Shown]) -> dict[str, list[str]]:
    """Each command's real output by ``Shown.id``: pages side by side, a page's commands in page order (one may
    build on the one before, as a scan's cache does)."""
    pages: dict[Path, list[Shown]] = {}
    for s in shown:
        pages.setdefault(s.page, []).append(s)

    def run_page(commands: list[Shown]) -> list[tuple[str, list[str]]]:
        return [(s.id, out) for s, out in zip(commands, hub.run_page(commands), strict=True)]

    later = [commands for commands in pages.values() if hub.needs_gguf(commands)]
    gguf = hub.build_gguf() if later else None
    with ThreadPoolExecutor(max_workers=max(2, min(len(pages), 2 * (os.cpu_count() or 1)))) as pool:
        futures = [pool.submit(run_page, commands) for commands in pages.values() if commands not in later]
        if later:
            hub.add_gguf(gguf)
            futures += [pool.submit(run_page, commands) for commands in later]
        return {key: out for future in futures for key, out in future.result()}


@pytest.fixture(scope="module")
def docs_outputs() -> Iterator[dict[str, list[str]]]:
    """One fake Hub for the module; every checked command run once, the real outputs by ``Shown.id``."""
    hub = DocsHub()
    try:
        yield run_pages(hub, checked())
    finally:
        hub.close()


def test_some_commands_are_checked() -> None:
    shown = checked()
    assert len(shown) >= 8
    readme = [s.command for s in shown if s.page.name == "README.md"]
    assert "hubfit examples/tiny-random-Llama3ForCausalLM" in readme  # the quick start
    assert any(
        c.startswith("HF_ENDPOINT=") and "meta-llama/Llama-2-70b-hf" in c for c in readme
    )  # the fake Hub


def test_readme_starts_with_the_two_commands() -> None:
    """The README's first two commands are contractual: ``.ci/run`` runs the second one."""
    commands = [
        line
        for line in (ROOT / "README.md").read_text(encoding="utf-8").split("\n")
        if line.startswith("python -m pip install")
    ]
    assert commands[:2] == [
        "python -m pip install -e . && hubfit examples/tiny-random-Llama3ForCausalLM",
        'python -m pip install -e ".[test]" && python -m pytest',
    ]


def test_no_transcript_outside_console_blocks_goes_unnoticed() -> None:
    """A ``$ hubfit`` line in a fence without a language would be an unchecked transcript by accident: a fence
    that is not run says what it is (``text`` for recorded transcripts, ``bash``, ``yaml`` ...)."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").split("\n")
        fences = [i for i, line in enumerate(lines) if _FENCE.match(line)]
        for start, end in zip(fences[0::2], fences[1::2], strict=False):
            if lines[start].strip() == "```":
                body = lines[start + 1 : end]
                assert not any(re.match(r"\$ (?:[A-Z_]+=\S* )*hubfit\b", line) for line in body), (
                    f"{page.relative_to(ROOT)}:{start + 1}: a hubfit command in a fence without a language"
                )


@pytest.mark.parametrize("shown", checked(), ids=lambda s: s.id)
def test_shown_output_is_the_real_output(shown: Shown, docs_outputs: dict[str, list[str]]) -> None:
    actual = docs_outputs[shown.id]
    assert matches(shown.output, actual), (
        f"{shown.id}: `{shown.command}` prints\n"
        + "\n".join(actual)
        + "\n(run python -m tests.test_docs --write)"
    )


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme or f"](docs/{page.name}#" in readme, page.name


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (lower case, punctuation dropped, spaces to hyphens, ``-N``
    after a repeated one); headings inside code blocks do not count."""
    seen: dict[str, int] = {}
    inside = False
    for line in page.read_text(encoding="utf-8").split("\n"):
        if line.startswith("```"):
            inside = not inside
        match = None if inside else re.match(r"#{1,6} (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_relative_links_lead_to_files() -> None:
    """Every relative link leads to a file, and a ``#anchor`` into a Markdown page to one of its headings."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if re.match(r"[a-z]+:", target) or not (target or anchor):
                continue
            where = page.parent / target if target else page
            assert where.exists(), f"{page.relative_to(ROOT)} links to missing {target}"
            if anchor and where.suffix == ".md":
                assert anchor in anchors(where), (
                    f"{page.relative_to(ROOT)} links to missing {target}#{anchor}"
                )


def test_matching_rules() -> None:
    assert matches(["a", "b"], ["a", "b"])
    assert not matches(["a", "b"], ["a", "c"])
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and matches(["a", "...", "d"], ["a", "d"])
    assert not matches(["a", "..."], ["b", "c"])


def write() -> None:
    """Rewrite every shown output that differs from the real one (``python -m tests.test_docs --write``); a page
    whose outputs all match is left untouched."""
    hub = DocsHub()
    try:
        shown = checked()
        outputs = run_pages(hub, shown)
    finally:
        hub.close()
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").split("\n")
        changed = False
        for s in reversed([s for s in shown if s.page == page]):  # from the bottom: spans stay valid
            if not matches(s.output, outputs[s.id]):
                lines[s.span[0] : s.span[1]] = outputs[s.id]
                changed = True
                print(f"rewrote {s.id}")
        if changed:
            page.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.test_docs --write")
    write()
