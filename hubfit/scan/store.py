"""The organization scan's persistent cache: one SQLite file, results keyed by (repo_id, sha, settings).

A scan lists an author's models (``scan_items``: what the listing said, one row per repo and scan) and
analyses each one whose result is not already in ``results``. ``settings`` is a fingerprint of everything
besides the commit that changes a result (hubfit's version, the workload, the hardware query), so a repo is
read again only when its sha changed, when the settings changed, or when its last attempt failed in a way
worth retrying. Every result is committed as soon as it arrives: a killed scan loses at most the repos that
were in flight, and the next run skips everything already recorded.

The store is used from one thread (the scan's coordinator); analysis threads hand their results back to it.
Readers iterate with SQLite cursors, so nothing here holds a whole organization in memory.

A cache that cannot be used is one clear :class:`~hubfit.errors.CacheError` (exit code 13) naming the file
and the cause, from whichever call met it: locked by another process past ``HUBFIT_SCAN_DB_TIMEOUT_S``,
read-only, a full disk, damaged pages. Results committed before the failure stay in the file (each is its own
transaction); the same command resumes once the cause is fixed. A file that is not a hubfit scan database at
all (or one of a newer schema) is a usage error, :class:`StoreError` (exit code 2): a wrong ``--db``.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar, cast

from hubfit import constants
from hubfit.errors import CacheError, UsageError

if TYPE_CHECKING:
    from hubfit.report import Report

__all__ = ["ErrorInfo", "ListedRepo", "ScanInfo", "ScanRow", "ScanStore", "StoreError"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    repo_id TEXT NOT NULL,
    sha TEXT NOT NULL,
    settings TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    report BLOB,
    error_type TEXT,
    error TEXT,
    exit_code INTEGER,
    retry INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    last_scan INTEGER NOT NULL,
    hubfit_version TEXT NOT NULL,
    analysed_at REAL NOT NULL,
    seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (repo_id, sha, settings)
);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author TEXT NOT NULL,
    query TEXT NOT NULL,
    settings TEXT NOT NULL,
    started_at REAL NOT NULL,
    listed_at REAL,
    finished_at REAL,
    listed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'listing'
);
CREATE TABLE IF NOT EXISTS scan_items (
    scan_id INTEGER NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    repo_id TEXT NOT NULL,
    sha TEXT NOT NULL,
    gated TEXT,
    private INTEGER,
    last_modified TEXT,
    siblings TEXT,
    PRIMARY KEY (scan_id, seq),
    UNIQUE (scan_id, repo_id)
);
"""


class StoreError(UsageError):
    """The cache file cannot be used (not a hubfit scan database, or a newer schema): a bad ``--db``."""


#: SQLite's primary result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``) and what each means for a scan.
_CAUSES = {
    5: "it is locked by another process (another scan on the same file?); wait for it, or pass another --db",
    6: "it is locked by another process (another scan on the same file?); wait for it, or pass another --db",
    8: "it is read-only; make it writable, or pass another --db",
    10: "it cannot be read or written (an I/O error)",
    11: "it is damaged; move it away (the next scan starts afresh), or pass another --db",
    13: "the disk is full; free space",
    14: "it cannot be opened",
    26: "it is damaged; move it away (the next scan starts afresh), or pass another --db",
}


def _cache_error(path: str, exc: sqlite3.Error) -> CacheError:
    """The one-line error for a SQLite failure on the cache ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    cause = _CAUSES.get(code & 0xFF, "") if isinstance(code, int) else ""
    if not cause:
        text = str(exc).lower()
        cause = next((c for key, c in _BY_TEXT if key in text), "it cannot be used")
    return CacheError(
        f"scan cache {path}: {cause} ({exc}); results recorded before this are kept, and the same command "
        "resumes the scan"
    )


_BY_TEXT = (
    ("locked", _CAUSES[5]),
    ("readonly", _CAUSES[8]),
    ("read-only", _CAUSES[8]),
    ("full", _CAUSES[13]),
    ("malformed", _CAUSES[11]),
    ("not a database", _CAUSES[26]),
)

P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a SQLite failure inside ``method`` (or while iterating the generator it returns) into a
    :class:`~hubfit.errors.CacheError` naming the store's file."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(*args: P.args, **kwargs: P.kwargs) -> Iterator[Any]:
            store = cast("ScanStore", args[0])
            try:
                yield from cast("Iterator[Any]", method(*args, **kwargs))
            except sqlite3.Error as exc:
                raise _cache_error(store.path, exc) from exc

        return cast("Callable[P, R]", generator)

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        store = cast("ScanStore", args[0])
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _cache_error(store.path, exc) from exc

    return call


class ErrorInfo(TypedDict):
    """A failed analysis as stored: the exception's class name, its one-line message and its exit code."""

    type: str
    message: str
    exit_code: int | None


