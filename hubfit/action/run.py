"""The GitHub Action: ``python -m hubfit.action``, run by ``action.yml``.

It reads what the runner provides (``GITHUB_EVENT_NAME``, ``GITHUB_EVENT_PATH``, ``GITHUB_STEP_SUMMARY``,
``GITHUB_OUTPUT``, ``GITHUB_API_URL``, ``GITHUB_REPOSITORY`` ...) and the action's inputs, which
``action.yml`` passes as ``INPUT_*`` environment variables (never interpolated into a script). Then:

1. it analyses the model: a directory of the checkout (Git LFS pointer files are read through the LFS
   batch API, or from ``hub-repo`` matched by sha256, never by downloading weights) or a Hub repo id;
2. on ``pull_request`` it also analyses the model at the pull request's base commit, read from the Git
   objects of the checkout (``git ls-tree`` / ``git cat-file``; the one commit is fetched with depth 1 when
   the checkout lacks it), so the comment shows what *this pull request* changes. A Hub repo id has no base
   in the pull request; its comment has no comparison;
3. it renders one Markdown body from the reports (:mod:`hubfit.render`), appends it to the job summary and
   posts or updates one sticky comment on the pull request (:class:`hubfit.publish.github.GitHubClient`).
   A pull request from a fork gets no comment (its token is read-only): the body is left in the output
   directory for the ``workflow_run`` pattern, where a second run with ``report-dir`` posts it after checking
   that the pull request's head is the commit the first run analysed;
4. on the default branch (a push, a scheduled or a manual run) with ``update-card`` set, it refreshes the
   model card on ``hub-repo`` through ``hubfit card``;
5. it writes the outputs (``json``, ``total-parameters``, ``fits``, ``dir``) and fails the step, last, when
   the model exceeds ``fail-if-exceeds``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hubfit.errors import HubfitError, UsageError
from hubfit.model.component import Model
from hubfit.report import Report

__all__ = [
    "ActionInputs",
    "FitTarget",
    "RunnerContext",
    "main",
    "render_comment",
    "run",
]

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
#: Keep comments well under GitHub's 65,536-character limit (the sticky marker is appended).
COMMENT_BUDGET = 60_000
#: Job summaries over 1024 KiB are rejected by the runner.
SUMMARY_BUDGET = 1_000_000


# ---- inputs and runner context -----------------------------------------------------------------------


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise UsageError(f"input {name} must be true or false, got {value!r}")


def _int(name: str, value: str, *, minimum: int) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise UsageError(f"input {name} must be a whole number of at least {minimum}, got {value!r}")
    return int(text)


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class FitTarget:
    """A ``fail-if-exceeds`` target: ``count`` GPUs named ``gpu`` at ``precision`` ("1x RTX 4090 @ int4")."""

    count: int
    gpu: str
    precision: str

    @classmethod
    def parse(cls, text: str) -> FitTarget:
        """Parse ``"[N x] GPU @ PRECISION"`` (``x`` or ``×``; the count defaults to 1).

        Raises:
            UsageError: the text does not have that shape.
        """
        match = re.fullmatch(r"\s*(?:(\d+)\s*[x×]\s+)?(.+?)\s*@\s*([A-Za-z0-9_.]+)\s*", text)
        if (
            not match
            or (match.group(1) is not None and int(match.group(1)) < 1)
            or re.fullmatch(r"\d+\s*[x×]", match.group(2))
        ):
            raise UsageError(
                f"fail-if-exceeds must look like '1x RTX 4090 @ int4' (count, GPU, precision), got {text!r}"
            )
        return cls(int(match.group(1) or 1), match.group(2), match.group(3))

    def __str__(self) -> str:
        return f"{self.count}x {self.gpu} @ {self.precision}"


@dataclass(frozen=True)
class ActionInputs:
    """The action's inputs, validated (see ``action.yml`` for their meaning)."""

    model: str = "."
    hub_repo: str | None = None
    revision: str | None = None
    context: int | None = None
    batch: int | None = None
    gpus: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    comment: bool = True
    update_card: str = "false"
    hf_token: str | None = field(default=None, repr=False)
    github_token: str | None = field(default=None, repr=False)
    fail_if_exceeds: FitTarget | None = None
    report_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionInputs:
        """Read ``INPUT_*`` variables (``INPUT_HUB_REPO`` for ``hub-repo`` ...).

        Raises:
            UsageError: an input has an invalid value.
        """

        def get(name: str) -> str:
            return env.get(f"INPUT_{name.upper().replace('-', '_')}", "").strip()

        update_card = get("update-card").lower() or "false"
        if update_card not in ("false", "pr", "commit"):
            raise UsageError(f"input update-card must be false, pr or commit, got {update_card!r}")
        target = get("fail-if-exceeds")
        return cls(
            model=get("model") or ".",
            hub_repo=get("hub-repo") or None,
            revision=get("revision") or None,
            context=_int("context", get("context"), minimum=0),
            batch=_int("batch", get("batch"), minimum=1),
            gpus=_list(get("gpus")),
            precisions=_list(get("precisions")),
            comment=_flag("comment", get("comment") or "true"),
            update_card=update_card,
            hf_token=get("hf-token") or None,
            github_token=get("github-token") or None,
            fail_if_exceeds=FitTarget.parse(target) if target else None,
            report_dir=get("report-dir") or None,
        )


