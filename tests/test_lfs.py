"""Git LFS pointers and header reads through the LFS batch API (hubfit/lfs.py).

The LFS server is faked with `responses` (hubfit talks to it with `requests`). Objects are the shards of the
Llama-2-70b-hf fixture repo (fixtures/catalog.py: headers generated from the real config.json by the family
rules in fixtures/families.py), so the headers read here can be compared with what the fake Hub serves.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import requests
import responses

from fixtures.catalog import LLAMA2_70B
from fixtures.hub_server import FileEntry, safetensors_header_bytes
from hubfit import constants
from hubfit.constants import FIRST_READ_BYTES
from hubfit.errors import HeaderError, LfsPointerError, NetworkError
from hubfit.source import lfs
from hubfit.source.lfs import LfsAction, LfsClient, LfsHeaderReader, LfsPointer, parse_pointer, read_pointer

LFS_URL = "https://github.com/octo-org/llama.git/info/lfs"
CDN = "https://objects.example.test"

# The v1 pointer example of the Git LFS specification (git-lfs/git-lfs docs/spec.md).
SPEC_EXAMPLE = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 12345\n"
)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "RETRY_BASE_S", 0.0)  # the one retry policy (hubfit._http) reads it


@pytest.fixture(scope="module")
def shards(fake_hub) -> dict[str, FileEntry]:
    """The 15 safetensors shards of the Llama-2-70b-hf fixture, by path."""
    files = fake_hub.repos[LLAMA2_70B].head.files
    return {path: entry for path, entry in files.items() if path.endswith(".safetensors")}


def _pointer(entry: FileEntry) -> LfsPointer:
    return parse_pointer(entry.lfs_pointer)


class LfsServer:
    """A fake LFS server for `responses`: a batch endpoint and ranged object downloads, with a request log."""

    def __init__(self, rsps: responses.RequestsMock, objects: dict[str, FileEntry]) -> None:
        self.objects = {e.sha256: e for e in objects.values()}
        self.batches: list[dict] = []
        self.batch_headers: list[dict] = []
        self.ranges: list[tuple[int, int]] = []
        self.ignore_range = False
        self.missing: set[str] = set()
        rsps.add_callback(responses.POST, f"{LFS_URL}/objects/batch", callback=self._batch)
        rsps.add_callback(responses.GET, re.compile(rf"{CDN}/objects/[0-9a-f]{{64}}"), callback=self._object)

    def _batch(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        self.batches.append(body)
        self.batch_headers.append(dict(request.headers))
        out = []
        for obj in body["objects"]:
            if obj["oid"] in self.objects and obj["oid"] not in self.missing:
                out.append(
                    {
                        **obj,
                        "authenticated": True,
                        "actions": {
                            "download": {
                                "href": f"{CDN}/objects/{obj['oid']}",
                                "header": {"X-Signed": "yes"},
                                "expires_in": 3600,
                            }
                        },
                    }
                )
            else:
                out.append({**obj, "error": {"code": 404, "message": "Object does not exist"}})
        return 200, {"Content-Type": lfs.LFS_MEDIA_TYPE}, json.dumps({"transfer": "basic", "objects": out})

    def _object(self, request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        assert request.headers["X-Signed"] == "yes"
        entry = self.objects[request.url.rsplit("/", 1)[1]]
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["Range"])
        assert match, request.headers["Range"]
        start, end = int(match.group(1)), int(match.group(2))
        self.ranges.append((start, end))
        if self.ignore_range:
            # The whole object would follow; serve the prefix plus 1 MiB of its zeros, enough to tell whether
            # the client stops reading early.
            return 200, {}, entry.read(0, len(entry.prefix) + (1 << 20))
        return 206, {"Content-Range": f"bytes {start}-{end}/{entry.size}"}, entry.read(start, end + 1)


# ---- pointer files ----------------------------------------------------------------------------------------


def test_parse_pointer_spec_example() -> None:
    pointer = parse_pointer(SPEC_EXAMPLE)
    assert pointer == LfsPointer("4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393", 12345)


def test_parse_pointer_keeps_extension_keys() -> None:
    data = SPEC_EXAMPLE.replace(b"oid ", b"ext-0-foo sha256:00\noid ")
    assert parse_pointer(data).extra == {"ext-0-foo": "sha256:00"}


@pytest.mark.parametrize(
    "data, reason",
    [
        (SPEC_EXAMPLE.replace(b"git-lfs.github.com", b"example.com"), "spec version"),
        (SPEC_EXAMPLE.rstrip(b"\n"), "newline"),
        (SPEC_EXAMPLE.replace(b"\n", b"\r\n"), "key value"),
        (SPEC_EXAMPLE.replace(b"sha256:4d7a", b"sha1:4d7a"), "oid"),
        (SPEC_EXAMPLE.replace(b"2393\n", b"239\n"), "oid"),
        (SPEC_EXAMPLE.replace(b"size 12345", b"size -5"), "size"),
        (SPEC_EXAMPLE.replace(b"size 12345\n", b""), "size"),
        (b"version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:" + b"0" * 64 + b"\n", "sorted"),
        (SPEC_EXAMPLE + b"size 1\n", "sorted"),
        (SPEC_EXAMPLE + b"x" * 1024, "too large"),
    ],
)
def test_parse_pointer_rejects_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(LfsPointerError, match=reason):
        parse_pointer(data, filename="model.safetensors")


def test_read_pointer_tells_pointers_from_content(tmp_path: Path, shards: dict[str, FileEntry]) -> None:
    entry = shards["model-00001-of-00015.safetensors"]
    pointer_file = tmp_path / "pointer.safetensors"
    pointer_file.write_bytes(entry.lfs_pointer)
    assert read_pointer(pointer_file) == LfsPointer(entry.sha256, entry.size)

    real = tmp_path / "real.safetensors"
    real.write_bytes(entry.prefix)  # a safetensors file starts with its length prefix, not "version "
    assert read_pointer(real) is None
    large = tmp_path / "large.txt"
    large.write_bytes(b"version " + b"x" * 2000)
    assert read_pointer(large) is None


# ---- server discovery -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "remote",
    [
        # The four examples of git-lfs docs/api/server-discovery.md ("Guessing the Server").
        "https://git-server.com/foo/bar",
        "https://git-server.com/foo/bar.git",
        "git@git-server.com:foo/bar.git",
        "ssh://git-server.com/foo/bar.git",
        # Credentials in a remote are not carried into the LFS URL.
        "https://x-access-token:secret@git-server.com/foo/bar",
    ],
)
def test_lfs_url_for_remote(remote: str) -> None:
    assert lfs.lfs_url_for_remote(remote) == "https://git-server.com/foo/bar.git/info/lfs"


def test_lfs_url_for_local_remote_is_an_error() -> None:
    with pytest.raises(LfsPointerError):
        lfs.lfs_url_for_remote("/srv/git/bar.git")


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_discover_lfs_url(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "models" / "llama").mkdir(parents=True)
    _git("init", "-q", cwd=repo)
    inner = repo / "models" / "llama"
    gh = {"server_url": "https://github.com", "repository": "octo-org/fallback"}
    # No remote: the GitHub Actions variables name the repository.
    assert lfs.discover_lfs_url(inner, **gh) == "https://github.com/octo-org/fallback.git/info/lfs"
    assert lfs.discover_lfs_url(inner) is None
    _git("remote", "add", "origin", "https://github.com/octo-org/llama", cwd=repo)
    assert lfs.discover_lfs_url(inner, **gh) == LFS_URL
    (repo / ".lfsconfig").write_text('[lfs]\n\turl = "https://lfs.example.test/octo/llama"\n')
    assert lfs.discover_lfs_url(inner) == "https://lfs.example.test/octo/llama"
    _git("config", "lfs.url", "https://config.example.test/lfs", cwd=repo)
    assert lfs.discover_lfs_url(inner) == "https://config.example.test/lfs"


def test_discover_lfs_url_outside_git(tmp_path: Path) -> None:
    assert lfs.discover_lfs_url(tmp_path, server_url="https://ghe.example.test", repository="o/r") == (
        "https://ghe.example.test/o/r.git/info/lfs"
    )


# ---- batch API --------------------------------------------------------------------------------------------


@responses.activate
def test_batch_request_follows_the_spec(shards: dict[str, FileEntry]) -> None:
    server = LfsServer(responses.mock, shards)
    pointers = [_pointer(e) for e in shards.values()]
    actions = LfsClient(LFS_URL, token="ghs_secret").batch(pointers + pointers[:2])  # duplicates asked once

    assert len(server.batches) == 1
    body = server.batches[0]
    assert body["operation"] == "download"
    assert body["transfers"] == ["basic"]
    assert body["objects"] == [{"oid": p.oid, "size": p.size} for p in pointers]
    headers = server.batch_headers[0]
    assert headers["Accept"] == headers["Content-Type"] == "application/vnd.git-lfs+json"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"x-access-token:ghs_secret").decode()
    assert set(actions) == {p.oid for p in pointers}
    first = actions[pointers[0].oid]
    assert first == LfsAction(f"{CDN}/objects/{pointers[0].oid}", {"X-Signed": "yes"})


@responses.activate
def test_batch_splits_at_100_objects() -> None:
    pointers = [LfsPointer(f"{i:064x}", i) for i in range(150)]
    seen: list[int] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        objects = json.loads(request.body)["objects"]
        seen.append(len(objects))
        out = [{**o, "error": {"code": 404, "message": "Object does not exist"}} for o in objects]
        return 200, {}, json.dumps({"objects": out})

    responses.add_callback(responses.POST, f"{LFS_URL}/objects/batch", callback=answer)
    actions = LfsClient(LFS_URL).batch(pointers)
    assert seen == [100, 50]
    assert all(isinstance(a, LfsPointerError) and "404" in str(a) for a in actions.values())


@responses.activate
def test_batch_unauthorized_says_to_pass_a_token() -> None:
    responses.add(
        responses.POST, f"{LFS_URL}/objects/batch", status=401, json={"message": "Credentials needed"}
    )
    with pytest.raises(LfsPointerError, match="HTTP 401.*github-token.*Credentials needed"):
        LfsClient(LFS_URL).batch([parse_pointer(SPEC_EXAMPLE)])


@responses.activate
def test_batch_retries_server_errors() -> None:
    pointer = parse_pointer(SPEC_EXAMPLE)
    responses.add(responses.POST, f"{LFS_URL}/objects/batch", status=503)
    responses.add(
        responses.POST,
        f"{LFS_URL}/objects/batch",
        json={
            "objects": [{"oid": pointer.oid, "size": pointer.size, "actions": {"download": {"href": CDN}}}]
        },
    )
    assert LfsClient(LFS_URL).batch([pointer]) == {pointer.oid: LfsAction(CDN, {})}
    assert len(responses.calls) == 2


@responses.activate
def test_batch_gives_up_after_bounded_retries() -> None:
    responses.add(responses.POST, f"{LFS_URL}/objects/batch", status=502)
    with pytest.raises(NetworkError, match="HTTP 502"):
        LfsClient(LFS_URL).batch([parse_pointer(SPEC_EXAMPLE)])
    assert len(responses.calls) == constants.RETRY_ATTEMPTS


# ---- header reads -----------------------------------------------------------------------------------------


@responses.activate
def test_read_header_reads_only_header_bytes(shards: dict[str, FileEntry]) -> None:
    server = LfsServer(responses.mock, shards)
    entry = shards["model-00001-of-00015.safetensors"]
    pointer = _pointer(entry)
    client = LfsClient(LFS_URL)
    header, count = client.read_header(pointer, client.batch([pointer])[pointer.oid], filename="shard1")

    expected = entry.json_header()
    expected.pop("__metadata__")
    assert {n: [t.dtype, list(t.shape), list(t.data_offsets)] for n, t in header.tensors.items()} == {
        n: [v["dtype"], v["shape"], v["data_offsets"]] for n, v in expected.items()
    }
    assert header.file_size == entry.size  # validated against the pointer's size
    # This shard's header fits in the first read: one range of FIRST_READ_BYTES out of a ~9.6 GB object.
    assert len(entry.prefix) < FIRST_READ_BYTES < entry.size
    assert server.ranges == [(0, FIRST_READ_BYTES - 1)]
    assert count == FIRST_READ_BYTES


@responses.activate
def test_read_header_large_header_two_ranges() -> None:
    # 400 tensors make a header larger than the first read: a second range fetches exactly the rest.
    tensors, pos = {}, 0
    for i in range(400):
        tensors[f"model.layers.{i}.mlp.down_proj.weight"] = {
            "dtype": "BF16",
            "shape": [4096, 1024],
            "data_offsets": [pos, pos + 8388608],
        }
        pos += 8388608
    entry = FileEntry.safetensors(tensors)
    server = LfsServer(responses.mock, {"big.safetensors": entry})
    pointer = _pointer(entry)
    client = LfsClient(LFS_URL)
    header, count = client.read_header(
        pointer, client.batch([pointer])[pointer.oid], filename="big.safetensors"
    )
    assert len(header.tensors) == 400
    assert len(entry.prefix) > FIRST_READ_BYTES
    assert server.ranges == [(0, FIRST_READ_BYTES - 1), (FIRST_READ_BYTES, len(entry.prefix) - 1)]
    assert count == len(entry.prefix)


@responses.activate
def test_read_header_when_range_is_ignored(shards: dict[str, FileEntry]) -> None:
    server = LfsServer(responses.mock, shards)
    server.ignore_range = True
    entry = shards["model-00015-of-00015.safetensors"]
    pointer = _pointer(entry)
    client = LfsClient(LFS_URL)
    header, count = client.read_header(pointer, client.batch([pointer])[pointer.oid], filename="shard15")
    assert "lm_head.weight" in header.tensors  # the last shard holds the output projection
    # The server sent the object from byte 0 (here 1 MiB of it); the client kept only its range.
    assert count == FIRST_READ_BYTES


@responses.activate
def test_read_header_checks_the_pointer_size(shards: dict[str, FileEntry]) -> None:
    LfsServer(responses.mock, shards)
    entry = shards["model-00002-of-00015.safetensors"]
    lying = LfsPointer(entry.sha256, entry.size - 2)  # a pointer whose size disagrees with the header
    client = LfsClient(LFS_URL)
    action = client.batch([_pointer(entry)])[entry.sha256]
    with pytest.raises(HeaderError, match="file is"):
        client.read_header(lying, action, filename="model-00002-of-00015.safetensors")


# ---- LfsHeaderReader: one batch, then per-file ranges; Hub fallback ---------------------------------------


def _checkout(tmp_path: Path, files: dict[str, FileEntry]) -> Path:
    for path, entry in files.items():
        (tmp_path / path).write_bytes(entry.lfs_pointer)
    return tmp_path


@responses.activate
def test_reader_batches_once_and_records_the_path(tmp_path: Path, shards: dict[str, FileEntry]) -> None:
    server = LfsServer(responses.mock, shards)
    root = _checkout(tmp_path, shards)
    reader = LfsHeaderReader(root, client=LfsClient(LFS_URL))
    names = sorted(shards)[:3]
    headers = [reader.read_header(root / n, n) for n in names]

    assert len(server.batches) == 1 and len(server.batches[0]["objects"]) == 15
    assert [h.filename for h in headers] == names
    assert [(r.filename, r.via, r.where) for r in reader.reads] == [(n, "lfs-batch", LFS_URL) for n in names]


@responses.activate
def test_reader_falls_back_to_the_hub(tmp_path: Path, shards: dict[str, FileEntry]) -> None:
    server = LfsServer(responses.mock, shards)
    root = _checkout(tmp_path, shards)
    missing = "model-00003-of-00015.safetensors"
    server.missing.add(shards[missing].sha256)
    asked: list[str] = []

    def hub(pointer: LfsPointer, filename: str):
        asked.append(filename)
        entry = shards[filename]
        length = len(entry.prefix) - 8
        from hubfit.formats.safetensors import parse_header

        header = parse_header(entry.prefix[8:], filename=filename, length=length, file_size=entry.size)
        return header, f"org/llama@main:{filename}"

    reader = LfsHeaderReader(root, client=LfsClient(LFS_URL), hub=hub)
    reader.read_header(root / missing, missing)
    assert asked == [missing]
    assert reader.reads[0].via == "hub" and reader.reads[0].where == f"org/llama@main:{missing}"


@responses.activate
def test_reader_names_every_failure(tmp_path: Path, shards: dict[str, FileEntry]) -> None:
    responses.add(responses.POST, f"{LFS_URL}/objects/batch", status=404, json={"message": "Not Found"})
    root = _checkout(tmp_path, shards)

    def hub(pointer: LfsPointer, filename: str):
        raise LfsPointerError(f"no file with sha256 {pointer.oid[:12]} in org/llama@main on the Hub")

    reader = LfsHeaderReader(root, client=LfsClient(LFS_URL), hub=hub)
    name = "model-00001-of-00015.safetensors"
    with pytest.raises(LfsPointerError) as info:
        reader.read_header(root / name, name)
    message = str(info.value)
    assert "HTTP 404" in message and "no file with sha256" in message and "\n" not in message


def test_reader_without_any_path(tmp_path: Path, shards: dict[str, FileEntry]) -> None:
    root = _checkout(tmp_path, shards)
    name = "model-00001-of-00015.safetensors"
    with pytest.raises(LfsPointerError, match="no Git LFS server and no hub-repo"):
        LfsHeaderReader(root).read_header(root / name, name)


# ---- Hub fallback against the fake Hub (huggingface_hub, matched by sha256) -------------------------------


def test_hub_header_reader_matches_by_sha256(hub, shards: dict[str, FileEntry]) -> None:
    read = lfs.hub_header_reader(LLAMA2_70B, client=_hub_client())
    entry = shards["model-00007-of-00015.safetensors"]
    # Same content under another name in the checkout: found by its sha256, read from the Hub's path.
    header, where = read(_pointer(entry), "renamed.safetensors")
    assert where == f"{LLAMA2_70B}@main:model-00007-of-00015.safetensors"
    assert set(header.tensors) == set(entry.json_header()) - {"__metadata__"}


def test_hub_header_reader_refuses_content_not_on_the_hub(hub, shards: dict[str, FileEntry]) -> None:
    read = lfs.hub_header_reader(LLAMA2_70B, client=_hub_client())
    changed = FileEntry.safetensors(
        safetensors_header_bytes({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})
    )
    with pytest.raises(LfsPointerError, match="no file with sha256"):
        read(_pointer(changed), "model-00001-of-00015.safetensors")


def _hub_client():
    from fixtures.catalog import TOKEN_GRANTED
    from hubfit.source.hub import HubClient

    return HubClient(token=TOKEN_GRANTED)