class ScanInfo(TypedDict):
    """One scan as recorded: its query (``ScanQuery`` as a dict), settings fingerprint, times, counts, state.

    ``state`` is ``listing``, ``running``, ``done`` or ``interrupted``; times are Unix seconds.
    """

    id: int
    author: str
    query: dict[str, Any]
    settings: str
    started_at: float
    listed_at: float | None
    finished_at: float | None
    listed: int
    skipped: int
    state: str


@dataclass(frozen=True)
class ListedRepo:
    """One model as the author listing described it.

    Attributes:
        repo_id: ``owner/name``.
        sha: the commit the listing reported; the analysis reads exactly this commit.
        gated: ``None`` for an open repo, else the gating mode (``"auto"``/``"manual"``).
        private: whether the repo is private.
        last_modified: ISO timestamp from the listing, or ``None``.
        siblings: every file path at ``sha`` (from ``expand=siblings``), or ``None`` when the listing
            did not say.
    """

    repo_id: str
    sha: str
    gated: str | None = None
    private: bool = False
    last_modified: str | None = None
    siblings: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ScanRow:
    """One repo of a scan with its cached result.

    ``status`` is ``"ok"`` (``report`` holds ``Report.to_dict()``), ``"error"`` (``error`` holds
    ``{"type", "message", "exit_code"}``) or ``"pending"`` (listed but never analysed with these settings).
    """

    seq: int
    repo_id: str
    sha: str
    gated: str | None
    private: bool
    last_modified: str | None
    status: str
    report: dict[str, Any] | None
    error: ErrorInfo | None

    def listed(self) -> ListedRepo:
        """The repo as its scan listed it (without the file names, which the store keeps for pending repos)."""
        return ListedRepo(self.repo_id, self.sha, self.gated, self.private, self.last_modified, None)

    def to_report(self) -> Report:
        """The stored ``Report.to_dict()`` read back as the typed :class:`~hubfit.report.Report` (no request).

        Raises:
            ValueError: the row holds no report (``status`` is not ``"ok"``).
            hubfit.errors.HeaderError: the document is one this hubfit cannot read (written with another
                ``schema_version``): the repo has to be analysed again.
        """
        from hubfit.report import Report

        if self.report is None:
            raise ValueError(f"{self.repo_id}: no stored report (status {self.status})")
        return Report.from_dict(self.report)

    def to_json(self) -> dict[str, Any]:
        """The row as ``hubfit REPO --json`` prints it, plus ``error`` (``None`` for an analysed repo)."""
        if self.report is not None:
            return {**self.report, "error": None}
        error: ErrorInfo = self.error or {
            "type": "Pending",
            "message": "not analysed yet (the scan was interrupted; run it again to resume)",
            "exit_code": None,
        }
        return {
            "schema": "hubfit/1",
            "repo_id": self.repo_id,
            "revision": self.sha,
            "sha": self.sha,
            "source": "hub",
            "error": error,
        }


