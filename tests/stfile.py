"""Build safetensors bytes for tests: a real header (names, dtypes, shapes) followed by zeroed data."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "F64": 64,
}


def header(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> tuple[dict, int]:
    """A header dict with contiguous offsets, and the data size it implies."""
    out: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _BITS[dtype] // 8
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    return out, offset


def file_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> bytes:
    head, size = header(tensors, metadata)
    raw = json.dumps(head).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * size


def write(path: Path, tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(tensors, metadata))
    return path
