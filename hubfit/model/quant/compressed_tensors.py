"""compressed-tensors (llm-compressor / vLLM): formats named by ``quantization_config.format``.

``pack-quantized`` stores integer weights packed into int32 ``weight_packed`` (``32 / num_bits`` per element)
with ``weight_scale``, ``weight_zero_point``, ``weight_shape`` and ``weight_g_idx``;
``nvfp4-pack-quantized`` stores FP4 pairs in U8 ``weight_packed`` with ``weight_scale`` and
``weight_global_scale``; ``float-quantized`` / ``int-quantized`` store FP8 / INT8 ``weight`` unpacked with
``weight_scale`` (neuralmagic/compressed-tensors ``compressors/quantized_compressors``).
"""

from __future__ import annotations

from typing import Any

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule, packing, suffix

_METADATA = {
    "weight_scale",
    "weight_zero_point",
    "weight_shape",
    "weight_g_idx",
    "weight_global_scale",
    "input_scale",
    "input_zero_point",
    "input_global_scale",
    "output_scale",
    "k_scale",
    "v_scale",
}


class CompressedTensors(QuantFormat):
    method = "compressed-tensors"

    def _weight_args(self) -> dict[str, Any]:
        for group in (self.config.get("config_groups") or {}).values():
            weights = group.get("weights") if isinstance(group, dict) else None
            if isinstance(weights, dict):
                return weights
        return {}

    @property
    def bits(self) -> float | None:
        value = self._weight_args().get("num_bits")
        return float(value) if isinstance(value, int) else None

    @property
    def group_size(self) -> int | None:
        value = self._weight_args().get("group_size")
        return int(value) if isinstance(value, int) else None

    def details(self) -> dict:
        out: dict[str, Any] = {"format": self.config.get("format")}
        weights = self._weight_args()
        for key in ("type", "strategy", "symmetric"):
            if key in weights:
                out[key] = weights[key]
        return out

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        last = suffix(tensor.name)
        if last == "weight_packed":
            container = {"I32": 32, "U32": 32, "I64": 64, "U8": 8, "I8": 8, "I16": 16, "U16": 16}.get(
                tensor.dtype
            )
            if container:
                return TensorRule(values_per_element=packing(container, self.bits or 4))
        if last in _METADATA:
            return METADATA
        return UNPACKED
