"""The serving engines' one door: ``serve`` runs the policy of the engine the settings name.

vLLM (:mod:`hubfit.sizing.vllm`) and SGLang (:mod:`hubfit.sizing.sglang`) are two sizing policies over the one
sizing engine; both answer with a :class:`~hubfit.sizing.vllm.Serving`.
"""

from __future__ import annotations

from hubfit.model.component import Model
from hubfit.sizing import sglang, vllm
from hubfit.sizing.engine import TensorGroups
from hubfit.sizing.vllm import ServeSettings, Serving

__all__ = ["serve"]


def serve(
    model: Model,
    settings: ServeSettings,
    gpu: str,
    memory_bytes: int,
    groups: TensorGroups | None = None,
    *,
    total_bytes: int | None = None,
) -> Serving:
    """The engine's startup for ``model`` on ``tp x pp`` GPUs of one kind (``settings.engine`` picks it).

    Raises:
        UsageError: a cache layout the engine's policy does not model, or settings it rejects.
    """
    policy = sglang.serve if settings.engine == "sglang" else vllm.serve
    return policy(model, settings, gpu, memory_bytes, groups, total_bytes=total_bytes)
