"""Renderings of a :class:`~hubfit.report.Report`: terminal text and Markdown. JSON is ``Report.to_dict()``.

Renderers format what the report holds; they never compute a figure of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hubfit._version import __version__
from hubfit.fit.planner import Fit, FitDetail, FitReport
from hubfit.render.markup import END_MARKER, START_MARKER, cell, code
from hubfit.report import ComponentSummary, Report
from hubfit.sizing.memory import MemoryReport, PrecisionRule
from hubfit.units import GB, GIB, gb, gib, human_bytes, human_count

if TYPE_CHECKING:
    from hubfit.fit.training import TrainingOption
    from hubfit.sizing.vllm import Serving

__all__ = ["PROVENANCE", "card_section", "describe", "to_markdown", "to_text"]


#: The first words of the card section's provenance line (what ``same_section`` leaves out of a comparison).
PROVENANCE = "<sub>Computed by hubfit "


def _quant_line(report: Report, *, markdown: bool = False) -> str | None:
    """Method, bits and group size; the method (a string from the repository) as inert Markdown if asked."""
    q = report.quantization
    if q is None:
        return None
    parts = [cell(q.method) if markdown else q.method]
    if q.bits:
        parts.append(f"{q.bits:g}-bit")
    if q.group_size == -1:
        parts.append("per-channel scales (group size -1)")  # GPTQ's group_size -1
    elif q.group_size:
        parts.append(f"group size {q.group_size}")
    return ", ".join(parts)


def _dtype_list(values: dict[str, int], fmt: Callable[[int], str]) -> str:
    return " · ".join(f"{dtype} {fmt(n)}" for dtype, n in values.items())


def _title(report: Report) -> str:
    where = f"{report.revision} ({report.sha[:12]})" if report.sha else report.revision
    return f"{report.repo_id} @ {where} [{report.source}]"


def _component_rows(report: Report) -> list[ComponentSummary]:
    return report.components if len(report.components) > 1 else []


def to_text(report: Report, *, color: bool = False) -> str:
    """A readable terminal summary (sizes in GB = 10^9 bytes, with GiB = 2^30 bytes beside).

    ``color``: ANSI colours in the GPU fit table (the CLI passes true only on a terminal without ``NO_COLOR``).
    """
    p, w = report.parameters, report.weights
    lines = [_title(report), ""]
    params = f"{p.total:,} ({human_count(p.total)})"
    if p.active != p.total:
        params += f"   active per token {p.active:,} ({human_count(p.active)})"
    rows = [
        ("Parameters", params),
        ("Stored elements", _dtype_list(p.stored_by_dtype, lambda n: f"{n:,}")),
        ("Weights", f"{human_bytes(w.bytes)} in {w.files} file{'s' if w.files != 1 else ''}"),
        ("By dtype", _dtype_list(w.bytes_by_dtype, human_bytes)),
    ]
    quant = _quant_line(report)
    if quant:
        rows.append(("Quantization", quant))
    if report.adapter:
        rows.append(("Adapter", f"{report.adapter.get('peft_type')} for {report.adapter.get('base_model')}"))
    width = max(len(label) for label, _ in rows)
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    comps = _component_rows(report)
    if comps:
        lines += ["", "Components"]
        name_w = max(len(c.name or "(root)") for c in comps)
        for c in comps:
            lines.append(
                f"  {c.name or '(root)':<{name_w}}  {c.parameters.total:>16,}  {human_bytes(c.weights.bytes)}"
            )
    if report.memory is not None:
        lines += ["", *_memory_text(report.memory)]
    if report.fit is not None:
        from hubfit.render.fit import fit_text

        lines += ["", *fit_text(report.fit, color=color).splitlines()]
    if report.serving is not None:
        lines += ["", *serving_lines(report)]
    if report.serving_options:
        lines += ["", *serving_options_lines(report)]
    if report.training is not None:
        lines += ["", *training_lines(report)]
    if report.training_options:
        lines += ["", *training_options_lines(report)]
    if report.gguf_fit is not None or report.llamacpp is not None:
        from hubfit.render.gguf import gguf_lines

        lines += ["", *gguf_lines(report)]
    return "\n".join(lines) + "\n"


def _serving_headline(report: Report) -> str:
    """One line: "4x H100 with vLLM 0.19: starts, 709k KV tokens, 86x concurrency at 8,192"."""
    s = report.serving
    assert s is not None
    count = s.tensor_parallel_size * s.pipeline_parallel_size
    name = {"vllm": "vLLM", "sglang": "SGLang"}.get(s.engine, s.engine)
    head = f"{count}x {s.gpu} with {name} {s.engine_version}"
    if not s.starts:
        return f"{head}: does not start"
    return (
        f"{head}: starts, {human_count(s.kv_cache_tokens)} KV tokens, "
        f"{s.max_concurrency:g}x concurrency at {s.max_model_len:,}"
    )


def serving_lines(report: Report) -> list[str]:
    s = report.serving
    assert s is not None
    b = s.per_gpu_bytes
    if s.engine == "sglang":  # SGLang keeps a reserve instead of measuring activations and graphs
        terms = (
            f"weights {gib(b.weights)}, reserve for activations and CUDA graphs {gib(b.activation_peak)}, "
            f"used before loading {gib(b.non_torch)}, KV pool {gib(b.kv_cache)}"
        )
        limits = (
            f"context_length {s.max_model_len:,} at mem_fraction_static {s.gpu_memory_utilization:g}; "
            f"longest request the pool holds: {s.max_model_len_that_fits:,}"
        )
    else:
        terms = (
            f"weights {gib(b.weights)}, activation peak {gib(b.activation_peak)}, non-torch {gib(b.non_torch)}, "
            f"CUDA graphs {gib(b.cuda_graphs)}, KV cache {gib(b.kv_cache)}"
        )
        limits = (
            f"max_model_len {s.max_model_len:,} at gpu_memory_utilization {s.gpu_memory_utilization:g}; "
            f"longest that starts: {s.max_model_len_that_fits:,}"
        )
    lines = [
        f"Serving: {_serving_headline(report)} (revision {report.sha or report.revision})",
        f"  per GPU: {terms}",
        f"  {limits}",
    ]
    if s.error:
        lines.append(f"  error: {s.error}")
    lines += [f"  try: {line}" for line in s.suggestions]
    return lines


def _engine_name(s: Serving) -> str:
    return {"vllm": "vLLM", "sglang": "SGLang"}.get(s.engine, s.engine) + f" {s.engine_version}"


def _option_cells(s: Serving) -> tuple[str, str, str, str]:
    """GPU, GPUs (TP), KV tokens, concurrency: one serving option as table cells."""
    if not s.starts:
        return s.gpu, f"{s.tensor_parallel_size * s.pipeline_parallel_size}x: no", "-", "-"
    gpus = s.tensor_parallel_size * s.pipeline_parallel_size
    return s.gpu, f"{gpus}x", human_count(s.kv_cache_tokens), f"{s.max_concurrency:g}x"


def serving_options_lines(report: Report) -> list[str]:
    """The engine's view of each GPU of the set (``--engine`` without one ``--gpu``)."""
    options = report.serving_options
    if not options:
        return []
    first = options[0]
    lines = [
        f"{_engine_name(first)} on each GPU (fewest GPUs that start it, max_model_len {first.max_model_len:,}; "
        f'"Nx: no": does not start on N; revision {(report.sha or report.revision)[:12]})'
    ]
    return lines + _aligned(
        [("GPU", "GPUs", "KV tokens", "concurrency"), *(_option_cells(s) for s in options)]
    )


