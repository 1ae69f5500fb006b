"""Hardware fit (hubfit/fit.py): device counts, tensor-parallel validity, KV replication, pipeline stages across
nodes, Apple unified memory, the longest context, best bits per weight, decode upper bound, llama.cpp offload.

Reports come from the fixture repos on the local fake Hub (fixtures/README.md names the source of each: real
config.json files and the real tensor naming/shapes). Expected figures are either published (the seed table for
Llama 3.1 405B, ExLlamaV2's 2.55 bpw for Llama 2 70B on a 24 GB card, DeepSeek-V3's 70,272 B of MLA cache per
token) or computed in the test from the config and hubfit.memory / hubfit.kv by the rule stated beside them, a
path independent of fit.py's own stage arithmetic.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import hubfit
from fixtures.catalog import real_config
from hubfit.errors import UnknownGPUError, UsageError
from hubfit.fit.gpus import find_gpu
from hubfit.fit.planner import (
    FitReport,
    HardwareQuery,
    evaluate,
    valid_tp,
)
from hubfit.model.config import ModelConfig
from hubfit.render.fit import fit_markdown as render_markdown
from hubfit.render.fit import fit_text as render_text
from hubfit.report import Report
from hubfit.sizing import kv, memory
from hubfit.sizing.engine import Layout, Sizer, TensorGroups
from hubfit.sizing.memory import Workload
from hubfit.source.hub import HubClient

TOKEN = "hf_granted"  # the fixture token with access to the gated meta-llama repos


def _analyze(repo_id: str):
    return hubfit.load_model(repo_id, client=HubClient(token=TOKEN))


@pytest.fixture(scope="module")
def llama70(fake_hub):
    return _analyze("meta-llama/Llama-2-70b-hf")


@pytest.fixture(scope="module")
def llama405(fake_hub):
    return _analyze("meta-llama/Llama-3.1-405B")


@pytest.fixture(scope="module")
def qwen3_moe(fake_hub):
    return _analyze("Qwen/Qwen3-30B-A3B")


@pytest.fixture(scope="module")
def gpt_oss(fake_hub):
    return _analyze("openai/gpt-oss-20b")


def _fewest_single_node(report, precision: str, workload: Workload, gpu_name: str) -> int | None:
    """The smallest valid TP size (<= 8) whose busiest GPU fits, from hubfit.memory.per_gpu (not fit.py)."""
    gpu = find_gpu(gpu_name)
    for tp in (1, 2, 4, 8):
        if valid_tp(report.main.config, tp) and memory.per_gpu(
            report, precision, workload, tp
        ).total_bytes <= (gpu.usable_bytes()):
            return tp
    return None


# ---- the seed table (Substratus, "What GPUs can run Llama 3.1 405B?"; estimators.md 2.14) -----------------
def test_seed_table_llama31_405b(llama405):
    seed = Workload(overhead=0.2, context=0, precisions=("bf16", "int8", "int4"))
    fit = evaluate(llama405, seed, HardwareQuery(gpus=("MI300X", "H100 SXM")))
    # Published: 16-bit on 8x MI300X 192 GB, 8-bit on 8x H100 80 GB, 4-bit on 4x H100 80 GB.
    assert fit.fit_for("MI300X", "bf16").count == 8
    assert fit.fit_for("H100", "int8").count == 8
    assert fit.fit_for("H100", "int4").count == 4
    # The seed formula: M = weights x 1.2 = 974.0 GB at 16 bits, split over the 8 GPUs.
    bf16 = fit.fit_for("MI300X", "bf16")
    assert round(bf16.per_gpu_bytes * 8 / 1e9, 1) == 974.0
    assert bf16.kv_per_gpu_bytes == 0 and bf16.layout == Layout(8, 1)
    # 5 MI300X would hold 974.0 GB (194.8 GB each < 206.1 GB) but TP 5 does not divide the 128 heads:
    assert find_gpu("MI300X").memory_bytes > 974.0e9 / 5
    assert not valid_tp(llama405.main.config, 5) and not valid_tp(llama405.main.config, 6)


def test_kv_cache_at_a_context_changes_the_seed_table(llama405):
    """The full model (documented overhead + KV cache) instead of x1.2: fewer MI300X at 4k, more at 128k."""
    gpus = HardwareQuery(gpus=("MI300X", "H100 SXM"))
    short = evaluate(llama405, Workload(context=4096, precisions=("bf16", "int4")), gpus)
    long = evaluate(llama405, Workload(context=131072, precisions=("bf16", "int4")), gpus)
    for workload, fit in ((Workload(context=4096), short), (Workload(context=131072), long)):
        expected = _fewest_single_node(llama405, "bf16", workload, "MI300X")
        assert fit.fit_for("MI300X", "bf16").count == expected
    # 811.7 GB of BF16 weights over 4 MI300X is 202.9 GB each: fits beside 4k tokens of KV, not beside 128k.
    assert short.fit_for("MI300X", "bf16").count == 4
    assert long.fit_for("MI300X", "bf16").count == 8
    assert long.fit_for("MI300X", "bf16").kv_per_gpu_bytes == kv.kv_cache_bytes_per_gpu(
        llama405.main.config, 131072, 1, "bf16", 8
    )


def test_multi_node_pipeline_stages(llama405):
    """974.0 GB does not fit one node of 8 H100; two nodes of 8 as two pipeline stages of 63 layers do."""
    seed = Workload(overhead=0.2, context=0, precisions=("bf16",))
    fit = evaluate(llama405, seed, HardwareQuery(gpus=("H100 SXM",))).fit_for("H100", "bf16")
    usable = find_gpu("H100 SXM").memory_bytes
    assert memory.per_gpu(llama405, "bf16", seed, 8).total_bytes > usable
    assert fit.layout == Layout(8, 2) and fit.count == 16
    # Busiest stage: 63 layers + final norm + output head (vocab x hidden BF16), split over TP 8.
    config = real_config("meta-llama/Llama-3.1-405B")
    layers = memory.layer_bytes(llama405, "bf16")
    assert len(layers) == 126 and len(set(layers)) == 1
    head = config["vocab_size"] * config["hidden_size"] * 2 + config["hidden_size"] * 2
    weights = math.ceil((63 * layers[0] + head) / 8)
    assert fit.weights_per_gpu_bytes == weights
    assert fit.overhead_per_gpu_bytes == round(weights * 8 * 0.2 / 8)
    assert fit.detail.pp == 2


# ---- tensor parallelism ---------------------------------------------------------------------------------
def test_valid_tp_sizes():
    llama = ModelConfig(real_config("meta-llama/Llama-2-70b-hf"))  # 64 heads, 8 KV heads
    assert [t for t in range(1, 9) if valid_tp(llama, t)] == [1, 2, 4, 8]
    qwen = ModelConfig(real_config("Qwen/Qwen2.5-0.5B"))  # 14 heads, 2 KV heads
    assert (qwen.num_attention_heads, qwen.num_key_value_heads) == (14, 2)
    # 4 and 8 do not divide 14 heads; 7 divides the heads but is not a multiple of the 2 KV heads.
    assert [t for t in range(1, 9) if valid_tp(qwen, t)] == [1, 2]


def test_heads_not_divisible_limits_devices(fake_hub):
    report = _analyze("Qwen/Qwen2.5-0.5B")
    fit = evaluate(report, Workload(precisions=("bf16",)), HardwareQuery(gpus=("4090",), count=4))
    row = fit.fit_for("4090", "bf16")
    # 4 devices cannot be TP 4 (14 heads): TP 2 x 2 pipeline stages.
    assert row.layout == Layout(2, 2)
    with pytest.raises(UsageError, match="pipeline stages"):
        evaluate(report, Workload(precisions=("bf16",)), HardwareQuery(gpus=("4090",), count=1000))


def test_kv_heads_replicated_when_tp_exceeds_them(qwen3_moe):
    config = real_config("Qwen/Qwen3-30B-A3B")
    layers, kv_heads, head_dim = (
        config["num_hidden_layers"],
        config["num_key_value_heads"],
        config["head_dim"],
    )
    assert (layers, kv_heads, head_dim, config["num_attention_heads"]) == (48, 4, 128, 32)
    context = 8192
    fit = evaluate(
        qwen3_moe, Workload(context=context, precisions=("bf16",)), HardwareQuery(gpus=("H100",), count=8)
    )
    row = fit.fit_for("H100", "bf16")
    assert row.layout == Layout(8, 1)
    # vLLM: max(1, 4 // 8) = 1 KV head per rank, K and V, 2 bytes: 8 ranks hold 8 heads where 4 would do.
    per_rank = layers * 1 * head_dim * 2 * 2 * context
    assert row.kv_per_gpu_bytes == per_rank
    assert row.kv_replicated_bytes == per_rank * 8 - layers * kv_heads * head_dim * 2 * 2 * context
    assert row.kv_replicated_bytes == 805_306_368


def test_mla_latent_replicated_on_every_rank(fake_hub):
    report = _analyze("deepseek-ai/DeepSeek-V3")
    context = 4096
    fit = evaluate(
        report, Workload(context=context, precisions=("int4",)), HardwareQuery(gpus=("H100",), count=8)
    )
    row = fit.fit_for("H100", "int4")
    # DeepSeek-V3: (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes x 61 layers = 70,272 B per token
    # (the figure hubfit's KV model is checked against), not split across TP ranks.
    assert row.kv_per_gpu_bytes == 70_272 * context
    assert row.kv_replicated_bytes == 7 * 70_272 * context


def test_tensor_groups_give_exactly_the_memory_modules_bytes(qwen3_moe, llama405):
    """fit.py groups tensors for speed (18k in Qwen3-30B-A3B); the bytes must equal hubfit.memory's."""
    for report in (qwen3_moe, llama405):
        tensors = TensorGroups.of(report)
        for name in ("stored", "bf16", "int4", "Q4_K", 2.5):
            prec = memory.precision(name)
            model = Sizer(report, Workload(), prec, tensors)
            assert model.weights == memory.weights_bytes(report, prec)
            assert model.layers == memory.layer_bytes(report, prec)


