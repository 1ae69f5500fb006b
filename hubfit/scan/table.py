"""Output formats of ``hubfit scan``: csv, json, jsonl, md and the terminal summary table.

Every figure comes from the stored ``Report.to_dict()`` of each repo (the "hubfit/1" schema); nothing is
recomputed here. JSON and JSONL rows are that dict plus ``error``. The flat views (csv, md, table, HTML) read
the same dict through :func:`summarize`. Writers take a callable returning a fresh row iterator so they can
stream from the database (a pass to learn the precision columns, a pass to write) with flat memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from hubfit.scan.store import ScanRow

__all__ = [
    "FORMATS",
    "Fit",
    "RowSummary",
    "format_bytes",
    "format_count",
    "precisions_of",
    "smallest_fit",
    "summarize",
    "write",
]

FORMATS = ("csv", "json", "jsonl", "md", "table")

RowSource = Callable[[], Iterable[ScanRow]]


@dataclass(frozen=True)
class Fit:
    """The smallest GPU set in a report's ``fits`` for a precision: fewest devices, then least memory each."""

    gpu: str
    count: int
    gpu_memory_bytes: int

    @property
    def label(self) -> str:
        return f"{self.count}x {self.gpu}"


@dataclass(frozen=True)
class RowSummary:
    """The flat figures of one scanned repo, read from its report dict."""

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
    fits: dict[str, Fit | None] = field(default_factory=dict)
    error: str = ""
    error_type: str = ""


def smallest_fit(report: dict, precision: str) -> Fit | None:
    """The smallest GPU set that holds the model at ``precision``: one device if any holds it (the one with
    the least memory), else the fewest devices (again the smallest such device).

    Reads the report's ``fits`` rows (``{"gpu", "gpu_memory_bytes", "precision", "count", ...}``); rows with
    no positive ``count`` do not fit, nor do rows whose ``fit_details`` entry (same order) has a verdict other
    than ``fits`` (a fixed ``--gpus`` count that is too small). ``None`` when no listed GPU set holds it.
    """
    best: Fit | None = None
    fits = report.get("fits") or []
    details = report.get("fit_details") or []
    for i, row in enumerate(fits):
        if row.get("precision") != precision:
            continue
        if len(details) == len(fits) and details[i].get("verdict", "fits") != "fits":
            continue
        count, memory = row.get("count"), row.get("gpu_memory_bytes")
        if not isinstance(count, int) or count <= 0 or not isinstance(memory, int):
            continue
        fit = Fit(gpu=str(row.get("gpu")), count=count, gpu_memory_bytes=memory)
        if best is None or (count, memory) < (best.count, best.gpu_memory_bytes):
            best = fit
    return best


def summarize(row: ScanRow) -> RowSummary:
    """Flatten a scan row for the tabular formats."""
    if row.report is None:
        error = row.error or {}
        return RowSummary(
            repo_id=row.repo_id,
            sha=row.sha,
            status=row.status,
            error=str(error.get("message") or ("not analysed yet" if row.status == "pending" else "")),
            error_type=str(error.get("type") or ""),
        )
    report = row.report
    parameters = report.get("parameters") or {}
    weights = report.get("weights") or {}
    quant = report.get("quantization") or {}
    method = str(quant.get("method") or "")
    if method and quant.get("bits") is not None:
        method = f"{method} {quant['bits']:g}-bit"
    memory = {
        str(est["precision"]): int(est["total_bytes"])
        for est in report.get("estimates") or ()
        if isinstance(est.get("total_bytes"), int)
    }
    fits = {precision: smallest_fit(report, precision) for precision in memory} if report.get("fits") else {}
    return RowSummary(
        repo_id=row.repo_id,
        sha=row.sha,
        status=row.status,
        parameters=parameters.get("total"),
        active=parameters.get("active"),
        weights_bytes=weights.get("bytes"),
        files=weights.get("files"),
        dtypes=" ".join(sorted(weights.get("bytes_by_dtype") or parameters.get("stored_by_dtype") or {})),
        quantization=method,
        memory=memory,
        fits=fits,
    )


def precisions_of(rows: Iterable[ScanRow]) -> list[str]:
    """Every precision with an estimate in any row, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for est in (row.report or {}).get("estimates") or ():
            seen.setdefault(str(est["precision"]), None)
    return list(seen)


def has_fits(rows: Iterable[ScanRow]) -> bool:
    """Whether any row's report carries fit figures."""
    return any((row.report or {}).get("fits") for row in rows)


def format_count(n: int | None) -> str:
    """A parameter count for people: ``6.74B``, ``124M``, ``-`` when unknown."""
    if n is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}" if n / div < 100 else f"{n / div:.0f}{suffix}"
    return str(n)


def format_bytes(n: int | None) -> str:
    """Bytes in decimal gigabytes (10^9 B), the unit the scan outputs state in their headers."""
    if n is None:
        return "-"
    return f"{n / 1e9:.1f}"


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
        row += [(f.label if (f := s.fits.get(p)) else "") for p in precisions]
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
    header = ["model", "parameters", "active", "weights GB", "quantization"]
    header += [f"{p} GB" for p in precisions]
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
            format_count(s.parameters),
            format_count(s.active),
            format_bytes(s.weights_bytes),
            s.quantization or "-",
        ]
        cells += [format_bytes(s.memory.get(p)) for p in precisions]
        if fits:
            cells += [(f.label if (f := s.fits.get(p)) else "-") for p in precisions]
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
