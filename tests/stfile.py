"""Local safetensors files for tests, written by the safetensors library itself (zeroed data).

:func:`file_bytes` and :func:`write` hand the tensors (names, dtypes, shapes) to ``safetensors.serialize``, so
a test file is exactly what the library writes: its tensor order (by alignment, then name), its offsets, its
header padding. Only what the library cannot write is built here from :func:`header` (fixtures/build.py,
serialized as the library does): dtypes its writer has no name for (F6_E2M3, F6_E3M2) and F4 shapes whose last
dimension is odd. Hostile files stay hand-made in the tests: the library refuses to write them.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import safetensors

from fixtures.build import Tensor
from fixtures.build import header as build_header
from fixtures.hub_server import safetensors_header_bytes

Tensors = dict[str, tuple[str, list[int]]]

#: safetensors dtype codes by the names the library's writer takes (torch's dtype names).
_WRITER_NAMES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2",  # two per byte; the writer takes the storage shape (last dimension halved)
}


def header(tensors: Tensors, metadata: dict | None = None) -> tuple[dict, int]:
    """A header dict with contiguous offsets in the given order, and the data size it implies."""
    head = build_header([Tensor(n, d, tuple(s)) for n, (d, s) in tensors.items()], metadata)
    size = max((v["data_offsets"][1] for k, v in head.items() if k != "__metadata__"), default=0)
    return head, size


def _writable(tensors: Tensors) -> bool:
    for dtype, shape in tensors.values():
        if dtype not in _WRITER_NAMES:
            return False
        if dtype == "F4" and (not shape or shape[-1] % 2):
            return False
    return True


def _specs(tensors: Tensors) -> tuple[dict, object]:
    """The writer's input for ``tensors`` (zeroed data), and the buffer it points into (keep it alive)."""
    sizes = {name: Tensor(name, d, tuple(s)).nbytes for name, (d, s) in tensors.items()}
    buffer = ctypes.create_string_buffer(max(sizes.values(), default=0) or 1)
    specs: dict = {}
    for name, (dtype, shape) in tensors.items():
        stored = [*shape[:-1], shape[-1] // 2] if dtype == "F4" else list(shape)
        if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.8: a pointer to the data
            specs[name] = safetensors.TensorSpec(
                dtype=_WRITER_NAMES[dtype],
                shape=stored,
                data_ptr=ctypes.addressof(buffer),
                data_len=sizes[name],
            )
        else:  # older releases take the bytes
            specs[name] = {"dtype": _WRITER_NAMES[dtype], "shape": stored, "data": bytes(sizes[name])}
    return specs, buffer


def file_bytes(tensors: Tensors, metadata: dict | None = None) -> bytes:
    """A whole safetensors file holding ``tensors`` (zeroed data), as the safetensors library writes it."""
    if _writable(tensors):
        specs, buffer = _specs(tensors)
        data = bytes(safetensors.serialize(specs, metadata))
        del buffer  # the writer has copied the data
        return data
    head, size = header(tensors, metadata)
    raw = safetensors_header_bytes(head)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * size


def write(path: Path, tensors: Tensors, metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(tensors, metadata))
    return path
