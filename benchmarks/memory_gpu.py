"""hubfit's memory model against real allocations: weights, KV cache and peak memory of built models.

For each model (real config.json from fixtures/, random weights, transformers), this builds the model in BF16,
then for each context runs a chunked prefill (hubfit's overhead model assumes ``prefill_chunk_tokens`` per step,
as vLLM schedules it) into a preallocated ``StaticCache`` and generates a few tokens, and records:

- weights: bytes of the model's parameters and persistent buffers (measured) vs ``memory.weights_bytes``;
- KV cache: bytes of the cache's key/value tensors (measured) vs ``kv.kv_cache_bytes``;
- on a GPU: torch's peak allocated and reserved bytes, plus the memory outside torch (CUDA context ...), vs
  hubfit's total for the same workload.

hubfit's report comes from the built model itself: its state_dict (names, shapes, dtypes; tied copies once) is
turned into a safetensors header and classified by ``hubfit.params.inventory``, as a checkpoint would be.

    python benchmarks/memory_gpu.py                      # on a CUDA machine: writes benchmarks/results/memory_gpu.md
    python benchmarks/memory_gpu.py --models llama --contexts 4096
    python benchmarks/memory_gpu.py --cpu                # the CPU part only: tiny configs, exact weights and KV

torch and transformers are needed (they are not hubfit dependencies). tests/test_memory_real.py runs the CPU part.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hubfit.formats.safetensors import validate_header  # noqa: E402
from hubfit.model.component import Model, component_from_headers  # noqa: E402
from hubfit.model.config import ModelConfig  # noqa: E402
from hubfit.sizing import kv, memory  # noqa: E402

CONFIGS = ROOT / "fixtures" / "configs"
RESULTS = ROOT / "benchmarks" / "results" / "memory_gpu.md"

#: name -> (config file in fixtures/configs, overrides for the GPU run, why)
MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    "llama": ("meta-llama__Llama-3.1-8B.json", {}, ""),
    "mistral": ("mistralai__Mistral-7B-v0.1.json", {}, ""),
    # 48 layers x 128 experts is 61 GB of BF16 weights: 24 layers keep weights + 32k KV well inside 80 GB.
    "qwen3moe": ("Qwen__Qwen3-30B-A3B.json", {"num_hidden_layers": 24}, "24 of 48 layers"),
    "gemma2": ("google__gemma-2-9b.json", {"torch_dtype": "bfloat16"}, "built in BF16 (checkpoint is F32)"),
}

#: Shrunk versions of the same configs for the CPU check: every field that decides the layout is kept (layer
#: kinds, GQA ratio, windows, experts per token), the widths are small so a CPU builds them in a second.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_hidden_layers": 4,
    "vocab_size": 512,
    "max_position_embeddings": 4096,
}
TINY_EXTRA = {
    "qwen3moe": {"moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2},
    "mistral": {"sliding_window": 48},
    "gemma2": {"sliding_window": 48, "query_pre_attn_scalar": 16},
}

GEN_TOKENS = 16


def load_config(name: str, *, tiny: bool = False) -> dict[str, Any]:
    """The real config of a benchmark model, with its GPU overrides, or its tiny CPU version."""
    file, overrides, _ = MODELS[name]
    raw = json.loads((CONFIGS / file).read_text())
    raw.update(overrides)
    if tiny:
        raw.update(TINY)
        raw.update(TINY_EXTRA.get(name, {}))
        raw["torch_dtype"] = "bfloat16"
    return raw


def build(raw: dict[str, Any], device: str):
    """The transformers model of a config, random weights, BF16, eval mode, on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        **{k: v for k, v in raw.items() if k not in ("architectures", "transformers_version")}
    )
    config.architectures = raw.get("architectures")
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return model.eval()


_DTYPES = {
    "bfloat16": "BF16",
    "float16": "F16",
    "float32": "F32",
    "int64": "I64",
    "int32": "I32",
    "bool": "BOOL",
}


