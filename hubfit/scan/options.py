"""What a scan asks for and with which settings; the cache key of its results; the analysis of one repo.

Shared by the scan (:mod:`hubfit.scan.runner`) and the publishing of its results (:mod:`hubfit.scan.publish`),
which must agree on the defaults (``hubfit REPO``'s workload and GPU set) and on the settings fingerprint that
keys the cache. Neither of those modules imports the other for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubfit.errors import UsageError

if TYPE_CHECKING:
    from hubfit.fit.planner import HardwareQuery
    from hubfit.report import Report
    from hubfit.sizing.memory import Workload
    from hubfit.source.hub import HubClient

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ScanOptions",
    "ScanQuery",
    "build_report",
    "resolved",
    "settings_fingerprint",
]

#: Threads analysing repos at once. A cold repo costs about 6 resolver requests (measured: config.json HEAD and
#: GET, the index for sharded checkpoints, one ranged read per shard; benchmarks/results/scan.md) along a chain
#: of about 5 round trips, so at the Hub's typical 0.1-0.3 s per request one thread issues 4-12 resolver
#: requests per second and 4 threads run at about the free tier's 5,000 per 5 minutes (16.7/s; ecosystem.md
#: §1.9). Beyond it the Hub answers 429 and the retry layer waits out its Retry-After. PRO, Team and
#: Enterprise tokens have 2.4-10x the budget: raise --concurrency.
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class ScanQuery:
    """Which models to scan.

    Attributes:
        author: the user or organization.
        search: only repos whose id contains this string (the Hub's ``search``).
        filters: Hub tags every repo must carry (``--filter``, repeatable), e.g. ``text-generation``.
        limit: at most this many repos from the listing.
        gated: ``"include"`` analyses gated repos (they need a token with access), ``"skip"`` leaves them out.
    """

    author: str
    search: str | None = None
    filters: tuple[str, ...] = ()
    limit: int | None = None
    gated: str = "include"

    def __post_init__(self) -> None:
        if not self.author or "/" in self.author:
            raise UsageError(f"scan takes a user or organization name, not {self.author!r}")
        if self.gated not in ("include", "skip"):
            raise UsageError(f"--gated must be include or skip, not {self.gated!r}")
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")


@dataclass(frozen=True)
class ScanOptions:
    """How to scan.

    Attributes:
        concurrency: repos analysed at once.
        token: Hub token (``None``: huggingface_hub's lookup; ``False``: anonymous).
        workload: a :class:`hubfit.sizing.memory.Workload` for the memory estimates (default: ``Workload()``,
            as ``hubfit REPO``); part of the cache key.
        hardware: a :class:`hubfit.fit.planner.HardwareQuery` for the fit figures (default: the curated GPU
            set); part of the cache key.
        refresh: analyse every repo again, ignoring cached results.
        retry_errors: also retry failures recorded as permanent (no weights, bad header).
    """

    concurrency: int = DEFAULT_CONCURRENCY
    token: str | bool | None = None
    workload: Workload | None = None
    hardware: HardwareQuery | None = None
    refresh: bool = False
    retry_errors: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 64:
            raise UsageError("--concurrency must be between 1 and 64")


def resolved(options: ScanOptions) -> ScanOptions:
    """Fill in the default workload and hardware (as ``hubfit REPO`` does) and check them once, up front:
    an unknown GPU name is a usage error for the whole scan, not a failure recorded on every repo."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.sizing.memory import Workload

    workload = options.workload if options.workload is not None else Workload()
    hardware = options.hardware if options.hardware is not None else HardwareQuery()
    hardware.devices()
    return dataclasses.replace(options, workload=workload, hardware=hardware)


def settings_fingerprint(workload: Workload | None, hardware: HardwareQuery | None) -> str:
    """A short digest of everything besides the commit that changes a result: hubfit's version, the report
    document's schema version, the workload and the hardware query. Results are cached per (repo_id, sha,
    fingerprint), so a stored report is always one :meth:`hubfit.report.Report.from_dict` reads."""
    from hubfit._version import __version__
    from hubfit.report import SCHEMA_VERSION

    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return value

    blob = json.dumps(
        {
            "hubfit": __version__,
            "schema_version": SCHEMA_VERSION,
            "workload": plain(workload),
            "hardware": plain(hardware),
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_report(
    repo_id: str,
    sha: str,
    *,
    client: HubClient,
    workload: Workload | None,
    hardware: HardwareQuery | None,
) -> Report:
    """The report ``hubfit REPO --revision SHA --json`` prints: metadata, memory for ``workload`` and the fit
    on ``hardware``."""
    from hubfit.pipeline import analyze

    return analyze(repo_id, revision=sha, client=client, workload=workload, hardware=hardware)
