"""Git LFS pointer files, and safetensors headers read through the Git LFS batch API.

A checkout made without ``lfs: true`` (the default of ``actions/checkout``) holds *pointer files* in place
of the weights: three lines giving the spec version, the sha256 of the real file and its size
(https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md). hubfit needs only each file's header, so
instead of downloading the weights it asks the repository's LFS server for a download URL
(``POST {lfs-url}/objects/batch``, operation ``download``;
https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md) and reads just the header bytes from that
URL with ranged GETs. When the LFS server cannot serve an object (no credentials, object missing) and a Hub
repository is configured, the header is read from the Hub file with the same sha256 instead.

Every header read through here is recorded in :attr:`LfsHeaderReader.reads` with the path taken
(``"lfs-batch"`` or ``"hub"``), so callers can say where the figures came from.

The LFS server is not the Hugging Face Hub, so this module talks to it with ``requests``; Hub reads go
through :mod:`hubfit.source.hub`.
"""

from __future__ import annotations

import base64
import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import requests

from hubfit._http import (
    RETRY_STATUSES,
    Backoff,
    RetriesExhausted,
    Transient,
    TransientError,
    classify,
    server_key,
)
from hubfit._version import __version__ as _hubfit_version
from hubfit.constants import FIRST_READ_BYTES, HTTP_TIMEOUT_S
from hubfit.errors import HubfitError, LfsPointerError, NetworkError
from hubfit.formats.safetensors import SafetensorsHeader, read_header

if TYPE_CHECKING:  # pragma: no cover
    from hubfit.source.hub import HubClient

__all__ = [
    "LfsAction",
    "LfsClient",
    "LfsHeaderReader",
    "LfsPointer",
    "LfsRead",
    "discover_lfs_url",
    "hub_header_reader",
    "lfs_url_for_remote",
    "parse_pointer",
    "read_pointer",
]

#: Pointer versions git-lfs itself accepts (the second is the pre-1.0 name of the project).
POINTER_VERSIONS = ("https://git-lfs.github.com/spec/v1", "https://hawser.github.com/spec/v1")

#: git-lfs treats files larger than this as content, never as pointers (``blobSizeCutoff`` in git-lfs).
MAX_POINTER_BYTES = 1024

#: Objects per batch request: git-lfs sends at most 100 (``lfs.transfer.batchSize`` default).
BATCH_SIZE = 100

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"

_KEY = re.compile(r"^[a-z0-9.-]+$")
_OID = re.compile(r"^sha256:([0-9a-f]{64})$")


@dataclass(frozen=True)
class LfsPointer:
    """A parsed Git LFS pointer file.

    Attributes:
        oid: the sha256 of the real file, 64 lowercase hex digits (without the ``sha256:`` prefix).
        size: the real file's size in bytes.
        version: the pointer spec URL from the first line.
        extra: any other keys the pointer carries (kept, as the spec asks, but not used).
    """

    oid: str
    size: int
    version: str = POINTER_VERSIONS[0]
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LfsAction:
    """Where to download one object, from a batch response: URL and the headers to send with it."""

    href: str
    header: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LfsRead:
    """One safetensors header read for a pointer file, and the path taken to read it.

    Attributes:
        filename: the file's path relative to the analysed directory.
        oid: the pointer's sha256.
        size: the real file's size in bytes.
        via: ``"lfs-batch"`` (LFS batch API, then a ranged GET) or ``"hub"`` (the Hub file with the same sha256).
        where: the LFS server URL, or ``"<repo_id>@<revision>:<path>"`` on the Hub.
        bytes_read: bytes fetched to read the header (never the weights); ``None`` when read from the Hub
            (counted in the Hub client's statistics instead).
    """

    filename: str
    oid: str
    size: int
    via: str
    where: str
    bytes_read: int | None


