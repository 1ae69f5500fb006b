"""Reading and validating safetensors headers.

A safetensors file is an 8-byte little-endian header length ``N``, then ``N`` bytes of UTF-8 JSON, then the
tensor data. The JSON maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets are
relative to the end of the header) plus an optional ``"__metadata__"`` map of strings. See
https://github.com/huggingface/safetensors#format.

Validation happens here, once: the length bound, a JSON object, known dtypes, non-negative integer shapes
whose element count fits 64 bits (as the Rust reader's ``checked_mul``),
byte sizes that match ``elements x dtype bits / 8``, offsets that cover the data buffer contiguously without
overlap or holes, and (when the file size is known) a buffer that ends exactly at the end of the file. Every
violation raises :class:`hubfit.errors.HeaderError` naming the file and the tensor. A local file is then also
opened with ``safetensors.safe_open``, the loaders' own validator (:func:`read_local_header` says why and what it
costs).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from hubfit.constants import FIRST_READ_BYTES, MAX_HEADER_BYTES, MAX_HEADER_DEPTH
from hubfit.errors import HeaderError, LfsPointerError
from hubfit.formats import dtypes

__all__ = [
    "HeaderBytes",
    "RangeReader",
    "SafetensorsHeader",
    "TensorInfo",
    "decode_sharded",
    "fetch_header",
    "header_from_metadata",
    "header_length",
    "parse_header",
    "read_header",
    "read_local_header",
    "validate_header",
]

#: Reads bytes ``[start, end)`` of one file (fewer only where the file ends); each source passes its own:
#: ranged GETs on the Hub or an LFS download URL, ``seek`` + ``read`` on a local file.
RangeReader = Callable[[int, int], bytes]

_LFS_POINTER_PREFIX = b"version https://git-lfs"


class TensorInfo(msgspec.Struct, frozen=True, gc=False):
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
    length: int = struct.unpack("<Q", prefix[:8])[0]
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


#: The most elements a tensor may hold: the Rust reader counts them in a ``usize`` and refuses an overflow
#: (``checked_mul``); a shape past it is hostile (and its product would cost minutes of big-integer arithmetic).
_MAX_ELEMENTS = 2**64 - 1


def _elements(shape: tuple[int, ...]) -> int | None:
    """``prod(shape)``, or ``None`` once it passes :data:`_MAX_ELEMENTS` (stops multiplying there)."""
    if 0 in shape:
        return 0
    total = 1
    for dim in shape:
        total *= dim
        if total > _MAX_ELEMENTS:
            return None
    return total


def _bytes(bits: int) -> str:
    """``bits / 8`` written exactly (``1,024``, ``0.5``), for any size a hostile shape implies."""
    whole, rest = divmod(bits, 8)
    return f"{whole:,}" + (f"{rest / 8:g}"[1:] if rest else "")


def _shape(value: object, *, filename: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise HeaderError(f"{filename}: tensor {name!r} has an invalid shape {value!r:.80}")
    return tuple(value)


# ---- the fast path: typed decoding (msgspec validates types as it parses) ------------------------------------

_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Entry(msgspec.Struct, frozen=True):
    """One tensor entry as the format defines it (unknown keys are ignored, as the Rust reader does).

    The fields default to ``None`` so that the whole header decodes in one call: the ``__metadata__`` entry (a
    string map) decodes to an empty entry and is read by :data:`_METADATA`; a tensor entry missing a field is
    left to the reference path, which names it.
    """

    dtype: str | None = None
    shape: list[_Count] | None = None
    data_offsets: tuple[_Count, _Count] | None = None


class _MetadataOnly(msgspec.Struct, frozen=True):
    """The header's ``__metadata__`` string map (every tensor entry skipped unread)."""

    metadata: dict[str, str] | None = msgspec.field(default=None, name="__metadata__")


_ENTRIES = msgspec.json.Decoder(dict[str, _Entry | None])
_ENTRY = msgspec.json.Decoder(_Entry | None)
_METADATA = msgspec.json.Decoder(_MetadataOnly)
_METADATA_MAP = msgspec.json.Decoder(dict[str, str] | None)
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


class _NotFast(Exception):
    """The typed path met something it does not accept; the reference path says precisely what."""


