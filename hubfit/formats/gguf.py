"""Reading and validating GGUF headers (llama.cpp's file format), from header bytes only.

A GGUF file is ``GGUF``, a ``uint32`` version, ``uint64`` tensor and key-value counts, the key-value metadata
(typed scalars, strings and arrays: the tokenizer's vocabulary lives here, several MiB for 128k-token
vocabularies), one info per tensor (name, up to 4 dimensions, ggml type, offset), padding to
``general.alignment`` (32 when absent), then the tensor data. See
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md.

:func:`read_header` reads through a range-reading callable, progressively: a first read of a few MiB, then
more while parsing, never past ``MAX_GGUF_HEADER_BYTES`` in all. Numeric arrays past the buffered bytes are
skipped without being fetched; string arrays are walked one length at a time, never materialised. Validation
happens here, once: every violation raises :class:`hubfit.errors.HeaderError` in one line naming the file
(bad magic, v1, big-endian, absurd counts, lengths past the file, more than 4 dimensions, element counts that
overflow, unknown value types, offsets misaligned, past the file or overlapping). A ggml tensor type this
build does not know (a fork's ``iq4_k``) is not an error: it is named ``type <id>``, and the file's size
stands in for the tensor bytes (:attr:`GGUFHeader.unknown_types` says so).

The figures kept per file are llama.cpp's: parameters are the sum of ``ggml_nelements``, tensor bytes the sum
of ``ggml_nbytes`` (no padding between tensors), and BPW ``n_bytes * 8 / n_elements`` as
``llama_model_loader`` computes it and ``print_info`` prints it (src/llama-model-loader.cpp, src/llama-model.cpp).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import HeaderError, LfsPointerError

__all__ = [
    "GGUFArch",
    "GGUFHeader",
    "GGUFTensor",
    "GGUF_FIRST_READ",
    "MAX_GGUF_HEADER_BYTES",
    "ArrayInfo",
    "ggml_type",
    "read_header",
    "read_local_header",
    "split_of",
]

RangeReader = Callable[[int, int], bytes]

#: The first ranged read: most headers (32k-152k token vocabularies) end inside it.
GGUF_FIRST_READ = 4 * 1024 * 1024
#: The most a header may take in all (huggingface.js stops at 50 MB; gpt-oss-20b needs more than 8 MiB).
MAX_GGUF_HEADER_BYTES = 64 * 1024 * 1024
#: Arrays of numbers up to this length are kept in the metadata (per-layer head counts, window patterns).
_KEEP_ARRAY = 4096
#: Strings up to this length are kept (longer ones: chat templates, licences, are skipped).
_KEEP_STRING = 65536
_MAX_DIMS = 4
_GGML_MAX_NAME = 64  # llama.cpp's GGML_MAX_NAME: gguf.cpp rejects longer tensor names
_INT64_MAX = 2**63 - 1
_MAGIC = b"GGUF"
_LFS_POINTER_PREFIX = b"version https://git-lfs"

# value type id -> (struct format, size); 8 = string, 9 = array
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING = 8
_ARRAY = 9

_SPLIT_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class GGMLType:
    """One ggml tensor type: its id, llama.cpp's name for it, block size (elements) and bytes per block."""

    id: int
    name: str
    block: int
    bytes: int


@cache
def _types() -> dict[int, GGMLType]:
    table: dict[int, dict[str, Any]] = _data.load("ggml")["types"]
    return {
        int(i): GGMLType(int(i), str(r["name"]), int(r["block"]), int(r["bytes"])) for i, r in table.items()
    }


def ggml_type(type_id: int) -> GGMLType | None:
    """The ggml type with this id (``None`` for a type this build does not know)."""
    return _types().get(type_id)


def ggml_type_named(name: str) -> GGMLType | None:
    """The ggml type llama.cpp calls ``name`` (``q8_0``, ``q4_K``; case-insensitive)."""
    for t in _types().values():
        if t.name.lower() == name.lower():
            return t
    return None


