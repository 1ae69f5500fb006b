"""The first screen: what ``hubfit MODEL`` prints by default, about 20 lines that answer "what hardware?".

One line says what the model is; one table gives, per precision, the memory in GiB and the GPUs that hold it
(the fewest devices of each GPU class, or of each GPU the user named); one line gives the highest bits per
weight that fits a single consumer card when the model needs quantizing to fit one. The precision notes, the
overhead terms and the whole GPU grid are ``--details`` (:func:`hubfit.render.report.to_text`). Sections the
user asked for (a serving engine, fine-tuning, a GGUF repository's files) follow in their usual form.

Renderers format what the report holds; this one never computes a figure of its own. It chooses which rows
to show and merges rows that say the same thing (``bf16 (as stored)``).
"""

from __future__ import annotations

from hubfit.fit.gpus import GPU_CLASSES
from hubfit.fit.planner import BestBpw, FitReport, FitRow
from hubfit.render.fit import sized_for
from hubfit.render.report import serving_lines, serving_options_lines, training_lines, training_options_lines
from hubfit.report import Report
from hubfit.sizing.memory import Estimate, MemoryReport
from hubfit.units import GIB, human_bytes, human_count

__all__ = ["to_summary"]

#: The columns of the first screen's table when the terminal is narrower or not a terminal.
DEFAULT_WIDTH = 100


def to_summary(report: Report, *, width: int = DEFAULT_WIDTH, named_gpus: bool = False) -> str:
    """The default terminal output: the answer first, at most about 20 lines at ``width`` columns.

    Args:
        width: columns to fit (the terminal's); a "fits on" cell drops its last entries to stay inside.
        named_gpus: the fit was asked for GPUs by name (``--gpu``): list each of them, and the best bits per
            weight on each, instead of a pick per GPU class.
    """
    lines = [_headline(report), *_wrap(_facts(report), width)]
    if report.serving is not None:  # the engine asked for leads: its answer is the one the user deploys with
        lines += ["", *serving_lines(report)]
    if report.serving_options:
        lines += ["", *serving_options_lines(report)]
    if report.training is not None:  # likewise the fine-tuning run asked for
        lines += ["", *training_lines(report)]
    if report.training_options:
        lines += ["", *training_options_lines(report)]
    if report.memory is not None:
        lines += ["", *_table(report.memory, report.fit, width, named_gpus)]
    if report.fit is not None:
        lines += _best_lines(report.fit, named_gpus)
    extra = _asked_sections(report)
    if extra:
        lines += ["", *extra]
    if report.memory is not None or report.fit is not None:
        lines += ["", "more: --details (notes, overhead terms, every GPU), --gpu NAME, --context N, --json"]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _headline(report: Report) -> str:
    where = f"{report.revision} ({report.sha[:12]})" if report.sha else report.revision
    return f"{report.repo_id} @ {where}"


