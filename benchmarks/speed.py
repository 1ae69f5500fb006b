"""Whole-process speed: hubfit beside hf-mem on five large repos, at a pinned sha, at 50 ms and 0 ms per request.

As a new user runs them: one process per run (`hubfit REPO --revision SHA --json`, and hf-mem's command line
with `--json-output`), an empty huggingface_hub cache each time, against the fake Hub of fixtures/ in its own
process (benchmarks/_hub_process.py) with the latency injected before every answer. For each run: wall time,
the process's own CPU time (user + system, from the child's rusage), and the requests and bytes the server
saw. The median of `--repeat` runs is shown.

Then the sizing stage alone (tensor grouping, memory table and GPU fit on the default GPU set) on a
Qwen3-30B-A3B-shaped model with 1x, 10x and 100x the tensors per layer (8, 80, 800 experts): the cost follows the
number of distinct tensor shapes and roles, not the number of tensors. And the start-up figures: `hubfit --help` and the README's quick start.

    python -m pip install -e ".[bench]"          # hf-mem, in the benchmark's environment only
    python benchmarks/speed.py [--repeat 3] [--out benchmarks/results/speed.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPOS = [
    "meta-llama/Llama-2-70b-hf",
    "tiiuae/falcon-180B",
    "Qwen/Qwen3-30B-A3B",
    "deepseek-ai/DeepSeek-V3",
    "meta-llama/Llama-3.1-405B",
]
TOKEN = "hf_granted"


def _server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "_hub_process.py"), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _get(url: str, path: str, method: str = "GET") -> Any:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url + path, method=method)) as answer:
        return json.loads(answer.read() or b"null")


def _timed(cmd: list[str], env: dict[str, str], url: str) -> dict[str, float]:
    """Run one process; its wall time, CPU time, and what the server saw."""
    _get(url, "/__bench/reset", "POST")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
    stats = _get(url, "/__bench/stats")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "requests": stats["requests"], "bytes": stats["bytes"]}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _compile_bytecode() -> None:
    """Write hubfit's bytecode before timing, as ``pip install`` does for hf-mem's.

    Under ``PYTHONDONTWRITEBYTECODE=1`` (set in some CI images and sandboxes) an editable checkout is otherwise
    compiled from source on every run, about 60 ms that no installed package pays.
    """
    import compileall

    compileall.compile_dir(str(ROOT / "hubfit"), quiet=1)


def _has_hf_mem() -> bool:
    try:
        import hf_mem  # noqa: F401
    except ImportError:
        return False
    return True


def compare(latency_ms: float, repeat: int, with_hf_mem: bool) -> list[dict[str, Any]]:
    proc, url = _server(latency_ms)
    home = tempfile.mkdtemp(prefix="hubfit-speed-")
    env = {
        **os.environ,
        "HF_ENDPOINT": url,
        "HF_HOME": home,
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    rows = []
    try:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=url, token=TOKEN)
        for repo in REPOS:
            sha = api.model_info(repo).sha
            assert sha is not None
            row: dict[str, Any] = {"repo": repo, "latency_ms": latency_ms}
            tools = {"hubfit": [sys.executable, "-m", "hubfit.cli", repo, "--revision", sha, "--json"]}
            if with_hf_mem:
                tools["hf-mem"] = [
                    sys.executable,
                    str(ROOT / "benchmarks" / "_hf_mem_local.py"),
                    *("--model-id", repo, "--revision", sha, "--json-output"),
                ]
            for tool, cmd in tools.items():
                runs = []
                for _ in range(repeat):
                    shutil.rmtree(Path(home) / "hub", ignore_errors=True)
                    runs.append(_timed(cmd, env, url))
                row[tool] = _median(runs)
            rows.append(row)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def sizing_scaling() -> list[tuple[int, int, int, float]]:
    """(experts per layer, tensors, tensor groups, seconds) of the sizing stage for 1x, 10x, 100x the tensors.

    Qwen3-30B-A3B's shape (48 layers) with 8, 80 and 800 routed experts per layer: each layer holds 10x, then
    100x the tensors; their shapes and roles do not change, so neither do the groups the engine sizes.
    """
    from fixtures.build import header
    from fixtures.catalog import real_config
    from fixtures.families import qwen3_moe_tensors
    from hubfit.fit.planner import HardwareQuery, evaluate
    from hubfit.formats.safetensors import validate_header
    from hubfit.model.component import Model, component_from_headers
    from hubfit.model.config import ModelConfig
    from hubfit.sizing.engine import TensorGroups
    from hubfit.sizing.memory import Workload, estimate

    base = real_config("Qwen/Qwen3-30B-A3B")
    out = []
    for experts in (8, 80, 800):
        raw = {**base, "num_experts": experts}
        info = validate_header(
            header(qwen3_moe_tensors(raw, dtype="BF16")), filename="model.safetensors", length=0
        )
        model = Model("bench/moe", "main", None, "local", [component_from_headers([info], ModelConfig(raw))])
        start = time.perf_counter()
        groups = TensorGroups.of(model)
        estimate(model, Workload(), groups=groups)
        evaluate(model, Workload(), HardwareQuery(), groups=groups)
        seconds = time.perf_counter() - start
        count = len(groups.samples) + len(groups.head) + len(groups.first)
        out.append((experts, len(model.tensors), count, seconds))
    return out


def startup() -> dict[str, float]:
    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    hubfit = str(Path(sys.executable).parent / "hubfit")
    return {
        "hubfit --help": best([hubfit, "--help"]),
        "hubfit examples/tiny-random-Llama3ForCausalLM": best(
            [hubfit, str(ROOT / "examples" / "tiny-random-Llama3ForCausalLM")]
        ),
    }


def render(
    rows: list[dict[str, Any]], scaling: list[tuple[int, int, int, float]], start: dict[str, float]
) -> str:
    lines = [
        "# hubfit speed beside hf-mem",
        "",
        f"`python benchmarks/speed.py`, {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores. Whole processes at a pinned sha, empty cache, fake Hub in its own process; "
        "medians. CPU = the process's user + system time. Both tools' bytecode compiled beforehand (as an "
        "install leaves it).",
        "",
        "| repo | latency | hubfit wall | hf-mem wall | ratio | hubfit CPU | hf-mem CPU | hubfit requests / bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, theirs = row["hubfit"], row.get("hf-mem")
        ratio = f"{ours['wall'] / theirs['wall']:.2f}x" if theirs else "-"
        their_wall = f"{theirs['wall']:.2f} s" if theirs else "-"
        their_cpu = f"{theirs['cpu']:.2f} s" if theirs else "-"
        lines.append(
            f"| {row['repo']} | {row['latency_ms']:g} ms | {ours['wall']:.2f} s | {their_wall} | {ratio} | "
            f"{ours['cpu']:.2f} s | {their_cpu} | {ours['requests']:.0f} / {ours['bytes']:,.0f} |"
        )
    lines += [
        "",
        "Sizing stage alone (tensor grouping, memory table and GPU fit on the default GPU set) on Qwen3-30B-A3B's "
        "shape with 10x and 100x the experts per layer:",
        "",
        "| experts per layer | tensors | tensor groups | seconds |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {layers} | {tensors:,} | {groups} | {seconds:.3f} |"
        for layers, tensors, groups, seconds in scaling
    ]
    lines += ["", "Start-up (best of 5):", ""]
    lines += [f"- `{cmd}`: {seconds:.3f} s" for cmd, seconds in start.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, nargs="*", default=[50.0, 0.0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    _compile_bytecode()
    with_hf_mem = _has_hf_mem()
    if not with_hf_mem:
        print("(hf-mem not installed: pip install -e '.[bench]' to compare)", file=sys.stderr)
    rows = [row for latency in args.latency_ms for row in compare(latency, args.repeat, with_hf_mem)]
    text = render(rows, sizing_scaling(), startup())
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
