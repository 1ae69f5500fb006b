"""hubfit's comment in a Hub discussion: posted once, then edited in place.

``hubfit comment REPO`` keeps one comment per repository. hubfit finds its own comment by two keys: the author
is the token's user, and the text carries the hidden marker :data:`COMMENT_MARKER` (an HTML comment, invisible
on the page). Where it goes:

* ``--discussion N``: in discussion (or pull request) N; a second run edits the comment it posted there.
* otherwise: in the open discussion titled :data:`DISCUSSION_TITLE` that this user opened; when there is none,
  a new discussion with that title is opened, the report being its first message.

When the figures are the same as in the existing comment (provenance line aside), nothing is written. A repo
whose discussions are disabled raises :class:`~hubfit.errors.DiscussionsDisabledError` (exit code 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubfit.errors import PublishError
from hubfit.publish._hub import Publisher
from hubfit.publish.card import same_section
from hubfit.publish.cardtext import END_MARKER, START_MARKER
from hubfit.render.report import card_section

__all__ = [
    "COMMENT_MARKER",
    "DISCUSSION_TITLE",
    "CommentPlan",
    "CommentResult",
    "apply_comment",
    "plan_comment",
    "render_comment",
]

DISCUSSION_TITLE = "Hardware requirements (hubfit)"
COMMENT_MARKER = "<!-- hubfit:comment -->"


def render_comment(report: Any, *, marker: str = COMMENT_MARKER) -> str:
    """The comment for ``report``: the card section's content (without card markers) and ``marker``."""
    lines = card_section(report).split("\n")
    assert lines[0] == START_MARKER and lines[-1] == END_MARKER
    body = lines[1:-1]
    body.insert(
        len(body) - 1,
        "Posted by hubfit; running it again edits this comment instead of posting a new one.",
    )
    body.insert(len(body) - 1, "")
    return "\n".join(body) + "\n\n" + marker


@dataclass(frozen=True)
class CommentPlan:
    """What :func:`apply_comment` would write.

    ``action``: ``"none"`` (same figures already posted), ``"edit"`` (hubfit's comment ``comment_id`` in
    discussion ``num``), ``"comment"`` (a new comment in discussion ``num``) or ``"open"`` (a new discussion).
    """

    repo_id: str
    action: str
    num: int | None
    comment_id: str | None
    body: str
    url: str

    def describe(self) -> str:
        """One line saying what will be written and where (printed before writing)."""
        where = f"discussion #{self.num} of {self.repo_id}"
        return {
            "none": f"{where} already has hubfit's comment with these figures; nothing to write",
            "edit": f"editing hubfit's comment in {where} ({len(self.body):,} characters)",
            "comment": f"posting a comment in {where} ({len(self.body):,} characters)",
            "open": f"opening a discussion {DISCUSSION_TITLE!r} on {self.repo_id} ({len(self.body):,} characters)",
        }[self.action]


@dataclass(frozen=True)
class CommentResult:
    """What :func:`apply_comment` did, and the URL of the comment's discussion."""

    action: str
    url: str
    num: int
    comment_id: str | None


def _own_comment(details: Any, user: str) -> Any | None:
    """hubfit's comment in a discussion: by ``user``, carrying the marker, not hidden (the first such)."""
    for event in details.events:
        if (
            event.type == "comment"
            and event.author == user
            and not getattr(event, "hidden", False)
            and COMMENT_MARKER in (getattr(event, "content", "") or "")
        ):
            return event
    return None


def _details(publisher: Publisher, repo_id: str, num: int) -> Any:
    from huggingface_hub.errors import HfHubHTTPError

    def call() -> Any:
        try:
            return publisher.api.get_discussion_details(repo_id, num)
        except HfHubHTTPError as exc:
            if getattr(exc.response, "status_code", None) == 404:
                raise PublishError(f"{repo_id} has no discussion or pull request #{num}") from None
            raise

    return publisher.read(f"read discussion #{num} of {repo_id}", call, repo_id=repo_id)