# ---- Apple silicon ------------------------------------------------------------------------------------
def test_apple_unified_memory_view(llama70):
    fit = evaluate(llama70, Workload(precisions=("bf16", "int8")), HardwareQuery(gpus=("M4 Max",)))
    ram = find_gpu("M4 Max").memory_bytes
    bf16, int8 = fit.fit_for("M4 Max", "bf16"), fit.fit_for("M4 Max", "int8")
    # 138 GB of BF16 weights exceed the 128 GiB of RAM: no setting helps.
    assert memory.weights_bytes(llama70, "bf16") > ram
    assert bf16.count == 0 and bf16.unified.verdict == "exceeds_ram" and bf16.offload is None
    # INT8 fits in the default GPU working set, 75 % of RAM.
    assert int8.count == 1 and int8.unified.verdict == "fits"
    assert int8.unified.gpu_working_set_bytes == ram * 3 // 4
    # With the GPU limited to half the RAM, INT8 needs iogpu.wired_limit_mb raised to its size in MiB.
    half = evaluate(
        llama70, Workload(precisions=("int8",)), HardwareQuery(gpus=("M4 Max",), apple_gpu_share=0.5)
    )
    row = half.fit_for("M4 Max", "int8")
    needed = memory.per_gpu(llama70, "int8", Workload(), 1).total_bytes
    assert row.per_gpu_bytes == needed and ram // 2 < needed < ram
    assert row.unified.verdict == "raise_wired_limit"
    assert row.unified.wired_limit_mb == math.ceil(needed / 2**20)


