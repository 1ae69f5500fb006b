"""Which GPUs a serving engine starts on, and with how many: the engine's view of the GPU table.

``hubfit MODEL --engine vllm`` (or ``sglang``) without a single ``--gpu`` asks, for every GPU of the set, the
engine policy (:func:`hubfit.sizing.serving.serve`) for the smallest tensor-parallel size that starts at the
settings given (1, 2, 4, 8 ways, the sizes the model's heads allow): the answer a user deploys with, with the KV
tokens and the concurrency that layout gives. A ``--tensor-parallel-size`` above 1 fixes the size instead.
Apple silicon is left out: neither engine runs on Metal.
"""

from __future__ import annotations

from dataclasses import replace

from hubfit.errors import UsageError
from hubfit.fit.gpus import GPU
from hubfit.fit.planner import valid_tp
from hubfit.model.component import Model
from hubfit.sizing.engine import TensorGroups
from hubfit.sizing.serving import serve
from hubfit.sizing.vllm import ServeSettings, Serving

__all__ = ["TP_SIZES", "serving_options"]

#: Tensor-parallel sizes tried, smallest first (one node of up to eight GPUs).
TP_SIZES = (1, 2, 4, 8)


def serving_options(
    model: Model, settings: ServeSettings, devices: tuple[GPU, ...], groups: TensorGroups | None = None
) -> list[Serving]:
    """The engine's startup on each device at the smallest TP that starts (the largest tried when none does).

    Raises:
        UsageError: the engine does not model this model's cache layout.
    """
    groups = groups or TensorGroups.of(model)
    config = model.main.config
    sizes: tuple[int, ...] = (
        (settings.tensor_parallel_size,) if settings.tensor_parallel_size > 1 else TP_SIZES
    )
    sizes = tuple(tp for tp in sizes if valid_tp(config, tp)) or sizes[:1]
    out: list[Serving] = []
    for gpu in devices:
        if gpu.gpu_class == "apple":
            continue
        last: Serving | None = None
        for tp in sizes:
            last = serve(
                model, replace(settings, tensor_parallel_size=tp), gpu.name, gpu.memory_bytes, groups
            )
            if last.starts:
                break
        if last is not None:
            out.append(last)
    if not out:
        raise UsageError("no GPU of the set runs a serving engine (Apple silicon only): name one with --gpu")
    return out
