"""hubfit's vLLM policy against real vLLM startup logs (../shared/real-logs/vllm.jsonl, copied in fixtures).

For every usable record: the model (a fixture repo: real config, headers by the family rules), the record's
settings, and hubfit's figures beside the logged ones: weights per GPU ("Model loading took"), the KV budget
("Available KV cache memory"), KV cache tokens ("GPU KV cache size", or blocks x block size where only blocks are
printed), maximum concurrency, and whether vLLM started. Prints the table and the median and worst error per
figure; records not used are listed with the reason.

    python -m benchmarks.vllm_accuracy            # prints the table (Markdown)
    python -m benchmarks.vllm_accuracy --write    # also writes benchmarks/results/vllm_accuracy.md

tests/test_vllm.py checks every usable record against the issue's tolerances.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fixtures.catalog import FIXTURES, SERVING_FIXTURES
from fixtures.hub_server import FakeHub
from hubfit.formats.safetensors import SafetensorsHeader, parse_header
from hubfit.model.component import Model
from hubfit.pipeline import analyze_model
from hubfit.sizing.vllm import GIB, ServeSettings, Serving, serve

HERE = Path(__file__).resolve().parent
RECORDS = HERE.parent / "fixtures" / "real_logs" / "vllm.jsonl"

#: Record model -> fixture repo (same architecture and checkpoint shapes).
MODEL_REPO = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "NousResearch/Hermes-3-Llama-3.1-8B": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Meta-Llama-3-8B",
}


@dataclass(frozen=True)
class Use:
    """How a record is used: the release it ran (where the record says it only in its notes) and the GPU."""

    version: str
    gpu: str
    block_size: int | None = None


#: The usable records; the version and GPU come from the record or, where it names none, from its notes.
USED: dict[str, Use] = {
    "D01": Use("0.6.4", "RTX 3090"),  # notes: v0.6.4.x 'Memory profiling results' format
    "D02": Use("0.6.4", "RTX 3090"),
    "D03": Use("0.6.4", "H100"),  # notes: dev build between 0.6.4.post1 and 0.6.5
    "D04": Use("0.6.4", "H100"),  # notes: same comment as D03, at tp 2 (weights per GPU only are logged)
    "D09": Use("0.19", "H100"),
    "D11": Use("0.19", "H100"),
    "D12": Use("0.19", "H100"),
    "D19": Use("0.9.2", "A100-SXM4-40GB"),
    "D24": Use("0.17.1", "RTX 3090"),
    "D26": Use("0.17.1", "RTX 3090"),
    "D30": Use("0.17.1", "RTX 3090"),
    "D32": Use("0.17.1", "RTX 3090"),
    "D33": Use("0.4.1", "RTX 3090"),
    "D43": Use("0.11", "H100", 128),  # notes: the same document runs v0.11.0; --block-size=128 template
    "D44": Use("0.11", "H100", 128),
    "D45": Use("0.11", "H100", 128),
    "D46": Use("0.11", "H100", 128),
    "D47": Use("0.11", "H100", 128),
    "D48": Use("0.11", "H100", 128),
    "D50": Use("0.10.1", "A100 80GB"),
    "D51": Use("0.10.1", "A100 80GB"),
    "D54": Use("0.10.1", "A100 40GB"),
    "D55": Use("0.13", "RTX 3090"),  # notes: V1 format, doc dated 2026-01-02
}

#: Records not used, and why.
NOT_USED = {
    "D07": "vLLM 0.2.x (PR #2031, Dec 2023): older than the oldest release modelled (0.4)",
    "D05": "activation 9.37 GiB with unknown max_num_seqs/max_num_batched_tokens (the record says: use with care)",
    "D27": "sampler warm-up OOM caused by other processes: D23, same settings, started",
    "D31": "same settings as D30 with the opposite outcome (the record's note: run-to-run variance at the boundary)",
    "S01": "SGLang, Qwen/Qwen3-235B-A22B-FP8: no real config or shard headers of this repo in fixtures/ (the "
    "policy's mem_fraction_static arithmetic is tested against research note section 7 in tests/test_sglang.py)",
    "S02, S03": "SGLang, DeepSeek-V3.2-Exp with DP attention and the NSA indexer cache: neither is modelled",
    "S04": "SGLang, DeepSeek-V4-Pro: architecture not verified, no config here; its logged F1/weights give the "
    "policy's tp>1 pre-load constant (data/engines.yaml sglang.pre_load_used_gib)",
}

GPU_MEMORY = {  # the catalog's memory.total (nvidia-smi) for GPUs whose vLLM total the record does not give
    "RTX 3090": 24576 << 20,
    "H100": 81559 << 20,
    "A100-SXM4-40GB": 40960 << 20,
    "A100 80GB": 81920 << 20,
    "A100 40GB": 40960 << 20,
}


def records() -> dict[str, dict[str, Any]]:
    """The shared records by id."""
    return {r["id"]: r for r in map(json.loads, RECORDS.read_text().splitlines()) if r}


class _MemorySource:
    """A fixture repo as a :class:`hubfit.source.Source`, without a server (headers parsed as the Hub's)."""

    kind = "local"

    def __init__(self, repo_id: str) -> None:
        hub = FakeHub()
        (SERVING_FIXTURES.get(repo_id) or FIXTURES[repo_id])(hub)
        self.repo = hub.repos[repo_id]
        self.repo_id, self.revision, self.sha = repo_id, "main", None
        self._files = self.repo.head.files

    def files(self) -> dict[str, int | None]:
        return {path: None for path in self._files}

    def read_json(self, path: str) -> Any:
        entry = self._files.get(path)
        return None if entry is None else json.loads(entry.prefix)

    def read_headers(self, paths: Any, *, index_path: str | None = None) -> dict[str, SafetensorsHeader]:
        out = {}
        for path in paths:
            data = self._files[path].prefix
            length = int.from_bytes(data[:8], "little")
            out[path] = parse_header(data[8 : 8 + length], filename=path)
        return out


@cache
def model_of(repo_id: str) -> Model:
    """The analysed fixture model."""
    return analyze_model(_MemorySource(MODEL_REPO.get(repo_id, repo_id)))


def settings_of(record: dict[str, Any]) -> ServeSettings:
    use = USED[record["id"]]
    return ServeSettings(
        version=use.version,
        tensor_parallel_size=record.get("tp") or 1,
        pipeline_parallel_size=record.get("pp") or 1,
        max_model_len=record.get("max_model_len"),
        gpu_memory_utilization=record.get("gpu_memory_utilization"),
        max_num_seqs=record.get("max_num_seqs"),
        max_num_batched_tokens=record.get("max_num_batched_tokens"),
        kv_cache_dtype=record.get("kv_cache_dtype") or "auto",
        block_size=record.get("block_size") or use.block_size,
        enforce_eager=bool(record.get("enforce_eager")),
        dtype="float16" if record.get("dtype") == "float16" else "auto",
    )


def estimate(record: dict[str, Any]) -> Serving:
    use = USED[record["id"]]
    total = record.get("total_gpu_memory_gib")
    return serve(
        model_of(record["model"]),
        settings_of(record),
        use.gpu,
        GPU_MEMORY[use.gpu],
        total_bytes=round(total * GIB) if total else None,
    )


def logged_tokens(record: dict[str, Any], block_size: int) -> int | None:
    """KV tokens as logged: "GPU KV cache size", else blocks x block size (V0 prints blocks only)."""
    if record.get("kv_tokens") is not None:
        return int(record["kv_tokens"])
    if record.get("gpu_blocks") is not None:
        return int(record["gpu_blocks"]) * block_size
    return None


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    version: str
    figures: dict[str, tuple[float | None, float]]  # name -> (logged, hubfit)
    starts: tuple[bool | None, bool]


def row(record: dict[str, Any]) -> Row:
    got = estimate(record)
    bs = settings_of(record).block_size or 16
    per = got.per_gpu_bytes
    figures: dict[str, tuple[float | None, float]] = {
        "weights_gib": (record.get("weights_gib"), per.weights / GIB),
        "kv_cache_gib": (
            record.get("kv_cache_gib"),
            per.kv_cache / GIB if got.starts else per.kv_cache / GIB,
        ),
        "kv_tokens": (logged_tokens(record, bs), float(got.kv_cache_tokens)),
        "max_concurrency": (record.get("max_concurrency"), got.max_concurrency),
    }
    return Row(record["id"], record["model"], got.engine_version, figures, (record.get("starts"), got.starts))


def error(logged: float | None, ours: float) -> float | None:
    """Relative error of ``ours`` against ``logged`` (``None`` when nothing was logged)."""
    if logged is None or logged <= 0:
        return None
    return abs(ours - logged) / logged


def table(rows: list[Row]) -> str:
    names = ["weights_gib", "kv_cache_gib", "kv_tokens", "max_concurrency"]
    lines = [
        "| record | model | vLLM | " + " | ".join(f"{n} logged / hubfit" for n in names) + " | starts |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    errors: dict[str, list[float]] = {n: [] for n in names}
    for r in rows:
        cells = []
        for n in names:
            logged, ours = r.figures[n]
            e = error(logged, ours)
            if e is not None:
                errors[n].append(e)
            fmt = "{:,.0f}" if n == "kv_tokens" else "{:.2f}"
            if logged is None:
                cells.append(f"- / {fmt.format(ours)}")
            else:
                shown = "" if e is None else f" ({e:.1%})"
                cells.append(f"{fmt.format(logged)} / {fmt.format(ours)}{shown}")
        starts = f"{r.starts[0]} / {r.starts[1]}"
        lines.append(f"| {r.id} | {r.model} | {r.version} | " + " | ".join(cells) + f" | {starts} |")
    lines += ["", "| figure | records | median error | worst error |", "|---|---|---|---|"]
    for n in names:
        if errors[n]:
            lines.append(
                f"| {n} | {len(errors[n])} | {statistics.median(errors[n]):.1%} | {max(errors[n]):.1%} |"
            )
    agree = sum(r.starts[0] == r.starts[1] for r in rows if r.starts[0] is not None)
    lines.append(f"| starts / refuses | {sum(r.starts[0] is not None for r in rows)} | {agree} agree | |")
    lines += ["", "Records not used:", ""]
    lines += [f"- {k}: {v}" for k, v in NOT_USED.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/vllm_accuracy.md")
    args = parser.parse_args(argv)
    recs = records()
    text = table([row(recs[i]) for i in USED])
    print(text)
    if args.write:
        header = "# hubfit's vLLM policy vs real vLLM startup logs\n\n`python -m benchmarks.vllm_accuracy --write`\n\n"
        (HERE / "results" / "vllm_accuracy.md").write_text(header + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
