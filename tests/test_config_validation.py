"""config.json validated once in the model stage, and checked against the checkpoint's tensors (issue 19).

Every case is a config value no real model has (or a checkpoint its config does not describe), taken through the
model stage's one door (``component_from_headers``) and, for the issue's own examples, through the command
line on a local directory. The answer is a one-line ``ConfigError`` (exit code 12) naming the file, the field,
the value and the rule, never a size computed from the value and never an internal error. The bounds come
from hubfit/data/limits.yaml (largest real value x 100); every real config of fixtures/ passes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from tinymodel import TINY, header, tiny_tensors, write_model

from hubfit import _data
from hubfit.cli import main
from hubfit.errors import ConfigError, ConfigMismatchError
from hubfit.model.component import Model, component_from_headers
from hubfit.model.config import ModelConfig
from hubfit.model.quant import detect
from hubfit.sizing import kv

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def build(config: dict[str, Any], tensors: dict[str, tuple[str, list[int]]] | None = None, **kw: Any):
    cfg = ModelConfig(config)
    quant = detect(cfg.quantization_config, mlx_quantization=cfg.raw.get("quantization"))
    return component_from_headers([header(tensors or tiny_tensors())], cfg, quant=quant, **kw)


def refused(config: dict[str, Any], tensors=None, error: type[Exception] = ConfigError) -> str:
    with pytest.raises(error) as caught:
        build(config, tensors)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 12
    return message


# ---- the issue's examples, as a user meets them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("num_key_value_heads", 0, "num_key_value_heads is 0;"),
        ("hidden_size", -64, "hidden_size is -64;"),
        ("num_hidden_layers", 2.5, "num_hidden_layers is 2.5;"),
        ("vocab_size", "lots", "vocab_size is 'lots';"),
        ("num_hidden_layers", 1e12, "num_hidden_layers is 1000000000000.0;"),
        ("num_hidden_layers", math.nan, "num_hidden_layers is nan;"),
        ("num_hidden_layers", math.inf, "num_hidden_layers is inf;"),
    ],
)
def test_the_issues_configs_fail_with_one_line_and_exit_code_12(tmp_path, capsys, field, value, shown):
    model = write_model(tmp_path / "m", {**TINY, field: value})
    assert main([str(model), "--gpu", "RTX 4090"]) == 12
    err = capsys.readouterr().err
    assert err.startswith(f"hubfit: error: config.json: {shown} it must be a whole number from ")
    assert err.count("\n") == 1 and "internal error" not in err


def test_the_message_names_the_field_the_value_and_the_rule():
    message = refused({**TINY, "num_key_value_heads": 0})
    assert message == (
        "config.json: num_key_value_heads is 0; it must be a whole number from 1 to 23,200 "
        "(232 in tiiuae/falcon-180B, times 100)"
    )


def test_nothing_is_sized_from_a_refused_config(tmp_path, capsys):
    """No table, no JSON: the failure comes before any figure."""
    model = write_model(tmp_path / "m", {**TINY, "hidden_size": -64})
    assert main([str(model), "--json"]) == 12
    assert capsys.readouterr().out == ""


# ---- types and ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"num_attention_heads": True}, "num_attention_heads is True; it must be a whole number"),
        ({"intermediate_size": "11008"}, "intermediate_size is '11008'; it must be a whole number"),
        ({"max_position_embeddings": 10**30}, "max_position_embeddings is 1000000000000000000000000000000;"),
        ({"vocab_size": 10**200}, "vocab_size is a 665-bit integer;"),
        ({"head_dim": 0}, "head_dim is 0;"),
        ({"sliding_window": 0}, "sliding_window is 0;"),
        ({"sliding_window": -4096}, "sliding_window is -4096;"),
        ({"attention_chunk_size": 0}, "attention_chunk_size is 0;"),
        ({"num_hidden_layers": [2, "x"]}, "num_hidden_layers is [2, 'x']; it must be a whole number from 1"),
        ({"text_config": {"hidden_size": 0}}, "config.json: text_config.hidden_size is 0;"),
        ({"model_type": 7}, "config.json: model_type is 7; it must be a string"),
        ({"architectures": "LlamaForCausalLM"}, "architectures is 'LlamaForCausalLM'; it must be a list"),
        ({"architectures": [None]}, "architectures is [None]; it must be a list of strings"),
        ({"tie_word_embeddings": "false"}, "tie_word_embeddings is 'false'; it must be true or false"),
        ({"torch_dtype": ["bf16"]}, "torch_dtype is ['bf16']; it must be a string"),
        ({"layer_types": "full_attention"}, "layer_types is 'full_attention'; it must be a list"),
        ({"quantization": "4bit"}, "quantization is '4bit'; it must be an object"),
    ],
)
def test_types_and_ranges(change, expected):
    assert expected in refused({**TINY, **change})


def test_a_long_hostile_value_is_shown_short_and_on_one_line():
    message = refused({**TINY, "vocab_size": "<img src=x>\n" * 50})
    assert message.startswith(
        "config.json: vocab_size is '<img src=x>\\n<img src=x>\\n<img src=x>\\…; it must"
    )
    assert len(message) < 200


def test_a_whole_float_is_a_whole_number():
    """Some configs write 32.0: read as 32, as the sizing always did."""
    part = build({**TINY, "num_attention_heads": 4.0, "head_dim": 16.0, "vocab_size": 256.0})
    assert part.config is not None and part.config.vocab_size == 256 and part.config.head_dim == 16


def test_per_stage_lists_are_checked_element_by_element():
    """Vision configs list heads per stage (Swin, SegFormer); each element is checked, the list not sized."""
    assert build({**TINY, "num_heads": [3, 6, 12, 24]}).config is not None
    assert "num_heads is [3, 6, 0]" in refused({**TINY, "num_heads": [3, 6, 0]})


def test_a_model_ten_times_larger_than_any_today_passes():
    """limits.yaml's factor of 100 over the largest real values: 10x Llama-3.1-405B is a plausible config."""
    config = json.loads((FIXTURES / "models/meta-llama__Llama-3.1-405B/config.json").read_text())
    bigger = {
        **config,
        "num_hidden_layers": 1260,
        "hidden_size": 163840,
        "intermediate_size": 532480,
        "num_attention_heads": 1280,
        "num_key_value_heads": 80,
        "vocab_size": 1282560,
        "max_position_embeddings": 104857600,
    }
    ModelConfig(bigger).validate()
    assert kv.kv_cache_bytes(ModelConfig(bigger), 1, 1, "bf16") == 1260 * 2 * 80 * 128 * 2


