"""The GPU-fit table of a report, as terminal text and as Markdown (the report's figures, never recomputed)."""

from __future__ import annotations

from hubfit.fit.gpus import GPU_CLASSES
from hubfit.fit.planner import Fit, FitDetail, FitReport

__all__ = ["fit_markdown", "fit_text", "sized_for"]

_COLOURS = {
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "red": "\x1b[31m",
    "dim": "\x1b[2m",
    "reset": "\x1b[0m",
}
_CLASS_TITLES = {
    "consumer": "consumer",
    "workstation": "workstation",
    "datacenter": "data centre",
    "apple": "Apple silicon",
}


def _count_cell(row: Fit, detail: FitDetail) -> str:
    if detail.fits:
        return f"{row.count}x"
    if detail.offload is not None:
        return f"ngl {detail.offload.layers_on_gpu}/{detail.offload.layers_total}"
    if detail.unified_memory is not None and detail.unified_memory.verdict == "raise_wired_limit":
        return "wired+"
    return "-"


def _colour_of(row: Fit, detail: FitDetail) -> str:
    if not detail.fits:
        return "red"
    return "green" if row.count == 1 else "yellow"


def _at(context: int) -> str:
    """Where a best-bpw line was sized: at a context, or for the weights alone."""
    return f"at {context:,} tokens" if context else "for the weights only, no KV cache"


def sized_for(fit: FitReport) -> str:
    """What the fits were sized for, in a phrase."""
    settings = fit.fit_settings
    if settings.seed_overhead is not None:
        return f"seed formula: weights x {1 + settings.seed_overhead:g}, no KV cache"
    if not settings.context:
        return "weights and overhead, no KV cache"
    return f"{settings.context:,} tokens x batch {settings.batch}, KV {settings.kv_dtype}"


def _grid(fit: FitReport) -> tuple[list[str], list[FitDetail], dict[tuple[str, str], tuple[Fit, FitDetail]]]:
    """Precisions in row order, one detail per GPU in query order, and each (gpu id, precision) cell."""
    precisions = list(dict.fromkeys(row.precision for row in fit.fits))
    gpus = list({detail.gpu_id: detail for detail in fit.fit_details}.values())
    cells = {(detail.gpu_id, row.precision): (row, detail) for row, detail in fit.rows()}
    return precisions, gpus, cells


def fit_text(fit: FitReport, *, color: bool = False) -> str:
    """The terminal view: one line per GPU (grouped by class) with the device count per precision.

    ``Nx`` = the fewest devices (or the fixed ``--gpus``) that fit; ``ngl k/L`` = does not fit, llama.cpp could
    offload k of L layers; ``wired+`` = Apple silicon fits after raising ``iogpu.wired_limit_mb``; ``-`` = no
    layout fits. Colour only when ``color`` is true (the CLI passes a TTY check and ``NO_COLOR``).
    """
    if not fit.fits:
        return ""
    precisions, gpus, rows = _grid(fit)
    names = [f"{gpu.gpu} ({gpu.usable_bytes / 2**30:.1f} GiB)" for gpu in gpus]
    width = max(len(n) for n in names) + 2
    cells = {key: _count_cell(*pair) for key, pair in rows.items()}
    col = max([len(p) for p in precisions] + [len(c) for c in cells.values()]) + 2
    where = sized_for(fit)
    fixed = fit.fit_settings.fixed_count
    plural = "s" if fixed != 1 else ""
    mode = f"{fixed} device{plural} per row" if fixed else "fewest devices that fit"
    lines = [f"GPU fit ({where}; {mode}; memory per device in GiB)"]
    lines.append(" " * (width + 2) + "".join(p.rjust(col) for p in precisions))
    by_class = {
        c: [(g, n) for g, n in zip(gpus, names, strict=True) if g.gpu_class == c] for c in GPU_CLASSES
    }
    for gpu_class, members in by_class.items():
        if not members:
            continue
        lines.append(f"  {_CLASS_TITLES[gpu_class]}")
        for gpu, name in members:
            text = "  " + name.ljust(width)
            for prec in precisions:
                cell = cells[(gpu.gpu_id, prec)].rjust(col)
                if color:
                    cell = f"{_COLOURS[_colour_of(*rows[(gpu.gpu_id, prec)])]}{cell}{_COLOURS['reset']}"
                text += cell
            lines.append(text.rstrip())
    for best in fit.best_bpw:
        exl2 = f"EXL2 {best.bpw:.2f} bpw" if best.bpw is not None else "EXL2 -"
        gguf = (
            f"GGUF {best.gguf_type} ({fit.gguf_types[best.gguf_type]:g} bpw)" if best.gguf_type else "GGUF -"
        )
        lines.append(f"  best on {best.count}x {best.gpu} {_at(best.context)}: {exl2}, {gguf}")
    lines.append(
        "  Nx devices | ngl k/L: llama.cpp offloads k of L layers | wired+: raise iogpu.wired_limit_mb | -: no fit"
    )
    return "\n".join(lines) + "\n"


def fit_markdown(fit: FitReport) -> str:
    """The fits table in Markdown: GPU, memory (GiB), then devices per precision; then best bpw per GPU."""
    if not fit.fits:
        return ""
    precisions, gpus, rows = _grid(fit)
    where = sized_for(fit)
    out = [
        f"**GPU fit** ({where}): devices needed per precision; `ngl k/L` = llama.cpp offloads k of L layers.",
        "",
    ]
    out.append("| GPU | memory | " + " | ".join(f"`{p}`" for p in precisions) + " |")
    out.append("|---|---:|" + "---:|" * len(precisions))
    for gpu in gpus:
        cells = [_count_cell(*rows[(gpu.gpu_id, p)]).replace("-", "—") for p in precisions]
        memory_gib = gpu.usable_bytes / 2**30
        out.append(f"| {gpu.gpu} | {memory_gib:.1f} GiB | " + " | ".join(cells) + " |")
    bests = fit.best_bpw
    if bests:
        out += ["", "| GPU set | context | best EXL2 bpw | best GGUF type |", "|---|---:|---:|---|"]
        for b in bests:
            exl2 = f"{b.bpw:.2f}" if b.bpw is not None else "—"
            gguf = f"{b.gguf_type} ({fit.gguf_types[b.gguf_type]:g} bpw)" if b.gguf_type else "—"
            context = f"{b.context:,}" if b.context else "weights only"
            out.append(f"| {b.count}× {b.gpu} | {context} | {exl2} | {gguf} |")
    return "\n".join(out) + "\n"
