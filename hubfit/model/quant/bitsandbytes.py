"""bitsandbytes: 4-bit (NF4/FP4) weights packed two per uint8; 8-bit (LLM.int8) weights as int8.

4-bit: ``weight`` is U8 ``[n / 2, 1]`` beside ``weight.absmax``, ``weight.quant_map``, ``weight.nested_absmax``,
``weight.nested_quant_map`` and ``weight.quant_state.bitsandbytes__nf4`` (transformers
``integrations/bitsandbytes.py``, bitsandbytes ``functional.QuantState.as_dict``). 8-bit: ``weight`` I8 plus
``SCB`` and ``weight_format``.
"""

from __future__ import annotations

from fractions import Fraction

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule

_META_MARKERS = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.", ".SCB")


class BitsAndBytes(QuantFormat):
    method = "bitsandbytes"

    @property
    def four_bit(self) -> bool:
        return (
            bool(self.config.get("load_in_4bit")) or str(self.config.get("_load_in_4bit")).lower() == "true"
        )

    @property
    def bits(self) -> float | None:
        return 4.0 if self.four_bit else 8.0

    def details(self) -> dict:
        keys = ("bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype")
        return {k: self.config[k] for k in keys if k in self.config}

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        if any(marker in tensor.name for marker in _META_MARKERS) or tensor.name.endswith(".weight_format"):
            return METADATA
        if self.four_bit and tensor.dtype == "U8" and tensor.name.endswith(".weight"):
            return TensorRule(values_per_element=Fraction(2))
        return UNPACKED
