"""The ``hubfit`` command line (also ``hf hubfit`` through the ``hf-hubfit`` console script).

Commands parse arguments, call the Python API and render; nothing else. Flags shared between commands are
option groups (:mod:`hubfit.cli.options`): a command receives each group as one typed object. Data goes to stdout, progress and
errors to stderr. Errors are one line, ``hubfit: error: ...``, with the exit code of :mod:`hubfit.errors`.
Heavy modules are imported inside the commands so ``hubfit --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from hubfit._version import __version__
from hubfit.cli.options import (
    ReportOptions,
    ScanApply,
    ScanOutput,
    report_options,
    scan_apply_options,
    scan_options,
    scan_output_options,
    scan_query_options,
)
from hubfit.errors import HubfitError

if TYPE_CHECKING:
    from hubfit.scan.runner import ScanOptions, ScanQuery
    from hubfit.source.sources import Progress

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


def _progress(enabled: bool) -> Progress | None:
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema hubfit/1).")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the report as Markdown.")
@click.option(
    "--details",
    "-v",
    is_flag=True,
    help="The whole report: counts by dtype, precision notes, overhead terms, every GPU of the set.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@report_options
def analyze_cmd(
    model: str, as_json: bool, as_markdown: bool, details: bool, quiet: bool, opts: ReportOptions
) -> None:
    """Count parameters and weight bytes of MODEL (a Hub repo id or a local directory), the memory to run it
    and the GPUs that hold it."""
    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    show_progress = not quiet and sys.stderr.isatty()
    report = opts.analyze(model, progress=_progress(show_progress))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif as_markdown:
        from hubfit.render.report import to_markdown

        click.echo(to_markdown(report), nl=False)
    elif details:
        from hubfit.render.report import to_text

        click.echo(to_text(report, color=_use_colour()), nl=False)
    else:
        from hubfit.render.summary import to_summary

        named = bool(opts.hardware is not None and (opts.hardware.gpus or opts.hardware.gpu_memory))
        click.echo(to_summary(report, width=_width(), named_gpus=named), nl=False)


def _width() -> int:
    """The terminal's columns on a terminal (``COLUMNS`` honoured), else 100."""
    import shutil

    from hubfit.render.summary import DEFAULT_WIDTH

    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return DEFAULT_WIDTH
    return max(60, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


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
@scan_query_options
@scan_output_options
@scan_options
@scan_apply_options
def scan_cmd(query: ScanQuery, output: ScanOutput, options: ScanOptions, publish: ScanApply) -> None:
    """Analyse every model of AUTHOR (a user or organization), cached: a re-scan reads only changed repos.

    Results are kept in a SQLite file keyed by (repo, commit sha, settings); an interrupted scan resumes, a
    failed repo is retried on the next run. --apply card|comment publishes to every analysed repo.
    """
    from hubfit.scan.runner import scan_command

    code = scan_command(
        query,
        options,
        db=output.db,
        fmt=output.fmt,
        output=output.path,
        html=output.html,
        quiet=output.quiet,
        apply=publish.target,
        yes=publish.yes,
        direct=publish.direct,
        pause_s=publish.pause_s,
        max_writes=publish.max_writes,
    )
    click.get_current_context().exit(code)


def _add_publish_commands() -> None:
    from hubfit.cli.publish import card_cmd, comment_cmd

    cli.add_command(card_cmd)
    cli.add_command(comment_cmd)


_add_publish_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hubfit`` and ``hf-hubfit`` console scripts."""
    try:
        # Outside standalone mode click returns the code a command exits with (ctx.exit), e.g. scan's.
        code = cli.main(args=argv, prog_name="hubfit", standalone_mode=False)
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
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
