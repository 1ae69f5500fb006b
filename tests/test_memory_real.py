"""The CPU part of benchmarks/memory_gpu.py: models built by transformers from the real configs (shrunk to tiny
widths, same layouts) hold exactly the weight and KV-cache bytes hubfit computes.

Skipped when torch or transformers is not installed (neither is a hubfit dependency).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks import memory_gpu  # noqa: E402
from hubfit.pipeline import analyze  # noqa: E402
from hubfit.sizing import memory  # noqa: E402


@pytest.mark.parametrize("name", list(memory_gpu.MODELS))
def test_built_model_bytes_match_hubfit_exactly(name: str) -> None:
    (row,) = memory_gpu.cpu_check([name], context=96, batch=2)
    assert row.weights == row.weights_est
    # StaticCache keys/values after a chunked prefill of 96 tokens and 16 generated ones, batch 2
    assert row.kv == row.kv_est > 0


def test_saved_checkpoint_through_analyze(tmp_path) -> None:
    raw = memory_gpu.load_config("gemma2", tiny=True)  # tied embeddings: lm_head is not saved
    model = memory_gpu.build(raw, "cpu")
    model.save_pretrained(tmp_path)
    report = analyze(str(tmp_path), workload=memory.Workload(context=64, precisions=("stored", "bf16")))
    stored, bf16 = report.memory.estimates
    assert stored.weights_bytes == bf16.weights_bytes == memory_gpu.model_bytes(model)
    assert {kind: group.layers for kind, group in report.memory.kv_layers.items()} == {
        "sliding": 2,
        "full": 2,
    }
