"""The model card's "Hardware requirements" section: rendered from a Report, proposed or committed on the Hub.

Flow (``hubfit card REPO``)::

    publisher = Publisher(HubClient(token))
    plan = plan_card(publisher, report, mode="pr")      # reads only: what would change, where, the diff
    print(plan.describe()); print(plan.diff)            # --dry-run stops here
    result = apply_card(publisher, plan)                 # one commit; result.url is the PR or commit

Rules:

* The section is compared with the one already on the card ignoring its provenance line (commit sha, hubfit
  version): identical figures mean nothing is pushed, so a card commit (which moves ``main``) or a new
  hubfit release does not churn the card.
* ``mode="pr"`` (default): when hubfit's own pull request (this token's user, title :data:`PR_TITLE`) is
  still open, the new README is committed to its ``refs/pr/N`` with ``parent_commit`` = the PR head that was
  read; otherwise a new pull request is opened from the ``main`` commit that was read (``parent_commit``), so
  it holds exactly the original README plus the section.
* ``mode="commit"``: a commit to ``main`` with ``parent_commit`` = the sha read. If ``main`` moved in between,
  the Hub answers 412 and :class:`~hubfit.errors.ConflictError` is raised: nobody's edit is overwritten.
* One write per run (one file in one commit): a failure leaves nothing half-done.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

from hubfit._version import __version__
from hubfit.errors import UsageError
from hubfit.publish._hub import Publisher
from hubfit.publish.cardtext import END_MARKER, START_MARKER, apply_section, card_diff, current_section
from hubfit.render.report import PROVENANCE as _PROVENANCE
from hubfit.render.report import card_section
from hubfit.report import Report

__all__ = [
    "PR_TITLE",
    "CardPlan",
    "CardResult",
    "apply_card",
    "plan_card",
    "same_section",
]

logger = logging.getLogger(__name__)

PR_TITLE = "Add hardware requirements (hubfit)"
UPDATE_MESSAGE = "Update hardware requirements (hubfit)"
README = "README.md"


def same_section(a: str | None, b: str | None) -> bool:
    """Whether two sections carry the same figures (their provenance lines are not compared)."""
    if a is None or b is None:
        return a is b

    def key(section: str) -> list[str]:
        return [line.rstrip() for line in section.split("\n") if not line.startswith(_PROVENANCE)]

    return key(a) == key(b)


@dataclass(frozen=True)
class CardPlan:
    """What :func:`apply_card` would write, computed from reads only.

    Attributes:
        repo_id: the repository.
        mode: ``"pr"`` or ``"commit"``.
        action: ``"none"`` (the card already has these figures), ``"open_pr"``, ``"update_pr"`` or ``"commit"``.
        revision: where the commit goes: ``"main"`` or ``"refs/pr/N"``.
        parent: the commit the README was read at (sent as ``parent_commit``).
        pr_num: hubfit's open pull request, when there is one.
        old: README.md bytes that were read (None: the repo has none).
        new: README.md bytes to write (equal to ``old`` when ``action == "none"``).
        diff: unified diff from ``old`` to ``new``.
        url: the page concerned (the open PR, or the repo) for messages.
    """

    repo_id: str
    mode: str
    action: str
    revision: str
    parent: str
    pr_num: int | None
    old: bytes | None
    new: bytes
    diff: str
    url: str
    report_sha: str | None

    def describe(self) -> str:
        """One line saying what will be written and where (printed before writing)."""
        at = f"{self.parent[:12]}"
        if self.action == "none":
            where = f"pull request #{self.pr_num}" if self.pr_num else f"{self.revision} ({at})"
            return f"{self.repo_id}: README.md on {where} already has these figures; nothing to write"
        verb = "create" if self.old is None else "update"
        if self.action == "open_pr":
            return (
                f"{self.repo_id}: opening a pull request against main ({at}) to {verb} README.md "
                f"({self._delta()}) with the hubfit section"
            )
        if self.action == "update_pr":
            return (
                f"{self.repo_id}: updating hubfit's open pull request #{self.pr_num} (refs/pr/{self.pr_num} at "
                f"{at}): README.md {self._delta()}"
            )
        return f"{self.repo_id}: committing to main (parent {at}): README.md {self._delta()}"

    def _delta(self) -> str:
        added = sum(
            1 for line in self.diff.splitlines() if line.startswith("+") and not line.startswith("+++")
        )
        removed = sum(
            1 for line in self.diff.splitlines() if line.startswith("-") and not line.startswith("---")
        )
        return f"+{added} -{removed} lines"


@dataclass(frozen=True)
class CardResult:
    """What :func:`apply_card` did: ``action`` as in the plan, ``url`` of the PR or commit, ``commit`` sha."""

    action: str
    url: str
    commit: str | None
    pr_num: int | None


def _open_hubfit_prs(publisher: Publisher, repo_id: str) -> list[Any]:
    me = publisher.whoami()

    def call() -> list[Any]:
        found = publisher.api.get_repo_discussions(repo_id, author=me, discussion_type="pull_request")
        return [d for d in found if d.status in ("open", "draft") and d.title == PR_TITLE and d.author == me]

    prs = publisher.read(f"list pull requests of {repo_id}", call, repo_id=repo_id)
    return sorted(prs, key=lambda d: d.num)


def plan_card(
    publisher: Publisher, report: Report, *, mode: str = "pr", section: str | None = None
) -> CardPlan:
    """Read the card (and hubfit's open PR) and decide what to write; nothing is written.

    Args:
        publisher: a :class:`hubfit.publish._hub.Publisher`.
        report: the Report to render (a Hub report: ``report.source == "hub"``).
        mode: ``"pr"`` (default) or ``"commit"`` (push to ``main``; needs write access).
        section: a pre-rendered section (default :func:`hubfit.render.report.card_section` of ``report``).
    """
    if mode not in ("pr", "commit"):
        raise ValueError(f"mode must be 'pr' or 'commit', not {mode!r}")
    if report.source != "hub":
        raise UsageError("hubfit card publishes to a Hub repository; a local directory has no card to update")
    repo_id = report.repo_id
    section = section if section is not None else card_section(report)
    main_sha = publisher.head(repo_id, "main")
    main_readme = publisher.read_file(repo_id, README, main_sha)
    repo_url = f"{publisher.endpoint}/{repo_id}"

    def plan(
        action: str, revision: str, parent: str, old: bytes | None, pr: int | None, url: str
    ) -> CardPlan:
        new = apply_section(old, section, repo_id=repo_id) if action != "none" else (old or b"")
        return CardPlan(
            repo_id,
            mode,
            action,
            revision,
            parent,
            pr,
            old,
            new,
            card_diff(old, new) if action != "none" else "",
            url,
            report.sha,
        )

    if same_section(current_section(main_readme), section):
        return plan("none", "main", main_sha, main_readme, None, repo_url)
    if mode == "commit":
        return plan("commit", "main", main_sha, main_readme, None, repo_url)
    prs = _open_hubfit_prs(publisher, repo_id)
    if prs:
        pr = prs[0]
        pr_url = f"{repo_url}/discussions/{pr.num}"
        ref = f"refs/pr/{pr.num}"
        pr_sha = publisher.head(repo_id, ref)
        pr_readme = publisher.read_file(repo_id, README, pr_sha)
        if same_section(current_section(pr_readme), section):
            return plan("none", ref, pr_sha, pr_readme, pr.num, pr_url)
        return plan("update_pr", ref, pr_sha, pr_readme, pr.num, pr_url)
    return plan("open_pr", "main", main_sha, main_readme, None, repo_url)


def _description(plan: CardPlan) -> str:
    sha = f" at commit `{plan.report_sha[:12]}`" if plan.report_sha else ""
    return (
        "This pull request adds a **Hardware requirements** section to the model card: parameter count, "
        f"checkpoint size and memory figures computed by hubfit {__version__} "
        f"from `config.json` and the safetensors headers{sha} (no weights were downloaded).\n\n"
        f"Only the lines between `{START_MARKER}` and `{END_MARKER}` are added to README.md; the YAML metadata "
        "and the rest of the card are unchanged. Running hubfit again updates this pull request instead of "
        "opening another one, and the section can be edited or removed freely.\n\n"
        "If this is not useful for this repository, feel free to close this pull request."
    )


def apply_card(publisher: Publisher, plan: CardPlan) -> CardResult:
    """Write what ``plan`` says (one commit), then return where it went."""
    from huggingface_hub import CommitOperationAdd

    repo_id = plan.repo_id
    if plan.action == "none":
        return CardResult("none", plan.url, None, plan.pr_num)

    def commit(revision: str | None, create_pr: bool, message: str, description: str) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = _create_commit(revision, create_pr, message, description)
        for warning in caught:  # the Hub's card validation, e.g. "empty or missing yaml metadata"
            logger.info("%s", " ".join(str(warning.message).split()))
        return info

    def _create_commit(revision: str | None, create_pr: bool, message: str, description: str) -> Any:
        return publisher.api.create_commit(
            repo_id,
            [CommitOperationAdd(README, plan.new)],  # a fresh operation per attempt: they are single-use
            commit_message=message,
            commit_description=description,
            revision=revision,
            create_pr=create_pr,
            parent_commit=plan.parent,
        )

    if plan.action == "open_pr":

        def landed() -> CardResult | None:
            for pr in _open_hubfit_prs(publisher, repo_id):
                sha = publisher.head(repo_id, f"refs/pr/{pr.num}")
                if publisher.read_file(repo_id, README, sha) == plan.new:
                    return CardResult(
                        "open_pr", f"{publisher.endpoint}/{repo_id}/discussions/{pr.num}", sha, pr.num
                    )
            return None

        def open_pr() -> CardResult:
            info = commit(None, True, PR_TITLE, _description(plan))
            return CardResult("open_pr", info.pr_url, info.oid, info.pr_num)

        return publisher.write(f"open a pull request on {repo_id}", open_pr, repo_id=repo_id, landed=landed)

    def landed_on_ref() -> CardResult | None:
        sha = publisher.head(repo_id, plan.revision)
        if sha != plan.parent and publisher.read_file(repo_id, README, sha) == plan.new:
            return CardResult(plan.action, _commit_url(publisher, plan, sha), sha, plan.pr_num)
        return None

    def push() -> CardResult:
        summary = UPDATE_MESSAGE if plan.old is not None and current_section(plan.old) else PR_TITLE
        info = commit(plan.revision, False, summary, "")
        return CardResult(plan.action, _commit_url(publisher, plan, info.oid), info.oid, plan.pr_num)

    where = f"pull request #{plan.pr_num}" if plan.action == "update_pr" else "main"
    return publisher.write(
        f"commit README.md to {where} of {repo_id}",
        push,
        repo_id=repo_id,
        landed=landed_on_ref,
        conflict_hint="" if plan.action == "commit" else f" to pull request #{plan.pr_num}",
    )


def _commit_url(publisher: Publisher, plan: CardPlan, sha: str) -> str:
    if plan.action == "update_pr":
        return plan.url
    return f"{publisher.endpoint}/{plan.repo_id}/commit/{sha}"
