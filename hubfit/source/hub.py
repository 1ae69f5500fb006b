"""Every Hugging Face Hub call hubfit makes, through ``huggingface_hub``.

``HubClient`` uses huggingface_hub's ``HfApi`` (model info, the sharded safetensors-metadata endpoint), its
download cache (JSON files at a pinned sha are served from disk on the next run), its HTTP session
(``get_session()``, for file metadata, small files and ranged header reads) and its token lookup (``HF_TOKEN``,
``hf auth login``) and ``HF_ENDPOINT``. It adds what huggingface_hub leaves to callers:

- bounded retries through hubfit's one retry layer (:mod:`hubfit._http`): 429 honours ``Retry-After`` (or the
  ``RateLimit`` header's reset) and pauses every thread, 5xx and transport errors back off exponentially;
  then :class:`~hubfit.errors.NetworkError`. Only huggingface_hub calls without retries of their own are used,
  so no request is retried by two layers;
- translation of huggingface_hub's errors into hubfit's one-line errors (gated: how to get access; private;
  revision not found);
- request and byte counters, for benchmarks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from hubfit._http import Backoff, RetriesExhausted, Transient, classify, server_key
from hubfit._version import __version__
from hubfit.constants import FIRST_READ_BYTES, HTTP_TIMEOUT_S, MAX_JSON_BYTES
from hubfit.errors import (
    GatedRepoError,
    HeaderError,
    HubfitError,
    NetworkError,
    PrivateRepoError,
    RateLimitedError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from hubfit.formats.safetensors import (
    HeaderBytes,
    SafetensorsHeader,
    decode_sharded,
    fetch_header,
    header_from_metadata,
)

__all__ = ["HubClient", "HubStats", "RepoFile", "RepoSnapshot"]

logger = logging.getLogger(__name__)
if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from hubfit.formats.gguf import GGUFHeader

T = TypeVar("T")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_ETAG = re.compile(r"^[0-9A-Za-z_-]{1,128}$")


@dataclass(frozen=True)
class RepoFile:
    """A file of a repository at a commit.

    Attributes:
        path: the path in the repository.
        size: bytes (``None`` when the Hub did not say).
        sha256: the content hash of a Git LFS file (``None`` for regular files).
    """

    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class RepoSnapshot:
    """A repository resolved to one commit."""

    repo_id: str
    revision: str
    sha: str
    files: tuple[RepoFile, ...]
    gated: bool | str = False
    private: bool = False
    gguf_total: int | None = (
        None  # the Hub's own parameter count of the repo's GGUF file (model info ``gguf``)
    )


@dataclass
class HubStats:
    """Counters for the requests hubfit sent and the bytes it received (thread-safe)."""

    requests: int = 0
    bytes_received: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, received: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_received += received
            self.retries += retries


class _Lfs(msgspec.Struct):
    sha256: str | None = None


class _Sibling(msgspec.Struct):
    rfilename: str
    size: int | None = None
    lfs: _Lfs | None = None


class _GgufInfo(msgspec.Struct):
    total: int | None = None


class _ModelInfo(msgspec.Struct):
    """The fields of the Hub's model-info answer that hubfit reads (others are ignored)."""

    sha: str | None = None
    siblings: list[_Sibling] | None = None
    gated: bool | str | None = False
    private: bool | None = False
    gguf: _GgufInfo | None = None


_MODEL_INFO = msgspec.json.Decoder(_ModelInfo)


