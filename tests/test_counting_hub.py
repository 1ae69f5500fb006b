"""Exact parameter counts for real checkpoint layouts served by the fake Hub.

Every expected figure is either published (fixtures/README.md names the source) or computed here from the
model's real config by the rule written beside it. Quantized repos are checked against the published count of
the model they quantize: a packed-count bug (the Hub's own "2B" for an 8B W4A16 model) fails.
"""

from __future__ import annotations

import pytest

import hubfit
from hubfit.errors import HeaderError, NoWeightsError, PrivateRepoError
from hubfit.source.hub import HubClient

LLAMA2_70B = 68_976_648_192  # meta-llama/Llama-2-70b-hf, F16 elements without the inv_freq buffers
LLAMA2_7B = (
    6_738_415_616  # meta-llama/Llama-2-7b-hf (Hub "6.74B"): 32 x 202,383,360 + 2 x 32,000 x 4,096 + 4,096
)
LLAMA3_8B = 8_030_261_248  # meta-llama/Llama-3.1-8B (Hub "8.03B"); Llama-3-8B has the same shapes


def analyze(repo_id: str, token: str | bool = "hf_granted", **kwargs):
    return hubfit.load_model(repo_id, client=HubClient(token=token, sleep=lambda s: None), **kwargs)


def test_gptq_unpacks_to_the_same_count_as_the_fp16_original(fake_hub):
    report = analyze("TheBloke/Llama-2-70B-GPTQ")
    p = report.parameters
    assert p.stored_by_dtype == {"I32": 8_563_445_760, "F16": 532_324_352}
    assert p.total == LLAMA2_70B  # the same model as meta-llama/Llama-2-70b-hf
    assert report.quantization.method == "gptq" and report.quantization.bits == 4
    # qzeros, g_idx and scales are metadata; qweight holds 8 weights per int32
    meta = [t for t in report.tensors if t.role == "quant_meta"]
    assert {t.name.rsplit(".", 1)[1] for t in meta} == {"qzeros", "g_idx", "scales"}


@pytest.mark.parametrize(
    ("repo_id", "expected"),
    [
        ("TheBloke/Llama-2-7B-AWQ", LLAMA2_7B),
        ("unsloth/llama-3-8b-bnb-4bit", LLAMA3_8B),
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", LLAMA3_8B),
        ("meta-llama/Llama-3.1-8B", LLAMA3_8B),
        ("mistralai/Mistral-7B-v0.1", 7_241_732_096),  # Hub "7.24B"
        ("google/gemma-2-9b", 9_241_705_984),  # Hub "9.24B"; tied embeddings
    ],
)
def test_published_counts(fake_hub, repo_id, expected):
    assert analyze(repo_id).parameters.total == expected


def test_tied_embeddings_count_once(fake_hub):
    report = analyze("Qwen/Qwen2.5-0.5B")
    assert report.parameters.total == 494_032_768  # Hub "494M"
    assert "lm_head" not in report.parameters.by_role


def test_deepseek_v3_fp8_blocks_mla_moe_and_mtp(fake_hub):
    report = analyze("deepseek-ai/DeepSeek-V3")
    p = report.parameters
    # stored as published (peer-hf-mem.md §6): scales and router biases are the F32 tensors
    assert p.stored_by_dtype == {"F8_E4M3": 680_571_043_840, "BF16": 3_918_786_560, "F32": 41_555_600}
    # F32 = weight_scale_inv (metadata) + e_score_correction_bias (256 per MoE layer: 58 main + the MTP layer)
    router_bias = 59 * 256
    assert p.total == 680_571_043_840 + 3_918_786_560 + router_bias
    # routed experts: 256 x (gate, up, down) of hidden 7,168 x moe_intermediate 2,048, in 59 MoE layers;
    # a token uses 8 of 256 of them
    routed = 59 * 256 * 3 * 7168 * 2048
    assert p.by_role["expert"] == routed
    assert p.active == p.total - routed * (256 - 8) // 256
    assert report.quantization.method == "fp8"
    assert report.quantization.details["weight_block_size"] == [128, 128]


