"""``hubfit scan AUTHOR --apply card|comment``: publish the scanned figures to every repo, politely.

Dry-run by default: for each analysed repo, say what would be written (open a pull request, commit, comment,
edit the comment) or why the repo is skipped. Only ``yes=True`` (``--yes``) writes, with the etiquette Hub bots
follow (research/ecosystem.md §3.2):

* the card goes in as a pull request; a direct commit to ``main`` only with ``direct=True`` (``--commit``);
* a repo is skipped when its card (or hubfit's comment) already has these figures, when hubfit already has a
  pull request open there (it is not pushed to again in bulk), when its discussions are disabled, when it
  changed since the scan (its ``main`` is not the commit that was analysed), or when it was not analysed;
* ``pause_s`` seconds between two writes, at most ``max_writes`` writes per run;
* a 429 that outlasts the retries stops the whole run instead of pressing on;
* a closing summary lists every repo with what happened and the link.

Every figure comes from the report the scan stored (:meth:`hubfit.scan.store.ScanRow.to_report`): publishing
reads no config or safetensors header again. Per repo a dry run costs one ``model_info`` (is ``main`` still
the analysed commit?) plus what :mod:`hubfit.publish` reads to plan (the README, hubfit's pull requests or
discussions). A stored report this hubfit cannot read (written with another ``schema_version``) is analysed
again at the scanned commit, said on ``err``, and the fresh report replaces the stored one.

The writing itself is :mod:`hubfit.publish` (``plan_card``/``apply_card``, ``plan_comment``/``apply_comment``):
the same code, checks and messages as ``hubfit card`` and ``hubfit comment``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from hubfit.errors import DiscussionsDisabledError, HeaderError, HubfitError, RateLimitedError, UsageError
from hubfit.publish._hub import Publisher
from hubfit.scan.options import ScanOptions, build_report, resolved, settings_fingerprint
from hubfit.scan.store import ScanRow, ScanStore

if TYPE_CHECKING:
    from hubfit.report import Report

__all__ = ["DEFAULT_PAUSE_S", "PublishOutcome", "publish_scan"]

#: Seconds between two writes. The Hub's limits for commits, discussions and comments are separate from the
#: API limits and not published (ecosystem.md §1.9); one write every 10 s is 360 an hour, far below what a
#: person clicking through the UI does, and a run over 1,000 repos still finishes in under three hours.
DEFAULT_PAUSE_S = 10.0


@dataclass(frozen=True)
class PublishOutcome:
    """What happened to one repo.

    ``action``: ``"skip"`` (``reason`` says why), ``"failed"`` (``reason`` is the error), or the write done (or,
    in a dry run, planned): ``"open_pr"``, ``"commit"``, ``"open"`` (a new discussion), ``"comment"``,
    ``"edit"``. ``url`` is the pull request, commit, comment or repo page.
    """

    repo_id: str
    action: str
    url: str = ""
    reason: str = ""
    written: bool = False
    exit_code: int | None = None


def _summary_line(outcomes: list[PublishOutcome], dry_run: bool, stopped: str | None) -> str:
    counts = Counter(
        "skip" if o.action == "skip" else "failed" if o.action == "failed" else "write" for o in outcomes
    )
    verb = "would write" if dry_run else "wrote"
    line = f"{verb} {counts['write']}, skipped {counts['skip']}, failed {counts['failed']}"
    return line + (f"; stopped early: {stopped}" if stopped else "")


def publish_scan(
    store: ScanStore,
    scan_id: int,
    kind: str,
    *,
    options: ScanOptions,
    yes: bool = False,
    direct: bool = False,
    pause_s: float = DEFAULT_PAUSE_S,
    max_writes: int | None = None,
    out: IO[str],
    err: IO[str],
    sleep: Callable[[float], None] = time.sleep,
) -> list[PublishOutcome]:
    """Plan (and with ``yes`` write) the card section or the discussion comment for every analysed repo.

    Args:
        store, scan_id: the recorded scan; each repo's figures are its stored report.
        kind: ``"card"`` or ``"comment"``.
        options: the scan's :class:`hubfit.scan.options.ScanOptions`: the token, and the workload and hardware
            a stored report unreadable by this hubfit is analysed again with.
        yes: write; otherwise a dry run that reads only.
        direct: cards as a direct commit to ``main`` instead of a pull request.
        pause_s: seconds to wait after each write.
        max_writes: stop after this many writes.
        out: the per-repo lines and the summary table (stdout).
        err: what is about to be written, before each write, and each repo analysed again (stderr).

    Raises:
        UsageError: a bad ``kind``, or no token (publishing needs the token's identity even in a dry run).
    """
    from hubfit._version import __version__
    from hubfit.source.hub import HubClient

    if kind not in ("card", "comment"):
        raise UsageError(f"--apply must be card or comment, not {kind!r}")
    if direct and kind != "card":
        raise UsageError("--commit applies to --apply card only")
    options = resolved(options)
    client = HubClient(token=options.token)
    publisher = Publisher(client)
    user = publisher.whoami()
    dry_run = not yes
    err.write(
        f"hubfit: {'dry run: ' if dry_run else ''}publishing the {kind} as {user}"
        + ("" if dry_run else f", {pause_s:g} s between writes")
        + ("" if not dry_run or max_writes is None else f", at most {max_writes} writes")
        + "\n"
    )
    settings = store.scan_info(scan_id)["settings"]
    same_settings = settings == settings_fingerprint(options.workload, options.hardware)
    refreshed: list[tuple[ScanRow, dict[str, Any], float]] = []

    def report_of(row: ScanRow) -> Report:
        """The stored report; one this hubfit cannot read is analysed again (and stored after the run)."""
        try:
            return row.to_report()
        except HeaderError as exc:
            err.write(f"hubfit: {row.repo_id}: cannot use the stored report ({exc}); analysing it again\n")
        start = time.perf_counter()
        report = build_report(
            row.repo_id, row.sha, client=client, workload=options.workload, hardware=options.hardware
        )
        if same_settings:
            refreshed.append((row, report.to_dict(), time.perf_counter() - start))
        return report

    outcomes: list[PublishOutcome] = []
    writes = 0
    stopped: str | None = None
    for row in store.rows(scan_id):
        if row.status != "ok":
            outcomes.append(PublishOutcome(row.repo_id, "skip", reason=f"not analysed ({row.status})"))
            continue
        if max_writes is not None and writes >= max_writes:
            stopped = f"--max-writes {max_writes} reached"
            break
        try:
            outcome = _one(publisher, row, report_of, kind, direct, dry_run, err)
        except RateLimitedError as exc:
            outcomes.append(PublishOutcome(row.repo_id, "failed", reason=str(exc), exit_code=exc.exit_code))
            stopped = "the Hub is rate-limiting this token"
            break
        outcomes.append(outcome)
        out.write(_line(outcome, dry_run) + "\n")
        out.flush()
        if outcome.written:
            writes += 1
            if pause_s > 0:
                sleep(pause_s)
    # Written once the rows' cursor is done: the fresh reports serve the next run from the cache.
    for row, document, seconds in refreshed:
        store.record_ok(scan_id, row.listed(), settings, document, __version__, seconds)
    _write_summary(outcomes, dry_run, stopped, out)
    return outcomes


class _PinnedMain(Publisher):
    """The run's :class:`~hubfit.publish._hub.Publisher` for planning one repo whose ``main`` was just read.

    ``head(repo_id, "main")`` answers the commit already checked against the scan instead of asking the Hub
    again, so planning reads ``main`` once per repo, and the plan is made against exactly the analysed commit
    (a card committed to a ``main`` that moved meanwhile is refused by the Hub as a conflict). Everything else
    is the publisher's: the same client, retry layer and token identity (its state is shared, not rebuilt).
    """

    def __init__(self, publisher: Publisher, repo_id: str, sha: str) -> None:
        vars(self).update(vars(publisher))
        self._pinned = (repo_id, sha)

    def head(self, repo_id: str, revision: str = "main") -> str:
        if revision == "main" and repo_id == self._pinned[0]:
            return self._pinned[1]
        return super().head(repo_id, revision)


def _one(
    publisher: Publisher,
    row: ScanRow,
    report_of: Callable[[ScanRow], Report],
    kind: str,
    direct: bool,
    dry_run: bool,
    err: IO[str],
) -> PublishOutcome:
    """Plan and (unless ``dry_run``) write one repo; raises only :class:`RateLimitedError`."""
    from hubfit.publish.card import apply_card, plan_card
    from hubfit.publish.discussions import apply_comment, plan_comment, render_comment

    repo_id = row.repo_id
    try:
        head = publisher.head(repo_id, "main")
        if head != row.sha:
            return PublishOutcome(repo_id, "skip", reason="changed since the scan; scan again first")
        report = report_of(row)
        if kind == "card":
            plan = plan_card(_PinnedMain(publisher, repo_id, head), report, mode="commit" if direct else "pr")
            if plan.action == "none":
                return PublishOutcome(repo_id, "skip", plan.url, "the card already has these figures")
            if plan.action == "update_pr":
                return PublishOutcome(
                    repo_id, "skip", plan.url, f"hubfit's pull request #{plan.pr_num} is open"
                )
            if dry_run:
                return PublishOutcome(repo_id, plan.action, plan.url, plan.describe())
            err.write(plan.describe() + "\n")
            result = apply_card(publisher, plan)
            return PublishOutcome(repo_id, result.action, result.url, written=result.action != "none")
        comment = plan_comment(publisher, repo_id, render_comment(report))
        if comment.action == "none":
            return PublishOutcome(repo_id, "skip", comment.url, "hubfit's comment already has these figures")
        if dry_run:
            return PublishOutcome(repo_id, comment.action, comment.url, comment.describe())
        err.write(comment.describe() + "\n")
        posted = apply_comment(publisher, comment)
        return PublishOutcome(repo_id, posted.action, posted.url, written=posted.action != "none")
    except DiscussionsDisabledError:
        return PublishOutcome(repo_id, "skip", reason="discussions and pull requests are disabled")
    except RateLimitedError:
        raise
    except HubfitError as exc:
        return PublishOutcome(
            repo_id, "failed", reason=f"{type(exc).__name__}: {exc}", exit_code=exc.exit_code
        )


_VERB = {
    "open_pr": ("would open a pull request", "opened a pull request"),
    "commit": ("would commit to main", "committed to main"),
    "open": ("would open a discussion", "opened a discussion"),
    "comment": ("would comment", "commented"),
    "edit": ("would edit hubfit's comment", "edited hubfit's comment"),
}


def _line(o: PublishOutcome, dry_run: bool) -> str:
    if o.action == "skip":
        return f"{o.repo_id}: skipped: {o.reason}"
    if o.action == "failed":
        return f"{o.repo_id}: failed: {o.reason}"
    verb = _VERB.get(o.action, (o.action, o.action))[0 if dry_run else 1]
    return f"{o.repo_id}: {verb}" + (f" {o.url}" if o.url else "")


def _write_summary(outcomes: list[PublishOutcome], dry_run: bool, stopped: str | None, out: IO[str]) -> None:
    out.write("\n| repo | result | link |\n|---|---|---|\n")
    for o in outcomes:
        if o.action == "skip":
            result = f"skipped: {o.reason}"
        elif o.action == "failed":
            result = f"failed: {o.reason}"
        else:
            result = _VERB.get(o.action, (o.action, o.action))[0 if dry_run else 1]
        out.write(f"| {o.repo_id} | {result.replace('|', '/')} | {o.url} |\n")
    out.write(
        "\n"
        + _summary_line(outcomes, dry_run, stopped)
        + (" (dry run: pass --yes to write)" if dry_run else "")
        + "\n"
    )