def _serving_options_markdown(report: Report) -> list[str]:
    options = report.serving_options
    if not options:
        return []
    first = options[0]
    out = [
        f"**{_engine_name(first)}** on each GPU: the fewest GPUs that start it at max_model_len "
        f"{first.max_model_len:,}.",
        "",
        "| GPU | GPUs | KV tokens | concurrency |",
        "|---|---:|---:|---:|",
    ]
    out += [
        "| " + " | ".join(cell(c) if i == 0 else c for i, c in enumerate(_option_cells(s))) + " |"
        for s in options
    ]
    return out


_METHOD = {"full": "Full fine-tune", "lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA"}


def _training_headline(report: Report) -> str:
    """One line: "QLoRA r16 fits 1 GPU at 2,048 tokens, batch 2 (peak 13.5 GiB allocated)"."""
    t = report.training
    assert t is not None
    name = _METHOD.get(t.method, t.method) + (f" r{t.lora_rank}" if t.lora_rank else "")
    gpus = f"{t.gpus} GPU{'s' if t.gpus != 1 else ''}" + (f" ({t.sharding})" if t.sharding else "")
    verdict = "fits" if t.fits else "does not fit"
    return (
        f"{name} {verdict} {gpus} at {t.seq_len:,} tokens, batch {t.batch_size} "
        f"(peak {gib(t.peak_allocated_bytes)} allocated, {gib(t.device_bytes)} on the GPU)"
    )


