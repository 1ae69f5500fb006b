"""``analyze()``: from a repo id or directory to a :class:`~hubfit.report.Report`."""

from __future__ import annotations

from typing import Any

from hubfit.formats.safetensors import SafetensorsHeader
from hubfit.model import quant
from hubfit.model.config import ModelConfig
from hubfit.model.layout import ComponentFiles, find_components
from hubfit.model.params import inventory
from hubfit.model.quant import QuantFormat
from hubfit.report import Component, ParameterSummary, Quantization, Report, WeightSummary
from hubfit.source.sources import Progress, Source, open_source

__all__ = ["analyze", "analyze_source", "component_from_headers"]


def analyze(
    model: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
    client: Any = None,
    workload: Any = None,
    hardware: Any = None,
) -> Report:
    """Analyse a model from its metadata only.

    Args:
        model: a Hub repo id (``"meta-llama/Llama-2-70b-hf"``) or a local model directory.
        revision: branch, tag, full commit sha or ``refs/pr/N`` (Hub only; default ``main``). Everything is
            read at the commit this resolves to, reported as ``Report.sha``.
        token: Hub token; ``None`` lets huggingface_hub find one (``HF_TOKEN``, ``hf auth login``).
        progress: called with ``(done, total)`` while shard headers are read.
        client: a :class:`hubfit.hub.HubClient` to reuse (its counters accumulate).
        workload: a :class:`hubfit.memory.Workload`; when given, ``Report.memory`` holds the memory estimate.
        hardware: a :class:`hubfit.fit.HardwareQuery`; when given, ``Report.fit`` holds the GPU fit (sized for
            ``workload``, default ``Workload()``).

    Raises:
        hubfit.errors.HubfitError: every failure, with a one-line message.
    """
    source = open_source(model, revision, token=token, progress=progress, client=client)
    return analyze_source(source, workload=workload, hardware=hardware)


def analyze_source(source: Source, *, workload: Any = None, hardware: Any = None) -> Report:
    """Analyse an already opened :class:`~hubfit.sources.Source` (see :func:`analyze` for the arguments)."""
    report = _metadata(source)
    if workload is not None:
        from hubfit.sizing.memory import estimate

        report.memory = estimate(report, workload)
    if hardware is not None:
        from hubfit.fit.planner import evaluate

        report.fit = evaluate(report, workload, hardware)
    return report


def _metadata(source: Source) -> Report:
    """The metadata part of the report: components, tensors, counts."""
    files = source.files()
    layout = find_components(files, source.read_json)
    prefetch = getattr(source, "prefetch", None)
    if prefetch is not None:
        wanted: list[str] = []
        for part in layout:
            prefix = f"{part.name}/" if part.name else ""
            wanted += [p for p in (part.config_path, f"{prefix}quantize_config.json") if p]
            if part.index_path and not source.uses_sharded_endpoint(part.weights, part.index_path):
                wanted.append(part.index_path)
        prefetch(wanted)
    components = [_component(source, part) for part in layout]
    adapter = None
    if layout[0].kind == "adapter":
        cfg = layout[0].extra.get("adapter_config", {})
        adapter = {
            "base_model": cfg.get("base_model_name_or_path"),
            "peft_type": cfg.get("peft_type"),
            "r": cfg.get("r"),
            "target_modules": cfg.get("target_modules"),
        }
    return Report(
        repo_id=source.repo_id,
        revision=source.revision,
        sha=source.sha,
        source=source.kind,
        components=components,
        adapter=adapter,
    )


def _component(source: Source, part: ComponentFiles) -> Component:
    raw_config = source.read_json(part.config_path) if part.config_path else None
    config = ModelConfig(raw_config) if isinstance(raw_config, dict) else None
    prefix = f"{part.name}/" if part.name else ""
    quantize_config = source.read_json(f"{prefix}quantize_config.json") if part.kind != "adapter" else None
    fmt = quant.detect(
        config.quantization_config if config else None,
        quantize_config=quantize_config if isinstance(quantize_config, dict) else None,
        mlx_quantization=config.raw.get("quantization") if config else None,
    )
    headers = source.read_headers(part.weights, index_path=part.index_path)
    return component_from_headers(
        list(headers.values()),
        config,
        quant=fmt,
        name=part.name,
        kind=part.kind,
        files=list(part.weights),
        extra=part.extra if part.kind != "adapter" else {},
    )


def component_from_headers(
    headers: list[SafetensorsHeader],
    config: ModelConfig | None,
    *,
    quant: QuantFormat | None = None,
    name: str = "",
    kind: str = "transformers",
    files: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Component:
    """A :class:`~hubfit.report.Component` from validated headers: tensor inventory, counts, quantization."""
    tensors = inventory(headers, component=name, config=config, quant=quant)
    quantization = None
    if quant is not None:
        method = quant.method or str(quant.config.get("quant_method", "unknown"))
        quantization = Quantization(method, quant.bits, quant.group_size, quant.details())
    return Component(
        name=name,
        kind=kind,
        config=config,
        tensors=tensors,
        parameters=ParameterSummary.of(tensors, config),
        weights=WeightSummary.of(tensors, len(headers)),
        quantization=quantization,
        files=list(files or [h.filename for h in headers]),
        extra=dict(extra or {}),
    )
