"""SGLang as a sizing policy: the token pool ``python -m sglang.launch_server`` allocates, release by release.

SGLang sizes differently from vLLM (research note section 7, ``../shared/research/vllm-memory.md``): it does not
measure an activation peak. It keeps a fixed share of the memory free at start, ``1 - mem_fraction_static``, for
activations and CUDA graphs, and gives the rest, less the weights, to the KV pool:

- **mem_fraction_static** ``s``: the flag, else the release's default from the device's ``memory.total`` (MiB),
  TP x PP and the GPU tier (``ServerArgs._handle_gpu_memory_settings``): a table by TP up to 0.4.0, a reserve
  of ``(mem - 13,312 MiB)`` above 80 GiB from 0.4.6, GiB reserves by memory tier from 0.4.10, and from 0.5.5
  ``512 + 1.5 x max(chunked_prefill, 2048) + 2 x cuda_graph_max_bs + 1024 x tp x pp / 8`` MiB (at least
  10 GiB above 60 GiB), plus 8 MiB per piecewise prefill-graph size from 0.5.23;
- **free before the weights** ``F0``: the device's total as torch reads it (:func:`~hubfit.sizing.vllm.
  visible_memory`) less what the CUDA context and, with TP > 1, NCCL hold (``data/engines.yaml``);
- **weights** ``W`` per rank as the sizing engine loads them (the vLLM policy's loader: TP shards, padded
  vocabulary, rotary cache);
- **pool** ``rest = F0 x s - W`` (``F1 - F0 x (1 - s)`` with ``F1 = F0 - W``); **tokens** ``floor(rest / cell)``
  with ``cell`` the bytes one token takes in every layer of the rank (K and V heads per rank, replicated when TP
  exceeds the KV heads; MLA's latent unsplit);
- **refusals** with SGLang's text: ``rest <= 0`` ("Loaded weights leave no GPU memory for the KV cache ...",
  0.5.23) or no token ("Not enough memory. Please try to increase --mem-fraction-static.", earlier). A pool
  smaller than ``--context-length`` is not fatal: SGLang warns and clips requests to ``pool - 1`` tokens.

``per_gpu_bytes``: ``activation_peak`` holds the reserve ``F0 x (1 - s)`` (activations and CUDA graphs live
there; SGLang never measures them apart), ``cuda_graphs`` is 0, ``non_torch`` what was used before loading.
Cache layouts other than full attention and MLA (sliding-window and linear-attention pools) are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.model.component import Model
from hubfit.sizing import kv
from hubfit.sizing.engine import TensorGroups
from hubfit.sizing.vllm import (
    GIB,
    PerGpuBytes,
    ServeSettings,
    Serving,
    Version,
    load_dtype,
    loaded_weights,
    parse_version,
    require_modelled,
    visible_memory,
)

__all__ = ["MODELLED_KINDS", "mem_fraction_static", "serve"]

MIB = 1 << 20

#: KV-cache layer kinds the SGLang policy sizes (one token pool).
MODELLED_KINDS = ("full", "mla")


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = _data.load("engines")["sglang"]
    return doc


def newest() -> str:
    return str(_doc()["newest"])


def _since(rows: list[dict[str, Any]], version: Version) -> dict[str, Any]:
    """The last row whose ``since`` release is at or before ``version``."""
    chosen = rows[0]
    for row in rows:
        if parse_version(str(row["since"])) <= version:
            chosen = row
    return chosen


def _tier(memory_mib: int, version: Version) -> dict[str, Any]:
    """The GPU tier's defaults (chunked prefill, decode-graph batch) by ``memory.total`` in MiB."""
    tiers = _since(_doc()["gpu_tiers"], version)["tiers"]
    for tier in tiers:
        if "below_gb" not in tier or memory_mib < int(tier["below_gb"]) * 1024:
            return dict(tier)
    return dict(tiers[-1])


