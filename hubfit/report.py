"""The report: one typed, frozen object every output renders (text, JSON, Markdown, model card, comments, scan).

A :class:`Report` is plain data: counts, the memory section (:class:`~hubfit.sizing.memory.MemoryReport`) and
the fit section (:class:`~hubfit.fit.planner.FitReport`). Figures are computed once, by the sizing engine and
the fit, before the report is built; renderers format them and never compute one of their own.

``Report.to_dict()`` is the ``--json`` document (schema ``hubfit/1``, :data:`SCHEMA_VERSION`);
``Report.from_dict(report.to_dict()) == report`` for every report, so a stored document (the scan cache, the
Action's JSON artefact) renders and publishes exactly as the live one. :func:`json_schema` is the JSON Schema of
the document, generated from these types (shipped as ``hubfit/data/report.schema.json``).

The memory and fit sections sit at the top level of the document, as they always have: ``estimates``,
``kv_cache``, ``overhead``, ``precisions``, ``workload`` come from the memory section; ``fits``, ``best_bpw``,
``fit_details`` and ``fit_settings`` from the fit section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from hubfit._version import __version__
from hubfit.constants import JSON_SCHEMA
from hubfit.errors import HeaderError
from hubfit.fit.planner import FitReport
from hubfit.model.component import Model, ParameterSummary, Quantization, WeightSummary
from hubfit.sizing.memory import MemoryReport

if TYPE_CHECKING:
    # The optional sections' types live with their policies (llama.cpp, the serving engines, fine-tuning), which
    # a plain analysis never runs: they are imported when a document is decoded or its schema written
    # (:func:`_bind_section_types`), not on every start-up.
    from hubfit.fit.gguf import GGUFFile, GGUFFit, LlamaCppServing
    from hubfit.fit.training import TrainingOption
    from hubfit.sizing.training import Training
    from hubfit.sizing.vllm import Serving

__all__ = ["SCHEMA_VERSION", "ComponentSummary", "Report", "json_schema", "write_schema"]

#: Version of the document's shape within the ``hubfit/1`` family; raised on every change of a field.
SCHEMA_VERSION = 8


@dataclass(frozen=True)
class ComponentSummary:
    """One model of the repository, as counted (the root model, a diffusers component, an adapter ...).

    Attributes:
        name: ``""`` for the root model, else its subfolder (``unet``, ``text_encoder`` ...).
        kind: ``transformers`` | ``diffusers`` | ``sentence-transformers`` | ``adapter`` | ``safetensors``.
        model_type: ``config.json``'s ``model_type`` (``None`` without a config).
        architectures: ``config.json``'s ``architectures``.
        parameters: logical and stored counts.
        weights: stored bytes.
        quantization: the checkpoint's quantization, if any.
        files: the weight files read.
        extra: what the layout found beside the weights (sentence-transformers modules ...).
    """

    name: str
    kind: str
    model_type: str | None
    architectures: list[str]
    parameters: ParameterSummary
    weights: WeightSummary
    quantization: Quantization | None
    files: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """Everything hubfit says about one model at one revision.

    Attributes:
        repo_id, revision, sha, source: what was read (``sha`` is the commit; ``source`` is ``hub`` or
            ``local``).
        parameters: counts over every component (``total`` logical, ``active`` per token, stored by dtype).
        weights: stored bytes over every component.
        quantization: the main component's quantization.
        adapter: ``{"base_model", "peft_type", "r", "target_modules"}`` for an adapter repo.
        components: one summary per component.
        main_component: the name of the component the memory model sizes.
        memory: the memory section, when a workload was given.
        fit: the fit section, when a hardware question was asked.
        serving: a serving engine's view (``--engine vllm`` with one GPU): per-GPU bytes as the engine
            allocates them, KV tokens, concurrency, whether it starts (``None``: not asked; absent from JSON).
        serving_options: the engine's view on each GPU of the set (``--engine`` without one ``--gpu``): one
            :class:`~hubfit.sizing.vllm.Serving` per GPU at the smallest tensor-parallel size that starts.
        training: a fine-tuning run's view (``--finetune`` with one GPU): per-GPU bytes term by term, the peaks
            torch and nvidia-smi would show, whether it fits (``None``: not asked; absent from JSON).
        training_options: the run on each GPU of the set (``--finetune`` without one ``--gpu``): one
            :class:`~hubfit.fit.training.TrainingOption` per GPU at the fewest GPUs that fit.
        warnings: what the model stage found doubtful and how it decided, one line each (``config.json``
            disagreeing with the checkpoint's layer count: the checkpoint's count is sized); empty when none.
        hubfit_version, schema, schema_version: what wrote the document.
    """

    repo_id: str
    revision: str
    sha: str | None
    source: str
    parameters: ParameterSummary
    weights: WeightSummary
    quantization: Quantization | None
    adapter: dict[str, Any] | None
    components: list[ComponentSummary]
    main_component: str = ""
    memory: MemoryReport | None = None
    fit: FitReport | None = None
    serving: Serving | None = None
    serving_options: list[Serving] | None = None
    gguf_files: list[GGUFFile] | None = None
    gguf_fit: GGUFFit | None = None
    llamacpp: LlamaCppServing | None = None
    training: Training | None = None
    training_options: list[TrainingOption] | None = None
    warnings: list[str] = field(default_factory=list)
    hubfit_version: str = __version__
    schema: str = JSON_SCHEMA
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def of(
        cls,
        model: Model,
        *,
        memory: MemoryReport | None = None,
        fit: FitReport | None = None,
        serving: Serving | None = None,
        serving_options: list[Serving] | None = None,
        training: Training | None = None,
        training_options: list[TrainingOption] | None = None,
    ) -> Report:
        """The report of an analysed model, with the sections the sizing engine and the fit computed."""
        components = [
            ComponentSummary(
                name=c.name,
                kind=c.kind,
                model_type=c.config.model_type if c.config else None,
                architectures=list(c.config.architectures) if c.config else [],
                parameters=c.parameters,
                weights=c.weights,
                quantization=c.quantization,
                files=list(c.files),
                extra=dict(c.extra),
            )
            for c in model.components
        ]
        main = model.main
        return cls(
            repo_id=model.repo_id,
            revision=model.revision,
            sha=model.sha,
            source=model.source,
            parameters=model.parameters,
            weights=model.weights,
            quantization=main.quantization,
            adapter=model.adapter,
            components=components,
            main_component=main.name,
            memory=memory,
            fit=fit,
            serving=serving,
            serving_options=serving_options,
            training=training,
            training_options=training_options,
            warnings=list(model.warnings),
        )

    @property
    def main(self) -> ComponentSummary:
        """The component the memory model sizes."""
        for c in self.components:
            if c.name == self.main_component:
                return c
        raise KeyError(self.main_component)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema ``hubfit/1``): plain JSON types only."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        head = {key: data.pop(key) for key in ("schema", "schema_version", "hubfit_version")}
        memory, fit = data.pop("memory"), data.pop("fit")
        # Sections present only when asked for; GGUF repos only: the files, their table, and llama.cpp's buffers
        # (``serving`` with engine llama.cpp).
        for key in ("serving", "serving_options", "training", "training_options", "gguf_files", "gguf_fit"):
            if data.get(key) is None:
                data.pop(key, None)
        llamacpp = data.pop("llamacpp", None)
        if llamacpp is not None:
            data["serving"] = llamacpp
        return {**head, **data, **(memory or {}), **(fit or {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report from its ``to_dict()`` document (a stored scan row, the Action's JSON artefact).

        Raises:
            hubfit.errors.HeaderError: the document is not a hubfit/1 report of this schema version.
        """
        if not isinstance(data, dict) or data.get("schema") != JSON_SCHEMA:
            raise HeaderError("not a hubfit/1 report document")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise HeaderError(
                f"report document of schema_version {data.get('schema_version')!r}; "
                f"this hubfit reads {SCHEMA_VERSION} (analyse the model again)"
            )
        rest = dict(data)
        memory = {k: rest.pop(k) for k in _fields(MemoryReport) if k in rest}
        fit = {k: rest.pop(k) for k in _fields(FitReport) if k in rest}
        rest["memory"] = memory or None
        rest["fit"] = fit or None
        serving = rest.get("serving")
        if isinstance(serving, dict) and serving.get("engine") == "llama.cpp":
            rest["llamacpp"] = rest.pop("serving")
        _bind_section_types()
        try:
            return msgspec.convert(rest, cls)
        except msgspec.ValidationError as exc:
            raise HeaderError(f"malformed report document: {exc}") from None


