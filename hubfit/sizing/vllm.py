"""vLLM as a sizing policy: what ``vllm serve`` allocates on each GPU, release by release.

The engine's startup reads as stages (``gpu_worker.py``): load the weights, profile one dummy batch, size the KV
cache from what is left of ``total x gpu_memory_utilization``, check that one ``max_model_len`` request fits,
capture CUDA graphs. :func:`serve` follows the same stages on the sizing engine's figures:

- **weights** (:class:`~hubfit.sizing.engine.Sizer` in the load dtype, or the checkpoint as stored when it is
  quantized): the busiest rank of a ``Layout(tp, pp)``, plus the vocabulary padded to 64 rows on the embedding
  and an untied head, the rotary cos/sin cache (``max_position x rotary_dim`` in the model dtype) and the K/V
  projection rows a rank keeps when ``tp`` exceeds the KV heads;
- **activation peak** of the profile run, **non-torch** memory and the **CUDA-graph** estimate, from the
  constants of ``data/engines.yaml`` (each with its source) for the release;
- the **KV budget** ``total x u - weights - activation - non_torch`` (``- cuda_graphs`` from 0.20);
- **blocks** as ``kv_cache_utils.py`` groups the layers (one group per kind when the page sizes agree, groups of
  ``min`` or ``max`` layers per kind), **tokens** and **maximum concurrency** by the formula of the release,
  and the refusals with vLLM's own text.

Cache layouts not modelled here (Mamba / linear-attention states, encoder-decoder cross-attention) get a
:class:`~hubfit.errors.UsageError` naming the modelled ones, never a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.model.config import ModelConfig
from hubfit.sizing import kv
from hubfit.sizing.engine import Layout, Sizer, TensorGroups
from hubfit.sizing.rules import STORED, Workload, precision

__all__ = [
    "ENGINES",
    "MODELLED_KINDS",
    "PerGpuBytes",
    "Serving",
    "ServeSettings",
    "newest_version",
    "parse_version",
    "require_modelled",
    "serve",
    "visible_memory",
]

GIB = 1 << 30

#: The engines ``--engine`` accepts (``transformers``: hubfit's own memory model, no serving section).
ENGINES = ("vllm", "sglang", "transformers")

#: KV-cache layer kinds the vLLM policy sizes.
MODELLED_KINDS = ("full", "sliding", "chunked", "mla")

Version = tuple[int, ...]


@cache
def _doc() -> dict[str, Any]:
    return _data.load("engines")


def parse_version(text: str) -> Version:
    """``"0.19"`` -> ``(0, 19)``; ``"0.6.4.post1"`` -> ``(0, 6, 4)``."""
    parts: list[int] = []
    for piece in str(text).strip().lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits or digits != piece.split("+")[0].split("rc")[0]:
            if digits and piece[: len(digits)] == digits:
                parts.append(int(digits))
            break
        parts.append(int(digits))
    if len(parts) < 2:
        raise UsageError(f"--engine-version must look like 0.19 or 0.6.4, got {text!r}")
    return tuple(parts)


def newest_version(engine: str = "vllm") -> str:
    """The newest release the research note covers (the default ``--engine-version``)."""
    return str(_doc()[engine]["newest"])


def _value(name: str) -> Any:
    return _doc()["vllm"]["defaults"][name]["value"]


def _rule(name: str) -> Version:
    return parse_version(_doc()["vllm"]["rules"][name]["value"])


def _by_version(rows: list[dict[str, Any]], version: Version) -> dict[str, Any]:
    chosen = rows[0]
    for row in rows:
        if parse_version(row["since"]) <= version:
            chosen = row
    return chosen


def visible_memory(name: str, memory_bytes: int) -> int:
    """Total device memory as vLLM reads it (``mem_get_info``): a logged total for the device, else the
    catalog's memory less what the driver reserves."""
    doc = _doc()["vllm"]
    key = name.lower()
    for row in doc["visible_gib"]:
        if row["match"] in key:
            return round(float(row["value"]) * GIB)
    return memory_bytes - round(float(doc["driver_reserved_gib"]["value"]) * GIB)


