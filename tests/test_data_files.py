"""The compiled data file (hubfit/data/compiled.msgpack) holds exactly what the YAML data files say."""

from __future__ import annotations

from importlib import resources

import msgspec

from hubfit import _data


def test_compiled_file_is_the_yaml_files_parsed():
    """Rewrite it with ``python -m hubfit._data`` after editing a YAML data file."""
    stored = resources.files("hubfit").joinpath(_data.COMPILED).read_bytes()
    assert stored == _data.compile_all(), "hubfit/data/compiled.msgpack is stale: run python -m hubfit._data"


def test_every_yaml_file_is_compiled_with_its_types():
    documents = msgspec.msgpack.decode(resources.files("hubfit").joinpath(_data.COMPILED).read_bytes())
    assert sorted(documents) == _data.yaml_names()
    # ggml.yaml is keyed by integer type ids: the compiled file keeps them integers (JSON would not).
    assert all(isinstance(key, int) for key in documents["ggml"]["types"])
    for name in _data.yaml_names():
        assert _data.load(name) == _data.load_yaml(name)


def test_load_parses_the_yaml_of_a_file_missing_from_the_compiled_one(monkeypatch):
    monkeypatch.setattr(_data, "_compiled", lambda: {})
    _data.load.cache_clear()
    try:
        assert _data.load("gpus") == _data.load_yaml("gpus")
    finally:
        _data.load.cache_clear()
