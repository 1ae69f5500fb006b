"""The GGUF header reader (hubfit.formats.gguf) on files written by llama.cpp's own writer (the gguf package).

Figures checked against real llama.cpp load logs (../shared/real-logs/llamacpp.jsonl, fixtures/README.md):
Pythia-2.8B F16 / Q4_K_M / Q2_K print 16.01 / 5.14 / 3.13 BPW with those type counts (R01, R03, R04),
Phi-3-mini Q4_K_M 5.01 BPW and 3.82 B parameters (R10), gemma-2-2b-it Q4_K_M 5.21 BPW and 2.61 B (R35).
"""

from __future__ import annotations

import struct
from functools import cache

import pytest

from fixtures.gguf_build import gemma_2_2b, gguf_file, phi_3_mini, pythia_2_8b
from hubfit.errors import HeaderError
from hubfit.formats import gguf


@cache
def _file(name: str, ftype: str) -> tuple[bytes, int]:
    spec = {"pythia": pythia_2_8b, "phi3": phi_3_mini, "gemma2": gemma_2_2b}[name]()
    return gguf_file(spec, ftype)


def _reader(head: bytes, size: int, log: list[tuple[int, int]] | None = None) -> gguf.RangeReader:
    def read(start: int, end: int) -> bytes:
        if log is not None:
            log.append((start, end))
        end = min(end, size)
        chunk = head[start:end]
        return chunk + bytes(max(0, end - start - len(chunk)))

    return read


def _parse(head: bytes, size: int | None = None, **kw: int) -> gguf.GGUFHeader:
    size = len(head) + 4096 if size is None else size
    return gguf.read_header(_reader(head, size), filename="x.gguf", file_size=size, **kw)


@pytest.mark.parametrize(
    ("name", "ftype", "bpw", "types", "params_b"),
    [
        ("pythia", "F16", 16.01, {"f32": 258, "f16": 130}, 2.78),
        ("pythia", "Q4_K_M", 5.14, {"f32": 258, "q4_K": 81, "q5_K": 32, "q6_K": 17}, 2.78),
        ("pythia", "Q2_K", 3.13, {"f32": 258, "q2_K": 65, "q3_K": 64, "q6_K": 1}, 2.78),
        ("phi3", "Q4_K_M", 5.01, {"f32": 65, "q4_K": 81, "q5_K": 32, "q6_K": 17}, 3.82),
        ("gemma2", "Q4_K_M", 5.21, {"f32": 105, "q4_K": 156, "q6_K": 27}, 2.61),
    ],
)
def test_real_files_match_llama_cpp_logs(
    name: str, ftype: str, bpw: float, types: dict[str, int], params_b: float
) -> None:
    head, size = _file(name, ftype)
    h = _parse(head, size)
    assert round(h.bpw, 2) == bpw
    assert h.types == types
    assert round(h.params / 1e9, 2) == params_b
    assert h.data_offset % 32 == 0 and h.data_offset >= len(head)
    assert sum(h.bytes_by_type.values()) == h.tensor_bytes
    assert h.unknown_types == ()


def test_pythia_token_embedding_bytes_match_the_host_buffer() -> None:
    # R03/R04: the CPU model buffer holds only token_embd: 69.08 MiB at q4_K, 40.30 MiB at q2_K.
    for ftype, mib in (("Q4_K_M", 69.08), ("Q2_K", 40.30), ("F16", 245.62)):
        h = _parse(*_file("pythia", ftype))
        embd = next(t for t in h.tensors if t.name == "token_embd.weight")
        assert embd.shape == (2560, 50304)
        assert round((embd.nbytes or 0) / 2**20, 2) == mib


def test_architecture_facts() -> None:
    a = _parse(*_file("gemma2", "Q4_K_M")).arch
    assert (a.architecture, a.block_count, a.embedding_length, a.head_count, a.head_count_kv) == (
        "gemma2",
        26,
        2304,
        8,
        4,
    )
    assert (a.key_length, a.sliding_window, a.vocab_size, a.context_length) == (256, 4096, 256000, 8192)


def test_progressive_reads_skip_numeric_arrays_and_stay_bounded() -> None:
    head, size = _file("gemma2", "Q4_K_M")  # 6.4 MB of header: 256000 tokens, scores and types
    log: list[tuple[int, int]] = []
    h = gguf.read_header(_reader(head, size, log), filename="g.gguf", file_size=size, first_read=1 << 20)
    assert len(log) >= 2  # extended while parsing
    assert h.bytes_read < len(head) + (16 << 20)
    assert all(end <= size for _, end in log)
    with pytest.raises(HeaderError, match="larger than the 2 MiB hubfit reads"):
        gguf.read_header(
            _reader(head, size), filename="g.gguf", file_size=size, first_read=1 << 20, max_bytes=2 << 20
        )