@dataclass(frozen=True)
class RunnerContext:
    """What the GitHub runner tells a step, from its environment variables."""

    event_name: str
    event: dict[str, Any]
    workspace: Path
    repository: str
    server_url: str
    api_url: str
    sha: str
    ref: str
    run_url: str | None
    summary_path: Path | None
    output_path: Path | None
    out_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerContext:
        """Read the ``GITHUB_*`` and ``RUNNER_TEMP`` variables and the event payload.

        Raises:
            UsageError: the event payload cannot be read.
        """
        event: dict[str, Any] = {}
        if env.get("GITHUB_EVENT_PATH"):
            try:
                event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the event payload GITHUB_EVENT_PATH: {exc}") from None
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repository = env.get("GITHUB_REPOSITORY", "")
        run_url = None
        if repository and env.get("GITHUB_RUN_ID"):
            run_url = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}"
        temp = env.get("RUNNER_TEMP") or tempfile.gettempdir()
        return cls(
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event if isinstance(event, dict) else {},
            workspace=Path(env.get("GITHUB_WORKSPACE") or os.getcwd()),
            repository=repository,
            server_url=server,
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA", ""),
            ref=env.get("GITHUB_REF", ""),
            run_url=run_url,
            summary_path=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output_path=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            out_dir=Path(env.get("HUBFIT_OUT_DIR") or Path(temp, "hubfit")),
        )

    @property
    def pull_request(self) -> dict[str, Any] | None:
        """The ``pull_request`` object of a pull request event."""
        if self.event_name in PULL_REQUEST_EVENTS:
            pr = self.event.get("pull_request")
            return pr if isinstance(pr, dict) else None
        return None

    @property
    def from_fork(self) -> bool:
        """Whether the pull request comes from another repository (its token is read-only, no secrets)."""
        pr = self.pull_request or {}
        head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        base = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
        return bool(head and base and head != base)

    @property
    def on_default_branch(self) -> bool:
        """A push to the default branch, a scheduled run (always on it) or a manual run on it."""
        if self.event_name == "schedule":
            return True
        if self.event_name not in ("push", "workflow_dispatch"):
            return False
        default = (self.event.get("repository") or {}).get("default_branch")
        return bool(default) and (self.event.get("ref") or self.ref) == f"refs/heads/{default}"


# ---- the model: a checkout directory (maybe LFS pointers) or a Hub repo id --------------------------------