def _hubfit_discussions(publisher: Publisher, repo_id: str, user: str) -> list[Any]:
    def call() -> list[Any]:
        found = publisher.api.get_repo_discussions(
            repo_id, author=user, discussion_type="discussion", discussion_status="open"
        )
        return [d for d in found if d.title == DISCUSSION_TITLE and d.author == user and d.status == "open"]

    return sorted(
        publisher.read(f"list discussions of {repo_id}", call, repo_id=repo_id), key=lambda d: d.num
    )


def plan_comment(
    publisher: Publisher, repo_id: str, body: str, *, discussion: int | None = None
) -> CommentPlan:
    """Find hubfit's comment (or discussion) and decide what to write; nothing is written."""
    user = publisher.whoami()
    base = f"{publisher.endpoint}/{repo_id}/discussions"
    if discussion is not None:
        candidates = [discussion]
    else:
        candidates = [d.num for d in _hubfit_discussions(publisher, repo_id, user)]
    for num in candidates:
        details = _details(publisher, repo_id, num)
        mine = _own_comment(details, user)
        if mine is None:
            if discussion is not None:
                return CommentPlan(repo_id, "comment", num, None, body, f"{base}/{num}")
            continue
        url = f"{base}/{num}#{mine.id}"
        action = "none" if same_section(mine.content, body) else "edit"
        return CommentPlan(repo_id, action, num, mine.id, body, url)
    if discussion is None and candidates:
        # hubfit's discussion is open but its report comment was hidden or removed: post it again there.
        return CommentPlan(repo_id, "comment", candidates[0], None, body, f"{base}/{candidates[0]}")
    return CommentPlan(repo_id, "open", None, None, body, base)


def apply_comment(publisher: Publisher, plan: CommentPlan) -> CommentResult:
    """Write what ``plan`` says (one comment or one new discussion) and return where it is."""
    repo_id, api = plan.repo_id, publisher.api
    base = f"{publisher.endpoint}/{repo_id}/discussions"
    if plan.action != "open" and plan.num is None:
        raise ValueError(f"a {plan.action!r} plan names its discussion")
    num = plan.num or 0
    if plan.action == "none":
        return CommentResult("none", plan.url, num, plan.comment_id)
    if plan.action == "edit":
        comment_id = plan.comment_id
        if comment_id is None:
            raise ValueError("an 'edit' plan names the comment it edits")

        def edit() -> CommentResult:
            api.edit_discussion_comment(repo_id, num, comment_id, plan.body)
            return CommentResult("edit", plan.url, num, comment_id)

        # Editing is idempotent: a retry after a lost answer writes the same text again.
        return publisher.write(
            f"edit hubfit's comment in discussion #{num} of {repo_id}", edit, repo_id=repo_id
        )

    user = publisher.whoami()
    if plan.action == "comment":

        def landed() -> CommentResult | None:
            mine = _own_comment(_details(publisher, repo_id, num), user)
            if mine is not None and mine.content == plan.body:
                return CommentResult("comment", f"{base}/{num}#{mine.id}", num, mine.id)
            return None

        def comment() -> CommentResult:
            event = api.comment_discussion(repo_id, num, plan.body)
            return CommentResult("comment", f"{base}/{num}#{event.id}", num, event.id)

        return publisher.write(
            f"comment in discussion #{num} of {repo_id}", comment, repo_id=repo_id, landed=landed
        )

    def landed_discussion() -> CommentResult | None:
        for d in _hubfit_discussions(publisher, repo_id, user):
            mine = _own_comment(_details(publisher, repo_id, d.num), user)
            if mine is not None and mine.content == plan.body:
                return CommentResult("open", f"{base}/{d.num}", d.num, mine.id)
        return None

    def open_discussion() -> CommentResult:
        details = api.create_discussion(repo_id, DISCUSSION_TITLE, description=plan.body)
        first = _own_comment(details, user)
        return CommentResult("open", f"{base}/{details.num}", details.num, first.id if first else None)

    return publisher.write(
        f"open a discussion on {repo_id}", open_discussion, repo_id=repo_id, landed=landed_discussion
    )
