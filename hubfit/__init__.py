"""hubfit: what hardware does this Hugging Face model need?

Reads ``config.json`` and safetensors headers only (never the weights) and reports exact parameter counts,
memory per precision and GPU fit. The public API is imported lazily so ``hubfit --help`` stays fast::

    import hubfit
    report = hubfit.analyze("meta-llama/Llama-2-70b-hf")
    report.to_dict()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubfit._version import __version__

__all__ = ["HardwareQuery", "Model", "Report", "Workload", "__version__", "analyze", "load_model"]

_LAZY = {
    "analyze": ("hubfit.pipeline", "analyze"),
    "load_model": ("hubfit.pipeline", "load_model"),
    "Model": ("hubfit.model.component", "Model"),
    "Report": ("hubfit.report", "Report"),
    "Workload": ("hubfit.sizing.memory", "Workload"),
    "HardwareQuery": ("hubfit.fit.planner", "HardwareQuery"),
}

if TYPE_CHECKING:  # pragma: no cover
    from hubfit.fit.planner import HardwareQuery
    from hubfit.model.component import Model
    from hubfit.pipeline import analyze, load_model
    from hubfit.report import Report
    from hubfit.sizing.memory import Workload


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hubfit' has no attribute {name!r}")
