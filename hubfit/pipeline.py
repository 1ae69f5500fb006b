"""The pipeline, top to bottom: source -> model -> sizing -> fit -> :class:`~hubfit.report.Report`.

``analyze()`` opens a source (Hub repo or local directory), builds the :class:`~hubfit.model.component.Model`
from config.json and the safetensors headers, asks the sizing engine for the memory table and the fit for the
GPU table, and returns the typed, frozen report every output renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubfit.model import quant
from hubfit.model.component import Component, Model, component_from_headers
from hubfit.model.config import ModelConfig
from hubfit.model.layout import ComponentFiles, find_components
from hubfit.report import Report
from hubfit.source.sources import HubSource, Progress, Source, open_source

if TYPE_CHECKING:
    from hubfit.fit.gguf import GGUFQuery
    from hubfit.fit.gpus import GPU
    from hubfit.fit.planner import HardwareQuery
    from hubfit.sizing.memory import Workload
    from hubfit.sizing.training import TrainSettings
    from hubfit.sizing.vllm import ServeSettings
    from hubfit.source.hub import HubClient

__all__ = ["analyze", "analyze_model", "analyze_source", "build_report", "load_model"]


def analyze(
    model: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
    client: HubClient | None = None,
    workload: Workload | None = None,
    hardware: HardwareQuery | None = None,
    engine: ServeSettings | None = None,
    gguf: GGUFQuery | None = None,
    training: TrainSettings | None = None,
) -> Report:
    """Analyse a model from its metadata only.

    Args:
        model: a Hub repo id (``"meta-llama/Llama-2-70b-hf"``) or a local model directory.
        revision: branch, tag, full commit sha or ``refs/pr/N`` (Hub only; default ``main``). Everything is
            read at the commit this resolves to, reported as ``Report.sha``.
        token: Hub token; ``None`` lets huggingface_hub find one (``HF_TOKEN``, ``hf auth login``).
        progress: called with ``(done, total)`` while shard headers are read.
        client: a :class:`hubfit.source.hub.HubClient` to reuse (its counters accumulate).
        workload: a :class:`hubfit.sizing.Workload`; when given, ``Report.memory`` holds the memory estimate.
        hardware: a :class:`hubfit.fit.HardwareQuery`; when given, ``Report.fit`` holds the GPU fit (sized for
            ``workload``, default ``Workload()``).
        engine: a serving engine's settings (:class:`hubfit.sizing.vllm.ServeSettings`); with one GPU in
            ``hardware``, ``Report.serving`` holds the engine's view, else ``Report.serving_options`` holds it
            for every GPU of the set.
        gguf: llama.cpp's flags for a GGUF repository (:class:`hubfit.fit.gguf.GGUFQuery`).
        training: a fine-tuning run (:class:`hubfit.sizing.training.TrainSettings`); with one GPU in
            ``hardware``, ``Report.training`` holds it, else ``Report.training_options`` for every GPU of the set.

    Raises:
        hubfit.errors.HubfitError: every failure, with a one-line message.
    """
    source = open_source(model, revision, token=token, progress=progress, client=client)
    return analyze_source(
        source, workload=workload, hardware=hardware, engine=engine, gguf=gguf, training=training
    )


def load_model(
    model: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
    client: HubClient | None = None,
) -> Model:
    """The model stage alone (tensors by role, config, counts) for a repo id or directory; see :func:`analyze`.

    Size it with :func:`hubfit.sizing.estimate` and :func:`hubfit.fit.evaluate`, or :func:`build_report`.
    """
    return analyze_model(open_source(model, revision, token=token, progress=progress, client=client))


def analyze_source(
    source: Source,
    *,
    workload: Workload | None = None,
    hardware: HardwareQuery | None = None,
    engine: ServeSettings | None = None,
    gguf: GGUFQuery | None = None,
    training: TrainSettings | None = None,
) -> Report:
    """Analyse an already opened :class:`~hubfit.source.Source` (see :func:`analyze` for the arguments).

    A repository of GGUF files only (or any, with ``gguf``: ``--file`` / ``--engine llama.cpp``) is sized file by
    file under llama.cpp's memory (:func:`analyze_gguf`); a fine-tuning run needs the safetensors model.
    """
    if training is None and (gguf is not None or _gguf_only(source.files())):
        return analyze_gguf(source, hardware=hardware, query=gguf)
    model = analyze_model(source)
    return build_report(model, workload=workload, hardware=hardware, engine=engine, training=training)


def build_report(
    model: Model,
    *,
    workload: Workload | None = None,
    hardware: HardwareQuery | None = None,
    engine: ServeSettings | None = None,
    training: TrainSettings | None = None,
) -> Report:
    """The report of an analysed model: its counts, and the memory, fit, serving and fine-tuning sections asked for.

    A serving engine or a fine-tuning run is sized on the one GPU of ``hardware``, or on every GPU of the set
    (default: the curated one) at the fewest GPUs that start or hold it.
    """
    from hubfit.sizing.engine import TensorGroups

    memory = fit = None
    asked = workload is not None or hardware is not None or engine is not None or training is not None
    groups = TensorGroups.of(model) if asked else None
    if workload is not None:
        from hubfit.sizing.memory import estimate

        memory = estimate(model, workload, groups=groups)
    if hardware is not None:
        from hubfit.fit.planner import evaluate

        fit = evaluate(model, workload, hardware, groups=groups)
    devices: tuple[GPU, ...] = ()
    if engine is not None or training is not None:
        from hubfit.fit.planner import HardwareQuery

        devices = (hardware or HardwareQuery()).devices()
    serving = serving_options = None
    if engine is not None:
        if len(devices) == 1:
            from hubfit.sizing.serving import serve

            _cuda_only(
                devices[0],
                f"{engine.engine} does not run on",
                "name a CUDA or ROCm GPU, or size a GGUF file under llama.cpp (--engine llama.cpp)",
            )
            serving = serve(model, engine, devices[0].name, devices[0].memory_bytes, groups)
        else:  # the engine's view of every GPU of the set
            from hubfit.fit.serving import serving_options as engine_on_each

            serving_options = engine_on_each(model, engine, devices, groups)
    run = training_options = None
    if training is not None:
        if len(devices) == 1:
            from hubfit.sizing.training import train

            _cuda_only(
                devices[0], "the fine-tuning view models CUDA's caching allocator, not", "name a CUDA GPU"
            )
            run = train(model, training, devices[0].name, devices[0].memory_bytes, groups)
        else:  # the run on every GPU of the set
            from hubfit.fit.training import training_options as run_on_each

            training_options = run_on_each(model, training, devices, groups)
    return Report.of(
        model,
        memory=memory,
        fit=fit,
        serving=serving,
        serving_options=serving_options,
        training=run,
        training_options=training_options,
    )


def _cuda_only(device: GPU, what: str, remedy: str) -> None:
    """Refuse Apple silicon for a CUDA/ROCm view (the serving engines, CUDA's caching allocator)."""
    if device.gpu_class == "apple":
        from hubfit.errors import UsageError

        raise UsageError(f"{what} Apple silicon ({device.name}): {remedy}")


def analyze_model(source: Source) -> Model:
    """The model stage for an opened source: components, tensors by role, counts (no sizing)."""
    files = source.files()
    layout = find_components(files, source.read_json)
    if isinstance(source, HubSource):  # one round of concurrent small-file reads before the headers
        wanted: list[str] = []
        for part in layout:
            prefix = f"{part.name}/" if part.name else ""
            wanted += [p for p in (part.config_path, f"{prefix}quantize_config.json") if p]
            if part.index_path and not source.uses_sharded_endpoint(part.weights, part.index_path):
                wanted.append(part.index_path)
        source.prefetch(wanted)
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
    return Model(
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


def _gguf_only(files: dict[str, int | None]) -> bool:
    names = [p.lower() for p in files]
    return any(n.endswith(".gguf") for n in names) and not any(
        n.endswith((".safetensors", ".bin", ".pt", ".pth")) for n in names
    )


def analyze_gguf(
    source: Source, *, hardware: HardwareQuery | None = None, query: GGUFQuery | None = None
) -> Report:
    """A GGUF repository's report: every file's header, and each model under llama.cpp against the GPUs.

    Args:
        hardware: the GPUs to compare against (default: the curated set); one named GPU gets the ``-ngl``
            column and, with ``query.serve``, llama.cpp's buffers.
        query: llama.cpp's flags, ``--file``, ``--engine llama.cpp``.

    Raises:
        hubfit.errors.NoWeightsError: no GGUF file (or none matching ``--file``).
    """
    from hubfit.errors import NoWeightsError
    from hubfit.fit.gguf import GGUFQuery, discover, gguf_fit, gguf_summary, llamacpp_serving
    from hubfit.fit.gpus import default_gpus
    from hubfit.model.component import ParameterSummary, WeightSummary
    from hubfit.report import ComponentSummary

    query = query or GGUFQuery()
    models, mmproj = discover(source.files(), query.pattern)
    if not models:
        which = f" matching {query.pattern!r}" if query.pattern else ""
        raise NoWeightsError(f"{source.repo_id}: no GGUF files{which}")
    paths = [p for m in models for p in m] + mmproj
    headers = source.read_gguf_headers(paths)
    named = hardware.devices() if hardware is not None and (hardware.gpus or hardware.gpu_memory) else ()
    gpus = named or default_gpus()
    grouped = [[headers[p] for p in m] for m in models]
    projectors = {p: headers[p] for p in mmproj}
    fit = gguf_fit(
        grouped, gpus, query.settings, named=named[0] if named else None, mmproj=mmproj, projectors=projectors
    )
    serving = None
    if query.serve:
        count = hardware.count if hardware is not None and hardware.count else 1
        settings = query.settings
        if settings.gpus != count:
            from dataclasses import replace

            settings = replace(settings, gpus=count, tensor_split=settings.tensor_split)
        memory_bytes = [named[0].memory_bytes] * count if named else []
        best = fit.rows[0].files if fit.rows else models[0]
        projector = projectors[fit.mmproj_file] if fit.mmproj_file else None
        serving = llamacpp_serving([headers[p] for p in best], settings, memory_bytes, projector)
    first = [headers[p] for p in fit.rows[0].files]  # the largest model sets the report's counts
    warnings = _gguf_total_check(source, [sum(headers[p].params for p in m) for m in models])
    arch = first[0].arch.architecture or None
    params = sum(h.params for h in first)
    by_type: dict[str, int] = {}
    counts: dict[str, int] = {}
    for h in first:
        for name, value in h.bytes_by_type.items():
            by_type[name] = by_type.get(name, 0) + value
        for t in h.tensors:
            counts[t.type_name] = counts.get(t.type_name, 0) + t.elements
    parameters = ParameterSummary(total=params, active=params, stored_by_dtype=counts)
    weights = WeightSummary(bytes=sum(by_type.values()), files=len(first), bytes_by_dtype=by_type)
    component = ComponentSummary(
        name="",
        kind="gguf",
        model_type=arch,
        architectures=[arch] if arch else [],
        parameters=parameters,
        weights=weights,
        quantization=None,
        files=[h.filename for h in first],
    )
    return Report(
        repo_id=source.repo_id,
        revision=source.revision,
        sha=source.sha,
        source=source.kind,
        parameters=parameters,
        weights=weights,
        quantization=None,
        adapter=None,
        components=[component],
        gguf_files=[gguf_summary(headers[p]) for p in paths],
        gguf_fit=fit,
        llamacpp=serving,
        warnings=warnings,
    )


def _gguf_total_check(source: Source, params: list[int]) -> list[str]:
    """The Hub's own count of a GGUF repo's parameters (model info ``gguf.total``) against the headers' counts.

    The Hub reads one of the repo's GGUF files; every quant of one model has the same count, so a total that is
    none of the models' counts means the headers and the Hub disagree about what the repo holds.
    """
    total = source.snapshot.gguf_total if isinstance(source, HubSource) else None
    if total is None or total in params:
        return []
    counts = ", ".join(f"{p:,}" for p in sorted(set(params)))
    return [
        f"the Hub counts {total:,} parameters in this repo's GGUF file; its headers hold {counts}: "
        "the headers' counts are the ones sized"
    ]
