"""The shape every quantization format shares.

A format answers two questions about each stored tensor: is it quantization metadata (scales, zero points,
permutations: stored, but not parameters of the model), and how many logical parameters does a packed tensor
hold? Everything else (roles, layers, MoE, ties) is format-independent and lives in :mod:`hubfit.params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from hubfit.formats.safetensors import TensorInfo


@dataclass(frozen=True)
class TensorRule:
    """What a format says about one tensor: metadata, or how many logical values each stored element holds."""

    metadata: bool = False
    values_per_element: Fraction = Fraction(1)


UNPACKED = TensorRule()
METADATA = TensorRule(metadata=True)


@dataclass
class QuantFormat:
    """Base class: a checkpoint format that stores some weights quantized.

    Subclasses set ``method`` and implement :meth:`rule`. ``config`` is the ``quantization_config`` dict (or
    the equivalent file) the format was detected from.
    """

    method: ClassVar[str] = ""
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        return str(config.get("quant_method", "")).lower() == cls.method

    @property
    def bits(self) -> float | None:
        value = self.config.get("bits")
        return float(value) if isinstance(value, int | float) else None

    @property
    def group_size(self) -> int | None:
        value = self.config.get("group_size")
        return int(value) if isinstance(value, int) else None

    def details(self) -> dict[str, Any]:
        """Settings worth reporting beside method and bits."""
        return {}

    def rule(self, tensor: TensorInfo, tensors: dict[str, TensorInfo]) -> TensorRule:
        """How to count ``tensor``; ``tensors`` holds every tensor of the component, for sibling lookups."""
        raise NotImplementedError


def packing(container_bits: int, value_bits: float | None) -> Fraction:
    """Values of ``value_bits`` each held by one element of ``container_bits`` (32 / 4 = 8 for int4 in int32)."""
    if not value_bits:
        raise ValueError("packed format without a bit width")
    return Fraction(container_bits) / Fraction(value_bits).limit_denominator(64)


def suffix(name: str) -> str:
    """The last dotted component of a tensor name."""
    return name.rsplit(".", 1)[-1]
