"""MXFP4 (OCP microscaling FP4), as gpt-oss stores it.

Each quantized weight ``X`` is split into ``X_blocks`` (U8, two FP4 e2m1 values per byte, shape
``[..., n_blocks, 16]`` for 32-value blocks) and ``X_scales`` (U8 E8M0 exponents, one per block)
(transformers ``integrations/mxfp4.py``; OCP Microscaling Formats spec v1.0). Blocks hold 2 parameters per
element; scales are metadata.
"""

from __future__ import annotations

from fractions import Fraction

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule


class MXFP4(QuantFormat):
    method = "mxfp4"

    @property
    def bits(self) -> float | None:
        return 4.25  # 4-bit elements plus one 8-bit scale per 32 values

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        if tensor.name.endswith("_blocks") and tensor.dtype == "U8":
            return TensorRule(values_per_element=Fraction(2))
        if tensor.name.endswith("_scales") and tensor.dtype in ("U8", "F8_E8M0"):
            return METADATA
        return UNPACKED
