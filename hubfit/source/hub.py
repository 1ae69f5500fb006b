"""Every Hugging Face Hub call hubfit makes, through ``huggingface_hub``.

``HubClient`` uses huggingface_hub's ``HfApi`` (model info, the sharded safetensors-metadata endpoint), its
download cache (``hf_hub_download`` for JSON files, so a pinned sha is served from disk on the next run), its
HTTP session (``get_session()``, for ranged header reads) and its token lookup (``HF_TOKEN``, ``hf auth login``)
and ``HF_ENDPOINT``. It adds what huggingface_hub leaves to callers:

- bounded retries: 429 honours ``Retry-After`` (or the ``RateLimit`` header's reset), 5xx and transport errors
  back off exponentially; then :class:`~hubfit.errors.NetworkError`;
- translation of huggingface_hub's errors into hubfit's one-line errors (gated: how to get access; private;
  revision not found);
- request and byte counters, for benchmarks.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hubfit import __version__
from hubfit.constants import (
    HTTP_TIMEOUT_S,
    MAX_JSON_BYTES,
    RETRY_AFTER_MAX_S,
    RETRY_ATTEMPTS,
    RETRY_BASE_S,
    RETRY_MAX_S,
)
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
from hubfit.formats.safetensors import SafetensorsHeader, header_length, parse_header, validate_header

__all__ = ["HubClient", "HubStats", "RepoFile", "RepoSnapshot"]

T = TypeVar("T")
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


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


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` or the ``RateLimit`` header's ``t=``."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP date: fall back to backoff
    ratelimit = headers.get("RateLimit") or headers.get("ratelimit")
    if ratelimit and ";t=" in ratelimit:
        try:
            return float(ratelimit.split(";t=")[1].split(";")[0])
        except ValueError:
            return None
    return None


class HubClient:
    """Hub access for one analysis (or one scan): an ``HfApi`` plus retries, error mapping and counters.

    Args:
        token: a Hub token; ``None`` lets huggingface_hub find one (``HF_TOKEN``, the saved login), ``False``
            sends none.
        endpoint: the Hub URL; ``None`` uses ``HF_ENDPOINT`` (default https://huggingface.co).
        sleep: injectable for tests of the retry policy.
    """

    def __init__(
        self,
        token: str | bool | None = None,
        endpoint: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint, token=token, library_name="hubfit", library_version=__version__)
        self.token = token
        self.stats = HubStats()
        self._sleep = sleep
        self._headers: dict[str, str] | None = None

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    def _has_token(self) -> bool:
        if self.token is False:
            return False
        if isinstance(self.token, str):
            return True
        from huggingface_hub import get_token

        return get_token() is not None

    # ---- retries and errors ---------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T], *, repo_id: str, revision: str | None = None) -> T:
        """Run ``fn`` with bounded retries, translating huggingface_hub errors into hubfit errors."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
        from huggingface_hub.utils import httpx

        last: BaseException | None = None
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return fn()
            except HubfitError:
                raise
            except OfflineModeIsEnabled:
                raise NetworkError(
                    f"cannot {what}: HF_HUB_OFFLINE is set and the data is not cached"
                ) from None
            except HfHubHTTPError as exc:
                status = _status(exc)
                if status not in _RETRY_STATUS:
                    raise self.translate(exc, repo_id=repo_id, revision=revision, what=what) from None
                last = exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = exc
            except Exception as exc:  # hf_hub_download wraps connection failures
                cause = exc.__cause__ or exc.__context__
                from huggingface_hub.errors import LocalEntryNotFoundError

                if isinstance(exc, LocalEntryNotFoundError) and cause is not None:
                    if isinstance(cause, HfHubHTTPError) and _status(cause) not in _RETRY_STATUS:
                        raise self.translate(cause, repo_id=repo_id, revision=revision, what=what) from None
                    last = cause
                else:
                    raise
            if attempt + 1 == RETRY_ATTEMPTS:
                break
            wait = _retry_after(last) if _status(last) == 429 else None
            if wait is None:
                wait = min(RETRY_MAX_S, RETRY_BASE_S * 2**attempt) * (0.75 + random.random() / 2)
            self.stats.add(retries=1)
            self._sleep(min(wait, RETRY_AFTER_MAX_S))
        if _status(last) == 429:
            raise RateLimitedError(
                f"the Hub kept rate-limiting requests to {what} after {RETRY_ATTEMPTS} attempts; "
                "wait and retry, or pass a token (--token, HF_TOKEN) for a higher limit"
            )
        detail = f"HTTP {_status(last)}" if _status(last) else type(last).__name__
        raise NetworkError(f"cannot {what}: {detail} after {RETRY_ATTEMPTS} attempts ({self.endpoint})")

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
        status = _status(exc)
        return NetworkError(f"cannot {what}: the Hub answered HTTP {status}")

    # ---- calls ----------------------------------------------------------------------------------------
    def snapshot(self, repo_id: str, revision: str | None = None) -> RepoSnapshot:
        """Resolve ``revision`` (branch, tag, sha, ``refs/pr/N``; default ``main``) to a commit and list its files."""

        def call() -> Any:
            self.stats.add(requests=1)
            return self.api.model_info(
                repo_id, revision=revision, files_metadata=True, timeout=HTTP_TIMEOUT_S
            )

        info = self.call(f"read {repo_id}", call, repo_id=repo_id, revision=revision)
        files = tuple(
            RepoFile(s.rfilename, s.size, getattr(s.lfs, "sha256", None) if s.lfs else None)
            for s in (info.siblings or [])
        )
        return RepoSnapshot(
            repo_id=repo_id,
            revision=revision or "main",
            sha=info.sha or "",
            files=files,
            gated=info.gated or False,
            private=bool(info.private),
        )

    def read_json(self, repo_id: str, path: str, sha: str) -> Any:
        """Download a JSON file at ``sha`` through the huggingface_hub cache and parse it."""
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        def call() -> str:
            cached = try_to_load_from_cache(repo_id, path, revision=sha)
            if isinstance(cached, str):
                return cached
            self.stats.add(requests=2)  # HEAD (metadata) + GET
            return hf_hub_download(
                repo_id,
                path,
                revision=sha,
                token=self.token,
                endpoint=self.endpoint,
                etag_timeout=HTTP_TIMEOUT_S,
            )

        local = self.call(f"download {path} from {repo_id}", call, repo_id=repo_id, revision=sha)
        with open(local, "rb") as fh:
            # Size first: read(n) allocates an n-byte buffer up front (64 MB per call, per thread in a scan).
            if os.fstat(fh.fileno()).st_size > MAX_JSON_BYTES:
                raise HeaderError(f"{repo_id}/{path} is larger than {MAX_JSON_BYTES:,} bytes")
            data = fh.read()
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise HeaderError(f"{repo_id}/{path} is not valid JSON") from None

    def _range(
        self, repo_id: str, path: str, sha: str, start: int, end: int, total: list[int] | None = None
    ) -> bytes:
        """Bytes ``start..end`` (inclusive) of a file, reading no more than that even if Range is ignored.

        ``total``, when given, receives the file's size from a 206 answer's ``Content-Range``.
        """
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(repo_id, path, revision=sha, endpoint=self.endpoint)
        if self._headers is None:  # token lookup and user agent: once per client, not per read
            self._headers = build_hf_headers(
                token=self.token, library_name="hubfit", library_version=__version__
            )
        headers = {**self._headers, "Range": f"bytes={start}-{end}"}

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
                want = skip + end - start + 1
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

    def read_header(
        self, repo_id: str, path: str, sha: str, *, first_read: int, file_size: int | None = None
    ) -> SafetensorsHeader:
        """Read one safetensors header with a first ranged read of ``first_read`` bytes (more only if needed)."""
        if file_size is not None:
            first_read = min(first_read, file_size)
        learned: list[int] = []
        head = self._range(
            repo_id, path, sha, 0, max(first_read, 8) - 1, learned if file_size is None else None
        )
        if file_size is None and learned:
            # File names without sizes (an organization listing): the 206's Content-Range gives the size, so
            # the header is still checked against the end of the file.
            file_size = learned[-1]
        length = header_length(head, filename=path, file_size=file_size)
        body = head[8 : 8 + length]
        if len(body) < length:
            body += self._range(repo_id, path, sha, 8 + len(body), 8 + length - 1)
        if len(body) != length:
            raise HeaderError(f"{path}: file ended inside its {length:,}-byte header")
        return parse_header(body, filename=path, length=length, file_size=file_size)

    def sharded_headers(
        self, repo_id: str, index_path: str, sizes: dict[str, int | None]
    ) -> dict[str, SafetensorsHeader] | None:
        """Every shard header of an index in one request (the Hub's safetensors-metadata endpoint, ``main``).

        Returns ``None`` when the endpoint is not available, so the caller falls back to ranged reads.
        """
        from huggingface_hub.errors import HfHubHTTPError

        def call() -> Any:
            self.stats.add(requests=1)
            return self.api.get_sharded_safetensors_metadata(
                repo_id, filename=index_path, token=self.token, timeout=HTTP_TIMEOUT_S
            )

        try:
            meta = self.call(f"read the shard headers of {repo_id}", call, repo_id=repo_id)
        except (RepoNotFoundError, NetworkError):
            return None
        except HfHubHTTPError:
            return None
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # an answer huggingface_hub could not parse: read the shards directly
        folder = index_path.rsplit("/", 1)[0] + "/" if "/" in index_path else ""
        headers: dict[str, SafetensorsHeader] = {}
        for shard, file_meta in meta.files_metadata.items():
            path = shard if shard.startswith(folder) else folder + shard
            raw: dict[str, Any] = {
                name: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": list(t.data_offsets)}
                for name, t in file_meta.tensors.items()
            }
            if file_meta.metadata:
                raw["__metadata__"] = file_meta.metadata
            size = sizes.get(path)
            header = validate_header(raw, filename=path, length=0)
            if size is not None:
                length = size - 8 - header.data_bytes
                if length < 2:
                    raise HeaderError(f"{path}: tensor data runs past the end of the {size:,}-byte file")
                header = SafetensorsHeader(path, length, header.tensors, header.metadata, header.data_bytes)
            headers[path] = header
        return headers
