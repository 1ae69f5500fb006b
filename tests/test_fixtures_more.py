"""Exact counts for the diffusers pipeline and falcon-180B fixtures, through hubfit.analyze and the fake Hub.

Every expected figure is published (fixtures/README.md names the source) or computed here from the real config by
the rule written beside it.
"""

from __future__ import annotations

import pytest

import hubfit
from hubfit.source.hub import HubClient

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_FP16_ONLY = "hubfit-fixtures/sd15-fp16-only"
FALCON_180B = "tiiuae/falcon-180B"

# Stable Diffusion 1.5 component counts, published:
UNET = 859_520_964  # diffusers `ModelMixin.num_parameters` docstring, UNet2DConditionModel of this repo
TEXT_ENCODER = 123_060_480  # CLIP ViT-L/14 text encoder; fast.ai forum "Stable Diffusion parameter budget"
VAE = 83_653_863  # AutoencoderKL; same fast.ai table
PIPELINE_WITHOUT_SAFETY_CHECKER = 1_066_235_307  # same table's total (UNet + text encoder + VAE)


def safety_checker_parameters() -> int:
    """StableDiffusionSafetyChecker on safety_checker/config.json (no published figure found): a CLIP ViT-L/14
    vision tower (H 1024, 24 layers, MLP 4096, patch 14, image 224 -> 257 positions) + visual_projection
    [768, 1024] + concept_embeds [17, 768] + special_care_embeds [3, 768] + their weights [17] and [3]."""
    h, inter, patch, positions, proj = 1024, 4096, 14, (224 // 14) ** 2 + 1, 768
    embeddings = h + h * 3 * patch * patch + positions * h  # class, patch conv (no bias), position
    layer = 4 * (h * h + h) + 2 * 2 * h + (inter * h + inter) + (h * inter + h)  # attention, 2 norms, MLP
    tower = embeddings + 2 * 2 * h + 24 * layer  # + pre_layrnorm and post_layernorm
    return tower + proj * h + (17 + 3) * proj + 17 + 3


def analyze(repo_id: str, token: str | bool = "hf_granted", **kwargs):
    return hubfit.load_model(repo_id, client=HubClient(token=token, sleep=lambda s: None), **kwargs)


@pytest.fixture(scope="module")
def sd15(fake_hub):
    return analyze(SD15)


def test_sd15_components_as_the_core_reports_them(sd15):
    components = {c.name: c for c in sd15.components}
    # scheduler, tokenizer and feature_extractor hold no weights; each model component is one F32 file
    assert {name: c.kind for name, c in components.items()} == dict.fromkeys(
        ("safety_checker", "text_encoder", "unet", "vae"), "diffusers"
    )
    assert {name: sorted({t.file for t in c.tensors}) for name, c in components.items()} == {
        "safety_checker": ["safety_checker/model.safetensors"],
        "text_encoder": ["text_encoder/model.safetensors"],
        "unet": ["unet/diffusion_pytorch_model.safetensors"],
        "vae": ["vae/diffusion_pytorch_model.safetensors"],
    }
    assert sd15.main.name == "unet"


def test_sd15_published_counts_per_component(sd15):
    by_name = {c.name: c.parameters.total for c in sd15.components}
    assert by_name == {
        "unet": UNET,
        "text_encoder": TEXT_ENCODER,
        "vae": VAE,
        "safety_checker": safety_checker_parameters(),
    }
    assert UNET + TEXT_ENCODER + VAE == PIPELINE_WITHOUT_SAFETY_CHECKER
    assert sd15.parameters.total == PIPELINE_WITHOUT_SAFETY_CHECKER + safety_checker_parameters()


def test_sd15_variants_and_buffers_are_not_counted(sd15):
    # The fp16 and non_ema variants beside each file would double or triple the count; the text encoder and
    # safety checker store position_ids (I64 [1, 77] and [1, 257], saved by transformers 4.22), which are buffers.
    total = PIPELINE_WITHOUT_SAFETY_CHECKER + safety_checker_parameters()
    assert sd15.parameters.stored_by_dtype == {"F32": total, "I64": 77 + 257}
    assert sd15.weights.files == 4
    assert sd15.weights.bytes == 4 * total + 8 * (77 + 257)
    buffers = sorted(t.name for c in sd15.components for t in c.tensors if t.role == "buffer")
    assert buffers == [
        "text_model.embeddings.position_ids",
        "vision_model.vision_model.embeddings.position_ids",
    ]


def test_sd15_vae_keeps_its_legacy_attention_names(sd15):
    vae = next(c for c in sd15.components if c.name == "vae")
    attention = {t.name: t.parameters for t in vae.tensors if ".mid_block.attentions.0." in t.name}
    # query/key/value/proj_attn [512, 512] + bias and group_norm [512] x 2, in the encoder and the decoder
    assert attention["encoder.mid_block.attentions.0.proj_attn.weight"] == 512 * 512
    assert sum(attention.values()) == 2 * (4 * (512 * 512 + 512) + 2 * 512)


def test_fp16_variant_is_used_when_the_plain_file_is_absent(fake_hub):
    report = analyze(SD15_FP16_ONLY)
    files = sorted(t.file for c in report.components for t in c.tensors if t.name.endswith("position_ids"))
    assert files == ["safety_checker/model.fp16.safetensors", "text_encoder/model.fp16.safetensors"]
    total = PIPELINE_WITHOUT_SAFETY_CHECKER + safety_checker_parameters()
    assert report.parameters.total == total  # the same model, stored in F16
    assert report.parameters.stored_by_dtype == {"F16": total, "I64": 77 + 257}
    assert {c.name: c.parameters.total for c in report.components}["unet"] == UNET


def test_sd15_files_are_served_at_their_real_sizes(fake_hub):
    from huggingface_hub import HfApi

    from fixtures.catalog import SD15_PICKLE_SIZES, SD15_SAFETENSORS_SIZES

    api = HfApi()
    sizes = {s.rfilename: s.size for s in api.model_info(SD15, files_metadata=True).siblings}
    assert {p: sizes[p] for p in SD15_SAFETENSORS_SIZES} == SD15_SAFETENSORS_SIZES
    assert {p: sizes[p] for p in SD15_PICKLE_SIZES} == SD15_PICKLE_SIZES
    # every variant holds the same tensors; the VAE's fp16 file names its attention the current way
    total = PIPELINE_WITHOUT_SAFETY_CHECKER + safety_checker_parameters()
    counts = {p: api.parse_safetensors_file_metadata(SD15, p) for p in SD15_SAFETENSORS_SIZES}
    assert (
        sum(sum(m.parameter_count.values()) for p, m in counts.items() if ".fp16." in p) == total + 77 + 257
    )
    assert sum(counts["unet/diffusion_pytorch_model.non_ema.safetensors"].parameter_count.values()) == UNET
    assert (
        "encoder.mid_block.attentions.0.to_q.weight"
        in counts["vae/diffusion_pytorch_model.fp16.safetensors"].tensors
    )
    assert (
        "encoder.mid_block.attentions.0.query.weight"
        in counts["vae/diffusion_pytorch_model.safetensors"].tensors
    )


# falcon-180B: hidden 14,848, 80 layers, 232 query heads and 8 KV heads of 64, vocab 65,024 (its config.json)
H, LAYERS, HEADS, KV, HEAD_DIM, VOCAB = 14_848, 80, 232, 8, 64, 65_024
FALCON_LAYER = (
    (HEADS + 2 * KV) * HEAD_DIM * H + H * H + 2 * 4 * H * H + 2 * 2 * H
)  # qkv, dense, MLP, 2 LayerNorms
FALCON_STORED = LAYERS * FALCON_LAYER + VOCAB * H + 2 * H + VOCAB * H  # + word_embeddings, ln_f, lm_head


def test_falcon_180b_counts_the_stored_lm_head(fake_hub):
    report = analyze(FALCON_180B)
    p = report.parameters
    assert p.total == FALCON_STORED == 179_522_565_120
    assert p.stored_by_dtype == {"BF16": FALCON_STORED}
    # no tie flag in the config: the stored head is counted, not folded into the embedding
    head = next(t for t in report.tensors if t.name == "lm_head.weight")
    assert (head.role, head.tied_to, head.parameters) == ("lm_head", None, VOCAB * H)
    assert report.weights.files == 81
    # The 81 files total 334.4 GiB in a public listing of the repo: the stored lm_head is in them (without it,
    # 2 x 178,557,088,768 bytes = 332.6 GiB). transformers ties it to the embedding by default (FalconConfig's
    # tie_word_embeddings is True), so its loaded model counts 178,557,088,768 parameters.
    assert report.weights.bytes == 2 * FALCON_STORED
    assert round(report.weights.bytes / 2**30, 1) == 334.4
    assert round((FALCON_STORED - VOCAB * H) * 2 / 2**30, 1) == 332.6
