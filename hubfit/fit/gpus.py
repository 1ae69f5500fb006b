"""The GPU catalog: what each device offers (memory, bandwidth, formats), and how users name one.

The figures live in ``data/gpus.yaml`` with a source for each; this module loads them once, answers
``find_gpu("4090")`` forgivingly, and parses ``--gpu-memory`` sizes. Memory is in bytes as the device reports
it (nvidia-smi / rocm-smi ``memory.total``); Apple silicon rows carry the unified RAM size and the GPU may use
only a share of it (:data:`apple_gpu_share`, about 75 % by default on macOS).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from types import MappingProxyType
from typing import Any

from hubfit import _data
from hubfit.errors import UnknownGPUError, UsageError

__all__ = [
    "GPU",
    "GPU_CLASSES",
    "apple_gpu_share",
    "catalog",
    "catalog_text",
    "custom_gpu",
    "default_gpus",
    "find_gpu",
    "parse_size",
]

#: Display order of the device classes.
GPU_CLASSES = ("consumer", "workstation", "datacenter", "apple")

_REQUIRED_SOURCES = ("memory", "bandwidth", "tflops", "formats")
_BASES = ("driver", "estimate", "unified", "user")
# Words that carry no identity: "NVIDIA GeForce RTX 4090" and "rtx 4090" name the same card.
_NOISE = re.compile(r"\b(nvidia|geforce|amd|instinct|apple|tesla|radeon)\b")


@dataclass(frozen=True)
class GPU:
    """One device of the catalog (or one the user described with ``--gpu-memory``).

    Attributes:
        id: stable key, e.g. ``"rtx-4090"``.
        name: display name, e.g. ``"RTX 4090"``.
        vendor: ``nvidia``, ``amd``, ``apple`` (``custom`` for a user-described card).
        gpu_class: ``consumer``, ``workstation``, ``datacenter`` or ``apple``.
        memory_bytes: memory as the device reports it; for Apple silicon the unified RAM size.
        memory_basis: ``driver`` (a reported total), ``estimate`` (from the marketed size), ``unified`` (Apple
            RAM) or ``user`` (``--gpu-memory``).
        bandwidth_bytes_per_s: peak memory bandwidth in bytes per second (``None`` when unknown).
        fp16_tflops: dense FP16 tensor TFLOPS (Apple: the FP32 GPU figure); ``None`` when unknown.
        bf16, fp8, fp4: native tensor support for the format.
        devices_per_card: devices one card shows to the runtime (MI250X: 2); counts are in devices.
        per_node: most devices of this kind in one node (8 for servers, 1 for an Apple machine).
        default: part of the curated default set.
        aliases: extra names accepted as an exact match.
        source: where each figure comes from (``memory``, ``bandwidth``, ``tflops``, ``formats``).
    """

    id: str
    name: str
    vendor: str
    gpu_class: str
    memory_bytes: int
    memory_basis: str
    bandwidth_bytes_per_s: float | None
    fp16_tflops: float | None
    bf16: bool = True
    fp8: bool = False
    fp4: bool = False
    devices_per_card: int = 1
    per_node: int = 8
    default: bool = False
    aliases: tuple[str, ...] = ()
    source: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def unified_memory(self) -> bool:
        """Whether the device shares system RAM with the CPU (Apple silicon)."""
        return self.gpu_class == "apple"

    def usable_bytes(self, gpu_share: float | None = None) -> int:
        """Bytes a model may occupy on one device.

        For Apple silicon this is the GPU's share of unified memory (``gpu_share``, default
        :func:`apple_gpu_share`); for every other device it is :attr:`memory_bytes`.
        """
        if not self.unified_memory:
            return self.memory_bytes
        share = apple_gpu_share() if gpu_share is None else gpu_share
        return int(self.memory_bytes * share)

    def with_memory(self, memory_bytes: int) -> GPU:
        """The same device with a different memory size (``--gpu NAME --gpu-memory SIZE``)."""
        return replace(self, memory_bytes=memory_bytes, memory_basis="user")

    def to_dict(self, gpu_share: float | None = None) -> dict[str, Any]:
        """The catalog row as JSON (``hubfit gpus --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "class": self.gpu_class,
            "memory_bytes": self.memory_bytes,
            "usable_bytes": self.usable_bytes(gpu_share),
            "memory_basis": self.memory_basis,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "fp16_tflops": self.fp16_tflops,
            "bf16": self.bf16,
            "fp8": self.fp8,
            "fp4": self.fp4,
            "devices_per_card": self.devices_per_card,
            "per_node": self.per_node,
            "default": self.default,
            "aliases": list(self.aliases),
            "source": dict(self.source),
        }


