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
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import msgspec

from hubfit.errors import UsageError
from hubfit.fit.gpus import GPU, apple_gpu_share, custom_gpu, default_gpus, find_gpu
from hubfit.model.component import Model
from hubfit.model.config import ModelConfig
from hubfit.sizing import kv, memory
from hubfit.sizing.engine import Layout, Sizer, TensorGroups
from hubfit.sizing.memory import Precision, Workload

__all__ = [
    "FitDetail",
    "FitRow",
    "FitSettings",
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


def valid_tp(config: ModelConfig | None, tp: int) -> bool:
    """Whether vLLM accepts tensor parallelism ``tp`` for this model.

    The attention heads must divide by ``tp``; the KV heads must divide by ``tp``, or ``tp`` by them (then each
    rank replicates a head); the MLP's intermediate size must divide by ``tp``. Multi-head latent attention has
    no KV-head rule (the latent is replicated). A model without attention heads only runs at ``tp = 1``.
    """
    mla = any(isinstance(spec, kv.MLAAttention) for spec in _specs(config))
    return _valid_tp(config, tp, mla)


def _valid_tp(config: ModelConfig | None, tp: int, mla: bool) -> bool:
    if tp == 1:
        return True
    if config is None:
        return False
    heads = config.num_attention_heads
    if not heads or heads % tp:
        return False
    if not mla:
        kv_heads = config.num_key_value_heads or heads
        if (kv_heads % tp) if tp <= kv_heads else (tp % kv_heads):
            return False
    inter = config.intermediate_size
    return not (inter and not config.is_moe and inter % tp)


def _specs(config: ModelConfig | None) -> list[kv.LayerSpec]:
    return kv.kv_specs(config) if config is not None else []


# ---- results (plain data: the report carries them as they are) -----------------------------------------
@dataclass(frozen=True)
class Offload:
    """llama.cpp ``-ngl`` view when the model does not fit: the last ``layers_on_gpu`` layers (and their KV
    cache) on the GPUs, everything else (embeddings, output head when not all layers fit, the other layers and
    their KV cache) in CPU RAM."""

    layers_on_gpu: int
    layers_total: int
    gpu_bytes: int
    cpu_bytes: int


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


@dataclass(frozen=True)
class Fit:
    """One precision on one kind of device: the ``fits`` entry of the JSON.

    Attributes:
        gpu: the device's name.
        gpu_memory_bytes: its memory.
        precision: precision name (as in the memory section).
        count: devices used (0: no layout fits).
        per_gpu_bytes: the busiest device's total = weights + KV cache + overhead (see :class:`FitDetail`).
        max_context: the longest context that fits the layout (0 when the weights alone do not fit).
        decode_tokens_per_s: upper bound on generated tokens per second (``None`` when it does not fit, the
            bandwidth is unknown, or the model does not decode: encoder-only).
    """

    gpu: str
    gpu_memory_bytes: int
    precision: str
    count: int
    per_gpu_bytes: int
    max_context: int
    decode_tokens_per_s: float | None


@dataclass(frozen=True)
class FitDetail:
    """The ``fit_details`` entry beside each :class:`Fit`: the layout, the busiest device's parts, the views.

    Attributes:
        gpu, gpu_id, gpu_class, precision: which row (``gpu_class``: ``consumer`` | ``workstation`` |
            ``datacenter`` | ``apple``).
        verdict: ``fits``, ``does_not_fit`` (at the fixed count) or ``no_layout_fits``.
        tp, pp: the layout evaluated (``None`` when no layout fits).
        usable_bytes: memory one device offers (Apple: the GPU's share).
        weights_per_gpu_bytes, kv_per_gpu_bytes, overhead_per_gpu_bytes: the busiest device's parts.
        kv_replicated_bytes: extra KV memory over all devices because TP exceeds the KV heads.
        offload: the llama.cpp view when the model does not fit (not on Apple silicon).
        unified_memory: the unified-memory view (Apple silicon only).
    """

    gpu: str
    gpu_id: str
    gpu_class: str
    precision: str
    verdict: str
    tp: int | None
    pp: int | None
    usable_bytes: int
    weights_per_gpu_bytes: int
    kv_per_gpu_bytes: int
    overhead_per_gpu_bytes: int
    kv_replicated_bytes: int = 0
    offload: Offload | None = None
    unified_memory: UnifiedMemory | None = None

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


@dataclass(frozen=True)
class BestBpw:
    """The highest EXL2 bits per weight and the best GGUF type that fit ``count`` devices at ``context``.

    ``bpw`` / ``gguf_type`` are ``None`` when not even the lowest setting fits.
    """

    gpu: str
    count: int
    context: int
    bpw: float | None
    gguf_type: str | None


@dataclass(frozen=True)
class FitSettings:
    """What the fits were sized for.

    Attributes:
        context: tokens per sequence (0: no KV cache, e.g. the seed formula).
        batch: sequences.
        kv_dtype: KV-cache element type.
        fixed_count: the ``--gpus`` count, or ``None`` when the fewest devices were searched.
        apple_gpu_share: the unified-memory share used for Apple silicon.
        seed_overhead: the ``--overhead`` fraction when the seed formula sized the fits (weights x (1 + F)).
    """

    context: int
    batch: int
    kv_dtype: str
    fixed_count: int | None
    apple_gpu_share: float
    seed_overhead: float | None = None


@dataclass(frozen=True)
class FitReport:
    """The fit section of a report.

    Attributes:
        fits: one :class:`Fit` per GPU and precision, GPUs in query order.
        best_bpw: one :class:`BestBpw` per GPU.
        fit_details: one :class:`FitDetail` per entry of ``fits``, in the same order.
        fit_settings: what the fits were sized for.
        gguf_types: bits per weight of each GGUF type named in ``best_bpw``.
    """

    fits: list[Fit]
    best_bpw: list[BestBpw]
    fit_details: list[FitDetail]
    fit_settings: FitSettings
    gguf_types: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The section's keys of the ``--json`` document."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def rows(self) -> list[tuple[Fit, FitDetail]]:
        """Each fit with its detail."""
        return list(zip(self.fits, self.fit_details, strict=True))

    def fit_for(self, gpu: str, precision: str) -> FitRow:
        """The row for a GPU (id or name, matched like ``--gpu``) and a precision name."""
        target = find_gpu(gpu).id if gpu != "custom" else "custom"
        for row, detail in self.rows():
            if detail.gpu_id == target and row.precision.lower() == precision.lower():
                return FitRow(row, detail)
        raise KeyError(f"no fit row for {gpu} / {precision}")


@dataclass(frozen=True)
class FitRow:
    """A :class:`Fit` with its :class:`FitDetail`, read as one row."""

    fit: Fit
    detail: FitDetail

    @property
    def layout(self) -> Layout | None:
        """The layout evaluated (``None`` when no layout fits)."""
        d = self.detail
        return Layout(d.tp, d.pp or 1) if d.tp is not None else None

    @property
    def fits(self) -> bool:
        return self.detail.fits

    @property
    def verdict(self) -> str:
        return self.detail.verdict

    @property
    def count(self) -> int:
        return self.fit.count

    @property
    def per_gpu_bytes(self) -> int:
        return self.fit.per_gpu_bytes

    @property
    def weights_per_gpu_bytes(self) -> int:
        return self.detail.weights_per_gpu_bytes

    @property
    def kv_per_gpu_bytes(self) -> int:
        return self.detail.kv_per_gpu_bytes

    @property
    def overhead_per_gpu_bytes(self) -> int:
        return self.detail.overhead_per_gpu_bytes

    @property
    def kv_replicated_bytes(self) -> int:
        return self.detail.kv_replicated_bytes

    @property
    def usable_bytes(self) -> int:
        return self.detail.usable_bytes

    @property
    def max_context(self) -> int:
        return self.fit.max_context

    @property
    def decode_tokens_per_s(self) -> float | None:
        return self.fit.decode_tokens_per_s

    @property
    def offload(self) -> Offload | None:
        return self.detail.offload

    @property
    def unified(self) -> UnifiedMemory | None:
        return self.detail.unified_memory


# ---- evaluation --------------------------------------------------------------------------------------
def _tp_sizes(gpu: GPU, model: Sizer) -> list[int]:
    """Valid tensor-parallel sizes on one node of ``gpu`` (1 on Apple silicon)."""
    sizes = [1] if gpu.unified_memory else range(1, gpu.per_node + 1)
    config, mla = model.model.main.config, model.groups.mla
    return [tp for tp in sizes if _valid_tp(config, tp, mla)]


def _candidates(gpu: GPU, model: Sizer) -> list[Layout]:
    """Layouts in increasing device count: each valid TP size in one node, then full nodes as stages."""
    sizes = _tp_sizes(gpu, model)
    layouts = [Layout(t) for t in sizes]
    if not gpu.unified_memory and len(model.layers) > 1:
        layouts += [Layout(sizes[-1], pp) for pp in range(2, len(model.layers) + 1)]
    return layouts


def _fixed_layout(gpu: GPU, model: Sizer, count: int) -> Layout:
    """The layout for exactly ``count`` devices: the largest valid TP size dividing it, stages for the rest."""
    if gpu.unified_memory:
        return Layout(1)
    layers = max(len(model.layers), 1)
    for tp in sorted(_tp_sizes(gpu, model), reverse=True):
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
    if ok(hi):  # common: the whole range fits (a small model at its full context)
        return hi
    hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _max_context(model: Sizer, layout: Layout, usable: int) -> int:
    if not model.specs:
        return 0
    config = model.model.main.config
    cap = (config.max_position_embeddings if config is not None else None) or 2**20
    found = _largest(0, cap, lambda c: model.need(layout, c).total <= usable)
    return found or 0


def _decode_tokens_per_s(gpu: GPU, model: Sizer, layout: Layout, context: int) -> float | None:
    """Upper bound: each step reads every active weight once and the whole KV cache, at peak bandwidth.

    Stages run one after another for a token, so the time per step is (active weights / TP + KV of one rank)
    / bandwidth; a batch of ``B`` sequences makes ``B`` tokens per step.
    """
    if not gpu.bandwidth_bytes_per_s or not model.specs:
        return None  # unknown bandwidth, or no autoregressive decoding (encoder-only: no KV cache spec)
    read = math.ceil(model.active_weights / layout.tp) + model.kv_rank(None, context, layout.tp)
    return round(model.workload.batch * gpu.bandwidth_bytes_per_s / read, 2)


def _offload(model: Sizer, count: int, usable: int, context: int) -> Offload | None:
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


def _fit(gpu: GPU, model: Sizer, context: int, hardware: HardwareQuery) -> tuple[Fit, FitDetail]:
    usable = gpu.usable_bytes(hardware.share)
    if hardware.count is not None:
        layout: Layout | None = _fixed_layout(gpu, model, hardware.count)
    else:
        layout = _fewest(_candidates(gpu, model), lambda lay: model.need(lay, context).total <= usable)
    shown = layout or Layout(1)
    need = model.need(shown, context)
    fits = layout is not None and need.total <= usable
    replicated = 0
    if model.specs and context and shown.tp > 1:
        rank = model.kv_rank(None, context, shown.tp)
        replicated = max(0, rank * shown.tp - model.kv_rank(None, context, 1))
    offload = None
    if not fits and not gpu.unified_memory:
        offload = _offload(model, hardware.count or 1, usable, context)
    unified = _unified(gpu, need.total, hardware.share) if gpu.unified_memory else None
    verdict = "fits" if fits else ("does_not_fit" if layout is not None else "no_layout_fits")
    row = Fit(
        gpu=gpu.name,
        gpu_memory_bytes=gpu.memory_bytes,
        precision=model.precision.name,
        count=layout.count if layout is not None else 0,
        per_gpu_bytes=need.total,
        max_context=_max_context(model, shown, usable),
        decode_tokens_per_s=_decode_tokens_per_s(gpu, model, shown, context) if fits else None,
    )
    detail = FitDetail(
        gpu=gpu.name,
        gpu_id=gpu.id,
        gpu_class=gpu.gpu_class,
        precision=model.precision.name,
        verdict=verdict,
        tp=layout.tp if layout else None,
        pp=layout.pp if layout else None,
        usable_bytes=usable,
        weights_per_gpu_bytes=need.weights,
        kv_per_gpu_bytes=need.kv_cache,
        overhead_per_gpu_bytes=need.overhead,
        kv_replicated_bytes=replicated,
        offload=offload,
        unified_memory=unified,
    )
    return row, detail


def _best_bpw(
    gpu: GPU, model_for: Callable[[Precision], Sizer], context: int, hardware: HardwareQuery
) -> BestBpw:
    usable = gpu.usable_bytes(hardware.share)
    count = 1 if gpu.unified_memory else (hardware.count or 1)

    def fits(prec: Precision) -> bool:
        model = model_for(prec)
        return model.need(_fixed_layout(gpu, model, count), context).total <= usable

    steps = int((BPW_MAX - BPW_MIN) / BPW_STEP)
    best = _largest(0, steps, lambda step: fits(memory.precision(float(BPW_MIN + step * BPW_STEP))))
    bpw = float(BPW_MIN + best * BPW_STEP) if best is not None else None
    gguf = next((prec for prec in _gguf_types() if fits(prec)), None)
    return BestBpw(gpu.name, count, context, bpw, gguf.name if gguf else None)


def _gguf_types() -> list[Precision]:
    """GGUF block types from data/precisions.yaml, most bits per weight first."""
    types = (memory.precision(name) for name in memory.precision_names())
    return sorted((p for p in types if p.family == "gguf"), key=lambda p: (-p.bits, p.name))


def evaluate(
    model: Model,
    workload: Workload | None = None,
    hardware: HardwareQuery | None = None,
    *,
    groups: TensorGroups | None = None,
) -> FitReport:
    """The fit section for ``model``: fits per GPU and precision, and the best bits per weight per GPU.

    Every per-device figure is the sizing engine's (:meth:`hubfit.sizing.engine.Sizer.need`); the fit only
    chooses layouts and searches.

    Args:
        model: an analysed :class:`~hubfit.model.component.Model`.
        workload: context, batch, KV dtype, precisions and overhead (default: 4096 tokens, batch 1); the
            precisions are the memory section's rows.
        hardware: the devices (default: the curated set, fewest devices that fit).
        groups: the model's tensor groups when the caller already has them (the memory section's).

    Raises:
        hubfit.errors.UnknownGPUError: a GPU name matches nothing (or several devices).
        hubfit.errors.UsageError: an impossible device count.
    """
    workload = workload or Workload()
    hardware = hardware or HardwareQuery()
    config = model.main.config
    devices = hardware.devices()
    context = memory.resolve_context(config, workload)
    groups = groups or TensorGroups.of(model)
    sizers = [Sizer(model, workload, prec, groups) for prec in memory.rows(workload)]
    pairs = [_fit(gpu, sizer, context, hardware) for gpu in devices for sizer in sizers]
    bpw_context = context if workload.overhead is None else memory.DEFAULT_CONTEXT
    if config is not None and config.max_position_embeddings:
        bpw_context = min(bpw_context, config.max_position_embeddings)
    bpw_workload = replace(workload, overhead=None, context=bpw_context)
    cache: dict[str, Sizer] = {}

    def model_for(prec: Precision) -> Sizer:
        if prec.name not in cache:
            cache[prec.name] = Sizer(model, bpw_workload, prec, groups)
        return cache[prec.name]

    best = [_best_bpw(gpu, model_for, bpw_context, hardware) for gpu in devices]
    settings = FitSettings(
        context,
        workload.batch,
        memory.kv_dtype_of(config, workload),
        hardware.count,
        hardware.share,
        workload.overhead,
    )
    gguf_bits = {prec.name: float(prec.bits) for prec in _gguf_types()}
    named = {b.gguf_type: gguf_bits[b.gguf_type] for b in best if b.gguf_type is not None}
    return FitReport([f for f, _ in pairs], best, [d for _, d in pairs], settings, named)
