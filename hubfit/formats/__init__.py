"""File formats read from header bytes alone: the safetensors header (and the dtype facts it needs).

Bytes in, validated typed headers out; no I/O policy (sources decide what to read).
"""

from hubfit.formats.safetensors import SafetensorsHeader, TensorInfo, parse_header, validate_header

__all__ = ["SafetensorsHeader", "TensorInfo", "parse_header", "validate_header"]
