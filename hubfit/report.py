"""The report: one object every output renders (table, JSON, Markdown, model card, comments, scan rows).

Figures are computed once, when the report is built; renderers never recompute them. ``Report.to_dict()``
is the ``--json`` output, schema ``hubfit/1`` (documented in the README).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hubfit import __version__
from hubfit.constants import JSON_SCHEMA
from hubfit.model.config import ModelConfig
from hubfit.model.params import LogicalTensor, active_parameters

__all__ = ["Component", "ParameterSummary", "Quantization", "Report", "WeightSummary"]


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "active": self.active,
            "stored_by_dtype": dict(self.stored_by_dtype),
            "by_role": dict(self.by_role),
        }

    @classmethod
    def of(cls, tensors: list[LogicalTensor], config: ModelConfig | None) -> ParameterSummary:
        stored: Counter[str] = Counter()
        roles: Counter[str] = Counter()
        for t in tensors:
            stored[t.dtype] += t.stored_elements
            if t.parameters:
                roles[t.role] += t.parameters
        total = sum(roles.values())
        return cls(total, active_parameters(tensors, config), _sorted(stored), _sorted(roles))

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

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "files": self.files, "bytes_by_dtype": dict(self.bytes_by_dtype)}

    @classmethod
    def of(cls, tensors: list[LogicalTensor], files: int) -> WeightSummary:
        by_dtype: Counter[str] = Counter()
        for t in tensors:
            by_dtype[t.dtype] += t.stored_bytes
        return cls(sum(by_dtype.values()), files, _sorted(by_dtype))

    @classmethod
    def sum(cls, parts: list[WeightSummary]) -> WeightSummary:
        by_dtype: Counter[str] = Counter()
        for p in parts:
            by_dtype.update(p.bytes_by_dtype)
        return cls(sum(by_dtype.values()), sum(p.files for p in parts), _sorted(by_dtype))


@dataclass(frozen=True)
class Quantization:
    """How a checkpoint is quantized: method (``gptq``, ``awq``, ``fp8`` ...), bits, group size, settings."""

    method: str
    bits: float | None
    group_size: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "bits": self.bits, "group_size": self.group_size, **self.details}


@dataclass
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

    def to_dict(self) -> dict[str, Any]:
        config = self.config
        return {
            "name": self.name,
            "kind": self.kind,
            "model_type": config.model_type if config else None,
            "architectures": config.architectures if config else [],
            "parameters": self.parameters.to_dict(),
            "weights": self.weights.to_dict(),
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "files": list(self.files),
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass
class Report:
    """Everything hubfit knows about one model at one revision.

    ``memory`` and ``fit`` are filled by :mod:`hubfit.memory` and :mod:`hubfit.fit` when a workload or
    hardware question was asked; each contributes its own keys to :meth:`to_dict`.
    """

    repo_id: str
    revision: str
    sha: str | None
    source: str
    components: list[Component]
    adapter: dict[str, Any] | None = None
    memory: Any = None
    fit: Any = None
    version: str = __version__

    @property
    def parameters(self) -> ParameterSummary:
        return ParameterSummary.sum([c.parameters for c in self.components])

    @property
    def weights(self) -> WeightSummary:
        return WeightSummary.sum([c.weights for c in self.components])

    @property
    def main(self) -> Component:
        """The component the memory model sizes: the root model, else the one with most parameters."""
        for c in self.components:
            if c.name == "":
                return c
        return max(self.components, key=lambda c: c.parameters.total)

    @property
    def config(self) -> ModelConfig | None:
        return self.main.config

    @property
    def quantization(self) -> Quantization | None:
        return self.main.quantization

    @property
    def tensors(self) -> list[LogicalTensor]:
        return [t for c in self.components for t in c.tensors]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema ``hubfit/1``)."""
        out: dict[str, Any] = {
            "schema": JSON_SCHEMA,
            "hubfit_version": self.version,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "sha": self.sha,
            "source": self.source,
            "parameters": self.parameters.to_dict(),
            "weights": self.weights.to_dict(),
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "adapter": self.adapter,
            "components": [c.to_dict() for c in self.components],
        }
        for section in (self.memory, self.fit):
            if section is not None:
                out.update(section.to_dict())
        return out


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter, key=lambda k: (-counter[k], k)) if counter[k]}