@cache
def _document() -> dict[str, Any]:
    return _data.load("gpus")


def _row_to_gpu(row: dict[str, Any]) -> GPU:
    ident = row.get("id", "?")
    source = row.get("source") or {}
    missing = [key for key in _REQUIRED_SOURCES if not source.get(key)]
    if missing:
        raise ValueError(f"gpus.yaml: {ident} has no source for {', '.join(missing)}")
    if row["class"] not in GPU_CLASSES or row["memory_basis"] not in _BASES:
        raise ValueError(f"gpus.yaml: {ident} has an unknown class or memory_basis")
    bandwidth = row.get("bandwidth_gb_s")
    return GPU(
        id=str(row["id"]),
        name=str(row["name"]),
        vendor=str(row["vendor"]),
        gpu_class=str(row["class"]),
        memory_bytes=int(row["memory_bytes"]),
        memory_basis=str(row["memory_basis"]),
        bandwidth_bytes_per_s=float(bandwidth) * 1e9 if bandwidth is not None else None,
        fp16_tflops=float(row["fp16_tflops"]) if row.get("fp16_tflops") is not None else None,
        bf16=bool(row.get("bf16", True)),
        fp8=bool(row.get("fp8", False)),
        fp4=bool(row.get("fp4", False)),
        devices_per_card=int(row.get("devices_per_card", 1)),
        per_node=int(row.get("per_node", 8)),
        default=bool(row.get("default", False)),
        aliases=tuple(str(alias) for alias in row.get("aliases") or ()),
        source=MappingProxyType({str(k): str(v) for k, v in source.items()}),
    )


@cache
def catalog() -> tuple[GPU, ...]:
    """Every device in ``data/gpus.yaml``, in file order (loaded once)."""
    return tuple(_row_to_gpu(row) for row in _document()["gpus"])


def default_gpus() -> tuple[GPU, ...]:
    """The curated default set (rows marked ``default: true``), across consumer, workstation, data centre."""
    return tuple(gpu for gpu in catalog() if gpu.default)


def apple_gpu_share() -> float:
    """The share of unified memory macOS lets the GPU use by default (``apple_gpu_share`` in gpus.yaml)."""
    return float(_document()["apple_gpu_share"])


def custom_gpu(memory_bytes: int) -> GPU:
    """A card the catalog does not list, described only by its memory (``--gpu-memory`` alone)."""
    gib = memory_bytes / 2**30
    return GPU(
        id="custom",
        name=f"custom {gib:g} GiB" if gib == round(gib, 2) else f"custom {gib:.2f} GiB",
        vendor="custom",
        gpu_class="consumer",
        memory_bytes=memory_bytes,
        memory_basis="user",
        bandwidth_bytes_per_s=None,
        fp16_tflops=None,
        source=MappingProxyType({"memory": "--gpu-memory"}),
    )


