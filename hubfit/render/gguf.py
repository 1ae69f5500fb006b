"""The GGUF table of a report (GGUF repositories): a row per quant file, the best per GPU, llama.cpp's buffers."""

from __future__ import annotations

from hubfit.report import Report
from hubfit.units import human_bytes

__all__ = ["gguf_lines"]


def gguf_lines(report: Report) -> list[str]:
    """Text lines of the GGUF table and, with ``--engine llama.cpp``, llama.cpp's buffers (empty otherwise)."""
    fit = report.gguf_fit
    lines: list[str] = []
    if fit is not None and fit.rows:
        ngl = fit.gpu is not None
        lines += [f"GGUF files under llama.cpp (n_ctx {fit.n_ctx:,}, fully offloaded)", ""]
        head = ["file", "size", "BPW", "GPU need", "fits on"] + ([f"-ngl on {fit.gpu}"] if ngl else [])
        rows = [head]
        for r in fit.rows:
            name = r.files[0].rsplit("/", 1)[-1] + (
                f" (+{len(r.files) - 1} splits)" if len(r.files) > 1 else ""
            )
            cells = [
                name,
                human_bytes(r.size),
                f"{r.bpw:.2f}",
                human_bytes(r.gpu_bytes),
                ", ".join(r.fits) or "-",
            ]
            if ngl:
                cells.append(
                    "-" if r.max_gpu_layers is None or r.max_gpu_layers < 0 else str(r.max_gpu_layers)
                )
            if r.unknown_types:
                cells[2] += "*"
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if any(r.unknown_types for r in fit.rows):
            lines.append("  * ggml types this hubfit does not know: the file size stands in for their bytes")
        if fit.best:
            lines += ["", "Best file per GPU: " + "; ".join(f"{g}: {n}" for g, n in fit.best.items())]
        if fit.mmproj_file:
            others = [p for p in fit.mmproj if p != fit.mmproj_file]
            lines.append(
                f"Vision projector {fit.mmproj_file} ({human_bytes(fit.mmproj_bytes)}) loaded beside each model on "
                "the GPU: counted in every row" + (f"; also published: {', '.join(others)}" if others else "")
            )
    s = report.llamacpp
    if s is not None:
        lines += ["", f"llama.cpp: {s.file}, n_ctx {s.n_ctx:,}, {s.n_gpu_layers} layers offloaded"]
        for kind, by_device in s.buffers_mib.items():
            text = ", ".join(f"{device} {mib:,.2f} MiB" for device, mib in by_device.items())
            lines.append(f"  {kind:<8} {text}")
        lines.append(f"  {'fits' if s.fits else 'does not fit'}")
    return lines
