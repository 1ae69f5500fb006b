"""The GPU catalog (hubfit/data/gpus.yaml), the forgiving GPU matcher and --gpu-memory sizes."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from hubfit.errors import UnknownGPUError, UsageError
from hubfit.fit import gpus as hardware
from hubfit.fit.gpus import catalog, custom_gpu, default_gpus, find_gpu, parse_size

MIB = 2**20
GIB = 2**30


def test_catalog_has_at_least_30_devices_each_with_a_source_for_every_figure():
    gpus = catalog()
    assert len(gpus) >= 30
    assert len({gpu.id for gpu in gpus}) == len(gpus)
    for gpu in gpus:
        for figure in ("memory", "bandwidth", "tflops", "formats"):
            assert gpu.source.get(figure), (gpu.id, figure)
        assert gpu.memory_bytes > 0 and gpu.bandwidth_bytes_per_s and gpu.fp16_tflops
        assert gpu.memory_basis in ("driver", "estimate", "unified")


def test_catalog_covers_the_devices_the_issue_lists():
    required = [
        "RTX 3060", "RTX 3090", "RTX 4060 Ti", "RTX 4070 Ti Super", "RTX 4080", "RTX 4090", "RTX 5090",
        "T4", "V100 16GB", "V100 32GB", "A10G", "L4", "L40S", "A100 40GB", "A100 80GB", "H100 PCIe",
        "H100 SXM", "H100 NVL", "H200", "GH200", "B200", "MI250X", "MI300X", "MI325X",
        "M2 Max", "M2 Ultra", "M3 Max", "M3 Ultra", "M4 Max",
    ]  # fmt: skip
    for name in required:
        find_gpu(name)  # raises if missing or ambiguous
    classes = {gpu.gpu_class for gpu in catalog()}
    assert classes == {"consumer", "workstation", "datacenter", "apple"}


def test_memory_is_what_the_driver_reports_not_the_marketed_size():
    # nvidia-smi totals quoted in the sources named in gpus.yaml:
    assert find_gpu("RTX 4090").memory_bytes == 24564 * MIB  # github.com/RLinf/RLinf/issues/255
    assert find_gpu("H100 SXM").memory_bytes == 81559 * MIB == 85_520_809_984  # modal-client PR 2797
    assert find_gpu("A100 80GB").memory_bytes == 81920 * MIB
    assert find_gpu("L4").memory_bytes == 23034 * MIB
    assert find_gpu("B200").memory_bytes == 183359 * MIB  # TensorRT-LLM issue 10278
    # rocm-smi "VRAM Total Memory (B)" (ROCm/legacy-rocm-build issue 4750), = rocminfo 201310208 KB (issue 4414)
    assert find_gpu("MI300X").memory_bytes == 206_141_652_992 == 201_310_208 * 1024
    for gpu in catalog():
        if gpu.memory_basis == "driver" and gpu.vendor == "nvidia" and gpu.id != "h100-nvl":
            assert gpu.memory_bytes % MIB == 0, gpu.id  # nvidia-smi reports whole MiB


def test_yaml_mib_comments_agree_with_the_byte_counts():
    text = resources.files("hubfit").joinpath("data/gpus.yaml").read_text(encoding="utf-8")
    pairs = re.findall(r"memory_bytes: (\d+)\s+# (\d+) (MiB|GiB)", text)
    assert len(pairs) >= 25
    for value, amount, unit in pairs:
        assert int(value) == int(amount) * (MIB if unit == "MiB" else GIB)


def test_apple_gpu_share_defaults_to_75_percent_and_is_adjustable():
    m3 = find_gpu("M3 Ultra")
    assert m3.unified_memory and m3.per_node == 1
    assert m3.memory_bytes == 512 * GIB
    assert hardware.apple_gpu_share() == 0.75
    assert m3.usable_bytes() == 384 * GIB  # 75 % of 512 GiB
    assert m3.usable_bytes(0.9) == int(512 * GIB * 0.9)
    # a discrete card ignores the share
    assert find_gpu("4090").usable_bytes(0.5) == 24564 * MIB


def test_mi250x_is_counted_per_gcd():
    gcd = find_gpu("MI250X")
    assert gcd.devices_per_card == 2
    # LLMA mi250x-128gb.json: 128 GB, 3200 GB/s, 383 TFLOPS per card -> half per device (rounded to 3276.8 GB/s)
    assert gcd.memory_bytes == 64 * GIB
    assert gcd.bandwidth_bytes_per_s == pytest.approx(3276.8e9 / 2)


def test_formats_fp8_fp4():
    assert find_gpu("H100").fp8 and not find_gpu("H100").fp4
    assert find_gpu("B200").fp4 and find_gpu("5090").fp4
    assert not find_gpu("A100").fp8 and not find_gpu("T4").bf16


@pytest.mark.parametrize(
    ("query", "gpu_id"),
    [
        ("4090", "rtx-4090"),
        ("RTX 4090", "rtx-4090"),
        ("rtx4090", "rtx-4090"),
        ("NVIDIA GeForce RTX-4090", "rtx-4090"),
        ("  rtx   4090 ", "rtx-4090"),
        ("h100 sxm", "h100-sxm"),
        ("SXM H100", "h100-sxm"),
        ("h100", "h100-sxm"),
        ("H100 PCIe", "h100-pcie"),
        ("l4", "l4"),
        ("l40s", "l40s"),
        ("a100", "a100-80gb"),
        ("a100 40gb", "a100-40gb"),
        ("mi300x", "mi300x"),
        ("AMD Instinct MI325X", "mi325x"),
        ("m4 max", "m4-max-128gb"),
        ("4070 ti super", "rtx-4070-ti-super"),
        ("rtx-6000-ada", "rtx-6000-ada"),
    ],
)
def test_find_gpu_is_forgiving(query, gpu_id):
    assert find_gpu(query).id == gpu_id


def test_find_gpu_unknown_suggests_close_names():
    with pytest.raises(UnknownGPUError) as info:
        find_gpu("rtx 4900")
    message = str(info.value)
    assert "RTX 4090" in message and "hubfit gpus" in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_find_gpu_ambiguous_lists_candidates():
    with pytest.raises(UnknownGPUError, match="ambiguous: V100 16GB, V100 32GB"):
        find_gpu("v100")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GiB", 24 * GIB),
        ("24gib", 24 * GIB),
        ("24 GiB", 24 * GIB),
        ("24GB", 24 * 10**9),
        ("24", 24 * GIB),
        ("24G", 24 * GIB),
        ("23.5GiB", 23 * GIB + GIB // 2),
        ("24564MiB", 24564 * MIB),
        ("0.1GB", 100_000_000),
        ("1TB", 10**12),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "24 parsecs", "-1GB", "0", "1e3GB", "GiB"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_default_set_spans_classes_and_custom_gpu():
    classes = {gpu.gpu_class for gpu in default_gpus()}
    assert {"consumer", "workstation", "datacenter", "apple"} <= classes
    card = custom_gpu(20 * GIB)
    assert card.memory_bytes == 20 * GIB and card.bandwidth_bytes_per_s is None
    assert card.name == "custom 20 GiB"
    assert find_gpu("4090").with_memory(20 * GIB).memory_basis == "user"


def test_to_dict_round_trips_the_row():
    row = find_gpu("H200").to_dict()
    assert row["memory_bytes"] == 143771 * MIB
    assert row["bandwidth_bytes_per_s"] == 4.8e12
    assert row["source"]["memory"]
