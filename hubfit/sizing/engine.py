"""The one sizing engine: what each device of a layout holds, for one precision, at one context.

Every figure of the memory table and of the GPU fit comes from here:

- :class:`TensorGroups` groups a model's tensors once by what decides their bytes in any precision (role,
  logical parameters, stored bytes, tied copy) and by placement (a decoder layer of the main component; the
  main component's output head and final norm; everything else: embeddings, buffers, other components). A
  671B MoE's ~90,000 tensors collapse to a few hundred groups.
- :class:`Sizer` sizes those groups in one :class:`~hubfit.sizing.memory.Precision`: bytes per decoder layer,
  outside the layers, in total; the KV cache of any run of layers on one tensor-parallel rank; the overhead of
  one device; and :meth:`Sizer.need`, the busiest device of a :class:`Layout`.

A layout is ``tp`` tensor-parallel devices per stage and ``pp`` pipeline stages. Decoder layers are split into
stages as vLLM's ``get_pp_indices`` does (the extra layers go to the stages before the last); the first stage
also holds the embeddings and other components, the last the output head and final norm. Weights of a stage
split evenly over its ``tp`` devices; the KV cache per rank follows :func:`hubfit.sizing.kv.kv_cache_bytes_per_gpu`
(KV heads split, replicated when ``tp`` exceeds them, MLA latents replicated); the overhead
(:func:`hubfit.sizing.rules.overhead_parts`) counts on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.model.params import LogicalTensor
from hubfit.sizing import kv
from hubfit.sizing.rules import Precision, Workload, kv_dtype_of, overhead_parts

__all__ = ["DeviceNeed", "Layout", "Sizer", "TensorGroups"]


@dataclass(frozen=True)
class Layout:
    """``tp`` tensor-parallel devices per stage, ``pp`` pipeline stages (one node per stage beyond a node)."""

    tp: int
    pp: int = 1

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise UsageError(
                f"tensor-parallel and pipeline degrees must be at least 1, got {self.tp}x{self.pp}"
            )

    @property
    def count(self) -> int:
        """Devices in the layout."""
        return self.tp * self.pp


@dataclass(frozen=True)
class DeviceNeed:
    """What the busiest device of a layout holds (bytes): ``total = weights + kv_cache + overhead``."""

    weights: int
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


_GroupKey = tuple[str, int, int, bool]


def _key(t: LogicalTensor) -> _GroupKey:
    return (t.role, t.parameters, t.stored_bytes, t.tied_to is not None)


@dataclass(frozen=True)
class TensorGroups:
    """A model's tensors grouped once by what decides their bytes, with a count per group and placement.

    Attributes:
        layer_count: decoder layers of the main component (the config's count, or more if tensors say so).
        samples: one tensor per group of decoder-layer tensors.
        layered: ``(layer, index into samples, count)`` for every decoder layer.
        head: ``(sample, count)`` of the main component's tensors outside the layers that are neither
            embeddings nor buffers (output head, final norm): the last pipeline stage.
        first: ``(sample, count)`` of everything else (embeddings, buffers, other components): the first stage.
        specs: the main component's KV-cache layer specs (:func:`hubfit.sizing.kv.kv_specs`; empty without a
            decoder cache).
        kv_kinds: the distinct specs (each with its layer index set to 0): a 61-layer MLA model has one, so the
            cache of any run of layers takes one call per kind whatever the number of layers.
        kv_on_layer: the indices into ``kv_kinds`` of the specs on each layer.
    """

    layer_count: int
    samples: tuple[LogicalTensor, ...]
    layered: tuple[tuple[int, int, int], ...]
    head: tuple[tuple[LogicalTensor, int], ...]
    first: tuple[tuple[LogicalTensor, int], ...]
    specs: tuple[kv.LayerSpec, ...] = ()
    kv_kinds: tuple[kv.LayerSpec, ...] = ()
    kv_on_layer: tuple[tuple[int, ...], ...] = ()

    @property
    def mla(self) -> bool:
        """Whether the cache is multi-head latent attention (no KV-head rule for tensor parallelism)."""
        return any(isinstance(spec, kv.MLAAttention) for spec in self.kv_kinds)

    @classmethod
    def of(cls, model: Model) -> TensorGroups:
        """Group ``model``'s tensors (one pass over them)."""
        main = model.main
        groups: dict[_GroupKey, int] = {}
        samples: list[LogicalTensor] = []
        layered: dict[tuple[int, int], int] = {}
        head: dict[_GroupKey, tuple[LogicalTensor, int]] = {}
        first: dict[_GroupKey, tuple[LogicalTensor, int]] = {}
        for component in model.components:
            for t in component.tensors:
                key = _key(t)
                if component is main and t.layer is not None:
                    index = groups.get(key)
                    if index is None:
                        index = groups[key] = len(samples)
                        samples.append(t)
                    slot = (t.layer, index)
                    layered[slot] = layered.get(slot, 0) + 1
                elif component is main and t.role not in ("embedding", "buffer"):
                    _bump(head, key, t)
                else:
                    _bump(first, key, t)
        configured = (main.config.num_hidden_layers if main.config is not None else None) or 0
        count = max([configured] + [layer + 1 for layer, _ in layered])
        specs = tuple(kv.kv_specs(main.config)) if main.config is not None else ()
        kinds: dict[kv.LayerSpec, int] = {}
        on_layer: list[list[int]] = [[] for _ in range(max([count] + [spec.layer + 1 for spec in specs]))]
        for spec in specs:
            on_layer[spec.layer].append(kinds.setdefault(replace(spec, layer=0), len(kinds)))
        return cls(
            count,
            tuple(samples),
            tuple((layer, group, n) for (layer, group), n in layered.items()),
            _pairs(head),
            _pairs(first),
            specs,
            tuple(kinds),
            tuple(tuple(k) for k in on_layer),
        )


