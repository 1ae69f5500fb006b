"""Byte-exact editing of hubfit's model-card section (hubfit.publish.cardtext) and Markdown escaping."""

from __future__ import annotations

import subprocess

import pytest

from hubfit.errors import PublishError
from hubfit.publish.cardtext import (
    END_MARKER,
    START_MARKER,
    apply_section,
    card_diff,
    current_section,
    find_section,
)
from hubfit.render.markup import cell, code

# Front matter written the way people write it by hand: every construct below is one that huggingface_hub's
# ModelCard round trip rewrites (research/ecosystem.md §1.6: comments dropped, flow list -> block list,
# folded scalar re-quoted, anchors renamed, `version: 1.10` -> 1.1, empty key deleted, keys reordered).
FRONT_MATTER = b"""---
# Main metadata -- edited by hand
license: apache-2.0   # keep in sync with LICENSE
tags: [text-generation, "llama"]
language:
    - en
long_desc: >
  folded scalar
  across lines
anchors: &a {x: 1}
copy: *a
version: 1.10
empty:
model-index:
- name: demo
date: 2024-01-02
---
"""
BODY = b"""
# Demo model

Some text with a code example of hubfit's own markers:

```markdown
<!-- hubfit:start -->
this is documentation, not a section
<!-- hubfit:end -->
```

## Usage

    pip install demo
"""
CARD = FRONT_MATTER + BODY

SECTION_1 = f"{START_MARKER}\n## Hardware requirements\n\n| a | b |\n|---|---|\n| 1 | 2 |\n{END_MARKER}"
SECTION_2 = f"{START_MARKER}\n## Hardware requirements\n\n| a | b |\n|---|---|\n| 3 | 4 |\n{END_MARKER}"


def test_first_time_appends_and_keeps_every_original_byte():
    new = apply_section(CARD, SECTION_1, repo_id="org/demo")
    assert new == CARD + b"\n" + SECTION_1.encode() + b"\n"
    assert current_section(new) == SECTION_1


def test_second_time_replaces_in_place_and_text_after_the_section_survives():
    first = apply_section(CARD, SECTION_1, repo_id="org/demo")
    edited_by_owner = first + b"\n## Citation\n\nPlease cite us.\n"
    second = apply_section(edited_by_owner, SECTION_2, repo_id="org/demo")
    assert second == CARD + b"\n" + SECTION_2.encode() + b"\n\n## Citation\n\nPlease cite us.\n"
    assert apply_section(second, SECTION_2, repo_id="org/demo") == second


def test_markers_in_code_blocks_and_front_matter_are_not_a_section():
    assert find_section(CARD) is None
    in_front_matter = b"---\nnote: |\n  " + START_MARKER.encode() + b"\n---\nbody\n"
    assert find_section(in_front_matter) is None
    tilde_fence = b"~~~~\n" + START_MARKER.encode() + b"\n" + END_MARKER.encode() + b"\n~~~~\n"
    assert find_section(tilde_fence) is None
    indented_code = b"text\n\n    " + START_MARKER.encode() + b"\n    " + END_MARKER.encode() + b"\n"
    assert find_section(indented_code) is None


def test_bom_crlf_and_missing_final_newline_are_kept():
    card = b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n\r\n# Title\r\nno final newline"
    new = apply_section(card, SECTION_1, repo_id="org/demo")
    crlf_section = SECTION_1.replace("\n", "\r\n").encode()
    assert new == card + b"\r\n\r\n" + crlf_section + b"\r\n"
    assert b"\n" not in new.replace(b"\r\n", b"")  # no bare LF introduced
    replaced = apply_section(new, SECTION_2, repo_id="org/demo")
    assert replaced == card + b"\r\n\r\n" + SECTION_2.replace("\n", "\r\n").encode() + b"\r\n"
    assert current_section(replaced) == SECTION_2


def test_bytes_that_are_not_utf8_survive():
    card = b"---\nlicense: mit\n---\nLatin-1 caf\xe9 and a stray \xff byte\n"
    new = apply_section(card, SECTION_1, repo_id="org/demo")
    assert new.startswith(card)
    assert apply_section(new, SECTION_2, repo_id="org/demo").startswith(card)


def test_no_readme_gives_a_minimal_card():
    new = apply_section(None, SECTION_1, repo_id="org/my_model")
    assert new == b"# my\\_model\n\n" + SECTION_1.encode() + b"\n"


def test_empty_readme():
    assert apply_section(b"", SECTION_1, repo_id="o/m") == SECTION_1.encode() + b"\n"


@pytest.mark.parametrize(
    "card",
    [
        START_MARKER.encode() + b"\nno end\n",
        END_MARKER.encode() + b"\n" + START_MARKER.encode() + b"\n",
        (SECTION_1 + "\n" + SECTION_2 + "\n").encode(),
    ],
    ids=["start-without-end", "end-before-start", "two-sections"],
)
def test_unpaired_markers_are_refused(card):
    with pytest.raises(PublishError, match="exactly one hubfit section"):
        apply_section(card, SECTION_1, repo_id="o/m")


def test_diff_applies_with_patch(tmp_path):
    for old in (CARD, CARD.rstrip(b"\n"), apply_section(CARD, SECTION_1, repo_id="o/m")):
        new = apply_section(old, SECTION_2, repo_id="o/m")
        diff = card_diff(old, new)
        assert diff.startswith("--- a/README.md\n+++ b/README.md\n")
        (tmp_path / "README.md").write_bytes(old)
        subprocess.run(["patch", "-s", "-p1"], input=diff.encode(), cwd=tmp_path, check=True)
        assert (tmp_path / "README.md").read_bytes() == new
    assert card_diff(CARD, CARD) == ""
    assert card_diff(None, b"# m\n").startswith("--- /dev/null\n+++ b/README.md\n")


HOSTILE = [
    "[click me](https://evil.example/x)",
    "![pixel](https://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "https://evil.example/autolink www.evil.com evil.com",
    "`break` out ``of`` spans` <a href=https://e.com>x</a>",
    "line1\n" + END_MARKER + "\n<b>x</b>",
    "a | b | c",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_escaped_values_render_inert_on_github_and_markdown_it(value):
    import cmarkgfm
    from cmarkgfm.cmark import Options
    from markdown_it import MarkdownIt

    doc = f"Model {code(value)} here.\n\n| key | value |\n|---|---|\n| {cell(value)} | x |\n"
    renderers = {
        "github": lambda s: cmarkgfm.github_flavored_markdown_to_html(s, options=Options.CMARK_OPT_UNSAFE),
        "markdown-it": MarkdownIt("gfm-like", {"linkify": True, "html": True}).render,
    }
    for name, render in renderers.items():
        html = render(doc)
        for tag in ("<a ", "<img", "<script", "<b>"):
            assert tag not in html, (name, html)
        # The table keeps exactly two columns: the value did not split its cell or end the row.
        assert html.count("<td>") == 2, (name, html)
    # A marker inside a value never stands on a line of its own, so it cannot end hubfit's section early.
    assert find_section((START_MARKER + "\n" + doc + END_MARKER + "\n").encode()) is not None


def test_code_span_round_trips_the_visible_text():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    for value in ["a `b` c", "`lead", "trail`", "plain"]:
        html = md.render(code(value))
        assert html.strip().removeprefix("<p><code>").removesuffix("</code></p>").strip() == value.replace(
            "<", "&lt;"
        )
    assert code("") == "`∅`"
    assert len(code("x" * 1000)) < 130
