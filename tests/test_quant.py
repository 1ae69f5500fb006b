"""Quantized checkpoints: logical parameters behind packed tensors, metadata left out.

Each case is one decoder layer (or one MoE block) with the tensor names, dtypes and shapes the format's
writer produces for a Llama-2-7B-sized projection (hidden 4096, so a q_proj holds 4096 x 4096 weights) or, for
MXFP4, gpt-oss-20b's expert block (32 experts, hidden 2880, fused gate_up 5760). The expected count is the
logical weight count ``in x out`` of the layer: a format that counted packed elements, or counted scales, fails.
Sources of the layouts are listed in fixtures/README.md ("quantization layouts").
"""

from __future__ import annotations

import json

import pytest
from stfile import write

import hubfit

Q = "model.layers.0.self_attn.q_proj."
NORM = {"model.layers.0.input_layernorm.weight": ("F16", [4096])}


def analyze_dir(tmp_path, config: dict, tensors: dict, extra_files: dict | None = None):
    write(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps(config))
    for name, content in (extra_files or {}).items():
        (tmp_path / name).write_text(json.dumps(content))
    return hubfit.load_model(str(tmp_path))


CASES = {
    "gptq-4bit-g128": (
        {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}},
        {
            Q + "qweight": ("I32", [512, 4096]),
            Q + "qzeros": ("I32", [32, 512]),
            Q + "scales": ("F16", [32, 4096]),
            Q + "g_idx": ("I32", [4096]),
        },
        "gptq",
        4.0,
    ),
    "gptq-3bit": (
        {"quantization_config": {"quant_method": "gptq", "bits": 3, "group_size": 128}},
        {
            Q + "qweight": ("I32", [384, 4096]),
            Q + "qzeros": ("I32", [32, 384]),
            Q + "scales": ("F16", [32, 4096]),
            Q + "g_idx": ("I32", [4096]),
        },
        "gptq",
        3.0,
    ),
    "awq-gemm": (
        {
            "quantization_config": {
                "quant_method": "awq",
                "bits": 4,
                "group_size": 128,
                "zero_point": True,
                "version": "gemm",
            }
        },
        {
            Q + "qweight": ("I32", [4096, 512]),
            Q + "qzeros": ("I32", [32, 512]),
            Q + "scales": ("F16", [32, 4096]),
        },
        "awq",
        4.0,
    ),
    "bnb-nf4-double-quant": (
        {
            "quantization_config": {
                "quant_method": "bitsandbytes",
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True,
            }
        },
        {
            Q + "weight": ("U8", [8388608, 1]),
            Q + "weight.absmax": ("U8", [262144]),
            Q + "weight.quant_map": ("F32", [16]),
            Q + "weight.nested_absmax": ("F32", [1024]),
            Q + "weight.nested_quant_map": ("F32", [256]),
            Q + "weight.quant_state.bitsandbytes__nf4": ("U8", [117]),
        },
        "bitsandbytes",
        4.0,
    ),
    "compressed-tensors-w4a16": (
        {
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {
                            "num_bits": 4,
                            "type": "int",
                            "group_size": 128,
                            "strategy": "group",
                            "symmetric": True,
                        },
                    }
                },
                "ignore": ["lm_head"],
            }
        },
        {
            Q + "weight_packed": ("I32", [4096, 512]),
            Q + "weight_scale": ("BF16", [4096, 32]),
            Q + "weight_shape": ("I64", [2]),
        },
        "compressed-tensors",
        4.0,
    ),
    "fp8-block": (
        {
            "quantization_config": {
                "quant_method": "fp8",
                "fmt": "e4m3",
                "weight_block_size": [128, 128],
                "activation_scheme": "dynamic",
            }
        },
        {Q + "weight": ("F8_E4M3", [4096, 4096]), Q + "weight_scale_inv": ("F32", [32, 32])},
        "fp8",
        8.0,
    ),
    "exl2": (
        {"quantization_config": {"quant_method": "exl2", "bits": 2.5, "head_bits": 6}},
        {
            Q + "q_weight": ("I32", [352, 4096]),
            Q + "q_invperm": ("I32", [4096]),
            Q + "q_perm": ("I32", [4096]),
            Q + "q_scale": ("I32", [16, 512]),
            Q + "q_scale_max": ("F16", [32]),
            Q + "q_groups": ("I16", [64]),
        },
        "exl2",
        2.5,
    ),
    "mlx-4bit": (
        {"quantization": {"group_size": 64, "bits": 4}},
        {
            Q + "weight": ("U32", [4096, 512]),
            Q + "scales": ("BF16", [4096, 64]),
            Q + "biases": ("BF16", [4096, 64]),
        },
        "mlx",
        4.0,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_packed_projection_counts_in_times_out(tmp_path, case):
    config, tensors, method, bits = CASES[case]
    report = analyze_dir(tmp_path, {"model_type": "llama", **config}, {**tensors, **NORM})
    assert report.parameters.total == 4096 * 4096 + 4096
    assert report.parameters.by_role["linear"] == 4096 * 4096
    assert report.quantization.method == method
    assert report.quantization.bits == bits
    # stored elements stay as stored: every tensor of the file is in stored_by_dtype
    stored = sum(report.parameters.stored_by_dtype.values())
    assert stored == sum(t.stored_elements for t in report.tensors)


def test_old_style_quantize_config_json(tmp_path):
    _, tensors, _, _ = CASES["gptq-4bit-g128"]
    report = analyze_dir(
        tmp_path, {"model_type": "llama"}, tensors, {"quantize_config.json": {"bits": 4, "group_size": 128}}
    )
    assert report.parameters.total == 4096 * 4096
    assert report.quantization.method == "gptq" and report.quantization.group_size == 128


def test_mxfp4_experts_count_two_per_byte_and_active_share(tmp_path):
    """gpt-oss-20b's MoE block: 32 experts, 4 per token, fused gate_up (5760) and down, hidden 2880."""
    e = "model.layers.0.mlp.experts."
    tensors = {
        e + "gate_up_proj_blocks": ("U8", [32, 5760, 90, 16]),
        e + "gate_up_proj_scales": ("U8", [32, 5760, 90]),
        e + "gate_up_proj_bias": ("BF16", [32, 5760]),
        e + "down_proj_blocks": ("U8", [32, 2880, 90, 16]),
        e + "down_proj_scales": ("U8", [32, 2880, 90]),
        e + "down_proj_bias": ("BF16", [32, 2880]),
        "model.layers.0.mlp.router.weight": ("BF16", [32, 2880]),
        "model.layers.0.mlp.router.bias": ("BF16", [32]),
    }
    config = {
        "model_type": "gpt_oss",
        "num_local_experts": 32,
        "num_experts_per_tok": 4,
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn"],
        },
    }
    report = analyze_dir(tmp_path, config, tensors)
    experts = 32 * (5760 * 2880 + 5760 + 2880 * 2880 + 2880)
    router = 32 * 2880 + 32
    assert report.parameters.by_role == {"expert": experts, "router": router}
    assert report.parameters.total == experts + router
    # 4 of 32 experts per token
    assert report.parameters.active == experts * 4 // 32 + router


def test_unknown_method_is_reported_and_counted_as_stored(tmp_path):
    report = analyze_dir(
        tmp_path,
        {"quantization_config": {"quant_method": "hqq", "bits": 4}},
        {Q + "weight": ("BF16", [64, 64])},
    )
    assert report.quantization.method == "hqq"
    assert report.parameters.total == 64 * 64


def test_tied_lm_head_stored_and_flagged_counts_once(tmp_path):
    tensors = {"model.embed_tokens.weight": ("BF16", [1000, 64]), "lm_head.weight": ("BF16", [1000, 64])}
    tied = analyze_dir(tmp_path / "tied", {"tie_word_embeddings": True}, tensors)
    assert tied.parameters.total == 64_000
    # no flag (falcon-180B's case): the stored head is its own tensor and counts
    untied = analyze_dir(tmp_path / "noflag", {"model_type": "falcon"}, tensors)
    assert untied.parameters.total == 128_000