def _bump(groups: dict[_GroupKey, tuple[LogicalTensor, int]], key: _GroupKey, t: LogicalTensor) -> None:
    sample, count = groups.get(key, (t, 0))
    groups[key] = (sample, count + 1)


def _pairs(groups: dict[_GroupKey, tuple[LogicalTensor, int]]) -> tuple[tuple[LogicalTensor, int], ...]:
    return tuple(groups.values())


@dataclass
class Sizer:
    """One model in one precision under one workload: the engine every memory and fit figure comes from.

    Args:
        model: the analysed model (tensors, config, counts).
        workload: context, batch, KV dtype, overhead mode.
        precision: the target precision (``stored`` for the checkpoint as it is).
        groups: the model's :class:`TensorGroups` (built once and shared across precisions).
    """

    model: Model
    workload: Workload
    precision: Precision
    groups: TensorGroups
    _kv_prefix: dict[tuple[int, int], list[int]] = field(default_factory=dict, init=False, repr=False)
    _overheads: dict[tuple[int, int, int], int] = field(default_factory=dict, init=False, repr=False)
    _needs: dict[tuple[Layout, int], DeviceNeed] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def kv_dtype(self) -> str:
        """The KV-cache element type of the workload (the model's default when it names none)."""
        return kv_dtype_of(self.model.main.config, self.workload)

    @cached_property
    def layers(self) -> list[int]:
        """Weight bytes per decoder layer of the main component (index = layer)."""
        sizes = [self.precision.tensor_bytes(sample) for sample in self.groups.samples]
        out = [0] * self.groups.layer_count
        for layer, group, count in self.groups.layered:
            out[layer] += sizes[group] * count
        return out

    @cached_property
    def head_bytes(self) -> int:
        """Bytes outside the layers on the last stage: the main component's output head and final norm."""
        return sum(self.precision.tensor_bytes(t) * n for t, n in self.groups.head)

    @cached_property
    def first_bytes(self) -> int:
        """Bytes outside the layers on the first stage: embeddings, buffers, other components."""
        return sum(self.precision.tensor_bytes(t) * n for t, n in self.groups.first)

    @cached_property
    def weights(self) -> int:
        """All weight bytes in this precision."""
        return sum(self.layers) + self.head_bytes + self.first_bytes

    @property
    def specs(self) -> tuple[kv.LayerSpec, ...]:
        """The main component's KV-cache layer specs (empty without a decoder cache)."""
        return self.groups.specs

    @cached_property
    def active_weights(self) -> int:
        """Weight bytes read per generated token: all of them, scaled to the active parameters for MoE."""
        params = self.model.main.parameters
        if not params.total or params.active >= params.total:
            return self.weights
        return math.ceil(self.weights * params.active / params.total)

    def stages(self, pp: int) -> list[range]:
        """Decoder layer ranges per pipeline stage (vLLM get_pp_indices: extras before the last stage)."""
        n = len(self.layers)
        sizes = [n // pp] * pp
        for i in range(n % pp):
            sizes[-2 - i] += 1
        out, start = [], 0
        for size in sizes:
            out.append(range(start, start + size))
            start += size
        return out

    def kv_rank(self, layers: range | None, context: int, tp: int) -> int:
        """KV cache on one TP rank for a run of layers (all layers when ``layers`` is None).

        Per (context, tp) each distinct layer spec is sized once (``LayerSpec.rank_bytes``, what
        :func:`hubfit.sizing.kv.kv_cache_bytes_per_gpu` sums) and the layers are summed into prefix sums, so a
        pipeline stage costs two lookups.
        """
        if not context or not self.specs or self.workload.overhead is not None:
            return 0
        key = (context, tp)
        prefix = self._kv_prefix.get(key)
        if prefix is None:
            kinds, on_layer = self.groups.kv_kinds, self.groups.kv_on_layer
            size = kv.kv_dtype_bytes(self.kv_dtype)
            batch = self.workload.batch
            value = [kind.rank_bytes(context, batch, size, tp) for kind in kinds]
            prefix = [0]
            for layer_kinds in on_layer:
                prefix.append(prefix[-1] + sum(value[k] for k in layer_kinds))
            self._kv_prefix[key] = prefix
        if layers is None:
            return prefix[-1]
        return prefix[min(layers.stop, len(prefix) - 1)] - prefix[min(layers.start, len(prefix) - 1)]

    def overhead(self, stage_weights: int, context: int, tp: int) -> int:
        """One device's overhead (:func:`hubfit.sizing.rules.overhead_parts`).

        The seed formula scales with the stage's weights; the documented model depends only on the context and
        TP (fixed part, workspace, slack), so it is computed once per (context, tp).
        """
        seed = self.workload.overhead is not None
        key = (stage_weights if seed else -1, 0 if seed else context, tp)
        if key not in self._overheads:
            workload = self.workload if seed else replace(self.workload, context=context)
            self._overheads[key] = overhead_parts(self.model, stage_weights, workload, tp).total
        return self._overheads[key]

    @cached_property
    def _layer_prefix(self) -> list[int]:
        prefix = [0]
        for size in self.layers:
            prefix.append(prefix[-1] + size)
        return prefix

    def need(self, layout: Layout, context: int) -> DeviceNeed:
        """What the busiest device of ``layout`` holds at ``context`` tokens per sequence (remembered: the fit
        asks the same layout and context for every device of the same size)."""
        key = (layout, context)
        known = self._needs.get(key)
        if known is None:
            known = self._needs[key] = self._need(layout, context)
        return known

    def _need(self, layout: Layout, context: int) -> DeviceNeed:
        best = DeviceNeed(0, 0, 0)
        stages = self.stages(layout.pp) if self.layers else [range(0)]
        prefix = self._layer_prefix
        for i, layers in enumerate(stages):
            stage = prefix[layers.stop] - prefix[layers.start]
            if i == 0:
                stage += self.first_bytes
            if i == len(stages) - 1:
                stage += self.head_bytes
            if not self.layers:
                stage = self.weights
            weights = math.ceil(stage / layout.tp)
            kv_bytes = self.kv_rank(layers if layout.pp > 1 else None, context, layout.tp)
            need = DeviceNeed(weights, kv_bytes, self.overhead(stage, context, layout.tp))
            if need.total > best.total:
                best = need
        return best
