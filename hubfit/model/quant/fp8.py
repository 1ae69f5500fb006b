"""FP8 checkpoints: F8_E4M3 weights with per-tensor or block scales.

DeepSeek-V3-style block quantization stores ``weight_scale_inv`` (F32, one value per 128 x 128 block) beside each
FP8 ``weight`` (``quantization_config.weight_block_size``); per-tensor FP8 checkpoints store ``weight_scale`` and
``input_scale`` scalars. Scales are metadata; FP8 weights count one parameter per element.
"""

from __future__ import annotations

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule, suffix

_METADATA = {"weight_scale_inv", "weight_scale", "input_scale", "output_scale", "k_scale", "v_scale"}


class FP8(QuantFormat):
    method = "fp8"

    @property
    def bits(self) -> float | None:
        return 8.0

    def details(self) -> dict:
        keys = ("fmt", "activation_scheme", "weight_block_size")
        return {k: self.config[k] for k in keys if k in self.config}

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        return METADATA if suffix(tensor.name) in _METADATA else UNPACKED