def _fast(header_bytes: bytes, *, filename: str, length: int, file_size: int | None) -> SafetensorsHeader:
    """Decode and validate a header by the rules of :func:`validate_header`, in one typed decoding pass.

    It accepts exactly what :func:`validate_header` accepts; anything else raises :class:`_NotFast` so that the
    reference path produces its message.
    """
    try:
        entries = _ENTRIES.decode(header_bytes)
        metadata = _METADATA.decode(header_bytes).metadata if "__metadata__" in entries else None
    except _DECODE_ERRORS:
        raise _NotFast from None
    return _fast_entries(entries, metadata or {}, filename=filename, length=length, file_size=file_size)


def _fast_entries(
    entries: dict[str, _Entry | None],
    metadata: dict[str, str],
    *,
    filename: str,
    length: int,
    file_size: int | None,
) -> SafetensorsHeader:
    """Validate typed entries by the rules of :func:`validate_header` (:class:`_NotFast` for anything else).

    Shapes repeat (a few hundred distinct ones in 92k tensors), so their element counts are computed once each.
    """
    bits_of = dtypes.bits_table()
    elements_of: dict[tuple[int, ...], int] = {}
    tensors: dict[str, TensorInfo] = {}
    for name, entry in entries.items():
        if name == "__metadata__":
            continue
        if entry is None or entry.dtype is None or entry.shape is None or entry.data_offsets is None:
            raise _NotFast
        dtype, offsets = entry.dtype, entry.data_offsets
        bits = bits_of.get(dtype)
        begin, end = offsets
        if bits is None or begin > end:
            raise _NotFast
        shape = tuple(entry.shape)
        elements = elements_of.get(shape)
        if elements is None:
            elements = _elements(shape)
            if elements is None:
                raise _NotFast
            elements_of[shape] = elements
        if elements * bits != (end - begin) * 8:
            raise _NotFast
        tensors[name] = TensorInfo(name, dtype, shape, offsets, elements, end - begin)
    return _checked_cover(tensors, metadata, filename=filename, length=length, file_size=file_size)


def _checked_cover(
    tensors: dict[str, TensorInfo],
    metadata: dict[str, str],
    *,
    filename: str,
    length: int,
    file_size: int | None,
) -> SafetensorsHeader:
    """The header, once its tensors are known to cover the data buffer exactly (and to end with the file)."""
    # The data buffer must be covered exactly: sorted by offset, each tensor starts where the last ended. The
    # offsets alone are sorted first (tuples compare natively); the names are looked up only to say what failed.
    spans = sorted([info.data_offsets for info in tensors.values()])
    cursor = 0
    for begin, end in spans:
        if begin != cursor:
            break
        cursor = end
    else:
        spans = []
    if spans:
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
        return _fast(header_bytes, filename=filename, length=length, file_size=file_size)
    except (_NotFast, *_DECODE_ERRORS):
        pass  # the reference path below names the violation
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
    except ValueError:  # an integer longer than Python converts (4,300 digits, sys.get_int_max_str_digits)
        raise HeaderError(
            f"{filename}: header holds an integer too long to be a shape or an offset"
        ) from None
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
        elements = _elements(shape)
        if elements is None:
            raise HeaderError(
                f"{filename}: tensor {name!r} has a shape of {len(shape)} dimensions whose element count "
                "overflows 64 bits"
            )
        nbytes = offsets[1] - offsets[0]
        expected_bits = elements * dtypes.bits(dtype)
        if expected_bits != nbytes * 8:
            raise HeaderError(
                f"{filename}: tensor {name!r} is {dtype} {list(shape)!s:.80} ({_bytes(expected_bits)} bytes) "
                f"but its data_offsets span {nbytes:,} bytes"
            )
        tensors[name] = TensorInfo(name, dtype, shape, (offsets[0], offsets[1]), elements, nbytes)
    return _checked_cover(tensors, metadata, filename=filename, length=length, file_size=file_size)


