"""ExLlamaV2 EXL2: mixed-precision rows packed into int32 ``q_weight``.

Each quantized linear layer ``L`` stores ``L.q_weight`` (I32, ``[packed rows, out_features]``), ``L.q_invperm``
and optionally ``L.q_perm`` (one index per input feature), ``L.q_scale``, ``L.q_scale_max`` and ``L.q_groups``
(turboderp/exllamav2 ``exllamav2/linear.py``, ``conversion/quantize.py``). Bits vary per row group, so the
packed size does not give the count; ``in_features x out_features`` does: ``len(q_invperm) x q_weight.shape[-1]``.
"""

from __future__ import annotations

from fractions import Fraction

from hubfit.formats.safetensors import TensorInfo
from hubfit.model.quant.base import METADATA, UNPACKED, QuantFormat, TensorRule, suffix

_METADATA = {"q_invperm", "q_perm", "q_scale", "q_scale_max", "q_groups", "q_group_map"}


class EXL2(QuantFormat):
    method = "exl2"

    def details(self) -> dict:
        keys = ("head_bits", "version")
        return {k: self.config[k] for k in keys if k in self.config}

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        last = suffix(tensor.name)
        if last == "q_weight" and tensor.shape:
            prefix = tensor.name[: -len("q_weight")]
            invperm = tensors.get(prefix + "q_invperm") or tensors.get(prefix + "q_perm")
            if invperm is not None and tensor.elements:
                logical = invperm.elements * tensor.shape[-1]
                return TensorRule(values_per_element=Fraction(logical, tensor.elements))
        if last in _METADATA:
            return METADATA
        return UNPACKED
