"""The SGLang policy (hubfit.sizing.sglang): mem_fraction_static by release, the token pool, the refusals.

Figures: the research note's section 7 (../shared/research/vllm-memory.md, copied in fixtures/real_logs where
records are used): the default fraction on an H100 (memory.total 81,559 MiB, tp 1) is 0.88 in 0.4.6, 0.874 in
0.4.10, 0.835 in 0.5.5 and 0.830 in 0.5.23 (58 piecewise prefill-graph sizes at chunked prefill 8,192); record
S04 (DeepSeek-V4-Pro on 8x H200 at 0.88) refused with "Loaded weights leave no GPU memory for the KV cache".
"""

from __future__ import annotations

import math

import pytest

from benchmarks import vllm_accuracy as acc
from hubfit.errors import UsageError
from hubfit.sizing import serving, sglang, vllm
from hubfit.sizing.vllm import parse_version

H100_MIB = 81_559
GIB = 1 << 30


@pytest.mark.parametrize(
    ("version", "expected"), [("0.4.6", 0.88), ("0.4.10", 0.874), ("0.5.5", 0.835), ("0.5.23", 0.83)]
)
def test_default_mem_fraction_static_on_an_h100(version: str, expected: float) -> None:
    assert sglang.mem_fraction_static(H100_MIB, 1, 1, parse_version(version)) == expected


def test_default_mem_fraction_by_tp_before_0_4_6() -> None:
    fractions = [
        sglang.mem_fraction_static(H100_MIB, tp, 1, parse_version("0.4.0")) for tp in (1, 2, 4, 8, 16)
    ]
    assert fractions == [0.88, 0.87, 0.85, 0.81, 0.79]


def test_piecewise_prefill_graph_sizes() -> None:
    assert sglang._piecewise_sizes(8192) == 58
    assert sglang._piecewise_sizes(2048) == 8 + 14 + 8 + 8 + 4


def test_the_10_gib_floor_and_the_tp_term() -> None:
    # an H200 (143,771 MiB) at tp 8, 0.5.5: 512 + 1.5 x 8192 + 2 x 512 + 1024 = 14,848 MiB reserved
    assert sglang.mem_fraction_static(143_771, 8, 1, parse_version("0.5.5")) == round(
        (143_771 - 14_848) / 143_771, 3
    )
    # an L40S-sized card (46,068 MiB, below 60 GiB: no floor): 512 + 1.5 x 4096 + 2 x 32 + 128 = 6,848 MiB
    assert sglang.mem_fraction_static(46_068, 1, 1, parse_version("0.5.5")) == round(
        (46_068 - 6_848) / 46_068, 3
    )


def _serve(repo: str, **settings: object) -> vllm.Serving:
    model = acc.model_of(repo)
    return serving.serve(model, vllm.ServeSettings(engine="sglang", **settings), "H100", H100_MIB << 20)  # type: ignore[arg-type]


def test_token_pool_is_what_the_fraction_leaves_after_the_weights() -> None:
    """Qwen3-30B-A3B (48 layers, 4 KV heads x 128, bf16): one token takes 48 x 4 x 128 x 2 x 2 = 98,304 B."""
    served = _serve("Qwen/Qwen3-30B-A3B", max_model_len=32768)
    total = vllm.visible_memory("H100", H100_MIB << 20)
    free = total - round(0.35 * GIB)
    assert served.gpu_memory_utilization == 0.83
    b = served.per_gpu_bytes
    assert b.activation_peak == math.ceil(free * (1 - 0.83))
    assert b.kv_cache == free - b.weights - b.activation_peak
    assert served.kv_cache_tokens == b.kv_cache // 98_304
    assert served.max_concurrency == round(served.kv_cache_tokens / 32768, 2)
    assert served.starts and served.error is None


def test_kv_heads_split_over_tp_and_fp8_halves_the_cell() -> None:
    one = _serve("Qwen/Qwen3-30B-A3B", tensor_parallel_size=2)
    fp8 = _serve("Qwen/Qwen3-30B-A3B", tensor_parallel_size=2, kv_cache_dtype="fp8")
    # 2 KV heads per rank: 49,152 B per token in bf16, 24,576 in fp8
    assert one.kv_cache_tokens == one.per_gpu_bytes.kv_cache // 49_152
    assert fp8.kv_cache_tokens == fp8.per_gpu_bytes.kv_cache // 24_576


