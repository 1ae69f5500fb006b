"""KV cache per layer (hubfit.kv) against the issue's exact figures, from the real configs in fixtures/.

Every expected value is either quoted from issue 3 ("Checked against reality") or computed in the test from the
config's own fields by the rule named beside it (vLLM's per-layer page sizes, research notes
shared/research/estimators.md section 2.11).
"""

from __future__ import annotations

import json

import pytest

from fixtures.catalog import CONFIGS_DIR, model_dir
from hubfit.errors import UsageError
from hubfit.model.config import ModelConfig
from hubfit.sizing import kv


def real(repo_id: str) -> ModelConfig:
    """A real config.json: fixtures/models/<org>__<name>/config.json, else fixtures/configs/<org>__<name>.json."""
    path = model_dir(repo_id) / "config.json"
    if not path.exists():
        path = CONFIGS_DIR / f"{repo_id.replace('/', '__')}.json"
    return ModelConfig(json.loads(path.read_text()))


# ---- the four figures (batch 1, 16-bit KV) ---------------------------------------------------------


def test_llama2_70b_gqa_4096_tokens() -> None:
    cfg = real("meta-llama/Llama-2-70b-hf")
    # issue 3: 80 layers x 8 KV heads x 128 x 2 x 2 B = 327,680 B per token; 1,342,177,280 B at 4,096 tokens
    assert kv.kv_bytes_per_token(cfg, "fp16") == 327_680
    assert kv.kv_cache_bytes(cfg, 4096, 1, "fp16") == 1_342_177_280
    assert {type(s) for s in kv.kv_specs(cfg)} == {kv.FullAttention}


def test_deepseek_v3_mla_bytes_per_token() -> None:
    cfg = real("deepseek-ai/DeepSeek-V3")
    # issue 3: 61 layers x (512 + 64) x 2 B = 70,272 B per token (the GQA formula would give 61 x 2 x 128 x 128 x 2)
    assert kv.kv_bytes_per_token(cfg, "bf16") == 70_272
    assert all(isinstance(s, kv.MLAAttention) for s in kv.kv_specs(cfg))
    assert kv.kv_cache_bytes(cfg, 4096, 1, "bf16") == 70_272 * 4096


def test_gemma2_9b_alternates_sliding_and_global_layers() -> None:
    cfg = real("google/gemma-2-9b")
    # issue 3: 21 global layers x 8,192 + 21 sliding layers x 4,096 tokens, x 8 KV heads x 256 x 2 x 2 B
    assert kv.kv_cache_bytes(cfg, 8192, 1, "bf16") == 2_113_929_216
    specs = kv.kv_specs(cfg)
    assert [s.kind for s in specs[:4]] == ["sliding", "full", "sliding", "full"]  # layer 0 is local (Gemma 2)
    assert sum(isinstance(s, kv.SlidingWindow) for s in specs) == 21
    # below the window every layer holds the whole context: 42 x 8 x 256 x 2 x 2 B per token
    assert kv.kv_cache_bytes(cfg, 4096, 1, "bf16") == 42 * 8 * 256 * 2 * 2 * 4096


def test_gpt_oss_20b_layer_types_with_a_128_token_window() -> None:
    cfg = real("openai/gpt-oss-20b")
    # issue 3: 204,472,320 B at 8,192 tokens (12 full layers x 8,192 + 12 sliding x 128, x 8 x 64 x 2 x 2 B)
    assert kv.kv_cache_bytes(cfg, 8192, 1, "bf16") == 204_472_320
    assert sum(s.kind == "sliding" for s in kv.kv_specs(cfg)) == 12


# ---- other layouts ----------------------------------------------------------------------------------------


