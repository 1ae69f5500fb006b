"""The ``hubfit`` command line (also ``hf hubfit`` through the ``hf-hubfit`` console script).

Commands parse arguments, call the Python API and render; nothing else. Data goes to stdout, progress and
errors to stderr. Errors are one line, ``hubfit: error: ...``, with the exit code of :mod:`hubfit.errors`.
Heavy modules are imported inside the commands so ``hubfit --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from hubfit import __version__
from hubfit.cli.options import hardware_from, hardware_options, workload_from, workload_options
from hubfit.errors import HubfitError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is not a command, is the model to analyse."""

    default_command = "analyze"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="hubfit")
def cli() -> None:
    """What hardware does a Hugging Face model need?

    \b
      hubfit meta-llama/Llama-2-70b-hf          analyse a Hub model (the default command)
      hubfit ./path/to/model                    analyse a local model directory
      hubfit analyze MODEL --json               the same, as JSON

    Reads config.json and safetensors headers only, never the weights.
    """


def _progress(enabled: bool):
    if not enabled:
        return None

    def report(done: int, total: int) -> None:
        if total > 1:
            end = "\n" if done == total else ""
            click.echo(f"\rreading safetensors headers {done}/{total}", err=True, nl=False)
            if end:
                click.echo("", err=True)

    return report


@cli.command("analyze", context_settings=CONTEXT_SETTINGS)
@click.argument("model")
@click.option("--revision", help="Branch, tag, commit sha or refs/pr/N (Hub models; default main).")
@click.option(
    "--token", envvar="HUBFIT_TOKEN", help="Hub token (default: HF_TOKEN or the `hf auth login` token)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema hubfit/1).")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the report as Markdown.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@workload_options
@hardware_options
def analyze_cmd(
    model: str,
    revision: str | None,
    token: str | None,
    as_json: bool,
    as_markdown: bool,
    quiet: bool,
    **opts: Any,
) -> None:
    """Count parameters and weight bytes of MODEL (a Hub repo id or a local directory), the memory to run it
    and the GPUs that hold it."""
    from hubfit.pipeline import analyze
    from hubfit.render.report import to_markdown, to_text

    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    workload = workload_from(opts)
    hardware = hardware_from(opts)  # an unknown GPU name fails before any Hub request
    show_progress = not quiet and sys.stderr.isatty()
    report = analyze(
        model,
        revision=revision,
        token=token,
        progress=_progress(show_progress),
        workload=workload,
        hardware=hardware,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif as_markdown:
        click.echo(to_markdown(report), nl=False)
    else:
        click.echo(to_text(report, color=_use_colour()), nl=False)


def _use_colour() -> bool:
    """ANSI colour only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


@cli.command("gpus", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the catalog as JSON (every figure with its source)."
)
@click.option("--apple-gpu-share", type=float, help="Share of unified memory the GPU may use (default 0.75).")
def gpus_cmd(as_json: bool, apple_gpu_share: float | None) -> None:
    """List the GPU catalog: memory as the device reports it, bandwidth, FP16 TFLOPS, FP8/FP4, sources."""
    from hubfit.fit.gpus import catalog, catalog_text
    from hubfit.fit.planner import HardwareQuery

    share = HardwareQuery(apple_gpu_share=apple_gpu_share).share
    if as_json:
        click.echo(json.dumps([gpu.to_dict(share) for gpu in catalog()], indent=2))
    else:
        click.echo(catalog_text(catalog(), share), nl=False)


@cli.command("scan", context_settings=CONTEXT_SETTINGS)
@click.argument("author")
@click.option("--search", help="Only models whose id contains this text.")
@click.option(
    "--filter", "filters", multiple=True, metavar="TAG", help="Only models with this Hub tag (repeatable)."
)
@click.option("--limit", type=int, help="At most this many models from the listing.")
@click.option(
    "--gated",
    type=click.Choice(["include", "skip"]),
    default="include",
    show_default=True,
    help="Analyse gated models (needs a token with access) or leave them out.",
)
@click.option("--concurrency", type=int, default=None, help="Models analysed at once (default 4).")
@click.option(
    "--db", type=click.Path(dir_okay=False), help="Cache database (default $HF_HOME/hubfit/scan.sqlite)."
)
@click.option("--refresh", is_flag=True, help="Analyse every model again, ignoring cached results.")
@click.option(
    "--retry-errors", is_flag=True, help="Also retry models whose failure was recorded as permanent."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "jsonl", "md"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the output to FILE, not stdout.")
@click.option(
    "--html", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report to FILE."
)
@click.option(
    "--token", envvar="HUBFIT_TOKEN", help="Hub token (default: HF_TOKEN or the `hf auth login` token)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@workload_options
@hardware_options
@click.option(
    "--apply",
    type=click.Choice(["card", "comment"]),
    help="Publish to every analysed repo: the model-card section or a discussion comment (dry run unless --yes).",
)
@click.option("--yes", is_flag=True, help="With --apply: write (default: only say what would be written).")
@click.option("--commit", "direct", is_flag=True, help="With --apply card: commit to main instead of a PR.")
@click.option("--pause", type=float, help="With --apply: seconds between two writes (default 10).")
@click.option("--max-writes", type=int, help="With --apply: stop after this many writes.")
@click.pass_context
def scan_cmd(
    ctx: click.Context,
    author: str,
    search: str | None,
    filters: tuple[str, ...],
    limit: int | None,
    gated: str,
    concurrency: int | None,
    db: str | None,
    refresh: bool,
    retry_errors: bool,
    fmt: str,
    output: str | None,
    html: str | None,
    token: str | None,
    quiet: bool,
    apply: str | None,
    yes: bool,
    direct: bool,
    pause: float | None,
    max_writes: int | None,
    **opts: Any,
) -> None:
    """Analyse every model of AUTHOR (a user or organization), cached: a re-scan reads only changed repos.

    Results are kept in a SQLite file keyed by (repo, commit sha, settings); an interrupted scan resumes, a
    failed repo is retried on the next run. --apply card|comment publishes to every analysed repo.
    """
    from hubfit.scan.runner import DEFAULT_CONCURRENCY, ScanOptions, ScanQuery, scan_command

    query = ScanQuery(author, search=search, filters=filters, limit=limit, gated=gated)
    options = ScanOptions(
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        token=token,
        workload=workload_from(opts),
        hardware=hardware_from(opts),
        refresh=refresh,
        retry_errors=retry_errors,
    )
    code = scan_command(
        query,
        options,
        db=db,
        fmt=fmt,
        output=output,
        html=html,
        quiet=quiet,
        apply=apply,
        yes=yes,
        direct=direct,
        pause_s=pause,
        max_writes=max_writes,
    )
    ctx.exit(code)


def _add_publish_commands() -> None:
    from hubfit.cli.publish import card_cmd, comment_cmd

    cli.add_command(card_cmd)
    cli.add_command(comment_cmd)


_add_publish_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hubfit`` and ``hf-hubfit`` console scripts."""
    try:
        cli.main(args=argv, prog_name="hubfit", standalone_mode=False)
    except HubfitError as exc:
        click.echo(f"hubfit: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("hubfit: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("hubfit: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("HUBFIT_DEBUG"):
            raise
        click.echo(
            f"hubfit: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
            "(set HUBFIT_DEBUG=1 for the traceback and please report it)",
            err=True,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