def header_from_metadata(
    raw: dict[str, Any] | dict[str, msgspec.Raw], *, filename: str, file_size: int | None = None
) -> SafetensorsHeader:
    """Validate a header someone else already decoded (the Hub's safetensors-metadata endpoint).

    ``raw`` maps names to decoded entries, or to their raw JSON (``msgspec.Raw``, as :func:`decode_sharded`
    leaves them: then the typed path validates them as they are decoded). The answer has no length prefix: it
    is derived from ``file_size`` when known (prefix + header + data must fill the file), and left at 0
    otherwise.

    Raises:
        HeaderError: as :func:`validate_header`, or the tensor data does not fit in ``file_size`` bytes.
    """
    raw_entries = [v for v in raw.values() if isinstance(v, msgspec.Raw)]
    header: SafetensorsHeader | None = None
    if raw_entries and len(raw_entries) == len(raw):
        try:
            meta_raw = raw.get("__metadata__")
            metadata = _METADATA_MAP.decode(meta_raw) if meta_raw is not None else None
            entries = {k: _ENTRY.decode(v) for k, v in raw.items() if k != "__metadata__"}
            header = _fast_entries(entries, metadata or {}, filename=filename, length=0, file_size=None)
        except (_NotFast, *_DECODE_ERRORS):
            raw = {k: _decoded(v) for k, v in raw.items()}
    if header is None:
        header = validate_header(raw, filename=filename, length=0)
    if file_size is None:
        return header
    length = file_size - 8 - header.data_bytes
    if length < 2:
        raise HeaderError(f"{filename}: tensor data runs past the end of the {file_size:,}-byte file")
    return SafetensorsHeader(filename, length, header.tensors, header.metadata, header.data_bytes)


def _decoded(value: object) -> object:
    if not isinstance(value, msgspec.Raw):
        return value
    try:
        return msgspec.json.decode(value)
    except _DECODE_ERRORS:
        return None  # validate_header names the entry that is not an object


class _Sharded(msgspec.Struct):
    """The part of the safetensors-metadata endpoint's answer hubfit reads: each shard's header, raw."""

    headers: dict[str, dict[str, msgspec.Raw]]


_SHARDED = msgspec.json.Decoder(_Sharded)


def decode_sharded(body: bytes) -> dict[str, dict[str, msgspec.Raw]]:
    """Each shard's header entries (still raw JSON) from the Hub's safetensors-metadata answer.

    Raises:
        HeaderError: the answer is not JSON of that shape.
    """
    try:
        return _SHARDED.decode(body).headers
    except _DECODE_ERRORS as exc:
        raise HeaderError(f"the Hub's safetensors-metadata answer is malformed ({exc})") from None


@dataclass(frozen=True)
class HeaderBytes:
    """A header's bytes as read, not yet parsed (:func:`fetch_header`; :meth:`parse` validates them).

    Reading and parsing are apart so that a caller reading many files concurrently can keep its threads on the
    network and parse in one thread: parsing in the reading threads makes every thread that returns from the
    network wait for the interpreter lock while another parses.
    """

    filename: str
    data: bytes  # the header itself: the ``length`` bytes after the 8-byte prefix
    length: int
    file_size: int | None

    def parse(self) -> SafetensorsHeader:
        """The validated header (:func:`parse_header`)."""
        return parse_header(self.data, filename=self.filename, length=self.length, file_size=self.file_size)


def fetch_header(
    read: RangeReader,
    *,
    filename: str,
    file_size: int | None = None,
    first_read: int = FIRST_READ_BYTES,
    learned_size: Callable[[], int | None] | None = None,
) -> HeaderBytes:
    """Read a safetensors header's bytes through ``read``, fetching only header bytes (see :func:`read_header`).

    Raises:
        HeaderError: the length prefix is malformed or hostile, or the file ends inside the header.
        LfsPointerError: the file is a Git LFS pointer.
    """
    first = max(first_read, 8)
    if file_size is not None:
        first = min(first, file_size)
    head = read(0, first) if first > 0 else b""
    if file_size is None and learned_size is not None:
        file_size = learned_size()
    if len(head) < len(_LFS_POINTER_PREFIX) and head[:4] == _LFS_POINTER_PREFIX[:4]:
        # Starts like a pointer file: read far enough to tell (a first read of 8 bytes, locally, is too short).
        end = len(_LFS_POINTER_PREFIX) if file_size is None else min(len(_LFS_POINTER_PREFIX), file_size)
        if end > len(head):
            head += read(len(head), end)
    length = header_length(head, filename=filename, file_size=file_size)
    if len(head) < 8 + length:
        head += read(len(head), 8 + length)
    if len(head) < 8 + length:
        raise HeaderError(
            f"{filename}: file ended inside its {length:,}-byte header ({len(head):,} bytes read)"
        )
    return HeaderBytes(filename, head[8 : 8 + length], length, file_size)


