"""Where one run's time goes, stage by stage: start-up (imports), the Hub reads, the model stage, sizing and fit.

Against the fake Hub of fixtures/ in its own process (benchmarks/_hub_process.py) at 0 ms, a pinned sha and an
empty huggingface_hub cache, the same steps ``hubfit REPO --revision SHA --json`` takes, each timed (wall and
this process's CPU) in one process after a first warm-up run of the same repo. The import cost is measured in
fresh interpreters (``python -X importtime`` is not used: it inflates every module). Medians of ``--repeat``.

    python benchmarks/stages.py [--repeat 5] [--out benchmarks/results/stages.md] [REPO ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed import TOKEN, _compile_bytecode, _get, _server  # noqa: E402

REPOS = ["meta-llama/Llama-2-70b-hf", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3"]
STAGES = ("open (model info)", "small files", "shard headers", "model stage", "sizing + fit", "JSON")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_once(repo: str, sha: str) -> dict[str, tuple[float, float]]:
    """One analysis, stage by stage: {stage: (wall, cpu)}."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.model.component import Model
    from hubfit.model.layout import find_components
    from hubfit.pipeline import _component, build_report
    from hubfit.sizing.memory import Workload
    from hubfit.source.sources import open_source

    shutil.rmtree(Path(os.environ["HF_HOME"]) / "hub", ignore_errors=True)
    out: dict[str, tuple[float, float]] = {}
    source, *out["open (model info)"] = _timed(lambda: open_source(repo, sha))

    def small_files() -> list[Any]:
        parts = find_components(source.files(), source.read_json)
        source.prefetch([p for part in parts for p in (part.config_path, part.index_path) if p])
        return parts

    layout, *out["small files"] = _timed(small_files)
    headers_of: dict[str, Any] = {}

    def headers() -> None:
        for part in layout:
            headers_of[part.name] = source.read_headers(part.weights, index_path=part.index_path)

    _, *out["shard headers"] = _timed(headers)
    original = source.read_headers
    source.read_headers = lambda paths, index_path=None: headers_of[  # type: ignore[method-assign]
        next(p.name for p in layout if list(p.weights) == list(paths))
    ]
    components, *out["model stage"] = _timed(lambda: [_component(source, part) for part in layout])
    source.read_headers = original  # type: ignore[method-assign]
    model = Model(repo, source.revision, source.sha, source.kind, components)
    report, *out["sizing + fit"] = _timed(
        lambda: build_report(model, workload=Workload(), hardware=HardwareQuery())
    )
    _, *out["JSON"] = _timed(lambda: json.dumps(report.to_dict(), indent=2))
    return {k: (v[0], v[1]) for k, v in out.items()}


def imports(repeat: int) -> dict[str, float]:
    """Seconds to start Python and import what a Hub run imports, in fresh interpreters (medians)."""
    cases = {
        "python itself": "pass",
        "huggingface_hub session + token lookup": (
            "from huggingface_hub.utils import get_session, build_hf_headers; get_session(); build_hf_headers()"
        ),
        "+ hubfit (CLI, pipeline, sizing, fit, report)": (
            "from huggingface_hub.utils import get_session, build_hf_headers; get_session(); build_hf_headers();"
            "import hubfit.cli.commands, hubfit.pipeline, hubfit.sizing.memory, hubfit.fit.planner, hubfit.report"
        ),
    }
    out = {}
    for label, code in cases.items():
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        out[label] = statistics.median(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("repos", nargs="*", default=REPOS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    _compile_bytecode()
    proc, url = _server(0.0)
    home = tempfile.mkdtemp(prefix="hubfit-stages-")
    os.environ.update(HF_ENDPOINT=url, HF_HOME=home, HF_TOKEN=TOKEN, HF_HUB_DISABLE_TELEMETRY="1")
    try:
        rows = []
        for repo in args.repos:
            sha = _get(url, f"/api/models/{repo}")["sha"]
            run_once(repo, sha)  # warm-up: imports and first-use caches
            runs = [run_once(repo, sha) for _ in range(args.repeat)]
            rows.append(
                (repo, {s: tuple(statistics.median(r[s][i] for r in runs) for i in (0, 1)) for s in STAGES})
            )
        start = imports(args.repeat)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    lines = [
        "# Where a run's time goes",
        "",
        f"`python benchmarks/stages.py`, {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; fake Hub at 0 ms in its own process, pinned sha, empty cache; medians of "
        f"{args.repeat}. Seconds of CPU (wall in brackets) per stage, after a warm-up run.",
        "",
        "| repo | " + " | ".join(STAGES) + " | total |",
        "|---|" + "---:|" * (len(STAGES) + 1),
    ]
    for repo, stages in rows:
        cells = [f"{cpu:.3f} ({wall:.3f})" for wall, cpu in (stages[s] for s in STAGES)]
        total = sum(stages[s][1] for s in STAGES)
        lines.append(f"| {repo} | " + " | ".join(cells) + f" | {total:.3f} |")
    lines += ["", "Start-up, fresh interpreters (wall, medians):", ""]
    lines += [f"- {label}: {seconds:.3f} s" for label, seconds in start.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
