"""KV cache per layer, sized the way vLLM sizes it.

A model is a list of per-layer specs (after vLLM's ``v1/kv_cache_interface.py``); each spec knows what one
layer holds for one sequence:

=====================  ======================================================================================
:class:`FullAttention`  ``kv_heads x (head_dim + head_dim_v) x bytes`` per token (``2 x kv_heads x head_dim``
                        when K and V have the same width), for every token of the context
:class:`SlidingWindow`  the same per token, for ``min(context, window)`` tokens
:class:`ChunkedLocal`   the same per token, for ``min(context, chunk)`` tokens (Llama 4 local layers)
:class:`CrossAttention` decoder cross-attention of an encoder-decoder model: the encoder's tokens
:class:`MLAAttention`   multi-head latent attention: ``(kv_lora_rank + qk_rope_head_dim) x bytes`` per token,
                        one latent (no ``x 2``), not split across tensor-parallel ranks
:class:`RecurrentState` Mamba / Mamba-2 / linear-attention (gated DeltaNet) layers: a fixed state per sequence
=====================  ======================================================================================

Tensor parallelism (``tp`` GPUs): attention KV heads are split across ranks, ``ceil(kv_heads / tp)`` per rank,
so when ``tp > kv_heads`` every rank holds one head and the replicas count (vLLM's
``max(1, kv_heads // tp)``); an MLA latent is replicated on every rank; recurrent states are split. Totals
"over all GPUs" are the per-rank figure times ``tp``.

Which layer is which comes from ``config.json`` (:func:`kv_specs`): ``layer_types`` lists, Gemma 2's
alternation, ``sliding_window_pattern`` (Gemma 3, Cohere 2), a single ``sliding_window`` for every layer
(Mistral-style; Qwen2-style ``use_sliding_window`` / ``max_window_layers``), Llama 4 chunked attention,
Jamba's ``attn_layer_period``, Qwen3-Next's ``full_attention_interval``, Nemotron-H's
``hybrid_override_pattern``. Encoder-only models (BERT ...) hold no KV cache.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.model.config import ModelConfig

__all__ = [
    "ChunkedLocal",
    "CrossAttention",
    "FullAttention",
    "LayerSpec",
    "MLAAttention",
    "RecurrentState",
    "SlidingWindow",
    "canonical_kv_dtype",
    "default_kv_dtype",
    "kv_bytes_per_token",
    "kv_cache_bytes",
    "kv_cache_bytes_per_gpu",
    "kv_dtype_bytes",
    "kv_dtypes",
    "kv_specs",
]


# ---- KV element types ----------------------------------------------------------------------------------


#: Other spellings of the KV dtypes (torch / vLLM names).
_KV_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
}


@cache
def _kv_dtype_table() -> dict[str, int]:
    return {name: int(row["bytes"]) for name, row in _data.load("precisions")["kv_dtypes"].items()}


def kv_dtypes() -> tuple[str, ...]:
    """The accepted ``--kv-dtype`` names."""
    return tuple(_kv_dtype_table())


def canonical_kv_dtype(kv_dtype: str) -> str:
    """The ``--kv-dtype`` name for a spelling (``bfloat16`` -> ``bf16``, ``fp8_e4m3`` -> ``fp8``)."""
    table = _kv_dtype_table()
    key = kv_dtype.strip().lower()
    key = _KV_ALIASES.get(key, "fp8" if key.startswith("fp8") else key)
    if key not in table:
        raise UsageError(f"unknown KV-cache dtype {kv_dtype!r}; choose one of {', '.join(table)}")
    return key


def kv_dtype_bytes(kv_dtype: str) -> int:
    """Bytes per cached value of a KV dtype name (``fp8`` 1, ``fp16``/``bf16`` 2, ``fp32`` 4)."""
    return _kv_dtype_table()[canonical_kv_dtype(kv_dtype)]


def default_kv_dtype(config: ModelConfig | None) -> str:
    """16-bit: ``fp16`` for a float16 checkpoint, ``bf16`` otherwise (FP8 and quantized checkpoints included)."""
    dtype = (config.torch_dtype or "") if config is not None else ""
    return "fp16" if dtype in ("float16", "fp16", "half") else "bf16"


# ---- specs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec(ABC):
    """What one layer caches for one sequence.

    Attributes:
        layer: the decoder layer index.
    """

    layer: int

    #: A short name for the kind of layer (shown in breakdowns).
    kind = "layer"

    @abstractmethod
    def bytes_per_token(self, kv_bytes: int, tp: int = 1) -> int:
        """Bytes one token adds on one tensor-parallel rank (0 for a fixed state)."""

    @abstractmethod
    def rank_bytes(self, context: int, batch: int, kv_bytes: int, tp: int = 1) -> int:
        """Bytes this layer holds on one tensor-parallel rank for ``batch`` sequences of ``context`` tokens."""

    def total_bytes(self, context: int, batch: int, kv_bytes: int, tp: int = 1) -> int:
        """Bytes over all ``tp`` ranks, replicas included."""
        return self.rank_bytes(context, batch, kv_bytes, tp) * tp


@dataclass(frozen=True)
class _Attention(LayerSpec):
    """Paged K/V attention: ``kv_heads x (head_dim + head_dim_v)`` values per token."""

    num_kv_heads: int = 1
    head_dim: int = 0
    head_dim_v: int | None = None

    def heads_per_rank(self, tp: int) -> int:
        return math.ceil(self.num_kv_heads / tp)

    def bytes_per_token(self, kv_bytes: int, tp: int = 1) -> int:
        width = self.head_dim + (self.head_dim if self.head_dim_v is None else self.head_dim_v)
        return self.heads_per_rank(tp) * width * kv_bytes

    def tokens(self, context: int) -> int:
        """Tokens this layer keeps for a sequence of ``context`` tokens."""
        return context

    def rank_bytes(self, context: int, batch: int, kv_bytes: int, tp: int = 1) -> int:
        return self.tokens(context) * batch * self.bytes_per_token(kv_bytes, tp)


@dataclass(frozen=True)
class FullAttention(_Attention):
    """Standard, multi-query or grouped-query attention over the whole context."""

    kind = "full"


@dataclass(frozen=True)
class SlidingWindow(_Attention):
    """Attention over the last ``window`` tokens: holds ``min(context, window)`` tokens."""

    window: int = 0
    kind = "sliding"

    def tokens(self, context: int) -> int:
        return min(context, self.window)


@dataclass(frozen=True)
class ChunkedLocal(_Attention):
    """Chunked local attention (Llama 4): holds at most one chunk, ``min(context, chunk)`` tokens."""

    chunk: int = 0
    kind = "chunked"

    def tokens(self, context: int) -> int:
        return min(context, self.chunk)


@dataclass(frozen=True)
class CrossAttention(_Attention):
    """Decoder cross-attention: K/V of the encoder output, ``encoder_tokens`` long (``None``: the context)."""

    encoder_tokens: int | None = None
    kind = "cross"

    def tokens(self, context: int) -> int:
        return context if self.encoder_tokens is None else self.encoder_tokens


@dataclass(frozen=True)
class MLAAttention(LayerSpec):
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi K2 ...): one compressed latent per token.

    vLLM caches ``kv_lora_rank + qk_rope_head_dim`` values per token and layer (no separate K and V) and
    replicates the latent on every tensor-parallel rank (``get_num_kv_heads`` is 1 for MLA).
    """

    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    kind = "mla"

    def bytes_per_token(self, kv_bytes: int, tp: int = 1) -> int:
        return (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes

    def rank_bytes(self, context: int, batch: int, kv_bytes: int, tp: int = 1) -> int:
        return context * batch * self.bytes_per_token(kv_bytes, tp)


@dataclass(frozen=True)
class RecurrentState(LayerSpec):
    """A fixed state per sequence (Mamba, Mamba-2, gated DeltaNet linear attention), whatever the context.

    The state is a causal-conv window ``(conv_dim, conv_width)`` in ``state_bytes`` per value (vLLM's
    ``mamba_cache_dtype=auto``: the model's dtype) plus an SSM / recurrent state ``ssm_shape`` in ``ssm_bytes``
    per value (the model's dtype, or float32 when the config says ``mamba_ssm_dtype: float32``). Tensor
    parallelism splits ``conv_dim`` and the first dimension of ``ssm_shape`` (``MambaStateShapeCalculator``).
    """

    variant: str = "mamba"
    conv_dim: int = 0
    conv_width: int = 0
    ssm_shape: tuple[int, ...] = ()
    state_bytes: int = 2
    ssm_bytes: int = 2
    kind = "state"

    def bytes_per_token(self, kv_bytes: int, tp: int = 1) -> int:
        return 0

    def sequence_bytes(self, tp: int = 1) -> int:
        """Bytes of one sequence's state on one rank."""
        conv = math.ceil(self.conv_dim / tp) * self.conv_width * self.state_bytes
        ssm = math.ceil(self.ssm_shape[0] / tp) * math.prod(self.ssm_shape[1:]) if self.ssm_shape else 0
        return conv + ssm * self.ssm_bytes

    def rank_bytes(self, context: int, batch: int, kv_bytes: int, tp: int = 1) -> int:
        return batch * self.sequence_bytes(tp) if context > 0 else 0


# ---- reading config.json -----------------------------------------------------------------------------

#: Encoder-only model types: no autoregressive decoding, no KV cache.
_ENCODER_ONLY = frozenset(
    {
        "albert", "bert", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "ernie", "esm",
        "flaubert", "ibert", "longformer", "luke", "megatron-bert", "modernbert", "mpnet", "nomic_bert",
        "roberta", "roberta-prelayernorm", "xlm", "xlm-roberta", "xlm-roberta-xl", "xlnet",
    }
)  # fmt: skip

_FULL = frozenset({"full_attention", "attention", "global_attention", "global", "full"})
_SLIDING = frozenset({"sliding_attention", "sliding_window", "local_attention", "local", "swa"})
_CHUNKED = frozenset({"chunked_attention", "chunked"})
_LINEAR = frozenset({"linear_attention", "linear"})
_MAMBA = frozenset({"mamba", "mamba2", "ssm"})


def _int(cfg: ModelConfig, *names: str, default: int | None = None) -> int | None:
    value = cfg.get(*names)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _text_type(cfg: ModelConfig) -> str:
    return str(cfg.text.raw.get("model_type") or cfg.model_type or "")


def _state_bytes(cfg: ModelConfig) -> tuple[int, int]:
    """Bytes per value of the conv state and of the SSM state."""
    conv = 4 if (cfg.torch_dtype or "") in ("float32", "fp32") else 2
    ssm = 4 if str(cfg.get("mamba_ssm_dtype") or "") in ("float32", "fp32") else conv
    return conv, ssm


def _layer_kinds(cfg: ModelConfig, layers: int) -> list[str]:
    """One of full / sliding / chunked / mla / mamba / mamba2 / linear / none per decoder layer."""
    model_type = _text_type(cfg)
    types = cfg.get("layer_types")
    if cfg.get("kv_lora_rank") is not None:
        return ["mla"] * layers
    if isinstance(types, list) and len(types) == layers:
        out = []
        for name in (str(t).lower() for t in types):
            if name in _SLIDING:
                out.append("sliding")
            elif name in _CHUNKED:
                out.append("chunked")
            elif name in _LINEAR:
                out.append("linear")
            elif name in _MAMBA:
                out.append("mamba2" if _int(cfg, "mamba_n_heads", "mamba_num_heads") else "mamba")
            else:  # full attention, and any name not known here (counted as full: an upper bound)
                out.append("full")
        return out
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:  # Nemotron-H: M = Mamba-2, * = attention, - / E = MLP / MoE
        return [{"M": "mamba2", "*": "full"}.get(c, "none") for c in pattern[:layers]]
    period = _int(cfg, "attn_layer_period")
    if period:  # Jamba: attention where i % period == offset, Mamba elsewhere
        offset = _int(cfg, "attn_layer_offset", default=0)
        return ["full" if i % period == offset else "mamba" for i in range(layers)]
    interval = _int(cfg, "full_attention_interval")
    if interval:  # Qwen3-Next: every interval-th layer is full attention, the rest gated DeltaNet
        return ["full" if (i + 1) % interval == 0 else "linear" for i in range(layers)]
    if model_type in ("mamba", "falcon_mamba"):
        return ["mamba"] * layers
    if model_type == "mamba2":
        return ["mamba2"] * layers
    if cfg.get("attention_chunk_size") and model_type.startswith("llama4"):
        # Llama 4: layers that use RoPE use chunked local attention; every no_rope_layer_interval-th is global.
        nope = cfg.get("no_rope_layers")
        if not (isinstance(nope, list) and len(nope) == layers):
            every = _int(cfg, "no_rope_layer_interval", default=4) or 4
            nope = [int((i + 1) % every != 0) for i in range(layers)]
        return ["chunked" if flag else "full" for flag in nope]
    window = _int(cfg, "sliding_window")
    if model_type == "gemma2" and window:  # Gemma 2: even layers local, odd layers global
        return ["sliding" if i % 2 == 0 else "full" for i in range(layers)]
    pattern_every = _int(cfg, "sliding_window_pattern", default=6 if model_type == "gemma3_text" else None)
    if pattern_every and window:  # Gemma 3, Cohere 2: every n-th layer global, the others local
        return ["full" if (i + 1) % pattern_every == 0 else "sliding" for i in range(layers)]
    if window and cfg.get("use_sliding_window") is not False:
        if cfg.get("use_sliding_window") is True and _int(cfg, "max_window_layers") is not None:
            first = _int(cfg, "max_window_layers") or 0  # Qwen2: layers from max_window_layers on are local
            return ["sliding" if i >= first else "full" for i in range(layers)]
        return ["sliding"] * layers  # Mistral-style: one window for every layer
    return ["full"] * layers


def _recurrent(cfg: ModelConfig, kind: str, layer: int) -> RecurrentState:
    hidden = cfg.hidden_size or 0
    conv_bytes, ssm_bytes = _state_bytes(cfg)
    if kind == "linear":  # gated DeltaNet (Qwen3-Next), vLLM gated_delta_net_state_shape
        k_heads = _int(cfg, "linear_num_key_heads", default=0) or 0
        v_heads = _int(cfg, "linear_num_value_heads", default=k_heads) or 0
        k_dim = _int(cfg, "linear_key_head_dim", default=0) or 0
        v_dim = _int(cfg, "linear_value_head_dim", default=k_dim) or 0
        if not k_heads:  # plain linear attention (vLLM linear_attention_state_shape): heads x d x d
            heads, dim = cfg.num_attention_heads or 0, cfg.head_dim or 0
            return RecurrentState(layer, "linear_attention", 0, 0, (heads, dim, dim), conv_bytes, ssm_bytes)
        width = (_int(cfg, "linear_conv_kernel_dim", default=4) or 4) - 1
        conv_dim = 2 * k_heads * k_dim + v_heads * v_dim
        shape = (v_heads, v_dim, k_dim)
        return RecurrentState(layer, "gated_delta_net", conv_dim, width, shape, conv_bytes, ssm_bytes)
    if kind == "mamba2":  # vLLM mamba2_state_shape
        heads = _int(cfg, "mamba_num_heads", "mamba_n_heads", "num_heads", default=0) or 0
        head_dim = _int(cfg, "mamba_head_dim", "mamba_d_head", "head_dim", default=64) or 64
        state = _int(cfg, "ssm_state_size", "mamba_d_state", "state_size", default=128) or 128
        groups = _int(cfg, "n_groups", "mamba_n_groups", default=1) or 1
        width = (_int(cfg, "conv_kernel", "mamba_d_conv", default=4) or 4) - 1
        inner = heads * head_dim
        conv_dim = inner + 2 * groups * state
        return RecurrentState(
            layer, "mamba2", conv_dim, width, (heads, head_dim, state), conv_bytes, ssm_bytes
        )
    # Mamba-1 (Mamba, Falcon-Mamba, Jamba), vLLM mamba1_state_shape; defaults are MambaConfig's
    expand = _int(cfg, "mamba_expand", "expand", default=2) or 2
    inner = (
        _int(cfg, "intermediate_size", default=expand * hidden)
        if _text_type(cfg) in ("mamba", "falcon_mamba")
        else expand * hidden
    ) or 0
    state = _int(cfg, "mamba_d_state", "state_size", default=16) or 16
    width = (_int(cfg, "mamba_d_conv", "conv_kernel", default=4) or 4) - 1
    return RecurrentState(layer, "mamba", inner, width, (inner, state), conv_bytes, ssm_bytes)


def _encoder_decoder(cfg: ModelConfig) -> list[LayerSpec]:
    raw = cfg.raw
    layers = raw.get("num_decoder_layers") or raw.get("decoder_layers") or raw.get("num_layers") or 0
    heads = raw.get("decoder_attention_heads") or raw.get("num_heads") or cfg.num_attention_heads or 0
    d_model = raw.get("d_model") or cfg.hidden_size or 0
    head_dim = raw.get("d_kv") or (d_model // heads if heads else 0)
    encoder_tokens = raw.get("max_source_positions")  # Whisper: 1500 audio frames after the conv stem
    specs: list[LayerSpec] = []
    for i in range(int(layers)):
        specs.append(FullAttention(i, num_kv_heads=int(heads), head_dim=int(head_dim)))
        specs.append(
            CrossAttention(i, num_kv_heads=int(heads), head_dim=int(head_dim), encoder_tokens=encoder_tokens)
        )
    return specs


def kv_specs(config: ModelConfig | dict[str, Any]) -> list[LayerSpec]:
    """The per-layer KV specs of a model's ``config.json`` (empty for encoder-only and non-LM models)."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig(config)
    if _text_type(cfg) in _ENCODER_ONLY:
        return []
    if cfg.is_encoder_decoder:
        return _encoder_decoder(cfg)
    layers = cfg.num_hidden_layers
    if not layers:
        return []
    kinds = _layer_kinds(cfg, layers)
    needs_heads = any(k in ("full", "sliding", "chunked") for k in kinds)
    if needs_heads and not (cfg.num_key_value_heads and cfg.head_dim):
        return []  # not a transformer decoder we can size (e.g. a UNet config)
    kv_heads, head_dim = cfg.num_key_value_heads or 0, cfg.head_dim or 0
    window = _int(cfg, "sliding_window", default=0) or 0
    chunk = _int(cfg, "attention_chunk_size", default=0) or 0
    specs: list[LayerSpec] = []
    for i, kind in enumerate(kinds):
        if kind == "full":
            specs.append(FullAttention(i, num_kv_heads=kv_heads, head_dim=head_dim))
        elif kind == "sliding":
            specs.append(SlidingWindow(i, num_kv_heads=kv_heads, head_dim=head_dim, window=window))
        elif kind == "chunked":
            specs.append(ChunkedLocal(i, num_kv_heads=kv_heads, head_dim=head_dim, chunk=chunk))
        elif kind == "mla":
            specs.append(
                MLAAttention(
                    i,
                    kv_lora_rank=_int(cfg, "kv_lora_rank", default=0) or 0,
                    qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", default=0) or 0,
                )
            )
        elif kind in ("mamba", "mamba2", "linear"):
            specs.append(_recurrent(cfg, kind, i))
    return specs


# ---- totals ---------------------------------------------------------------------------------------------


def _specs(config: ModelConfig | dict[str, Any] | list[LayerSpec]) -> list[LayerSpec]:
    return config if isinstance(config, list) else kv_specs(config)


def _check(context: int, batch: int, tp: int) -> None:
    if context < 0:
        raise UsageError(f"--context must be 0 or more tokens, got {context}")
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}")
    if tp < 1:
        raise UsageError(f"tensor-parallel degree must be at least 1, got {tp}")


def kv_bytes_per_token(
    config: ModelConfig | dict[str, Any] | list[LayerSpec], kv_dtype: str, tp: int = 1
) -> int:
    """Bytes one token of one sequence adds over all layers and all ``tp`` ranks (windows not yet full).

    Fixed recurrent states add nothing per token; they are in :func:`kv_cache_bytes`.
    """
    size = kv_dtype_bytes(kv_dtype)
    return sum(spec.bytes_per_token(size, tp) * tp for spec in _specs(config))


def kv_cache_bytes(
    config: ModelConfig | dict[str, Any] | list[LayerSpec],
    context: int,
    batch: int,
    kv_dtype: str,
    tp: int = 1,
) -> int:
    """KV cache (and recurrent state) of ``batch`` sequences of ``context`` tokens, over all ``tp`` GPUs."""
    _check(context, batch, tp)
    size = kv_dtype_bytes(kv_dtype)
    return sum(spec.total_bytes(context, batch, size, tp) for spec in _specs(config))


def kv_cache_bytes_per_gpu(
    config: ModelConfig | dict[str, Any] | list[LayerSpec],
    context: int,
    batch: int,
    kv_dtype: str,
    tp: int = 1,
) -> int:
    """KV cache (and recurrent state) on one of ``tp`` tensor-parallel GPUs."""
    _check(context, batch, tp)
    size = kv_dtype_bytes(kv_dtype)
    return sum(spec.rank_bytes(context, batch, size, tp) for spec in _specs(config))
