"""The pull request comment (and job summary) of the GitHub Action: a head report, optionally against a base.

:func:`render_comment` is a pure function of two :class:`~hubfit.report.Report` objects and a few labels. It
formats what the reports hold, with :mod:`hubfit.render`'s formatting (:func:`~hubfit.render.report.to_markdown`
for the full report, :mod:`hubfit.render.markup` for code spans, :mod:`hubfit.units` for sizes); the only
figures it computes are the differences between base and head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hubfit._version import __version__
from hubfit.render.markup import code
from hubfit.render.report import to_markdown
from hubfit.units import gb, gib, human_bytes

if TYPE_CHECKING:
    from hubfit.report import Report
    from hubfit.source.lfs import LfsRead

__all__ = ["TargetCheck", "render_comment"]


@dataclass(frozen=True)
class TargetCheck:
    """How the model compares with the Action's ``fail-if-exceeds`` target (bytes per GPU).

    Attributes:
        target: the target as the user wrote it, normalised (``"1x RTX 4090 @ int4"``).
        fits: whether the model fits it.
        gpu_name: the catalog name of the target's GPU.
        per_gpu_bytes: what the busiest GPU holds.
        usable_bytes: what one such GPU offers.
    """

    target: str
    fits: bool
    gpu_name: str
    per_gpu_bytes: int
    usable_bytes: int


def _count(n: int) -> str:
    return f"{n:,}"


def _bytes(n: int) -> str:
    return gb(n) if n >= 10**8 else human_bytes(n)


_FORMATS: dict[str, Callable[[int], str]] = {"count": _count, "bytes": _bytes}


def _rows(report: Report) -> dict[str, tuple[int, str]]:
    """The compared figures of one report: label -> (value, kind)."""
    p = report.parameters
    rows: dict[str, tuple[int, str]] = {"Parameters": (p.total, "count")}
    if p.active != p.total:
        rows["Active parameters per token"] = (p.active, "count")
    rows["Weights as stored"] = (report.weights.bytes, "bytes")
    memory = report.memory
    if memory is not None:
        for row in memory.estimates:
            rows[f"Memory at {code(row.precision)}"] = (row.total_bytes, "bytes")
        kv = memory.kv_cache
        if kv.context:
            rows[f"KV cache ({kv.context:,} tokens × {kv.batch}, {kv.dtype})"] = (kv.bytes, "bytes")
    return rows


def _change(before: int | None, after: int | None, fmt: Callable[[int], str]) -> str:
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


def _fit_changes(base: Report, head: Report) -> list[str]:
    """Table rows for each (GPU, precision) whose device count differs between base and head."""

    def counts(report: Report) -> dict[tuple[str, str], int]:
        return {(f.gpu, f.precision): f.count for f in (report.fit.fits if report.fit else [])}

    before, after = counts(base), counts(head)
    lines = []
    for key, count in after.items():
        if key in before and before[key] != count:
            old, new = (str(n) if n else "does not fit" for n in (before[key], count))
            lines.append(f"| {key[0]} | {code(key[1])} | {old} | {new} |")
    return lines


def _provenance(reads: Sequence[LfsRead]) -> str:
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
    return f"<sub>{text} hubfit {__version__}.</sub>"


def render_comment(
    head: Report,
    base: Report | None = None,
    *,
    head_label: str,
    base_error: str | None = None,
    target: TargetCheck | None = None,
    lfs_reads: Sequence[LfsRead] = (),
    run_url: str | None = None,
    compact: bool = False,
) -> str:
    """The Markdown body of the Action's pull request comment and job summary.

    Args:
        head: the report of the model as the pull request (or the checkout) has it.
        base: the report at the pull request's base commit; the comment then compares the two.
        head_label: the head column's title (``"this pull request"``, ``"checkout"``, ``"org/name@main"``).
        base_error: why there is no base report, said in place of the comparison.
        target: the ``fail-if-exceeds`` verdict, when a target was given.
        lfs_reads: how Git LFS pointer files' headers were read (both sides), for the provenance line.
        run_url: the workflow run, linked from a ``compact`` comment.
        compact: leave out the full report (for comments over GitHub's size limit).
    """
    where = f" at {code(head.sha[:12])}" if head.sha else ""
    out = ["## hubfit: hardware report", "", f"**{code(head.repo_id)}**{where}."]
    head_rows = _rows(head)
    if base is not None:
        base_rows = _rows(base)
        base_name = f"base {code(base.revision)}" + (f" {code(base.sha[:7])}" if base.sha else "")
        out += ["", f"| | {base_name} | {head_label} | change |", "|---|---:|---:|---:|"]
        for label in dict.fromkeys([*head_rows, *base_rows]):
            old, new = base_rows.get(label), head_rows.get(label)
            kind = new[1] if new else old[1] if old else "count"
            fmt = _FORMATS[kind]
            cells = [fmt(v[0]) if v else "—" for v in (old, new)]
            change = _change(old[0] if old else None, new[0] if new else None, fmt)
            out.append(f"| {label} | {cells[0]} | {cells[1]} | {change} |")
        changes = _fit_changes(base, head)
        if changes:
            out += ["", "GPUs needed, where this pull request changes them:", ""]
            out += [f"| GPU | precision | {base_name} | {head_label} |", "|---|---|---:|---:|", *changes]
        elif head.fit is not None and head.fit.fits:
            out += ["", "The GPUs needed are unchanged."]
    else:
        if base_error:
            out += ["", f"No comparison with the base: {code(base_error, max_len=300)}."]
        out += ["", f"| | {head_label} |", "|---|---:|"]
        out += [f"| {label} | {_FORMATS[kind](value)} |" for label, (value, kind) in head_rows.items()]
    if target is not None:
        verdict = "fits" if target.fits else "**exceeds**"
        out += [
            "",
            f"{'✅' if target.fits else '❌'} `fail-if-exceeds` {code(target.target)}: the model {verdict} "
            f"({gib(target.per_gpu_bytes)} per GPU, {gib(target.usable_bytes)} usable on {target.gpu_name}).",
        ]
    if not compact:
        out += [
            "",
            "<details><summary>Full report</summary>",
            "",
            to_markdown(head).rstrip("\n"),
            "",
            "</details>",
        ]
    elif run_url:
        out += ["", f"The full report is in the [job summary]({run_url})."]
    out += ["", _provenance(lfs_reads)]
    return "\n".join(out) + "\n"