@dataclass
class Analysis:
    """One analysed model state: the report and how its pointer files' headers were read."""

    report: Report
    label: str
    lfs_reads: list[Any] = field(default_factory=list)
    model: Model | None = None


def _git(args: list[str], cwd: Path, *, stdin: bytes | None = None) -> bytes:
    """Run git; :class:`HubfitError` with git's first error line when it fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise HubfitError(f"git {args[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[0]
        raise HubfitError(f"git {args[0]} failed: {first}")
    return done.stdout


def git_toplevel(directory: Path) -> Path | None:
    """The top of the Git checkout containing ``directory``, or ``None``."""
    try:
        return Path(_git(["rev-parse", "--show-toplevel"], directory).decode().strip())
    except HubfitError:
        return None


def ensure_commit(top: Path, sha: str) -> None:
    """Make sure ``sha`` is in the local object store, fetching that one commit (depth 1) when not.

    ``actions/checkout`` fetches one commit by default and keeps its credentials for ``origin``.

    Raises:
        HubfitError: the commit cannot be had.
    """
    try:
        _git(["cat-file", "-e", f"{sha}^{{commit}}"], top)
    except HubfitError:
        _git(["fetch", "--no-tags", "--no-recurse-submodules", "--depth=1", "origin", sha], top)


def write_tree(top: Path, sha: str, subdir: str, dest: Path) -> int:
    """Write the files under ``subdir`` of commit ``sha`` into ``dest`` exactly as Git stores them.

    Git LFS files stay pointer files (no smudge filter runs), so nothing large is written. Symlinks and
    submodules are skipped. Returns the number of files written.
    """
    spec = [subdir.rstrip("/") + "/"] if subdir not in ("", ".") else []
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", sha, "--", *spec], top)
    blobs: list[tuple[str, str]] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            blobs.append((oid, path.decode("utf-8", "surrogateescape")))
    if not blobs:
        return 0
    data = _git(["cat-file", "--batch"], top, stdin="".join(f"{oid}\n" for oid, _ in blobs).encode())
    pos = 0
    prefix = spec[0] if spec else ""
    for oid, path in blobs:
        newline = data.index(b"\n", pos)
        got_oid, _, size = data[pos:newline].decode().split()
        if got_oid != oid:
            raise HubfitError(f"git cat-file answered {got_oid} for {oid}")
        start = newline + 1
        target = (dest / path[len(prefix) :]).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise HubfitError(f"the base commit has a path outside its directory: {path!r:.200}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[start : start + int(size)])
        pos = start + int(size) + 1
    return len(blobs)


def _same_host(url: str, other: str) -> bool:
    return urlsplit(url).netloc.lower() == urlsplit(other).netloc.lower()


def _lfs_reader(root: Path, inputs: ActionInputs, ctx: RunnerContext, hub_client: Any) -> Any:
    """An :class:`hubfit.lfs.LfsHeaderReader` for pointer files under ``root``.

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


def workload(inputs: ActionInputs) -> Any:
    """The :class:`hubfit.memory.Workload` the inputs describe."""
    from hubfit.sizing.memory import Workload

    return Workload(context=inputs.context, batch=inputs.batch or 1, precisions=_precisions(inputs))


def _analyse(source: Any, inputs: ActionInputs, label: str, lfs_reads: list[Any] | None = None) -> Analysis:
    """The model and its full report (metadata, memory, fit) for the inputs' workload and GPUs."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import analyze_model, build_report

    model = analyze_model(source)
    report = build_report(model, workload=workload(inputs), hardware=HardwareQuery(gpus=inputs.gpus))
    return Analysis(report, label, list(lfs_reads or []), model)


def _precisions(inputs: ActionInputs) -> tuple[str, ...]:
    """The requested precisions, plus the target's, so the comment always shows the row it is judged on."""
    names = list(inputs.precisions)
    if names and inputs.fail_if_exceeds and inputs.fail_if_exceeds.precision not in names:
        names.append(inputs.fail_if_exceeds.precision)
    return tuple(names)


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