class HubClient:
    """Hub access for one analysis (or one scan): an ``HfApi`` plus retries, error mapping and counters.

    Args:
        token: a Hub token; ``None`` lets huggingface_hub find one (``HF_TOKEN``, the saved login), ``False``
            sends none.
        endpoint: the Hub URL; ``None`` uses ``HF_ENDPOINT`` (default https://huggingface.co).
        sleep: injectable for tests of the retry policy (see :class:`hubfit._http.Backoff`).
        backoff: the retry layer to use; default one with the constants' policy, ``sleep`` and the shared pause.
    """

    def __init__(
        self,
        token: str | bool | None = None,
        endpoint: str | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.token = token
        self.stats = HubStats()
        self.backoff = backoff or Backoff(sleep=sleep)
        self._headers: dict[str, str] | None = None
        self._endpoint = endpoint

    @cached_property
    def api(self) -> HfApi:
        """huggingface_hub's ``HfApi`` for this client (created on first use: its import costs about 0.4 s,
        and reading a model needs only the HTTP session)."""
        from huggingface_hub import HfApi

        return HfApi(
            endpoint=self.endpoint, token=self.token, library_name="hubfit", library_version=__version__
        )

    @property
    def endpoint(self) -> str:
        """The Hub's URL: the one given, else ``HF_ENDPOINT`` as huggingface_hub reads it."""
        if self._endpoint is None:
            from huggingface_hub import constants

            self._endpoint = constants.ENDPOINT
        return self._endpoint.rstrip("/")

    def _has_token(self) -> bool:
        if self.token is False:
            return False
        if isinstance(self.token, str):
            return True
        from huggingface_hub import get_token

        return get_token() is not None

    def _hf_headers(self) -> dict[str, str]:
        """Authorization and user agent for direct requests: built once per client, not per read."""
        if self._headers is None:
            from huggingface_hub.utils import build_hf_headers

            self._headers = build_hf_headers(
                token=self.token, library_name="hubfit", library_version=__version__
            )
        return self._headers

    # ---- retries and errors ---------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T], *, repo_id: str, revision: str | None = None) -> T:
        """Run ``fn`` with bounded retries, translating huggingface_hub errors into hubfit errors."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
        from huggingface_hub.utils import httpx

        transport = (httpx.TimeoutException, httpx.TransportError)

        def retryable(exc: BaseException) -> Transient | None:
            if isinstance(exc, OfflineModeIsEnabled):  # a ConnectionError that waiting cannot fix
                return None
            return classify(exc, transport=transport)

        try:
            return self.backoff.call(
                fn,
                classify=retryable,
                key=server_key(self.endpoint),
                what=what,
                on_retry=lambda failure, wait: self.stats.add(retries=1),
            )
        except RetriesExhausted as exc:
            if exc.last.status == 429:
                raise RateLimitedError(
                    f"the Hub kept rate-limiting requests to {what} after {exc.attempts} attempts; "
                    "wait and retry, or pass a token (--token, HF_TOKEN) for a higher limit"
                ) from None
            raise NetworkError(
                f"cannot {what}: {exc.last.reason} after {exc.attempts} attempts ({self.endpoint})"
            ) from None
        except OfflineModeIsEnabled:
            raise NetworkError(f"cannot {what}: HF_HUB_OFFLINE is set and the data is not cached") from None
        except HfHubHTTPError as exc:
            raise self.translate(exc, repo_id=repo_id, revision=revision, what=what) from None

    def translate(self, exc: BaseException, *, repo_id: str, revision: str | None, what: str) -> HubfitError:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            RepositoryNotFoundError,
        )
        from huggingface_hub.errors import (
            GatedRepoError as HfGated,
        )
        from huggingface_hub.errors import (
            RevisionNotFoundError as HfRevision,
        )

        if isinstance(exc, HfGated):
            return GatedRepoError(
                f"{repo_id} is gated: accept its conditions at {self.endpoint}/{repo_id} while logged in, "
                "then pass a token of that account (--token, HF_TOKEN or `hf auth login`)"
            )
        if isinstance(exc, RepositoryNotFoundError):
            if self._has_token():
                return RepoNotFoundError(
                    f"repository {repo_id} not found, or the token has no access to it (private repository)"
                )
            return PrivateRepoError(
                f"repository {repo_id} not found; if it is private, pass a token with access "
                "(--token, HF_TOKEN or `hf auth login`)"
            )
        if isinstance(exc, HfRevision):
            return RevisionNotFoundError(f"revision {revision!r} not found in {repo_id}")
        if isinstance(exc, EntryNotFoundError):
            return RepoNotFoundError(f"cannot {what}: file not found in {repo_id}")
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 404:
            return RepoNotFoundError(f"cannot {what}: not found on the Hub (HTTP 404)")
        return NetworkError(f"cannot {what}: the Hub answered HTTP {status}")

    # ---- calls ----------------------------------------------------------------------------------------
    def snapshot(self, repo_id: str, revision: str | None = None) -> RepoSnapshot:
        """Resolve ``revision`` (branch, tag, sha, ``refs/pr/N``; default ``main``) to a commit and list its files."""

        from urllib.parse import quote

        from huggingface_hub.utils import get_session, hf_raise_for_status

        # The request HfApi.model_info(files_metadata=True) sends, through huggingface_hub's session and error
        # mapping; the answer is decoded into the few fields hubfit reads (msgspec), without importing HfApi.
        url = f"{self.endpoint}/api/models/{repo_id}"
        if revision is not None:
            url += f"/revision/{quote(revision, safe='')}"

        def call() -> _ModelInfo:
            self.stats.add(requests=1)
            response = get_session().get(
                url, headers=self._hf_headers(), timeout=HTTP_TIMEOUT_S, params={"blobs": True}
            )
            hf_raise_for_status(response)
            self.stats.add(received=len(response.content))
            try:
                return _MODEL_INFO.decode(response.content)
            except msgspec.MsgspecError as exc:
                raise NetworkError(f"the Hub's answer for {repo_id} is malformed ({exc})") from None

        info = self.call(f"read {repo_id}", call, repo_id=repo_id, revision=revision)
        files = tuple(
            RepoFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs is not None else None)
            for s in info.siblings or ()
        )
        return RepoSnapshot(
            repo_id=repo_id,
            revision=revision or "main",
            sha=info.sha or "",
            files=files,
            gated=info.gated or False,
            private=bool(info.private),
            gguf_total=info.gguf.total if info.gguf is not None else None,
        )

    def file_url(self, repo_id: str, path: str, revision: str) -> str:
        """The file's resolve URL, as ``huggingface_hub.hf_hub_url`` builds it (its URL template and endpoint).

        Built here from ``huggingface_hub.constants`` because importing ``hf_hub_url`` loads the download
        machinery (progress bars, file locks), about 35 ms of every start-up, for one string.
        """
        from urllib.parse import quote

        from huggingface_hub import constants

        url: str = constants.HUGGINGFACE_CO_URL_TEMPLATE.format(
            repo_id=repo_id, revision=quote(revision, safe=""), filename=quote(path)
        )
        if url.startswith(constants.ENDPOINT):
            url = self.endpoint + url[len(constants.ENDPOINT) :]
        return url

    def read_file(
        self,
        repo_id: str,
        path: str,
        sha: str,
        *,
        what: str | None = None,
        max_bytes: int | None = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        """A small file's bytes at commit ``sha``, from huggingface_hub's cache or downloaded into it.

        A cache miss costs one GET (see :meth:`_fetch`), retried by :meth:`call`. ``hf_hub_download`` is not used: it retries on its own inside ours (a failed HEAD is
        sent again through ``http_backoff``, 5 more tries and about 23 s of sleeps; the GET is retried 5
        times), and it has no setting to turn that off, so a failing ``config.json`` cost up to 5 x 7 HEADs.
        Here huggingface_hub's layer is off and hubfit's is the only one: a request that keeps failing is sent
        exactly ``attempts`` times. The file is then stored where huggingface_hub's cache keeps it
        (``blobs/<etag>``, ``snapshots/<sha>/<path>``), so the next run and ``hf_hub_download`` find it.

        Args:
            what: what is being done, for error messages (default ``download <path> from <repo_id>``).
            max_bytes: refuse a larger file (:class:`~hubfit.errors.HeaderError`) before reading it.
            missing_ok: return ``None`` when the file does not exist at ``sha`` instead of raising.
        """
        cached = _CacheSlot.lookup(repo_id, path, sha)
        if isinstance(cached, Path):
            if max_bytes is not None and os.path.getsize(cached) > max_bytes:
                raise HeaderError(f"{repo_id}/{path} is larger than {max_bytes:,} bytes")
            with open(cached, "rb") as fh:
                return fh.read()
        if cached is _MISSING and missing_ok:  # the cache knows the file does not exist at this commit
            return None
        what = what or f"download {path} from {repo_id}"
        return self.call(
            what,
            lambda: self._fetch(repo_id, path, sha, max_bytes=max_bytes, missing_ok=missing_ok),
            repo_id=repo_id,
            revision=sha,
        )

    def _fetch(
        self, repo_id: str, path: str, sha: str, *, max_bytes: int | None, missing_ok: bool
    ) -> bytes | None:
        """One attempt of :meth:`read_file`: one GET (redirects followed) without huggingface_hub's retries.

        ``hf_hub_download`` sends a HEAD for the file's metadata, then the GET; one GET carries the same facts
        (the size in ``Content-Length``, checked before the body is read; the ETag that names the cache blob,
        ``X-Linked-Etag`` on a Git LFS redirect) and saves a round trip per file.
        """
        from huggingface_hub.errors import EntryNotFoundError
        from huggingface_hub.utils import get_session, hf_raise_for_status

        url = self.file_url(repo_id, path, sha)
        too_large = HeaderError(f"{repo_id}/{path} is larger than {max_bytes or 0:,} bytes")
        self.stats.add(requests=1)
        chunks: list[bytes] = []
        received = 0
        # httpx drops the token when a redirect leaves the Hub's host (a CDN), as huggingface_hub does.
        with get_session().stream("GET", url, headers=self._hf_headers(), timeout=HTTP_TIMEOUT_S) as response:
            if response.status_code >= 400:
                response.read()
                try:
                    hf_raise_for_status(response)
                except EntryNotFoundError:
                    if missing_ok:
                        return None
                    raise
            size = response.headers.get("content-length", "")
            if max_bytes is not None and size.isdigit() and int(size) > max_bytes:
                raise too_large
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise too_large
            etag = _etag([*response.history, response])
        self.stats.add(received=received)
        data = b"".join(chunks)
        slot = _CacheSlot.locate(repo_id, path, sha, etag or hashlib.sha256(data).hexdigest())
        if slot is not None:
            slot.store(data)
        return data

    def read_json(self, repo_id: str, path: str, sha: str) -> Any:
        """Download a JSON file at ``sha`` through the huggingface_hub cache and parse it."""
        data = self.read_file(repo_id, path, sha, max_bytes=MAX_JSON_BYTES)
        assert data is not None  # missing_ok is off: a missing file raised
        try:  # msgspec's C decoder first (a 9 MB shard index: 31 ms, against 52 ms)
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass  # what it refuses (NaN, integers past 64 bits, deep nesting) is Python's json module's to judge
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # bad JSON, not UTF-8, too deep, an integer of 4,300+ digits
            raise HeaderError(f"{repo_id}/{path} is not valid JSON") from None

    def _range(
        self, repo_id: str, path: str, sha: str, start: int, end: int, total: list[int] | None = None
    ) -> bytes:
        """Bytes ``[start, end)`` of a file, reading no more than that even if Range is ignored.

        ``total``, when given, receives the file's size from a 206 answer's ``Content-Range``.
        """
        from huggingface_hub.utils import get_session, hf_raise_for_status

        url = self.file_url(repo_id, path, sha)
        headers = {**self._hf_headers(), "Range": f"bytes={start}-{end - 1}"}

        def call() -> bytes:
            self.stats.add(requests=1)
            with get_session().stream("GET", url, headers=headers, timeout=HTTP_TIMEOUT_S) as response:
                if response.status_code >= 400:
                    response.read()
                    hf_raise_for_status(response)
                if total is not None and response.status_code == 206:
                    size = response.headers.get("content-range", "").rpartition("/")[2]
                    if size.isdigit():
                        total.append(int(size))
                # A server that ignores Range answers 200 with the whole file: read only what we need.
                skip = start if response.status_code == 200 else 0
                want = skip + end - start
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    received += len(chunk)
                    if received >= want:
                        break
                self.stats.add(received=received)
                return b"".join(chunks)[skip:want]

        return self.call(f"read {path} from {repo_id}", call, repo_id=repo_id, revision=sha)

    def read_gguf_header(self, repo_id: str, path: str, sha: str, *, file_size: int) -> GGUFHeader:
        """Read one GGUF header with ranged GETs (a few MiB first, more while parsing, 64 MiB at most)."""
        from hubfit.formats.gguf import read_header as read_gguf

        def read(start: int, end: int) -> bytes:
            return self._range(repo_id, path, sha, start, end)

        return read_gguf(read, filename=path, file_size=file_size)

    def read_header(
        self,
        repo_id: str,
        path: str,
        sha: str,
        *,
        first_read: int = FIRST_READ_BYTES,
        file_size: int | None = None,
    ) -> SafetensorsHeader:
        """Read one safetensors header with ranged GETs: a first read of ``first_read`` bytes, more only if needed.

        When ``file_size`` is unknown (file names from an organization listing), the first answer's
        ``Content-Range`` gives it, so the header is still checked against the end of the file.
        """
        return self.fetch_header(repo_id, path, sha, first_read=first_read, file_size=file_size).parse()

    def fetch_header(
        self,
        repo_id: str,
        path: str,
        sha: str,
        *,
        first_read: int = FIRST_READ_BYTES,
        file_size: int | None = None,
    ) -> HeaderBytes:
        """:meth:`read_header`'s reads alone: the header's bytes, parsed later (:meth:`HeaderBytes.parse`)."""
        learned: list[int] = []

        def read(start: int, end: int) -> bytes:
            return self._range(repo_id, path, sha, start, end, learned if start == 0 else None)

        return fetch_header(
            read,
            filename=path,
            file_size=file_size,
            first_read=first_read,
            learned_size=lambda: learned[-1] if learned else None,
        )

    def sharded_headers(
        self, repo_id: str, index_path: str, sizes: dict[str, int | None]
    ) -> dict[str, SafetensorsHeader] | None:
        """Every shard header of an index in one request (the Hub's safetensors-metadata endpoint, ``main``).

        Returns ``None`` when the endpoint is not available, so the caller falls back to ranged reads.
        """
        from urllib.parse import quote

        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import get_session, hf_raise_for_status

        # The request huggingface_hub's get_sharded_safetensors_metadata sends, through its session; the answer
        # is decoded here with typed msgspec decoding (validated as it is parsed), not into its TensorInfo objects.
        url = f"{self.endpoint}/api/models/{repo_id}/safetensors-metadata/{quote(index_path, safe='/')}"

        def call() -> dict[str, dict[str, msgspec.Raw]]:
            self.stats.add(requests=1)
            response = get_session().get(url, headers=self._hf_headers(), timeout=HTTP_TIMEOUT_S)
            hf_raise_for_status(response)
            self.stats.add(received=len(response.content))
            return decode_sharded(response.content)

        try:
            meta = self.call(f"read the shard headers of {repo_id}", call, repo_id=repo_id)
        except (RepoNotFoundError, NetworkError):
            return None
        except HfHubHTTPError:
            return None
        except HeaderError:
            return None  # an answer of another shape: read the shards directly
        folder = index_path.rsplit("/", 1)[0] + "/" if "/" in index_path else ""
        headers: dict[str, SafetensorsHeader] = {}
        for shard, raw in meta.items():
            path = shard if shard.startswith(folder) else folder + shard
            headers[path] = header_from_metadata(raw, filename=path, file_size=sizes.get(path))
        return headers


def _etag(responses: list[Any]) -> str | None:
    """The file's ETag as huggingface_hub names cache blobs by it: a Git LFS redirect's ``X-Linked-Etag`` (the
    sha256), else the Hub's ``ETag``; quotes and a weak ``W/`` prefix removed."""
    for response in responses:
        value = response.headers.get("x-linked-etag") or response.headers.get("etag")
        if value:
            return str(value).removeprefix("W/").strip('"')
    return None


#: :meth:`_CacheSlot.lookup`'s answer for a file the cache knows does not exist at a commit.
_MISSING = object()


@dataclass(frozen=True)
class _CacheSlot:
    """Where huggingface_hub's cache keeps one file of one commit, so ``hf_hub_download`` finds it.

    ``<HF_HUB_CACHE>/models--<owner>--<name>/blobs/<etag>`` holds the bytes; ``snapshots/<sha>/<path>`` links
    to them (a copy where links are not allowed, as huggingface_hub does). That is what
    ``try_to_load_from_cache`` and ``hf_hub_download`` look for at a pinned sha. Writing is best effort: a
    cache that cannot be written only means no caching.
    """

    blob: Path
    pointer: Path

    @staticmethod
    def lookup(repo_id: str, path: str, sha: str) -> Path | object | None:
        """What huggingface_hub's cache holds for ``path`` at commit ``sha``, as ``try_to_load_from_cache`` reads
        it: the cached file, :data:`_MISSING` when a download recorded that the file does not exist there
        (``.no_exist/<sha>/<path>``), or ``None``."""
        from huggingface_hub import constants as hf_constants

        parts = path.split("/")
        if (
            not _SHA.match(sha)
            or repo_id.count("/") != 1
            or any(p in ("", ".", "..") or "\\" in p for p in parts)
        ):
            return None
        folder = Path(hf_constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
        if (folder / ".no_exist" / sha / Path(*parts)).is_file():
            return _MISSING
        cached = folder / "snapshots" / sha / Path(*parts)
        return cached if cached.is_file() else None

    @classmethod
    def locate(cls, repo_id: str, path: str, sha: str, etag: str | None) -> _CacheSlot | None:
        """The slot, or ``None`` when a name is not safe as a file name (then nothing is cached)."""
        from huggingface_hub import constants as hf_constants

        parts = path.split("/")
        if (
            not etag
            or not _ETAG.match(etag)
            or not _SHA.match(sha)
            or repo_id.count("/") != 1
            or any(p in ("", ".", "..") or "\\" in p for p in [*repo_id.split("/"), *parts])
        ):
            return None
        folder = Path(hf_constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
        return cls(folder / "blobs" / etag, folder / "snapshots" / sha / Path(*parts))

    def store(self, data: bytes) -> None:
        """Write the blob (unless present) and link the commit's path to it."""
        try:
            if not self.blob.is_file():
                self.blob.parent.mkdir(parents=True, exist_ok=True)
                _write_atomically(self.blob, data)
        except OSError as exc:
            logger.debug("not caching %s: %s", self.pointer, exc)
            return
        self.link(data)

    def link(self, data: bytes) -> None:
        """Point ``snapshots/<sha>/<path>`` at the blob (or hold a copy of ``data``)."""
        try:
            self.pointer.parent.mkdir(parents=True, exist_ok=True)
            link = self.pointer.with_name(f".hubfit-{uuid.uuid4().hex}.link")
            try:
                os.symlink(os.path.relpath(self.blob, self.pointer.parent), link)
                os.replace(link, self.pointer)
            except OSError:  # no symlinks here (Windows without developer mode)
                link.unlink(missing_ok=True)
                _write_atomically(self.pointer, data)
        except OSError as exc:
            logger.debug("not caching %s: %s", self.pointer, exc)


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".hubfit-", suffix=".incomplete")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