def report_of(model, raw: dict[str, Any]) -> Model:
    """hubfit's Report of a built model, as if its state_dict were saved to one safetensors file."""
    header: dict[str, Any] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    offset = 0
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tuple(tensor.shape))
        if key in seen and tensor.device.type != "meta":  # a tied copy: save_pretrained writes it once
            continue
        seen.add(key)
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _DTYPES[str(tensor.dtype).removeprefix("torch.")],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    info = validate_header(header, filename="model.safetensors", length=0)
    part = component_from_headers([info], ModelConfig(raw))
    return Model("benchmark/" + str(raw.get("model_type")), "main", None, "local", [part])


def model_bytes(model) -> int:
    """Bytes of the model's parameters and persistent buffers, each storage once (tied weights share one).

    Non-persistent buffers (rotary ``inv_freq``) are not in a checkpoint; on a GPU they are in the measured
    allocation (a few kB).
    """
    seen: dict[int, int] = {}
    for t in model.state_dict().values():
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def cache_bytes(cache) -> int:
    """Bytes of a transformers cache's key and value tensors."""
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
    return total


def run_workload(model, context: int, batch: int, chunk: int, device: str):
    """Chunked prefill of ``context`` random tokens into a StaticCache, then GEN_TOKENS greedy steps."""
    import torch
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=context + GEN_TOKENS)
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (batch, context), device=device)
    with torch.no_grad():
        out = None
        for start in range(0, context, chunk):
            piece = ids[:, start : start + chunk]
            position = torch.arange(start, start + piece.shape[1], device=device)
            out = model(input_ids=piece, past_key_values=cache, cache_position=position, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        for step in range(GEN_TOKENS):
            position = torch.tensor([context + step], device=device)
            out = model(input_ids=token, past_key_values=cache, cache_position=position, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
    return cache


@dataclass
class Row:
    """One measurement beside hubfit's figures (bytes)."""

    gpu: str
    model: str
    note: str
    context: int
    weights: int
    weights_est: int
    kv: int
    kv_est: int
    peak_allocated: int | None = None
    peak_reserved: int | None = None
    non_torch: int | None = None
    total_est: int | None = None
    torch_est: int | None = None


def cpu_check(names: list[str], context: int = 96, batch: int = 2) -> list[Row]:
    """Tiny configs on the CPU: weights and KV bytes of the built model against hubfit, which must be exact."""
    import torch

    torch.manual_seed(0)
    rows = []
    for name in names:
        raw = load_config(name, tiny=True)
        model = build(raw, "cpu")
        report = report_of(model, raw)
        chunk = int(memory.overhead_constant("prefill_chunk_tokens"))
        cache = run_workload(model, context, batch, min(chunk, 32), "cpu")
        rows.append(
            Row(
                gpu="cpu",
                model=name,
                note="tiny config",
                context=context,
                weights=model_bytes(model),
                weights_est=memory.weights_bytes(report, "bf16"),
                kv=cache_bytes(cache),
                kv_est=kv.kv_cache_bytes(ModelConfig(raw), context + GEN_TOKENS, batch, "bf16"),
            )
        )
    return rows


def gpu_run(names: list[str], contexts: list[int], batch: int) -> list[Row]:
    """Full-size models on the GPU: weights, KV, torch peaks and the memory outside torch."""
    import torch

    device = "cuda"
    gpu = torch.cuda.get_device_name()
    chunk = int(memory.overhead_constant("prefill_chunk_tokens"))
    rows = []
    for name in names:
        raw = load_config(name)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        model = build(raw, device)
        torch.cuda.synchronize()
        weights = torch.cuda.memory_allocated() - base
        report = report_of(model, raw)
        print(
            f"{name}: built in {time.perf_counter() - start:.1f} s, {weights / 1e9:.2f} GB", file=sys.stderr
        )
        for context in contexts:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            free, total = torch.cuda.mem_get_info()
            non_torch = (total - free) - torch.cuda.memory_reserved()
            cache = run_workload(model, context, batch, chunk, device)
            torch.cuda.synchronize()
            # the cache holds the prompt and the generated tokens
            work = memory.Workload(context + GEN_TOKENS, batch, "bf16", precisions=("stored",))
            mem = memory.estimate(report, work)
            parts = mem.overhead
            rows.append(
                Row(
                    gpu=gpu,
                    model=name,
                    note=MODELS[name][2],
                    context=context,
                    weights=weights,
                    weights_est=memory.weights_bytes(report, "stored"),
                    kv=cache_bytes(cache),
                    kv_est=mem.kv_cache.bytes,
                    peak_allocated=torch.cuda.max_memory_allocated(),
                    peak_reserved=torch.cuda.max_memory_reserved(),
                    non_torch=non_torch,
                    total_est=mem.estimates[0].total_bytes,
                    torch_est=mem.estimates[0].total_bytes - parts.fixed,
                )
            )
            print(rows[-1], file=sys.stderr)
            del cache
        del model
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def _gb(n: int | None) -> str:
    """GB (10^9 bytes) with three decimals; plain bytes below 10 MB (the CPU check's tiny models)."""
    if n is None:
        return "–"
    return f"{n:,} B" if n < 10**7 else f"{n / 1e9:,.3f}"


def _err(measured: int | None, estimated: int | None) -> str:
    if not measured or estimated is None:
        return "–"
    return f"{(estimated - measured) / measured * 100:+.2f} %"


def table(rows: list[Row]) -> str:
    """The results as a Markdown table (GB = 10^9 bytes)."""
    head = (
        "| GPU | model | note | precision | context | weights measured | weights est. | err | KV measured "
        "| KV est. | err | peak allocated | peak reserved | outside torch | total measured | total est. | err |"
    )
    out = [head, "|" + "---|" * 17]
    for r in rows:
        total = None if r.peak_reserved is None else r.peak_reserved + (r.non_torch or 0)
        out.append(
            f"| {r.gpu} | {r.model} | {r.note} | bf16 | {r.context:,} | {_gb(r.weights)} | {_gb(r.weights_est)} "
            f"| {_err(r.weights, r.weights_est)} | {_gb(r.kv)} | {_gb(r.kv_est)} | {_err(r.kv, r.kv_est)} "
            f"| {_gb(r.peak_allocated)} | {_gb(r.peak_reserved)} | {_gb(r.non_torch)} | {_gb(total)} "
            f"| {_gb(r.total_est)} | {_err(total, r.total_est)} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--contexts", nargs="+", type=int, default=[4096, 32768])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cpu", action="store_true", help="only the CPU part (tiny configs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown results file (GPU runs)")
    args = parser.parse_args(argv)

    import torch

    if args.cpu or not torch.cuda.is_available():
        rows = cpu_check(args.models)
        print(table(rows))
        exact = all(r.weights == r.weights_est and r.kv == r.kv_est for r in rows)
        print("CPU check:", "weights and KV bytes exact" if exact else "MISMATCH")
        return 0 if exact else 1
    import transformers

    rows = gpu_run(args.models, args.contexts, args.batch)
    text = (
        "# Memory model vs real allocations (benchmarks/memory_gpu.py)\n\n"
        f"torch {torch.__version__}, transformers {transformers.__version__}, batch {args.batch}, BF16 weights and KV, "
        f"chunked prefill of {memory.overhead_constant('prefill_chunk_tokens')} tokens then {GEN_TOKENS} generated; "
        "total measured = peak reserved + memory outside torch (CUDA context ...). GB = 10^9 bytes.\n\n"
        + table(rows)
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written {args.out}", file=sys.stderr)
    return 0 if all(math.isclose(r.weights, r.weights_est, rel_tol=0.01) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
