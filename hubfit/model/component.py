"""The analysed model: its components, their tensors by role, and the counts derived from them.

:class:`Model` is what the model stage hands to sizing and fit: every tensor with its role and logical
parameters, the config facts, the quantization format. The counts (:class:`ParameterSummary`,
:class:`WeightSummary`) and :class:`Quantization` are plain data that the report carries as they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubfit.formats.safetensors import SafetensorsHeader
from hubfit.model.checkpoint import check_checkpoint
from hubfit.model.config import ModelConfig, validate_quantization
from hubfit.model.params import LogicalTensor, active_of, inventory
from hubfit.model.quant import QuantFormat

__all__ = [
    "Component",
    "Model",
    "ParameterSummary",
    "Quantization",
    "WeightSummary",
    "component_from_headers",
]


@dataclass(frozen=True)
class ParameterSummary:
    """Parameter counts.

    Attributes:
        total: logical parameters (unpacked, without buffers, quantization metadata or tied copies).
        active: parameters used per token (``total`` for a dense model).
        stored_by_dtype: elements as stored in the files, per dtype (buffers and metadata included).
        by_role: logical parameters per tensor role (embedding, linear, expert, norm ...).
    """

    total: int
    active: int
    stored_by_dtype: dict[str, int]
    by_role: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, tensors: list[LogicalTensor], config: ModelConfig | None) -> ParameterSummary:
        return summaries(tensors, config, 0)[0]

    @classmethod
    def sum(cls, parts: list[ParameterSummary]) -> ParameterSummary:
        stored: Counter[str] = Counter()
        roles: Counter[str] = Counter()
        for p in parts:
            stored.update(p.stored_by_dtype)
            roles.update(p.by_role)
        return cls(sum(p.total for p in parts), sum(p.active for p in parts), _sorted(stored), _sorted(roles))


@dataclass(frozen=True)
class WeightSummary:
    """Bytes of tensor data as stored (from ``data_offsets``), per dtype, and the number of files."""

    bytes: int
    files: int
    bytes_by_dtype: dict[str, int]

    @classmethod
    def of(cls, tensors: list[LogicalTensor], files: int) -> WeightSummary:
        return summaries(tensors, None, files)[1]

    @classmethod
    def sum(cls, parts: list[WeightSummary]) -> WeightSummary:
        by_dtype: Counter[str] = Counter()
        for p in parts:
            by_dtype.update(p.bytes_by_dtype)
        return cls(sum(by_dtype.values()), sum(p.files for p in parts), _sorted(by_dtype))


def summaries(
    tensors: list[LogicalTensor], config: ModelConfig | None, files: int
) -> tuple[ParameterSummary, WeightSummary]:
    """The parameter and weight summaries of ``tensors``, in one pass over them (92k tensors for DeepSeek-V3)."""
    stored: dict[str, int] = {}
    stored_bytes: dict[str, int] = {}
    roles: dict[str, int] = {}
    routed: dict[int | None, int] = {}
    for t in tensors:
        dtype = t.dtype
        stored[dtype] = stored.get(dtype, 0) + t.stored_elements
        stored_bytes[dtype] = stored_bytes.get(dtype, 0) + t.stored_bytes
        params = t.parameters
        if params:
            role = t.role
            roles[role] = roles.get(role, 0) + params
            if role == "expert":
                routed[t.layer] = routed.get(t.layer, 0) + params
    total = sum(roles.values())
    parameters = ParameterSummary(total, active_of(total, routed, config), _sorted(stored), _sorted(roles))
    return parameters, WeightSummary(sum(stored_bytes.values()), files, _sorted(stored_bytes))


@dataclass(frozen=True)
class Quantization:
    """How a checkpoint is quantized: method (``gptq``, ``awq``, ``fp8`` ...), bits, group size, settings."""

    method: str
    bits: float | None
    group_size: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """One model in a repository (the root model, a diffusers component, a sentence-transformers module)."""

    name: str
    kind: str
    config: ModelConfig | None
    tensors: list[LogicalTensor]
    parameters: ParameterSummary
    weights: WeightSummary
    quantization: Quantization | None = None
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Model:
    """Everything the model stage knows about one repository at one revision.

    Attributes:
        repo_id: Hub repo id, or the local directory's name.
        revision: the revision asked for (``local`` for a directory).
        sha: the commit read (``None`` for a directory).
        source: ``hub`` or ``local``.
        components: the root model, or each component of a pipeline (``name`` = its subfolder).
        adapter: ``{"base_model", "peft_type", "r", "target_modules"}`` for a PEFT adapter repo.
    """

    repo_id: str
    revision: str
    sha: str | None
    source: str
    components: list[Component] = field(repr=False)
    adapter: dict[str, Any] | None = None

    @property
    def main(self) -> Component:
        """The component the memory model sizes: the root model, else the one with most parameters."""
        for c in self.components:
            if c.name == "":
                return c
        return max(self.components, key=lambda c: c.parameters.total)

    @property
    def config(self) -> ModelConfig | None:
        """The main component's config."""
        return self.main.config

    @property
    def quantization(self) -> Quantization | None:
        """The main component's quantization."""
        return self.main.quantization

    @property
    def parameters(self) -> ParameterSummary:
        """Counts over every component."""
        return ParameterSummary.sum([c.parameters for c in self.components])

    @property
    def weights(self) -> WeightSummary:
        """Stored bytes over every component."""
        return WeightSummary.sum([c.weights for c in self.components])

    @property
    def tensors(self) -> list[LogicalTensor]:
        """Every tensor of every component."""
        return [t for c in self.components for t in c.tensors]

    @property
    def warnings(self) -> list[str]:
        """What the model stage found doubtful and how it decided (config against checkpoint), per component."""
        return [w for c in self.components for w in c.warnings]


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
    """A :class:`Component` from validated headers: tensor inventory, counts, quantization.

    This is the model stage's one door: every source (Hub, local directory, Git LFS, scan, Action) builds its
    components here, so the config is validated here, once, before anything is counted or sized
    (:meth:`ModelConfig.validate`), and the tensors are compared with it
    (:func:`hubfit.model.checkpoint.check_checkpoint`).

    Raises:
        ConfigError: the config holds a value no model can have.
        ConfigMismatchError: the tensors contradict the config.
    """
    path = f"{name}/config.json" if name else "config.json"
    if config is not None:
        config.validate(path)
    if quant is not None:
        validate_quantization(quant.config, f"{path}: quantization settings")
    tensors = inventory(headers, component=name, config=config, quant=quant)
    config, warnings = check_checkpoint(tensors, config, path=path)
    parameters, weights = summaries(tensors, config, len(headers))
    quantization = None
    if quant is not None:
        method = quant.method or str(quant.config.get("quant_method", "unknown"))
        quantization = Quantization(method, quant.bits, quant.group_size, quant.details())
    return Component(
        name=name,
        kind=kind,
        config=config,
        tensors=tensors,
        parameters=parameters,
        weights=weights,
        quantization=quantization,
        files=list(files or [h.filename for h in headers]),
        extra=dict(extra or {}),
        warnings=warnings,
    )


def _sorted(counter: Mapping[str, int]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter, key=lambda k: (-counter[k], k)) if counter[k]}
