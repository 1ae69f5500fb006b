"""The README and every page under docs/ are true: each command shown with its output runs and prints it.

In a ```` ```console ```` block, a line starting with ``$ `` is a command (a trailing ``\\`` continues it on the
next line) and the lines after it, up to the next ``$ `` line or the end of the block, are its output. A
``hubfit`` command (after any ``VAR=value`` prefixes) that shows output is run here, against a fake Hub that
serves every fixture repo (as ``python -m fixtures.hub_server`` does), without a token unless the command names one
(``--token hf_granted`` or ``HF_TOKEN=hf_granted``: the fixture token with access to the gated repos), on a
100-column pipe, in a scratch directory; ``| head -N`` is honoured. The output must be the one shown,
line for line (trailing spaces aside); a line ``...`` stands for any number of lines. Commands without output
(``hubfit ./my-model``), and other programs (``pip``, ``pytest``, the fake Hub itself), are not run.

After changing what hubfit prints, rewrite the shown outputs from real runs (never by hand):

    python -m tests.test_docs --write

Every page of docs/ is linked from the README, and every relative link of these pages leads to a file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _argv(command: str) -> tuple[list[str], dict[str, str], int | None] | None:
    """The hubfit command's arguments, its ``VAR=value`` prefixes and a ``| head -N`` (``None``: not hubfit)."""
    words = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or words[0] != "hubfit":
        return None
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


class DocsHub:
    """A fake Hub serving what ``python -m fixtures.hub_server`` serves, and a runner for shown commands."""

    def __init__(self) -> None:
        from fixtures.catalog import SERVING_FIXTURES, load_all
        from fixtures.gguf_build import add_gguf_repo
        from fixtures.hub_server import FakeHub

        self.hub = FakeHub()
        load_all(self.hub)
        add_gguf_repo(self.hub)
        for add in SERVING_FIXTURES.values():
            add(self.hub)
        self.hub.start()
        self.home = tempfile.mkdtemp(prefix="hubfit-docs-")
        # Commands run in a scratch directory (files they write stay there) that sees the repository's examples.
        self.cwd = Path(self.home) / "work"
        self.cwd.mkdir()
        (self.cwd / "examples").symlink_to(ROOT / "examples")

    def close(self) -> None:
        self.hub.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def run(self, shown: Shown) -> list[str]:
        parsed = _argv(shown.command)
        assert parsed is not None
        args, prefix, head = parsed
        dropped = ("COLUMNS", "NO_COLOR", "HF_TOKEN", "HF_HUB_DISABLE_IMPLICIT_TOKEN")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(
            HF_ENDPOINT=self.hub.url,
            HF_HOME=self.home,
            XDG_CACHE_HOME=self.home,
            HF_HUB_DISABLE_TELEMETRY="1",
            NO_COLOR="1",
        )
        if "HF_TOKEN" in prefix:
            env["HF_TOKEN"] = prefix["HF_TOKEN"]
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        done = subprocess.run(
            [sys.executable, "-m", "hubfit.cli", *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = done.stdout.rstrip("\n").split("\n") if done.stdout.strip() else []
        if done.returncode != 0 and done.stderr.strip():
            lines += done.stderr.rstrip("\n").split("\n")
        # The fake Hub listens on a free port; the pages show the one the README starts it on.
        shown_urls = {self.hub.url: "http://127.0.0.1:8765", self.hub.cdn_url: "http://127.0.0.1:8766"}
        for real, documented in shown_urls.items():
            lines = [line.replace(real, documented) for line in lines]
        return [line.rstrip() for line in lines][:head]


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``shown`` line for line, a ``...`` line standing for any run of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(line.rstrip()) + r"\n" for line in shown
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


@pytest.fixture(scope="module")
def docs_hub() -> Iterator[DocsHub]:
    hub = DocsHub()
    yield hub
    hub.close()


def test_some_commands_are_checked() -> None:
    shown = checked()
    assert len(shown) >= 8
    assert any(
        s.page.name == "README.md" and "examples/tiny-random-Llama3ForCausalLM" in s.command for s in shown
    )


@pytest.mark.parametrize("shown", checked(), ids=lambda s: s.id)
def test_shown_output_is_the_real_output(shown: Shown, docs_hub: DocsHub) -> None:
    actual = docs_hub.run(shown)
    assert matches(shown.output, actual), (
        f"{shown.id}: `{shown.command}` prints\n"
        + "\n".join(actual)
        + "\n(run python -m tests.test_docs --write)"
    )


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme or f"](docs/{page.name}#" in readme, page.name


def test_relative_links_lead_to_files() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_matching_rules() -> None:
    assert matches(["a", "b"], ["a", "b"])
    assert not matches(["a", "b"], ["a", "c"])
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and matches(["a", "...", "d"], ["a", "d"])
    assert not matches(["a", "..."], ["b", "c"])


def write() -> None:
    """Rewrite every checked command's shown output with the real one (``python -m tests.test_docs --write``)."""
    hub = DocsHub()
    try:
        for page in PAGES:
            shown = checked([page])
            if not shown:
                continue
            lines = page.read_text(encoding="utf-8").split("\n")
            actual = [hub.run(s) for s in shown]  # in page order: a command may build on the one before
            for s, out in reversed(
                list(zip(shown, actual, strict=True))
            ):  # from the bottom: spans stay valid
                if not matches(s.output, out):
                    lines[s.span[0] : s.span[1]] = out
                    print(f"rewrote {s.id}")
            page.write_text("\n".join(lines), encoding="utf-8")
    finally:
        hub.close()


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.test_docs --write")
    write()
