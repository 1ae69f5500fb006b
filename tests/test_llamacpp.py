"""llama.cpp memory (hubfit.sizing.llamacpp) against real llama.cpp load logs.

Each case rebuilds the logged file's header with the gguf package (fixtures/gguf_build.py: the same tensor
names, shapes and types as the logged file) and compares with ../shared/real-logs/llamacpp.jsonl (copied below,
MiB as printed): model buffers to 0.01 MiB, KV exactly, compute buffers within 10% (reached: within 0.01 MiB).
"""

from __future__ import annotations

from functools import cache

import pytest

from fixtures.gguf_build import gemma_2_2b, gguf_file, llama_3_1_8b, phi_3_mini, pythia_2_8b
from hubfit.errors import UsageError
from hubfit.formats import gguf
from hubfit.sizing.llamacpp import LlamaCppSettings, max_gpu_layers, memory

MIB = 2**20


@cache
def _header(name: str, ftype: str) -> gguf.GGUFHeader:
    spec = {"pythia": pythia_2_8b, "phi3": phi_3_mini, "gemma2": gemma_2_2b, "llama31": llama_3_1_8b}[name]()
    head, size = gguf_file(spec, ftype)

    def read(start: int, end: int) -> bytes:
        end = min(end, size)
        return head[start:end] + bytes(max(0, end - max(start, len(head))))

    return gguf.read_header(read, filename=f"{name}-{ftype}.gguf", file_size=size)


def _mib(d: dict[str, int]) -> dict[str, float]:
    return {k: round(v / MIB, 2) for k, v in d.items()}


# (log id, file, settings, model MiB, KV MiB, compute MiB): the log's devices renamed CUDA0 -> GPU0, CPU_Mapped
# and CUDA_Host -> CPU.
CASES = [
    (
        "R01",
        ("pythia", "F16"),
        LlamaCppSettings(n_ctx=2048),
        {"CPU": 245.62, "GPU0": 5049.71},
        {"GPU0": 640.0},
        {"GPU0": 162.0, "CPU": 9.01},
    ),
    (
        "R02",
        ("pythia", "Q8_0"),
        LlamaCppSettings(n_ctx=2048),
        {"CPU": 130.49, "GPU0": 2684.57},
        {"GPU0": 640.0},
        {"GPU0": 162.0, "CPU": 9.01},
    ),
    (
        "R03",
        ("pythia", "Q4_K_M"),
        LlamaCppSettings(n_ctx=2048),
        {"CPU": 69.08, "GPU0": 1632.95},
        {"GPU0": 640.0},
        {"GPU0": 162.0, "CPU": 9.01},
    ),
    (
        "R04",
        ("pythia", "Q2_K"),
        LlamaCppSettings(n_ctx=2048),
        {"CPU": 40.3, "GPU0": 993.89},
        {"GPU0": 640.0},
        {"GPU0": 162.0, "CPU": 9.01},
    ),
    (
        "R10",
        ("phi3", "Q4_K_M"),
        LlamaCppSettings(n_ctx=2048, gpus=0),
        {"CPU": 2281.66},
        {"CPU": 768.0},
        {"CPU": 168.01},
    ),
    (
        "R35",
        ("gemma2", "Q4_K_M"),
        LlamaCppSettings(n_ctx=8192, gpus=0, flash_attn=True, n_seq=4),
        {"CPU": 1623.67},
        {"CPU": 832.0},
        {"CPU": 509.0},
    ),
]


@pytest.mark.parametrize(
    ("log", "file", "settings", "model", "kv", "compute"), CASES, ids=[c[0] for c in CASES]
)
def test_reproduces_the_logs(
    log: str,
    file: tuple[str, str],
    settings: LlamaCppSettings,
    model: dict[str, float],
    kv: dict[str, float],
    compute: dict[str, float],
) -> None:
    m = memory([_header(*file)], settings)
    assert _mib(m.model) == model  # to 0.01 MiB
    assert _mib(m.kv) == kv  # exactly
    for device, want in compute.items():
        assert abs(m.compute[device] / MIB - want) <= 0.1 * want
        assert abs(m.compute[device] / MIB - want) <= 0.02  # what the model reaches on these logs


def test_compute_does_not_depend_on_the_weight_quant() -> None:
    figures = {
        memory([_header("pythia", q)], LlamaCppSettings(n_ctx=2048)).compute["GPU0"] for q in ("F16", "Q2_K")
    }
    assert len(figures) == 1


def test_partial_offload_keeps_the_output_on_the_host_and_splits_layers() -> None:
    h = _header("llama31", "Q4_K_M")
    full = memory([h], LlamaCppSettings(n_ctx=8192))
    assert full.n_gpu_layers == 33 and _mib(full.kv) == {"GPU0": 1024.0}  # 32 x 8192 x 1024 x 2 B x (K + V)
    part = memory([h], LlamaCppSettings(n_ctx=8192, n_gpu_layers=20, gpus=2, tensor_split=(1, 3)))
    assert part.n_gpu_layers == 20
    assert _mib(part.kv) == {"CPU": 384.0, "GPU0": 160.0, "GPU1": 480.0}  # 12 / 5 / 15 layers
    assert part.model["CPU"] > full.model["CPU"]  # the output layer and 12 blocks stay on the host