def _wrap(parts: list[str], width: int) -> list[str]:
    """``parts`` joined by `` · `` into lines of at most ``width`` columns (a part never split)."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def _facts(report: Report) -> list[str]:
    """Parameters (active ones for a mixture of experts), stored dtypes, weight bytes, files, quantization."""
    p, w = report.parameters, report.weights
    params = f"{human_count(p.total)} parameters"
    if p.active != p.total:
        params += f" ({human_count(p.active)} active per token)"
    dtypes = "/".join(
        d for d, n in sorted(w.bytes_by_dtype.items(), key=lambda kv: -kv[1]) if n * 100 >= w.bytes
    )
    files = f"{w.files} file{'s' if w.files != 1 else ''}"
    parts = [params, dtypes, f"{human_bytes(w.bytes)} of weights in {files}"]
    q = report.quantization
    if q is not None:
        parts.append(q.method + (f" {q.bits:g}-bit" if q.bits else ""))
    return parts


def _rows(memory: MemoryReport) -> list[tuple[str, Estimate]]:
    """The rows to show: the stored row merged into the precision row it equals (``bf16 (as stored)``)."""
    stored = next((e for e in memory.estimates if e.precision == "stored"), None)
    rows: list[tuple[str, Estimate]] = []
    merged = False
    for estimate in memory.estimates:
        if estimate is stored:
            continue
        label = estimate.precision
        if (
            stored is not None
            and not merged
            and estimate.weights_bytes == stored.weights_bytes
            and estimate.total_bytes == stored.total_bytes
        ):
            label, merged = f"{label} (as stored)", True
        rows.append((label, estimate))
    if stored is not None and not merged:
        rows.insert(0, ("stored", stored))
    return rows


def _gib(n: int) -> str:
    value = n / GIB
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def _table(memory: MemoryReport, fit: FitReport | None, width: int, named_gpus: bool) -> list[str]:
    kv = memory.kv_cache
    context = (
        f"at {kv.context:,} tokens x batch {kv.batch}, KV {kv.dtype}"
        if kv.context
        else "for the weights only, no KV cache"
    )
    title = [f"Memory in GiB (2^30 bytes) {context}"]
    if fit is not None and fit.fits and sized_for(fit) != _fit_phrase(kv.context, kv.batch, kv.dtype):
        gpus = f"GPUs sized for {sized_for(fit)}"
        if len(title[0]) + 2 + len(gpus) <= width:
            title = [f"{title[0]}; {gpus}"]
        else:
            title.append(f"  ({gpus})")
    head = ["", "weights", "KV cache", "overhead", "total"]
    fits_head = "fits on (each GPU named)" if named_gpus else "fits on (fewest devices per GPU class)"
    rows = [
        [label, _gib(e.weights_bytes), _gib(e.kv_cache_bytes), _gib(e.overhead_bytes), _gib(e.total_bytes)]
        for label, e in _rows(memory)
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str], tail: str) -> str:
        text = (
            "  "
            + cells[0].ljust(widths[0])
            + "".join("  " + c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        )
        return f"{text}  {tail}" if tail else text

    out = [*title, line(head, fits_head if fit is not None and fit.fits else "")]
    for cells, (_, estimate) in zip(rows, _rows(memory), strict=True):
        tail = _fits_on(fit, estimate.precision, named_gpus) if fit is not None else ""
        room = width - len(line(cells, "")) - 2
        out.append(line(cells, _clip(tail, room)))
    return out


def _fit_phrase(context: int, batch: int, dtype: str) -> str:
    return (
        f"{context:,} tokens x batch {batch}, KV {dtype}" if context else "weights and overhead, no KV cache"
    )


def _fits_on(fit: FitReport, precision: str, named_gpus: bool) -> str:
    """The GPUs that hold ``precision``: each named GPU; or per GPU class the fewest devices (then the smallest
    GPU), fewest devices first."""
    rows = [FitRow(f, d) for f, d in fit.rows() if f.precision == precision]
    if named_gpus:
        return " · ".join(_cell(row) for row in rows)
    picks: list[tuple[int, int, FitRow]] = []
    for order, gpu_class in enumerate(GPU_CLASSES):
        fitting = [r for r in rows if r.detail.gpu_class == gpu_class and r.detail.fits]
        if fitting:
            pick = min(fitting, key=lambda r: (r.fit.count, r.detail.usable_bytes))
            picks.append((pick.fit.count, order, pick))
    return " · ".join(_cell(row) for *_, row in sorted(picks, key=lambda p: p[:2])) or (
        "no GPU of the set (see --details)"
    )


def _cell(row: FitRow) -> str:
    if row.detail.fits:
        return f"{row.fit.count}x {row.fit.gpu}"
    offload = row.detail.offload
    if offload is not None:
        return f"{row.fit.gpu}: -ngl {offload.layers_on_gpu}/{offload.layers_total}"
    return f"{row.fit.gpu}: no"


def _clip(text: str, room: int) -> str:
    """``text`` cut at its last ``·``-separated entry that fits ``room`` columns (at least one entry kept)."""
    if len(text) <= room:
        return text
    parts = text.split(" · ")
    while len(parts) > 1 and len(" · ".join(parts)) + 4 > room:
        parts.pop()
    return " · ".join(parts) + " ..."


def _best_lines(fit: FitReport, named_gpus: bool) -> list[str]:
    """The highest bits per weight on a card: every named GPU, else the two largest consumer cards the model
    must be quantized to fit on (a card that holds the 8-bit weights needs no such line)."""
    if named_gpus:
        chosen = list(fit.best_bpw)
    else:
        consumer = {d.gpu for d in fit.fit_details if d.gpu_class == "consumer"}
        memory = {d.gpu: d.usable_bytes for d in fit.fit_details}
        chosen = [b for b in fit.best_bpw if b.gpu in consumer and b.bpw is not None and b.bpw < 8]
        chosen = sorted(chosen, key=lambda b: -memory.get(b.gpu, 0))[:2]
    return [_best(fit, b) for b in chosen]


def _best(fit: FitReport, best: BestBpw) -> str:
    memory = next((d.usable_bytes for d in fit.fit_details if d.gpu == best.gpu), None)
    card = f"{best.count}x {best.gpu}" + (f" ({memory / GIB:.1f} GiB)" if memory else "")
    if best.bpw is None and best.gguf_type is None:
        return f"  best for {card}: no EXL2 mix or GGUF type fits"
    exl2 = f"EXL2 {best.bpw:.2f} bpw" if best.bpw is not None else "EXL2 -"
    gguf = f"GGUF {best.gguf_type} ({fit.gguf_types[best.gguf_type]:g} bpw)" if best.gguf_type else "GGUF -"
    return f"  best for {card}: {exl2} · {gguf}"


def _asked_sections(report: Report) -> list[str]:
    """What the user asked for beside the memory table: a GGUF repository's files."""
    lines: list[str] = []
    if report.gguf_fit is not None or report.llamacpp is not None:
        from hubfit.render.gguf import gguf_lines

        lines += gguf_lines(report)
    return lines
