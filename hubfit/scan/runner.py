"""``hubfit scan AUTHOR``: every model of an author, analysed concurrently, cached in SQLite, resumable.

How a scan runs:

1. **List** the author's models with one paginated ``list_models(author=..., expand=[sha, siblings, gated,
   private, lastModified])`` (retried by huggingface_hub's ``http_backoff``). The listing streams into the
   store (``scan_items``), so memory does not grow with the organization.
2. **Analyse** each listed repo that has no result for its (repo_id, sha, settings) yet, with the core
   analyzer at the listed sha (so no revision is resolved again) and with the listed file names (so no
   ``model_info`` per repo: see :class:`_ListedClient`). A pool of ``concurrency`` threads shares
   huggingface_hub's HTTP client (one connection pool); at most ``2 x concurrency`` repos are in flight.
3. **Record** each result as it arrives, one committed row per repo: a report dict, or the error with a flag
   saying whether the next run should try again. A failure never stops the others; an interrupted or killed
   scan resumes on the next run by skipping every recorded repo.

``settings`` (hubfit's version, the report's schema version, the workload and the hardware query; see
:func:`hubfit.scan.options.settings_fingerprint`) is part of the cache key: changing the
context length or the GPUs re-reads, an unchanged re-scan costs the listing pages only.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from hubfit.errors import ConfigError, HeaderError, HubfitError, NoWeightsError, UsageError
from hubfit.scan.options import (
    DEFAULT_CONCURRENCY,
    ScanOptions,
    ScanQuery,
    build_report,
    resolved,
    settings_fingerprint,
)
from hubfit.scan.publish import DEFAULT_PAUSE_S, PublishOutcome, publish_scan
from hubfit.scan.store import ErrorInfo, ListedRepo, ScanRow, ScanStore

if TYPE_CHECKING:
    from huggingface_hub.hf_api import ExpandModelProperty_T

    from hubfit.source.hub import HubClient, RepoSnapshot

__all__ = [
    "DEFAULT_CONCURRENCY",
    "LISTING_EXPAND",
    "ScanOptions",
    "ScanQuery",
    "ScanResult",
    "build_report",
    "default_db_path",
    "list_repos",
    "run_scan",
    "scan_command",
    "settings_fingerprint",
    "write_failures",
    "write_outputs",
]

#: What the listing asks for: the commit (cache key and pinned revision), the file names (weights layout
#: without a model_info call), gating and privacy, and the last change for the table.
LISTING_EXPAND: tuple[ExpandModelProperty_T, ...] = ("sha", "siblings", "gated", "private", "lastModified")

#: Failures the same commit would reproduce: recorded as the result for that sha, not retried next run.
PERMANENT_ERRORS: tuple[type[HubfitError], ...] = (NoWeightsError, HeaderError, ConfigError)


@dataclass
class ScanResult:
    """What a scan did (the figures printed at the end and used by the benchmark)."""

    scan_id: int
    author: str
    listed: int = 0
    skipped_gated: int = 0
    cached: int = 0
    analysed: int = 0
    failed: int = 0
    interrupted: bool = False
    listing_s: float = 0.0
    wall_s: float = 0.0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        """One line for stderr: what was listed, reused, analysed and failed, and how long it took."""
        parts = [f"{self.listed} listed"]
        if self.skipped_gated:
            parts.append(f"{self.skipped_gated} gated skipped")
        parts += [f"{self.cached} cached", f"{self.analysed} analysed", f"{self.failed} failed"]
        still = self.counts.get("pending", 0)
        if still:
            parts.append(f"{still} not analysed yet")
        state = "interrupted" if self.interrupted else "done"
        return f"scan {self.author}: {state} in {self.wall_s:.1f} s: " + ", ".join(parts)


def default_db_path() -> Path:
    """``$HF_HOME/hubfit/scan.sqlite`` (next to huggingface_hub's own cache)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hubfit" / "scan.sqlite"


def list_repos(
    query: ScanQuery, token: str | bool | None = None, client: HubClient | None = None
) -> Iterator[ListedRepo]:
    """The author's models as :class:`ListedRepo`, streamed page by page from the Hub listing.

    The listing goes through huggingface_hub's paginator, which retries 429 (honouring ``Retry-After``), 5xx
    and dropped connections itself; what still fails becomes :class:`~hubfit.errors.NetworkError`.
    """
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import httpx

    from hubfit.errors import NetworkError, RateLimitedError
    from hubfit.source.hub import HubClient

    client = client or HubClient(token=token)
    listing = client.api.list_models(
        author=query.author,
        search=query.search,
        filter=list(query.filters) or None,
        limit=query.limit,
        expand=list(LISTING_EXPAND),
    )
    what = f"list the models of {query.author}"
    try:
        for info in listing:
            if not info.sha:
                continue
            gated = info.gated if info.gated not in (None, False, "false") else None
            yield ListedRepo(
                repo_id=info.id,
                sha=info.sha,
                gated=None if gated is None else str(gated),
                private=bool(info.private),
                last_modified=info.last_modified.isoformat() if info.last_modified else None,
                siblings=None if info.siblings is None else tuple(s.rfilename for s in info.siblings),
            )
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 429:
            raise RateLimitedError(f"cannot {what}: the Hub kept answering 429 Too Many Requests") from None
        raise NetworkError(f"cannot {what}: the Hub answered HTTP {status}") from None
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise NetworkError(f"cannot {what}: {type(exc).__name__} after retries ({client.endpoint})") from None


class Progress:
    """Progress on stderr while a scan analyses repos: done / total, errors and the time left.

    On a terminal, a bar redrawn in place with a plain ``\\r`` (at most every ``redraw_s`` seconds, and at the
    end)::

        scan acme: [########------------] 100/250 40%  errors 1  ETA 15s

    Anywhere else (a log, a CI job), one line every ``every`` repos and a last line with the elapsed time::

        scan acme: 100/250 (40%)  errors 1  ETA 15s
        scan acme: 200/250 (80%)  errors 1  ETA 5s
        scan acme: 250/250 (100%)  errors 1  done in 25s

    Args:
        out: the stream (stderr); ``None`` draws nothing.
        label: what leads each line (``scan AUTHOR``).
        total: the repos to analyse.
        tty: whether ``out`` is a terminal; ``None`` asks ``out.isatty()``.
        every: repos between two lines off a terminal.
        redraw_s: seconds between two redraws of the bar.
        clock: the monotonic clock (tests pass their own).
    """

    BAR_WIDTH = 20

    def __init__(
        self,
        out: IO[str] | None,
        label: str,
        total: int,
        *,
        tty: bool | None = None,
        every: int = 100,
        redraw_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out, self.label, self.total = out, label, total
        if tty is None:
            tty = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self.tty, self.every, self.redraw_s, self.clock = tty, max(1, every), redraw_s, clock
        self.start = clock()
        self.last = self.start
        self.done = self.errors = 0
        self._width = 0  # characters of the bar last drawn (a shorter one is padded over it)
        if self.tty and total > 0:
            self._draw(self.start)

    def update(self, ok: bool) -> None:
        """One repo finished (``ok``: analysed; otherwise failed)."""
        self.done += 1
        self.errors += 0 if ok else 1
        finished = self.done == self.total
        if self.tty:
            now = self.clock()
            if finished or now - self.last >= self.redraw_s:
                self.last = now
                self._draw(now)
        elif finished or self.done % self.every == 0:
            self._draw(self.clock())

    def line(self, now: float) -> str:
        """What the progress says at ``now`` (the bar on a terminal, a log line elsewhere), without ``\\r``."""
        elapsed = max(now - self.start, 0.0)
        if self.done >= self.total:
            tail = f"done in {_duration(elapsed)}"
        elif self.done == 0 or elapsed <= 0:
            tail = "ETA --"
        else:
            tail = f"ETA {_duration((self.total - self.done) * elapsed / self.done)}"
        share = self.done / self.total if self.total else 1.0
        if self.tty:
            filled = int(self.BAR_WIDTH * share)
            bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
            return f"{self.label}: [{bar}] {self.done}/{self.total} {100 * share:.0f}%  errors {self.errors}  {tail}"
        return f"{self.label}: {self.done}/{self.total} ({100 * share:.0f}%)  errors {self.errors}  {tail}"

    def _draw(self, now: float) -> None:
        if self.out is None:
            return
        text = self.line(now)
        if self.tty:
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.out.write("\r" + text + pad + ("\n" if self.done >= self.total else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        """Draw the bar's last state and end its line when the scan stops before the last repo (Ctrl-C)."""
        if self.out is not None and self.tty and self.total > 0 and self.done < self.total:
            self._draw(self.clock())
            self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _ListedClient:
    """A :class:`hubfit.hub.HubClient` for one listed repo whose ``snapshot()`` answers from the listing.

    The listing already gave the commit and every file name, so the analyzer needs no ``model_info`` call
    per repo (an API-bucket request); every other call goes to the shared client. File sizes are unknown
    from a listing (``None``), which the analyzer accepts.
    """

    def __init__(self, client: HubClient, repo: ListedRepo) -> None:
        self._client = client
        self._repo = repo

    def snapshot(self, repo_id: str, revision: str | None = None) -> RepoSnapshot:
        from hubfit.source.hub import RepoFile, RepoSnapshot

        assert self._repo.siblings is not None
        return RepoSnapshot(
            repo_id=repo_id,
            revision=revision or self._repo.sha,
            sha=self._repo.sha,
            files=tuple(RepoFile(path) for path in self._repo.siblings),
            gated=self._repo.gated or False,
            private=self._repo.private,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scoped(self) -> HubClient:
        """This object where a :class:`HubClient` is expected (it answers every call a HubClient does)."""
        return cast("HubClient", self)


#: What one analysis hands back to the coordinator: (report document, error, retry, seconds).
Outcome = tuple[dict[str, Any] | None, ErrorInfo | None, bool, float]


def _analyze_one(repo: ListedRepo, options: ScanOptions, client: HubClient) -> Outcome:
    """Analyse one repo at its listed sha; never raises. Returns (report, error, retry, seconds)."""
    start = time.perf_counter()
    scoped = client if repo.siblings is None else _ListedClient(client, repo).scoped()
    try:
        report = build_report(
            repo.repo_id, repo.sha, client=scoped, workload=options.workload, hardware=options.hardware
        ).to_dict()
    except HubfitError as exc:
        error: ErrorInfo = {"type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        return None, error, not isinstance(exc, PERMANENT_ERRORS), time.perf_counter() - start
    except Exception as exc:  # a bug on one repo must not stop the scan: record it, retry next run
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return (
            None,
            {"type": "InternalError", "message": message, "exit_code": 1},
            True,
            time.perf_counter() - start,
        )
    return report, None, False, time.perf_counter() - start


def run_scan(
    store: ScanStore,
    query: ScanQuery,
    options: ScanOptions | None = None,
    *,
    progress: IO[str] | None = None,
) -> ScanResult:
    """List, analyse and record; returns what happened. Results are in ``store`` under ``result.scan_id``.

    ``progress`` (e.g. ``sys.stderr``) receives the listing summary and the progress (:class:`Progress`: a bar
    redrawn with ``\\r`` when the stream is a terminal, a line per 100 repos otherwise); ``None`` is silent.

    Ctrl-C stops the scan cleanly: finished results are kept, in-flight repos are dropped and the scan is
    marked interrupted (``result.interrupted``); running the same scan again resumes it.
    """
    from hubfit._version import __version__
    from hubfit.source.hub import HubClient

    options = resolved(options or ScanOptions())
    started = time.monotonic()
    settings = settings_fingerprint(options.workload, options.hardware)
    query_dict = dataclasses.asdict(query)
    scan_id = store.begin_scan(query.author, query_dict, settings)
    client = HubClient(token=options.token)
    result = ScanResult(scan_id=scan_id, author=query.author)

    skipped = 0

    def listed() -> Iterator[ListedRepo]:
        nonlocal skipped
        for repo in list_repos(query, options.token, client):
            if query.gated == "skip" and repo.gated:
                skipped += 1
                continue
            yield repo

    if progress is not None:
        progress.write(f"scan {query.author}: listing models ...\n")
        progress.flush()
    result.listed = store.add_items(scan_id, listed())
    result.skipped_gated = skipped
    store.finish_listing(scan_id, skipped)
    result.listing_s = time.monotonic() - started

    todo = store.count_pending(scan_id, refresh=options.refresh, retry_all_errors=options.retry_errors)
    result.cached = result.listed - todo
    if progress is not None:
        progress.write(
            f"scan {query.author}: {result.listed} models listed in {result.listing_s:.1f} s"
            + (f" ({skipped} gated skipped)" if skipped else "")
            + f"; {result.cached} cached, {todo} to analyse with {options.concurrency} threads\n"
        )
        progress.flush()
    bar = Progress(progress, f"scan {query.author}", todo)
    work = store.pending(scan_id, refresh=options.refresh, retry_all_errors=options.retry_errors)
    window = 2 * options.concurrency
    in_flight: dict[Future[Outcome], ListedRepo] = {}
    pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="hubfit-scan")
    try:
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < window:
                repo = next(work, None)
                if repo is None:
                    exhausted = True
                    break
                in_flight[pool.submit(_analyze_one, repo, options, client)] = repo
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                repo = in_flight.pop(future)
                report, error, retry, seconds = future.result()
                if report is not None:
                    store.record_ok(scan_id, repo, settings, report, __version__, seconds)
                    result.analysed += 1
                else:
                    assert error is not None
                    store.record_error(
                        scan_id, repo, settings, error, retry=retry, version=__version__, seconds=seconds
                    )
                    result.failed += 1
                bar.update(report is not None)
    except KeyboardInterrupt:
        result.interrupted = True
        pool.shutdown(wait=False, cancel_futures=True)
        store.finish_scan(scan_id, "interrupted")
        bar.close()
        result.counts = store.counts(scan_id)
        result.wall_s = time.monotonic() - started
        return result
    pool.shutdown(wait=True)
    bar.close()
    store.prune(scan_id)
    store.finish_scan(scan_id, "done")
    result.counts = store.counts(scan_id)
    result.wall_s = time.monotonic() - started
    return result


def write_outputs(
    store: ScanStore,
    scan_id: int,
    *,
    fmt: str = "table",
    output: str | Path | None = None,
    html: str | Path | None = None,
    stdout: IO[str] | None = None,
) -> None:
    """Write a recorded scan: ``fmt`` to ``output`` (or ``stdout``), and the HTML page to ``html``.

    Files are written to a temporary name and renamed, so a failed write never leaves half a file.
    """
    from huggingface_hub import constants

    from hubfit._version import __version__
    from hubfit.scan.html import PageInfo, write_html
    from hubfit.scan.table import FORMATS, write

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")

    def rows() -> Iterator[ScanRow]:
        return store.rows(scan_id)

    if output is None:
        write(fmt, rows, stdout or sys.stdout)
    else:
        _atomic_write(Path(output), lambda fh: write(fmt, rows, fh))
    if html is not None:
        info = store.scan_info(scan_id)
        page = PageInfo(
            title=f"hubfit scan: {info['author']}",
            author=info["author"],
            generated_at=info["finished_at"] or time.time(),
            hubfit_version=__version__,
            settings=_describe_query(info["query"]),
            counts=store.counts(scan_id),
            endpoint=constants.ENDPOINT,
        )
        _atomic_write(Path(html), lambda fh: write_html(rows, page, fh))


def _describe_query(query: dict[str, Any]) -> str:
    parts: list[str] = []
    if query.get("search"):
        parts.append(f"search {query['search']!r}")
    if query.get("filters"):
        parts.append("tags " + ", ".join(query["filters"]))
    if query.get("limit"):
        parts.append(f"first {query['limit']}")
    if query.get("gated") == "skip":
        parts.append("gated repos skipped")
    return "; ".join(parts)


def _atomic_write(path: Path, writer: Callable[[IO[str]], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer(fh)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_failures(store: ScanStore, scan_id: int, out: IO[str]) -> int:
    """List the repos of a scan that failed (``repo: Type: message``); returns how many."""
    n = 0
    for row in store.rows(scan_id):
        if row.status == "error" and row.error:
            out.write(f"{row.repo_id}: {row.error['type']}: {row.error['message']}\n")
            n += 1
    return n


def scan_command(
    query: ScanQuery,
    options: ScanOptions,
    *,
    db: str | Path | None = None,
    fmt: str = "table",
    output: str | Path | None = None,
    html: str | Path | None = None,
    quiet: bool = False,
    apply: str | None = None,
    yes: bool = False,
    direct: bool = False,
    pause_s: float | None = None,
    max_writes: int | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """What ``hubfit scan`` does: scan, write the outputs, then publish when asked; returns the exit code.

    Progress and the closing summary line go to ``stderr``; the table (or ``fmt``) to ``stdout``, or to
    ``output`` with the failed repos listed on ``stdout``. An interrupted scan writes nothing and returns 130.
    ``apply`` (``"card"`` or ``"comment"``) then runs :func:`hubfit.scan.publish.publish_scan` (a dry run
    unless ``yes``); a repo whose write failed makes the exit code 9, a run stopped by rate limiting 8.
    """
    from hubfit.errors import PublishError, RateLimitedError
    from hubfit.scan.table import FORMATS

    if apply is not None and apply not in ("card", "comment"):
        raise UsageError(f"--apply must be card or comment, not {apply!r}")
    if (yes or direct) and apply is None:
        raise UsageError("--yes and --commit go with --apply card|comment")
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    with ScanStore(db or default_db_path()) as store:
        result = run_scan(store, query, options, progress=None if quiet else stderr)
        stderr.write(result.line() + "\n")
        if result.interrupted:
            stderr.write(
                f"hubfit: scan interrupted; results so far are in {store.path}; run the same command to resume\n"
            )
            return 130
        write_outputs(store, result.scan_id, fmt=fmt, output=output, html=html, stdout=stdout)
        if output is not None:
            write_failures(store, result.scan_id, stdout)
        if apply is None:
            return 0
        outcomes: list[PublishOutcome] = publish_scan(
            store,
            result.scan_id,
            apply,
            options=options,
            yes=yes,
            direct=direct,
            pause_s=DEFAULT_PAUSE_S if pause_s is None else pause_s,
            max_writes=max_writes,
            out=stdout,
            err=stderr,
        )
    codes = [o.exit_code or PublishError.exit_code for o in outcomes if o.action == "failed"]
    if RateLimitedError.exit_code in codes:
        return RateLimitedError.exit_code
    return codes[0] if codes else 0
