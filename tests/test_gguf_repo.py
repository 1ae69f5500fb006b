"""GGUF repositories on the fake Hub: every quant file sized from its header, the best per GPU, llama.cpp's
buffers (`hubfit REPO`, `--file`, `--engine llama.cpp`); the fixture repo is fixtures/gguf_build.py's
bartowski/Meta-Llama-3.1-8B-Instruct-GGUF layout (five single-file quants and an F16 split in two)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from fixtures.gguf_build import LLAMA31_GGUF, add_gguf_repo
from hubfit.cli.commands import cli as main
from hubfit.fit.gguf import discover
from hubfit.report import Report, json_schema


@pytest.fixture
def gguf_hub(hub: Any) -> Any:
    if LLAMA31_GGUF not in hub.repos:
        add_gguf_repo(hub)
    return hub


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, ["analyze", *args])
    assert result.exit_code == 0, result.output
    return result


def test_discovery_groups_splits_and_sets_projectors_aside() -> None:
    files = {
        "Q4_K_M/model-Q4_K_M.gguf": 1,
        "model-Q8_0-00001-of-00002.gguf": 1,
        "model-Q8_0-00002-of-00002.gguf": 1,
        "mmproj-model-f16.gguf": 1,
        "README.md": 1,
    }
    models, mmproj = discover(files)
    assert models == [
        ["Q4_K_M/model-Q4_K_M.gguf"],
        ["model-Q8_0-00001-of-00002.gguf", "model-Q8_0-00002-of-00002.gguf"],
    ]
    assert mmproj == ["mmproj-model-f16.gguf"]
    assert discover(files, "*Q8_0*")[0] == [
        ["model-Q8_0-00001-of-00002.gguf", "model-Q8_0-00002-of-00002.gguf"]
    ]


def test_json_contract(gguf_hub: Any) -> None:
    doc = json.loads(_run(LLAMA31_GGUF, "--json", "--gpu-memory", "8GB", "--ctx-size", "8192").output)
    jsonschema.validate(doc, json_schema())
    assert Report.from_dict(doc).to_dict() == doc
    files = {f["path"]: f for f in doc["gguf_files"]}
    assert len(files) == 7
    q4 = files["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"]
    assert set(q4) == {
        "path",
        "size",
        "data_offset",
        "params",
        "tensor_bytes",
        "bpw",
        "types",
        "bytes_by_type",
        "split",
    }
    assert q4["types"] == {"q4_K": 193, "f32": 66, "q6_K": 33} and q4["params"] == 8030261312
    assert q4["split"] is None
    split = files["Meta-Llama-3.1-8B-Instruct-f16/Meta-Llama-3.1-8B-Instruct-f16-00002-of-00002.gguf"]
    assert split["split"] == {"index": 1, "count": 2}
    fit = doc["gguf_fit"]
    rows = {r["name"]: r for r in fit["rows"]}
    assert rows["F16"]["files"][1].endswith("-00002-of-00002.gguf") and rows["F16"]["params"] == 8030261312
    # an 8 GB card: Q5_K_M and smaller fit fully offloaded at 8k (Q6_K: 6.6 GB + 1 GiB KV + buffers does not)
    assert fit["best"] == {next(iter(fit["best"])): "Q5_K_M"}
    assert 0 < rows["Q8_0"]["max_gpu_layers"] < 33 and rows["Q4_K_M"]["max_gpu_layers"] == 33
    assert "serving" not in doc


def test_engine_llama_cpp_serving(gguf_hub: Any) -> None:
    doc = json.loads(
        _run(
            LLAMA31_GGUF,
            "--json",
            "--engine",
            "llama.cpp",
            "--file",
            "Q4_K_M",
            "--gpu",
            "RTX 4090",
            "--ctx-size",
            "8192",
        ).output
    )
    s = doc["serving"]
    assert s["engine"] == "llama.cpp" and s["file"] == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert (s["n_ctx"], s["n_gpu_layers"], s["fits"]) == (8192, 33, True)
    assert s["buffers_mib"]["kv"] == {"GPU0": 1024.0}
    assert set(s["buffers_mib"]["model"]) == {"CPU", "GPU0"}
    assert [f["path"] for f in doc["gguf_files"]] == ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"]
    jsonschema.validate(doc, json_schema())
    assert Report.from_dict(doc).to_dict() == doc


def test_text_table(gguf_hub: Any) -> None:
    out = _run(LLAMA31_GGUF, "--gpu", "RTX 4090", "--ngl", "20", "--ctx-size", "32768").output
    assert "GGUF files under llama.cpp (n_ctx 32,768" in out
    assert "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf" in out and "-ngl on" in out
    assert "Best file per GPU:" in out


def test_no_matching_file(gguf_hub: Any) -> None:
    result = CliRunner().invoke(main, ["analyze", LLAMA31_GGUF, "--file", "Q3_K_XL"])
    assert result.exit_code != 0
    assert "no GGUF files matching 'Q3_K_XL'" in str(result.exception) + result.output


def test_the_hubs_gguf_total_is_checked_against_the_headers(fake_hub):
    """The model info's gguf.total (the Hub's own count of a GGUF file) must be one of the headers' counts."""
    import hubfit
    from hubfit.source.hub import HubClient

    if LLAMA31_GGUF not in fake_hub.repos:
        add_gguf_repo(fake_hub)
    agreed = hubfit.analyze(LLAMA31_GGUF, client=HubClient(token=False))
    assert agreed.parameters.total == fake_hub.repos[LLAMA31_GGUF].gguf_info["total"]
    assert agreed.warnings == []
    other = "hubfit-gguf/disagreeing-total"
    if other not in fake_hub.repos:
        add_gguf_repo(fake_hub, other, gguf_total=7_000_000_000)
    report = hubfit.analyze(other, client=HubClient(token=False))
    assert report.warnings == [
        f"the Hub counts 7,000,000,000 parameters in this repo's GGUF file; its headers hold "
        f"{report.parameters.total:,}: the headers' counts are the ones sized"
    ]


