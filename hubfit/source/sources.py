"""Where a model's files come from: a Hub repository at one commit, or a local directory.

Both sources answer the same three questions (which files exist, what a JSON file says, what the safetensors
headers of some files are), so layout detection and counting never know where the bytes came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from hubfit.constants import FIRST_READ_BYTES, MAX_JSON_BYTES, MAX_WORKERS
from hubfit.errors import HeaderError, LfsPointerError, NoWeightsError, RepoNotFoundError, UsageError
from hubfit.formats.safetensors import HeaderBytes, SafetensorsHeader, read_local_header

if TYPE_CHECKING:  # pragma: no cover
    from hubfit.formats.gguf import GGUFHeader
    from hubfit.source.lfs import LfsHeaderReader

__all__ = ["HubSource", "LocalSource", "Source", "open_source"]

Progress = Callable[[int, int], None]
_T = TypeVar("_T")


class Source(Protocol):
    """A model's files."""

    repo_id: str
    revision: str
    sha: str | None
    kind: str  # "hub" | "local"

    def files(self) -> dict[str, int | None]:
        """Every file path (relative, ``/``-separated) with its size when known."""
        ...

    def read_json(self, path: str) -> Any:
        """Parse a JSON file of the model (``None`` when it does not exist)."""
        ...

    def read_headers(
        self, paths: Sequence[str], *, index_path: str | None = None
    ) -> dict[str, SafetensorsHeader]:
        """Validated safetensors headers of ``paths`` (shards of ``index_path`` when given)."""
        ...

    def read_gguf_headers(self, paths: Sequence[str]) -> dict[str, GGUFHeader]:
        """Validated GGUF headers of ``paths`` (header bytes only)."""
        ...


def _header_estimates(weight_map: dict[str, Any], folder: str = "") -> dict[str, int]:
    """Bytes of each shard's prefix + header, estimated from its tensor names in the index.

    A header entry is the quoted name plus about 70-80 bytes of dtype, shape and offsets
    (``:{"dtype":"BF16","shape":[16384,53248],"data_offsets":[0,1744830464]},``).
    """
    sizes: dict[str, int] = {}
    get = sizes.get
    for name, shard in weight_map.items():
        if type(shard) is str:  # an index of another shape only loses the estimate
            sizes[shard] = get(shard, 8 + 128) + len(name) + 80
    return {folder + shard: size for shard, size in sizes.items()}


class HubSource:
    """A Hub repository resolved to one commit; every request goes through :class:`hubfit.source.hub.HubClient`."""

    kind = "hub"

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        *,
        client: Any = None,
        progress: Progress | None = None,
    ) -> None:
        from hubfit.source.hub import HubClient

        self.client = client or HubClient()
        self.repo_id = repo_id
        self.requested_revision = revision
        self.snapshot = self.client.snapshot(repo_id, revision)
        self.revision = self.snapshot.revision
        self.sha = self.snapshot.sha
        self._files = {f.path: f.size for f in self.snapshot.files}
        self._json: dict[str, Any] = {}
        self._progress = progress

    def files(self) -> dict[str, int | None]:
        return dict(self._files)

    def read_json(self, path: str) -> Any:
        if path not in self._files:
            return None
        if path not in self._json:
            self._json[path] = self.client.read_json(self.repo_id, path, self.sha)
        return self._json[path]

    def prefetch(self, paths: Sequence[str]) -> None:
        """Download JSON files concurrently (each costs round trips; in sequence they add up)."""
        wanted = [p for p in dict.fromkeys(paths) if p in self._files and p not in self._json]
        if len(wanted) > 1:
            with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
                for path, value in zip(wanted, pool.map(self.read_json, wanted), strict=True):
                    self._json[path] = value

    def uses_sharded_endpoint(self, paths: Sequence[str], index_path: str | None) -> bool:
        """Whether :meth:`read_headers` will ask the Hub for every shard header at once (``main`` only)."""
        return bool(index_path) and self.requested_revision in (None, "main") and len(paths) > 1

    def read_headers(
        self, paths: Sequence[str], *, index_path: str | None = None
    ) -> dict[str, SafetensorsHeader]:
        paths = list(paths)
        if index_path and self.uses_sharded_endpoint(paths, index_path):
            headers = self.client.sharded_headers(self.repo_id, index_path, self._files)
            if headers is not None and set(headers) >= set(paths):
                return {p: headers[p] for p in paths}

        # The index names each shard's tensors: enough to size one ranged read per shard.
        index = self.read_json(index_path) if index_path and len(paths) > 1 else None
        estimates: dict[str, int] = {}
        if isinstance(index, dict):
            folder = index_path.rsplit("/", 1)[0] + "/" if index_path and "/" in index_path else ""
            estimates = _header_estimates(index.get("weight_map") or {}, folder)

        def fetch(path: str) -> HeaderBytes:
            return self.client.fetch_header(
                self.repo_id,
                path,
                self.sha,
                first_read=estimates.get(path, FIRST_READ_BYTES),
                file_size=self._files.get(path),
            )

        # The threads only wait on the network; the headers are parsed here, in one thread, once all are in.
        fetched = _map(fetch, paths, self._progress)
        return {path: raw.parse() for path, raw in fetched.items()}

    def read_gguf_headers(self, paths: Sequence[str]) -> dict[str, GGUFHeader]:
        """Validated GGUF headers of ``paths`` (ranged reads, concurrently)."""

        def read(path: str) -> GGUFHeader:
            size = self._files.get(path)
            if size is None:
                raise HeaderError(f"{path}: the Hub gave no size for it")
            return self.client.read_gguf_header(self.repo_id, path, self.sha, file_size=size)

        return _map(read, list(paths), self._progress)