def _training_terms(report: Report) -> list[tuple[str, int]]:
    t = report.training
    assert t is not None
    b = t.per_gpu_bytes
    return [
        ("weights", b.weights),
        ("trainable weights", b.trainable_weights),
        ("gradients", b.gradients),
        ("optimizer states", b.optimizer_states),
        ("master weights", b.master_weights),
        ("activations", b.activations),
        ("logits and loss", b.logits),
        ("CUDA context", b.cuda_context),
    ]


def training_lines(report: Report) -> list[str]:
    t = report.training
    assert t is not None
    terms = ", ".join(f"{label} {gib(value)}" for label, value in _training_terms(report))
    lines = [
        f"Fine-tuning: {_training_headline(report)}",
        f"  {t.trainable_params:,} trainable parameters; {t.optimizer}, {t.precision}, "
        f"checkpointing {t.grad_checkpointing}",
        f"  per GPU: {terms}",
        f"  peak allocated {gib(t.peak_allocated_bytes)}, reserved {gib(t.peak_reserved_bytes)}, "
        f"nvidia-smi {gib(t.device_bytes)}",
        f"  largest batch at {t.seq_len:,} tokens: {t.max_batch_size}; longest sequence at batch "
        f"{t.batch_size}: {t.max_seq_len:,}",
    ]
    lines += [f"  try: {line}" for line in t.suggestions]
    return lines


def _training_option_cells(option: TrainingOption) -> tuple[str, str, str, str]:
    """GPU, GPUs (sharding), peak on each GPU (nvidia-smi), largest micro-batch: one run as table cells."""
    t = option.training
    gpus = f"{t.gpus}x" + (f" {t.sharding}" if t.sharding and t.gpus > 1 else "")
    if not t.fits:
        gpus += ": no"
    return option.gpu, gpus, gib(t.device_bytes), str(t.max_batch_size) if t.fits else "-"


def _training_options_title(report: Report) -> str:
    options = report.training_options
    assert options
    t = options[0].training
    name = _METHOD.get(t.method, t.method) + (f" r{t.lora_rank}" if t.lora_rank else "")
    return (
        f"{name} at {t.seq_len:,} tokens, batch {t.batch_size}, {t.precision}, {t.optimizer}: "
        "the fewest GPUs of each kind that hold one step"
    )


def training_options_lines(report: Report) -> list[str]:
    """The fine-tuning run on each GPU of the set (``--finetune`` without one ``--gpu``)."""
    if not report.training_options:
        return []
    rows = [("GPU", "GPUs", "peak per GPU", "largest batch")]
    rows += [_training_option_cells(o) for o in report.training_options]
    return [f'Fine-tuning: {_training_options_title(report)} ("Nx: no": not even on N)', *_aligned(rows)]


def _training_options_markdown(report: Report) -> list[str]:
    if not report.training_options:
        return []
    out = [
        f"**Fine-tuning:** {cell(_training_options_title(report))}.",
        "",
        "| GPU | GPUs | peak per GPU (nvidia-smi) | largest batch |",
        "|---|---:|---:|---:|",
    ]
    out += ["| " + " | ".join(_training_option_cells(o)) + " |" for o in report.training_options]
    return out


