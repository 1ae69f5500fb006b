"""The Action's sticky pull request comment: its body, posting it, and posting one a fork's run left behind.

A pull request from a fork gets no comment (its token is read-only): the body is left in the output
directory, and a ``workflow_run`` job with ``report-dir`` posts it after checking that the pull request's head
is the commit the first run analysed (:func:`post_from_artifact`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from hubfit.action.analysis import Analysis
from hubfit.action.inputs import PULL_REQUEST_EVENTS, ActionInputs, RunnerContext
from hubfit.action.outputs import log
from hubfit.errors import PublishError, UsageError
from hubfit.render.comment import TargetCheck, render_comment

if TYPE_CHECKING:
    from hubfit.publish.github import GitHubClient

__all__ = [
    "COMMENT_BUDGET",
    "comment_bodies",
    "marker",
    "post_comment",
    "post_from_artifact",
    "untrusted_body",
]

#: Keep comments well under GitHub's 65,536-character limit (the sticky marker is appended).
COMMENT_BUDGET = 60_000

_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def marker(model: str) -> str:
    """The hidden marker of this model's sticky comment (one comment per model input per pull request)."""
    return f"<!-- hubfit:action {hashlib.sha256(model.encode()).hexdigest()[:12]} -->"


def comment_bodies(
    head: Analysis,
    base: Analysis | None,
    *,
    base_error: str | None,
    target: TargetCheck | None,
    run_url: str | None,
) -> tuple[str, str]:
    """The full body (for the job summary) and the comment's body: the full one, or when that is over
    :data:`COMMENT_BUDGET`, a compact one that links the run's summary for the full report."""

    def render(*, compact: bool) -> str:
        return render_comment(
            head.report,
            base.report if base else None,
            head_label=head.label,
            base_error=base_error,
            target=target,
            lfs_reads=[*head.lfs_reads, *(base.lfs_reads if base else [])],
            run_url=run_url if compact else None,
            compact=compact,
        )

    full = render(compact=False)
    return full, full if len(full) <= COMMENT_BUDGET else render(compact=True)


def _github(inputs: ActionInputs, ctx: RunnerContext) -> GitHubClient:
    from hubfit.publish.github import GitHubClient

    if not inputs.github_token:
        raise UsageError("commenting needs github-token (with pull-requests: write); or set comment: false")
    return GitHubClient(inputs.github_token, ctx.api_url)


def post_comment(inputs: ActionInputs, ctx: RunnerContext, body: str) -> str | None:
    """Create or update this model's sticky comment on the pull request; returns its URL (None: skipped)."""
    pr = ctx.pull_request
    if pr is None or not inputs.comment:
        return None
    if ctx.from_fork:
        log(
            "::notice title=hubfit::pull request from a fork: its token cannot comment. The comment is in "
            f"{ctx.out_dir}; post it from a workflow_run job (see the hubfit README)."
        )
        return None
    result = _github(inputs, ctx).upsert_sticky_comment(
        ctx.repository, int(pr["number"]), body, marker(inputs.model)
    )
    log(f"hubfit: pull request comment {result.action}: {result.url}")
    return result.url


def untrusted_body(text: str) -> str:
    """A comment body from an artifact of an untrusted run, made safe to post.

    It is Markdown written by code the pull request controls: cut to the comment budget, @-mentions
    neutralised (a zero-width space after ``@``) and hubfit markers removed so it cannot imitate another
    comment's marker.
    """
    text = re.sub(r"<!--\s*hubfit:[^>]*-->", "", text)
    text = _MENTION.sub("@\u200b", text)
    return text[:COMMENT_BUDGET]


def post_from_artifact(inputs: ActionInputs, ctx: RunnerContext) -> str:
    """``workflow_run``: post the comment of a ``pull_request`` run after checking which pull request it is for.

    The artifact names the pull request, but its content is untrusted (a fork's run wrote it): the comment
    is posted only if that pull request's current head is the commit the triggering run analysed.

    Raises:
        UsageError: not a completed pull_request run, or no report-dir.
        PublishError: the pull request's head is not the run's commit.
    """
    run = ctx.event.get("workflow_run") or {}
    if run.get("event") not in PULL_REQUEST_EVENTS:
        raise UsageError("workflow_run: the triggering run was not a pull_request run; nothing to post")
    if not inputs.report_dir:
        raise UsageError("workflow_run needs report-dir: the downloaded artifact of the pull_request run")
    folder = (ctx.workspace / inputs.report_dir).resolve()
    try:
        meta = json.loads((folder / "action.json").read_text(encoding="utf-8"))
        body = (folder / "comment.md").read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"report-dir {inputs.report_dir}: cannot read action.json and comment.md ({exc})"
        ) from None
    number = meta.get("pull_request") if isinstance(meta, dict) else None
    head_sha = run.get("head_sha")
    if type(number) is not int or number < 1 or not head_sha:
        raise UsageError("report-dir: action.json names no pull request")
    client = _github(inputs, ctx)
    pr = client.get_pull_request(ctx.repository, number)
    if (pr.get("head") or {}).get("sha") != head_sha:
        raise PublishError(
            f"pull request #{number} is not at commit {head_sha[:12]} that the run analysed; not posting"
        )
    model = str(meta.get("model") or ".")
    result = client.upsert_sticky_comment(ctx.repository, number, untrusted_body(body), marker(model))
    log(f"hubfit: pull request comment {result.action}: {result.url}")
    return result.url
