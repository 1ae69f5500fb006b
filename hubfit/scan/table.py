"""Output formats of ``hubfit scan``: csv, json, jsonl, md and the terminal summary table.

Every figure comes from the stored ``Report.to_dict()`` of each repo (the "hubfit/1" schema); nothing is
recomputed here. JSON and JSONL rows are that dict plus ``error``. The flat views (csv, md, table, HTML) read
the same document as the typed :class:`~hubfit.report.Report` through :func:`summarize`: the smallest fit is
the report's own fit row (its detail's verdict says whether it fits), and numbers are written by
:mod:`hubfit.units` (parameters as ``human_count``, bytes as ``gb``), as in every other output. Writers take a
callable returning a fresh row iterator so they can stream from the database (a pass to learn the precision
columns, a pass to write) with flat memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from hubfit.errors import HeaderError
from hubfit.fit.planner import FitReport, FitRow
from hubfit.scan.store import ScanRow
from hubfit.units import gb, human_count

if TYPE_CHECKING:
    from hubfit.report import Report

__all__ = [
    "FORMATS",
    "RowSummary",
    "bytes_text",
    "count_text",
    "fit_label",
    "has_fits",
    "precisions_of",
    "smallest_fit",
    "summarize",
    "write",
]

FORMATS = ("csv", "json", "jsonl", "md", "table")

RowSource = Callable[[], Iterable[ScanRow]]


@dataclass(frozen=True)
class RowSummary:
    """The flat figures of one scanned repo, read from its stored report.

    ``fits`` maps each precision of ``memory`` to the report's smallest fitting row (:func:`smallest_fit`), or
    ``None`` when no listed device set holds the model at that precision; it is empty when the report has no
    fit section.
    """

    repo_id: str
    sha: str
    status: str
    parameters: int | None = None
    active: int | None = None
    weights_bytes: int | None = None
    files: int | None = None
    dtypes: str = ""
    quantization: str = ""
    memory: dict[str, int] = field(default_factory=dict)
    fits: dict[str, FitRow | None] = field(default_factory=dict)
    error: str = ""
    error_type: str = ""


def smallest_fit(fit: FitReport, precision: str) -> FitRow | None:
    """The smallest device set the report says holds the model at ``precision``.

    Among the rows of the fit section whose detail's verdict is ``fits`` (a fixed ``--gpus`` count that is too
    small says ``does_not_fit``): the fewest devices, then the least memory per device, then the report's GPU
    order. ``None`` when no listed device set holds it.
    """
    best: FitRow | None = None
    for row, detail in fit.rows():
        if row.precision != precision or detail.verdict != "fits":
            continue
        if best is None or (row.count, row.gpu_memory_bytes) < (best.count, best.fit.gpu_memory_bytes):
            best = FitRow(row, detail)
    return best


def fit_label(row: FitRow) -> str:
    """``"2x H100 SXM 80GB"``: how many of which device."""
    return f"{row.count}x {row.fit.gpu}"


def _readable(row: ScanRow) -> Report | None:
    """The row's stored report, or ``None`` when it has none or one this hubfit cannot read."""
    if row.report is None:
        return None
    try:
        return row.to_report()
    except HeaderError:
        return None


def summarize(row: ScanRow) -> RowSummary:
    """Flatten a scan row for the tabular formats.

    A stored report this hubfit cannot read (another ``schema_version``) shows as a ``HeaderError`` saying so;
    ``hubfit scan --refresh`` analyses it again.
    """
    if row.report is None:
        error = row.error
        message = error["message"] if error else ("not analysed yet" if row.status == "pending" else "")
        return RowSummary(
            repo_id=row.repo_id,
            sha=row.sha,
            status=row.status,
            error=str(message or ""),
            error_type=str(error["type"] if error else ""),
        )
    try:
        report = row.to_report()
    except HeaderError as exc:
        return RowSummary(
            repo_id=row.repo_id, sha=row.sha, status="error", error=str(exc), error_type=type(exc).__name__
        )
    parameters, weights, quant = report.parameters, report.weights, report.quantization
    method = quant.method if quant is not None else ""
    if method and quant is not None and quant.bits is not None:
        method = f"{method} {quant.bits:g}-bit"
    memory = {e.precision: e.total_bytes for e in report.memory.estimates} if report.memory else {}
    fit = report.fit
    fits = {p: smallest_fit(fit, p) for p in memory} if fit is not None and fit.fits else {}
    return RowSummary(
        repo_id=row.repo_id,
        sha=row.sha,
        status=row.status,
        parameters=parameters.total,
        active=parameters.active,
        weights_bytes=weights.bytes,
        files=weights.files,
        dtypes=" ".join(sorted(weights.bytes_by_dtype or parameters.stored_by_dtype)),
        quantization=method,
        memory=memory,
        fits=fits,
    )