def row_bytes(type_name: str, elements: int) -> int:
    """``ggml_row_size``: bytes of ``elements`` values of a ggml type (a whole number of blocks)."""
    t = ggml_type_named(type_name)
    if t is None:
        raise KeyError(type_name)
    return elements // t.block * t.bytes


@dataclass(frozen=True)
class ArrayInfo:
    """An array value left unread: its element type id and length (the tokenizer's vocabulary, merges...)."""

    type: int
    length: int


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor info: ``shape`` in ggml order (``ne[0]`` first, the row length), ``offset`` relative to the
    tensor data; ``nbytes`` is ``None`` for a ggml type this build does not know."""

    name: str
    type_id: int
    type_name: str
    shape: tuple[int, ...]
    offset: int
    elements: int
    nbytes: int | None


@dataclass(frozen=True)
class GGUFArch:
    """Architecture facts of the KV metadata (``<arch>.block_count`` ...); ``None`` where a file has none.

    Per-layer values (head counts that vary by layer, as hybrid models store them) are tuples.
    """

    architecture: str
    block_count: int | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    feed_forward_length: int | tuple[int, ...] | None = None
    head_count: int | tuple[int, ...] | None = None
    head_count_kv: int | tuple[int, ...] | None = None
    key_length: int | None = None
    value_length: int | None = None
    key_length_mla: int | None = None
    value_length_mla: int | None = None
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    rope_dimension_count: int | None = None
    expert_count: int | None = None
    expert_used_count: int | None = None
    sliding_window: int | None = None
    sliding_window_pattern: int | tuple[bool, ...] | None = None
    full_attention_interval: int | None = None
    ssm_state_size: int | None = None
    ssm_conv_kernel: int | None = None
    ssm_inner_size: int | None = None
    ssm_group_count: int | None = None
    vocab_size: int | None = None

    @classmethod
    def of(cls, metadata: dict[str, Any]) -> GGUFArch:
        arch = str(metadata.get("general.architecture", ""))

        def get(key: str) -> Any:
            value = metadata.get(f"{arch}.{key}")
            if isinstance(value, list):
                return tuple(value)
            if isinstance(value, ArrayInfo | str | float) and not isinstance(value, bool):
                return None
            return value

        tokens = metadata.get("tokenizer.ggml.tokens")
        vocab = get("vocab_size")
        if vocab is None and isinstance(tokens, ArrayInfo | list):
            vocab = tokens.length if isinstance(tokens, ArrayInfo) else len(tokens)
        return cls(
            architecture=arch,
            block_count=get("block_count"),
            context_length=get("context_length"),
            embedding_length=get("embedding_length"),
            feed_forward_length=get("feed_forward_length"),
            head_count=get("attention.head_count"),
            head_count_kv=get("attention.head_count_kv"),
            key_length=get("attention.key_length"),
            value_length=get("attention.value_length"),
            key_length_mla=get("attention.key_length_mla"),
            value_length_mla=get("attention.value_length_mla"),
            kv_lora_rank=get("attention.kv_lora_rank"),
            q_lora_rank=get("attention.q_lora_rank"),
            rope_dimension_count=get("rope.dimension_count"),
            expert_count=get("expert_count"),
            expert_used_count=get("expert_used_count"),
            sliding_window=get("attention.sliding_window"),
            sliding_window_pattern=get("attention.sliding_window_pattern"),
            full_attention_interval=get("full_attention_interval"),
            ssm_state_size=get("ssm.state_size"),
            ssm_conv_kernel=get("ssm.conv_kernel"),
            ssm_inner_size=get("ssm.inner_size"),
            ssm_group_count=get("ssm.group_count"),
            vocab_size=vocab,
        )


@dataclass(frozen=True)
class GGUFHeader:
    """A validated GGUF header and the figures llama.cpp derives from it.

    Attributes:
        filename: the file's path in the repository (or directory).
        version: 2 or 3.
        file_size: the file's size in bytes.
        alignment: ``general.alignment`` (32 when absent).
        data_offset: where the tensor data begins (the end of the tensor infos, padded to the alignment).
        metadata: the KV metadata; long strings and arrays that were not kept are :class:`ArrayInfo` / ``None``.
        tensors: the tensor infos, in file order.
        bytes_read: header bytes requested to parse it.
        params: sum of the tensors' elements (``ggml_nelements``).
        tensor_bytes: sum of the tensors' bytes (``ggml_nbytes``); the file's data size when a type is unknown.
        types: ggml type name -> tensor count, in order of first appearance.
        bytes_by_type: ggml type name -> bytes (an unknown type's: the gaps its tensors' offsets leave).
        unknown_types: names of the types this build does not know (their bytes come from the file's size).
        arch: the architecture facts.
    """

    filename: str
    version: int
    file_size: int
    alignment: int
    data_offset: int
    metadata: dict[str, Any]
    tensors: tuple[GGUFTensor, ...]
    bytes_read: int = 0
    params: int = field(init=False)
    tensor_bytes: int = field(init=False)
    types: dict[str, int] = field(init=False)
    bytes_by_type: dict[str, int] = field(init=False)
    unknown_types: tuple[str, ...] = field(init=False)
    arch: GGUFArch = field(init=False)

    def __post_init__(self) -> None:
        types: dict[str, int] = {}
        by_type: dict[str, int] = {}
        unknown: list[str] = []
        gaps = _gaps(self.tensors, self.file_size - self.data_offset)
        for t in self.tensors:
            types[t.type_name] = types.get(t.type_name, 0) + 1
            size = t.nbytes if t.nbytes is not None else gaps[t.name]
            by_type[t.type_name] = by_type.get(t.type_name, 0) + size
            if t.nbytes is None and t.type_name not in unknown:
                unknown.append(t.type_name)
        known = sum(t.nbytes for t in self.tensors if t.nbytes is not None)
        set_ = object.__setattr__
        set_(self, "params", sum(t.elements for t in self.tensors))
        set_(self, "tensor_bytes", self.file_size - self.data_offset if unknown else known)
        set_(self, "types", types)
        set_(self, "bytes_by_type", by_type)
        set_(self, "unknown_types", tuple(unknown))
        set_(self, "arch", GGUFArch.of(self.metadata))

    @property
    def bpw(self) -> float:
        """Bits per weight as llama.cpp prints it: ``n_bytes * 8 / n_elements`` (0 for a file of no tensors)."""
        return self.tensor_bytes * 8 / self.params if self.params else 0.0

    @property
    def split(self) -> tuple[int, int] | None:
        """``(index, count)`` of a split file (``split.no`` from 0, ``split.count``), ``None`` if not split."""
        count = self.metadata.get("split.count")
        if not isinstance(count, int) or count <= 1:
            return None
        index = self.metadata.get("split.no")
        return (index if isinstance(index, int) else 0, count)


def _gaps(tensors: tuple[GGUFTensor, ...], data_size: int) -> dict[str, int]:
    """Each tensor's share of the data: from its offset to the next tensor's (or the end of the data)."""
    ordered = sorted(tensors, key=lambda t: t.offset)
    out: dict[str, int] = {}
    for i, t in enumerate(ordered):
        end = ordered[i + 1].offset if i + 1 < len(ordered) else data_size
        out[t.name] = max(end - t.offset, 0)
    return out


def split_of(path: str) -> tuple[int, int] | None:
    """``(index from 0, count)`` from a split file's name (``...-00002-of-00003.gguf``), else ``None``."""
    m = _SPLIT_NAME.search(path)
    if m is None:
        return None
    return int(m.group(1)) - 1, int(m.group(2))


_U64 = struct.Struct("<Q")


class _Cursor:
    """Sequential reads over a range reader: a window of buffered bytes, extended on demand, bounded."""

    def __init__(
        self, read: RangeReader, *, filename: str, file_size: int, first_read: int, cap: int
    ) -> None:
        self._read = read
        self.filename = filename
        self.file_size = file_size
        self._chunk = max(first_read, 64)
        self._cap = cap
        self.base = 0  # absolute offset of _buf[0]
        self._buf = b""
        self.pos = 0  # absolute offset of the next byte to parse
        self.bytes_read = 0

    def _fail(self, what: str) -> HeaderError:
        return HeaderError(f"{self.filename}: {what}")

    def need(self, n: int, what: str) -> memoryview:
        """The next ``n`` bytes (advancing past them)."""
        end = self.pos + n
        if end > self.file_size:
            raise self._fail(f"{what} runs past the end of the {self.file_size:,}-byte file")
        if end > self.base + len(self._buf):
            self._fill(end)
        start = self.pos - self.base
        self.pos = end
        return memoryview(self._buf)[start : start + n]

    def _fill(self, end: int) -> None:
        keep_from = min(self.pos, self.base + len(self._buf))
        fetch_from = self.base + len(self._buf) if self.pos <= self.base + len(self._buf) else self.pos
        want = min(max(end, fetch_from + self._chunk), self.file_size)
        if self.bytes_read + (want - fetch_from) > self._cap:
            want = max(end, fetch_from + (self._cap - self.bytes_read))
            if self.bytes_read + (want - fetch_from) > self._cap:
                raise self._fail(
                    f"header is larger than the {self._cap // (1024 * 1024)} MiB hubfit reads "
                    f"(stopped at byte {fetch_from:,} of {self.file_size:,})"
                )
        data = self._read(fetch_from, want)
        self.bytes_read += len(data)
        if len(data) < end - fetch_from:
            raise self._fail(f"file ended inside its header ({fetch_from + len(data):,} bytes read)")
        kept = self._buf[keep_from - self.base :] if keep_from >= self.base else b""
        self._buf = kept + data
        self.base = fetch_from - len(kept)
        self._chunk = min(self._chunk * 2, 16 * 1024 * 1024)

    def skip(self, n: int, what: str) -> None:
        end = self.pos + n
        if end > self.file_size:
            raise self._fail(f"{what} runs past the end of the {self.file_size:,}-byte file")
        if end > self.base + len(self._buf) + self._chunk:
            # Far past the window: drop it and resume reading at ``end`` (numeric arrays are not fetched).
            self._buf = b""
            self.base = end
        elif end > self.base + len(self._buf):
            self._fill(end)
        self.pos = end

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.need(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = struct.unpack("<Q", self.need(8, what))[0]
        return value

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings (a tokenizer's 128k tokens, 280k merges): the same checks as
        ``string_length`` + ``skip`` per string, in one tight loop over the buffered bytes."""
        unpack = _U64.unpack_from
        size = self.file_size
        while count:
            buf, base = self._buf, self.base
            off, limit = self.pos - base, len(self._buf)
            while count and off >= 0 and off + 8 <= limit:
                (n,) = unpack(buf, off)
                if base + off + 8 + n > size:
                    self.pos = base + off + 8
                    raise self._fail(f"{what} length {n:,} runs past the end of the {size:,}-byte file")
                if off + 8 + n > limit:
                    break
                off += 8 + n
                count -= 1
            self.pos = base + off
            if count:  # the next string crosses the buffered bytes: one at a time, reading on
                self.skip(self.string_length(what), what)
                count -= 1

    def string_length(self, what: str) -> int:
        n = self.u64(what)
        if self.pos + n > self.file_size:
            raise self._fail(f"{what} length {n:,} runs past the end of the {self.file_size:,}-byte file")
        return n


def _value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    if vtype in _SCALARS:
        fmt, size = _SCALARS[vtype]
        return struct.unpack(fmt, cur.need(size, f"value of {key!r}"))[0]
    if vtype == _STRING:
        n = cur.string_length(f"string {key!r}")
        if n > _KEEP_STRING:
            cur.skip(n, f"string {key!r}")
            return None
        return bytes(cur.need(n, f"string {key!r}")).decode("utf-8", errors="replace")
    if vtype == _ARRAY:
        if depth > 0:
            raise cur._fail(f"array {key!r} nests arrays, which llama.cpp does not read")
        etype = cur.u32(f"array type of {key!r}")
        length = cur.u64(f"array length of {key!r}")
        if etype in _SCALARS:
            size = _SCALARS[etype][1]
            if cur.pos + length * size > cur.file_size:
                raise cur._fail(
                    f"array {key!r} of {length:,} elements runs past the end of the {cur.file_size:,}-byte file"
                )
            if length <= _KEEP_ARRAY:
                fmt = _SCALARS[etype][0]
                return list(struct.unpack(f"<{length}{fmt[1]}", cur.need(length * size, f"array {key!r}")))
            cur.skip(length * size, f"array {key!r}")
            return ArrayInfo(etype, length)
        if etype == _STRING:
            if cur.pos + length * 8 > cur.file_size:
                raise cur._fail(
                    f"array {key!r} of {length:,} strings runs past the end of the {cur.file_size:,}-byte file"
                )
            cur.skip_strings(length, f"string in array {key!r}")
            return ArrayInfo(etype, length)
        if etype == _ARRAY:
            raise cur._fail(f"array {key!r} nests arrays, which llama.cpp does not read")
        raise cur._fail(f"array {key!r} has unknown element type {etype}")
    raise cur._fail(f"key {key!r} has unknown value type {vtype}")


def _check_start(head: bytes, filename: str) -> int:
    if (
        head.startswith(_LFS_POINTER_PREFIX[:4])
        and len(head) >= 8
        and head.startswith(_LFS_POINTER_PREFIX[:8])
    ):
        raise LfsPointerError(
            f"{filename} is a Git LFS pointer, not the weights: fetch the real file (git lfs pull) "
            "or analyse the repository on the Hub"
        )
    if head[:4] != _MAGIC:
        raise HeaderError(f"{filename}: not a GGUF file (magic {bytes(head[:4])!r}, expected b'GGUF')")
    (version,) = struct.unpack("<I", head[4:8])
    if version == 1:
        raise HeaderError(
            f"{filename}: GGUF v1 is not supported (re-convert the file with a current llama.cpp)"
        )
    if version in (2, 3):
        return int(version)
    if struct.unpack(">I", head[4:8])[0] in (1, 2, 3):
        raise HeaderError(f"{filename}: big-endian GGUF file: hubfit reads little-endian files only")
    raise HeaderError(f"{filename}: unknown GGUF version {version}")


def read_header(
    read: RangeReader,
    *,
    filename: str,
    file_size: int,
    first_read: int = GGUF_FIRST_READ,
    max_bytes: int = MAX_GGUF_HEADER_BYTES,
) -> GGUFHeader:
    """Read and validate a GGUF header through ``read``, fetching header bytes only.

    Args:
        read: returns bytes ``[start, end)`` of the file.
        filename: the file's path, for error messages and the result.
        file_size: the file's size (every length and offset is checked against it).
        first_read: bytes to ask for first; later reads double, up to ``max_bytes`` in all.

    Raises:
        HeaderError: the header is malformed or hostile, ends past the file, or needs more than ``max_bytes``.
        LfsPointerError: the file is a Git LFS pointer.
    """
    if file_size < 24:
        head = read(0, file_size) if file_size > 0 else b""
        if head.startswith(_LFS_POINTER_PREFIX[:8]):
            _check_start(head, filename)
        raise HeaderError(f"{filename}: file too short for a GGUF header ({file_size} bytes)")
    cur = _Cursor(read, filename=filename, file_size=file_size, first_read=first_read, cap=max_bytes)
    version = _check_start(bytes(cur.need(8, "header")), filename)
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    # Each KV takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; each tensor info at least
    # 8 + 1 + 4 + 8 + 4 + 8 bytes: counts the file cannot hold are refused before any loop runs.
    if n_kv * 14 > file_size or n_kv > 1_000_000:
        raise HeaderError(f"{filename}: absurd metadata count {n_kv:,} for a {file_size:,}-byte file")
    if n_tensors * 33 > file_size or n_tensors > 10_000_000:
        raise HeaderError(f"{filename}: absurd tensor count {n_tensors:,} for a {file_size:,}-byte file")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        n = cur.string_length("metadata key")
        if n > 65535:
            raise HeaderError(f"{filename}: metadata key of {n:,} bytes (the format allows 65,535)")
        key = bytes(cur.need(n, "metadata key")).decode("utf-8", errors="replace")
        if key in metadata:
            raise HeaderError(f"{filename}: duplicate metadata key {key!r}")
        vtype = cur.u32(f"type of {key!r}")
        metadata[key] = _value(cur, vtype, key)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0:
        raise HeaderError(f"{filename}: general.alignment {alignment!r} is not a positive integer")
    if alignment & (alignment - 1):
        raise HeaderError(f"{filename}: general.alignment {alignment} is not a power of two")
    tensors: list[GGUFTensor] = []
    names: set[str] = set()
    for i in range(n_tensors):
        n = cur.string_length(f"name of tensor {i}")
        if n >= _GGML_MAX_NAME:
            raise HeaderError(
                f"{filename}: tensor {i} has a {n:,}-byte name (llama.cpp allows {_GGML_MAX_NAME - 1})"
            )
        name = bytes(cur.need(n, f"name of tensor {i}")).decode("utf-8", errors="replace")
        if name in names:
            raise HeaderError(f"{filename}: duplicate tensor {name!r}")
        names.add(name)
        n_dims = cur.u32(f"dimensions of {name!r}")
        if n_dims > _MAX_DIMS:
            raise HeaderError(
                f"{filename}: tensor {name!r} has {n_dims} dimensions (GGUF allows {_MAX_DIMS})"
            )
        shape = tuple(cur.u64(f"shape of {name!r}") for _ in range(n_dims))
        elements = 1
        for d in shape:
            elements *= d
            if elements > _INT64_MAX:
                raise HeaderError(
                    f"{filename}: tensor {name!r} shape {list(shape)} overflows an int64 element count"
                )
        type_id = cur.u32(f"type of {name!r}")
        offset = cur.u64(f"offset of {name!r}")
        gtype = ggml_type(type_id)
        nbytes: int | None = None
        if gtype is None:
            type_name = f"type {type_id}"
        else:
            type_name = gtype.name
            if shape and shape[0] % gtype.block:
                raise HeaderError(
                    f"{filename}: tensor {name!r} row of {shape[0]:,} is not a multiple of {gtype.name}'s "
                    f"{gtype.block}-element block"
                )
            nbytes = elements // gtype.block * gtype.bytes
        if offset % alignment:
            raise HeaderError(f"{filename}: tensor {name!r} offset {offset:,} is not aligned to {alignment}")
        tensors.append(GGUFTensor(name, type_id, type_name, shape, offset, elements, nbytes))
    data_offset = cur.pos + (alignment - cur.pos % alignment) % alignment
    data_size = file_size - data_offset
    if data_size < 0:
        raise HeaderError(f"{filename}: tensor data starts past the end of the {file_size:,}-byte file")
    previous: GGUFTensor | None = None
    for t in sorted(tensors, key=lambda t: t.offset):
        end = t.offset + (t.nbytes or 0)
        if end > data_size or t.offset > data_size:
            raise HeaderError(
                f"{filename}: tensor {t.name!r} [{t.offset:,}, {end:,}) runs past the "
                f"{data_size:,} bytes of tensor data"
            )
        if previous is not None and previous.offset + (previous.nbytes or 0) > t.offset:
            raise HeaderError(f"{filename}: tensors {previous.name!r} and {t.name!r} overlap")
        previous = t
    return GGUFHeader(
        filename=filename,
        version=version,
        file_size=file_size,
        alignment=alignment,
        data_offset=data_offset,
        metadata=metadata,
        tensors=tuple(tensors),
        bytes_read=cur.bytes_read,
    )


def read_local_header(path: str, *, filename: str | None = None) -> GGUFHeader:
    """Read and validate the header of a local GGUF file, reading only header bytes."""
    import os

    with open(path, "rb") as fh:

        def read(start: int, end: int) -> bytes:
            fh.seek(start)
            return fh.read(end - start)

        size = os.fstat(fh.fileno()).st_size
        return read_header(read, filename=filename or os.path.basename(path), file_size=size)