def parse_pointer(data: bytes, *, filename: str = "<pointer>") -> LfsPointer:
    """Parse the bytes of a Git LFS pointer file.

    Follows the spec's rules: UTF-8 ``key value`` lines each ending in ``\\n``, ``version`` first, the other
    keys sorted, keys of ``[a-z0-9.-]``, a ``sha256:`` oid and a non-negative integer ``size``.

    Raises:
        LfsPointerError: the bytes are not a well-formed pointer.
    """
    if len(data) > MAX_POINTER_BYTES:
        raise LfsPointerError(f"{filename}: {len(data)} bytes is too large for a Git LFS pointer")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LfsPointerError(f"{filename}: Git LFS pointer is not UTF-8") from None
    if not text.endswith("\n"):
        raise LfsPointerError(f"{filename}: Git LFS pointer does not end with a newline")
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.match(key) or not value or "\r" in value:
            raise LfsPointerError(f"{filename}: line {number} of the Git LFS pointer is not 'key value'")
        pairs.append((key, value))
    if pairs[0][0] != "version" or pairs[0][1] not in POINTER_VERSIONS:
        raise LfsPointerError(
            f"{filename}: not a Git LFS pointer (first line must give a known spec version)"
        )
    keys = [key for key, _ in pairs[1:]]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise LfsPointerError(f"{filename}: Git LFS pointer keys are not sorted and unique")
    values = dict(pairs[1:])
    oid = _OID.match(values.pop("oid", ""))
    if oid is None:
        raise LfsPointerError(f"{filename}: Git LFS pointer has no valid 'oid sha256:<64 hex digits>' line")
    size = values.pop("size", "")
    if not size.isdigit():
        raise LfsPointerError(f"{filename}: Git LFS pointer has no valid 'size' line")
    return LfsPointer(oid.group(1), int(size), pairs[0][1], values)


def read_pointer(path: str | Path, *, filename: str | None = None) -> LfsPointer | None:
    """Return the pointer if the file at ``path`` is a Git LFS pointer, else ``None``.

    Only files of at most :data:`MAX_POINTER_BYTES` starting with ``version `` are considered; such a file
    that is not a well-formed pointer raises.

    Raises:
        LfsPointerError: the file looks like a pointer but is malformed.
    """
    path = Path(path)
    if path.stat().st_size > MAX_POINTER_BYTES:
        return None
    data = path.read_bytes()
    if not data.startswith(b"version "):
        return None
    return parse_pointer(data, filename=filename or path.name)


def lfs_url_for_remote(remote: str) -> str:
    """The LFS server URL git-lfs derives from a Git remote URL.

    ``https://host/o/r`` and ``https://host/o/r.git`` give ``https://host/o/r.git/info/lfs``; SSH remotes
    (``git@host:o/r.git``, ``ssh://git@host/o/r.git``) give the same HTTPS URL
    (https://github.com/git-lfs/git-lfs/blob/main/docs/api/server-discovery.md). Credentials embedded in an
    HTTPS remote are dropped.

    Raises:
        LfsPointerError: the remote is neither HTTP(S) nor SSH (a local path, for instance).
    """
    remote = remote.strip()
    scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$", remote)
    if remote.startswith(("http://", "https://")):
        parts = urlsplit(remote)
        scheme, host, path = parts.scheme, parts.hostname or "", parts.path
        if parts.port:
            host = f"{host}:{parts.port}"
    elif remote.startswith("ssh://"):
        parts = urlsplit(remote)
        scheme, host, path = "https", parts.hostname or "", parts.path
    elif scp:
        scheme, host, path = "https", scp.group(1), "/" + scp.group(2).lstrip("/")
    else:
        raise LfsPointerError(f"cannot derive a Git LFS server from the remote {remote!r}")
    if not host:
        raise LfsPointerError(f"cannot derive a Git LFS server from the remote {remote!r}")
    path = path.rstrip("/")
    if not path.endswith(".git"):
        path += ".git"
    return urlunsplit((scheme, host, path + "/info/lfs", "", ""))


