"""Editing the hubfit section of a model card as text, byte for byte.

A model card (``README.md``) is YAML front matter plus Markdown. hubfit owns one region of it, delimited by
two HTML comment lines::

    <!-- hubfit:start -->
    ...
    <!-- hubfit:end -->

The first time, the region is appended at the end of the card; afterwards it is replaced in place. Every byte
outside the region is kept exactly: front matter (comments, flow lists, quoting: huggingface_hub's ``ModelCard``
would re-dump it, see research/ecosystem.md §1.6), a UTF-8 byte order mark, CRLF line endings, a missing
final newline, even bytes that are not valid UTF-8 (decoded with ``surrogateescape`` and re-encoded to the
same bytes). The section's own line endings follow the card's dominant style.

Markers count only on a line of their own (up to three spaces of indentation, as CommonMark allows for HTML
blocks), outside the front matter and outside fenced code blocks, so a card that documents hubfit's markers
in a code example is not mistaken for a hubfit section. A card hubfit cannot edit in exactly one place is
refused with a :class:`~hubfit.errors.PublishError`, never guessed at: markers that do not pair (two
sections, a start without an end, an end before its start), and a card that ends inside a fenced code block
that is never closed (a section appended there would be code, and would not be found again).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from hubfit.errors import PublishError
from hubfit.render.markup import END_MARKER, START_MARKER

__all__ = [
    "END_MARKER",
    "START_MARKER",
    "SectionSpan",
    "apply_section",
    "card_diff",
    "current_section",
    "find_section",
    "minimal_card",
]


# The Hub's own front-matter regex (huggingface_hub/repocard.py REGEX_YAML_BLOCK, "exact same regex as in the
# Hub server"), copied so this module stays import-cheap.
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BOM = "\ufeff"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _marker_line(line: str, marker: str) -> bool:
    stripped = line.rstrip("\r\n")
    indent = len(stripped) - len(stripped.lstrip(" "))
    return indent <= 3 and stripped.strip(" \t") == marker


def _newline(text: str) -> str:
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    return "\r\n" if crlf > lf else "\n"


def _body_start(text: str) -> int:
    """Offset of the first character after the YAML front matter and a byte order mark (0 with neither)."""
    offset = 1 if text.startswith(_BOM) else 0
    match = _YAML_BLOCK.match(text, offset)
    return match.end() if match else offset


@dataclass(frozen=True)
class SectionSpan:
    """Where hubfit's section sits in a decoded card.

    ``start`` is the first character of the start-marker line, ``end`` the character after the end marker's
    last non-newline character: ``text[start:end]`` is the whole section without its final line break.
    """

    start: int
    end: int


def find_section(card: bytes) -> SectionSpan | None:
    """Locate hubfit's section in ``card``; None when the card has none.

    Raises :class:`~hubfit.errors.PublishError` when the markers are unbalanced (a start without an end, an
    end before a start, or two sections): hubfit does not guess which bytes it owns.
    """
    return _scan(card)[0]


def _scan(card: bytes) -> tuple[SectionSpan | None, int | None]:
    """The section (see :func:`find_section`) and, when the card ends inside a fenced code block that is
    never closed, the line number (1-based) of the fence that opened it."""
    text = _decode(card)
    starts: list[int] = []
    ends: list[int] = []
    fence: tuple[str, int] | None = None
    fence_line = 0
    pos = _body_start(text)
    before = len(_NEWLINE.findall(text, 0, pos))
    for number, match in enumerate(_LINE.finditer(text, pos), start=before + 1):
        line = match.group(0)
        if not line:
            break
        content = line.rstrip("\r\n")
        if fence is not None:
            char, length = fence
            stripped = content.strip(" \t")
            if (
                len(content) - len(content.lstrip(" ")) <= 3
                and stripped
                and set(stripped) == {char}
                and len(stripped) >= length
            ):
                fence = None
            continue
        opened = _FENCE_OPEN.match(content)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            fence = (opened.group(1)[0], len(opened.group(1)))
            fence_line = number
            continue
        if _marker_line(line, START_MARKER):
            starts.append(match.start())
        elif _marker_line(line, END_MARKER):
            ends.append(match.start() + len(content))
    open_fence = None if fence is None else fence_line
    if not starts and not ends:
        return None, open_fence
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise PublishError(
            f"README.md has {len(starts)} '{START_MARKER}' and {len(ends)} '{END_MARKER}' lines in an order "
            "hubfit cannot pair; fix the markers by hand so the card holds exactly one hubfit section"
        )
    return SectionSpan(starts[0], ends[0]), open_fence


def current_section(card: bytes | None) -> str | None:
    """The hubfit section on ``card`` (markers included, ``\\n`` line endings), or None."""
    if card is None:
        return None
    span = find_section(card)
    if span is None:
        return None
    text = _decode(card)[span.start : span.end]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def minimal_card(repo_id: str) -> str:
    """Text of a new card for a repository that has no README.md: a title only (no invented metadata)."""
    name = repo_id.rsplit("/", 1)[-1]
    # Hub repo names are [A-Za-z0-9._-]; "_" is the only character Markdown could read as emphasis.
    return "# " + name.replace("_", "\\_") + "\n"


def apply_section(card: bytes | None, section: str, *, repo_id: str) -> bytes:
    """Return ``card`` with hubfit's section appended (first time) or replaced in place.

    ``section`` is the rendered section, starting with :data:`START_MARKER` and ending with
    :data:`END_MARKER`, lines separated by ``\\n``. ``card`` None means the repository has no README.md:
    the result is :func:`minimal_card` plus the section.
    """
    lines = section.split("\n")
    if lines[0] != START_MARKER or lines[-1] != END_MARKER or section.count(START_MARKER) != 1:
        raise ValueError("a hubfit section must start with the start marker and end with the end marker")
    if card is None:
        text = minimal_card(repo_id)
        return _encode(text + "\n" + section + "\n")
    text = _decode(card)
    nl = _newline(text)
    block = section.replace("\n", nl)
    span, open_fence = _scan(card)
    if span is not None:
        return _encode(text[: span.start] + block + text[span.end :])
    if open_fence is not None:
        # Appended after a fence that is never closed, the section would be code: shown as text, and not
        # found again (every later run would append another).
        raise PublishError(
            f"README.md ends inside a fenced code block opened on line {open_fence} and never closed; "
            "close it by hand so hubfit's section is not appended inside it"
        )
    if not text or text == _BOM:
        return _encode(text + block + nl)
    separator = nl if text.endswith(("\n", "\r")) else nl + nl
    return _encode(text + separator + block + nl)


def card_diff(old: bytes | None, new: bytes, *, path: str = "README.md") -> str:
    """A unified diff (``git diff`` style headers) from ``old`` to ``new``; empty when they are equal."""
    if old == new:
        return ""
    old_lines = _LINE.findall(_decode(old)) if old is not None else []
    new_lines = _LINE.findall(_decode(new))
    old_lines = [line for line in old_lines if line]
    new_lines = [line for line in new_lines if line]
    diff = difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile=f"b/{path}",
        lineterm="\n",
    )
    out: list[str] = []
    for line in diff:
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