# ---- a vision model's projector (mmproj): loaded beside every quant, on the GPU -----------------------------------


def _projector(ftype: str) -> tuple[bytes, int]:
    """A synthetic CLIP projector (the mechanism, not a real model's figures): 4 blocks of a 1,024-wide encoder."""
    from gguf import GGMLQuantizationType as T

    from fixtures.gguf_build import ArchSpec, gguf_file

    tensors = [("v.patch_embd.weight", (1024, 3, 14, 14)), ("mm.0.weight", (4096, 1024))]
    for i in range(4):
        tensors += [(f"v.blk.{i}.attn_q.weight", (1024, 1024)), (f"v.blk.{i}.ffn_up.weight", (4096, 1024))]
    qtype = {"f16": T.F16, "q8_0": T.Q8_0, "f32": T.F32}[ftype]
    spec = ArchSpec("clip", {}, tensors, 0)
    return gguf_file(spec, ftype, types=lambda name, shape: T.F32 if len(shape) == 4 else qtype)


def test_projector_choice_prefers_the_16_bit_file() -> None:
    from hubfit.fit.gguf import choose_mmproj

    assert choose_mmproj(["mmproj-model-f32.gguf", "mmproj-model-f16.gguf", "mmproj-Q8_0.gguf"]) == (
        "mmproj-model-f16.gguf"
    )
    assert choose_mmproj(["vision/mmproj-BF16.gguf", "vision/mmproj-F32.gguf"]) == "vision/mmproj-BF16.gguf"
    assert choose_mmproj([]) is None


def test_projector_weights_join_every_row_on_the_gpu(hub: Any) -> None:
    from fixtures.gguf_build import llama31_repo_files
    from fixtures.hub_server import FileEntry
    from hubfit.fit.gguf import GGUFQuery
    from hubfit.fit.planner import HardwareQuery
    from hubfit.formats.gguf import read_header
    from hubfit.pipeline import analyze

    quant = {p: v for p, v in llama31_repo_files().items() if "Q4_K_M" in p}
    projector = {f"mmproj-model-{t}.gguf": _projector(t) for t in ("f16", "f32")}
    hub.add_repo("hubfit-fixtures/llm-gguf", {p: FileEntry.raw(h, size=s) for p, (h, s) in quant.items()})
    hub.add_repo(
        "hubfit-fixtures/vlm-gguf",
        {p: FileEntry.raw(h, size=s) for p, (h, s) in {**quant, **projector}.items()},
    )
    head, size = projector["mmproj-model-f16.gguf"]
    expected = read_header(
        lambda a, b: head[a:b], filename="mmproj-model-f16.gguf", file_size=size
    ).tensor_bytes
    rtx = HardwareQuery(gpus=("RTX 4090",))
    plain = analyze("hubfit-fixtures/llm-gguf", hardware=rtx)
    vlm = analyze("hubfit-fixtures/vlm-gguf", hardware=rtx, gguf=GGUFQuery(serve=True))
    assert plain.gguf_fit is not None and vlm.gguf_fit is not None
    fit = vlm.gguf_fit
    assert fit.mmproj_file == "mmproj-model-f16.gguf" and fit.mmproj_bytes == expected > 0
    ((row,), (base,)) = fit.rows, plain.gguf_fit.rows
    assert row.mmproj_bytes == expected and row.gpu_bytes == base.gpu_bytes + expected
    assert vlm.llamacpp is not None
    assert vlm.llamacpp.buffers_mib["mmproj"] == {"GPU0": round(expected / 2**20, 2)}
    assert "mmproj" not in (plain.llamacpp.buffers_mib if plain.llamacpp else {})


def test_projector_buffer_pads_quantized_rows_as_the_gpu_does() -> None:
    # a Q8_0 projector of SigLIP's 1,152 width (gemma-3's vision tower): CUDA pads each quantized tensor's rows
    # to a multiple of 512 elements (ggml-cuda MATRIX_ROW_PADDING), the same as for a model layer
    from gguf import GGMLQuantizationType as T

    from fixtures.gguf_build import ArchSpec, gguf_file
    from hubfit.formats.gguf import read_header
    from hubfit.sizing.llamacpp import projector_bytes

    spec = ArchSpec("clip", {}, [("v.blk.0.ffn_up.weight", (4304, 1152))], 0)
    head, size = gguf_file(spec, "q8_0", types=lambda name, shape: T.Q8_0)
    h = read_header(lambda a, b: head[a:b], filename="mmproj-q8_0.gguf", file_size=size)
    row = 1152 // 32 * 34
    assert h.tensor_bytes == 4304 * row
    padding = (512 - 1152 % 512) // 32 * 34
    assert projector_bytes(h) == -(-(4304 * row + padding) // 128) * 128
    assert projector_bytes(h, on_gpu=False) == -(-(4304 * row) // h.alignment) * h.alignment