# ---- best bits per weight ---------------------------------------------------------------------------------
def test_best_bpw_llama2_70b_on_one_24gb_card(llama70):
    """ExLlamaV2: Llama 2 70B runs on a single 24 GB GPU with 2,048 tokens of context at 2.55 bpw."""
    workload = Workload(context=2048)
    card = evaluate(llama70, workload, HardwareQuery(gpus=("RTX 4090",), count=1)).best_bpw[0]
    assert card.context == 2048 and card.count == 1
    # hubfit's memory for the published 2.55 bpw mix fits the card, and the best is near it (not the 2.9-3.0 a
    # weights-only estimate gives: 24564 MiB x 8 / 68.98e9 parameters = 2.99 bpw).
    assert memory.per_gpu(llama70, 2.55, workload, 1).total_bytes <= find_gpu("RTX 4090").memory_bytes
    assert 2.55 <= card.bpw <= 2.75
    assert round(card.bpw / 0.05, 6) == round(card.bpw / 0.05)  # steps of 0.05
    # On a card of exactly 24 GB (10^9 bytes) the best mix is 2.5 bpw.
    exact = evaluate(llama70, workload, HardwareQuery(gpu_memory=24 * 10**9)).best_bpw[0]
    assert abs(exact.bpw - 2.55) <= 0.1
    # The best GGUF type is the one with most bits that fits; the next one up does not.
    usable = find_gpu("RTX 4090").memory_bytes
    types = sorted(
        (p for p in map(memory.precision, memory.precision_names()) if p.family == "gguf"),
        key=lambda p: -p.bits,
    )
    fitting = [p.name for p in types if memory.per_gpu(llama70, p, workload, 1).total_bytes <= usable]
    assert card.gguf_type == fitting[0]


