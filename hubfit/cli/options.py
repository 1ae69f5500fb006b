"""Flags shared by every command that builds a report (``analyze``, ``scan``, ``card``, ``comment``).

Declared once so the commands cannot drift apart: the workload flags (memory table) and the hardware flags
(GPU fit), with the functions that turn the parsed values into a :class:`hubfit.memory.Workload` and a
:class:`hubfit.fit.HardwareQuery`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["hardware_from", "hardware_options", "workload_from", "workload_options"]

_WORKLOAD = [
    click.option(
        "--context",
        type=int,
        help="Tokens per sequence (default 4096, capped at the model's maximum; 0: weights only).",
    ),
    click.option("--batch", type=int, default=1, show_default=True, help="Concurrent sequences."),
    click.option("--kv-dtype", help="KV-cache dtype: fp8, fp16, bf16 or fp32 (default: 16-bit)."),
    click.option(
        "--precision",
        "precisions",
        multiple=True,
        metavar="NAME",
        help="A precision row: stored, fp32, bf16, fp16, fp8, int8, int4, mxfp4, nvfp4 or a GGUF type "
        "(Q4_K ...); repeatable (default: stored fp32 bf16 int8 int4).",
    ),
    click.option(
        "--bpw", "bpws", type=float, multiple=True, help="A row at this average bits per weight (EXL2-style)."
    ),
    click.option(
        "--overhead", type=float, help="Seed formula: overhead = this fraction of the weights, no KV cache."
    ),
]

_HARDWARE = [
    click.option(
        "--gpu",
        "gpus",
        multiple=True,
        metavar="NAME",
        help="A GPU to fit on, matched forgivingly ('4090', 'h100 sxm'); repeatable (default: a curated set "
        "across consumer, workstation, data-centre and Apple). See `hubfit gpus`.",
    ),
    click.option(
        "--gpus", "gpu_count", type=int, help="A fixed number of devices (default: the fewest that fit)."
    ),
    click.option(
        "--gpu-memory",
        metavar="SIZE",
        help="Memory per device: 24GiB, 24GB, 24576MiB or 24 (GiB). Alone: a card the catalog does not "
        "list; with --gpu: overrides its memory.",
    ),
    click.option(
        "--apple-gpu-share",
        type=float,
        help="Share of unified memory the GPU may use on Apple silicon (default 0.75, macOS's default).",
    ),
]


def _apply(options: list[Callable], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def workload_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--context --batch --kv-dtype --precision --bpw --overhead``."""
    return _apply(_WORKLOAD, fn)


def hardware_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--gpu --gpus --gpu-memory --apple-gpu-share``."""
    return _apply(_HARDWARE, fn)


def workload_from(opts: dict[str, Any]) -> Any:
    """The :class:`~hubfit.memory.Workload` of the parsed flags (removed from ``opts``)."""
    from hubfit.sizing.memory import Workload

    return Workload(
        opts.pop("context"),
        opts.pop("batch"),
        opts.pop("kv_dtype"),
        opts.pop("precisions"),
        opts.pop("bpws"),
        opts.pop("overhead"),
    )


def hardware_from(opts: dict[str, Any]) -> Any:
    """The :class:`~hubfit.fit.HardwareQuery` of the parsed flags (removed from ``opts``).

    Raises:
        hubfit.errors.UsageError: an unknown GPU name or a bad size, before any Hub request.
    """
    from hubfit.fit.gpus import parse_size
    from hubfit.fit.planner import HardwareQuery

    memory = opts.pop("gpu_memory")
    hardware = HardwareQuery(
        opts.pop("gpus"),
        opts.pop("gpu_count"),
        parse_size(memory) if memory is not None else None,
        opts.pop("apple_gpu_share"),
    )
    hardware.devices()
    return hardware