def _training_markdown(report: Report) -> list[str]:
    t = report.training
    assert t is not None
    out = [f"**Fine-tuning:** {cell(_training_headline(report))}", "", "| per GPU | GiB |", "|---|---:|"]
    out += [f"| {label} | {value / GIB:.2f} |" for label, value in _training_terms(report)]
    out += [
        f"| peak allocated | {t.peak_allocated_bytes / GIB:.2f} |",
        f"| peak reserved | {t.peak_reserved_bytes / GIB:.2f} |",
        f"| nvidia-smi | {t.device_bytes / GIB:.2f} |",
        "",
        f"- largest batch: {t.max_batch_size}; longest sequence: {t.max_seq_len:,}",
    ]
    out += [f"- try: {code(line)}" for line in t.suggestions]
    return out


_MEMORY_HEADER = (
    "precision",
    "bits/weight",
    "weights GB",
    "KV cache GB",
    "overhead GB",
    "total GB",
    "total GiB",
)


def _size(n: int, unit: int) -> str:
    """One decimal from 10 units up (974.0 GB), two below (1.34 GB)."""
    value = n / unit
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def _memory_rows(memory: MemoryReport) -> list[tuple[str, ...]]:
    return [
        (
            e.precision,
            f"{e.bits_per_weight:g}",
            _size(e.weights_bytes, GB),
            _size(e.kv_cache_bytes, GB),
            _size(e.overhead_bytes, GB),
            _size(e.total_bytes, GB),
            _size(e.total_bytes, GIB),
        )
        for e in memory.estimates
    ]


def _memory_notes(memory: MemoryReport) -> list[str]:
    kv, parts = memory.kv_cache, memory.overhead
    layers = ", ".join(f"{group.layers} {kind}" for kind, group in memory.kv_layers.items())
    if parts.fraction is not None:
        notes = [f"Seed formula: overhead = {parts.fraction:g} x weights; KV cache not counted"]
    elif not layers:
        notes = ["KV cache: none (no decoder attention or recurrent-state layers)"]
    else:
        notes = [
            f"KV cache: {kv.context:,} tokens x batch {kv.batch}, {kv.dtype}, {kv.bytes_per_token:,} B per token "
            f"({layers} layers): {human_bytes(kv.bytes)}"
        ]
    if parts.fraction is None:
        notes.append(
            f"Overhead per GPU: CUDA/framework {human_bytes(parts.fixed)} + activations {human_bytes(parts.activations)}"
            f" + logits {human_bytes(parts.logits)} + allocator slack {human_bytes(parts.slack)}"
        )
    notes += [describe(p) for p in memory.precisions if p.family != "float"]
    notes += _effective_bits_notes(memory)
    return notes


def _effective_bits_notes(memory: MemoryReport) -> list[str]:
    """One short note when quantized rows are far (over 2 bits) from their format's bits per weight over the
    whole model: the tensors the format keeps at higher precision are then a large share of the model."""
    rules = {rule.name: rule for rule in memory.precisions}
    far = [
        (row, rule)
        for row in memory.estimates
        if (rule := rules.get(row.precision)) is not None
        and rule.family not in ("float", "stored")
        and abs(row.bits_per_weight - rule.bits) > 2
    ]
    if not far:
        return []
    rows = ", ".join(f"{row.precision} {row.bits_per_weight:g} (not {rule.bits:g})" for row, rule in far)
    return [
        f"Bits per weight over the whole model: {rows}: the tensors a format stores at other bits "
        "(embeddings, output head, norms) are a large share of this model"
    ]


def describe(rule: PrecisionRule) -> str:
    """One line: which tensors a precision row stores at which bits."""
    if rule.family == "stored":
        return "stored: every tensor as the checkpoint stores it"
    text = f"{rule.name}: {', '.join(rule.quantized_roles)} weights at {rule.bits:g} bits"
    if rule.lm_head_bits is not None:
        text += f"; lm_head at {rule.lm_head_bits} bits"
    if rule.kept_bits is not None:
        text += f"; other tensors (norms, routers, biases ...) at {rule.kept_bits} bits"
    return text + (f" ({rule.note})" if rule.note else "")