def test_every_real_config_of_the_fixtures_passes():
    paths = [*FIXTURES.glob("configs/*.json"), *FIXTURES.glob("models/**/config.json")]
    assert len(paths) >= 20
    for path in paths:
        ModelConfig(json.loads(path.read_text())).validate(str(path))


def test_limits_yaml_states_a_source_for_every_bound():
    limits = _data.load("limits")
    assert limits["factor"] >= 10
    for name, bound in limits["bounds"].items():
        assert bound["largest"] > 0 and bound["model"] and bound["source"], name
        assert str(bound["largest"]) in bound["source"].replace(",", ""), name
        assert bound["fields"], name


def test_a_deeply_nested_wrapper_does_not_recurse():
    """Only the language model of a wrapper is unwrapped; a config nesting wrappers 5,000 deep is no crash."""
    raw: dict[str, Any] = dict(TINY)
    for _ in range(5000):
        raw = {"text_config": raw}
    ModelConfig(raw).validate()


# ---- relations ------------------------------------------------------------------------------------------------


def test_heads_must_divide_the_width_unless_head_dim_is_given():
    message = refused({**TINY, "num_attention_heads": 3, "num_key_value_heads": 3})
    assert message == (
        "config.json: hidden_size 64 does not divide by num_attention_heads 3: a head is hidden_size / "
        "num_attention_heads wide unless head_dim is given"
    )
    # Gemma 2 style: the width is stated, the division does not matter.
    config = {**TINY, "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 16}
    build(config, tiny_tensors(config))


@pytest.mark.parametrize(("kv_heads", "heads"), [(3, 4), (8, 4)])
def test_kv_heads_must_divide_the_heads(kv_heads, heads):
    message = refused({**TINY, "num_attention_heads": heads, "num_key_value_heads": kv_heads})
    assert f"num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}" in message


def test_experts_per_token_cannot_exceed_the_experts():
    message = refused({**TINY, "num_local_experts": 8, "num_experts_per_tok": 9})
    assert "num_experts_per_tok 9 is more than the 8 experts of num_local_experts" in message
    # generation's `top_k: 50` of an old dense config is not an expert count
    build({**TINY, "top_k": 50})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"layer_types": ["full_attention"] * 3}, "layer_types has 3 entries but num_hidden_layers is 2"),
        (
            {"layer_types": ["full_attention", 1]},
            "layer_types is ['full_attention', 1]; it must be a list of",
        ),
        (
            {"hybrid_override_pattern": "M*M"},
            "hybrid_override_pattern has 3 characters but num_hidden_layers",
        ),
        ({"no_rope_layers": [1, 1, 0, 1]}, "no_rope_layers has 4 entries but num_hidden_layers is 2"),
        ({"first_k_dense_replace": 3}, "first_k_dense_replace 3 is more than the 2 layers"),
        (
            {"attn_layer_period": 4, "attn_layer_offset": 4},
            "attn_layer_offset 4 is not below attn_layer_period 4",
        ),
    ],
)
def test_per_layer_settings_match_the_layers(change, expected):
    assert expected in refused({**TINY, **change})