def _piecewise_sizes(max_tokens: int) -> int:
    """How many piecewise prefill CUDA graphs SGLang captures up to ``max_tokens`` tokens
    (``_generate_piecewise_cuda_graph_tokens``: steps of 4, 16, 32, 64, 256, 512)."""
    steps = [(4, 32, 4), (48, 256, 16), (288, 512, 32), (576, 1024, 64), (1280, 4096, 256)]
    count = sum(len(range(a, min(b, max_tokens) + 1, s)) for a, b, s in steps if a <= max_tokens)
    if max_tokens >= 4608:
        count += len(range(4608, max_tokens + 1, 512))
    return count


def mem_fraction_static(memory_mib: int, tp: int, pp: int, version: Version, *, mla: bool = False) -> float:
    """SGLang's default ``--mem-fraction-static`` for a device of ``memory_mib`` (``nvidia-smi``'s total)."""
    doc = _doc()
    if version < parse_version("0.4.6") or (version < parse_version("0.4.10") and memory_mib <= 81_920):
        table = sorted(doc["mem_fraction_by_tp"], key=lambda row: -int(row["tp"]))
        return float(next(row["value"] for row in table if tp >= int(row["tp"])))
    if version < parse_version("0.4.10"):
        return round((memory_mib - 13_312) / memory_mib, 3)
    if version < parse_version("0.5.5"):
        for row in doc["reserved_gib_0_4_10"]:
            if "below_gb" not in row or memory_mib < int(row["below_gb"]) * 1024:
                reserved = float(row["base"]) + float(row["per_rank"]) * tp * pp
                return round((memory_mib - reserved * 1024) / memory_mib, 3)
    tier = _tier(memory_mib, version)
    graph_bs = int(tier["graph_bs_tp4"] if tp >= 4 and "graph_bs_tp4" in tier else tier["graph_bs"])
    chunked = int(tier["chunked_prefill"])
    reserved = 512 + max(chunked, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if version >= parse_version("0.5.23"):
        reserved += 1536 if mla else _piecewise_sizes(chunked) * 8
    if memory_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((memory_mib - reserved) / memory_mib, 3)


def _pre_load(tp: int, pp: int) -> int:
    row = _doc()["pre_load_used_gib"]
    return round(float(row["tp_many" if tp * pp > 1 else "tp1"]) * GIB)


def serve(
    model: Model,
    settings: ServeSettings,
    gpu: str,
    memory_bytes: int,
    groups: TensorGroups | None = None,
    *,
    total_bytes: int | None = None,
) -> Serving:
    """SGLang's startup for ``model`` on ``tp x pp`` GPUs of one kind (see the module docstring).

    Args:
        gpu, memory_bytes: the device's name and ``memory.total`` (the catalog's figure).
        total_bytes: the total as torch reads it, when known (else :func:`~hubfit.sizing.vllm.visible_memory`).

    Raises:
        UsageError: a cache layout SGLang's view does not model.
    """
    config = model.main.config
    if config is None:
        raise UsageError("the SGLang view needs the model's config.json")
    groups = groups or TensorGroups.of(model)
    require_modelled(groups.specs, model, view="SGLang", kinds=MODELLED_KINDS, hint=" (try --engine vllm)")
    version = settings.release
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    mla = any(spec.kind == "mla" for spec in groups.specs)
    memory_mib = (memory_bytes or total_bytes or 0) // MIB
    s = settings.gpu_memory_utilization or mem_fraction_static(memory_mib, tp, pp, version, mla=mla)
    total = total_bytes if total_bytes is not None else visible_memory(gpu, memory_bytes)
    pre_load = _pre_load(tp, pp)
    free_at_start = total - pre_load
    dtype = load_dtype(config, settings)
    kv_dtype = dtype if settings.kv_cache_dtype == "auto" else settings.kv_cache_dtype
    weights = loaded_weights(model, groups, settings, dtype)
    reserve = math.ceil(free_at_start * (1 - s))
    rest = free_at_start - weights - reserve
    layers = groups.specs[: math.ceil(len(groups.specs) / pp)]
    cell = sum(spec.bytes_per_token(kv.kv_dtype_bytes(kv_dtype), tp) for spec in layers)
    tokens = max(0, rest // cell) if cell else 0
    limit = config.max_position_embeddings or 0
    asked = limit if settings.max_model_len in (None, -1) else int(settings.max_model_len)
    longest = min(asked, tokens - 1) if tokens else 0
    max_model_len = longest if settings.max_model_len == -1 else asked
    running = min(max(tokens * 512 // max(max_model_len, 1), 2048), 4096, max(tokens // 2, 1))
    concurrency = min(tokens / max_model_len, running) if max_model_len else 0.0

    error = None
    heads = config.num_attention_heads or 0
    if heads and heads % tp:
        error = f"{heads} attention heads are not divisible by --tp {tp}"
    elif rest <= 0 and version >= parse_version("0.5.23"):
        error = f"Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static={s:g}."
        needed = weights / free_at_start
        if needed < 1:
            error += f" Raise --mem-fraction-static above {needed:.4f}."
        else:  # hubfit's words: SGLang would fail to load the weights
            error += (
                f" (The weights, {weights / GIB:.2f} GiB per GPU, exceed the {free_at_start / GIB:.2f} GiB free "
                "before loading: more GPUs are needed.)"
            )
    elif tokens <= 0:
        error = "Not enough memory. Please try to increase --mem-fraction-static."
    serving = Serving(
        engine="sglang",
        engine_version=settings.version or newest(),
        gpu=gpu,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        max_model_len=max_model_len,
        gpu_memory_utilization=s,
        per_gpu_bytes=PerGpuBytes(weights, reserve, pre_load, 0, max(rest, 0)),
        kv_cache_tokens=tokens,
        max_concurrency=round(max(concurrency, 0.0), 2),
        starts=error is None,
        error=error,
        max_model_len_that_fits=max(longest, 0),
    )
    suggestions = _suggestions(model, settings, serving, (memory_bytes, total), free_at_start, weights)
    return replace(serving, suggestions=suggestions)


def _command(model: Model, settings: ServeSettings, **changes: Any) -> str:
    s = replace(settings, **changes)
    parts = [f"python -m sglang.launch_server --model-path {model.repo_id}"]
    if s.tensor_parallel_size > 1:
        parts.append(f"--tp {s.tensor_parallel_size}")
    if s.pipeline_parallel_size > 1:
        parts.append(f"--pp-size {s.pipeline_parallel_size}")
    if s.max_model_len not in (None, -1):
        parts.append(f"--context-length {s.max_model_len}")
    if s.gpu_memory_utilization is not None:
        parts.append(f"--mem-fraction-static {s.gpu_memory_utilization:g}")
    if s.kv_cache_dtype != "auto":
        parts.append(f"--kv-cache-dtype {s.kv_cache_dtype}")
    if s.quantization:
        parts.append(f"--quantization {s.quantization}")
    return " ".join(parts)


def _suggestions(
    model: Model,
    settings: ServeSettings,
    serving: Serving,
    device: tuple[int, int],
    free_at_start: int,
    weights: int,
) -> list[str]:
    """Ready command lines: a context length the pool holds, or the smallest changes that start."""
    out: list[str] = []
    if serving.starts:
        if serving.max_model_len_that_fits < serving.max_model_len:
            out.append(_command(model, settings, max_model_len=serving.max_model_len_that_fits))
        return out
    if weights < free_at_start:
        s = math.ceil((weights / free_at_start + 0.01) * 100) / 100
        if s <= 0.95:
            out.append(_command(model, settings, gpu_memory_utilization=s))
    tp = settings.tensor_parallel_size
    trial = replace(settings, tensor_parallel_size=tp * 2)
    heads = model.main.config.num_attention_heads if model.main.config else None
    if heads and heads % (tp * 2) == 0:
        try:
            if serve(model, trial, serving.gpu, device[0], total_bytes=device[1]).starts:
                out.append(_command(model, trial))
        except UsageError:
            pass
    return out