def _memory_text(memory: MemoryReport) -> list[str]:
    lines = ["Memory (GB = 10^9 bytes, GiB = 2^30 bytes)", *_aligned([_MEMORY_HEADER, *_memory_rows(memory)])]
    return lines + ["  " + note for note in _memory_notes(memory)]


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """A terminal table, indented two spaces: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (
            "  "
            + "  ".join(
                [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
            )
        ).rstrip()
        for row in rows
    ]


def _serving_markdown(report: Report) -> list[str]:
    s = report.serving
    assert s is not None
    b = s.per_gpu_bytes
    out = [f"**Serving:** {cell(_serving_headline(report))}", "", "| per GPU | GiB |", "|---|---:|"]
    for label, value in (
        ("weights", b.weights),
        ("activation peak", b.activation_peak),
        ("non-torch", b.non_torch),
        ("CUDA graphs", b.cuda_graphs),
        ("KV cache", b.kv_cache),
    ):
        out.append(f"| {label} | {value / GIB:.2f} |")
    out += ["", f"- longest `--max-model-len` that starts: {s.max_model_len_that_fits:,}"]
    if s.error:
        out.append(f"- error: {cell(s.error)}")
    out += [f"- try: {code(line)}" for line in s.suggestions]
    return out


def to_markdown(report: Report) -> str:
    """A Markdown summary; strings from the repository are escaped."""
    p, w = report.parameters, report.weights
    out = [f"### {code(report.repo_id)}", ""]
    out.append(f"Revision {code(report.revision)}" + (f" (commit `{report.sha}`)" if report.sha else ""))
    out += ["", "| | |", "|---|---|"]
    out.append(f"| Parameters | {p.total:,} ({human_count(p.total)}) |")
    if p.active != p.total:
        out.append(f"| Active parameters per token | {p.active:,} ({human_count(p.active)}) |")
    out.append(f"| Stored elements | {_dtype_list(p.stored_by_dtype, lambda n: f'{n:,}')} |")
    out.append(f"| Weights | {human_bytes(w.bytes)} in {w.files} file{'s' if w.files != 1 else ''} |")
    quant = _quant_line(report, markdown=True)
    if quant:
        out.append(f"| Quantization | {quant} |")
    comps = _component_rows(report)
    if comps:
        out += ["", "| Component | Parameters | Weights |", "|---|---:|---:|"]
        for c in comps:
            out.append(
                f"| {cell(c.name or '(root)')} | {c.parameters.total:,} | {human_bytes(c.weights.bytes)} |"
            )
    if report.memory is not None:
        out += ["", "| " + " | ".join(_MEMORY_HEADER) + " |", "|---|" + "---:|" * (len(_MEMORY_HEADER) - 1)]
        out += ["| " + " | ".join(row) + " |" for row in _memory_rows(report.memory)]
        out += [""] + [f"- {note}" for note in _memory_notes(report.memory)]  # hubfit's own text
    if report.fit is not None:
        from hubfit.render.fit import fit_markdown

        out += ["", fit_markdown(report.fit).rstrip("\n")]
    if report.serving is not None:
        out += ["", *_serving_markdown(report)]
    if report.serving_options:
        out += ["", *_serving_options_markdown(report)]
    if report.training is not None:
        out += ["", *_training_markdown(report)]
    if report.training_options:
        out += ["", *_training_options_markdown(report)]
    out += _warning_lines(report)
    out.append("")
    out.append("Sizes: GB = 10^9 bytes, GiB = 2^30 bytes.")
    return "\n".join(out) + "\n"


def _warning_lines(report: Report) -> list[str]:
    """The model stage's warnings as Markdown (its text quotes the repository: an inert code span each)."""
    if not report.warnings:
        return []
    return ["", *(f"- Warning: {code(w, max_len=300)}" for w in report.warnings)]


# ---- the model card's section (also the body of Hub discussion comments) ------------------------------