@pytest.mark.parametrize(
    ("quantization", "expected"),
    [
        (
            {"quant_method": "gptq", "bits": math.nan},
            "quantization_config.bits is nan; it must be a number of bits",
        ),
        ({"quant_method": "gptq", "bits": 0}, "quantization_config.bits is 0;"),
        ({"quant_method": "gptq", "bits": -4}, "quantization_config.bits is -4;"),
        ({"quant_method": "gptq", "bits": 1e-300}, "quantization_config.bits is 1e-300;"),
        # found by benchmarks/fuzz.py: math.isfinite(10**400) raised OverflowError
        ({"quant_method": "gptq", "bits": 10**400}, "quantization_config.bits is a 1329-bit integer;"),
        ({"quant_method": "awq", "bits": 4, "group_size": 0}, "quantization_config.group_size is 0;"),
        ({"quant_method": "compressed-tensors", "config_groups": [1]}, "config_groups is [1]; it must be an"),
        (
            {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 99}}}},
            "config_groups.g.weights.num_bits is 99;",
        ),
    ],
)
def test_quantization_settings(quantization, expected):
    assert expected in refused({**TINY, "quantization_config": quantization})


def test_quantize_config_json_is_checked_at_the_same_door():
    """AutoGPTQ's separate quantize_config.json reaches the model stage as the format's settings."""
    cfg = ModelConfig(dict(TINY))
    quant = detect(None, quantize_config={"bits": math.inf, "group_size": 128})
    with pytest.raises(ConfigError, match=r"config.json: quantization settings.bits is inf"):
        component_from_headers([header(tiny_tensors())], cfg, quant=quant)


def test_a_component_names_its_own_config_file():
    with pytest.raises(ConfigError, match=r"^text_encoder/config.json: hidden_size is 0;"):
        build({**TINY, "hidden_size": 0}, name="text_encoder", kind="diffusers")


# ---- config against checkpoint ---------------------------------------------------------------------------