def read_header(
    read: RangeReader,
    *,
    filename: str,
    file_size: int | None = None,
    first_read: int = FIRST_READ_BYTES,
    learned_size: Callable[[], int | None] | None = None,
) -> SafetensorsHeader:
    """Read and validate a safetensors header through ``read``, fetching only header bytes.

    The first read takes ``first_read`` bytes (at least the 8-byte prefix, at most the file): enough for the
    prefix and, usually, the whole header, so most files cost one read. A second read fetches the rest of a
    longer header, exactly up to its end. Nothing past the header is ever requested.

    Args:
        read: returns bytes ``[start, end)`` of the file.
        filename: the file's path, for error messages and the result.
        file_size: the file's size when known; the header and data must then fill it exactly.
        first_read: bytes to ask for first (a source that can estimate the header's size passes that).
        learned_size: for a source that learns the size from its first answer (a 206's ``Content-Range``):
            called after the first read when ``file_size`` is ``None``.

    Raises:
        HeaderError: the header is malformed or hostile, or the file ends inside it.
        LfsPointerError: the file is a Git LFS pointer.
    """
    return fetch_header(
        read, filename=filename, file_size=file_size, first_read=first_read, learned_size=learned_size
    ).parse()


def read_local_header(path: str | os.PathLike[str], *, filename: str | None = None) -> SafetensorsHeader:
    """Read and validate the header of a local safetensors file, then have the safetensors library open it.

    Two readers, in this order:

    1. hubfit's reader (:func:`read_header`: only the header bytes, :func:`parse_header`) validates the header
       and builds the :class:`TensorInfo` objects. A malformed or hostile file stops here with hubfit's one-line
       :class:`~hubfit.errors.HeaderError`, before any other code sees it.
    2. ``safetensors.safe_open(path, framework="numpy")``, the Rust validator the loaders run, then opens the
       file hubfit accepted (it mmaps the file and reads only the header), so that a local file hubfit sizes
       is one that loads. Anything it refuses becomes a ``HeaderError`` quoting its reason; a
       ``SafetensorError`` never escapes.

    Why both, measured on DeepSeek-V3's layout (91,991 tensors; benchmarks/safe_open.py, results in
    benchmarks/results/safe_open.md; safetensors 0.8.0, warm cache, median of 7): as one file with a 12.3 MB
    header, hubfit's reader takes 271 ms, ``safe_open`` alone 155 ms, ``safe_open`` plus every name, shape and
    dtype through ``get_slice`` 259 ms, and both readers in turn (this function) 372 ms; over the real 163
    shards, 91 ms, 94 ms, 136 ms and 177 ms. ``safe_open`` gives neither the data offsets nor hubfit's precise
    messages for hostile files, and building TensorInfo objects through it costs as much as hubfit's reader, so
    hubfit's reader stays the parser and ``safe_open`` is the second check: it about doubles the header read,
    a few hundred milliseconds at worst beside a file of hundreds of GB. ``safetensors`` and the numpy its
    ``safe_open`` imports (57 ms, once) load on the first local read only, never at start-up.

    Raises:
        HeaderError: the header is malformed or hostile, or the safetensors library refuses the file.
        LfsPointerError: the file is a Git LFS pointer (the safetensors check is not run).
    """
    path = Path(path)
    name = filename or path.name
    with path.open("rb") as fh:

        def read(start: int, end: int) -> bytes:
            fh.seek(start)
            return fh.read(end - start)

        size = os.fstat(fh.fileno()).st_size
        header = read_header(read, filename=name, file_size=size, first_read=8)
    _loader_check(path, filename=name)
    return header


def _loader_check(path: Path, *, filename: str) -> None:
    """Open ``path`` with ``safetensors.safe_open`` (the loaders' validator); a refusal is a HeaderError."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except (SafetensorError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise HeaderError(f"{filename}: the safetensors library refuses to open it ({reason:.200})") from None
