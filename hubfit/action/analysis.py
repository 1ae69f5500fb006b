"""What the Action analyses: the model as checked out (or on the Hub), the pull request's base, the target.

The model input is a directory of the checkout, whose Git LFS pointer files are read through the LFS batch
API (or from ``hub-repo``, matched by sha256), never by downloading weights, or a Hub repo id. On a pull
request the model directory is also read at the base commit from the checkout's Git objects
(:mod:`hubfit.action.git`), so the comment shows what *this pull request* changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from hubfit.action.git import ensure_commit, git, git_toplevel, write_tree
from hubfit.action.inputs import ActionInputs, RunnerContext
from hubfit.errors import HubfitError, UsageError
from hubfit.model.component import Model
from hubfit.render.comment import TargetCheck
from hubfit.render.markup import cell
from hubfit.report import Report

if TYPE_CHECKING:
    from hubfit.sizing import Workload
    from hubfit.source.hub import HubClient
    from hubfit.source.lfs import LfsHeaderReader, LfsRead
    from hubfit.source.sources import Source

__all__ = [
    "Analysis",
    "analyse_base",
    "analyse_head",
    "check_target",
    "evaluate_target",
    "hub_label",
    "model_directory",
    "workload",
]


@dataclass
class Analysis:
    """One analysed model state: the model, its report, the comment's label for it and how its pointer files'
    headers were read."""

    report: Report
    label: str
    lfs_reads: list[LfsRead] = field(default_factory=list)
    model: Model | None = None


def workload(inputs: ActionInputs) -> Workload:
    """The :class:`hubfit.sizing.Workload` the inputs describe (the target's precision included)."""
    from hubfit.sizing import Workload

    return Workload(context=inputs.context, batch=inputs.batch or 1, precisions=_precisions(inputs))


def _precisions(inputs: ActionInputs) -> tuple[str, ...]:
    """The requested precisions, plus the target's, so the comment always shows the row it is judged on."""
    names = list(inputs.precisions)
    if names and inputs.fail_if_exceeds and inputs.fail_if_exceeds.precision not in names:
        names.append(inputs.fail_if_exceeds.precision)
    return tuple(names)


def _same_host(url: str, other: str) -> bool:
    return urlsplit(url).netloc.lower() == urlsplit(other).netloc.lower()


def _lfs_reader(
    root: Path, inputs: ActionInputs, ctx: RunnerContext, hub_client: HubClient
) -> LfsHeaderReader:
    """A :class:`hubfit.source.lfs.LfsHeaderReader` for pointer files under ``root``.

    The GitHub token is sent only to an LFS server on the GitHub host itself: a pull request can change
    ``.lfsconfig``, and must not be able to send the token elsewhere.
    """
    from hubfit.source.lfs import LfsClient, LfsHeaderReader, discover_lfs_url, hub_header_reader

    url = discover_lfs_url(root, server_url=ctx.server_url, repository=ctx.repository or None)
    client = None
    if url and url.startswith(("https://", "http://")):
        token = inputs.github_token if _same_host(url, ctx.server_url) else None
        client = LfsClient(url, token=token)
    hub = hub_header_reader(inputs.hub_repo, inputs.revision, client=hub_client) if inputs.hub_repo else None
    return LfsHeaderReader(root, client=client, hub=hub)


def _analyse(
    source: Source, inputs: ActionInputs, label: str, lfs_reads: list[LfsRead] | None = None
) -> Analysis:
    """The model and its full report (metadata, memory, fit) for the inputs' workload and GPUs."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import analyze_model, build_report

    engine = None
    if inputs.engine:
        from hubfit.sizing.vllm import ServeSettings

        engine = ServeSettings(
            engine=inputs.engine, version=inputs.engine_version, max_model_len=inputs.max_model_len
        )
    model = analyze_model(source)
    report = build_report(
        model, workload=workload(inputs), hardware=HardwareQuery(gpus=inputs.gpus), engine=engine
    )
    return Analysis(report, label, list(lfs_reads or []), model)


def hub_label(model: str, revision: str) -> str:
    """The comment's column title for a Hub model: ``org/name@revision`` as an inert table cell (a branch name
    may hold ``<``, ``>``, ``(``, ``)`` and ``!``: Markdown and HTML once they reach a comment)."""
    return cell(f"{model}@{revision}")


def model_directory(inputs: ActionInputs, ctx: RunnerContext) -> Path | None:
    """The checkout directory the ``model`` input names, or ``None`` when it is a Hub repo id.

    Raises:
        UsageError: the input is neither an existing directory nor an ``owner/name`` repo id.
    """
    candidate = (ctx.workspace / inputs.model).resolve()
    if candidate.is_dir():
        return candidate
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", inputs.model) and ".." not in inputs.model:
        return None
    raise UsageError(f"model {inputs.model!r} is neither a directory of the checkout nor a Hub repo id")


def _local_name(ctx: RunnerContext, top: Path | None, directory: Path) -> str:
    repo = ctx.repository or directory.name
    if top is None:
        return repo
    sub = directory.relative_to(top).as_posix() if directory != top else ""
    return f"{repo}/{sub}" if sub else repo


def analyse_head(inputs: ActionInputs, ctx: RunnerContext, hub_client: HubClient) -> Analysis:
    """Analyse the model as checked out (or on the Hub at ``revision``)."""
    from hubfit.source.sources import HubSource

    directory = model_directory(inputs, ctx)
    if directory is None:
        hub = HubSource(inputs.model, inputs.revision, client=hub_client)
        return _analyse(hub, inputs, hub_label(inputs.model, hub.revision))
    top = git_toplevel(directory)
    reader = _lfs_reader(directory, inputs, ctx, hub_client)
    source = _local_source(directory, reader, _local_name(ctx, top, directory))
    if top is not None:
        try:
            sha = git(["rev-parse", "HEAD"], top).decode().strip()
        except HubfitError:
            pass
        else:
            _pin(source, "checkout", sha)
    return _analyse(source, inputs, "this pull request" if ctx.pull_request else "checkout", reader.reads)


def _local_source(directory: Path, reader: LfsHeaderReader, repo_id: str) -> Source:
    """A :class:`~hubfit.source.sources.LocalSource` for a checkout directory, named after the GitHub repo."""
    from hubfit.source.sources import LocalSource

    # A LocalSource is a Source whose sha starts as None (sources.py does not annotate it as ``str | None``).
    source = cast("Source", LocalSource(directory, lfs=reader))
    source.repo_id = repo_id
    return source


def _pin(source: Source, revision: str, sha: str) -> None:
    """Name the commit a local directory was read at (a checkout, or a base commit written out)."""
    source.revision = revision
    source.sha = sha


def analyse_base(inputs: ActionInputs, ctx: RunnerContext, hub_client: HubClient, workdir: Path) -> Analysis:
    """Analyse the model directory at the pull request's base commit, from the checkout's Git objects.

    Raises:
        HubfitError: the base cannot be read or analysed (the caller reports it and goes on).
    """
    directory = model_directory(inputs, ctx)
    pr = ctx.pull_request or {}
    sha = (pr.get("base") or {}).get("sha")
    if directory is None or not sha:
        raise HubfitError("no base to compare: the model is not a directory of the checkout")
    top = git_toplevel(directory)
    if top is None:
        raise HubfitError(f"{directory} is not in a Git checkout")
    ensure_commit(top, sha)
    sub = directory.relative_to(top).as_posix() if directory != top else ""
    dest = workdir / "base"
    dest.mkdir(parents=True, exist_ok=True)
    if write_tree(top, sha, sub, dest) == 0:
        raise HubfitError(f"the base commit {sha[:12]} has no files under {sub or 'the repository root'}")
    reader = _lfs_reader(dest, inputs, ctx, hub_client)
    source = _local_source(dest, reader, _local_name(ctx, top, directory))
    _pin(source, (pr.get("base") or {}).get("ref") or "base", sha)
    return _analyse(source, inputs, "base", reader.reads)


# ---- fail-if-exceeds -----------------------------------------------------------------------------------


def check_target(inputs: ActionInputs) -> None:
    """Fail fast on a target naming an unknown GPU or precision (before any analysis)."""
    if inputs.fail_if_exceeds is not None:
        from hubfit.fit.gpus import find_gpu
        from hubfit.sizing import precision

        find_gpu(inputs.fail_if_exceeds.gpu)
        precision(inputs.fail_if_exceeds.precision)


def evaluate_target(model: Model, inputs: ActionInputs) -> TargetCheck | None:
    """Fit the model on exactly the target's GPUs at its precision, for the inputs' context and batch."""
    from hubfit.fit.planner import HardwareQuery, evaluate

    target = inputs.fail_if_exceeds
    if target is None:
        return None
    work = replace(workload(inputs), precisions=(target.precision,))
    row, detail = evaluate(model, work, HardwareQuery(gpus=(target.gpu,), count=target.count)).rows()[0]
    return TargetCheck(str(target), detail.fits, row.gpu, row.per_gpu_bytes, detail.usable_bytes)
