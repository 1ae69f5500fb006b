"""The vLLM policy (hubfit.sizing.vllm) against real vLLM startup logs (fixtures/real_logs/vllm.jsonl, a copy of
the shared records; sources per record in the file) and its rules one by one.

Tolerances (issue 17): weights per GPU within 2%; KV cache tokens and maximum concurrency within 10%, median within
3%; starts / refuses exactly as logged.
"""

from __future__ import annotations

import statistics

import pytest

from benchmarks import vllm_accuracy as acc
from hubfit import _data
from hubfit.errors import UsageError
from hubfit.sizing import vllm
from hubfit.sizing.engine import TensorGroups

RECORDS = acc.records()

#: Records whose KV budget is within a few hundred MiB of zero, where a relative error means little: checked
#: to 0.15 GiB of the logged budget instead (D30 and D31, same settings, differ by 0.08 GiB run to run).
ABSOLUTE = {"D30": 0.15}
#: vLLM 0.4's budget is total x u minus torch's *reserved* high-water mark (PR #2031): allocator fragmentation
#: is not modelled, so only weights and the outcome are checked.
KNOWN_GAP = {"D33"}


@pytest.fixture(scope="module")
def rows() -> dict[str, acc.Row]:
    return {rid: acc.row(RECORDS[rid]) for rid in acc.USED}


@pytest.mark.parametrize("rid", list(acc.USED))
def test_record(rows: dict[str, acc.Row], rid: str) -> None:
    r = rows[rid]
    assert r.starts[0] is None or r.starts[0] == r.starts[1], RECORDS[rid].get("error")
    logged, ours = r.figures["weights_gib"]
    if logged is not None:
        assert acc.error(logged, ours) <= 0.02  # type: ignore[operator]
    if rid in KNOWN_GAP:
        return
    if rid in ABSOLUTE:
        logged, ours = r.figures["kv_cache_gib"]
        assert logged is not None and abs(logged - ours) <= ABSOLUTE[rid]
        return
    for name in ("kv_tokens", "max_concurrency"):
        logged, ours = r.figures[name]
        e = acc.error(logged, ours)
        if e is not None and r.starts[1]:
            assert e <= 0.10, (name, logged, ours)


def test_medians_within_three_percent(rows: dict[str, acc.Row]) -> None:
    for name in ("kv_tokens", "max_concurrency"):
        errors = [
            e
            for rid, r in rows.items()
            if rid not in KNOWN_GAP and rid not in ABSOLUTE
            for e in [acc.error(*r.figures[name])]
            if e is not None
        ]
        assert len(errors) >= 8
        assert statistics.median(errors) <= 0.03, name


def test_refusal_texts(rows: dict[str, acc.Row]) -> None:
    d02 = acc.estimate(RECORDS["D02"])  # V0: max seq len larger than the KV cache
    assert d02.error is not None and d02.error.startswith("The model's max seq len (29000) is larger than")
    d32 = acc.estimate(RECORDS["D32"])  # nothing left
    assert d32.error is not None and d32.error.startswith("No available memory for the cache blocks")
    d47 = acc.estimate(RECORDS["D47"])  # V1: one request does not fit; vLLM <= 0.20 spells "models's"
    assert d47.error is not None and "with the models's max seq len (32000)" in d47.error
    assert f"estimated maximum model length is {d47.max_model_len_that_fits}" in d47.error
    assert 16000 < d47.max_model_len_that_fits < 32000
    assert any("--max-model-len" in s for s in d47.suggestions)
    assert any("--kv-cache-dtype fp8" in s for s in d47.suggestions)


def _serve(repo: str, **settings: object) -> vllm.Serving:
    model = acc.model_of(repo)
    return vllm.serve(model, vllm.ServeSettings(**settings), "H100", 81559 << 20)  # type: ignore[arg-type]


def test_kv_head_replication_when_tp_exceeds_kv_heads() -> None:
    # Qwen2.5-7B has 4 KV heads: at TP 7 every rank keeps a whole K/V head (vLLM's max(1, kv_heads // tp))
    one = _serve("Qwen/Qwen2.5-7B-Instruct", tensor_parallel_size=4, version="0.19")
    seven = _serve("Qwen/Qwen2.5-7B-Instruct", tensor_parallel_size=7, version="0.19")
    config = acc.model_of("Qwen/Qwen2.5-7B-Instruct").main.config
    assert config is not None
    hd, h, layers = config.head_dim or 0, config.hidden_size or 0, config.num_hidden_layers or 0
    from hubfit.sizing.memory import weights_bytes

    even = weights_bytes(acc.model_of("Qwen/Qwen2.5-7B-Instruct"), "stored") / 7
    assert seven.per_gpu_bytes.weights > even + layers * 2 * hd * h * 2 * (1 - 4 / 7) * 0.99
    assert one.per_gpu_bytes.weights > seven.per_gpu_bytes.weights


