"""Local safetensors files for tests: a real header (names, dtypes, shapes) followed by zeroed data.

The header is built and serialized by the fixtures' builder (fixtures/build.py), as the safetensors library
writes it; this module only writes it to disk.
"""

from __future__ import annotations

import struct
from pathlib import Path

from fixtures.build import Tensor
from fixtures.build import header as build_header
from fixtures.hub_server import safetensors_header_bytes


def header(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> tuple[dict, int]:
    """A header dict with contiguous offsets, and the data size it implies."""
    head = build_header([Tensor(n, d, tuple(s)) for n, (d, s) in tensors.items()], metadata)
    size = max((v["data_offsets"][1] for k, v in head.items() if k != "__metadata__"), default=0)
    return head, size


def file_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> bytes:
    head, size = header(tensors, metadata)
    raw = safetensors_header_bytes(head)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * size


def write(path: Path, tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(tensors, metadata))
    return path