def analyse_head(inputs: ActionInputs, ctx: RunnerContext, hub_client: Any) -> Analysis:
    """Analyse the model as checked out (or on the Hub at ``revision``)."""
    from hubfit.source.sources import HubSource, LocalSource

    directory = model_directory(inputs, ctx)
    if directory is None:
        source: Any = HubSource(inputs.model, inputs.revision, client=hub_client)
        return _analyse(source, inputs, f"{inputs.model}@{source.revision}")
    top = git_toplevel(directory)
    reader = _lfs_reader(directory, inputs, ctx, hub_client)
    source = LocalSource(directory, lfs=reader)
    source.repo_id = _local_name(ctx, top, directory)
    if top is not None:
        try:
            source.sha = _git(["rev-parse", "HEAD"], top).decode().strip()
            source.revision = "checkout"
        except HubfitError:
            pass
    return _analyse(source, inputs, "this pull request" if ctx.pull_request else "checkout", reader.reads)


def analyse_base(inputs: ActionInputs, ctx: RunnerContext, hub_client: Any, workdir: Path) -> Analysis:
    """Analyse the model directory at the pull request's base commit, from the checkout's Git objects.

    Raises:
        HubfitError: the base cannot be read or analysed (the caller reports it and goes on).
    """
    from hubfit.source.sources import LocalSource

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
    source = LocalSource(dest, lfs=reader)
    source.repo_id = _local_name(ctx, top, directory)
    source.revision = (pr.get("base") or {}).get("ref") or "base"
    source.sha = sha
    return _analyse(source, inputs, "base", reader.reads)


# ---- fail-if-exceeds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetResult:
    """How the model compares with the ``fail-if-exceeds`` target (bytes per GPU)."""

    target: FitTarget
    fits: bool
    gpu_name: str
    per_gpu_bytes: int
    usable_bytes: int


def check_target(inputs: ActionInputs) -> None:
    """Fail fast on a target naming an unknown GPU or precision (before any analysis)."""
    if inputs.fail_if_exceeds is not None:
        from hubfit.fit.gpus import find_gpu
        from hubfit.sizing.memory import precision

        find_gpu(inputs.fail_if_exceeds.gpu)
        precision(inputs.fail_if_exceeds.precision)


def evaluate_target(model: Model, inputs: ActionInputs) -> TargetResult | None:
    """Fit the model on exactly the target's GPUs at its precision, for the inputs' context and batch."""
    from dataclasses import replace

    from hubfit.fit.planner import HardwareQuery, evaluate

    target = inputs.fail_if_exceeds
    if target is None:
        return None
    work = replace(workload(inputs), precisions=(target.precision,))
    row, detail = evaluate(model, work, HardwareQuery(gpus=(target.gpu,), count=target.count)).rows()[0]
    return TargetResult(target, detail.fits, row.gpu, row.per_gpu_bytes, detail.usable_bytes)


# ---- rendering ---------------------------------------------------------------------------------------


def marker(model: str) -> str:
    """The hidden marker of this model's sticky comment (one comment per model input per pull request)."""
    return f"<!-- hubfit:action {hashlib.sha256(model.encode()).hexdigest()[:12]} -->"


def _change(before: int | None, after: int | None, fmt: Any) -> str:
    if before is None or after is None:
        return "new" if before is None and after is not None else "removed" if after is None else ""
    if before == after:
        return "—"
    delta = after - before
    sign = "+" if delta > 0 else "−"
    text = sign + fmt(abs(delta))
    if before:
        share = abs(delta) / before
        text += f" ({sign}{share:.1%})" if share >= 0.001 else " (<0.1%)"
    return text


