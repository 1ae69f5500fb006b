"""The typed report: one sizing engine behind both tables, a JSON document that round-trips, and its schema.

Every fixture repo that analyses (fixtures/README.md names the source of each) is sized with the CLI's defaults
(default precisions, default GPU set) and with a tensor-parallel question, then:

- the memory table and the GPU fit agree byte for byte (one engine: ``hubfit.sizing.engine.Sizer``), and both
  agree with an independent sum over the tensors (``Precision.tensor_bytes`` per tensor, ``kv_cache_bytes``);
- ``Report.from_dict(report.to_dict()) == report``, also through a JSON text;
- every ``--json`` document validates against the shipped JSON Schema, which equals the one generated from the
  types.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest

from fixtures.catalog import FIXTURES, TOKEN_GRANTED
from hubfit.errors import HeaderError
from hubfit.fit.planner import HardwareQuery, evaluate
from hubfit.model.component import Model
from hubfit.pipeline import build_report, load_model
from hubfit.report import SCHEMA_VERSION, Report, json_schema
from hubfit.sizing import kv, memory
from hubfit.source.hub import HubClient

ROOT = Path(__file__).resolve().parent.parent

#: Fixture repos that are errors by design (no weights, hostile headers, private without the token).
ANALYSABLE = [
    repo
    for repo in FIXTURES
    if not repo.startswith(
        ("hubfit-fixtures/hostile-", "hubfit-fixtures/pytorch-only", "hubfit-fixtures/private")
    )
]


@cache
def _model(repo_id: str) -> Model:
    return load_model(repo_id, client=HubClient(token=TOKEN_GRANTED, sleep=lambda s: None))


@cache
def _report(repo_id: str) -> Report:
    return build_report(_model(repo_id), workload=memory.Workload(), hardware=HardwareQuery())


@cache
def _schema() -> dict:
    return json.loads((ROOT / "hubfit" / "data" / "report.schema.json").read_text(encoding="utf-8"))


def test_fixture_list_is_not_empty() -> None:
    assert len(ANALYSABLE) >= 15 and "deepseek-ai/DeepSeek-V3" in ANALYSABLE


@pytest.mark.usefixtures("fake_hub")
@pytest.mark.parametrize("repo_id", ANALYSABLE)
def test_memory_table_and_fit_are_one_computation(repo_id: str) -> None:
    model, report = _model(repo_id), _report(repo_id)
    assert report.memory is not None and report.fit is not None
    workload = report.memory.workload
    context = report.memory.kv_cache.context
    tensors = model.tensors
    config = model.main.config
    kv_single = (
        kv.kv_cache_bytes(config, context, 1, report.memory.kv_cache.dtype) if config is not None else 0
    )
    for row in report.memory.estimates:
        prec = memory.precision(row.precision)
        # an independent sum over every tensor, not the engine's groups
        assert row.weights_bytes == sum(prec.tensor_bytes(t) for t in tensors)
        assert row.kv_cache_bytes == kv_single
        share = memory.per_gpu(model, prec, workload, 1)
        assert (row.weights_bytes, row.kv_cache_bytes, row.overhead_bytes) == (
            share.weights_bytes,
            share.kv_cache_bytes,
            share.overhead_bytes,
        )
    # every fit row on one pipeline stage is the engine's figure for its TP size
    for fit, detail in report.fit.rows():
        if detail.tp is None or detail.pp != 1:
            continue
        share = memory.per_gpu(model, fit.precision, workload, detail.tp)
        assert fit.per_gpu_bytes == share.total_bytes
        assert (detail.weights_per_gpu_bytes, detail.kv_per_gpu_bytes, detail.overhead_per_gpu_bytes) == (
            share.weights_bytes,
            share.kv_cache_bytes,
            share.overhead_bytes,
        )
        if detail.tp == 1:
            (row,) = [e for e in report.memory.estimates if e.precision == fit.precision]
            assert fit.per_gpu_bytes == row.total_bytes


@pytest.mark.usefixtures("fake_hub")
def test_tensor_parallel_rows_split_weights_and_replicate_kv_heads() -> None:
    """Llama-2-70B (8 KV heads) on 16-way TP: ceil(weights / 16) each, and one KV head replicated per rank."""
    model = _model("meta-llama/Llama-2-70b-hf")
    work = memory.Workload(context=4096, precisions=("bf16",))
    share = memory.per_gpu(model, "bf16", work, 16)
    assert share.weights_bytes == math.ceil(memory.weights_bytes(model, "bf16") / 16)
    # 80 layers x 1 KV head x 128 x 2 (K, V) x 2 B x 4096 tokens on every rank (8 heads cannot split 16 ways)
    assert share.kv_cache_bytes == 80 * 1 * 128 * 2 * 2 * 4096


@pytest.mark.usefixtures("fake_hub")
@pytest.mark.parametrize("repo_id", ANALYSABLE)
def test_report_round_trips_and_validates(repo_id: str) -> None:
    report = _report(repo_id)
    data = report.to_dict()
    assert data["schema"] == "hubfit/1" and data["schema_version"] == SCHEMA_VERSION
    assert Report.from_dict(data) == report
    text = json.dumps(data)
    assert Report.from_dict(json.loads(text)) == report
    jsonschema.validate(json.loads(text), _schema())
    # without the sections too (metadata only)
    bare = Report.of(_model(repo_id))
    assert Report.from_dict(json.loads(json.dumps(bare.to_dict()))) == bare


@pytest.mark.usefixtures("fake_hub")
def test_json_carries_what_the_text_shows() -> None:
    """KV per layer kind, every overhead term, per-device need and the fit rows (google/gemma-2-9b at 8,192)."""
    model = _model("google/gemma-2-9b")
    report = build_report(
        model, workload=memory.Workload(context=8192), hardware=HardwareQuery(gpus=("RTX 4090",))
    )
    data = report.to_dict()
    # issue 3's exact figure: 21 global layers x 8,192 + 21 sliding layers x 4,096 tokens, 8 KV heads x 256 x 2 x 2 B
    assert data["kv_cache"]["bytes"] == 2_113_929_216
    assert data["kv_layers"]["full"] == {"layers": 21, "bytes_per_token": 21 * 8 * 256 * 2 * 2,
                                         "bytes": 21 * 8192 * 8 * 256 * 2 * 2}  # fmt: skip
    assert data["kv_layers"]["sliding"]["bytes"] == 21 * 4096 * 8 * 256 * 2 * 2
    parts = data["overhead"]
    assert (
        parts["fixed"] + parts["activations"] + parts["logits"] + parts["slack"]
        == (data["estimates"][0]["overhead_bytes"])
    )
    assert parts["fixed"] > 0 and parts["activations"] > 0 and parts["logits"] > 0
    detail = data["fit_details"][0]
    assert (
        detail["weights_per_gpu_bytes"] + detail["kv_per_gpu_bytes"] + detail["overhead_per_gpu_bytes"]
        == (data["fits"][0]["per_gpu_bytes"])
    )


def test_shipped_schema_is_generated_from_the_types() -> None:
    assert _schema() == json.loads(json.dumps(json_schema(), sort_keys=True))


def test_schema_rejects_a_document_missing_a_field_or_with_a_stray_one() -> None:
    doc = Report.of(_model("Qwen/Qwen2.5-0.5B")).to_dict()
    missing = {k: v for k, v in doc.items() if k != "parameters"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, _schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "surprise": 1}, _schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "parameters": {**doc["parameters"], "total": "many"}}, _schema())


def test_from_dict_refuses_other_documents() -> None:
    doc = Report.of(_model("Qwen/Qwen2.5-0.5B")).to_dict()
    with pytest.raises(HeaderError, match="schema_version"):
        Report.from_dict({**doc, "schema_version": SCHEMA_VERSION - 1})
    with pytest.raises(HeaderError, match="hubfit/1"):
        Report.from_dict({**doc, "schema": "other/1"})
    with pytest.raises(HeaderError, match="malformed"):
        Report.from_dict({**doc, "parameters": {"total": "many"}})


def test_evaluate_takes_the_model_not_a_report() -> None:
    fit = evaluate(
        _model("Qwen/Qwen2.5-0.5B"), memory.Workload(precisions=("bf16",)), HardwareQuery(gpus=("4090",))
    )
    assert [f.count for f in fit.fits] == [1]


@pytest.mark.usefixtures("fake_hub")
def test_cli_json_validates_against_the_shipped_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hubfit.cli", "Qwen/Qwen2.5-0.5B", "--json", "--gpu", "4090"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, _schema())
    assert Report.from_dict(doc).fit is not None
