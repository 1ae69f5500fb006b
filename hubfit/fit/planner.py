"""Hardware fit: how many of which GPU, the longest context, the best bits-per-weight for a card.

For each precision and GPU, :func:`evaluate` finds the fewest devices that hold the model and says what each
one holds. The layouts are the ones serving engines accept (vLLM's rules):

- **Tensor parallelism** inside a node: the TP size divides the attention heads, and the KV heads divide
  the TP size or the TP size divides them; when TP exceeds the KV heads every rank keeps a replica of one
  head, and the extra KV memory counts (:func:`hubfit.kv.kv_cache_bytes_per_gpu`). At most ``per_node``
  devices (8) per node.
- **Pipeline stages across nodes** beyond one node: TP stays at the largest valid size per node and the
  decoder layers are split into stages (vLLM's ``get_pp_indices``: the extra layers go to the stages before
  the last); the first stage also holds the embeddings, the last the final norm and output head.
- The per-GPU overhead (:func:`hubfit.memory.overhead_parts`) counts on every GPU.

A layout fits when the busiest GPU holds its weights, its KV cache at the workload's context and its overhead
within the device's memory (Apple silicon: the GPU's share of unified memory, 75 % by default).

Then, for the layout found: the longest context that fits (capped at ``max_position_embeddings``), and an
upper bound on decode speed: every active weight byte and the whole KV cache read once per generated token at
peak bandwidth. Where a model does not fit the devices asked for, the llama.cpp ``-ngl`` view (how many layers
fit on the GPUs, the rest in CPU RAM) and, on Apple silicon, the unified-memory view (how far
``iogpu.wired_limit_mb`` must be raised). Finally the highest EXL2 bits per weight (steps of 0.05) and the best
GGUF type that fit each device set at the workload's context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import Any

from hubfit.errors import UsageError
from hubfit.fit.gpus import GPU, GPU_CLASSES, apple_gpu_share, custom_gpu, default_gpus, find_gpu
from hubfit.sizing import kv, memory
from hubfit.sizing.memory import Precision, Workload

__all__ = [
    "BPW_MAX",
    "BPW_MIN",
    "BPW_STEP",
    "BestBpw",
    "Fit",
    "FitReport",
    "HardwareQuery",
    "Layout",
    "Offload",
    "UnifiedMemory",
    "evaluate",
    "render_markdown",
    "render_text",
    "valid_tp",
]

#: EXL2 average bits per weight searched, in steps of 0.05 (ExLlamaV2 mixes 2 to 8 bits per weight).
BPW_MIN, BPW_MAX, BPW_STEP = Fraction(2), Fraction(8), Fraction(1, 20)


# ---- the question ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HardwareQuery:
    """Which devices to fit the model on.

    Attributes:
        gpus: catalog names (matched forgivingly, ``--gpu``); ``()`` -> the curated default set.
        count: a fixed number of devices (``--gpus``); ``None`` -> the fewest that fit.
        gpu_memory: bytes per device (``--gpu-memory``): alone, a card the catalog does not list; with
            ``gpus``, overrides their memory.
        apple_gpu_share: share of unified memory the GPU may use on Apple silicon (default 0.75).
    """

    gpus: tuple[str, ...] = ()
    count: int | None = None
    gpu_memory: int | None = None
    apple_gpu_share: float | None = None

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise UsageError(f"--gpus must be at least 1, got {self.count}")
        if self.gpu_memory is not None and self.gpu_memory <= 0:
            raise UsageError("--gpu-memory must be greater than zero")
        if self.apple_gpu_share is not None and not 0 < self.apple_gpu_share <= 1:
            raise UsageError(f"--apple-gpu-share is a fraction in (0, 1], got {self.apple_gpu_share}")

    def devices(self) -> tuple[GPU, ...]:
        """The devices asked for (catalog rows, overridden or custom when ``gpu_memory`` is set)."""
        if self.gpus:
            found = tuple(dict.fromkeys(find_gpu(name) for name in self.gpus))
            if self.gpu_memory is not None:
                found = tuple(gpu.with_memory(self.gpu_memory) for gpu in found)
            return found
        if self.gpu_memory is not None:
            return (custom_gpu(self.gpu_memory),)
        return default_gpus()

    @property
    def share(self) -> float:
        return apple_gpu_share() if self.apple_gpu_share is None else self.apple_gpu_share


@dataclass(frozen=True)
class Layout:
    """``tp`` tensor-parallel devices per stage, ``pp`` pipeline stages (one node per stage beyond a node)."""

    tp: int
    pp: int = 1

    @property
    def count(self) -> int:
        return self.tp * self.pp


def valid_tp(config: Any, tp: int) -> bool:
    """Whether vLLM accepts tensor parallelism ``tp`` for this model.

    The attention heads must divide by ``tp``; the KV heads must divide by ``tp``, or ``tp`` by them (then each
    rank replicates a head); the MLP's intermediate size must divide by ``tp``. Multi-head latent attention has
    no KV-head rule (the latent is replicated). A model without attention heads only runs at ``tp = 1``.
    """
    mla = any(isinstance(spec, kv.MLAAttention) for spec in _specs(config))
    return _valid_tp(config, tp, mla)


def _valid_tp(config: Any, tp: int, mla: bool) -> bool:
    if tp == 1:
        return True
    heads = config.num_attention_heads if config is not None else None
    if not heads or heads % tp:
        return False
    if not mla:
        kv_heads = config.num_key_value_heads or heads
        if (kv_heads % tp) if tp <= kv_heads else (tp % kv_heads):
            return False
    inter = config.intermediate_size
    return not (inter and not config.is_moe and inter % tp)


def _specs(config: Any) -> list[kv.LayerSpec]:
    return kv.kv_specs(config) if config is not None else []


# ---- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Offload:
    """llama.cpp ``-ngl`` view when the model does not fit: the last ``layers_on_gpu`` layers (and their KV
    cache) on the GPUs, everything else (embeddings, output head when not all layers fit, the other layers and
    their KV cache) in CPU RAM."""

    layers_on_gpu: int
    layers_total: int
    gpu_bytes: int
    cpu_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers_on_gpu": self.layers_on_gpu,
            "layers_total": self.layers_total,
            "gpu_bytes": self.gpu_bytes,
            "cpu_bytes": self.cpu_bytes,
        }


@dataclass(frozen=True)
class UnifiedMemory:
    """Apple silicon: the model's bytes against the GPU's share of unified memory and the whole RAM.

    ``verdict``: ``fits`` (within the default working set), ``raise_wired_limit`` (fits in RAM if
    ``sudo sysctl iogpu.wired_limit_mb=<wired_limit_mb>`` raises the GPU's share) or ``exceeds_ram``.
    """

    needed_bytes: int
    gpu_share: float
    gpu_working_set_bytes: int
    ram_bytes: int
    verdict: str
    wired_limit_mb: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "needed_bytes": self.needed_bytes,
            "gpu_share": self.gpu_share,
            "gpu_working_set_bytes": self.gpu_working_set_bytes,
            "ram_bytes": self.ram_bytes,
            "verdict": self.verdict,
            "wired_limit_mb": self.wired_limit_mb,
        }


@dataclass(frozen=True)
class Fit:
    """One precision on one kind of device.

    Attributes:
        gpu: the device.
        precision: precision name (as in the memory section).
        layout: the layout evaluated (the fewest devices that fit, or the fixed ``--gpus`` count); ``None`` when
            no layout fits.
        fits: whether the model fits ``layout``.
        usable_bytes: memory one device offers (Apple: the GPU's share).
        per_gpu_bytes: the busiest device's total = weights + KV cache + overhead (below).
        max_context: the longest context that fits the layout (0 when the weights alone do not fit).
        decode_tokens_per_s: upper bound on generated tokens per second (``None`` when it does not fit, the
            bandwidth is unknown, or the model does not decode: encoder-only).
        kv_replicated_bytes: extra KV memory over all devices because TP exceeds the KV heads.
        offload: the llama.cpp view when the model does not fit (not on Apple silicon).
        unified: the unified-memory view (Apple silicon only).
    """

    gpu: GPU
    precision: str
    layout: Layout | None
    fits: bool
    usable_bytes: int
    per_gpu_bytes: int
    weights_per_gpu_bytes: int
    kv_per_gpu_bytes: int
    overhead_per_gpu_bytes: int
    max_context: int
    decode_tokens_per_s: float | None
    kv_replicated_bytes: int = 0
    offload: Offload | None = None
    unified: UnifiedMemory | None = None

    @property
    def count(self) -> int:
        """Devices used (0: no layout fits)."""
        return self.layout.count if self.layout is not None else 0

    @property
    def verdict(self) -> str:
        """``fits``, ``does_not_fit`` (at the fixed count) or ``no_layout_fits``."""
        if self.fits:
            return "fits"
        return "does_not_fit" if self.layout is not None else "no_layout_fits"

    def to_dict(self) -> dict[str, Any]:
        """The ``fits`` entry of the JSON (exactly the keys the issue specifies)."""
        return {
            "gpu": self.gpu.name,
            "gpu_memory_bytes": self.gpu.memory_bytes,
            "precision": self.precision,
            "count": self.count,
            "per_gpu_bytes": self.per_gpu_bytes,
            "max_context": self.max_context,
            "decode_tokens_per_s": self.decode_tokens_per_s,
        }

    def details(self) -> dict[str, Any]:
        """The ``fit_details`` entry: layout, per-GPU breakdown, offload and unified-memory views."""
        return {
            "gpu": self.gpu.name,
            "gpu_id": self.gpu.id,
            "precision": self.precision,
            "verdict": self.verdict,
            "tp": self.layout.tp if self.layout else None,
            "pp": self.layout.pp if self.layout else None,
            "usable_bytes": self.usable_bytes,
            "weights_per_gpu_bytes": self.weights_per_gpu_bytes,
            "kv_per_gpu_bytes": self.kv_per_gpu_bytes,
            "overhead_per_gpu_bytes": self.overhead_per_gpu_bytes,
            "kv_replicated_bytes": self.kv_replicated_bytes,
            "offload": self.offload.to_dict() if self.offload else None,
            "unified_memory": self.unified.to_dict() if self.unified else None,
        }


@dataclass(frozen=True)
class BestBpw:
    """The highest EXL2 bits per weight and the best GGUF type that fit ``count`` devices at ``context``.

    ``bpw`` / ``gguf_type`` are ``None`` when not even the lowest setting fits.
    """

    gpu: GPU
    count: int
    context: int
    bpw: float | None
    gguf_type: str | None
    gguf_bpw: float | None

    def to_dict(self) -> dict[str, Any]:
        """The ``best_bpw`` entry of the JSON (exactly the keys the issue specifies)."""
        return {
            "gpu": self.gpu.name,
            "count": self.count,
            "context": self.context,
            "bpw": self.bpw,
            "gguf_type": self.gguf_type,
        }


@dataclass(frozen=True)
class FitReport:
    """The fit section of a report.

    Attributes:
        fits: one :class:`Fit` per GPU and precision, GPUs in query order.
        best_bpw: one :class:`BestBpw` per GPU.
        context: tokens per sequence the fits were sized for (0: no KV cache, e.g. the seed formula).
        batch: sequences.
        kv_dtype: KV-cache element type.
        fixed_count: the ``--gpus`` count, or ``None`` when the fewest devices were searched.
        apple_gpu_share: the unified-memory share used for Apple silicon.
        seed_overhead: the ``--overhead`` fraction when the seed formula sized the fits (weights x (1 + F)).
    """

    fits: list[Fit]
    best_bpw: list[BestBpw]
    context: int
    batch: int
    kv_dtype: str
    fixed_count: int | None
    apple_gpu_share: float
    seed_overhead: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``fits`` and ``best_bpw`` as the issue specifies, plus ``fit_details`` (layouts and views)."""
        return {
            "fits": [f.to_dict() for f in self.fits],
            "best_bpw": [b.to_dict() for b in self.best_bpw],
            "fit_details": [f.details() for f in self.fits],
        }

    def fit_for(self, gpu: str, precision: str) -> Fit:
        """The row for a GPU (id or name, matched like ``--gpu``) and a precision name."""
        target = find_gpu(gpu).id if gpu != "custom" else "custom"
        for row in self.fits:
            if row.gpu.id == target and row.precision.lower() == precision.lower():
                return row
        raise KeyError(f"no fit row for {gpu} / {precision}")


# ---- the memory of one precision, by stage -------------------------------------------------------------
@dataclass(frozen=True)
class _Tensors:
    """The report's tensors grouped by what decides their bytes in any precision, with a count per group.

    ``Precision.tensor_bytes`` depends only on a tensor's role, logical parameters, stored bytes and whether it
    is a tied copy, so one call per group and placement gives exactly ``memory.weights_bytes`` and
    ``memory.layer_bytes`` (a test checks it) while a 671B MoE's ~90,000 tensors collapse to a few hundred
    groups. Placement: a decoder layer of the main model, its output head and final norm (last pipeline
    stage), or the rest (embeddings, buffers, other components: first stage).
    """

    layer_count: int
    samples: tuple[Any, ...]  # one tensor per group of layer tensors
    layered: tuple[tuple[int, int, int], ...]  # (layer, index into samples, count)
    head: tuple[tuple[Any, int], ...]
    first: tuple[tuple[Any, int], ...]

    @classmethod
    def of(cls, report: Any) -> _Tensors:
        main = report.main
        groups: dict[tuple[Any, ...], int] = {}
        samples: list[Any] = []
        layered: dict[tuple[int, int], int] = {}
        head: dict[tuple[Any, ...], list[Any]] = {}
        first: dict[tuple[Any, ...], list[Any]] = {}
        for component in report.components:
            for t in component.tensors:
                key = (t.role, t.parameters, t.stored_bytes, t.tied_to is not None)
                if component is main and t.layer is not None:
                    if key not in groups:
                        groups[key] = len(samples)
                        samples.append(t)
                    slot = (t.layer, groups[key])
                    layered[slot] = layered.get(slot, 0) + 1
                elif component is main and t.role not in ("embedding", "buffer"):
                    head.setdefault(key, [t, 0])[1] += 1
                else:
                    first.setdefault(key, [t, 0])[1] += 1
        configured = (main.config.num_hidden_layers if main.config is not None else None) or 0
        count = max([configured] + [key[0] + 1 for key in layered])
        return cls(
            count,
            tuple(samples),
            tuple((layer, group, n) for (layer, group), n in layered.items()),
            tuple((t, n) for t, n in head.values()),
            tuple((t, n) for t, n in first.values()),
        )


@dataclass
class _Model:
    """What fit needs of one precision: weights by decoder layer, what sits outside the layers, KV specs."""

    report: Any
    workload: Workload
    precision: Precision
    kv_dtype: str
    tensors: _Tensors

    @cached_property
    def config(self) -> Any:
        return self.report.main.config

    @cached_property
    def layers(self) -> list[int]:
        """Bytes per decoder layer (= ``memory.layer_bytes``)."""
        sizes = [self.precision.tensor_bytes(sample) for sample in self.tensors.samples]
        out = [0] * self.tensors.layer_count
        for layer, group, count in self.tensors.layered:
            out[layer] += sizes[group] * count
        return out

    @cached_property
    def head_bytes(self) -> int:
        """Bytes outside the layers that sit on the last stage: the main model's output head and final norm."""
        return sum(self.precision.tensor_bytes(t) * n for t, n in self.tensors.head)

    @cached_property
    def first_bytes(self) -> int:
        """Bytes outside the layers on the first stage: embeddings, buffers, other components."""
        return sum(self.precision.tensor_bytes(t) * n for t, n in self.tensors.first)

    @cached_property
    def weights(self) -> int:
        """All weight bytes (= ``memory.weights_bytes``)."""
        return sum(self.layers) + self.head_bytes + self.first_bytes

    @cached_property
    def specs(self) -> list[kv.LayerSpec]:
        return _specs(self.config)

    @cached_property
    def _overheads(self) -> dict[tuple[int, int, int], int]:
        return {}

    @cached_property
    def _tp_cache(self) -> dict[tuple[int, bool], list[int]]:
        return {}

    def tp_sizes(self, gpu: GPU) -> list[int]:
        """Valid tensor-parallel sizes on one node of ``gpu`` (1 on Apple silicon)."""
        key = (gpu.per_node, gpu.unified_memory)
        if key not in self._tp_cache:
            mla = any(isinstance(spec, kv.MLAAttention) for spec in self.specs)
            sizes = [1] if gpu.unified_memory else range(1, gpu.per_node + 1)
            self._tp_cache[key] = [t for t in sizes if _valid_tp(self.config, t, mla)]
        return self._tp_cache[key]

    @cached_property
    def active_weights(self) -> int:
        """Weight bytes read per generated token: all of them, scaled to the active parameters for MoE."""
        params = self.report.main.parameters
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

    @cached_property
    def _kv_prefix(self) -> dict[tuple[int, int], list[int]]:
        return {}

    def kv_rank(self, layers: range | None, context: int, tp: int) -> int:
        """KV cache on one TP rank for the layers of a stage (all layers when ``layers`` is None).

        Per (context, tp) the per-layer figures of :func:`hubfit.kv.kv_cache_bytes_per_gpu` are summed once into
        prefix sums, so a stage costs two lookups.
        """
        if not context or not self.specs:
            return 0
        key = (context, tp)
        prefix = self._kv_prefix.get(key)
        if prefix is None:
            count = max(self.tensors.layer_count, max(spec.layer for spec in self.specs) + 1)
            per_layer = [0] * count
            for spec in self.specs:
                per_layer[spec.layer] += kv.kv_cache_bytes_per_gpu(
                    [spec], context, self.workload.batch, self.kv_dtype, tp
                )
            prefix = [0]
            for size in per_layer:
                prefix.append(prefix[-1] + size)
            self._kv_prefix[key] = prefix
        if layers is None:
            return prefix[-1]
        return prefix[min(layers.stop, len(prefix) - 1)] - prefix[min(layers.start, len(prefix) - 1)]

    def overhead(self, stage_weights: int, context: int, tp: int) -> int:
        """One GPU's overhead (memory.overhead_parts). The seed formula scales with the stage's weights; the
        documented model depends only on the context and TP (fixed part, workspace, slack), so it is cached."""
        seed = self.workload.overhead is not None
        key = (stage_weights if seed else -1, 0 if seed else context, tp)
        if key not in self._overheads:
            workload = self.workload if seed else replace(self.workload, context=context)
            self._overheads[key] = memory.overhead_parts(self.report, stage_weights, workload, tp).total
        return self._overheads[key]

    def per_gpu(self, layout: Layout, context: int) -> tuple[int, int, int, int]:
        """(total, weights, kv, overhead) on the busiest device of ``layout`` at ``context`` tokens."""
        best = (0, 0, 0, 0)
        stages = self.stages(layout.pp) if self.layers else [range(0)]
        for i, layers in enumerate(stages):
            stage = sum(self.layers[j] for j in layers)
            if i == 0:
                stage += self.first_bytes
            if i == len(stages) - 1:
                stage += self.head_bytes
            if not self.layers:
                stage = self.weights
            weights = math.ceil(stage / layout.tp)
            kv_bytes = self.kv_rank(layers if layout.pp > 1 else None, context, layout.tp)
            over = self.overhead(stage, context, layout.tp)
            total = weights + kv_bytes + over
            if total > best[0]:
                best = (total, weights, kv_bytes, over)
        return best


# ---- evaluation --------------------------------------------------------------------------------------
def _candidates(gpu: GPU, model: _Model) -> list[Layout]:
    """Layouts in increasing device count: each valid TP size in one node, then full nodes as stages."""
    sizes = model.tp_sizes(gpu)
    layouts = [Layout(t) for t in sizes]
    if not gpu.unified_memory and len(model.layers) > 1:
        layouts += [Layout(sizes[-1], pp) for pp in range(2, len(model.layers) + 1)]
    return layouts


def _fixed_layout(gpu: GPU, model: _Model, count: int) -> Layout:
    """The layout for exactly ``count`` devices: the largest valid TP size dividing it, stages for the rest."""
    if gpu.unified_memory:
        return Layout(1)
    layers = max(len(model.layers), 1)
    for tp in sorted(model.tp_sizes(gpu), reverse=True):
        if count % tp == 0 and count // tp <= layers:
            return Layout(tp, count // tp)
    raise UsageError(f"--gpus {count}: more pipeline stages than the model's {layers} layers")


def _fewest(layouts: list[Layout], fits: Callable[[Layout], bool]) -> Layout | None:
    """The first fitting layout; stages are searched by bisection (more stages never need more per GPU)."""
    single = [lay for lay in layouts if lay.pp == 1]
    for lay in single:
        if fits(lay):
            return lay
    staged = [lay for lay in layouts if lay.pp > 1]
    if not staged or not fits(staged[-1]):
        return None
    lo, hi = 0, len(staged) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(staged[mid]):
            hi = mid
        else:
            lo = mid + 1
    return staged[lo]


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest ``x`` in ``[lo, hi]`` with ``ok(x)`` for a monotone (true then false) ``ok``."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _max_context(model: _Model, layout: Layout, usable: int) -> int:
    if not model.specs:
        return 0
    cap = (model.config.max_position_embeddings if model.config is not None else None) or 2**20
    found = _largest(0, cap, lambda c: model.per_gpu(layout, c)[0] <= usable)
    return found or 0


def _decode_tokens_per_s(gpu: GPU, model: _Model, layout: Layout, context: int) -> float | None:
    """Upper bound: each step reads every active weight once and the whole KV cache, at peak bandwidth.

    Stages run one after another for a token, so the time per step is (active weights / TP + KV of one rank)
    / bandwidth; a batch of ``B`` sequences makes ``B`` tokens per step.
    """
    if not gpu.bandwidth_bytes_per_s or not model.specs:
        return None  # unknown bandwidth, or no autoregressive decoding (encoder-only: no KV cache spec)
    read = math.ceil(model.active_weights / layout.tp) + model.kv_rank(None, context, layout.tp)
    return round(model.workload.batch * gpu.bandwidth_bytes_per_s / read, 2)


def _offload(model: _Model, count: int, usable: int, context: int) -> Offload | None:
    """llama.cpp -ngl: the most trailing layers whose weights, KV cache and per-device overhead fit."""
    n = len(model.layers)
    if not n:
        return None

    def gpu_bytes(k: int) -> tuple[int, int]:
        layers = range(n - k, n)
        weights = sum(model.layers[j] for j in layers) + (model.head_bytes if k == n else 0)
        cache = model.kv_rank(layers, context, 1)
        per_device = math.ceil((weights + cache) / count) + model.overhead(
            math.ceil(weights / count), context, 1
        )
        return per_device, weights + cache

    k = _largest(0, n, lambda k: gpu_bytes(k)[0] <= usable) or 0
    on_gpu = gpu_bytes(k)[1]
    total = model.weights + model.kv_rank(None, context, 1)
    return Offload(k, n, on_gpu, total - on_gpu)


def _unified(gpu: GPU, needed: int, share: float) -> UnifiedMemory:
    working = gpu.usable_bytes(share)
    if needed <= working:
        verdict, limit = "fits", None
    elif needed <= gpu.memory_bytes:
        verdict, limit = "raise_wired_limit", math.ceil(needed / 2**20)
    else:
        verdict, limit = "exceeds_ram", None
    return UnifiedMemory(needed, share, working, gpu.memory_bytes, verdict, limit)


def _fit(gpu: GPU, model: _Model, context: int, hardware: HardwareQuery) -> Fit:
    usable = gpu.usable_bytes(hardware.share)
    if hardware.count is not None:
        layout: Layout | None = _fixed_layout(gpu, model, hardware.count)
    else:
        layout = _fewest(_candidates(gpu, model), lambda lay: model.per_gpu(lay, context)[0] <= usable)
    shown = layout or Layout(1)
    total, weights, kv_bytes, over = model.per_gpu(shown, context)
    fits = layout is not None and total <= usable
    replicated = 0
    if model.specs and context and shown.tp > 1:
        rank = model.kv_rank(None, context, shown.tp)
        replicated = max(0, rank * shown.tp - model.kv_rank(None, context, 1))
    offload = None
    if not fits and not gpu.unified_memory:
        offload = _offload(model, hardware.count or 1, usable, context)
    unified = _unified(gpu, total, hardware.share) if gpu.unified_memory else None
    return Fit(
        gpu=gpu,
        precision=model.precision.name,
        layout=layout,
        fits=fits,
        usable_bytes=usable,
        per_gpu_bytes=total,
        weights_per_gpu_bytes=weights,
        kv_per_gpu_bytes=kv_bytes,
        overhead_per_gpu_bytes=over,
        max_context=_max_context(model, shown, usable),
        decode_tokens_per_s=_decode_tokens_per_s(gpu, model, shown, context) if fits else None,
        kv_replicated_bytes=replicated,
        offload=offload,
        unified=unified,
    )


def _best_bpw(
    gpu: GPU, model_for: Callable[[Precision], _Model], context: int, hardware: HardwareQuery
) -> BestBpw:
    usable = gpu.usable_bytes(hardware.share)
    count = 1 if gpu.unified_memory else (hardware.count or 1)

    def fits(prec: Precision) -> bool:
        model = model_for(prec)
        return model.per_gpu(_fixed_layout(gpu, model, count), context)[0] <= usable

    steps = int((BPW_MAX - BPW_MIN) / BPW_STEP)
    best = _largest(0, steps, lambda step: fits(memory.precision(float(BPW_MIN + step * BPW_STEP))))
    bpw = float(BPW_MIN + best * BPW_STEP) if best is not None else None
    gguf = next((prec for prec in _gguf_types() if fits(prec)), None)
    return BestBpw(gpu, count, context, bpw, gguf.name if gguf else None, float(gguf.bits) if gguf else None)


def _gguf_types() -> list[Precision]:
    """GGUF block types from data/precisions.yaml, most bits per weight first."""
    types = (memory.precision(name) for name in memory.precision_names())
    return sorted((p for p in types if p.family == "gguf"), key=lambda p: (-p.bits, p.name))


def _precisions(workload: Workload) -> list[Precision]:
    """The memory section's rows: the workload's precisions (or the default set), then its ``--bpw`` values."""
    names = list(workload.precisions) or list(memory.default_precisions())
    rows = [memory.precision(name) for name in names] + [memory.precision(float(b)) for b in workload.bpw]
    return list({prec.name: prec for prec in rows}.values())


def evaluate(
    report: Any, workload: Workload | None = None, hardware: HardwareQuery | None = None
) -> FitReport:
    """The fit section for ``report``: fits per GPU and precision, and the best bits per weight per GPU.

    Args:
        report: an analysed :class:`~hubfit.report.Report`.
        workload: context, batch, KV dtype, precisions and overhead (default: 4096 tokens, batch 1); the
            precisions are the memory section's rows.
        hardware: the devices (default: the curated set, fewest devices that fit).

    Raises:
        hubfit.errors.UnknownGPUError: a GPU name matches nothing (or several devices).
        hubfit.errors.UsageError: an impossible device count.
    """
    workload = workload or Workload()
    hardware = hardware or HardwareQuery()
    config = report.main.config
    devices = hardware.devices()
    context = memory.resolve_context(config, workload)
    kv_dtype = kv.canonical_kv_dtype(workload.kv_dtype) if workload.kv_dtype else kv.default_kv_dtype(config)
    precisions = _precisions(workload)
    tensors = _Tensors.of(report)
    models = [_Model(report, workload, prec, kv_dtype, tensors) for prec in precisions]
    fits = [_fit(gpu, model, context, hardware) for gpu in devices for model in models]
    bpw_context = context if workload.overhead is None else memory.DEFAULT_CONTEXT
    if config is not None and config.max_position_embeddings:
        bpw_context = min(bpw_context, config.max_position_embeddings)
    bpw_workload = replace(workload, overhead=None, context=bpw_context)
    cache: dict[str, _Model] = {}

    def model_for(prec: Precision) -> _Model:
        if prec.name not in cache:
            cache[prec.name] = _Model(report, bpw_workload, prec, kv_dtype, tensors)
        return cache[prec.name]

    best = [_best_bpw(gpu, model_for, bpw_context, hardware) for gpu in devices]
    return FitReport(
        fits, best, context, workload.batch, kv_dtype, hardware.count, hardware.share, workload.overhead
    )


# ---- rendering (the report's figures, never recomputed) ---------------------------------------------------
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


def _count_cell(fit: Fit) -> str:
    if fit.fits:
        return f"{fit.count}x"
    if fit.offload is not None:
        return f"ngl {fit.offload.layers_on_gpu}/{fit.offload.layers_total}"
    if fit.unified is not None and fit.unified.verdict == "raise_wired_limit":
        return "wired+"
    return "-"


def _colour_of(fit: Fit) -> str:
    if not fit.fits:
        return "red"
    return "green" if fit.count == 1 else "yellow"


def _sized_for(fit: FitReport) -> str:
    if fit.seed_overhead is not None:
        return f"seed formula: weights x {1 + fit.seed_overhead:g}, no KV cache"
    if not fit.context:
        return "weights and overhead, no KV cache"
    return f"{fit.context:,} tokens x batch {fit.batch}, KV {fit.kv_dtype}"


def render_text(fit: FitReport, *, color: bool = False) -> str:
    """The terminal view: one line per GPU (grouped by class) with the device count per precision.

    ``Nx`` = the fewest devices (or the fixed ``--gpus``) that fit; ``ngl k/L`` = does not fit, llama.cpp could
    offload k of L layers; ``wired+`` = Apple silicon fits after raising ``iogpu.wired_limit_mb``; ``-`` = no
    layout fits. Colour only when ``color`` is true (the CLI passes a TTY check and ``NO_COLOR``).
    """
    if not fit.fits:
        return ""
    precisions = list(dict.fromkeys(row.precision for row in fit.fits))
    gpus = list(dict.fromkeys(row.gpu for row in fit.fits))
    rows = {(row.gpu, row.precision): row for row in fit.fits}
    names = [f"{gpu.name} ({gpu.usable_bytes(fit.apple_gpu_share) / 2**30:.1f} GiB)" for gpu in gpus]
    width = max(len(n) for n in names) + 2
    cells = {key: _count_cell(row) for key, row in rows.items()}
    col = max([len(p) for p in precisions] + [len(c) for c in cells.values()]) + 2
    where = _sized_for(fit)
    plural = "s" if fit.fixed_count != 1 else ""
    mode = f"{fit.fixed_count} device{plural} per row" if fit.fixed_count else "fewest devices that fit"
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
                cell = cells[(gpu, prec)].rjust(col)
                if color:
                    cell = f"{_COLOURS[_colour_of(rows[(gpu, prec)])]}{cell}{_COLOURS['reset']}"
                text += cell
            lines.append(text.rstrip())
    for best in fit.best_bpw:
        exl2 = f"EXL2 {best.bpw:.2f} bpw" if best.bpw is not None else "EXL2 -"
        gguf = f"GGUF {best.gguf_type} ({best.gguf_bpw:g} bpw)" if best.gguf_type else "GGUF -"
        lines.append(f"  best on {best.count}x {best.gpu.name} at {best.context:,} tokens: {exl2}, {gguf}")
    lines.append(
        "  Nx devices | ngl k/L: llama.cpp offloads k of L layers | wired+: raise iogpu.wired_limit_mb | -: no fit"
    )
    return "\n".join(lines) + "\n"


def render_markdown(fit: FitReport) -> str:
    """The fits table in Markdown: GPU, memory (GiB), then devices per precision; then best bpw per GPU."""
    if not fit.fits:
        return ""
    precisions = list(dict.fromkeys(row.precision for row in fit.fits))
    gpus = list(dict.fromkeys(row.gpu for row in fit.fits))
    rows = {(row.gpu, row.precision): row for row in fit.fits}
    where = _sized_for(fit)
    out = [
        f"**GPU fit** ({where}): devices needed per precision; `ngl k/L` = llama.cpp offloads k of L layers.",
        "",
    ]
    out.append("| GPU | memory | " + " | ".join(f"`{p}`" for p in precisions) + " |")
    out.append("|---|---:|" + "---:|" * len(precisions))
    for gpu in gpus:
        cells = [_count_cell(rows[(gpu, p)]).replace("-", "—") for p in precisions]
        memory_gib = gpu.usable_bytes(fit.apple_gpu_share) / 2**30
        out.append(f"| {gpu.name} | {memory_gib:.1f} GiB | " + " | ".join(cells) + " |")
    bests = fit.best_bpw
    if bests:
        out += ["", "| GPU set | context | best EXL2 bpw | best GGUF type |", "|---|---:|---:|---|"]
        for b in bests:
            exl2 = f"{b.bpw:.2f}" if b.bpw is not None else "—"
            gguf = f"{b.gguf_type} ({b.gguf_bpw:g} bpw)" if b.gguf_type else "—"
            out.append(f"| {b.count}× {b.gpu.name} | {b.context:,} | {exl2} | {gguf} |")
    return "\n".join(out) + "\n"