class ScanStore:
    """The SQLite cache behind ``hubfit scan``.

    Args:
        path: the database file; its parent directory is created. ``":memory:"`` works for throwaway use.
        timeout: seconds to wait for another process's write lock (default ``HUBFIT_SCAN_DB_TIMEOUT_S``, 30).

    Raises:
        StoreError: the file is not a hubfit scan database, or one of a newer schema.
        CacheError: the file cannot be used (locked, read-only, damaged, a full disk, no permission).
    """

    def __init__(self, path: str | Path, *, timeout: float | None = None) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"scan cache {self.path}: its folder cannot be created ({exc.strerror})"
            ) from exc
        wait = constants.SCAN_DB_TIMEOUT_S if timeout is None else timeout
        try:
            self._db = sqlite3.connect(self.path, timeout=wait, isolation_level=None)
        except sqlite3.Error as exc:
            raise _cache_error(self.path, exc) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.Error as exc:
            self._db.close()
            if getattr(exc, "sqlite_errorcode", None) == 26 or "not a database" in str(exc):
                raise StoreError(f"{self.path} is not a usable hubfit scan database ({exc})") from exc
            raise _cache_error(self.path, exc) from exc
        if row is not None and (not str(row[0]).isdigit() or int(row[0]) > SCHEMA_VERSION):
            self._db.close()
            raise StoreError(
                f"{self.path} was written by a newer hubfit (schema {row[0]!s:.20} > {SCHEMA_VERSION}); "
                "upgrade hubfit or pass another --db"
            )

    def close(self) -> None:
        """Close the connection (results are already committed)."""
        try:
            self._db.close()
        except sqlite3.Error as exc:  # pragma: no cover - closing a connection SQLite already gave up on
            raise _cache_error(self.path, exc) from exc

    def __enter__(self) -> ScanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scans -----------------------------------------------------------------------------------------

    @_guarded
    def begin_scan(self, author: str, query: dict[str, Any], settings: str) -> int:
        """Open a new scan and return its id; its listing is added with :meth:`add_items`."""
        cur = self._db.execute(
            "INSERT INTO scans (author, query, settings, started_at) VALUES (?, ?, ?, ?)",
            (author, json.dumps(query, sort_keys=True), settings, time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    @_guarded
    def add_items(self, scan_id: int, repos: Iterable[ListedRepo]) -> int:
        """Record the listing of a scan, streaming; a repo listed twice (pages shifting) is kept once.

        Returns the number of distinct repos recorded.
        """
        (seq,) = self._db.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM scan_items WHERE scan_id = ?", (scan_id,)
        ).fetchone()
        self._db.execute("BEGIN")
        try:
            for repo in repos:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO scan_items (scan_id, seq, repo_id, sha, gated, private, last_modified,"
                    " siblings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scan_id,
                        seq,
                        repo.repo_id,
                        repo.sha,
                        repo.gated,
                        int(repo.private),
                        repo.last_modified,
                        None if repo.siblings is None else json.dumps(list(repo.siblings)),
                    ),
                )
                seq += cur.rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM scan_items WHERE scan_id = ?", (scan_id,)
        ).fetchone()
        return int(count)

    @_guarded
    def finish_listing(self, scan_id: int, skipped: int) -> None:
        """Mark the listing complete; ``skipped`` counts repos left out (e.g. gated with ``--gated skip``)."""
        (listed,) = self._db.execute(
            "SELECT COUNT(*) FROM scan_items WHERE scan_id = ?", (scan_id,)
        ).fetchone()
        self._db.execute(
            "UPDATE scans SET listed = ?, skipped = ?, listed_at = ?, state = 'running' WHERE id = ?",
            (listed, skipped, time.time(), scan_id),
        )

    @_guarded
    def finish_scan(self, scan_id: int, state: str = "done") -> None:
        """Close a scan (``"done"`` or ``"interrupted"``) and drop the listings of older scans."""
        self._db.execute(
            "UPDATE scans SET finished_at = ?, state = ? WHERE id = ?", (time.time(), state, scan_id)
        )
        if state == "done":
            self._db.execute(
                "DELETE FROM scan_items WHERE scan_id IN (SELECT id FROM scans WHERE id < ? AND author = "
                "(SELECT author FROM scans WHERE id = ?))",
                (scan_id, scan_id),
            )

    @_guarded
    def scan_info(self, scan_id: int) -> ScanInfo:
        """The scan's row: author, query, settings, times, counts and state."""
        row = self._db.execute(
            "SELECT id, author, query, settings, started_at, listed_at, finished_at, listed, skipped, state"
            " FROM scans WHERE id = ?",
            (scan_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no scan {scan_id} in {self.path}")
        sid, author, query, settings, started, listed_at, finished, listed, skipped, state = row
        return ScanInfo(
            id=sid,
            author=author,
            query=json.loads(query),
            settings=settings,
            started_at=started,
            listed_at=listed_at,
            finished_at=finished,
            listed=listed,
            skipped=skipped,
            state=state,
        )

    @_guarded
    def latest_scan(self, author: str | None = None) -> int | None:
        """The id of the most recent scan (of ``author`` when given), or ``None``."""
        if author is None:
            row = self._db.execute("SELECT MAX(id) FROM scans").fetchone()
        else:
            row = self._db.execute("SELECT MAX(id) FROM scans WHERE author = ?", (author,)).fetchone()
        return None if row[0] is None else int(row[0])

    # -- work ------------------------------------------------------------------------------------------

    @_guarded
    def count_pending(self, scan_id: int, *, refresh: bool = False, retry_all_errors: bool = False) -> int:
        """How many repos of this scan :meth:`pending` will yield."""
        sql, args = self._pending_sql(scan_id, refresh, retry_all_errors)
        (count,) = self._db.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()
        return int(count)

    @_guarded
    def pending(
        self, scan_id: int, *, refresh: bool = False, retry_all_errors: bool = False, chunk: int = 256
    ) -> Iterator[ListedRepo]:
        """The repos of this scan that still need an analysis, in listing order.

        A repo needs one when no result exists for its (repo_id, sha, settings), when its result is an error
        marked for retry, and always with ``refresh``; ``retry_all_errors`` retries every error. A repo
        attempted during this scan is never yielded again. Rows are fetched ``chunk`` at a time, so results
        can be written between fetches and memory stays flat.
        """
        sql, args = self._pending_sql(scan_id, refresh, retry_all_errors)
        last = -1
        while True:
            rows = self._db.execute(
                f"{sql} AND i.seq > ? ORDER BY i.seq LIMIT ?", (*args, last, chunk)
            ).fetchall()
            if not rows:
                return
            for seq, repo_id, sha, gated, private, last_modified, siblings in rows:
                last = seq
                yield ListedRepo(
                    repo_id=repo_id,
                    sha=sha,
                    gated=gated,
                    private=bool(private),
                    last_modified=last_modified,
                    siblings=None if siblings is None else tuple(json.loads(siblings)),
                )

    def _pending_sql(self, scan_id: int, refresh: bool, retry_all_errors: bool) -> tuple[str, tuple[int]]:
        if refresh:
            need = "1"
        elif retry_all_errors:
            need = "r.repo_id IS NULL OR r.status = 'error'"
        else:
            need = "r.repo_id IS NULL OR (r.status = 'error' AND r.retry = 1)"
        sql = (
            "SELECT i.seq, i.repo_id, i.sha, i.gated, i.private, i.last_modified, i.siblings "
            "FROM scan_items i JOIN scans s ON s.id = i.scan_id "
            "LEFT JOIN results r ON r.repo_id = i.repo_id AND r.sha = i.sha AND r.settings = s.settings "
            f"WHERE i.scan_id = ? AND (r.repo_id IS NULL OR r.last_scan != i.scan_id) AND ({need})"
        )
        return sql, (scan_id,)

    @_guarded
    def record_ok(
        self,
        scan_id: int,
        repo: ListedRepo,
        settings: str,
        report: dict[str, Any],
        version: str,
        seconds: float = 0.0,
    ) -> None:
        """Store a successful analysis (``Report.to_dict()``, as zlib-compressed JSON) and commit it."""
        blob = zlib.compress(json.dumps(report, separators=(",", ":")).encode(), 6)
        self._record(scan_id, repo, settings, "ok", blob, None, version, seconds)

    @_guarded
    def record_error(
        self,
        scan_id: int,
        repo: ListedRepo,
        settings: str,
        error: ErrorInfo,
        *,
        retry: bool,
        version: str,
        seconds: float = 0.0,
    ) -> None:
        """Store a failed analysis (``{"type", "message", "exit_code"}``) and commit it.

        ``retry`` marks a failure worth another attempt on the next run (network, rate limit, access);
        a failure that the same commit would reproduce (no weights, a malformed header) is kept as the
        result for that commit.
        """
        self._record(scan_id, repo, settings, "error", None, (error, retry), version, seconds)

    def _record(
        self,
        scan_id: int,
        repo: ListedRepo,
        settings: str,
        status: str,
        report: bytes | None,
        failure: tuple[ErrorInfo, bool] | None,
        version: str,
        seconds: float,
    ) -> None:
        error, retry = failure if failure is not None else (None, False)
        self._db.execute(
            "INSERT INTO results (repo_id, sha, settings, status, report, error_type, error, exit_code, retry,"
            " attempts, last_scan, hubfit_version, analysed_at, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?,"
            " ?, ?, ?) ON CONFLICT (repo_id, sha, settings) DO UPDATE SET status = excluded.status,"
            " report = excluded.report, error_type = excluded.error_type, error = excluded.error,"
            " exit_code = excluded.exit_code, retry = excluded.retry, attempts = results.attempts + 1,"
            " last_scan = excluded.last_scan, hubfit_version = excluded.hubfit_version,"
            " analysed_at = excluded.analysed_at, seconds = excluded.seconds",
            (
                repo.repo_id,
                repo.sha,
                settings,
                status,
                report,
                error["type"] if error else None,
                error["message"] if error else None,
                error["exit_code"] if error else None,
                int(retry),
                scan_id,
                version,
                time.time(),
                seconds,
            ),
        )

    @_guarded
    def prune(self, scan_id: int) -> int:
        """Delete results of this scan's repos at commits other than the one listed; returns rows deleted."""
        cur = self._db.execute(
            "DELETE FROM results WHERE EXISTS (SELECT 1 FROM scan_items i WHERE i.scan_id = ? AND"
            " i.repo_id = results.repo_id AND i.sha != results.sha)",
            (scan_id,),
        )
        return cur.rowcount

    # -- reading ---------------------------------------------------------------------------------------

    @_guarded
    def rows(self, scan_id: int) -> Iterator[ScanRow]:
        """Every repo of the scan with its result, in listing order, streamed from the database."""
        cur = self._db.execute(
            "SELECT i.seq, i.repo_id, i.sha, i.gated, i.private, i.last_modified, r.status, r.report,"
            " r.error_type, r.error, r.exit_code FROM scan_items i JOIN scans s ON s.id = i.scan_id"
            " LEFT JOIN results r ON r.repo_id = i.repo_id AND r.sha = i.sha AND r.settings = s.settings"
            " WHERE i.scan_id = ? ORDER BY i.seq",
            (scan_id,),
        )
        for seq, repo_id, sha, gated, private, modified, status, report, etype, error, code in cur:
            yield ScanRow(
                seq=seq,
                repo_id=repo_id,
                sha=sha,
                gated=gated,
                private=bool(private),
                last_modified=modified,
                status=status or "pending",
                report=None if report is None else json.loads(zlib.decompress(report)),
                error=None if status != "error" else {"type": etype, "message": error, "exit_code": code},
            )

    @_guarded
    def counts(self, scan_id: int) -> dict[str, int]:
        """``{"listed", "ok", "error", "pending", "retry"}`` for the scan, from its listing and the results."""
        row = self._db.execute(
            "SELECT COUNT(*), SUM(r.status = 'ok'), SUM(r.status = 'error'), SUM(r.status IS NULL),"
            " SUM(r.status = 'error' AND r.retry = 1) FROM scan_items i JOIN scans s ON s.id = i.scan_id"
            " LEFT JOIN results r ON r.repo_id = i.repo_id AND r.sha = i.sha AND r.settings = s.settings"
            " WHERE i.scan_id = ?",
            (scan_id,),
        ).fetchone()
        listed, ok, err, pending, retry = (int(v or 0) for v in row)
        return {"listed": listed, "ok": ok, "error": err, "pending": pending, "retry": retry}

    @_guarded
    def attempts(self, repo_id: str) -> list[tuple[str, str, int]]:
        """``(sha, status, attempts)`` for every stored result of a repo (for tests and debugging)."""
        return [
            (sha, status, int(n))
            for sha, status, n in self._db.execute(
                "SELECT sha, status, attempts FROM results WHERE repo_id = ? ORDER BY analysed_at", (repo_id,)
            )
        ]