def catalog_text(gpus: tuple[GPU, ...], gpu_share: float | None = None) -> str:
    """The catalog as a terminal table (``hubfit gpus``), grouped by class; ``*`` marks the default set.

    Memory is shown in GiB (2^30 bytes) as the device reports it; for Apple silicon the GPU's share of the
    unified memory, with the RAM size beside it.
    """
    share = apple_gpu_share() if gpu_share is None else gpu_share
    header = ("", "id", "name", "memory GiB", "basis", "GB/s", "FP16 TFLOPS", "BF16", "FP8", "FP4")
    rows: list[tuple[str, ...]] = []
    titles = {
        "consumer": "consumer",
        "workstation": "workstation",
        "datacenter": "data centre",
        "apple": "Apple",
    }
    for gpu_class in GPU_CLASSES:
        members = [gpu for gpu in gpus if gpu.gpu_class == gpu_class]
        if not members:
            continue
        rows.append((f"{titles[gpu_class]}:",) + ("",) * (len(header) - 1))
        for gpu in members:
            memory = f"{gpu.usable_bytes(share) / 2**30:.2f}"
            if gpu.unified_memory:
                memory += f" of {gpu.memory_bytes / 2**30:.0f}"
            rows.append(
                (
                    "*" if gpu.default else "",
                    gpu.id,
                    gpu.name,
                    memory,
                    gpu.memory_basis,
                    f"{gpu.bandwidth_bytes_per_s / 1e9:g}" if gpu.bandwidth_bytes_per_s else "?",
                    f"{gpu.fp16_tflops:g}" if gpu.fp16_tflops else "?",
                    *("yes" if flag else "no" for flag in (gpu.bf16, gpu.fp8, gpu.fp4)),
                )
            )
    table = [header, *(row for row in rows if not row[0].endswith(":"))]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        if row[0].endswith(":"):
            lines.append(row[0])
            continue
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2])]
        cells += [cell.rjust(width) for cell, width in zip(row[3:], widths[3:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.append(
        f"* default set. memory: as the driver reports it (basis: driver = a reported total, estimate = from the "
        f"marketed size); Apple: the GPU's {share:.0%} share of unified memory (--apple-gpu-share)."
    )
    lines.append("Sources for every figure: hubfit gpus --json")
    return "\n".join(lines) + "\n"


# ---- forgiving names ----------------------------------------------------------------------------------
def _compact(text: str) -> str:
    """Lower-case, vendor words dropped, only letters and digits: "NVIDIA GeForce RTX-4090" -> "rtx4090"."""
    return re.sub(r"[^a-z0-9]", "", _NOISE.sub(" ", text.lower()))


@cache
def _names() -> dict[str, tuple[GPU, ...]]:
    """Every exact key (id, name, alias; compacted) -> the devices it names."""
    table: dict[str, list[GPU]] = {}
    for gpu in catalog():
        for key in {_compact(gpu.id), _compact(gpu.name), *(_compact(a) for a in gpu.aliases)}:
            if gpu not in table.setdefault(key, []):
                table[key].append(gpu)
    return {key: tuple(gpus) for key, gpus in table.items()}


def find_gpu(query: str) -> GPU:
    """The catalog device ``query`` names, matched forgivingly.

    Case, spaces, hyphens and vendor words are ignored ("nvidia rtx-4090", "RTX 4090" and "4090" all name the
    RTX 4090). An exact id, name or alias wins; otherwise every word of the query must appear in exactly one
    device's name or aliases ("h100 pcie", "m3 ultra").

    Raises:
        UnknownGPUError: nothing matches (with the closest names as suggestions), or several devices do.
    """
    key = _compact(query)
    if not key:
        raise UnknownGPUError(f"empty GPU name {query!r}; run 'hubfit gpus' to list the catalog")
    exact = _names().get(key)
    if exact and len(exact) == 1:
        return exact[0]
    words = [_compact(word) for word in _NOISE.sub(" ", query.lower()).split()]
    words = [word for word in words if word]
    matches = [
        gpu for gpu in catalog() if any(all(word in name for word in words) for name in _gpu_keys(gpu))
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(gpu.name for gpu in matches[:8])
        raise UnknownGPUError(f"GPU name {query!r} is ambiguous: {listed}; give more of the name")
    suggestions = difflib.get_close_matches(key, list(_names()), n=3, cutoff=0.5)
    names = list(dict.fromkeys(_names()[s][0].name for s in suggestions))
    hint = f"; did you mean {', '.join(names)}?" if names else ""
    raise UnknownGPUError(f"unknown GPU {query!r}{hint} (run 'hubfit gpus' to list the catalog)")


def _gpu_keys(gpu: GPU) -> tuple[str, ...]:
    return (_compact(gpu.id), _compact(gpu.name), *(_compact(a) for a in gpu.aliases))


# ---- sizes --------------------------------------------------------------------------------------------
_UNITS = {
    "": 2**30,  # a bare number is GiB: "--gpu-memory 24" describes a 24 GiB card
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes from a size: ``"24GiB"`` (2^30), ``"24GB"`` (10^9), ``"24"`` (GiB), ``"23.5 GiB"``, ``"24576MiB"``.

    ``G``/``M``/``T`` without ``B`` are binary (like nvidia-smi's MiB). The result is a whole number of bytes.

    Raises:
        UsageError: not a positive size with a known unit.
    """
    match = _SIZE.match(text.lower())
    if not match or match.group(2) not in _UNITS:
        raise UsageError(f"invalid size {text!r}: use a number with GiB, GB, MiB or MB (e.g. 24GiB)")
    value = int(Fraction(match.group(1)) * _UNITS[match.group(2)])
    if value <= 0:
        raise UsageError(f"invalid size {text!r}: must be greater than zero")
    return value
