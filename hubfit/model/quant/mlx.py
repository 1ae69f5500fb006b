"""MLX affine quantization: ``weight`` packed into U32 (``32 / bits`` per element) with ``scales`` and
``biases`` per group (ml-explore/mlx ``mlx/nn/layers/quantized.py``; mlx-lm writes
``"quantization": {"group_size", "bits"}`` into config.json)."""

from __future__ import annotations

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule, packing, suffix


class MLX(QuantFormat):
    method = "mlx"

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        last = suffix(tensor.name)
        prefix = tensor.name[: -len(last)]
        if last in ("scales", "biases") and prefix + "weight" in tensors:
            return METADATA
        if last == "weight" and tensor.dtype == "U32" and prefix + "scales" in tensors:
            return TensorRule(values_per_element=packing(32, self.bits or 4))
        return UNPACKED
