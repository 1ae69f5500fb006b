"""GPTQ and AWQ: integer weights packed into int32 ``qweight``; ``qzeros``, ``scales``, ``g_idx`` are metadata.

GPTQ packs along the input dimension (``qweight`` is ``[in * bits / 32, out]``), AWQ along the output dimension
(``[in, out * bits / 32]``); either way each int32 holds ``32 / bits`` weights (AutoGPTQ
``nn_modules/qlinear``, AutoAWQ ``modules/linear/gemm.py``). A 3-bit GPTQ ``qweight`` packs 32 weights in 3 int32
values, which the same ratio counts exactly.
"""

from __future__ import annotations

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule, packing, suffix

_METADATA = {"qzeros", "scales", "g_idx"}


class GPTQ(QuantFormat):
    method = "gptq"

    def details(self) -> dict:
        keys = ("desc_act", "sym", "checkpoint_format")
        return {k: self.config[k] for k in keys if k in self.config}

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        last = suffix(tensor.name)
        if last == "qweight" and tensor.dtype in ("I32", "U32"):
            return TensorRule(values_per_element=packing(32, self.bits or 4))
        if last in _METADATA:
            return METADATA
        return UNPACKED


class AWQ(GPTQ):
    method = "awq"

    def details(self) -> dict:
        keys = ("version", "zero_point")
        return {k: self.config[k] for k in keys if k in self.config}
