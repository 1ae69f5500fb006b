"""Fine-tuning as a sizing policy: what one training step holds on each GPU, term by term.

A step's memory is named as PEFT, torch and the sharding libraries allocate it (``data/training.yaml``, each
constant with its source; ``shared/research/training-memory.md`` explains them):

- **weights**: the frozen or trained base in the run's dtype (:class:`~hubfit.sizing.engine.Sizer` over the
  model's :class:`~hubfit.sizing.engine.TensorGroups`), or NF4 with its absmax and double-quantization
  constants for QLoRA (embeddings, norms and the output head stay unquantized, and PEFT upcasts them to fp32
  under mixed precision);
- **trainable weights**: LoRA's A (r x in) and B (out x r) per module PEFT's name matching selects (a module's
  name equal to a target or ending in ``.target``; ``all-linear`` = every linear but the output head), DoRA's
  magnitude vector (one per output feature);
- **gradients**, **optimizer states** (by optimizer and state dtype; paged states live in managed memory that
  torch does not count), **master weights** (fp32 under ``-mixed`` for a full fine-tune);
- **activations** per decoder layer and token (norm fp32 copies, attention's q/k/v/o, SwiGLU's intermediates,
  each trained linear's input, each adapter's input copy; eager attention's heads x seq^2 scores) for every
  layer, or the layer inputs plus one layer's recompute under gradient checkpointing;
- **logits** and the loss (batch x seq x vocab in the compute dtype, plus the fp32 copies the loss makes, all
  of them or one chunk's);
- sharding (``ddp``, ``zero2`` ~ FSDP SHARD_GRAD_OP, ``zero3`` / ``fsdp`` ~ FULL_SHARD with the live units and
  FSDP2's unsharded root) and CPU offload of states, gradients and (sharded) parameters;
- the **CUDA context** (only nvidia-smi sees it).

The peak is the largest of three moments (research note 7.1): the loss (weights, states, saved activations,
logits), the end of backward (weights, states, all gradients, one layer's recompute) and the optimizer step
(weights, states, gradients, the foreach temporary). ``peak_reserved_bytes`` adds the caching allocator's
share, ``device_bytes`` the CUDA context and paged optimizer states.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.model.config import ModelConfig
from hubfit.sizing.engine import Sizer, TensorGroups
from hubfit.sizing.rules import STORED, Precision, Workload, precision

__all__ = [
    "GRAD_CHECKPOINTING",
    "LOSSES",
    "METHODS",
    "OPTIMIZERS",
    "PRECISIONS",
    "SHARDINGS",
    "TrainBytes",
    "TrainSettings",
    "Training",
    "device_peak",
    "train",
]

METHODS = ("full", "lora", "dora", "qlora")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw", "paged-adamw-8bit", "sgd", "adafactor")
PRECISIONS = ("bf16-true", "bf16-mixed", "fp16-mixed", "fp32")
GRAD_CHECKPOINTING = ("on", "off", "offload")
SHARDINGS = ("ddp", "fsdp", "zero2", "zero3")
LOSSES = ("standard", "chunked")


@cache
def _doc() -> dict[str, Any]:
    return _data.load("training")


def _v(section: str, name: str) -> Any:
    return _doc()[section][name]["value"]


@dataclass(frozen=True)
class TrainSettings:
    """One fine-tuning run's settings (the CLI's ``--finetune`` flags).

    Attributes:
        method: ``full`` | ``lora`` | ``dora`` | ``qlora``.
        lora_rank: the adapters' rank r.
        lora_targets: module names as PEFT matches them, or ``("all-linear",)``.
        double_quant: QLoRA's NF4 with double-quantized absmax constants.
        optimizer: one of :data:`OPTIMIZERS`.
        precision: Lightning's names: ``-true`` keeps weights, gradients and states in that dtype; ``-mixed``
            keeps fp32 trainable weights (the master copy) under autocast.
        batch_size, seq_len: micro-batch and tokens per sequence.
        grad_checkpointing: ``on`` | ``off`` | ``offload`` (checkpoints on the CPU).
        gpus: data-parallel GPUs; ``sharding`` how the states are split over them.
        cpu_offload: optimizer states, gradients and master weights (and, sharded, the parameters) on the CPU.
        attention: ``sdpa`` (flash / memory-efficient kernels) | ``eager`` (the heads x seq^2 scores saved).
        loss: ``standard`` (the whole fp32 logits) | ``chunked`` (one chunk's fp32 at a time).
        optimizer_in_backward: each parameter's update runs as soon as its gradient is ready and frees it
            (torchtune's ``optimizer_in_bwd``): one parameter's gradient is alive at a time.
    """

    method: str = "lora"
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ("all-linear",)
    double_quant: bool = True
    optimizer: str = "adamw"
    precision: str = "bf16-mixed"
    batch_size: int = 1
    seq_len: int = 2048
    grad_checkpointing: str = "on"
    gpus: int = 1
    sharding: str | None = None
    cpu_offload: bool = False
    attention: str = "sdpa"
    loss: str = "standard"
    optimizer_in_backward: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (
            ("method", METHODS),
            ("optimizer", OPTIMIZERS),
            ("precision", PRECISIONS),
            ("grad_checkpointing", GRAD_CHECKPOINTING),
            ("attention", ("sdpa", "eager")),
            ("loss", LOSSES),
        ):
            if getattr(self, name) not in allowed:
                flag = name.replace("_", "-")
                raise UsageError(f"--{flag} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.sharding is not None and self.sharding not in SHARDINGS:
            raise UsageError(f"--sharding must be one of {', '.join(SHARDINGS)}, got {self.sharding!r}")
        for name in ("lora_rank", "batch_size", "seq_len", "gpus"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lora_targets:
            raise UsageError("--lora-targets names no module")

    @property
    def adapters(self) -> bool:
        return self.method != "full"

    @property
    def sharded(self) -> str | None:
        """The sharding in effect (``None`` on one GPU or with plain DDP)."""
        return self.sharding if self.gpus > 1 and self.sharding != "ddp" else None


@dataclass(frozen=True)
class TrainBytes:
    """Per-GPU bytes of each term (each at its own size; the peak is the largest moment, not their sum)."""

    weights: int
    trainable_weights: int
    gradients: int
    optimizer_states: int
    master_weights: int
    activations: int
    logits: int
    cuda_context: int


@dataclass(frozen=True)
class Training:
    """The report's ``training`` section: one fine-tuning run on one GPU kind.

    Attributes:
        method, lora_rank, optimizer, precision, batch_size, seq_len, grad_checkpointing, gpus, sharding: the
            run as sized.
        trainable_params: parameters that train (adapters and magnitudes, or the whole model).
        per_gpu_bytes: the terms on the busiest GPU.
        peak_allocated_bytes: torch ``max_memory_allocated``; ``peak_reserved_bytes``: ``max_memory_reserved``;
            ``device_bytes``: what nvidia-smi shows (reserved + CUDA context + paged optimizer states).
        fits: ``device_bytes`` within the GPU's memory; ``max_batch_size`` / ``max_seq_len``: the largest that
            fit (0 when none does).
        suggestions: the cheapest changes that make a run that does not fit fit, each with its new peak.
    """

    method: str
    lora_rank: int | None
    trainable_params: int
    optimizer: str
    precision: str
    batch_size: int
    seq_len: int
    grad_checkpointing: str
    gpus: int
    sharding: str | None
    per_gpu_bytes: TrainBytes
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    device_bytes: int
    fits: bool
    max_batch_size: int
    max_seq_len: int
    suggestions: list[str] = field(default_factory=list)


# ---- the model's modules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Linear:
    """One linear module of a decoder layer (or of the head): its PEFT name, widths and input site."""

    name: str
    leaf: str
    layer: int | None
    fan_in: int
    fan_out: int


_WIDTHS: dict[str, tuple[str, str]] = {  # leaf -> (out, in) in config terms, for packed (quantized) weights
    "q_proj": ("q", "h"),
    "k_proj": ("kv", "h"),
    "v_proj": ("kv", "h"),
    "o_proj": ("h", "q"),
    "gate_proj": ("i", "h"),
    "up_proj": ("i", "h"),
    "down_proj": ("h", "i"),
}


@dataclass(frozen=True)
class _Shape:
    """The widths activations are sized from."""

    layers: int
    hidden: int
    heads: int
    q: int
    kv: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config: ModelConfig | None) -> _Shape:
        if config is None or not config.hidden_size or not config.num_hidden_layers:
            raise UsageError("fine-tuning memory needs a decoder config (hidden_size, num_hidden_layers)")
        h = config.hidden_size
        heads = config.num_attention_heads or 1
        head_dim = config.head_dim or h // heads
        kv = (config.num_key_value_heads or heads) * head_dim
        inter = config.intermediate_size or 4 * h
        return cls(config.num_hidden_layers, h, heads, heads * head_dim, kv, inter, config.vocab_size or 0)

    def width(self, name: str) -> int:
        return {"h": self.hidden, "q": self.q, "kv": self.kv, "i": self.intermediate}[name]


def _linears(model: Model, shape: _Shape) -> list[_Linear]:
    """Every linear module of the main component (2-D weights, packed ones sized from the config)."""
    out = []
    for t in model.main.tensors:
        if t.role not in ("linear", "expert", "lm_head") or not t.parameters or t.tied_to:
            continue
        name = t.name.rsplit(".", 1)[0] if t.name.endswith(("weight", "_packed", "qweight")) else t.name
        leaf = name.rsplit(".", 1)[-1]
        if len(t.shape) == 2 and t.shape[0] * t.shape[1] == t.parameters:
            fan_out, fan_in = t.shape
        elif leaf in _WIDTHS:
            o, i = _WIDTHS[leaf]
            fan_out, fan_in = shape.width(o), shape.width(i)
        else:  # a 3-D fused expert tensor is not an nn.Linear (PEFT does not match it)
            continue
        out.append(_Linear(name if t.role != "lm_head" else "lm_head", leaf, t.layer, fan_in, fan_out))
    return out


def _targeted(linear: _Linear, targets: tuple[str, ...]) -> bool:
    """PEFT's ``check_target_module_exists``: the name equals a target or ends in ``.target``;
    ``all-linear`` is every linear but the output embedding."""
    if targets == ("all-linear",):
        return linear.name != "lm_head"
    return any(linear.name == t or linear.name.endswith("." + t) or linear.leaf == t for t in targets)


# ---- dtypes ----------------------------------------------------------------------------------------------


def _compute_bytes(settings: TrainSettings) -> int:
    return 4 if settings.precision == "fp32" else 2


def _weight_precision(model: Model, settings: TrainSettings) -> Precision:
    """How the base is held: NF4 for QLoRA on a 16-bit checkpoint, as stored when already quantized, else
    the run's dtype (fp32 for a full fine-tune under -mixed: the master copy is the weight)."""
    if model.quantization is not None:
        return precision(STORED)
    if settings.method == "qlora":
        nf4 = _doc()["nf4"]
        block = int(nf4["block"]["value"])
        if settings.double_quant:
            absmax = Fraction(int(nf4["double_quant_absmax_bits"]["value"]), block) + Fraction(
                32, block * int(nf4["double_quant_block"]["value"])
            )
        else:
            absmax = Fraction(int(nf4["absmax_bits"]["value"]), block)
        kept = int(nf4["kept_bits_mixed"]["value"]) if settings.precision.endswith("-mixed") else 16
        if settings.precision == "fp32":
            kept = 32
        return Precision(
            "nf4-dq" if settings.double_quant else "nf4",
            "transformers",
            Fraction(4) + absmax,
            frozenset(nf4["quantized_roles"]["value"]),
            kept,
        )
    if settings.precision == "fp32" or (settings.method == "full" and settings.precision.endswith("-mixed")):
        return precision("fp32")
    return precision(_half(settings))


def _half(settings: TrainSettings) -> str:
    return "fp16" if settings.precision.startswith("fp16") else "bf16"


# ---- the step --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One configuration's terms and moments (bytes on the busiest GPU)."""

    terms: TrainBytes
    trainable_params: int
    allocated: int
    reserved: int
    device: int


def _optimizer_bytes(settings: TrainSettings, params: int, state_bytes: int) -> tuple[int, int]:
    """(states, step temporary) for ``params`` trainable parameters whose states are ``state_bytes`` wide."""
    row = _doc()["optimizers"][settings.optimizer]
    if "state_bytes" in row:
        states = math.ceil(params * float(row["state_bytes"]))
    else:
        states = params * int(row["states"]) * state_bytes
    return states, params * int(row["step_temporary"]) * state_bytes


def _layer_activations(
    shape: _Shape, linears: list[_Linear], settings: TrainSettings, layer: int, dora: bool
) -> tuple[int, int]:
    """(bytes per token, bytes per sequence^2) a decoder layer saves for backward."""
    e = _compute_bytes(settings)
    h, kv, inter = shape.hidden, shape.kv, shape.intermediate
    full = settings.method == "full"
    per_token = int(_v("activations", "norm_fp32_copies")) * 4 * h  # each norm's fp32 input copy
    if full:
        per_token += 2 * e * h  # the normalized tensor each trainable norm scale needs
    per_token += e * (2 * shape.q + 2 * kv)  # q, k, v, attention output
    per_token += int(_v("activations", "mlp_saved")) * e * inter  # gate, SiLU, up
    mine = [lin for lin in linears if lin.layer == layer]
    if full:
        # the inputs the trained weights need: the two norm outputs (shared by q/k/v and gate/up) and the
        # down projection's input; o_proj's input is the attention output already counted.
        per_token += e * (2 * h) + e * inter
    else:
        mixed = settings.precision.endswith("-mixed")
        sites: set[int] = set()
        for lin in mine:
            if not _targeted(lin, settings.lora_targets):
                continue
            if mixed:
                per_token += e * lin.fan_in  # the adapter's own cast copy of its input
            elif lin.leaf == "down_proj" or lin.fan_in == inter:
                sites.add(lin.fan_in)  # the product feeding down_proj, saved once
            per_token += e * settings.lora_rank  # lora_A's output, saved for lora_B
            if dora:
                per_token += 2 * e * lin.fan_out  # base_result and lora_result for the magnitude gradient
        per_token += e * sum(sites)
        if not mixed:  # -true: the adapters read the norm outputs in place (saved once per site)
            targeted = {lin.leaf for lin in mine if _targeted(lin, settings.lora_targets)}
            per_token += (
                e
                * h
                * (
                    bool(targeted & {"q_proj", "k_proj", "v_proj"})
                    + bool(targeted & {"gate_proj", "up_proj"})
                )
            )
    per_square = 0
    if settings.attention == "eager":
        per_square = int(_v("activations", "eager_score_bytes")) * shape.heads
    return per_token, per_square


def _step(model: Model, groups: TensorGroups, shape: _Shape, settings: TrainSettings) -> _Step:
    linears = _linears(model, shape)
    n = settings.gpus
    sharded = settings.sharded
    e = _compute_bytes(settings)
    wprec = _weight_precision(model, settings)
    sizer = Sizer(model, Workload(context=0), wprec, groups)
    base = sizer.weights
    mixed = settings.precision.endswith("-mixed")

    # trainable parameters and their dtype
    if settings.adapters:
        chosen = [lin for lin in linears if _targeted(lin, settings.lora_targets)]
        if not chosen:
            raise UsageError(f"--lora-targets {','.join(settings.lora_targets)} matches no linear module")
        trainable = sum(settings.lora_rank * (lin.fan_in + lin.fan_out) for lin in chosen)
        if settings.method == "dora":
            trainable += sum(lin.fan_out for lin in chosen)
        tdtype = int(_v("adapters", "mixed_dtype_bytes")) if mixed or settings.precision == "fp32" else 2
        trainable_weights = trainable * tdtype
        weights = base
        master = 0
        grads = trainable * tdtype
        state_dtype = tdtype
    else:
        trainable = model.main.parameters.total or sum(t.parameters for t in model.tensors)
        trainable_weights = 0
        if mixed:
            # fp32 weights are the master copy; autocast caches a 16-bit copy of each from forward to backward
            master = base
            weights = Sizer(model, Workload(context=0), precision(_half(settings)), groups).weights
            grads = trainable * 4
            state_dtype = 4
        else:
            weights, master = base, 0
            grads = trainable * (4 if settings.precision == "fp32" else 2)
            state_dtype = grads // max(trainable, 1)
    if settings.optimizer_in_backward:
        largest = max((t.parameters for t in model.main.tensors), default=0)
        grads = math.ceil(grads * largest / max(trainable, 1)) if not settings.adapters else grads
    states, step_temp = _optimizer_bytes(settings, trainable, state_dtype)
    if settings.optimizer_in_backward:
        step_temp = 0
    paged = bool(_doc()["optimizers"][settings.optimizer]["paged"])

    # sharding and offload
    live_weights = 0
    if settings.gpus > 1 and settings.sharding == "ddp" or (settings.gpus > 1 and settings.sharding is None):
        grads *= 1 + int(_v("sharding", "ddp_bucket_copy"))
    if sharded is not None:
        states = math.ceil(states / n)
        step_temp = math.ceil(step_temp / n)
        grads = math.ceil(grads / n)
        master = math.ceil(master / n)
        trainable_weights = (
            math.ceil(trainable_weights / n) if sharded in ("zero3", "fsdp") else trainable_weights
        )
        if sharded in ("zero3", "fsdp"):
            layer = max(sizer.layers) if sizer.layers else 0
            live_weights = int(_v("sharding", "fsdp_units_live")) * layer
            if sharded == "fsdp" and _v("sharding", "fsdp_root_unsharded"):
                live_weights += sizer.head_bytes + sizer.first_bytes
            weights = math.ceil(weights / n)
    if settings.cpu_offload:
        states, step_temp, master = 0, 0, 0
        if settings.adapters or sharded is not None:
            grads = 0 if sharded is not None else grads
        if sharded in ("zero3", "fsdp"):
            weights = 0
    weights += live_weights

    # activations and logits
    tokens = settings.batch_size * settings.seq_len
    dora = settings.method == "dora"
    per_layer = [_layer_activations(shape, linears, settings, layer, dora) for layer in range(shape.layers)]
    layer_bytes = [tokens * t + settings.batch_size * settings.seq_len**2 * s for t, s in per_layer]
    one_layer = max(layer_bytes) if layer_bytes else 0
    head_inputs = tokens * (4 + e) * shape.hidden  # final norm's fp32 copy and the head's input
    checkpoints = tokens * e * shape.hidden * shape.layers
    if settings.grad_checkpointing == "off":
        saved = sum(layer_bytes) + head_inputs
        recompute = 0
    elif settings.grad_checkpointing == "on":
        saved = checkpoints + head_inputs
        recompute = one_layer
    else:  # offload: the checkpoints wait on the CPU; one comes back at a time
        saved = 2 * tokens * e * shape.hidden + head_inputs
        recompute = one_layer
    transient = tokens * e * (2 * shape.hidden + 2 * shape.intermediate)
    copies = int(_v("loss", "fp32_copies_standard"))
    upcast = 0 if e == 4 else 1  # fp32 logits are themselves the float copy
    fp32 = tokens * shape.vocab * 4 * (copies - 1 + upcast)
    if settings.loss == "chunked":
        fp32 = math.ceil(fp32 / int(_v("loss", "chunks")))
    logits = tokens * shape.vocab * e + fp32

    # the autocast copy of a full -mixed run lives from forward to backward; every other weight persists
    autocast = weights if settings.method == "full" and mixed else 0
    persistent = weights - autocast + master + trainable_weights + states
    at_loss = persistent + autocast + saved + logits
    end_backward = persistent + autocast + grads + recompute + transient
    at_step = persistent + grads + step_temp
    allocated = max(at_loss, end_backward, at_step)
    if paged:
        allocated -= states  # managed memory: torch's allocator does not see it
    ratio = float(_v("allocator", "reserved_ratio_sharded" if settings.gpus > 1 else "reserved_ratio_single"))
    reserved = math.ceil(allocated * ratio)
    context = int(_v("allocator", "cuda_context_bytes"))
    device = reserved + context + (states if paged else 0)
    activations = max(saved, recompute + transient)
    terms = TrainBytes(weights, trainable_weights, grads, states, master, activations, logits, context)
    return _Step(terms, trainable, allocated, reserved, device)


# ---- the answer ------------------------------------------------------------------------------------------


def _gib(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB"


def _largest(fits: Any, start: int, limit: int) -> int:
    """The largest value in [1, limit] for which ``fits`` holds (monotone), 0 when 1 does not."""
    if not fits(1):
        return 0
    lo, hi = 1, max(1, start)
    while hi < limit and fits(hi):
        lo, hi = hi, min(limit, hi * 2)
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _suggestions(
    model: Model, groups: TensorGroups, shape: _Shape, settings: TrainSettings, memory: int, max_seq: int
) -> list[str]:
    """Single changes, cheapest first, that make the run fit, each with its new peak."""
    changes: list[tuple[str, dict[str, Any]]] = []
    if settings.grad_checkpointing == "off":
        changes.append(("--grad-checkpointing on", {"grad_checkpointing": "on"}))
    if settings.loss == "standard":
        changes.append(("--loss chunked", {"loss": "chunked"}))
    if settings.grad_checkpointing != "offload":
        changes.append(("--grad-checkpointing offload", {"grad_checkpointing": "offload"}))
    if settings.optimizer in ("adamw", "paged-adamw"):
        changes.append(("--optimizer adamw-8bit", {"optimizer": "adamw-8bit"}))
        changes.append(("--optimizer paged-adamw-8bit", {"optimizer": "paged-adamw-8bit"}))
    if settings.method in ("lora", "dora") and model.quantization is None:
        changes.append(("--finetune qlora", {"method": "qlora"}))
    if settings.method == "full":
        changes.append(("--finetune lora", {"method": "lora"}))
        changes.append(("--finetune qlora", {"method": "qlora"}))
    out = []
    for label, change in changes:
        step = _step(model, groups, shape, replace(settings, **change))
        if step.device <= memory:
            out.append(f"{label}: peak {_gib(step.allocated)} allocated, {_gib(step.device)} on the GPU")
    if 0 < max_seq < settings.seq_len:
        step = _step(model, groups, shape, replace(settings, seq_len=max_seq))
        out.append(
            f"--seq-len {max_seq}: peak {_gib(step.allocated)} allocated, {_gib(step.device)} on the GPU"
        )
    for gpus in (2, 4, 8):
        if gpus <= settings.gpus:
            continue
        more = replace(settings, gpus=gpus, sharding=settings.sharding if settings.sharded else "fsdp")
        step = _step(model, groups, shape, more)
        if step.device <= memory:
            out.append(
                f"--gpus {gpus} --sharding {more.sharding}: peak {_gib(step.allocated)} allocated, "
                f"{_gib(step.device)} per GPU"
            )
            break
    return out


_SEQ_LIMIT = 1 << 20
_BATCH_LIMIT = 4096


def device_peak(model: Model, settings: TrainSettings, groups: TensorGroups | None = None) -> int:
    """What nvidia-smi would show on the busiest GPU for ``settings`` (:attr:`Training.device_bytes`), alone:
    for a caller that only asks whether a run fits (a GPU table), without :func:`train`'s searches."""
    groups = groups or TensorGroups.of(model)
    return _step(model, groups, _Shape.of(model.main.config), settings).device


def train(
    model: Model,
    settings: TrainSettings,
    gpu: str,
    memory_bytes: int,
    groups: TensorGroups | None = None,
) -> Training:
    """Size ``settings`` on ``model`` for GPUs of ``memory_bytes`` (nvidia-smi's total) named ``gpu``."""
    groups = groups or TensorGroups.of(model)
    shape = _Shape.of(model.main.config)
    step = _step(model, groups, shape, settings)
    fits = step.device <= memory_bytes

    def batch_fits(b: int) -> bool:
        return _step(model, groups, shape, replace(settings, batch_size=b)).device <= memory_bytes

    def seq_fits(s: int) -> bool:
        return _step(model, groups, shape, replace(settings, seq_len=s)).device <= memory_bytes

    max_batch = _largest(batch_fits, settings.batch_size, _BATCH_LIMIT)
    max_seq = _largest(seq_fits, settings.seq_len, _SEQ_LIMIT)
    suggestions = [] if fits else _suggestions(model, groups, shape, settings, memory_bytes, max_seq)
    return Training(
        method=settings.method,
        lora_rank=settings.lora_rank if settings.adapters else None,
        trainable_params=step.trainable_params,
        optimizer=settings.optimizer,
        precision=settings.precision,
        batch_size=settings.batch_size,
        seq_len=settings.seq_len,
        grad_checkpointing=settings.grad_checkpointing,
        gpus=settings.gpus,
        sharding=settings.sharding if settings.gpus > 1 else None,
        per_gpu_bytes=step.terms,
        peak_allocated_bytes=step.allocated,
        peak_reserved_bytes=step.reserved,
        device_bytes=step.device,
        fits=fits,
        max_batch_size=max_batch,
        max_seq_len=max_seq,
        suggestions=suggestions,
    )


_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_targets(text: str) -> tuple[str, ...]:
    """``--lora-targets``: ``all-linear`` or comma-separated module names."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [n for n in names if not _NAME.match(n)]
    if not names or bad:
        raise UsageError(
            f"--lora-targets must be all-linear or module names separated by commas, got {text!r}"
        )
    return names
