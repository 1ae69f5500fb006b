"""Reading and validating safetensors headers.

A safetensors file is an 8-byte little-endian header length ``N``, then ``N`` bytes of UTF-8 JSON, then the
tensor data. The JSON maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets are
relative to the end of the header) plus an optional ``"__metadata__"`` map of strings. See
https://github.com/huggingface/safetensors#format.

Validation happens here, once: the length bound, a JSON object, known dtypes, non-negative integer shapes,
byte sizes that match ``elements x dtype bits / 8``, offsets that cover the data buffer contiguously without
overlap or holes, and (when the file size is known) a buffer that ends exactly at the end of the file. Every
violation raises :class:`hubfit.errors.HeaderError` naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hubfit.constants import MAX_HEADER_BYTES, MAX_HEADER_DEPTH
from hubfit.errors import HeaderError, LfsPointerError
from hubfit.formats import dtypes

__all__ = [
    "SafetensorsHeader",
    "TensorInfo",
    "header_length",
    "parse_header",
    "read_local_header",
    "validate_header",
]

_LFS_POINTER_PREFIX = b"version https://git-lfs"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it.

    Attributes:
        name: the tensor's key in the header.
        dtype: safetensors dtype string (``"BF16"``, ``"F8_E4M3"``, ``"I32"`` ...).
        shape: the stored shape (a scalar has ``()``).
        data_offsets: ``(begin, end)`` byte offsets relative to the end of the header.
        elements: number of stored elements, ``prod(shape)`` (1 for a scalar).
        nbytes: bytes the tensor occupies, ``end - begin`` (checked against ``elements x bits / 8``).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]
    elements: int
    nbytes: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated safetensors header.

    Attributes:
        filename: the file's path in the repository (or directory).
        header_length: the value of the 8-byte length prefix.
        tensors: tensors by name, in header order.
        metadata: the ``__metadata__`` string map (empty when absent).
        data_bytes: size of the data buffer (the largest end offset).
    """

    filename: str
    header_length: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    data_bytes: int = 0

    @property
    def file_size(self) -> int:
        """Size of the whole file: prefix + header + data."""
        return 8 + self.header_length + self.data_bytes


def header_length(prefix: bytes, *, filename: str, file_size: int | None = None) -> int:
    """Decode and bound the 8-byte length prefix.

    Raises:
        HeaderError: the prefix is short, larger than the 100 MB the format allows, or points past the end
            of the file.
        LfsPointerError: the bytes are a Git LFS pointer file rather than safetensors.
    """
    if prefix.startswith(_LFS_POINTER_PREFIX):
        raise LfsPointerError(
            f"{filename} is a Git LFS pointer, not the weights: fetch the real file (git lfs pull) "
            "or analyse the repository on the Hub"
        )
    if len(prefix) < 8:
        raise HeaderError(f"{filename}: file too short for a safetensors header ({len(prefix)} bytes)")
    (length,) = struct.unpack("<Q", prefix[:8])
    if length > MAX_HEADER_BYTES:
        raise HeaderError(
            f"{filename}: header length {length:,} bytes exceeds the safetensors limit of {MAX_HEADER_BYTES:,}"
        )
    if length < 2:
        raise HeaderError(f"{filename}: header length {length} is too small for a JSON object")
    if file_size is not None and 8 + length > file_size:
        raise HeaderError(
            f"{filename}: header length {length:,} bytes runs past the end of the {file_size:,}-byte file"
        )
    return length


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside JSON strings; bounds the parser's recursion before it runs."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_HEADER_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _shape(value: object, *, filename: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise HeaderError(f"{filename}: tensor {name!r} has an invalid shape {value!r:.80}")
    return tuple(value)


def parse_header(
    header_bytes: bytes, *, filename: str, length: int | None = None, file_size: int | None = None
) -> SafetensorsHeader:
    """Parse and validate the JSON header of a safetensors file.

    Args:
        header_bytes: the header itself (the ``N`` bytes after the 8-byte prefix).
        filename: the file's path, for error messages and the result.
        length: the value of the length prefix (defaults to ``len(header_bytes)``).
        file_size: the whole file's size when known; the data buffer must end exactly there.

    Raises:
        HeaderError: on any violation of the format (see the module docstring).
    """
    length = len(header_bytes) if length is None else length
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"{filename}: header is not valid UTF-8 (byte {exc.start})") from None
    if _nesting_depth(text) > MAX_HEADER_DEPTH:
        raise HeaderError(f"{filename}: header JSON nests deeper than {MAX_HEADER_DEPTH} levels")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise HeaderError(f"{filename}: header is not valid JSON ({exc})") from None
    return validate_header(raw, filename=filename, length=length, file_size=file_size)


def validate_header(
    raw: object, *, filename: str, length: int, file_size: int | None = None
) -> SafetensorsHeader:
    """Validate a decoded header object (the JSON already parsed); see :func:`parse_header`."""
    if not isinstance(raw, dict):
        raise HeaderError(f"{filename}: header is a JSON {type(raw).__name__}, not an object")
    raw = dict(raw)
    metadata = raw.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError(f"{filename}: __metadata__ must map strings to strings")

    tensors: dict[str, TensorInfo] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise HeaderError(f"{filename}: tensor {name!r} is not an object")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or not dtypes.known(dtype):
            raise HeaderError(f"{filename}: tensor {name!r} has unknown dtype {dtype!r:.40}")
        shape = _shape(entry.get("shape"), filename=filename, name=name)
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise HeaderError(f"{filename}: tensor {name!r} has invalid data_offsets {offsets!r:.80}")
        elements = math.prod(shape)
        nbytes = offsets[1] - offsets[0]
        expected_bits = elements * dtypes.bits(dtype)
        if expected_bits != nbytes * 8:
            raise HeaderError(
                f"{filename}: tensor {name!r} is {dtype} {list(shape)} ({expected_bits / 8:,g} bytes) "
                f"but its data_offsets span {nbytes:,} bytes"
            )
        tensors[name] = TensorInfo(name, dtype, shape, (offsets[0], offsets[1]), elements, nbytes)

    # The data buffer must be covered exactly: sorted by offset, each tensor starts where the last ended.
    cursor = 0
    for info in sorted(tensors.values(), key=lambda t: t.data_offsets):
        begin, end = info.data_offsets
        if begin < cursor:
            raise HeaderError(f"{filename}: tensor {info.name!r} overlaps the previous tensor's data")
        if begin > cursor:
            raise HeaderError(f"{filename}: data buffer has a hole before tensor {info.name!r}")
        cursor = end
    if file_size is not None and 8 + length + cursor != file_size:
        raise HeaderError(
            f"{filename}: tensor data ends at byte {8 + length + cursor:,} but the file is {file_size:,} bytes"
        )
    return SafetensorsHeader(filename, length, tensors, dict(metadata), cursor)


def read_local_header(path: str | os.PathLike[str], *, filename: str | None = None) -> SafetensorsHeader:
    """Read and validate the header of a local safetensors file, reading only the header bytes."""
    path = Path(path)
    name = filename or path.name
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8 if size >= 8 else size)
        if prefix.startswith(b"vers"):
            prefix += fh.read(len(_LFS_POINTER_PREFIX) - len(prefix))
        length = header_length(prefix, filename=name, file_size=size)
        fh.seek(8)
        header_bytes = fh.read(length)
    return parse_header(header_bytes, filename=name, length=length, file_size=size)
