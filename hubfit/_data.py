"""The package's data files (``hubfit/data/*.yaml``: facts with their sources), each parsed once.

libyaml's C loader is used where PyYAML was built with it (about eight times faster than the pure-Python one on
the GPU catalog); the safe loader either way.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["load"]

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load(name: str) -> dict[str, Any]:
    """The document of ``hubfit/data/<name>.yaml`` (parsed on first use, shared afterwards)."""
    text = resources.files("hubfit").joinpath(f"data/{name}.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    return document