def test_a_config_claiming_more_layers_than_stored_is_sized_from_the_checkpoint():
    """The issue: 80 layers claimed over a checkpoint holding 2. Weights and KV cache both count 2 layers, and
    the warning says which side was used."""
    part = build({**TINY, "num_hidden_layers": 80})
    assert part.warnings == [
        "config.json says num_hidden_layers 80 but the checkpoint holds 2 decoder layers "
        "(model.layers.1.input_layernorm.weight is the last); hubfit sized 2 layers, as the checkpoint holds"
    ]
    assert part.config is not None and part.config.num_hidden_layers == 2
    assert len(kv.kv_specs(part.config)) == 2
    model = Model("tiny", "local", None, "local", [part])
    assert model.warnings == part.warnings


def test_a_checkpoint_holding_more_layers_than_the_config_says():
    part = build(dict(TINY), tiny_tensors(layers=5))
    assert "holds 5 decoder layers" in part.warnings[0] and part.config.num_hidden_layers == 5  # type: ignore[union-attr]


def test_per_layer_lists_are_cut_with_the_layer_count():
    config = {**TINY, "num_hidden_layers": 4, "layer_types": ["sliding_attention", "full_attention"] * 2}
    part = build({**config, "sliding_window": 16})
    assert part.config is not None and part.config.raw["layer_types"] == [
        "sliding_attention",
        "full_attention",
    ]
    assert [s.kind for s in kv.kv_specs(part.config)] == ["sliding", "full"]


def test_multi_token_prediction_layers_are_not_a_disagreement():
    """DeepSeek-V3 and GLM-4.5 store num_nextn_predict_layers after the decoder (fixtures: DeepSeek-V3)."""
    part = build({**TINY, "num_nextn_predict_layers": 1}, tiny_tensors(layers=3))
    assert part.warnings == [] and part.config is not None and part.config.num_hidden_layers == 2


def test_matching_checkpoints_have_no_warning():
    assert build(dict(TINY)).warnings == []


def _with(change: dict[str, tuple[str, list[int]]]) -> dict[str, tuple[str, list[int]]]:
    return {**tiny_tensors(), **change}


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        (
            _with({"model.layers.0.self_attn.k_proj.weight": ("BF16", [64, 64])}),
            "model.layers.0.self_attn.k_proj.weight is [64, 64] but config.json says num_key_value_heads x "
            "head_dim = 2 x 16 = 32 rows, hidden_size 64 columns: the checkpoint does not match its config",
        ),
        (
            _with({"model.layers.1.self_attn.v_proj.weight": ("BF16", [48, 64])}),
            "model.layers.1.self_attn.v_proj.weight is [48, 64]",
        ),
        (
            _with({"model.layers.0.self_attn.o_proj.weight": ("BF16", [64, 32])}),
            "num_attention_heads x head_dim = 4 x 16 = 64 columns",
        ),
        (
            _with({"model.layers.0.self_attn.q_proj.weight": ("BF16", [64, 96])}),
            "q_proj.weight is [64, 96] but config.json says hidden_size 64 columns",
        ),
        (
            _with({"model.layers.0.mlp.up_proj.weight": ("BF16", [256, 64])}),
            "mlp.up_proj.weight is [256, 64] but config.json says intermediate_size 128 rows",
        ),
        (
            _with({"model.layers.1.mlp.down_proj.weight": ("BF16", [64, 256])}),
            "intermediate_size 128 columns",
        ),
        (
            _with({"model.embed_tokens.weight": ("BF16", [200, 64])}),
            "model.embed_tokens.weight has 200 rows but config.json says vocab_size 256",
        ),
        (
            _with({"lm_head.weight": ("BF16", [255, 64])}),
            "lm_head.weight has 255 rows but config.json says vocab_size 256",
        ),
    ],
)
def test_widths_that_contradict_the_config_are_refused(tensors, expected):
    message = refused(dict(TINY), tensors, ConfigMismatchError)
    assert expected in message and "(it cannot load as configured)" in message


