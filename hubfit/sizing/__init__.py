"""The sizing engine: weights per precision, KV cache per layer kind, overhead, and what each device holds."""

from hubfit.sizing.memory import Workload, estimate, per_gpu, precision, weights_bytes

__all__ = ["Workload", "estimate", "per_gpu", "precision", "weights_bytes"]