def _rows(data: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """The compared figures of one report's JSON: label -> (value, kind)."""
    rows: dict[str, tuple[int, str]] = {"Parameters": (data["parameters"]["total"], "count")}
    if data["parameters"]["active"] != data["parameters"]["total"]:
        rows["Active parameters per token"] = (data["parameters"]["active"], "count")
    rows["Weights as stored"] = (data["weights"]["bytes"], "bytes")
    for row in data.get("estimates", []):
        rows[f"Memory at `{row['precision']}`"] = (row["total_bytes"], "bytes")
    kv = data.get("kv_cache")
    if kv and kv.get("context"):
        rows[f"KV cache ({kv['context']:,} tokens × {kv['batch']}, {kv['dtype']})"] = (kv["bytes"], "bytes")
    return rows


def _fit_changes(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    def counts(data: dict[str, Any]) -> dict[tuple[str, str], int]:
        return {(f["gpu"], f["precision"]): f["count"] for f in data.get("fits", [])}

    before, after = counts(base), counts(head)
    lines = []
    for key in after:
        if key in before and before[key] != after[key]:
            old, new = (str(n) if n else "does not fit" for n in (before[key], after[key]))
            lines.append(f"| {key[0]} | `{key[1]}` | {old} | {new} |")
    return lines


def render_comment(
    head: Analysis,
    base: Analysis | None = None,
    *,
    base_error: str | None = None,
    target: TargetResult | None = None,
    run_url: str | None = None,
    compact: bool = False,
) -> str:
    """The Markdown body for the pull request comment and the job summary.

    Figures come from the reports (their JSON and :mod:`hubfit.render`); nothing is recomputed here except
    the differences between the two reports. ``compact`` leaves out the full report (for long comments).
    """
    from hubfit import __version__
    from hubfit.render.markup import code
    from hubfit.render.report import to_markdown
    from hubfit.units import gb, gib, human_bytes

    report = head.report
    data = report.to_dict()
    where = f" at `{report.sha[:12]}`" if report.sha else ""
    out = ["## hubfit: hardware report", "", f"**{code(report.repo_id)}**{where}."]
    head_rows = _rows(data)
    fmt = {"count": lambda n: f"{n:,}", "bytes": lambda n: gb(n) if n >= 10**8 else human_bytes(n)}
    if base is not None:
        base_data = base.report.to_dict()
        base_rows = _rows(base_data)
        base_name = f"base {code(base.report.revision)}" + (
            f" `{base.report.sha[:7]}`" if base.report.sha else ""
        )
        out += ["", f"| | {base_name} | {head.label} | change |", "|---|---:|---:|---:|"]
        for label in list(dict.fromkeys([*head_rows, *base_rows])):
            old, new = base_rows.get(label), head_rows.get(label)
            kind = (new or old)[1]  # type: ignore[index]
            cells = [fmt[kind](v[0]) if v else "—" for v in (old, new)]
            change = _change(old[0] if old else None, new[0] if new else None, fmt[kind])
            out.append(f"| {label} | {cells[0]} | {cells[1]} | {change} |")
        changes = _fit_changes(base_data, data)
        if changes:
            out += ["", "GPUs needed, where this pull request changes them:", ""]
            out += [f"| GPU | precision | {base_name} | {head.label} |", "|---|---|---:|---:|", *changes]
        elif data.get("fits"):
            out += ["", "The GPUs needed are unchanged."]
    else:
        if base_error:
            out += ["", f"No comparison with the base: {code(base_error, max_len=300)}."]
        out += ["", f"| | {head.label} |", "|---|---:|"]
        out += [f"| {label} | {fmt[kind](value)} |" for label, (value, kind) in head_rows.items()]
    if target is not None:
        verdict = "fits" if target.fits else "**exceeds**"
        out += [
            "",
            f"{'✅' if target.fits else '❌'} `fail-if-exceeds` {code(str(target.target))}: the model {verdict} "
            f"({gib(target.per_gpu_bytes)} per GPU, {gib(target.usable_bytes)} usable on {target.gpu_name}).",
        ]
    if not compact:
        out += [
            "",
            "<details><summary>Full report</summary>",
            "",
            to_markdown(report).rstrip("\n"),
            "",
            "</details>",
        ]
    elif run_url:
        out += ["", f"The full report is in the [job summary]({run_url})."]
    out += ["", _provenance(head, base, __version__)]
    return "\n".join(out) + "\n"


def _provenance(head: Analysis, base: Analysis | None, version: str) -> str:
    reads = [*head.lfs_reads, *(base.lfs_reads if base else [])]
    text = "Read from `config.json` and safetensors headers only; memory = weights + KV cache + overhead; GB = 10^9 bytes."
    if reads:
        by_path: dict[str, set[str]] = {}
        for read in reads:
            by_path.setdefault(read.via, set()).add(
                read.where.split("@")[0] if read.via == "hub" else read.where
            )
        parts = []
        for via, wheres in by_path.items():
            count = sum(1 for r in reads if r.via == via)
            if via == "lfs-batch":
                hosts = ", ".join(sorted(urlsplit(w).netloc for w in wheres))
                parts.append(f"{count} through the Git LFS batch API of {hosts}")
            else:
                parts.append(f"{count} from the Hub files with the same sha256 ({', '.join(sorted(wheres))})")
        text += f" Git LFS pointer files: headers read {' and '.join(parts)}; no weights downloaded."
    return f"<sub>{text} hubfit {version}.</sub>"


# ---- outputs, summary, comment, card -----------------------------------------------------------------


def write_outputs(path: Path | None, values: Mapping[str, str]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT`` (``name=value`` lines; a heredoc for multi-line values)."""
    if path is None:
        return
    with path.open("a", encoding="utf-8") as fh:
        for name, value in values.items():
            if "\n" in value:
                delimiter = f"hubfit_{hashlib.sha256(value.encode()).hexdigest()[:16]}"
                fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                fh.write(f"{name}={value}\n")


def append_summary(path: Path | None, body: str) -> None:
    """Append ``body`` to the job summary (``$GITHUB_STEP_SUMMARY``), within the runner's size limit."""
    if path is None:
        return
    if len(body.encode()) > SUMMARY_BUDGET:
        body = body.encode()[: SUMMARY_BUDGET - 200].decode("utf-8", "ignore") + "\n\n(truncated)\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(body + "\n")


def _log(message: str) -> None:
    print(message, flush=True)


def _github(inputs: ActionInputs, ctx: RunnerContext) -> Any:
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
        _log(
            "::notice title=hubfit::pull request from a fork: its token cannot comment. The comment is in "
            f"{ctx.out_dir}; post it from a workflow_run job (see the hubfit README)."
        )
        return None
    result = _github(inputs, ctx).upsert_sticky_comment(
        ctx.repository, int(pr["number"]), body, marker(inputs.model)
    )
    _log(f"hubfit: pull request comment {result.action}: {result.url}")
    return result.url


def update_card(inputs: ActionInputs, ctx: RunnerContext) -> None:
    """On the default branch (push, schedule, manual run), refresh hub-repo's model card (``hubfit card``).

    The token reaches the command through ``HF_TOKEN`` in its environment, never its command line.
    """
    if inputs.update_card == "false" or not ctx.on_default_branch:
        return
    if not inputs.hub_repo:
        raise UsageError("update-card needs hub-repo (the Hub repository whose card to refresh)")
    if not inputs.hf_token:
        raise UsageError("update-card needs hf-token (a token with write access to hub-repo)")
    args = [sys.executable, "-m", "hubfit.cli", "card", inputs.hub_repo, "--mode", inputs.update_card]
    if inputs.revision:
        args += ["--revision", inputs.revision]
    if inputs.context is not None:
        args += ["--context", str(inputs.context)]
    if inputs.batch is not None:
        args += ["--batch", str(inputs.batch)]
    for name in inputs.precisions:
        args += ["--precision", name]
    for name in inputs.gpus:
        args += ["--gpu", name]
    env = {**os.environ, "HF_TOKEN": inputs.hf_token}
    _log(f"hubfit: refreshing the model card of {inputs.hub_repo} ({inputs.update_card})")
    done = subprocess.run(args, env=env, check=False)
    if done.returncode != 0:
        raise HubfitError(f"hubfit card {inputs.hub_repo} failed with exit code {done.returncode}")


# ---- workflow_run: post a comment a pull_request run left behind --------------------------------------

_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


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
    from hubfit.errors import PublishError

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
    _log(f"hubfit: pull request comment {result.action}: {result.url}")
    return result.url


# ---- the step ------------------------------------------------------------------------------------------


def run(env: Mapping[str, str]) -> int:
    """Run the action with the environment ``env``; returns the process exit code.

    Raises:
        HubfitError: any failure (``main`` prints it as a workflow error).
    """
    inputs = ActionInputs.from_env(env)
    ctx = RunnerContext.from_env(env)
    if ctx.event_name == "workflow_run":
        post_from_artifact(inputs, ctx)
        return 0
    check_target(inputs)
    from hubfit.source.hub import HubClient

    hub_client = HubClient(token=inputs.hf_token)
    head = analyse_head(inputs, ctx, hub_client)
    base: Analysis | None = None
    base_error: str | None = None
    if ctx.pull_request is not None and model_directory(inputs, ctx) is not None:
        with tempfile.TemporaryDirectory(prefix="hubfit-base-") as workdir:
            try:
                base = analyse_base(inputs, ctx, hub_client, Path(workdir))
            except HubfitError as exc:
                base_error = str(exc)
                _log(f"::warning title=hubfit::no comparison with the base commit: {exc}")
    target = evaluate_target(head.model, inputs) if head.model is not None else None

    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = ctx.out_dir / "report.json"
    json_path.write_text(json.dumps(head.report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if base is not None:
        (ctx.out_dir / "base.json").write_text(
            json.dumps(base.report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    full = render_comment(head, base, base_error=base_error, target=target)
    body = full
    if len(body) > COMMENT_BUDGET:
        body = render_comment(
            head, base, base_error=base_error, target=target, run_url=ctx.run_url, compact=True
        )
    (ctx.out_dir / "comment.md").write_text(body, encoding="utf-8")
    pr = ctx.pull_request
    meta = {
        "model": inputs.model,
        "event": ctx.event_name,
        "pull_request": pr.get("number") if pr else None,
        "head_sha": ((pr or {}).get("head") or {}).get("sha") or ctx.sha,
        "base_sha": base.report.sha if base else None,
        "lfs_reads": [vars(r) for r in [*head.lfs_reads, *(base.lfs_reads if base else [])]],
    }
    (ctx.out_dir / "action.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    append_summary(ctx.summary_path, full)
    write_outputs(
        ctx.output_path,
        {
            "json": str(json_path),
            "total-parameters": str(head.report.parameters.total),
            "fits": "" if target is None else str(target.fits).lower(),
            "dir": str(ctx.out_dir),
        },
    )
    post_comment(inputs, ctx, body)
    update_card(inputs, ctx)
    if target is not None and not target.fits:
        _log(
            f"::error title=hubfit::the model exceeds {target.target}: it needs {target.per_gpu_bytes / 2**30:,.2f} GiB "
            f"per GPU and {target.gpu_name} offers {target.usable_bytes / 2**30:,.2f} GiB"
        )
        return 1
    return 0


def main() -> int:
    """Entry point of ``python -m hubfit.action``: errors become one workflow error line and an exit code."""
    try:
        return run(os.environ)
    except HubfitError as exc:
        _log(f"::error title=hubfit::{exc}")
        return exc.exit_code
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("HUBFIT_DEBUG"):
            raise
        _log(
            f"::error title=hubfit::internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
            "(set HUBFIT_DEBUG=1 for the traceback and please report it)"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
