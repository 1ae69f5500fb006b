"""Memory needed to run a model: weights per precision, KV cache, runtime overhead, as the report's section.

For each precision a row ``weights + KV cache + overhead = total`` (bytes), each the sizing engine's figure for
one device (:meth:`hubfit.sizing.engine.Sizer.need` on ``Layout(1)``): weights by the precision rules of
:mod:`hubfit.sizing.rules`, the KV cache by :mod:`hubfit.sizing.kv` (per-layer specs, vLLM style) for the
workload's context, batch and KV dtype, and the documented overhead (or the seed formula).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.model.params import ROLES
from hubfit.sizing import kv
from hubfit.sizing.engine import Layout, Sizer, TensorGroups
from hubfit.sizing.rules import (
    DEFAULT_CONTEXT,
    STORED,
    OverheadParts,
    Precision,
    Workload,
    default_precisions,
    kv_dtype_of,
    overhead_bytes,
    overhead_constant,
    overhead_parts,
    precision,
    precision_names,
    resolve_context,
    rows,
)

__all__ = [
    "DEFAULT_CONTEXT",
    "STORED",
    "Estimate",
    "GPUShare",
    "KVCacheSummary",
    "KVLayers",
    "MemoryReport",
    "OverheadParts",
    "Precision",
    "PrecisionRule",
    "Sizer",
    "Workload",
    "default_precisions",
    "estimate",
    "kv_dtype_of",
    "layer_bytes",
    "overhead_bytes",
    "overhead_constant",
    "overhead_parts",
    "per_gpu",
    "precision",
    "precision_names",
    "resolve_context",
    "rows",
    "sizer",
    "weights_bytes",
]

# ---- weights -----------------------------------------------------------------------------------------------


def _as_precision(precision_or_bpw: str | float | Precision) -> Precision:
    return precision_or_bpw if isinstance(precision_or_bpw, Precision) else precision(precision_or_bpw)


def sizer(
    model: Model,
    precision_or_bpw: str | float | Precision,
    workload: Workload | None = None,
    groups: TensorGroups | None = None,
) -> Sizer:
    """The sizing engine for ``model`` in one precision under ``workload`` (see :mod:`hubfit.sizing.engine`)."""
    return Sizer(
        model, workload or Workload(), _as_precision(precision_or_bpw), groups or TensorGroups.of(model)
    )


def weights_bytes(model: Model, precision_or_bpw: str | float | Precision) -> int:
    """Bytes of every component's weights in a precision (name, ``stored`` or a bits-per-weight number)."""
    return sizer(model, precision_or_bpw).weights


def layer_bytes(model: Model, precision_or_bpw: str | float | Precision) -> list[int]:
    """Bytes of each decoder layer of the main component (index = layer); for llama.cpp ``-ngl`` offload views.

    ``weights_bytes(model, p) - sum(layer_bytes(model, p))`` is what is outside the layers (embeddings,
    output head, final norm, other components).
    """
    return list(sizer(model, precision_or_bpw).layers)


# ---- the report section ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One precision row: ``total_bytes = weights_bytes + kv_cache_bytes + overhead_bytes``."""

    precision: str
    bits_per_weight: float
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class PrecisionRule:
    """How a precision row stores each tensor (the data behind :meth:`Precision.describe`).

    Attributes:
        name: the row's precision name.
        family: ``float`` | ``transformers`` | ``gguf`` | ``exl2`` | ``stored``.
        bits: effective bits per quantized weight (group scales and zero points included).
        quantized_roles: tensor roles stored at ``bits``, in :data:`hubfit.model.params.ROLES` order.
        kept_bits: bits of every other parameter tensor (``None``: all roles are quantized).
        lm_head_bits: bits of the output head when the format gives it its own (ExLlamaV2).
        note: what the format is, in a phrase.
    """

    name: str
    family: str
    bits: float
    quantized_roles: list[str]
    kept_bits: int | None = None
    lm_head_bits: int | None = None
    note: str = ""

    @classmethod
    def of(cls, prec: Precision) -> PrecisionRule:
        roles = [role for role in ROLES if role in prec.quantized_roles]
        return cls(
            prec.name, prec.family, float(prec.bits), roles, prec.kept_bits, prec.lm_head_bits, prec.note
        )


@dataclass(frozen=True)
class KVCacheSummary:
    """The KV cache of the workload (on one GPU, no tensor parallelism).

    Attributes:
        bytes_per_token: bytes one token of one sequence adds over all layers (before any window is full).
        dtype: KV element type.
        context: tokens per sequence.
        batch: sequences.
        bytes: the whole cache for the workload (recurrent states included).
    """

    bytes_per_token: int
    dtype: str
    context: int
    batch: int
    bytes: int


