"""The sizing rules: the workload, the target precisions and the runtime overhead of one device.

- **precisions** (``data/precisions.yaml``): the checkpoint as stored (``stored``), or every logical parameter
  re-expressed in a target precision. Each format keeps some tensors at higher precision, by role
  (:data:`hubfit.model.params.ROLES`): transformers-style formats (fp8, int8, int4, mxfp4, nvfp4) quantize only
  linear and expert weights and keep embeddings, the output head, norms, routers and biases in 16-bit; GGUF
  types also quantize the embedding and output matrices and keep 1-D tensors and routers in F32; ``--bpw``
  follows ExLlamaV2 (head at 6 bits). A tied output head counts once.
- **overhead** (``overhead:`` in the same file): a fixed CUDA/framework amount per GPU, the activation workspace
  of one prefill chunk (hidden, intermediate and vocabulary sizes) and allocator slack; or, with
  ``Workload(overhead=F)``, the seed formula ``F x weights`` and nothing else (``M = weights x (1 + F)``, no KV
  cache: Llama 3.1 405B at 16 bits with ``F = 0.2`` is 974.0 GB).

The engine (:mod:`hubfit.sizing.engine`) applies these rules; :mod:`hubfit.sizing.memory` builds the report's
memory section from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.model.config import ModelConfig
from hubfit.model.params import LogicalTensor
from hubfit.sizing import kv

__all__ = [
    "DEFAULT_CONTEXT",
    "STORED",
    "OverheadParts",
    "Precision",
    "Workload",
    "default_precisions",
    "kv_dtype_of",
    "overhead_constant",
    "overhead_bytes",
    "overhead_parts",
    "precision",
    "precision_names",
    "resolve_context",
    "rows",
]

#: Context when the workload names none: 4096 tokens, capped at the model's max_position_embeddings.
DEFAULT_CONTEXT = 4096

#: The pseudo-precision "the checkpoint as stored".
STORED = "stored"


# ---- workload --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the model is asked to run.

    Attributes:
        context: tokens per sequence; ``None`` -> :data:`DEFAULT_CONTEXT` capped at max_position_embeddings;
            ``0`` -> weights only (no KV cache, no activations).
        batch: concurrent sequences.
        kv_dtype: ``fp8`` | ``fp16`` | ``bf16`` | ``fp32``; ``None`` -> 16-bit (:func:`hubfit.kv.default_kv_dtype`).
        precisions: precision rows to show (names from ``data/precisions.yaml`` or ``stored``); ``()`` -> the
            default set.
        bpw: extra rows at these average bits per weight (ExLlamaV2-style mixes).
        overhead: a fraction of the weights (the seed formula ``M = weights x (1 + overhead)``, no KV cache);
            ``None`` -> the documented overhead model.
    """

    context: int | None = None
    batch: int = 1
    kv_dtype: str | None = None
    precisions: tuple[str, ...] = ()
    bpw: tuple[float, ...] = ()
    overhead: float | None = None

    def __post_init__(self) -> None:
        if self.context is not None and self.context < 0:
            raise UsageError(f"--context must be 0 or more tokens, got {self.context}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {self.batch}")
        if self.overhead is not None:
            if not 0 <= self.overhead <= 10:
                raise UsageError(f"--overhead is a fraction of the weights (e.g. 0.2), got {self.overhead}")
            if self.context:
                raise UsageError(
                    "--overhead F is the seed formula weights x (1 + F), without KV cache; "
                    "it cannot be combined with --context"
                )
        for bits in self.bpw:
            if not 1 <= bits <= 32:
                raise UsageError(f"--bpw must be between 1 and 32 bits per weight, got {bits:g}")
        if self.kv_dtype is not None:
            kv.kv_dtype_bytes(self.kv_dtype)  # raises UsageError for an unknown name
        for name in self.precisions:
            precision(name)


def resolve_context(config: ModelConfig | None, workload: Workload) -> int:
    """The context in tokens: the workload's, else :data:`DEFAULT_CONTEXT` capped at the model's maximum."""
    if workload.overhead is not None:
        return 0
    if workload.context is not None:
        return workload.context
    if config is None or not kv.kv_specs(config):
        return 0
    limit = config.max_position_embeddings
    return min(DEFAULT_CONTEXT, limit) if limit else DEFAULT_CONTEXT