def test_weights_that_leave_nothing_are_refused_with_sglangs_text() -> None:
    served = _serve("meta-llama/Llama-2-70b-hf", tensor_parallel_size=2)
    assert not served.starts and served.kv_cache_tokens == 0
    assert served.error is not None
    assert served.error.startswith(
        "Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.828. "
        "Raise --mem-fraction-static above 0."
    )
    fix = served.suggestions[0]
    assert fix.startswith("python -m sglang.launch_server --model-path meta-llama/Llama-2-70b-hf --tp 2")
    fraction = float(fix.rsplit(" ", 1)[-1])
    assert _serve("meta-llama/Llama-2-70b-hf", tensor_parallel_size=2, gpu_memory_utilization=fraction).starts
    older = _serve(
        "meta-llama/Llama-2-70b-hf", tensor_parallel_size=2, version="0.4.10", gpu_memory_utilization=0.8
    )
    assert older.error == "Not enough memory. Please try to increase --mem-fraction-static."


def test_a_pool_shorter_than_the_context_is_not_fatal() -> None:
    """SGLang warns and clips requests to the pool less one token (research note section 7)."""
    served = _serve("Qwen/Qwen3-30B-A3B", gpu_memory_utilization=0.73)
    assert served.starts
    assert served.kv_cache_tokens < 40960 and served.max_model_len == 40960
    assert served.max_model_len_that_fits == served.kv_cache_tokens - 1
    assert served.suggestions == [
        "python -m sglang.launch_server --model-path Qwen/Qwen3-30B-A3B "
        f"--context-length {served.kv_cache_tokens - 1} --mem-fraction-static 0.73"
    ]


def test_sliding_window_pools_are_not_modelled() -> None:
    with pytest.raises(UsageError, match="SGLang view does not model .* modelled layer kinds: full, mla"):
        _serve("google/gemma-2-9b")


# ---- the engine's view of every GPU of the set (--engine without one --gpu) -------------------------------------


def test_serving_options_take_the_fewest_gpus_that_start() -> None:
    from hubfit.fit.gpus import find_gpu
    from hubfit.fit.serving import serving_options

    model = acc.model_of("meta-llama/Llama-2-70b-hf")
    devices = (find_gpu("RTX 4090"), find_gpu("H100"), find_gpu("H200"), find_gpu("M4 Max"))
    options = serving_options(model, vllm.ServeSettings(version="0.19", max_model_len=8192), devices)
    by_gpu = {s.gpu: s for s in options}
    assert "Apple M4 Max 128GB" not in by_gpu  # neither engine runs on Metal
    for s in options:
        assert s.starts
        if s.tensor_parallel_size > 1:  # one size down does not start
            smaller = vllm.serve(
                model,
                vllm.ServeSettings(
                    version="0.19", max_model_len=8192, tensor_parallel_size=s.tensor_parallel_size // 2
                ),
                s.gpu,
                find_gpu(s.gpu).memory_bytes,
            )
            assert not smaller.starts
    # 128.5 GiB of F16 weights: two H100s at the least; an H200 (141 GB) alone cannot hold them with vLLM's 0.9
    assert by_gpu["H100 SXM 80GB"].tensor_parallel_size == 2
    assert by_gpu["RTX 4090"].tensor_parallel_size == 8


def test_cli_engine_without_a_gpu_prints_the_engine_table(fake_hub: object) -> None:
    import json
    import subprocess
    import sys

    args = [sys.executable, "-m", "hubfit.cli", "meta-llama/Llama-2-70b-hf", "--token", "hf_granted"]
    engine = ["--engine", "sglang", "--max-model-len", "4096"]
    text = subprocess.run([*args, *engine], capture_output=True, text=True, check=True).stdout
    assert "SGLang 0.5.23 on each GPU (fewest GPUs that start it, max_model_len 4,096" in text
    data = json.loads(
        subprocess.run([*args, *engine, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert "serving" not in data
    options = data["serving_options"]
    assert {o["engine"] for o in options} == {"sglang"} and all(o["max_model_len"] == 4096 for o in options)
    h100 = next(o for o in options if o["gpu"] == "H100 SXM 80GB")
    assert h100["starts"] and h100["tensor_parallel_size"] == 4


@pytest.mark.parametrize("flags", [["--engine", "vllm"], ["--engine", "sglang"], ["--finetune", "lora"]])
def test_engines_and_training_refuse_apple_silicon(fake_hub: object, flags: list[str]) -> None:
    import subprocess
    import sys

    args = [sys.executable, "-m", "hubfit.cli", "Qwen/Qwen3-30B-A3B", "--gpu", "M4 Max", *flags]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.startswith("hubfit: error: ") and "Apple silicon (Apple M4 Max 128GB)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
