"""The memory model (hubfit.memory): precisions, kept-high tensors, the seed formula, overhead, per-GPU shares.

Reports are built from real configs with the fixtures' documented tensor-naming rules (fixtures/families.py):
safetensors headers -> hubfit.params.inventory -> Report, without the network. Expected values are quoted from
issue 3 or computed here from the config by the rule written beside them.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from importlib import resources

import pytest
import yaml

from fixtures.build import header
from fixtures.catalog import CONFIGS_DIR, model_dir
from fixtures.families import llama_tensors
from hubfit.errors import UsageError
from hubfit.formats.safetensors import validate_header
from hubfit.model.component import Model, component_from_headers
from hubfit.model.config import ModelConfig
from hubfit.sizing import memory, rules


def raw_config(repo_id: str) -> dict:
    path = model_dir(repo_id) / "config.json"
    if not path.exists():
        path = CONFIGS_DIR / f"{repo_id.replace('/', '__')}.json"
    return json.loads(path.read_text())


def llama_report(repo_id: str, dtype: str, **rules: bool) -> Model:
    """A one-file Report of a Llama-family checkpoint named by the fixtures' rules for `repo_id`'s config."""
    raw = raw_config(repo_id)
    info = validate_header(
        header(llama_tensors(raw, dtype=dtype, **rules)), filename="model.safetensors", length=0
    )
    part = component_from_headers([info], ModelConfig(raw))
    return Model(repo_id, "main", None, "local", [part])


@pytest.fixture(scope="module")
def llama70() -> Model:
    return llama_report("meta-llama/Llama-2-70b-hf", "F16", inv_freq=True)


def _overhead(name: str):
    text = resources.files("hubfit").joinpath("data/precisions.yaml").read_text()
    return yaml.safe_load(text)["overhead"][name]["value"]


# ---- the seed formula --------------------------------------------------------------------------------------


def test_seed_formula_llama31_405b_at_16_bits_is_974_gb() -> None:
    report = llama_report("meta-llama/Llama-3.1-405B", "BF16")
    # Exact count published for meta-llama/Llama-3.1-405B (Hub safetensors total), = the config's shapes summed.
    assert report.parameters.total == 405_853_388_800
    mem = memory.estimate(report, memory.Workload(precisions=("bf16",), overhead=0.2))
    row = mem.estimates[0]
    assert row.weights_bytes == 2 * 405_853_388_800
    assert row.kv_cache_bytes == 0  # "a fraction of the weights, nothing else"
    assert row.total_bytes == 974_048_133_120  # 405,853,388,800 x 2 B x 1.2
    assert f"{row.total_bytes / 1e9:.1f} GB" == "974.0 GB"  # issue 3: "hubfit shows 974.0 GB"
    # the seed article's own arithmetic with P = 405e9: 972 GB
    assert round(405e9 * 2 * 1.2 / 1e9) == 972


def test_seed_mode_refuses_a_context() -> None:
    with pytest.raises(UsageError, match="--overhead"):
        memory.Workload(overhead=0.2, context=4096)
    assert memory.Workload(overhead=0.2, context=0).overhead == 0.2


# ---- weights per precision ---------------------------------------------------------------------------------


def test_stored_row_is_the_checkpoint_bytes(llama70: Model) -> None:
    # Llama-2-70b-hf: 68,976,648,192 parameters in F16 (fixtures/README.md), plus 80 F32 inv_freq buffers of 64
    assert llama70.parameters.total == 68_976_648_192
    assert (
        memory.weights_bytes(llama70, "stored") == llama70.weights.bytes == 2 * 68_976_648_192 + 80 * 64 * 4
    )


def test_float_casts_count_every_parameter(llama70: Model) -> None:
    buffers = 80 * 64 * 4  # non-parameter buffers keep their stored bytes
    assert memory.weights_bytes(llama70, "fp32") == 4 * 68_976_648_192 + buffers
    assert memory.weights_bytes(llama70, "BF16") == 2 * 68_976_648_192 + buffers


def _by_role(report: Model) -> dict[str, int]:
    return report.parameters.by_role


def test_int4_keeps_embeddings_head_and_norms_at_16_bits(llama70: Model) -> None:
    roles = _by_role(llama70)
    assert set(roles) == {"linear", "embedding", "lm_head", "norm"}
    # GPTQ/AWQ group 128: 4 bits + (16-bit scale + 4-bit zero) / 128 = 133/32 bits per linear weight
    linear = Fraction(roles["linear"] * 133, 32 * 8)
    kept = 2 * (roles["embedding"] + roles["lm_head"] + roles["norm"])
    assert memory.weights_bytes(llama70, "int4") == math.ceil(linear) + kept + 80 * 64 * 4
    assert memory.precision("int4").bits == Fraction(133, 32)


def test_gguf_types_quantize_embeddings_and_keep_norms_in_f32(llama70: Model) -> None:
    roles = _by_role(llama70)
    matrices = roles["linear"] + roles["embedding"] + roles["lm_head"]
    # ggml block_q4_K: 144 bytes per 256 weights = 4.5 bits; norms F32 (convert_hf_to_gguf)
    assert memory.weights_bytes(llama70, "Q4_K") == matrices * 144 // 256 + 4 * roles["norm"] + 80 * 64 * 4
    assert memory.precision("q8_0").bits == Fraction(17, 2)  # 34 bytes per 32 weights
    assert memory.precision("IQ2_XXS").bits == Fraction(66 * 8, 256)


def test_bpw_rows_follow_exllamav2(llama70: Model) -> None:
    roles = _by_role(llama70)
    # linear layers at the average, lm_head at 6 bits (convert.py -hb default), embeddings and norms at 16
    expected = (
        roles["linear"] * 5 // 16 + roles["lm_head"] * 6 // 8 + 2 * (roles["embedding"] + roles["norm"])
    )
    assert memory.weights_bytes(llama70, 2.5) == expected + 80 * 64 * 4
    mem = memory.estimate(llama70, memory.Workload(precisions=("stored",), bpw=(2.5,)))
    assert [e.precision for e in mem.estimates] == ["stored", "2.5bpw"]


def test_tied_embeddings_count_once() -> None:
    report = llama_report("Qwen/Qwen2.5-0.5B", "BF16", qkv_bias=True)  # tie_word_embeddings: true, no lm_head
    roles = _by_role(report)
    assert "lm_head" not in roles
    assert memory.weights_bytes(report, "bf16") == 2 * report.parameters.total


def test_unknown_precision_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown precision 'int3'"):
        memory.precision("int3")
    with pytest.raises(UsageError, match="--bpw"):
        memory.Workload(bpw=(0.5,))


# ---- the estimate --------------------------------------------------------------------------------------


def test_estimate_rows_and_json_shape(llama70: Model) -> None:
    mem = memory.estimate(llama70)
    assert [e.precision for e in mem.estimates] == ["stored", "fp32", "bf16", "int8", "int4"]
    doc = mem.to_dict()
    # the issue-3 keys, and what the text output shows beside them (KV by layer kind, overhead terms, rules)
    assert set(doc) == {"estimates", "kv_cache", "kv_layers", "overhead", "precisions", "workload"}
    assert set(doc["estimates"][0]) == {
        "precision", "bits_per_weight", "weights_bytes", "kv_cache_bytes", "overhead_bytes", "total_bytes",
    }  # fmt: skip
    # default context 4096 (= Llama-2's max_position_embeddings), fp16 KV for a float16 checkpoint
    assert doc["kv_cache"] == {
        "bytes_per_token": 327_680, "dtype": "fp16", "context": 4096, "batch": 1, "bytes": 1_342_177_280,
    }  # fmt: skip
    for row in mem.estimates:
        assert row.total_bytes == row.weights_bytes + row.kv_cache_bytes + row.overhead_bytes
        assert row.kv_cache_bytes == 1_342_177_280
    bf16 = mem.estimates[2]
    assert bf16.bits_per_weight == round(bf16.weights_bytes * 8 / 68_976_648_192, 3)


def test_default_context_is_capped_at_the_model_maximum() -> None:
    llama = ModelConfig(raw_config("meta-llama/Llama-2-70b-hf"))
    assert memory.resolve_context(llama, memory.Workload()) == 4096
    whisper = ModelConfig(raw_config("openai/whisper-large-v3"))
    assert memory.resolve_context(whisper, memory.Workload()) == 448  # max_target_positions
    assert memory.resolve_context(llama, memory.Workload(context=0)) == 0


def test_cuda_context_sits_in_the_measured_range(llama70: Model) -> None:
    """The fixed per-GPU term against measurements, not against itself: a CUDA context with lazy module loading
    is 287,047,680 B and 666,632,192 B eager (pytorch/pytorch#86509, research note training-memory.md section 5),
    and torch's cuBLAS workspaces add 8-32 MiB per handle on top."""
    fixed = _overhead("cuda_context_bytes")
    assert 287_047_680 + 8 * 2**20 <= fixed <= 666_632_192 + 2 * 32 * 2**20
    assert fixed == memory.overhead_parts(llama70, 0, memory.Workload(context=0)).fixed


def test_documented_overhead_model(llama70: Model) -> None:
    fixed = _overhead("cuda_context_bytes")
    # one prefill chunk of min(4096 x 1, 8192) tokens x 2 B x (2 x hidden 8192 + 3 x intermediate 28672)
    activations = 4096 * _overhead("activation_bytes") * (2 * 8192 + 3 * 28672)
    logits = 1 * 32000 * 4 * 2  # batch x vocab x float32 x (logits, probabilities)
    slack = round((activations + logits) * Fraction(str(_overhead("allocator_slack"))))
    parts = memory.overhead_parts(llama70, 0, memory.Workload())
    assert (parts.fixed, parts.activations, parts.logits, parts.slack) == (fixed, activations, logits, slack)
    assert memory.overhead_bytes(llama70, 0, memory.Workload()) == fixed + activations + logits + slack
    # the chunk caps the workspace: 32k tokens x batch 4 prefill 8192 tokens at a time
    long = memory.overhead_parts(llama70, 0, memory.Workload(context=32768, batch=4))
    assert long.activations == 8192 * 2 * (2 * 8192 + 3 * 28672)
    # weights only: no KV, no activations, the fixed part stays
    assert memory.overhead_bytes(llama70, 0, memory.Workload(context=0)) == fixed


def test_moe_workspace_uses_the_experts_a_token_visits() -> None:
    config = ModelConfig(raw_config("Qwen/Qwen3-30B-A3B"))
    # 8 routed experts per token x moe_intermediate_size 768 (no shared expert)
    assert rules._ffn_width(config) == 8 * 768
    deepseek = ModelConfig(raw_config("deepseek-ai/DeepSeek-V3"))
    # 8 x 2048 routed + 1 shared x 2048, against the 18432-wide dense layers of the first 3 layers
    assert rules._ffn_width(deepseek) == max(8 * 2048 + 2048, 18432)


# ---- per GPU and per layer -----------------------------------------------------------------------------


def test_per_gpu_share_with_tensor_parallelism(llama70: Model) -> None:
    work = memory.Workload()
    one = memory.per_gpu(llama70, "bf16", work, tp=1)
    eight = memory.per_gpu(llama70, "bf16", work, tp=8)
    assert eight.weights_bytes == math.ceil(one.weights_bytes / 8)
    assert eight.kv_cache_bytes == one.kv_cache_bytes // 8  # 8 KV heads, one per GPU
    assert eight.overhead.fixed == one.overhead.fixed  # every GPU has its own context
    assert eight.overhead.activations == 4096 * 2 * (2 * 8192 + 3 * 28672 // 8)
    assert eight.total_bytes == eight.weights_bytes + eight.kv_cache_bytes + eight.overhead_bytes
    seed = memory.per_gpu(llama70, "bf16", memory.Workload(overhead=0.2), tp=4)
    assert (seed.kv_cache_bytes, seed.overhead_bytes) == (0, round(math.ceil(one.weights_bytes / 4) * 0.2))


def test_layer_bytes_for_partial_offload(llama70: Model) -> None:
    layers = memory.layer_bytes(llama70, "Q4_K")
    assert len(layers) == 80 and len(set(layers)) == 1
    # one layer: q,o 8192x8192, k,v 1024x8192, gate/up/down 28672x8192 at 4.5 bits; 2 norms F32; inv_freq F32
    linear = 2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192
    assert layers[0] == linear * 9 // 16 + 2 * 8192 * 4 + 64 * 4
    outside = memory.weights_bytes(llama70, "Q4_K") - sum(layers)
    assert outside == 2 * 32000 * 8192 * 9 // 16 + 8192 * 4  # embedding, lm_head, final norm


# ---- through analyze() and the command line (the fake Hub of tests/conftest.py) --------------------------


def test_analyze_with_a_workload_fills_report_memory() -> None:
    from fixtures.catalog import TOKEN_GRANTED
    from hubfit.pipeline import analyze
    from hubfit.render.report import to_markdown, to_text

    work = memory.Workload(precisions=("bf16",), overhead=0.2)
    report = analyze("meta-llama/Llama-3.1-405B", token=TOKEN_GRANTED, workload=work)
    doc = report.to_dict()
    assert doc["estimates"][0]["total_bytes"] == 974_048_133_120
    assert doc["kv_cache"]["bytes"] == 0
    assert "| bf16 | 16 | 811.7 | 0.00 | 162.3 | 974.0 | 907.2 |" in to_markdown(report)
    assert "974.0" in to_text(report)


def test_cli_memory_flags() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fixtures.catalog import TOKEN_GRANTED

    def hubfit(*args: str) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).parent / "hubfit"
        return subprocess.run(
            [str(exe), *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
        )

    model = ("meta-llama/Llama-2-70b-hf", "--token", TOKEN_GRANTED)
    done = hubfit(*model, "--json", "--context", "4096", "--kv-dtype", "fp8", "--precision", "Q4_K")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kv_cache"] == {
        "bytes_per_token": 163_840, "dtype": "fp8", "context": 4096, "batch": 1, "bytes": 671_088_640,
    }  # fmt: skip
    assert [e["precision"] for e in doc["estimates"]] == ["Q4_K"]
    bad = hubfit(*model, "--batch", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("hubfit: error: --batch must be at least 1")


def test_cuda_context_is_the_documented_half_gib_within_its_cited_measurements(llama70: Model) -> None:
    """The fixed part of the overhead, checked against its sources rather than against the data file.

    data/precisions.yaml documents 0.5 GiB per GPU: about 300 MB of CUDA context with lazy loading
    (pytorch/pytorch#107667; 300-700 MB in #28113) plus kernels and workspaces, inside the 0.13-0.55 GiB of
    non-torch memory vLLM measured per H100 (llm-d empirical results, shared/research/estimators.md 2.11).
    """
    fixed = memory.overhead_parts(llama70, 0, memory.Workload(context=0)).fixed
    assert fixed == 512 * 2**20
    assert 300e6 <= fixed <= 0.55 * 2**30
    # on every GPU of a tensor-parallel layout, not split
    assert memory.overhead_parts(llama70, 0, memory.Workload(context=0), tp=8).fixed == fixed