def card_section(report: Report) -> str:
    """The card section for ``report``, markers included, ``\\n`` line endings, no trailing newline.

    Every figure comes from the report; strings from the repository are code spans (inert Markdown).
    """
    p, w = report.parameters, report.weights
    lines = [START_MARKER, "## Hardware requirements", "", "| | |", "|---|---|"]
    lines.append(f"| Parameters | {p.total:,} ({human_count(p.total)}) |")
    if p.active != p.total:
        lines.append(f"| Active parameters per token | {p.active:,} ({human_count(p.active)}) |")
    dtypes = ", ".join(f"{cell(dtype)} {human_bytes(n)}" for dtype, n in w.bytes_by_dtype.items())
    files = f"{w.files} file{'s' if w.files != 1 else ''}"
    lines.append(f"| Checkpoint weights | {human_bytes(w.bytes)} in {files}: {dtypes} |")
    quant = _quant_line(report, markdown=True)
    if quant:
        lines.append(f"| Quantization | {quant} |")
    if report.adapter:
        base = report.adapter.get("base_model")
        lines.append(f"| Adapter | {cell(report.adapter.get('peft_type'))} for {cell(base)} |")
    if len(report.components) > 1:
        lines += ["", "| Component | Parameters | Weights |", "|---|---:|---:|"]
        for c in report.components:
            lines.append(
                f"| {cell(c.name or '(root)')} | {c.parameters.total:,} | {human_bytes(c.weights.bytes)} |"
            )
    lines += _warning_lines(report)
    if report.memory is not None:
        lines += _memory_lines(report.memory)
    if report.fit is not None:
        lines += _fit_lines(report.fit)
    if report.serving is not None:
        lines += ["", f"Serving: {cell(_serving_headline(report))}"]
    if report.serving_options:
        lines += ["", *_serving_options_markdown(report)]
    if report.training is not None:
        lines += ["", f"Fine-tuning: {cell(_training_headline(report))}"]
    if report.training_options:
        lines += ["", *_training_options_markdown(report)]
    sha = code(report.sha[:12]) if report.sha else code(report.revision)
    how = "Estimates: weights in each precision + KV cache + runtime overhead. " if report.memory else ""
    lines += [
        "",
        f"{PROVENANCE}{__version__} from `config.json` and the safetensors headers of {code(report.repo_id)} "
        f"at commit {sha}, without downloading weights. {how}GB = 10^9 bytes, GiB = 2^30 bytes.</sub>",
        END_MARKER,
    ]
    return "\n".join(lines)


def _memory_lines(memory: MemoryReport) -> list[str]:
    kv = memory.kv_cache
    if memory.workload.overhead is not None:
        title = f"### Memory (weights x {1 + memory.workload.overhead:g}, no KV cache)"
    elif kv.context == 0:
        title = "### Memory (weights only, no KV cache)"
    else:
        title = f"### Memory at {kv.context:,} tokens, batch {kv.batch}, KV cache {kv.dtype}"
    lines = [
        "",
        title,
        "",
        "| Precision | Weights | KV cache | Overhead | Total |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in memory.estimates:
        lines.append(
            f"| {e.precision} | {gb(e.weights_bytes)} | {gb(e.kv_cache_bytes)} | {gb(e.overhead_bytes)} "
            f"| {human_bytes(e.total_bytes)} |"
        )
    return lines


def _fit_lines(fit: FitReport) -> list[str]:
    if not fit.fits:
        return []
    precisions = list(dict.fromkeys(row.precision for row in fit.fits))
    rows: dict[str, dict[str, tuple[Fit, FitDetail]]] = {}
    memory: dict[str, int] = {}
    for row, detail in fit.rows():
        rows.setdefault(row.gpu, {})[row.precision] = (row, detail)
        memory[row.gpu] = detail.usable_bytes
    fixed = fit.fit_settings.fixed_count
    if fixed:
        plural = "s" if fixed != 1 else ""
        title = f"### GPUs: does it fit on {fixed} device{plural}?"
        legend = "yes: fits; no: does not fit."
    else:
        title = "### GPUs: the fewest that hold the model"
        legend = "Nx: N devices (tensor parallel, pipeline stages across nodes beyond 8); -: no layout fits."
    lines = ["", title, "", "| GPU | " + " | ".join(precisions) + " |", "|---|" + "---:|" * len(precisions)]
    for name, by_precision in rows.items():
        cells = []
        for prec in precisions:
            pair = by_precision.get(prec)
            if pair is None:
                cells.append("")
            elif fixed:
                cells.append("yes" if pair[1].fits else "no")
            else:
                cells.append(f"{pair[0].count}x" if pair[1].fits else "-")
        lines.append(f"| {name} ({gib(memory[name])}) | " + " | ".join(cells) + " |")
    lines += ["", legend]
    return lines