# ---- settings and result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeSettings:
    """Engine flags, under the engine's names (``None``: the release's default).

    Attributes:
        engine: ``vllm`` | ``sglang``.
        version: the release modelled (``0.19``); ``None``: the newest the research note covers.
        max_model_len: tokens per request; ``None``: the model's ``max_position_embeddings``; ``-1``: ``auto``
            (the longest that fits, vLLM 0.14+).
        gpu_memory_utilization: vLLM's ``u``, or SGLang's ``--mem-fraction-static``.
        kv_cache_dtype: ``auto`` (the load dtype) or ``fp8`` ...
        quantization: online quantization of a 16-bit checkpoint (``fp8``); a quantized checkpoint is loaded
            as stored whatever this says.
        dtype: ``auto`` | ``bfloat16`` | ``float16``.
    """

    engine: str = "vllm"
    version: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    block_size: int | None = None
    enforce_eager: bool = False
    quantization: str | None = None
    dtype: str = "auto"
    enable_expert_parallel: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ("vllm", "sglang"):
            raise UsageError(f"--engine must be one of vllm, sglang, transformers, got {self.engine!r}")
        if self.tensor_parallel_size < 1 or self.pipeline_parallel_size < 1:
            raise UsageError("--tensor-parallel-size and --pipeline-parallel-size must be at least 1")
        u = self.gpu_memory_utilization
        if u is not None and not 0 < u <= 1:
            raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {u}")
        if self.max_model_len is not None and self.max_model_len < 1 and self.max_model_len != -1:
            raise UsageError(f"--max-model-len must be a positive number or auto, got {self.max_model_len}")
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.version is not None:
            parse_version(self.version)
        if self.kv_cache_dtype != "auto":
            kv.kv_dtype_bytes(self.kv_cache_dtype)

    @property
    def release(self) -> Version:
        return parse_version(self.version or newest_version(self.engine))


@dataclass(frozen=True)
class PerGpuBytes:
    """What one GPU holds, in bytes, as the engine accounts it."""

    weights: int
    activation_peak: int
    non_torch: int
    cuda_graphs: int
    kv_cache: int


@dataclass(frozen=True)
class Serving:
    """The engine's view of one model on one GPU kind (the report's ``serving`` section).

    Attributes:
        engine, engine_version: the engine and the release modelled.
        gpu: the device's name.
        max_model_len: the tokens per request asked (after ``auto``: the one chosen).
        per_gpu_bytes: the busiest rank's accounting; ``kv_cache`` is the budget ("Available KV cache memory").
        kv_cache_tokens: "GPU KV cache size: N tokens".
        max_concurrency: "Maximum concurrency for max_model_len tokens per request".
        starts: whether the engine starts; ``error`` is its message when it does not.
        max_model_len_that_fits: the longest ``--max-model-len`` that starts (what ``auto`` picks).
        suggestions: ready command lines that make it start (or run more requests).
    """

    engine: str
    engine_version: str
    gpu: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    per_gpu_bytes: PerGpuBytes
    kv_cache_tokens: int
    max_concurrency: float
    starts: bool
    error: str | None = None
    max_model_len_that_fits: int = 0
    suggestions: list[str] = field(default_factory=list)


# ---- the stages -----------------------------------------------------------------------------------------


def require_modelled(
    specs: tuple[kv.LayerSpec, ...], model: Model, *, view: str, kinds: tuple[str, ...], hint: str = ""
) -> None:
    """Refuse a cache layout an engine's policy does not model, naming the layer kinds it does.

    Raises:
        UsageError: a layer kind outside ``kinds``, or no decoder KV cache at all.
    """
    found = {spec.kind for spec in specs}
    if not specs or found - set(kinds):
        model_type = model.main.config.model_type if model.main.config else None
        shown = ", ".join(sorted(found - set(kinds))) or "no decoder KV cache"
        raise UsageError(
            f"the {view} view does not model the cache of model type {model_type!r} ({shown}); "
            f"modelled layer kinds: {', '.join(kinds)}{hint}"
        )


