"""Header validation: every rule of the safetensors format, and hostile headers, give a precise HeaderError."""

from __future__ import annotations

import json
import resource
import struct

import pytest
from stfile import file_bytes, header, write

from hubfit.errors import HeaderError, LfsPointerError
from hubfit.formats.safetensors import header_length, parse_header, read_local_header


def _raw(obj) -> bytes:
    return json.dumps(obj).encode()


def test_valid_header_counts_elements_and_bytes(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(
        file_bytes(
            {
                "a": ("BF16", [4, 3]),
                "b": ("F8_E4M3", [5]),
                "c": ("F4", [6]),  # sub-byte: 6 x 4 bits = 3 bytes
                "scalar": ("F32", []),
            },
            metadata={"format": "pt"},
        )
    )
    h = read_local_header(path)
    assert [h.tensors[n].elements for n in "abc"] == [12, 5, 6]
    assert [h.tensors[n].nbytes for n in "abc"] == [24, 5, 3]
    assert h.tensors["scalar"].elements == 1 and h.tensors["scalar"].nbytes == 4
    assert h.metadata == {"format": "pt"}
    assert h.file_size == path.stat().st_size


@pytest.mark.parametrize(
    ("header_obj", "message"),
    [
        ([1, 2, 3], "JSON list, not an object"),
        ({"w": {"dtype": "XYZ", "shape": [2], "data_offsets": [0, 4]}}, "unknown dtype"),
        ({"w": {"dtype": "F16", "shape": "ab", "data_offsets": [0, 4]}}, "invalid shape"),
        ({"w": {"dtype": "F16", "shape": [-4, 2], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"w": {"dtype": "F16", "shape": [2.0], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"w": {"dtype": "F16", "shape": [True], "data_offsets": [0, 2]}}, "invalid shape"),
        ({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4]}}, "span 4 bytes"),
        ({"w": {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}}, "invalid data_offsets"),
        ({"w": {"dtype": "F16", "shape": [2]}}, "invalid data_offsets"),
        (
            {
                "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]},
            },
            "overlaps",
        ),
        ({"a": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]}}, "hole"),
        ({"a": "not an object"}, "is not an object"),
        ({"__metadata__": {"k": 1}}, "__metadata__"),
        ({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, "span 1 bytes"),
    ],
)
def test_invalid_headers_are_rejected_precisely(header_obj, message):
    with pytest.raises(HeaderError, match=message):
        parse_header(_raw(header_obj), filename="model.safetensors")


def test_offsets_past_the_end_of_the_file(tmp_path):
    head, size = header({"w": ("F16", [1024])})
    raw = _raw(head)
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (size - 10))  # data truncated
    with pytest.raises(HeaderError, match="file is"):
        read_local_header(path)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (struct.pack("<Q", 2**60), "exceeds the safetensors limit"),
        (struct.pack("<Q", 10**6), "runs past the end"),
        (b"\x01\x00", "too short"),
    ],
)
def test_hostile_length_prefix(tmp_path, prefix, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(prefix + (b"{}" * 10 if len(prefix) == 8 else b""))
    with pytest.raises(HeaderError, match=message):
        read_local_header(path)


def test_non_utf8_and_invalid_json():
    with pytest.raises(HeaderError, match="not valid UTF-8"):
        parse_header(b'{"a\xff\xfe": 1}', filename="x.safetensors")
    with pytest.raises(HeaderError, match="not valid JSON"):
        parse_header(b'{"a": ', filename="x.safetensors")


def test_deep_nesting_is_rejected_without_recursion():
    hostile = b"[" * 100_000 + b"]" * 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(HeaderError, match="nests deeper"):
        parse_header(hostile, filename="x.safetensors")
    # memory stays small: no parse tree of 100,000 levels is built (ru_maxrss is in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


def test_brackets_inside_strings_do_not_count_as_nesting():
    name = "[" * 200
    head, _ = header({name: ("F16", [2])})
    parsed = parse_header(_raw(head), filename="x.safetensors")
    assert name in parsed.tensors


def test_lfs_pointer_is_named(tmp_path):
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
    )
    path = tmp_path / "model-00001-of-00002.safetensors"
    path.write_text(pointer)
    with pytest.raises(LfsPointerError, match="model-00001-of-00002.safetensors is a Git LFS pointer"):
        read_local_header(path)


def test_header_length_bounds_check_before_reading():
    with pytest.raises(HeaderError, match="exceeds"):
        header_length(struct.pack("<Q", 100_000_001), filename="f")
    assert header_length(struct.pack("<Q", 100_000_000), filename="f") == 100_000_000


def test_test_files_are_written_by_the_safetensors_library(tmp_path):
    """stfile hands tensors to the library's writer: its order (alignment, then name) and its offsets."""
    from safetensors import safe_open

    path = write(
        tmp_path / "model.safetensors", {"z": ("F16", [3]), "a": ("F32", [2]), "b": ("BF16", [2, 2])}
    )
    h = read_local_header(path)
    assert list(h.tensors) == ["a", "b", "z"]
    assert h.tensors["a"].data_offsets == (0, 8) and h.tensors["z"].data_offsets == (16, 22)
    with safe_open(str(path), framework="numpy") as f:
        assert {n: (f.get_slice(n).get_dtype(), f.get_slice(n).get_shape()) for n in f.keys()} == {  # noqa: SIM118
            n: (t.dtype, list(t.shape)) for n, t in h.tensors.items()
        }


def test_a_file_the_loaders_refuse_is_a_header_error(tmp_path):
    """hubfit's reader accepts a lone UTF-16 surrogate in a name (Python's JSON does); the Rust reader the
    loaders use refuses it, so read_local_header does too, in one line naming the file."""
    raw = b'{"\\ud800":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'
    raw += b" " * (-len(raw) % 8)
    assert "\ud800" in parse_header(raw, filename="x").tensors
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    with pytest.raises(HeaderError) as caught:
        read_local_header(path, filename="dir/odd.safetensors")
    message = str(caught.value)
    assert message.startswith("dir/odd.safetensors: the safetensors library refuses to open it (")
    assert "\n" not in message and caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hostile_files_never_reach_the_safetensors_library(tmp_path, monkeypatch):
    """hubfit's reader runs first: a hostile file gets hubfit's message, safe_open is never called."""
    import safetensors

    def refuse(*args, **kwargs):
        raise AssertionError("safe_open was called")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(HeaderError, match="exceeds the safetensors limit"):
        read_local_header(path)


def test_safetensors_is_imported_only_when_a_local_file_is_read():
    import subprocess
    import sys

    code = "import sys, hubfit.cli, hubfit.source.sources; print('safetensors' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "False"]
