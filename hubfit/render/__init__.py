"""Renderings of a Report (text, Markdown); pure functions that format figures and never compute them."""

from hubfit.render.report import to_markdown, to_text

__all__ = ["to_markdown", "to_text"]
