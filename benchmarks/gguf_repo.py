"""Sizing a 25-file GGUF repository from its headers: requests, bytes and wall time, hubfit beside hf-mem.

The repository has the 25 quant file names of bartowski/Meta-Llama-3.1-8B-Instruct-GGUF's listing (Q8_0 down to
IQ2_M); their headers are the five real Llama-3.1-8B layouts fixtures/gguf_build.py writes (Q8_0, Q6_K, Q5_K_M,
Q4_K_M, Q2_K: the real tensor names, shapes and types, and a 128,256-token vocabulary), each name taking the
layout nearest its size, so every header is 8.9 MB as the real ones are. The files are sparse on the fake Hub
(header bytes, then a declared size). Whole processes, an empty cache, the fake Hub in its own process with 50 ms
or 0 ms of latency per request:

    python -m benchmarks.gguf_repo [--repeat 3] [--out benchmarks/results/gguf_repo.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPO = "bench/Meta-Llama-3.1-8B-Instruct-GGUF-25"

#: bartowski's quant names, with the real layout each takes (the nearest in bits per weight).
NAMES = {
    "Q8_0": "Q8_0", "Q6_K_L": "Q6_K", "Q6_K": "Q6_K", "Q5_K_L": "Q5_K_M", "Q5_K_M": "Q5_K_M",
    "Q5_K_S": "Q5_K_M", "Q4_K_L": "Q4_K_M", "Q4_K_M": "Q4_K_M", "Q4_K_S": "Q4_K_M", "Q4_0": "Q4_K_M",
    "Q4_0_4_4": "Q4_K_M", "Q4_0_4_8": "Q4_K_M", "Q4_0_8_8": "Q4_K_M", "IQ4_XS": "Q4_K_M", "IQ4_NL": "Q4_K_M",
    "Q3_K_XL": "Q2_K", "Q3_K_L": "Q2_K", "Q3_K_M": "Q2_K", "IQ3_M": "Q2_K", "Q3_K_S": "Q2_K",
    "IQ3_XS": "Q2_K", "Q2_K_L": "Q2_K", "Q2_K": "Q2_K", "IQ2_M": "Q2_K", "IQ2_S": "Q2_K",
}  # fmt: skip


def add_25_file_repo(hub: Any, repo_id: str = REPO) -> None:
    """Register the 25-file repository on a FakeHub."""
    from fixtures.gguf_build import llama31_repo_files
    from fixtures.hub_server import FileEntry

    layouts = llama31_repo_files()
    entries: dict[str, Any] = {"README.md": FileEntry.blob(b"# GGUF quants\n")}
    for name, layout in NAMES.items():
        head, size = layouts[f"Meta-Llama-3.1-8B-Instruct-{layout}.gguf"]
        entries[f"Meta-Llama-3.1-8B-Instruct-{name}.gguf"] = FileEntry.raw(head, size=size)
    hub.add_repo(repo_id, entries)


def _server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._hub_process",
            "--latency-ms",
            str(latency_ms),
            "--gguf-repo",
            REPO,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    from benchmarks.speed import _get, _has_hf_mem, _median, _timed

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from fixtures.gguf_build import llama31_repo_files

    header_bytes = sum(
        len(llama31_repo_files()[f"Meta-Llama-3.1-8B-Instruct-{v}.gguf"][0]) for v in NAMES.values()
    )
    lines = [
        "# Sizing a 25-file GGUF repository from its headers",
        "",
        f"`python -m benchmarks.gguf_repo`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores. {REPO}: 25 GGUF "
        f"files, their headers {header_bytes:,} bytes in all. Whole processes, empty cache, medians of "
        f'{args.repeat}. hubfit: `hubfit REPO --json --gpu "RTX 4090"`; hf-mem 0.5.6: `--json-output` (every GGUF '
        "file of the repo).",
        "",
        "| latency | tool | wall | CPU | requests | bytes | bytes / header bytes |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for latency in (50.0, 0.0):
        proc, url = _server(latency)
        home = tempfile.mkdtemp(prefix="hubfit-gguf-")
        env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": home, "HF_HUB_DISABLE_TELEMETRY": "1"}
        tools = {"hubfit": [sys.executable, "-m", "hubfit.cli", REPO, "--json", "--gpu", "RTX 4090"]}
        if _has_hf_mem():
            tools["hf-mem"] = [
                sys.executable,
                str(ROOT / "benchmarks" / "_hf_mem_local.py"),
                *("--model-id", REPO, "--json-output"),
            ]
        try:
            _get(url, "/__bench/stats")
            for tool, cmd in tools.items():
                runs = []
                try:
                    for _ in range(args.repeat):
                        shutil.rmtree(Path(home) / "hub", ignore_errors=True)
                        runs.append(_timed(cmd, env, url))
                except RuntimeError as exc:
                    lines.append(
                        f"| {latency:g} ms | {tool} | failed: {' '.join(str(exc).split())[:160]} | | | | |"
                    )
                    continue
                m = _median(runs)
                lines.append(
                    f"| {latency:g} ms | {tool} | {m['wall']:.2f} s | {m['cpu']:.2f} s | {m['requests']:.0f} | "
                    f"{m['bytes']:,.0f} | {m['bytes'] / header_bytes:.2f} |"
                )
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(home, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