def test_gpt_oss_mxfp4(fake_hub):
    report = analyze("openai/gpt-oss-20b")
    p = report.parameters
    assert p.stored_by_dtype == {"U8": 10_152_345_600, "BF16": 1_804_459_584}
    assert p.total == 20_914_757_184  # U8 blocks x 2, scales left out
    # 24 layers x 32 experts x (gate_up 5,760 x 2,880 + its bias + down 2,880 x 2,880 + its bias); 4 of 32 per token
    experts = 24 * 32 * (5760 * 2880 + 5760 + 2880 * 2880 + 2880)
    assert p.by_role["expert"] == experts
    assert p.active == p.total - experts * 28 // 32
    # OpenAI's "3.6B active" leaves the input embedding lookup out; hubfit's active count includes it
    assert p.active - p.by_role["embedding"] == 3_608_307_264


def test_qwen3_moe_active(fake_hub):
    report = analyze("Qwen/Qwen3-30B-A3B")
    p = report.parameters
    assert p.total == 30_532_122_624  # Hub "30.5B"
    experts = 48 * 128 * 3 * 2048 * 768  # 48 layers x 128 experts x (gate, up, down) 2,048 x 768
    assert p.active == p.total - experts * 120 // 128
    assert 3.3e9 < p.active < 3.4e9  # Qwen: "3.3B activated"


def test_sentence_transformers_components(fake_hub):
    report = analyze("sentence-transformers/LaBSE")
    by_name = {c.name: c for c in report.components}
    assert set(by_name) == {"", "2_Dense"}
    assert by_name[""].parameters.total == 470_926_848  # Hub "471M"
    assert by_name["2_Dense"].parameters.total == 768 * 768 + 768
    assert report.parameters.total == 470_926_848 + 590_592
    assert {c.kind for c in report.components} == {"sentence-transformers"}


def test_adapter_is_reported_with_its_base(fake_hub):
    report = analyze("mmammidi/LoRA-fine-tuning-Llama-3.1-8B-FirstProject")
    assert report.components[0].kind == "adapter"
    assert report.adapter["base_model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    assert report.adapter["r"] == 64
    # r 64 on q, k, v, o of 32 layers: A [64, in] + B [out, 64]
    per_layer = 64 * (4096 + 4096) + 64 * (4096 + 1024) * 2 + 64 * (4096 + 4096)
    assert report.parameters.total == 32 * per_layer == 54_525_952


def test_private_repo_needs_its_token(fake_hub):
    with pytest.raises(PrivateRepoError):
        analyze("hubfit-fixtures/private-qwen2.5-0.5b", token=False)
    assert (
        analyze("hubfit-fixtures/private-qwen2.5-0.5b", token="hf_private_ok").parameters.total == 494_032_768
    )


def test_no_safetensors_names_the_weight_files(fake_hub):
    with pytest.raises(NoWeightsError, match="pytorch_model.bin"):
        analyze("hubfit-fixtures/pytorch-only-bert")


HOSTILE = {
    "length-2e60": "exceeds the safetensors limit",
    "length-beyond-file": "runs past the end",
    "invalid-json": "not valid JSON",
    "non-utf8": "not valid UTF-8",
    "json-array": "not an object",
    "deep-nesting": "nests deeper",
    "overlapping-offsets": "overlaps",
    "out-of-file-offsets": "but the file is",
    "unknown-dtype": "unknown dtype",
    "negative-shape": "invalid shape",
    "non-int-shape": "invalid shape",
    "shape-offsets-mismatch": "data_offsets span",
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_headers_over_http(fake_hub, case):
    fake_hub.reset_log()
    with pytest.raises(HeaderError, match=HOSTILE[case]):
        analyze(f"hubfit-fixtures/hostile-{case}")
    # never more than the first read plus the exact header: a 2^60 length prefix is refused before any read
    ranged = [e for e in fake_hub.log if e.range and e.status == 206]
    assert sum(e.bytes_sent for e in ranged) <= 8 * 1024 + 1_000_000