def test_n_ctx_padding_and_quantized_cache() -> None:
    h = _header("pythia", "Q4_K_M")
    # current llama.cpp pads to 256 with or without flash attention (llama.cpp@0c1e57098 logged 2500 as 2560)
    assert memory([h], LlamaCppSettings(n_ctx=2500)).n_ctx == 2560
    assert memory([h], LlamaCppSettings(n_ctx=2500, flash_attn=True)).n_ctx == 2560
    # builds before llama.cpp#17046: the next multiple of 32 without flash attention (a log of -c 2500 as 2528)
    assert memory([h], LlamaCppSettings(n_ctx=2500, legacy_ctx_padding=True)).n_ctx == 2528
    assert memory([h], LlamaCppSettings(n_ctx=2500, flash_attn=True, legacy_ctx_padding=True)).n_ctx == 2560
    q8 = memory([h], LlamaCppSettings(n_ctx=2048, type_k="q8_0", type_v="q8_0", flash_attn=True))
    assert q8.kv["GPU0"] == 32 * 2048 * 2 * (2560 // 32 * 34)


def test_largest_offload_on_a_gpu() -> None:
    h = _header("llama31", "Q4_K_M")
    settings = LlamaCppSettings(n_ctx=32768)
    ngl = max_gpu_layers([h], 8 * 10**9, settings)
    assert 0 < ngl < 33
    need = memory([h], LlamaCppSettings(n_ctx=32768, n_gpu_layers=ngl)).gpu_need()
    more = memory([h], LlamaCppSettings(n_ctx=32768, n_gpu_layers=ngl + 1)).gpu_need()
    assert need <= 8 * 10**9 < more
    assert max_gpu_layers([h], 80 * 10**9, settings) == 33


def test_bad_flags() -> None:
    with pytest.raises(UsageError, match="--cache-type-k 'q3_K'"):
        LlamaCppSettings(type_k="q3_K")
    with pytest.raises(UsageError, match="--tensor-split"):
        LlamaCppSettings(gpus=2, tensor_split=(1.0,))


# ---- n_ctx padding as a function of the llama.cpp version ------------------------------------------------------


def test_n_ctx_padding_by_llama_cpp_version() -> None:
    from hubfit.sizing.llamacpp import VERSIONS

    h = _header("pythia", "Q4_K_M")

    def n_ctx(version: str, fa: bool = False) -> int:
        return memory([h], LlamaCppSettings(n_ctx=2500, flash_attn=fa, version=version)).n_ctx

    assert VERSIONS[0] == "current" and LlamaCppSettings().version == "current"
    # llama.cpp@0c1e57098 (after #17046) logged -c 2500 as 2560, flash attention off (llamacpp_loop.md)
    assert n_ctx("current") == n_ctx("current", fa=True) == 2560
    # #7257 .. #16812 (the era of the shared logs' build 3280): 32 cells, 256 with flash attention
    assert n_ctx("legacy") == 2528 and n_ctx("legacy", fa=True) == 2560
    # #16812 .. #17046: the cache has the cells asked, no padding
    assert n_ctx("2025-10") == n_ctx("2025-10", fa=True) == 2500
    # KV follows the cells: pythia's 32 layers x 2560 wide x 2 B x (K + V) per cell
    kv = {v: memory([h], LlamaCppSettings(n_ctx=2500, version=v)).kv["GPU0"] for v in VERSIONS}
    assert kv == {
        v: 32 * 2560 * 2 * 2 * cells for v, cells in (("current", 2560), ("legacy", 2528), ("2025-10", 2500))
    }
    with pytest.raises(UsageError, match="llama.cpp version"):
        LlamaCppSettings(version="b3280")


def test_sliding_window_cache_padding_by_version() -> None:
    # gemma-2-2b (n_swa 4096): the SWA layers hold min(n_ctx, pad(n_swa + n_ubatch)) cells; with a 100-token
    # ubatch that is 4196 cells, padded to 4352 (256, current llama-kv-cache-iswa.cpp), 4224 (32, legacy) or
    # left as it is (2025-10)
    h = _header("gemma2", "Q4_K_M")

    def kv(version: str) -> int:
        m = memory([h], LlamaCppSettings(n_ctx=8192, n_ubatch=100, gpus=0, version=version))
        return m.kv["CPU"]

    per_cell = 4 * 256 * 2 * 2  # 4 KV heads x 256 wide x 2 B x (K + V): R35's 416 MiB = 13 x 8192 cells
    assert kv("current") == 13 * (8192 + 4352) * per_cell
    assert kv("legacy") == 13 * (8192 + 4224) * per_cell
    assert kv("2025-10") == 13 * (8192 + 4196) * per_cell


def test_cli_llamacpp_version_reaches_the_padding(fake_hub: object) -> None:
    """``--llamacpp-version`` sizes the era asked: -c 2500 is 2560 cells now, 2528 in the legacy era."""
    import json
    import subprocess
    import sys

    from fixtures.gguf_build import LLAMA31_GGUF, add_gguf_repo

    if LLAMA31_GGUF not in fake_hub.repos:  # type: ignore[attr-defined]
        add_gguf_repo(fake_hub)
    base = [
        sys.executable,
        "-m",
        "hubfit.cli",
        LLAMA31_GGUF,
        "--ctx-size",
        "2500",
        "--file",
        "Q4_K_M",
        "--json",
    ]
    for era, cells in (("current", 2560), ("legacy", 2528), ("2025-10", 2500)):
        out = subprocess.run([*base, "--llamacpp-version", era], capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["gguf_fit"]["n_ctx"] == cells, era