def _bind_section_types() -> None:
    """Make the optional sections' types resolvable in this module (msgspec reads the string annotations)."""
    if "Serving" in globals():
        return
    from hubfit.fit.gguf import GGUFFile, GGUFFit, LlamaCppServing
    from hubfit.fit.training import TrainingOption
    from hubfit.sizing.training import Training
    from hubfit.sizing.vllm import Serving

    globals().update(
        GGUFFile=GGUFFile,
        GGUFFit=GGUFFit,
        LlamaCppServing=LlamaCppServing,
        Training=Training,
        TrainingOption=TrainingOption,
        Serving=Serving,
    )


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``Report.to_dict()``, generated from the report's types.

    msgspec writes the schema of the dataclasses; the memory and fit sections' properties are then lifted to the
    top level, as :meth:`Report.to_dict` lifts them.
    """
    _bind_section_types()
    schema: dict[str, Any] = msgspec.json.schema(Report)
    defs = schema["$defs"]
    report = defs["Report"]
    props: dict[str, Any] = report["properties"]
    required: list[str] = report.get("required", [])
    for section, section_cls in (("memory", MemoryReport), ("fit", FitReport)):
        props.pop(section)
        section_def = defs[section_cls.__name__]
        props.update(section_def["properties"])
        del defs[section_cls.__name__]
    llamacpp = props.pop("llamacpp", None)
    if llamacpp is not None and "serving" in props:
        props["serving"] = {"anyOf": [props["serving"], llamacpp]}
    report["required"] = sorted(set(required) | {"schema", "schema_version", "hubfit_version"})
    report["additionalProperties"] = False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/hubfit/hubfit/blob/main/hubfit/data/report.schema.json",
        "title": f"hubfit report ({JSON_SCHEMA}, schema_version {SCHEMA_VERSION})",
        **schema,
    }


def write_schema(path: str | None = None) -> str:
    """Write :func:`json_schema` as the shipped ``hubfit/data/report.schema.json`` (or ``path``); its text."""
    import json
    from pathlib import Path

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    target = Path(path) if path else Path(__file__).parent / "data" / "report.schema.json"
    target.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":  # python -m hubfit.report: regenerate the shipped schema from the types
    write_schema()