@dataclass(frozen=True)
class KVLayers:
    """The layers of one KV kind (``full``, ``sliding``, ``mla``, ``state`` ...) and their share of the cache."""

    layers: int
    bytes_per_token: int
    bytes: int


@dataclass(frozen=True)
class MemoryReport:
    """The memory section of a report.

    Attributes:
        estimates: one row per precision.
        kv_cache: the KV cache of the workload.
        kv_layers: the cache by layer kind (in the order the kinds first appear).
        overhead: the overhead terms of one GPU.
        precisions: each row's precision rule.
        workload: the workload asked for.
    """

    estimates: list[Estimate]
    kv_cache: KVCacheSummary
    kv_layers: dict[str, KVLayers]
    overhead: OverheadParts
    precisions: list[PrecisionRule]
    workload: Workload

    def to_dict(self) -> dict[str, Any]:
        """The section's keys of the ``--json`` document."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def _kv_summary(model: Model, workload: Workload) -> tuple[KVCacheSummary, dict[str, KVLayers]]:
    config = model.main.config
    dtype = kv_dtype_of(config, workload)
    specs = kv.kv_specs(config) if config is not None else []
    context = resolve_context(config, workload)
    kinds: dict[str, list[kv.LayerSpec]] = {}
    for spec in specs:
        kinds.setdefault(spec.kind, []).append(spec)
    by_kind = {
        kind: KVLayers(
            len(group),
            kv.kv_bytes_per_token(group, dtype),
            kv.kv_cache_bytes(group, context, workload.batch, dtype),
        )
        for kind, group in kinds.items()
    }
    summary = KVCacheSummary(
        bytes_per_token=kv.kv_bytes_per_token(specs, dtype),
        dtype=dtype,
        context=context,
        batch=workload.batch,
        bytes=sum(group.bytes for group in by_kind.values()),
    )
    return summary, by_kind


def estimate(
    model: Model, workload: Workload | None = None, *, groups: TensorGroups | None = None
) -> MemoryReport:
    """The memory section for ``model`` under ``workload`` (default: 4096 tokens, batch 1, 16-bit KV).

    Every row is the sizing engine's single-device layout (:meth:`hubfit.sizing.engine.Sizer.need`), so the
    memory table and the GPU fit are one computation.
    """
    workload = workload or Workload()
    summary, kv_layers = _kv_summary(model, workload)
    params = model.parameters.total
    precisions = rows(workload)
    groups = groups or TensorGroups.of(model)
    context = summary.context
    estimates = []
    for prec in precisions:
        need = Sizer(model, workload, prec, groups).need(Layout(1), context)
        estimates.append(
            Estimate(
                precision=prec.name,
                bits_per_weight=round(need.weights * 8 / params, 3) if params else 0.0,
                weights_bytes=need.weights,
                kv_cache_bytes=need.kv_cache,
                overhead_bytes=need.overhead,
                total_bytes=need.total,
            )
        )
    # The overhead terms of one GPU, shown beside the table: those of the last row (they differ between rows only
    # in the seed formula, which scales with each row's weights).
    parts = overhead_parts(model, estimates[-1].weights_bytes, workload) if estimates else OverheadParts()
    rules = [PrecisionRule.of(p) for p in precisions]
    return MemoryReport(estimates, summary, kv_layers, parts, rules, workload)


# ---- per GPU (for the fit) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPUShare:
    """What one of ``tp`` tensor-parallel GPUs holds (bytes)."""

    tp: int
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    overhead: OverheadParts

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


def per_gpu(
    model: Model, precision_or_bpw: str | float | Precision, workload: Workload, tp: int = 1
) -> GPUShare:
    """One GPU's share with tensor parallelism over ``tp`` GPUs (the sizing engine's ``Layout(tp)``).

    Weights split evenly (``ceil(weights / tp)``); the KV cache per rank (:func:`hubfit.sizing.kv.kv_cache_bytes_per_gpu`:
    KV heads split, replicated when ``tp > kv_heads``, MLA latents replicated); the fixed overhead on every GPU and
    the activation workspace with its intermediate-wide part split.
    """
    if tp < 1:
        raise UsageError(f"tensor-parallel degree must be at least 1, got {tp}")
    engine = sizer(model, precision_or_bpw, workload)
    need = engine.need(Layout(tp), resolve_context(model.main.config, workload))
    parts = overhead_parts(model, engine.weights, workload, tp)
    return GPUShare(tp, need.weights, need.kv_cache, need.overhead, parts)
