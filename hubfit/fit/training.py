"""Which GPUs a fine-tuning run fits, and with how many: the fine-tuning policy's view of the GPU table.

``hubfit MODEL --finetune METHOD`` without a single ``--gpu`` asks, for every GPU of the set, the fine-tuning
policy (:mod:`hubfit.sizing.training`) for the fewest GPUs that hold one step at the settings given: one GPU,
else 2, 4 or 8 data-parallel GPUs with the states sharded (FSDP full sharding, or the ``--sharding`` asked).
``--gpus N`` fixes the count instead. Apple silicon is left out: the policy models CUDA's caching allocator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hubfit.errors import UsageError
from hubfit.fit.gpus import GPU
from hubfit.model.component import Model
from hubfit.sizing.engine import TensorGroups
from hubfit.sizing.training import Training, TrainSettings, device_peak, train

__all__ = ["GPU_COUNTS", "TrainingOption", "training_options"]

#: Data-parallel sizes tried after one GPU (one node of up to eight).
GPU_COUNTS = (2, 4, 8)


@dataclass(frozen=True)
class TrainingOption:
    """The run on one GPU kind: the GPU and the fine-tuning policy's answer at the fewest GPUs that fit."""

    gpu: str
    memory_bytes: int
    training: Training


def training_options(
    model: Model, settings: TrainSettings, devices: tuple[GPU, ...], groups: TensorGroups | None = None
) -> list[TrainingOption]:
    """The run on each device at the fewest GPUs that fit (the largest tried when none does)."""
    groups = groups or TensorGroups.of(model)
    if settings.gpus > 1:
        trials = [settings]
    else:
        sharding = settings.sharding or "fsdp"
        trials = [settings, *(replace(settings, gpus=n, sharding=sharding) for n in GPU_COUNTS)]
    out: list[TrainingOption] = []
    for gpu in devices:
        if gpu.gpu_class == "apple":
            continue
        chosen = next((t for t in trials if device_peak(model, t, groups) <= gpu.memory_bytes), trials[-1])
        out.append(
            TrainingOption(
                gpu.name, gpu.memory_bytes, train(model, chosen, gpu.name, gpu.memory_bytes, groups)
            )
        )
    if not out:
        raise UsageError("the fine-tuning view needs a CUDA GPU: name one with --gpu")
    return out