def precisions_of(rows: Iterable[ScanRow]) -> list[str]:
    """Every precision with an estimate in any row, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        report = _readable(row)
        for est in report.memory.estimates if report is not None and report.memory else ():
            seen.setdefault(est.precision, None)
    return list(seen)


def has_fits(rows: Iterable[ScanRow]) -> bool:
    """Whether any row's report carries fit figures."""
    return any(
        report is not None and report.fit is not None and bool(report.fit.fits)
        for report in map(_readable, rows)
    )


def count_text(n: int | None) -> str:
    """A parameter count as :func:`hubfit.units.human_count` writes it; ``-`` when unknown."""
    return "-" if n is None else human_count(n)


def bytes_text(n: int | None) -> str:
    """Bytes as :func:`hubfit.units.gb` writes them (GB = 10^9 bytes); ``-`` when unknown."""
    return "-" if n is None else gb(n)


def _csv_header(precisions: list[str], fits: bool) -> list[str]:
    header = [
        "repo_id",
        "sha",
        "status",
        "parameters",
        "active_parameters",
        "weights_bytes",
        "weight_files",
        "dtypes",
        "quantization",
    ]
    header += [f"memory_bytes_{p}" for p in precisions]
    if fits:
        header += [f"smallest_fit_{p}" for p in precisions]
    return [*header, "error_type", "error"]


def _csv_row(s: RowSummary, precisions: list[str], fits: bool) -> list[object]:
    row: list[object] = [
        s.repo_id,
        s.sha,
        s.status,
        s.parameters,
        s.active,
        s.weights_bytes,
        s.files,
        s.dtypes,
        s.quantization,
    ]
    row += [s.memory.get(p) for p in precisions]
    if fits:
        row += [(fit_label(f) if (f := s.fits.get(p)) else "") for p in precisions]
    return [*row, s.error_type, s.error]


def _md_cell(text: str, untrusted: bool) -> str:
    """A Markdown table cell. Text that comes from the Hub (repo ids, quantization names, error messages
    quoting file contents) becomes an inert code span (:func:`hubfit.markdown.cell`)."""
    if untrusted and text and text != "-":
        from hubfit.render.markup import cell

        return cell(text, max_len=400)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _flat_lines(rows: RowSource, markdown: bool) -> Iterator[str]:
    precisions = precisions_of(rows())
    fits = has_fits(rows())
    header = ["model", "parameters", "active", "weights", "quantization"]
    header += [f"memory {p}" for p in precisions]
    if fits:
        header += [f"fits {p}" for p in precisions]
    header.append("error")
    table: list[list[str]] | None = None if markdown else []
    if markdown:
        yield "| " + " | ".join(header) + " |"
        yield (
            "|"
            + "|".join(
                "---" if i == 0 or h in ("quantization", "error") else "--:" for i, h in enumerate(header)
            )
            + "|"
        )
    for row in rows():
        s = summarize(row)
        cells = [
            s.repo_id,
            count_text(s.parameters),
            count_text(s.active),
            bytes_text(s.weights_bytes),
            s.quantization or "-",
        ]
        cells += [bytes_text(s.memory.get(p)) for p in precisions]
        if fits:
            cells += [(fit_label(f) if (f := s.fits.get(p)) else "-") for p in precisions]
        cells.append(f"{s.error_type}: {s.error}" if s.error else "")
        if markdown:
            last = len(cells) - 1
            yield "| " + " | ".join(_md_cell(c, i in (0, 4, last)) for i, c in enumerate(cells)) + " |"
        else:
            assert table is not None
            table.append(cells)
    if not markdown and table is not None:
        # The terminal table needs column widths, so it holds its rows; big scans should use --format.
        widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
        yield "  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        for cells in table:
            yield "  ".join(
                c.ljust(w) if i in (0, 4, len(header) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()


def write(fmt: str, rows: RowSource, out: IO[str]) -> int:
    """Write a scan in ``fmt`` (one of :data:`FORMATS`) to ``out``; returns the number of repos written.

    ``rows`` is called once per pass (csv, md and table need a first pass for their columns).
    """
    n = 0
    if fmt == "jsonl":
        for row in rows():
            out.write(json.dumps(row.to_json(), separators=(",", ":")) + "\n")
            n += 1
    elif fmt == "json":
        out.write("[")
        for row in rows():
            out.write(("\n" if n == 0 else ",\n") + json.dumps(row.to_json(), separators=(",", ":")))
            n += 1
        out.write("\n]\n" if n else "]\n")
    elif fmt == "csv":
        precisions = precisions_of(rows())
        fits = has_fits(rows())
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_csv_header(precisions, fits))
        for row in rows():
            writer.writerow(_csv_row(summarize(row), precisions, fits))
            n += 1
    elif fmt in ("md", "table"):
        for line in _flat_lines(rows, markdown=fmt == "md"):
            out.write(line + "\n")
            n += 1
        n = max(0, n - (2 if fmt == "md" else 1))
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return n