def test_split_names() -> None:
    assert gguf.split_of("Q8_0/model-Q8_0-00002-of-00003.gguf") == (1, 3)
    assert gguf.split_of("model-Q4_K_M.gguf") is None


# -- hostile headers: one line each --------------------------------------------------------------------------


def _str(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def _hdr(n_tensors: int, kvs: list[bytes], infos: list[bytes], version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kvs)) + b"".join(kvs) + b"".join(infos)


def _kv_u32(key: bytes, value: int) -> bytes:
    return _str(key) + struct.pack("<II", 4, value)


def _info(name: bytes, shape: tuple[int, ...], type_id: int, offset: int) -> bytes:
    return (
        _str(name)
        + struct.pack("<I", len(shape))
        + b"".join(struct.pack("<Q", d) for d in shape)
        + (struct.pack("<IQ", type_id, offset))
    )


ARCH = _str(b"general.architecture") + struct.pack("<I", 8) + _str(b"llama")


@pytest.mark.parametrize(
    ("data", "size", "message"),
    [
        (b"GGML" + bytes(60), None, "not a GGUF file"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), None, "GGUF v1 is not supported"),
        (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), None, "big-endian"),
        (b"GGUF" + struct.pack("<IQQ", 7, 0, 0), None, "unknown GGUF version 7"),
        (_hdr(2**40, [], []), None, "absurd tensor count"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 2**50), None, "absurd metadata count"),
        (_hdr(0, [struct.pack("<Q", 2**40) + b"k"], []), None, "runs past the end"),
        (_hdr(0, [_str(b"k") + struct.pack("<I", 99)], []), None, "unknown value type 99"),
        (_hdr(0, [_str(b"k") + struct.pack("<IIQ", 9, 4, 2**40)], []), None, "runs past the end"),
        (_hdr(0, [_str(b"k") + struct.pack("<IIQ", 9, 8, 2**40)], []), None, "runs past the end"),
        (_hdr(0, [_str(b"k") + struct.pack("<IIQ", 9, 77, 1)], []), None, "unknown element type 77"),
        (_hdr(0, [_str(b"k") + struct.pack("<IIQ", 9, 9, 1)], []), None, "nests arrays"),
        (_hdr(0, [_kv_u32(b"k", 1), _kv_u32(b"k", 2)], []), None, "duplicate metadata key"),
        (_hdr(1, [ARCH], [_info(b"t", (32, 1, 1, 1, 1), 0, 0)]), None, "5 dimensions"),
        (_hdr(1, [ARCH], [_info(b"t", (2**40, 2**40), 0, 0)]), None, "overflows an int64"),
        (_hdr(1, [ARCH], [_info(b"t", (32,), 0, 7)]), None, "not aligned"),
        (_hdr(1, [ARCH], [_info(b"t", (2**30,), 0, 0)]), None, "runs past the"),
        (_hdr(1, [ARCH], [_info(b"t", (31,), 12, 0)]), None, "not a multiple of q4_K"),
        (_hdr(2, [ARCH], [_info(b"a", (64,), 0, 0), _info(b"b", (64,), 0, 128)]), None, "overlap"),
        (_hdr(2, [ARCH], [_info(b"a", (8,), 0, 0), _info(b"a", (8,), 0, 32)]), None, "duplicate tensor"),
        (_hdr(1, [ARCH], [_info(b"n" * 80, (8,), 0, 0)]), None, "80-byte name"),
        (_hdr(0, [_kv_u32(b"general.alignment", 48)], []), None, "not a power of two"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1), 24, "runs past the end"),
        (b"GGUF\x03\x00", 6, "too short"),
    ],
)
def test_hostile_headers_get_one_line(data: bytes, size: int | None, message: str) -> None:
    with pytest.raises(HeaderError, match=message) as info:
        _parse(data, size)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("x.gguf: ")


def test_unknown_tensor_type_is_named_and_the_file_size_stands_in() -> None:
    # ik_llama.cpp's own types (iq4_k ...) have ids mainline ggml does not know.
    data = _hdr(2, [ARCH], [_info(b"a", (256,), 0, 0), _info(b"b", (256, 4), 140, 1024)])
    h = _parse(data, size=4096 + 1024 + 96)
    assert h.unknown_types == ("type 140",)
    assert h.tensor_bytes == h.file_size - h.data_offset
    assert h.bytes_by_type == {"f32": 1024, "type 140": h.file_size - h.data_offset - 1024}