def test_padded_embedding_rows_are_no_contradiction():
    """Llama 3.2 Vision and OLMo store more embedding rows than vocab_size (padding, image tokens)."""
    assert build(dict(TINY), _with({"model.embed_tokens.weight": ("BF16", [264, 64])})).warnings == []


def test_towers_and_connectors_are_not_the_language_model():
    """A vision tower's attention has its own widths (here 2 x 48 wide, against the text model's 2 x 16)."""
    tensors = _with(
        {
            "vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight": ("BF16", [96, 96]),
            "vision_tower.vision_model.encoder.layers.23.self_attn.k_proj.weight": ("BF16", [96, 96]),
            "multi_modal_projector.linear_1.weight": ("BF16", [64, 96]),
        }
    )
    assert build(dict(TINY), tensors).warnings == []


def test_packed_quantized_tensors_are_not_compared():
    """GPTQ stores qweight as int32 [in * bits / 32, out]: not the logical shape (fixtures: Llama-2-70B-GPTQ)."""
    tensors = {k: v for k, v in tiny_tensors().items() if not k.endswith("k_proj.weight")}
    for i in range(2):
        p = f"model.layers.{i}.self_attn.k_proj."
        tensors |= {
            p + "qweight": ("I32", [8, 32]),
            p + "qzeros": ("I32", [1, 4]),
            p + "scales": ("F16", [1, 32]),
        }
    config = {**TINY, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 64}}
    assert build(config, tensors).warnings == []


def _moe(experts: int, width: int = 32, stored: int | None = None) -> tuple[dict, dict]:
    config = {**TINY, "num_local_experts": experts, "num_experts_per_tok": 2, "intermediate_size": width}
    tensors = {k: v for k, v in tiny_tensors().items() if ".mlp." not in k}
    for i in range(2):
        tensors[f"model.layers.{i}.block_sparse_moe.gate.weight"] = ("BF16", [experts, 64])
        for e in range(experts if stored is None else stored):
            p = f"model.layers.{i}.block_sparse_moe.experts.{e}."
            tensors |= {p + "w1.weight": ("BF16", [width, 64]), p + "w3.weight": ("BF16", [width, 64])}
            tensors[p + "w2.weight"] = ("BF16", [64, width])
    return config, tensors


def test_experts_agree_with_the_config():
    config, tensors = _moe(4)
    assert build(config, tensors).warnings == []
    config, tensors = _moe(4, stored=3)
    assert "routed experts 0 to 2 per layer but config.json says 4 experts" in refused(
        config, tensors, ConfigMismatchError
    )
    config, tensors = _moe(4)
    tensors["model.layers.1.block_sparse_moe.experts.3.w2.weight"] = ("BF16", [64, 48])
    assert (
        "experts.3.w2.weight is [64, 48] but config.json says hidden_size 64 rows, expert width 32"
        in refused(config, tensors, ConfigMismatchError)
    )


def test_fused_experts_hold_the_configs_count():
    """Llama 4 and gpt-oss store each layer's experts in one tensor, experts first."""
    config = {**TINY, "num_local_experts": 4, "num_experts_per_tok": 1}
    tensors = {k: v for k, v in tiny_tensors().items() if ".mlp." not in k}
    for i in range(2):
        tensors[f"model.layers.{i}.mlp.router.weight"] = ("BF16", [4, 64])
        tensors[f"model.layers.{i}.mlp.experts.gate_up_proj"] = ("BF16", [4, 64, 64])
        tensors[f"model.layers.{i}.mlp.experts.down_proj"] = ("BF16", [4 if i == 0 else 5, 32, 64])
    assert "model.layers.1.mlp.experts.down_proj holds 5 experts but config.json says 4" in refused(
        config, tensors, ConfigMismatchError
    )
