"""Quantization formats: one small class per format (see :mod:`hubfit.quant.base`).

:func:`detect` picks the format from ``config.json``'s ``quantization_config`` (or an old-style
``quantize_config.json``, or MLX's ``quantization``); ``None`` means the checkpoint is not quantized.
"""

from __future__ import annotations

from typing import Any

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule
from hubfit.model.quant.bitsandbytes import BitsAndBytes
from hubfit.model.quant.compressed_tensors import CompressedTensors
from hubfit.model.quant.exl2 import EXL2
from hubfit.model.quant.fp8 import FP8
from hubfit.model.quant.gptq import AWQ, GPTQ
from hubfit.model.quant.mlx import MLX
from hubfit.model.quant.mxfp4 import MXFP4

__all__ = ["FORMATS", "METADATA", "UNPACKED", "QuantFormat", "TensorRule", "detect"]

FORMATS: tuple[type[QuantFormat], ...] = (GPTQ, AWQ, BitsAndBytes, FP8, MXFP4, CompressedTensors, EXL2, MLX)


def detect(
    quantization_config: dict[str, Any] | None,
    *,
    quantize_config: dict[str, Any] | None = None,
    mlx_quantization: dict[str, Any] | None = None,
) -> QuantFormat | None:
    """The format a checkpoint is stored in, or ``None`` for an unquantized checkpoint.

    Args:
        quantization_config: ``config.json``'s ``quantization_config``.
        quantize_config: the contents of ``quantize_config.json`` (AutoGPTQ's older layout).
        mlx_quantization: ``config.json``'s ``quantization`` (MLX).
    """
    # Only objects are settings (a config can hold anything; the model stage refuses other types by name).
    quantization_config = quantization_config if isinstance(quantization_config, dict) else None
    quantize_config = quantize_config if isinstance(quantize_config, dict) else None
    mlx_quantization = mlx_quantization if isinstance(mlx_quantization, dict) else None
    if quantization_config:
        for fmt in FORMATS:
            if fmt.matches(quantization_config):
                return fmt(dict(quantization_config))
        if "load_in_4bit" in quantization_config or "load_in_8bit" in quantization_config:
            return BitsAndBytes(dict(quantization_config))
    if quantize_config:
        method = str(quantize_config.get("quant_method", "gptq")).lower()
        return (AWQ if method == "awq" else GPTQ)(dict(quantize_config))
    if mlx_quantization and "bits" in mlx_quantization:
        return MLX(dict(mlx_quantization))
    if quantization_config and quantization_config.get("quant_method"):
        # A method hubfit has no rules for: report it, count tensors as stored.
        return _Unknown(dict(quantization_config))
    return None


class _Unknown(QuantFormat):
    """A declared method without packing rules: tensors are counted as stored."""

    @property
    def name(self) -> str:
        return str(self.config.get("quant_method"))

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        return UNPACKED
