"""GPU fit: the catalog, and how many of which device hold a model (asking the sizing engine per layout)."""

from hubfit.fit.gpus import GPU, catalog, find_gpu, parse_size
from hubfit.fit.planner import FitReport, HardwareQuery, evaluate

__all__ = ["GPU", "FitReport", "HardwareQuery", "catalog", "evaluate", "find_gpu", "parse_size"]