# ---- longest context -----------------------------------------------------------------------------------
def test_longest_context(llama70):
    workload = Workload(precisions=("int4",))
    # On one 36 GiB card the INT4 weights leave room for about 3k tokens: the largest context that fits.
    one = HardwareQuery(gpu_memory=36 * 2**30, count=1)
    row = evaluate(llama70, workload, one).fit_for("custom", "int4")
    m = row.max_context
    assert 0 < m < 4096
    assert memory.per_gpu(llama70, "int4", Workload(context=m), 1).total_bytes <= 36 * 2**30
    assert memory.per_gpu(llama70, "int4", Workload(context=m + 1), 1).total_bytes > 36 * 2**30
    # On an A100 80GB it is capped at the model's max_position_embeddings (4096 for Llama 2).
    a100 = evaluate(llama70, workload, HardwareQuery(gpus=("A100 80GB",))).fit_for("A100 80GB", "int4")
    assert a100.max_context == real_config("meta-llama/Llama-2-70b-hf")["max_position_embeddings"] == 4096


# ---- decode upper bound ---------------------------------------------------------------------------------
def test_decode_tokens_per_s_upper_bound(llama70, gpt_oss):
    fit = evaluate(llama70, Workload(context=4096, precisions=("bf16",)), HardwareQuery(gpus=("H200",)))
    row = fit.fit_for("H200", "bf16")
    assert row.count == 1
    # Every weight byte and the whole KV cache read once per token at 4.8 TB/s.
    read = memory.weights_bytes(llama70, "bf16") + kv.kv_cache_bytes(llama70.main.config, 4096, 1, "fp16")
    assert row.decode_tokens_per_s == round(4.8e12 / read, 2)
    # MoE: only the active parameters' share of the weights is read (gpt-oss-20b: 4 of 32 experts).
    moe = evaluate(gpt_oss, Workload(context=4096, precisions=("stored",)), HardwareQuery(gpus=("H100",)))
    row = moe.fit_for("H100", "stored")
    params = gpt_oss.main.parameters
    active = math.ceil(memory.weights_bytes(gpt_oss, "stored") * params.active / params.total)
    read = active + kv.kv_cache_bytes(gpt_oss.main.config, 4096, 1, "bf16")
    assert params.active < params.total / 4
    assert row.decode_tokens_per_s == round(3.35e12 / read, 2)


# ---- offload (llama.cpp -ngl) -----------------------------------------------------------------------------
def test_offload_layers_when_it_does_not_fit(llama70):
    workload = Workload(context=4096, precisions=("bf16",))
    row = evaluate(llama70, workload, HardwareQuery(gpus=("RTX 4090",), count=1)).fit_for("4090", "bf16")
    assert not row.fits and row.count == 1 and row.max_context == 0 and row.decode_tokens_per_s is None
    off = row.offload
    layers = memory.layer_bytes(llama70, "bf16")
    per_layer_kv = kv.kv_cache_bytes(llama70.main.config, 4096, 1, "fp16") // len(layers)
    usable = find_gpu("RTX 4090").memory_bytes

    def on_gpu(k: int) -> int:  # k trailing layers, their KV cache, the GPU's overhead
        weights = sum(layers[len(layers) - k :])
        return weights + k * per_layer_kv + memory.overhead_parts(llama70, weights, workload, 1).total

    assert off.layers_total == 80
    assert on_gpu(off.layers_on_gpu) <= usable < on_gpu(off.layers_on_gpu + 1)
    total = memory.weights_bytes(llama70, "bf16") + kv.kv_cache_bytes(llama70.main.config, 4096, 1, "fp16")
    assert off.gpu_bytes + off.cpu_bytes == total