def _git_config(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "config", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def discover_lfs_url(
    directory: str | Path, *, server_url: str | None = None, repository: str | None = None
) -> str | None:
    """Find the LFS server for the Git checkout that contains ``directory``, as git-lfs would.

    Order: ``lfs.url`` from git config, ``lfs.url`` from the checkout's ``.lfsconfig``,
    ``remote.origin.lfsurl``, then the ``origin`` remote URL plus ``.git/info/lfs``. When none of these is
    available (no git, no remote) and ``server_url`` and ``repository`` are given (GitHub Actions'
    ``GITHUB_SERVER_URL`` and ``GITHUB_REPOSITORY``), ``{server_url}/{repository}.git/info/lfs``.
    Returns ``None`` when nothing gives a server.
    """
    directory = Path(directory)
    top = None
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            top = Path(done.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        top = None
    if top is not None:
        url = _git_config(top, "--get", "lfs.url")
        if url is None and (top / ".lfsconfig").is_file():
            url = _git_config(top, "--file", str(top / ".lfsconfig"), "--get", "lfs.url")
        url = url or _git_config(top, "--get", "remote.origin.lfsurl")
        if url:
            return url.rstrip("/")
        remote = _git_config(top, "--get", "remote.origin.url")
        if remote:
            try:
                return lfs_url_for_remote(remote)
            except LfsPointerError:
                pass
    if server_url and repository:
        return lfs_url_for_remote(f"{server_url.rstrip('/')}/{repository}")
    return None


class LfsClient:
    """A client for one Git LFS server: batch download actions and ranged reads of the objects.

    Args:
        url: the LFS server URL (``https://github.com/o/r.git/info/lfs``).
        token: sent as HTTP Basic ``x-access-token:<token>`` (the form GitHub accepts for
            ``GITHUB_TOKEN`` and app tokens) to the batch endpoint only; ``None`` sends no credentials.
        session: a ``requests.Session`` to use (one is created otherwise).
        timeout: seconds to wait for the server to send data.
        backoff: the retry layer (:class:`hubfit._http.Backoff`); default the constants' policy on real time.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        session: requests.Session | None = None,
        timeout: float = HTTP_TIMEOUT_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token or None
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", f"hubfit/{_hubfit_version}")
        self._timeout = timeout
        self._backoff = backoff or Backoff()

    def _request(self, method: str, url: str, **kwargs: object) -> requests.Response:
        """Send through :mod:`hubfit._http`: 408/429/5xx and connection failures are retried, within bounds.

        Raises:
            NetworkError: the server could not be reached, or kept answering a retryable status.
        """

        def attempt() -> requests.Response:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)  # type: ignore[arg-type]
            if response.status_code in RETRY_STATUSES:
                detail = "" if kwargs.get("stream") else _server_message(response)
                response.close()
                reason = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
                raise TransientError(
                    Transient.from_answer(response.status_code, response.headers, reason=reason)
                )
            return response

        try:
            return self._backoff.call(
                attempt,
                classify=lambda exc: classify(exc, transport=(requests.ConnectionError, requests.Timeout)),
                key=server_key(url),
                what=f"Git LFS {method} {_host(url)}",
            )
        except RetriesExhausted as exc:
            if exc.last.status is None:
                raise NetworkError(f"Git LFS server {_host(url)} unreachable: {exc.last.reason}") from None
            raise NetworkError(
                f"Git LFS server {_host(url)} answered {exc.last.reason} after {exc.attempts} attempts"
            ) from None

    def batch(self, pointers: Iterable[LfsPointer]) -> dict[str, LfsAction | HubfitError]:
        """Ask the server for a download action for each pointer.

        Returns a map from oid to its :class:`LfsAction`, or to an :class:`LfsPointerError` for objects the
        server reported an error for (missing, removed, invalid) or answered without a download action.

        Raises:
            LfsPointerError: the server refused the whole request (no credentials, no such repository).
            NetworkError: the server could not be reached or kept failing after retries.
        """
        unique = list({p.oid: p for p in pointers}.values())
        headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
        if self._token:
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        result: dict[str, LfsAction | HubfitError] = {}
        for start in range(0, len(unique), BATCH_SIZE):
            chunk = unique[start : start + BATCH_SIZE]
            body = {
                "operation": "download",
                "transfers": ["basic"],
                "objects": [{"oid": p.oid, "size": p.size} for p in chunk],
                "hash_algo": "sha256",
            }
            response = self._request("POST", f"{self.url}/objects/batch", json=body, headers=headers)
            if response.status_code != 200:
                raise _batch_error(self.url, response, authenticated=self._token is not None)
            try:
                objects = response.json()["objects"]
                if not isinstance(objects, list):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise LfsPointerError(
                    f"Git LFS server {_host(self.url)} sent a batch response without an 'objects' list"
                ) from None
            for entry in objects:
                if not isinstance(entry, dict) or entry.get("oid") not in {p.oid for p in chunk}:
                    continue
                result[entry["oid"]] = _action(entry, self.url)
        for pointer in unique:
            result.setdefault(
                pointer.oid,
                LfsPointerError(
                    f"Git LFS server {_host(self.url)} did not answer for object {pointer.oid[:12]}"
                ),
            )
        return result

    def read_range(self, action: LfsAction, start: int, end: int) -> bytes:
        """Read bytes ``start..end`` (inclusive) of an object.

        A server that ignores ``Range`` and answers 200 is read as a stream and closed after ``end + 1``
        bytes, so the rest of the object is never downloaded.

        Raises:
            LfsPointerError: the download URL answered an error status.
            NetworkError: the download URL could not be reached.
        """
        headers = {**action.header, "Range": f"bytes={start}-{end}"}
        response = self._request("GET", action.href, headers=headers, stream=True)
        with response:
            if response.status_code == 206:
                data = response.raw.read(end - start + 1, decode_content=True)
            elif response.status_code == 200:
                data = _read_prefix(response, end + 1)[start:]
            else:
                raise LfsPointerError(
                    f"Git LFS download from {_host(action.href)} answered HTTP {response.status_code}"
                )
        return data

    def read_header(
        self, pointer: LfsPointer, action: LfsAction, *, filename: str
    ) -> tuple[SafetensorsHeader, int]:
        """Read and validate the safetensors header of the object behind ``pointer``.

        One ranged GET covers the length prefix and small headers; a second fetches the rest of a larger
        header (:func:`hubfit.formats.safetensors.read_header`). Returns the header and the number of bytes read.

        Raises:
            HeaderError: the header is malformed (as for a local file of ``pointer.size`` bytes).
            LfsPointerError: the server sent less than the header.
        """
        count = 0

        def read(start: int, end: int) -> bytes:
            nonlocal count
            data = self.read_range(action, start, end - 1)
            count += len(data)
            if len(data) < end - start:
                raise LfsPointerError(
                    f"{filename}: Git LFS server sent only {start + len(data):,} of the first {end:,} bytes"
                )
            return data

        header = read_header(read, filename=filename, file_size=pointer.size)
        return header, count


def _read_prefix(response: requests.Response, count: int) -> bytes:
    chunks: list[bytes] = []
    have = 0
    for chunk in response.iter_content(chunk_size=min(count, 64 * 1024)):
        chunks.append(chunk)
        have += len(chunk)
        if have >= count:
            break
    return b"".join(chunks)[:count]


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _server_message(response: requests.Response) -> str:
    """The ``message`` of a JSON error answer (LFS servers send one), shortened; ``""`` when there is none."""
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("message", ""))[:200] if isinstance(data, dict) else ""


def _batch_error(url: str, response: requests.Response, *, authenticated: bool) -> HubfitError:
    detail = _server_message(response)
    status = response.status_code
    hint = ""
    if status in (401, 403, 404) and not authenticated:
        hint = " (a private repository needs a token: pass github-token)"
    if status in (429,) or status >= 500:
        return NetworkError(f"Git LFS server {_host(url)} answered HTTP {status}: {detail}".rstrip(": "))
    return LfsPointerError(
        f"Git LFS server {_host(url)} refused the batch request: HTTP {status}{hint} {detail}"
    )


def _action(entry: dict, url: str) -> LfsAction | HubfitError:
    oid = entry["oid"]
    error = entry.get("error")
    if isinstance(error, dict):
        return LfsPointerError(
            f"Git LFS server {_host(url)} cannot serve object {oid[:12]}: "
            f"{error.get('code', '?')} {str(error.get('message', ''))[:200]}"
        )
    download = (entry.get("actions") or {}).get("download")
    if not isinstance(download, dict) or not isinstance(download.get("href"), str):
        return LfsPointerError(f"Git LFS server {_host(url)} gave no download action for object {oid[:12]}")
    header = download.get("header") or {}
    if not isinstance(header, dict):
        header = {}
    return LfsAction(download["href"], {str(k): str(v) for k, v in header.items()})


#: Reads a header from the Hub for a pointer: ``(pointer, filename) -> (header, where)``.
HubHeaderFn = Callable[[LfsPointer, str], tuple[SafetensorsHeader, str]]


def hub_header_reader(
    repo_id: str, revision: str | None = None, *, client: HubClient | None = None
) -> HubHeaderFn:
    """A :data:`HubHeaderFn` reading headers from the Hub repository ``repo_id`` at ``revision``.

    The Hub lists each LFS file's sha256 (``model_info(files_metadata=True)``), so a pointer is matched to
    the Hub file with the same content, not merely the same name: a pull request that changes the weights
    but is not on the Hub yet is reported as missing, never read from the older file. A file at the same path
    is preferred when several Hub files share the content. The file list is fetched once, on first use.
    """
    lock = threading.Lock()
    found: dict[str, object] = {}

    def listing() -> tuple[HubClient, str, dict[str, list[tuple[str, int]]]]:
        with lock:
            if not found:
                from hubfit.source.hub import HubClient

                hub = client or HubClient()
                snapshot = hub.snapshot(repo_id, revision)
                by_oid: dict[str, list[tuple[str, int | None]]] = {}
                for file in snapshot.files:
                    if file.sha256:
                        by_oid.setdefault(file.sha256, []).append((file.path, file.size))
                found.update(client=hub, sha=snapshot.sha, by_oid=by_oid)
        return found["client"], found["sha"], found["by_oid"]  # type: ignore[return-value]

    def read(pointer: LfsPointer, filename: str) -> tuple[SafetensorsHeader, str]:
        hub, sha, by_oid = listing()
        candidates = by_oid.get(pointer.oid)
        where = f"{repo_id}@{revision or 'main'}"
        if not candidates:
            raise LfsPointerError(f"no file with sha256 {pointer.oid[:12]} in {where} on the Hub")
        path, size = next((c for c in candidates if c[0] == filename), candidates[0])
        header = hub.read_header(repo_id, path, sha, first_read=FIRST_READ_BYTES, file_size=size)
        return header, f"{where}:{path}"

    return read


class LfsHeaderReader:
    """Reads safetensors headers for pointer files in one directory, without downloading weights.

    The first read sends a single batch request for every pointer ``*.safetensors`` under ``root`` and
    keeps the download actions; each header is then one or two ranged GETs. Objects the LFS server cannot
    serve are read from the Hub when ``hub`` is given (see :func:`hub_header_reader`). Each read is
    recorded in :attr:`reads`.

    Args:
        root: the analysed directory (paths are reported relative to it).
        client: the LFS server client, or ``None`` to go straight to the Hub.
        hub: a function reading the header of the Hub file with the pointer's sha256, or ``None``.

    Raises (from :meth:`read_header`):
        LfsPointerError: neither path could read the header; the message names both failures.
    """

    def __init__(
        self, root: str | Path, *, client: LfsClient | None = None, hub: HubHeaderFn | None = None
    ) -> None:
        self.root = Path(root)
        self.client = client
        self.hub = hub
        self.reads: list[LfsRead] = []
        self._actions: dict[str, LfsAction | HubfitError] | None = None
        self._batch_error: HubfitError | None = None
        self._lock = threading.Lock()

    def _prefetch(self) -> None:
        assert self.client is not None
        pointers = []
        for path in sorted(self.root.rglob("*.safetensors")):
            if path.is_file():
                try:
                    pointer = read_pointer(path)
                except LfsPointerError:
                    continue
                if pointer is not None:
                    pointers.append(pointer)
        try:
            self._actions = self.client.batch(pointers)
        except HubfitError as exc:
            self._actions, self._batch_error = {}, exc

    def _lfs_action(self, pointer: LfsPointer) -> LfsAction | HubfitError:
        with self._lock:
            if self._actions is None:
                self._prefetch()
            assert self._actions is not None
            if pointer.oid not in self._actions and self._batch_error is None:
                # A file not seen by the prefetch (outside root): ask for it alone.
                try:
                    self._actions.update(self.client.batch([pointer]))  # type: ignore[union-attr]
                except HubfitError as exc:
                    return exc
            return self._actions.get(pointer.oid) or self._batch_error or LfsPointerError("no LFS action")

    def read_header(self, path: str | Path, filename: str) -> SafetensorsHeader:
        """Read the header of the real file behind the pointer at ``path``.

        Raises:
            LfsPointerError: the file is not a pointer, or no configured path could read the header.
        """
        pointer = read_pointer(path, filename=filename)
        if pointer is None:
            raise LfsPointerError(f"{filename} is not a Git LFS pointer file")
        failures: list[str] = []
        if self.client is not None:
            action = self._lfs_action(pointer)
            if isinstance(action, LfsAction):
                try:
                    header, count = self.client.read_header(pointer, action, filename=filename)
                except (LfsPointerError, NetworkError) as exc:
                    failures.append(str(exc))
                else:
                    self._record(
                        LfsRead(filename, pointer.oid, pointer.size, "lfs-batch", self.client.url, count)
                    )
                    return header
            else:
                failures.append(str(action))
        if self.hub is not None:
            try:
                header, where = self.hub(pointer, filename)
            except HubfitError as exc:
                failures.append(str(exc))
            else:
                self._record(LfsRead(filename, pointer.oid, pointer.size, "hub", where, None))
                return header
        if not failures:
            failures.append("no Git LFS server and no hub-repo configured")
        raise LfsPointerError(
            f"{filename} is a Git LFS pointer and its header could not be read: {'; '.join(failures)}"
        )

    def _record(self, read: LfsRead) -> None:
        with self._lock:
            self.reads.append(read)