def test_mistral_style_single_window_for_every_layer() -> None:
    cfg = real("mistralai/Mistral-7B-v0.1")  # sliding_window 4096, no layer_types
    per_token = 32 * 8 * 128 * 2 * 2  # 32 layers x 8 KV heads x 128 x K,V x 2 B
    assert kv.kv_cache_bytes(cfg, 32768, 1, "bf16") == per_token * 4096
    assert kv.kv_cache_bytes(cfg, 1000, 1, "bf16") == per_token * 1000


def test_qwen3_moe_window_disabled_by_use_sliding_window_false() -> None:
    cfg = real("Qwen/Qwen3-30B-A3B")  # "use_sliding_window": false, "sliding_window": null
    assert kv.kv_bytes_per_token(cfg, "bf16") == 48 * 4 * 128 * 2 * 2
    assert all(isinstance(s, kv.FullAttention) for s in kv.kv_specs(cfg))


def test_qwen3_next_gated_deltanet_state_is_fixed_per_sequence() -> None:
    cfg = real("Qwen/Qwen3-Next-80B-A3B-Instruct")  # full_attention_interval 4, bf16
    specs = kv.kv_specs(cfg)
    assert [s.kind for s in specs[:4]] == ["state", "state", "state", "full"]
    # only the 12 full-attention layers grow with the context: 12 x 2 x 256 x 2 x 2 B
    assert kv.kv_bytes_per_token(cfg, "bf16") == 24_576
    # vLLM gated_delta_net_state_shape: conv (2*16*128 + 32*128) x (4 - 1), recurrent 32 x 128 x 128, bf16
    state = ((2 * 16 * 128 + 32 * 128) * 3 + 32 * 128 * 128) * 2
    assert kv.kv_cache_bytes(cfg, 1000, 2, "bf16") == 2 * (36 * state + 24_576 * 1000)


def test_jamba_mamba_layers_and_attention_period() -> None:
    cfg = real("ai21labs/Jamba-v0.1")  # attn_layer_period 8, offset 4; mamba d_state 16, d_conv 4, expand 2
    specs = kv.kv_specs(cfg)
    assert [s.layer for s in specs if s.kind == "full"] == [4, 12, 20, 28]
    # vLLM mamba1_state_shape: conv (2 x 4096) x (4 - 1), ssm (2 x 4096) x 16, bf16
    per_layer = (8192 * 3 + 8192 * 16) * 2
    assert kv.kv_cache_bytes(cfg, 2048, 1, "bf16") == 28 * per_layer + 4 * 8 * 128 * 2 * 2 * 2048


def test_ssm_state_in_float32_when_the_config_says_so() -> None:
    base = {
        "model_type": "qwen3_5_text",
        "hidden_size": 4096,
        "num_hidden_layers": 4,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "layer_types": ["linear_attention"] * 3 + ["full_attention"],
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 32,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "torch_dtype": "bfloat16",
    }
    bf16 = kv.kv_cache_bytes(base, 0 + 1, 1, "bf16")
    fp32 = kv.kv_cache_bytes({**base, "mamba_ssm_dtype": "float32"}, 1, 1, "bf16")
    assert fp32 - bf16 == 3 * 32 * 128 * 128 * 2  # the recurrent state doubles, the conv window does not


def test_whisper_decoder_self_and_cross_attention() -> None:
    cfg = real("openai/whisper-large-v3")  # 32 decoder layers, 20 heads, d_model 1280, 1500 encoder frames
    specs = kv.kv_specs(cfg)
    assert sum(s.kind == "cross" for s in specs) == 32
    per_token = 20 * 64 * 2 * 2  # 20 heads x (1280 / 20) x K,V x 2 B
    # self-attention over the 448 decoded tokens, cross-attention over the 1500 encoder frames
    assert kv.kv_cache_bytes(cfg, 448, 1, "fp16") == 32 * per_token * (448 + 1500)


def test_t5_decoder_uses_d_kv_and_num_layers() -> None:
    cfg = real("google-t5/t5-small")  # num_layers 6 (no num_decoder_layers), num_heads 8, d_kv 64
    # decoder self-attention plus cross-attention over `context` encoder tokens, each 8 x 64 x K,V x 4 B (fp32)
    assert kv.kv_cache_bytes(cfg, 512, 1, "fp32") == 6 * 2 * (8 * 64 * 2 * 4 * 512)