# ---- the query, JSON and rendering ---------------------------------------------------------------------------
def test_hardware_query_validation(llama70):
    with pytest.raises(UsageError):
        HardwareQuery(count=0)
    with pytest.raises(UsageError):
        HardwareQuery(apple_gpu_share=1.5)
    with pytest.raises(UnknownGPUError):
        evaluate(llama70, Workload(), HardwareQuery(gpus=("rtx 4900",)))
    # --gpu-memory with --gpu overrides the card's memory.
    (gpu,) = HardwareQuery(gpus=("4090",), gpu_memory=20 * 2**30).devices()
    assert gpu.memory_bytes == 20 * 2**30 and gpu.name == "RTX 4090"


def test_json_matches_the_issue(llama70):
    fit = evaluate(llama70, Workload(precisions=("bf16", "int4")), HardwareQuery(gpus=("H100", "4090")))
    data = fit.to_dict()
    assert set(data["fits"][0]) == {
        "gpu", "gpu_memory_bytes", "precision", "count", "per_gpu_bytes", "max_context", "decode_tokens_per_s"
    }  # fmt: skip
    assert set(data["best_bpw"][0]) == {"gpu", "count", "context", "bpw", "gguf_type"}
    assert len(data["fits"]) == 4 and len(data["best_bpw"]) == 2 == len({b["gpu"] for b in data["best_bpw"]})
    first = data["fits"][0]
    assert first["gpu"] == "H100 SXM 80GB" and first["gpu_memory_bytes"] == 85_520_809_984
    assert isinstance(first["count"], int) and isinstance(first["decode_tokens_per_s"], float)
    assert len(data["fit_details"]) == len(data["fits"])
    # The report carries the section.
    out = Report.of(llama70, fit=fit).to_dict()
    assert out["fits"] == data["fits"] and out["best_bpw"] == data["best_bpw"]


def test_default_set_spans_classes(llama70):
    fit = evaluate(llama70, Workload(precisions=("int4",)))
    classes = {row.gpu_class for row in fit.fit_details}
    assert classes == {"consumer", "workstation", "datacenter", "apple"}


def test_render_text_one_line_per_gpu_colour_only_when_asked(llama70):
    fit: FitReport = evaluate(
        llama70, Workload(precisions=("bf16", "int4")), HardwareQuery(gpus=("4090", "H100"))
    )
    plain = render_text(fit, color=False)
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    gpu_lines = [line for line in lines if line.startswith("  RTX 4090") or line.startswith("  H100")]
    assert len(gpu_lines) == 2
    assert "  consumer" in lines and "  data centre" in lines
    h100 = next(line for line in lines if line.startswith("  H100"))
    assert h100.split()[-2:] == ["2x", "1x"]  # bf16, int4
    coloured = render_text(fit, color=True)
    assert "\x1b[32m" in coloured and "\x1b[0m" in coloured
    md = render_markdown(fit)
    assert "| H100 SXM 80GB |" in md and "\x1b[" not in md


# ---- the command line ------------------------------------------------------------------------------------
def _hubfit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "hubfit"), *args], capture_output=True, text=True, timeout=120
    )


def test_cli_gpus_lists_the_catalog():
    rows = json.loads(_hubfit("gpus", "--json").stdout)
    assert len(rows) >= 30 and all(set(row["source"]) >= {"memory", "bandwidth", "tflops"} for row in rows)
    apple = next(row for row in rows if row["id"] == "m4-max-128gb")
    assert apple["usable_bytes"] == apple["memory_bytes"] * 3 // 4
    text = _hubfit("gpus", "--apple-gpu-share", "0.5").stdout
    assert "RTX 4090" in text and "64.00 of 128" in text and "\x1b[" not in text