# ---- precisions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """How a target format stores each tensor.

    Attributes:
        name: ``bf16``, ``int4``, ``Q4_K``, ``2.5bpw`` ... or ``stored``.
        family: ``float`` | ``transformers`` | ``gguf`` | ``exl2`` | ``stored``.
        bits: effective bits per quantized weight, group scales and zero points included.
        quantized_roles: tensor roles stored at ``bits``.
        kept_bits: bits of every other parameter tensor (``None``: all roles are quantized).
        lm_head_bits: bits of the output head when the format gives it its own (ExLlamaV2).
        note: what the format is, in a phrase.
        source: where the figures come from.
    """

    name: str
    family: str
    bits: Fraction
    quantized_roles: frozenset[str]
    kept_bits: int | None = None
    lm_head_bits: int | None = None
    note: str = ""
    source: str = ""

    def tensor_bytes(self, tensor: LogicalTensor) -> int:
        """Bytes of one tensor in this precision (0 for tied copies and dropped quantization metadata)."""
        if self.family == STORED:
            return 0 if tensor.tied_to else tensor.stored_bytes
        if tensor.tied_to or tensor.role == "quant_meta":
            return 0
        if tensor.role == "buffer" or not tensor.parameters:
            return tensor.stored_bytes
        if tensor.role == "lm_head" and self.lm_head_bits is not None:
            bits: Fraction = Fraction(self.lm_head_bits)
        elif tensor.role in self.quantized_roles or self.kept_bits is None:
            bits = self.bits
        else:
            bits = Fraction(self.kept_bits)
        return math.ceil(tensor.parameters * bits / 8)


def precision_names() -> tuple[str, ...]:
    """Every precision name ``precision()`` accepts (besides ``stored`` and ``<n>bpw``)."""
    return tuple(_data.load("precisions")["precisions"])


def default_precisions() -> tuple[str, ...]:
    """The rows shown when the workload names none."""
    return tuple(_data.load("precisions")["default_precisions"])


def _effective_bits(row: dict[str, Any]) -> Fraction:
    if "block_weights" in row:
        return Fraction(8 * int(row["block_bytes"]), int(row["block_weights"]))
    bits = Fraction(str(row["bits"]))
    if row.get("group_size"):
        bits += Fraction(int(row.get("scale_bits", 0)) + int(row.get("zero_bits", 0)), int(row["group_size"]))
    return bits


@cache
def _precision(name: str) -> Precision:
    data = _data.load("precisions")
    if name == STORED:
        return Precision(
            STORED, STORED, Fraction(0), frozenset(), source="the checkpoint's safetensors headers"
        )
    if name.endswith("bpw"):
        try:
            bits = Fraction(name[: -len("bpw")])
        except ValueError:
            raise UsageError(f"unknown precision {name!r}") from None
        fam = data["families"]["exl2"]
        roles = frozenset(fam["quantized_roles"])
        head_bits: int | None = int(fam["lm_head_bits"])
        if head_bits is not None and bits > head_bits:
            # Above the head's own default (6 bits) the head is not lowered: it takes the row's bits.
            roles, head_bits = roles | {"lm_head"}, None
        return Precision(
            f"{float(bits):g}bpw",
            "exl2",
            bits,
            roles,
            int(fam["kept_bits"]),
            head_bits,
            "an average bits per weight over the decoder's linear layers, as ExLlamaV2 EXL2 mixes",
            " ".join(str(fam["source"]).split()),
        )
    lookup = {key.lower(): key for key in data["precisions"]}
    key = lookup.get(name.lower())
    if key is None:
        raise UsageError(
            f"unknown precision {name!r}; choose one of stored, {', '.join(data['precisions'])} or use --bpw"
        )
    row = data["precisions"][key]
    fam = data["families"][row["family"]]
    kept = fam.get("kept_bits")
    return Precision(
        key,
        row["family"],
        _effective_bits(row),
        frozenset(fam["quantized_roles"]),
        int(kept) if kept is not None else None,
        None,
        str(row.get("note", "")),
        " ".join(str(row.get("source", "")).split()),
    )


def precision(name: str | float) -> Precision:
    """The :class:`Precision` for a name (case-insensitive), ``stored``, or a bits-per-weight number."""
    if isinstance(name, int | float) and not isinstance(name, bool):
        if not 1 <= name <= 32:
            raise UsageError(f"--bpw must be between 1 and 32 bits per weight, got {name:g}")
        return _precision(f"{name!r}bpw")
    return _precision(str(name).strip())


# ---- overhead ------------------------------------------------------------------------------------------


def overhead_constant(name: str) -> Any:
    """A constant of the documented overhead model (``overhead:`` in ``data/precisions.yaml``)."""
    return _data.load("precisions")["overhead"][name]["value"]


def _ffn_width(config: ModelConfig) -> int:
    """Intermediate width one token passes through: dense FFN, or the routed + shared experts it uses."""
    hidden = config.hidden_size or 0
    dense = config.intermediate_size or 4 * hidden
    if not config.is_moe:
        return dense
    per_expert = config.get("moe_intermediate_size", "expert_intermediate_size") or dense
    k = config.num_experts_per_tok or 1
    shared = config.get("shared_expert_intermediate_size") or config.num_shared_experts * per_expert
    moe = int(per_expert) * k + int(shared)
    has_dense_layers = bool(config.get("first_k_dense_replace")) and config.get("moe_intermediate_size")
    return max(moe, dense) if has_dense_layers else moe


@dataclass(frozen=True)
class OverheadParts:
    """The overhead of one GPU, by part (bytes); ``fraction`` set in seed mode (then only ``seed`` counts)."""

    fixed: int = 0
    activations: int = 0
    logits: int = 0
    slack: int = 0
    seed: int = 0
    fraction: float | None = None

    @property
    def total(self) -> int:
        return self.fixed + self.activations + self.logits + self.slack + self.seed


def overhead_parts(model: Model, weights: int, workload: Workload, tp: int = 1) -> OverheadParts:
    """The overhead on one of ``tp`` tensor-parallel GPUs, by part."""
    if workload.overhead is not None:
        share = math.ceil(weights / tp)
        return OverheadParts(seed=_fraction_of(share, workload.overhead), fraction=workload.overhead)
    fixed = int(overhead_constant("cuda_context_bytes"))
    config = model.main.config
    context = resolve_context(config, workload)
    if config is None or not context or not config.hidden_size:
        return OverheadParts(fixed=fixed)
    tokens = min(context * workload.batch, int(overhead_constant("prefill_chunk_tokens")))
    width = int(overhead_constant("activation_bytes"))
    per_token = int(overhead_constant("hidden_tensors")) * config.hidden_size + int(
        overhead_constant("intermediate_tensors")
    ) * math.ceil(_ffn_width(config) / tp)
    activations = tokens * width * per_token
    vocab = config.vocab_size or 0
    logits = (
        workload.batch
        * math.ceil(vocab / tp)
        * int(overhead_constant("logits_bytes"))
        * int(overhead_constant("logits_copies"))
    )
    slack = _fraction_of(activations + logits, float(overhead_constant("allocator_slack")))
    return OverheadParts(fixed=fixed, activations=activations, logits=logits, slack=slack)


def _fraction_of(amount: int, fraction: float) -> int:
    return round(amount * Fraction(str(fraction)))


def overhead_bytes(model: Model, weights: int, workload: Workload, gpus: int = 1) -> int:
    """Runtime overhead over ``gpus`` tensor-parallel GPUs (each holds its own fixed part and workspace)."""
    if workload.overhead is not None:
        return _fraction_of(weights, workload.overhead)
    return overhead_parts(model, weights, workload, gpus).total * gpus


def kv_dtype_of(config: ModelConfig | None, workload: Workload) -> str:
    """The KV element type of ``workload``: its own, else the model's default (16-bit)."""
    if workload.kv_dtype is None:
        return kv.default_kv_dtype(config)
    return kv.canonical_kv_dtype(workload.kv_dtype)


def rows(workload: Workload) -> list[Precision]:
    """The precision rows of ``workload``: its precisions (or the default set), then its ``--bpw`` values."""
    names = list(workload.precisions) or list(default_precisions())
    out: dict[str, Precision] = {}
    for prec in [precision(n) for n in names] + [precision(float(b)) for b in workload.bpw]:
        out.setdefault(prec.name, prec)
    return list(out.values())