def test_tp_must_divide_heads() -> None:
    s = _serve("Qwen/Qwen2.5-7B-Instruct", tensor_parallel_size=3, version="0.19")
    assert not s.starts
    assert s.error == "Total number of attention heads (28) must be divisible by tensor parallel size (3)."
    assert s.suggestions and s.suggestions[0].endswith("--tensor-parallel-size 4")


def test_release_rules() -> None:
    old = _serve("codellama/CodeLlama-7b-hf", version="0.19", max_model_len=8192)
    new = _serve("codellama/CodeLlama-7b-hf", version="0.20", max_model_len=8192)
    # from 0.20 the CUDA-graph estimate comes out of the KV budget
    assert old.per_gpu_bytes.kv_cache - new.per_gpu_bytes.kv_cache == new.per_gpu_bytes.cuda_graphs > 0
    eager = _serve("codellama/CodeLlama-7b-hf", version="0.20", max_model_len=8192, enforce_eager=True)
    assert eager.per_gpu_bytes.cuda_graphs == 0
    # 0.22: tokens = int(concurrency x max_model_len); equal to blocks x 16 when the length is a block multiple
    odd = _serve("codellama/CodeLlama-7b-hf", version="0.22", max_model_len=8200)
    assert (
        odd.kv_cache_tokens == int(odd.max_concurrency * 8200)
        or abs(odd.kv_cache_tokens - odd.max_concurrency * 8200) < 8200 * 0.01
    )
    auto = _serve("Qwen/Qwen3-32B", version="0.19", max_model_len=-1)
    assert auto.starts and auto.max_model_len == auto.max_model_len_that_fits <= 40960


def test_fp8_kv_doubles_tokens() -> None:
    a = _serve("codellama/CodeLlama-7b-hf", version="0.19", max_model_len=8192)
    b = _serve("codellama/CodeLlama-7b-hf", version="0.19", max_model_len=8192, kv_cache_dtype="fp8")
    assert abs(b.kv_cache_tokens / a.kv_cache_tokens - 2) < 0.01


def test_not_modelled_layouts_are_refused() -> None:
    from fixtures.catalog import real_config  # noqa: F401 - the config-only Jamba record

    model = acc.model_of("Qwen/Qwen3-0.6B")
    jamba = TensorGroups.of(model)
    from dataclasses import replace

    from hubfit.sizing import kv

    state = replace(jamba, specs=(kv.RecurrentState(0),))
    with pytest.raises(UsageError, match="modelled layer kinds: full, sliding, chunked, mla"):
        vllm.serve(model, vllm.ServeSettings(), "H100", 81559 << 20, state)


def test_every_constant_has_a_source() -> None:
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "value" in node or "tp1" in node:
                assert node.get("source"), path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(_data.load("engines"), "engines")


def test_versions() -> None:
    assert vllm.parse_version("0.6.4.post1") == (0, 6, 4)
    assert vllm.parse_version("0.10.1.1") == (0, 10, 1, 1)
    assert vllm.newest_version() == "0.34"
    with pytest.raises(UsageError):
        vllm.parse_version("latest")


def test_cli_json_serving_contract(fake_hub: object) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run(
        [str(Path(sys.executable).parent / "hubfit"), "analyze", "Qwen/Qwen2.5-0.5B", "--engine", "vllm",
         "--engine-version", "0.19", "--gpu", "H100 SXM", "--max-model-len", "8192", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    serving = doc["serving"]
    assert list(serving) == [
        "engine", "engine_version", "gpu", "tensor_parallel_size", "pipeline_parallel_size", "max_model_len",
        "gpu_memory_utilization", "per_gpu_bytes", "kv_cache_tokens", "max_concurrency", "starts", "error",
        "max_model_len_that_fits", "suggestions",
    ]  # fmt: skip
    assert list(serving["per_gpu_bytes"]) == [
        "weights",
        "activation_peak",
        "non_torch",
        "cuda_graphs",
        "kv_cache",
    ]
    assert serving["engine"] == "vllm" and serving["engine_version"] == "0.19" and serving["starts"] is True
    assert serving["max_model_len"] == 8192 and serving["kv_cache_tokens"] > 1_000_000
    from hubfit.report import Report

    assert json.loads(json.dumps(Report.from_dict(doc).to_dict())) == doc
    text = subprocess.run(
        [str(Path(sys.executable).parent / "hubfit"), "analyze", "Qwen/Qwen2.5-0.5B", "--engine", "vllm",
         "--engine-version", "0.19", "--gpu", "H100 SXM", "--max-model-len", "8192"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Serving: 1x H100 SXM 80GB with vLLM 0.19: starts," in text