def load_dtype(config: ModelConfig, settings: ServeSettings) -> str:
    """``bf16`` or ``fp16``: vLLM's ``dtype=auto`` keeps a 16-bit config dtype and casts float32 down (to
    bfloat16 for Gemma, float16 otherwise; ``_get_and_verify_dtype`` in vllm/config)."""
    if settings.dtype not in ("auto", ""):
        return kv.canonical_kv_dtype(settings.dtype)
    dtype = (config.torch_dtype or "bfloat16").lower()
    if dtype in ("float32", "fp32", "float"):
        return "bf16" if "gemma" in (config.model_type or "") else "fp16"
    return "fp16" if dtype in ("float16", "fp16", "half") else "bf16"


def loaded_weights(model: Model, groups: TensorGroups, settings: ServeSettings, dtype: str) -> int:
    """Weights on the busiest rank as vLLM loads them ("Model loading took")."""
    config = model.main.config
    assert config is not None
    quantized = model.main.quantization is not None
    name = STORED if quantized else (settings.quantization or dtype)
    if not quantized and settings.quantization in ("fp8", "int8", "int4", "mxfp4", "nvfp4"):
        name = settings.quantization
    sizer = Sizer(model, Workload(context=0), precision(name), groups)
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    weights = sizer.need(Layout(tp, pp), 0).weights
    b = kv.kv_dtype_bytes(dtype)
    hidden = config.hidden_size or 0
    vocab = config.vocab_size or 0
    pad = int(_value("vocab_padding"))
    padded = -(-vocab // pad) * pad
    matrices = 1 if config.tie_word_embeddings else 2
    extra = (padded - vocab) * hidden * b * matrices
    head_dim = config.head_dim or 0
    rotary = int(head_dim * float(config.get("partial_rotary_factor", default=1.0) or 1.0))
    rope = (config.max_position_embeddings or 0) * rotary * b  # one cos/sin cache, on every rank
    kv_heads = config.num_key_value_heads or 0
    if kv_heads and tp > kv_heads and config.get("kv_lora_rank") is None:
        per_rank = max(1, kv_heads // tp) if tp % kv_heads == 0 else 1
        replicated = 2 * per_rank * head_dim * hidden - 2 * kv_heads * head_dim * hidden / tp
        layers = math.ceil(len(sizer.layers) / pp)
        rope += int(replicated * layers * b)  # already per rank
    return weights + math.ceil(extra / tp) + rope


def _batch_defaults(settings: ServeSettings, total: int, gpu: str, max_model_len: int) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) of the profile run, as the release sets them."""
    version = settings.release
    seqs, tokens = settings.max_num_seqs, settings.max_num_batched_tokens
    if version < _rule("v1_default_since"):
        seqs = seqs or int(_value("v0_max_num_seqs"))
        if tokens is None:
            if max_model_len > int(_value("v0_chunked_prefill_above")):
                tokens = int(_value("v0_chunked_tokens" if version >= (0, 6, 6) else "v0_chunked_tokens_old"))
            else:
                tokens = max(max_model_len, int(_value("v0_min_batched_tokens")))
        return tokens, seqs
    gib = total / GIB
    large = gib >= float(_value("large_gpu_gib")) and not (version >= (0, 9) and "a100" in gpu.lower())
    if version >= (0, 28) and gib >= float(_value("huge_gpu_gib")):
        return tokens or int(_value("huge_tokens")), seqs or int(_value("large_seqs"))
    if large:
        return tokens or int(_value("large_tokens")), seqs or int(_value("large_seqs"))
    return tokens or int(_value("small_tokens")), seqs or int(_value("small_seqs"))


def _ffn_width(config: ModelConfig) -> int:
    """Intermediate rows per token of one layer's MLP: the dense width, or top-k experts plus shared ones."""
    if config.is_moe:
        expert = int(config.get("moe_intermediate_size", "intermediate_size", default=0) or 0)
        shared = int(config.get("shared_expert_intermediate_size", default=0) or 0)
        shared += config.num_shared_experts * expert
        return (config.num_experts_per_tok or 1) * expert + shared
    return config.intermediate_size or 0


def _activation(config: ModelConfig, settings: ServeSettings, tokens: int, seqs: int, dtype: str) -> int:
    doc = _doc()["vllm"]["activation"]
    b = kv.kv_dtype_bytes(dtype)
    tp = settings.tensor_parallel_size
    hidden = config.hidden_size or 0
    mlp = math.ceil(_ffn_width(config) / tp)
    per_token = (int(doc["hidden_rows"]["value"]) * hidden + int(doc["mlp_rows"]["value"]) * mlp) * b
    pad = int(_value("vocab_padding"))
    vocab = -(-(config.vocab_size or 0) // pad) * pad
    logit = int(_by_version(doc["sampler_bytes"], settings.release)["value"])
    if config.get("final_logit_softcapping"):
        logit += int(doc["softcap_extra_bytes"]["value"])
    rows = min(seqs, tokens)
    residual = tokens * int(doc["hidden_rows"]["value"]) * hidden * b
    return max(tokens * per_token, residual + rows * vocab * logit)


def _non_torch(settings: ServeSettings) -> int:
    row = _by_version(_doc()["vllm"]["non_torch"], settings.release)
    many = settings.tensor_parallel_size * settings.pipeline_parallel_size > 1
    return round(float(row["tp_many" if many else "tp1"]) * GIB)


def _cuda_graphs(settings: ServeSettings, layers: int) -> int:
    if settings.enforce_eager:
        return 0
    per_layer = float(_doc()["vllm"]["cuda_graphs"]["per_layer_gib"]["value"])
    return round(per_layer * math.ceil(layers / settings.pipeline_parallel_size) * GIB)


def _graphs_subtracted(version: Version) -> bool:
    return version >= parse_version(_doc()["vllm"]["cuda_graphs"]["subtracted_since"]["value"])


# ---- KV cache groups (vllm/v1/core/kv_cache_utils.py) -----------------------------------------------------


@dataclass(frozen=True)
class _Group:
    spec: kv.LayerSpec
    layers: int


@dataclass(frozen=True)
class _Cache:
    """The KV cache of one rank: groups of layers sharing block tables, one page per layer and block."""

    groups: tuple[_Group, ...]
    page: int  # bytes of one block of one layer
    group_size: int  # layers per group (padding layers count)
    block_size: int
    batched_tokens: int

    def blocks(self, budget: int) -> int:
        return max(0, budget // (self.page * self.group_size))

    def request_blocks(self, max_model_len: int) -> int:
        """Blocks one request of ``max_model_len`` tokens needs, summed over the groups."""
        return sum(self._spec_blocks(g.spec, max_model_len) for g in self.groups)

    def _spec_blocks(self, spec: kv.LayerSpec, max_model_len: int) -> int:
        bs = self.block_size
        if isinstance(spec, kv.SlidingWindow):
            held = min(spec.window - 1 + self.batched_tokens, max_model_len)
            return -(-held // bs) + 1
        if isinstance(spec, kv.ChunkedLocal):
            held = min(spec.chunk + self.batched_tokens, max_model_len)
            return -(-held // bs)
        return -(-max_model_len // bs)

    def needed_bytes(self, max_model_len: int) -> int:
        """What one request needs ("X GiB KV cache is needed"): every group's layers at their maximum."""
        return self.request_blocks(max_model_len) * self.page * self.group_size

    def max_len(self, budget: int, limit: int) -> int:
        """The longest request that fits ``budget`` (vLLM's ``estimate_max_model_len`` binary search)."""
        low, high = 0, limit
        while low < high:
            mid = (low + high + 1) // 2
            if self.needed_bytes(mid) <= budget:
                low = mid
            else:
                high = mid - 1
        return low


def _cache(
    specs: tuple[kv.LayerSpec, ...], kv_bytes: int, tp: int, block_size: int, batched: int, pp: int
) -> _Cache:
    on_rank = math.ceil(len(specs) / pp)
    specs = specs[:on_rank]
    by_kind: dict[kv.LayerSpec, int] = {}
    for spec in specs:
        key = replace(spec, layer=0)
        by_kind[key] = by_kind.get(key, 0) + 1
    pages = {spec.bytes_per_token(kv_bytes, tp) * block_size for spec in by_kind}
    page = max(pages)
    counts = list(by_kind.values())
    smallest, largest = min(counts), max(counts)
    size = largest if largest < smallest * 1.25 else smallest
    groups = tuple(_Group(spec, size) for spec, n in by_kind.items() for _ in range(-(-n // size)))
    return _Cache(groups, page, size, block_size, batched)


# ---- the policy ---------------------------------------------------------------------------------------------


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def serve(
    model: Model,
    settings: ServeSettings,
    gpu: str,
    memory_bytes: int,
    groups: TensorGroups | None = None,
    *,
    total_bytes: int | None = None,
) -> Serving:
    """vLLM's startup for ``model`` on ``tensor_parallel_size x pipeline_parallel_size`` GPUs of one kind.

    Args:
        gpu, memory_bytes: the device's name and memory (the catalog's ``memory.total``).
        total_bytes: the total as vLLM logs it, when known (else :func:`visible_memory`).

    Raises:
        UsageError: a model whose cache layout is not modelled, or settings vLLM rejects before sizing.
    """
    if settings.engine != "vllm":
        raise UsageError(
            f"the vLLM policy sizes --engine vllm, not {settings.engine} (use hubfit.sizing.serving)"
        )
    config = model.main.config
    if config is None:
        raise UsageError("the vLLM view needs the model's config.json")
    groups = groups or TensorGroups.of(model)
    require_modelled(groups.specs, model, view="vLLM", kinds=MODELLED_KINDS)
    version = settings.release
    version_text = settings.version or newest_version()
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    heads = config.num_attention_heads or 0
    total = total_bytes if total_bytes is not None else visible_memory(gpu, memory_bytes)
    u = settings.gpu_memory_utilization or float(_value("gpu_memory_utilization"))
    block_size = settings.block_size or int(_value("block_size"))
    limit = config.max_position_embeddings or 0
    auto = settings.max_model_len == -1
    max_model_len = limit if settings.max_model_len in (None, -1) else int(settings.max_model_len)
    dtype = load_dtype(config, settings)
    kv_dtype = dtype if settings.kv_cache_dtype == "auto" else settings.kv_cache_dtype
    tokens, seqs = _batch_defaults(settings, total, gpu, max_model_len)

    weights = loaded_weights(model, groups, settings, dtype)
    activation = _activation(config, settings, tokens, seqs, dtype)
    non_torch = _non_torch(settings)
    graphs = _cuda_graphs(settings, groups.layer_count)
    requested = math.ceil(total * u)
    budget = requested - weights - activation - non_torch
    if _graphs_subtracted(version):
        budget -= graphs
    cache = _cache(groups.specs, kv.kv_dtype_bytes(kv_dtype), tp, block_size, tokens, pp)
    fit_budget = budget - (cache.page * cache.group_size if version >= _rule("null_block_since") else 0)
    longest = cache.max_len(fit_budget, limit or max_model_len)
    if auto and version >= _rule("auto_fit_since"):
        max_model_len = longest or max_model_len
    blocks = cache.blocks(budget)
    v0 = version < _rule("v1_default_since")

    need_blocks = cache.request_blocks(max_model_len)
    concurrency = blocks / need_blocks if need_blocks else 0.0
    if v0 or len(cache.groups) == 1 or version < _rule("hybrid_tokens_since"):
        kv_tokens = blocks * block_size if v0 or len(cache.groups) == 1 else blocks * block_size
    else:
        kv_tokens = blocks // len(cache.groups) * block_size
    if version >= _rule("token_formula_since"):
        kv_tokens = int(concurrency * max_model_len)
    if v0:
        concurrency = blocks * block_size / max_model_len

    error = None
    if heads and heads % tp:
        error = f"Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp})."
    elif budget <= 0:
        error = (
            "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
            "initializing the engine."
        )
    elif v0 and blocks * block_size < max_model_len:
        error = (
            f"The model's max seq len ({max_model_len}) is larger than the maximum number of tokens that can "
            f"be stored in KV cache ({blocks * block_size}). Try increasing `gpu_memory_utilization` or "
            "decreasing `max_model_len` when initializing the engine."
        )
    elif not v0 and cache.needed_bytes(max_model_len) > fit_budget:
        model_s = "models's" if version <= _rule("model_s_typo_until") else "model's"
        error = (
            f"To serve at least one request with the {model_s} max seq len ({max_model_len}), "
            f"({_gib(cache.needed_bytes(max_model_len))} GiB KV cache is needed, which is larger than the "
            f"available KV cache memory ({_gib(fit_budget)} GiB). Based on the available memory, the "
            f"estimated maximum model length is {longest}. Try increasing `gpu_memory_utilization` or "
            "decreasing `max_model_len` when initializing the engine."
        )
    if v0:
        longest = min(limit or max_model_len, blocks * block_size)
    serving = Serving(
        engine="vllm",
        engine_version=version_text,
        gpu=gpu,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        max_model_len=max_model_len,
        gpu_memory_utilization=u,
        per_gpu_bytes=PerGpuBytes(weights, activation, non_torch, graphs, max(budget, 0)),
        kv_cache_tokens=max(kv_tokens, 0),
        max_concurrency=round(max(concurrency, 0.0), 2),
        starts=error is None,
        error=error,
        max_model_len_that_fits=max(longest, 0),
    )
    return replace(serving, suggestions=_suggestions(model, settings, serving, config, total))


def _command(model: Model, settings: ServeSettings, **changes: Any) -> str:
    s = replace(settings, **changes)
    parts = [f"vllm serve {model.repo_id}"]
    if s.tensor_parallel_size > 1:
        parts.append(f"--tensor-parallel-size {s.tensor_parallel_size}")
    if s.pipeline_parallel_size > 1:
        parts.append(f"--pipeline-parallel-size {s.pipeline_parallel_size}")
    if s.max_model_len is not None:
        parts.append(f"--max-model-len {'auto' if s.max_model_len == -1 else s.max_model_len}")
    if s.gpu_memory_utilization is not None:
        parts.append(f"--gpu-memory-utilization {s.gpu_memory_utilization:g}")
    if s.max_num_seqs is not None:
        parts.append(f"--max-num-seqs {s.max_num_seqs}")
    if s.kv_cache_dtype != "auto":
        parts.append(f"--kv-cache-dtype {s.kv_cache_dtype}")
    if s.quantization:
        parts.append(f"--quantization {s.quantization}")
    if s.enforce_eager:
        parts.append("--enforce-eager")
    return " ".join(parts)


def _suggestions(
    model: Model, settings: ServeSettings, serving: Serving, config: ModelConfig, total: int
) -> list[str]:
    """Ready command lines: for a refusal, the smallest changes that start; else the longest context."""
    out: list[str] = []
    tp = settings.tensor_parallel_size
    heads = config.num_attention_heads or 0
    if serving.starts:
        if serving.max_model_len_that_fits > serving.max_model_len:
            out.append(_command(model, settings, max_model_len=serving.max_model_len_that_fits))
        return out
    if heads and heads % tp:
        valid = [t for t in range(1, 9) if heads % t == 0]
        nearest = min(valid, key=lambda t: (abs(t - tp), -t))
        return [_command(model, settings, tensor_parallel_size=nearest)]
    if serving.max_model_len_that_fits > 0:
        out.append(_command(model, settings, max_model_len=serving.max_model_len_that_fits))
    if settings.kv_cache_dtype == "auto":
        trial = replace(settings, kv_cache_dtype="fp8")
        if _starts(model, trial, serving.gpu, total):
            out.append(_command(model, trial))
    trial = replace(settings, tensor_parallel_size=tp * 2)
    if heads % (tp * 2) == 0 and _starts(model, trial, serving.gpu, total):
        out.append(_command(model, trial))
    u = serving.gpu_memory_utilization
    if u < 0.95:
        trial = replace(settings, gpu_memory_utilization=0.95)
        if _starts(model, trial, serving.gpu, total):
            out.append(_command(model, trial))
    return out


def _starts(model: Model, settings: ServeSettings, gpu: str, total: int) -> bool:
    try:
        return serve(model, settings, gpu, 0, total_bytes=total).starts
    except UsageError:
        return False