def test_mamba_state_in_the_checkpoint_dtype() -> None:
    cfg = real("state-spaces/mamba-2.8b-hf")  # 64 layers, intermediate 5120, state 16, conv 4, float32
    assert kv.kv_bytes_per_token(cfg, "bf16") == 0
    # vLLM mamba1_state_shape: conv 5120 x (4 - 1) + ssm 5120 x 16 values per layer, 4 B each (float32 model)
    per_sequence = 64 * (5120 * 3 + 5120 * 16) * 4
    assert kv.kv_cache_bytes(cfg, 100_000, 2, "bf16") == 2 * per_sequence
    assert kv.kv_cache_bytes(cfg, 0, 2, "bf16") == 0


def test_encoder_only_and_non_language_models_hold_nothing() -> None:
    bert = real("google-bert/bert-base-uncased")
    assert kv.kv_specs(bert) == []
    assert kv.kv_cache_bytes(bert, 512, 8, "fp16") == 0
    assert kv.kv_specs({"_class_name": "UNet2DConditionModel", "block_out_channels": [320, 640]}) == []


# ---- tensor parallelism ------------------------------------------------------------------------------------


def test_tp_splits_kv_heads_and_counts_replicas() -> None:
    cfg = real("meta-llama/Llama-2-70b-hf")  # 8 KV heads
    whole = kv.kv_cache_bytes(cfg, 4096, 1, "fp16")
    assert kv.kv_cache_bytes_per_gpu(cfg, 4096, 1, "fp16", tp=8) == whole // 8
    assert kv.kv_cache_bytes(cfg, 4096, 1, "fp16", tp=8) == whole
    # tp 16 > 8 KV heads: each rank still holds one head, so the cache is held twice over
    assert kv.kv_cache_bytes_per_gpu(cfg, 4096, 1, "fp16", tp=16) == whole // 8
    assert kv.kv_cache_bytes(cfg, 4096, 1, "fp16", tp=16) == 2 * whole


def test_mla_latent_is_replicated_not_split() -> None:
    cfg = real("deepseek-ai/DeepSeek-V3")
    one = kv.kv_cache_bytes(cfg, 4096, 1, "bf16")
    assert kv.kv_cache_bytes_per_gpu(cfg, 4096, 1, "bf16", tp=8) == one
    assert kv.kv_cache_bytes(cfg, 4096, 1, "bf16", tp=8) == 8 * one


# ---- dtypes and arguments ----------------------------------------------------------------------------------


def test_kv_dtypes_and_batch() -> None:
    cfg = real("meta-llama/Llama-2-70b-hf")
    fp16 = kv.kv_cache_bytes(cfg, 4096, 1, "fp16")
    assert kv.kv_cache_bytes(cfg, 4096, 1, "fp8") * 2 == fp16
    assert kv.kv_cache_bytes(cfg, 4096, 1, "fp32") == 2 * fp16
    assert kv.kv_cache_bytes(cfg, 4096, 3, "bfloat16") == 3 * fp16
    assert kv.kv_cache_bytes(cfg, 0, 1, "fp16") == 0
    assert kv.canonical_kv_dtype("fp8_e4m3") == "fp8"
    assert kv.default_kv_dtype(cfg) == "fp16"  # Llama-2-70b-hf is a float16 checkpoint
    assert kv.default_kv_dtype(real("deepseek-ai/DeepSeek-V3")) == "bf16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4096, 1, "int3"), "unknown KV-cache dtype"),
        ((-1, 1, "fp16"), "--context"),
        ((4096, 0, "fp16"), "--batch"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        kv.kv_cache_bytes(real("meta-llama/Llama-2-70b-hf"), *args)