class LocalSource:
    """A model directory on disk; headers are read from the local files (only their first bytes).

    Each ``.safetensors`` file is read by hubfit's header reader, then opened with ``safetensors.safe_open``,
    the loaders' own validator, so that a file hubfit sizes is one that loads (a refusal is a
    :class:`~hubfit.errors.HeaderError`). Measured on DeepSeek-V3's 92k-tensor layout, the check about doubles
    the header read (163 shards: 91 ms, then 177 ms with it; benchmarks/results/safe_open.md); see
    :func:`hubfit.formats.safetensors.read_local_header`.

    ``lfs`` (a :class:`hubfit.source.lfs.LfsHeaderReader`) reads the headers of Git LFS pointer files without the
    weights; without it a pointer file raises :class:`~hubfit.errors.LfsPointerError`.
    """

    kind = "local"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        lfs: LfsHeaderReader | None = None,
    ) -> None:
        self.lfs = lfs
        self.root = Path(path).resolve()
        if not self.root.is_dir():
            raise UsageError(f"{path} is not a directory")
        self.repo_id = self.root.name
        self.revision = "local"
        self.sha: str | None = None
        self._progress = progress
        self._files: dict[str, int | None] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                full = Path(dirpath, filename)
                rel = full.relative_to(self.root).as_posix()
                self._files[rel] = full.stat().st_size

    def files(self) -> dict[str, int | None]:
        return dict(self._files)

    def read_json(self, path: str) -> Any:
        if path not in self._files:
            return None
        full = self.root / path
        if full.stat().st_size > MAX_JSON_BYTES:
            raise HeaderError(f"{path} is larger than {MAX_JSON_BYTES:,} bytes")
        try:
            return json.loads(full.read_bytes())
        except (ValueError, RecursionError):  # bad JSON, not UTF-8, too deep, an integer of 4,300+ digits
            raise HeaderError(f"{path} is not valid JSON") from None

    def read_headers(
        self, paths: Sequence[str], *, index_path: str | None = None
    ) -> dict[str, SafetensorsHeader]:
        return _map(self._read_header, list(paths), self._progress)

    def read_gguf_headers(self, paths: Sequence[str]) -> dict[str, GGUFHeader]:
        """Validated GGUF headers of local files (only their header bytes are read)."""
        from hubfit.formats.gguf import read_local_header as read_gguf_local

        return _map(lambda p: read_gguf_local(str(self.root / p), filename=p), list(paths), self._progress)

    def _read_header(self, path: str) -> SafetensorsHeader:
        try:
            return read_local_header(self.root / path, filename=path)
        except LfsPointerError:
            if self.lfs is None:
                raise
            return self.lfs.read_header(self.root / path, path)


def _map(read: Callable[[str], _T], paths: list[str], progress: Progress | None) -> dict[str, _T]:
    """Read headers (safetensors or GGUF) concurrently, keeping the input order; the first error wins."""
    if not paths:
        raise NoWeightsError("no safetensors files to read")
    if len(paths) == 1:
        header = read(paths[0])
        if progress:
            progress(1, 1)
        return {paths[0]: header}
    out: dict[str, _T] = {}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(paths))) as pool:
        for done, (path, header) in enumerate(zip(paths, pool.map(read, paths), strict=True), start=1):
            out[path] = header
            if progress:
                progress(done, len(paths))
    return out


def open_source(
    model: str,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    progress: Progress | None = None,
    client: Any = None,
) -> Source:
    """A :class:`LocalSource` when ``model`` is an existing directory, else a :class:`HubSource`."""
    if os.path.isdir(model):
        if revision:
            raise UsageError("--revision applies to Hub repositories, not local directories")
        return LocalSource(model, progress=progress)
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1):
        raise UsageError(f"{model} is neither a directory nor a Hub repo id (owner/name)")
    if client is None:
        from hubfit.source.hub import HubClient

        client = HubClient(token=token)
    try:
        return HubSource(model, revision, client=client, progress=progress)
    except RepoNotFoundError as exc:
        if "/" in model:
            raise
        # A name without a slash may be a legacy Hub id (gpt2) or a mistyped directory: say both were tried.
        raise type(exc)(f"{model} is neither a local directory nor a repository on the Hub ({exc})") from None