def test_cli_fit_flags(hub):
    result = _hubfit(
        "meta-llama/Llama-2-70b-hf",
        "--token",
        TOKEN,
        "--gpu",
        "rtx4090",
        "--gpus",
        "1",
        "--context",
        "2048",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["gpu"] for row in data["fits"]] == ["RTX 4090"] * len(data["estimates"])
    assert all(row["count"] == 1 for row in data["fits"])
    (best,) = data["best_bpw"]
    assert best["context"] == 2048 and 2.55 <= best["bpw"] <= 2.75
    flags = ("--token", TOKEN, "--gpu-memory", "80GiB", "--precision", "int4")
    text = _hubfit("meta-llama/Llama-2-70b-hf", *flags)
    assert "1x custom 80 GiB" in text.stdout
    details = _hubfit("meta-llama/Llama-2-70b-hf", *flags, "--details")
    assert "custom 80 GiB" in details.stdout and "GPU fit" in details.stdout


def test_cli_unknown_gpu_fails_before_any_hub_request(hub):
    result = _hubfit("meta-llama/Llama-2-70b-hf", "--token", TOKEN, "--gpu", "rtx 4900")
    assert result.returncode == 2
    assert result.stderr.startswith("hubfit: error: unknown GPU 'rtx 4900'; did you mean RTX 4090")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not hub.log
    bad = _hubfit("meta-llama/Llama-2-70b-hf", "--gpu-memory", "lots")
    assert bad.returncode == 2 and "invalid size 'lots'" in bad.stderr


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    from hubfit.cli import commands as cli

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(sys, "stdout", Tty())
    assert cli._use_colour() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli._use_colour() is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert cli._use_colour() is False


# ---- rules each tested alone (a mutation of one rule must fail a test) -----------------------------------
def _config(**overrides: object) -> ModelConfig:
    """Llama-2-70B's real config with one field changed (the change is the rule under test)."""
    return ModelConfig({**real_config("meta-llama/Llama-2-70b-hf"), **overrides})


def test_tp_kv_head_rule_alone():
    """64 heads and 28,672-wide MLP divide by 4, but 6 KV heads neither divide by 4 nor 4 by them: refused.

    With 8 KV heads (the real value) the same TP is accepted, so only the KV-head rule decides."""
    assert valid_tp(_config(num_key_value_heads=8), 4)
    assert not valid_tp(_config(num_key_value_heads=6), 4)
    # tp above the KV heads is fine when it is a multiple of them (each rank replicates one head) ...
    assert valid_tp(_config(num_key_value_heads=2), 8)
    # ... and refused when it is not (48 heads divide by 8; 8 is not a multiple of 6 KV heads)
    assert not valid_tp(_config(num_key_value_heads=6, num_attention_heads=48), 8)


def test_tp_intermediate_size_rule_alone():
    """Heads (64) and KV heads (8) divide by 8; an MLP of 28,676 does not: refused; 28,672 (real): accepted."""
    assert valid_tp(_config(), 8)
    assert not valid_tp(_config(intermediate_size=28676), 8)
    assert valid_tp(_config(intermediate_size=28676), 4)  # 28,676 = 4 x 7,169


def test_decode_tokens_per_s_divides_the_weights_over_tp(llama70):
    """At TP 2 each GPU reads half the weights (and its rank's KV cache) per token: about twice TP 1's rate.

    A fixed count of 2 RTX 6000 Ada (48 GiB each) holds int4 Llama-2-70B at 4k tokens as TP 2."""
    fit = evaluate(
        llama70, Workload(context=4096, precisions=("int4",)), HardwareQuery(gpus=("RTX 6000 Ada",), count=2)
    )
    row = fit.fit_for("RTX 6000 Ada", "int4")
    assert row.fits and row.layout == Layout(2, 1)
    gpu = find_gpu("RTX 6000 Ada")
    weights = memory.weights_bytes(llama70, "int4")
    read = math.ceil(weights / 2) + kv.kv_cache_bytes_per_gpu(llama70.main.config, 4096, 1, "fp16", 2)
    assert row.decode_tokens_per_s == round(gpu.bandwidth_bytes_per_s / read, 2)
    # not the single-GPU read: a rule that ignores TP would give about half this rate
    single = weights + kv.kv_cache_bytes(llama70.main.config, 4096, 1, "fp16")
    assert row.decode_tokens_per_s > 1.9 * gpu.bandwidth_bytes_per_s / single
