"""The package's data files (``hubfit/data/*.yaml``: facts with their sources), each parsed once.

The YAML files are the source of truth, written and reviewed by people (comments carry the sources). What the
program reads at run time is ``hubfit/data/compiled.msgpack``: the same documents, parsed once by
``python -m hubfit._data`` and stored as MessagePack (which keeps the integer keys of ggml.yaml that JSON would
turn into strings), because importing PyYAML and parsing the files cost about 20 ms of every start-up where
decoding the compiled file with msgspec costs well under 1 ms. A test parses the YAML files and requires the
compiled file to hold exactly the same documents, so the two cannot drift apart.

A data file missing from the compiled file (a YAML file added since it was written) is parsed from its YAML
with libyaml's C loader where PyYAML was built with it, the safe loader either way.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import msgspec

__all__ = ["COMPILED", "compile_all", "load", "load_yaml"]

#: The compiled documents, beside the YAML files.
COMPILED = "data/compiled.msgpack"


@cache
def _compiled() -> dict[str, Any]:
    try:
        data = resources.files("hubfit").joinpath(COMPILED).read_bytes()
    except FileNotFoundError:
        return {}
    documents: dict[str, Any] = msgspec.msgpack.decode(data)
    return documents


@cache
def load(name: str) -> dict[str, Any]:
    """The document of ``hubfit/data/<name>.yaml`` (from the compiled file; parsed on first use, shared)."""
    document: dict[str, Any] | None = _compiled().get(name)
    return document if document is not None else load_yaml(name)


def load_yaml(name: str) -> dict[str, Any]:
    """Parse ``hubfit/data/<name>.yaml`` itself (what :func:`compile_all` stores)."""
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = resources.files("hubfit").joinpath(f"data/{name}.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return document


def yaml_names() -> list[str]:
    """The data files' names (``hubfit/data/<name>.yaml``), sorted."""
    folder = resources.files("hubfit").joinpath("data")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compile_all() -> bytes:
    """The bytes of ``hubfit/data/compiled.msgpack``: every YAML data file's document, keyed by name."""
    return msgspec.msgpack.encode({name: load_yaml(name) for name in yaml_names()})


if __name__ == "__main__":  # python -m hubfit._data: rewrite the compiled file after editing a YAML file
    from pathlib import Path

    target = Path(__file__).resolve().parent / COMPILED
    target.write_bytes(compile_all())
    print(f"wrote {target}")
