"""The model: config facts, which files are weights, quantization formats, tensors by role, logical counts."""

from hubfit.model.config import ModelConfig
from hubfit.model.params import ROLES, LogicalTensor, inventory

__all__ = ["ROLES", "LogicalTensor", "ModelConfig", "inventory"]
