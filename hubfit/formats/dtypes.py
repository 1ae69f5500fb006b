"""Safetensors dtype sizes, loaded once from ``data/dtypes.yaml`` (the single source of truth)."""

from __future__ import annotations

from functools import cache
from typing import Any

from hubfit import _data


@cache
def _table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = _data.load("dtypes")["dtypes"]
    return table


@cache
def bits_table() -> dict[str, int]:
    """Storage bits per element of every safetensors dtype."""
    return {name: int(row["bits"]) for name, row in _table().items()}


def known(dtype: str) -> bool:
    """Whether ``dtype`` is a safetensors dtype."""
    return dtype in _table()


def bits(dtype: str) -> int:
    """Storage bits per element of a safetensors dtype (``KeyError`` if unknown)."""
    return int(_table()[dtype]["bits"])


def kind(dtype: str) -> str:
    """``float``, ``int``, ``uint``, ``bool`` or ``complex``."""
    return str(_table()[dtype]["kind"])


def all_dtypes() -> tuple[str, ...]:
    return tuple(_table())
