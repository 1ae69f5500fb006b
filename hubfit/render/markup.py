"""Safe Markdown for text hubfit writes into other people's repositories.

Anything that comes from a repository (its name, config values, architecture names, dtype strings) is
untrusted: a hostile repo could name a field ``[click](https://evil)``, ``![x](https://tracker/p.png)``,
``<img src=x onerror=...>`` or ``<!-- hubfit:end -->``. Such strings go through :func:`code`, which renders
them as an inline code span. Inside a code span CommonMark, GitHub-flavoured Markdown and markdown-it (the
Hub's renderer family) interpret nothing: no links, no autolinks or linkified bare URLs, no images, no HTML,
no emphasis. Escaping prose with backslashes instead is not enough, because whether a bare ``evil.com`` or
``https\\://x`` becomes a link depends on the renderer's autolink pass.

Details that keep the span closed and the surrounding structure intact:

* the backtick fence is one longer than the longest backtick run in the value (CommonMark 0.31 §6.1), padded
  with a space when the value starts or ends with a backtick;
* line breaks and other control characters become spaces: a newline would end a table row, and a line of its
  own could imitate hubfit's section markers;
* in table cells ``|`` is written ``\\|`` (GFM tables split on ``|`` even inside code spans and remove the
  backslash there);
* values are cut at ``max_len`` characters so a hostile value cannot push a comment past the Hub's or
  GitHub's size limits.
"""

from __future__ import annotations

import re

__all__ = ["END_MARKER", "MAX_VALUE_LEN", "START_MARKER", "cell", "code"]

#: The lines that open and close hubfit's section of a model card (and of a comment body).
START_MARKER = "<!-- hubfit:start -->"
END_MARKER = "<!-- hubfit:end -->"

#: Longest repo-supplied value rendered in full; longer values are cut and end with an ellipsis.
MAX_VALUE_LEN = 120

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_BACKTICK_RUN = re.compile(r"`+")


def code(value: object, *, max_len: int = MAX_VALUE_LEN, table: bool = False) -> str:
    """Render an untrusted value as an inline code span (inert in Markdown and HTML).

    ``table=True`` also escapes ``|`` for use inside a GFM table cell (see :func:`cell`).

    >>> code("org/model")
    '`org/model`'
    >>> code("a `b` c")
    '``a `b` c``'
    """
    s = _CONTROL.sub(" ", str(value))
    if len(s) > max_len:
        s = s[: max_len - 1] + "…"
    if table:
        s = s.replace("|", "\\|")
    if not s.strip():
        # CommonMark strips one space from each side of a span, so blank values would vanish: show a sign.
        return "`∅`"
    longest = max((len(run) for run in _BACKTICK_RUN.findall(s)), default=0)
    fence = "`" * (longest + 1)
    if s.startswith("`") or s.endswith("`"):
        s = f" {s} "
    return f"{fence}{s}{fence}"


def cell(value: object, *, max_len: int = MAX_VALUE_LEN) -> str:
    """Render an untrusted value for a GFM table cell: a code span with ``|`` escaped."""
    return code(value, max_len=max_len, table=True)
