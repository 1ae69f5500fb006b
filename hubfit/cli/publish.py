"""The ``hubfit card`` and ``hubfit comment`` commands (registered on the main group in :mod:`hubfit.cli`).

Thin: parse, build the report, call :mod:`hubfit.publish`, print. What will be written and where goes to
stderr before writing; the URL of the pull request, commit or comment goes to stdout after. ``--dry-run``
prints the plan and the unified diff and writes nothing. Tokens are never printed, and ``--verbose`` logs
request lines (method and URL) only.
"""

from __future__ import annotations

import logging

import click

from hubfit.cli.options import ReportOptions, report_options

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_VERBOSE = click.option(
    "--verbose", "-v", is_flag=True, help="Log Hub and GitHub requests to stderr (no tokens)."
)


def _write_token(token: str | None) -> str | None:
    """The token for Hub writes: ``--token``, else the one huggingface_hub finds (HF_TOKEN, saved login).

    Resolved explicitly because writes always need it, even where ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` keeps
    huggingface_hub from sending a stored token on its own.
    """
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def _verbose(enabled: bool) -> None:
    if enabled:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("hubfit: %(message)s"))
        logger = logging.getLogger("hubfit")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


@click.command("card", context_settings=CONTEXT_SETTINGS)
@click.argument("repo")
@click.option(
    "--dry-run", is_flag=True, help="Print what would change (a unified diff of README.md); write nothing."
)
@click.option(
    "--commit",
    "direct",
    is_flag=True,
    help="Commit to main instead of opening a pull request (needs write access); same as --mode commit.",
)
@click.option(
    "--mode",
    type=click.Choice(["pr", "commit"]),
    help="pr: open or update hubfit's pull request (default); commit: push to main.",
)
@_VERBOSE
@report_options
def card_cmd(
    repo: str, dry_run: bool, direct: bool, mode: str | None, verbose: bool, opts: ReportOptions
) -> None:
    """Add or refresh the "Hardware requirements" section of REPO's model card.

    Opens a pull request by default (or updates hubfit's open one); --commit pushes to main. The section sits
    between <!-- hubfit:start --> and <!-- hubfit:end -->; every other byte of README.md is kept.
    """
    from hubfit.errors import UsageError
    from hubfit.publish._hub import Publisher
    from hubfit.publish.card import apply_card, plan_card
    from hubfit.source.hub import HubClient

    _verbose(verbose)
    if direct and mode == "pr":
        raise UsageError("--commit and --mode pr contradict each other")
    client = HubClient(token=_write_token(opts.token))
    publisher = Publisher(client)
    report = opts.analyze(repo, client=client)
    plan = plan_card(publisher, report, mode="commit" if direct or mode == "commit" else "pr")
    click.echo(plan.describe(), err=True)
    if dry_run:
        click.echo(plan.diff, nl=False)
        return
    result = apply_card(publisher, plan)
    click.echo(result.url)


@click.command("comment", context_settings=CONTEXT_SETTINGS)
@click.argument("repo")
@click.option(
    "--discussion", type=int, metavar="N", help="Comment on this discussion or pull request of REPO."
)
@click.option(
    "--github-pr",
    metavar="OWNER/REPO#N",
    help="Post or update a sticky comment on this GitHub pull request instead (GITHUB_TOKEN, GITHUB_API_URL).",
)
@click.option("--dry-run", is_flag=True, help="Print the comment and where it would go; write nothing.")
@_VERBOSE
@report_options
def comment_cmd(
    repo: str,
    discussion: int | None,
    github_pr: str | None,
    dry_run: bool,
    verbose: bool,
    opts: ReportOptions,
) -> None:
    """Post the hardware report as a comment, edited in place on later runs.

    On the Hub: in discussion N (--discussion), or in hubfit's discussion "Hardware requirements (hubfit)",
    opened when there is none. With --github-pr, on a GitHub pull request (REPO may then be a local directory).
    """
    from hubfit.errors import UsageError
    from hubfit.publish.discussions import render_comment
    from hubfit.source.hub import HubClient

    _verbose(verbose)
    if github_pr and discussion is not None:
        raise UsageError("--discussion and --github-pr are exclusive")
    client = HubClient(token=opts.token if github_pr else _write_token(opts.token))
    if github_pr:
        from hubfit.publish.github import DEFAULT_MARKER, GitHubClient, parse_pr_ref

        gh_repo, number = parse_pr_ref(github_pr)
        gh = None if dry_run else GitHubClient()  # no GITHUB_TOKEN fails before the analysis
        body = render_comment(opts.analyze(repo, client=client), marker=DEFAULT_MARKER)
        verb = "would post or update" if gh is None else "posting or updating"
        click.echo(f"{gh_repo}#{number}: {verb} hubfit's sticky comment ({len(body):,} characters)", err=True)
        if gh is None:
            click.echo(body)
            return
        sticky = gh.upsert_sticky_comment(gh_repo, number, body, DEFAULT_MARKER)
        click.echo(f"{gh_repo}#{number}: comment {sticky.action}", err=True)
        click.echo(sticky.url)
        return

    from hubfit.publish._hub import Publisher
    from hubfit.publish.discussions import apply_comment, plan_comment

    report = opts.analyze(repo, client=client)
    if report.source != "hub":
        raise UsageError("hubfit comment posts on a Hub repository; for a local directory use --github-pr")
    publisher = Publisher(client)
    plan = plan_comment(publisher, report.repo_id, render_comment(report), discussion=discussion)
    click.echo(plan.describe(), err=True)
    if dry_run:
        click.echo(plan.body)
        return
    result = apply_comment(publisher, plan)
    click.echo(result.url)
