"""A real llama.cpp in the loop, without a GPU: hubfit's llama.cpp buffers against llama.cpp's own load log.

For each architecture fixtures/gguf_build.py writes (Pythia-2.8B gptneox, Phi-3-mini, gemma-2-2b, Llama-3.1-8B),
this writes a whole GGUF file at the real shapes and types with zero weights (the header, then a sparse hole up
to the file's size: nothing but the header takes disk), loads it with ``llama_cpp.Llama`` (llama-cpp-python,
which builds llama.cpp from source) on the CPU backend for a few ``n_ctx`` values with and without flash
attention, reads llama.cpp's load log from stderr (``CPU_Mapped model buffer size``, ``CPU KV buffer size``,
``CPU compute buffer size``) and compares it with ``hubfit.sizing.llamacpp.memory`` for the same settings
(``gpus=0``: everything on the host). The sliding-window cache is sized as llama-server sizes it
(``swa_full=False``; llama.cpp's library default, which llama-cpp-python keeps, is a full-size SWA cache).

llama-cpp-python is not a project dependency (its build compiles llama.cpp: see
benchmarks/results/llamacpp_loop.md for how long it takes). Install it in a separate environment; this script
runs under the project's Python and loads each file in a child process of that environment's Python:

    python -m venv /tmp/llvenv
    CMAKE_ARGS="-DGGML_NATIVE=OFF" /tmp/llvenv/bin/pip install llama-cpp-python==0.3.36  # the results file's version
    python benchmarks/llamacpp_loop.py --llama-python /tmp/llvenv/bin/python [--build-seconds S]

Each load runs in its own process (``--load``, which imports only llama_cpp), so the files' memory is released.
The metadata keys llama.cpp requires that hubfit does not read (norm epsilons, GPT-NeoX's parallel residual,
gemma-2's soft-capping) are added here with the real models' values; the vocabulary is the fixture's (the real
token count, placeholder strings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "llamacpp_loop.md"
MIB = 2**20

# (label, fixtures.gguf_build function, ftype, metadata llama.cpp requires beyond the fixture, n_ctx values)
MODELS: list[tuple[str, str, str, dict[str, Any], tuple[int, ...]]] = [
    (
        "pythia-2.8b",
        "pythia_2_8b",
        "Q4_K_M",
        {"attention.layer_norm_epsilon": 1e-5, "use_parallel_residual": True},
        (512, 2048, 2500),
    ),
    ("phi-3-mini", "phi_3_mini", "Q4_K_M", {"attention.layer_norm_rms_epsilon": 1e-5}, (512, 2048, 4096)),
    (
        "gemma-2-2b",
        "gemma_2_2b",
        "Q4_K_M",
        {
            "attention.layer_norm_rms_epsilon": 1e-6,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
        },
        (2048, 4096, 8192),
    ),
    (
        "llama-3.1-8b",
        "llama_3_1_8b",
        "Q4_K_M",
        {"attention.layer_norm_rms_epsilon": 1e-5, "rope.freq_base": 500000.0},
        (512, 2500, 8192),
    ),
]
N_BATCH, N_UBATCH = 2048, 512

_MODEL = re.compile(r"\w+:\s+(\S+) model buffer size\s*=\s*([\d.]+) MiB")
_KV = re.compile(r"llama_kv_cache[\w]*:\s+(\S+) KV buffer size\s*=\s*([\d.]+) MiB")
_COMPUTE = re.compile(r"\w+:\s+(\S+) compute buffer size\s*=\s*([\d.]+) MiB")
_N_CTX = re.compile(r"llama_context: n_ctx\s*=\s*(\d+)")
_FA = re.compile(r"llama_context: flash_attn\s*=\s*(\S+)")


# -- the child: load one file with llama-cpp-python (imports nothing of hubfit) ----------------------------------


def load(path: str, n_ctx: int, flash_attn: bool) -> None:
    import llama_cpp

    print(json.dumps({"llama_cpp_python": llama_cpp.__version__}), flush=True)
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_gpu_layers=0,
        n_batch=N_BATCH,
        n_ubatch=N_UBATCH,
        flash_attn=flash_attn,
        vocab_only=False,
        use_mmap=True,
        swa_full=False,  # llama-server's default (common_params); the library's own default is a full-size SWA cache
        verbose=True,
    )
    print(json.dumps({"n_ctx": llm.n_ctx()}), flush=True)
    llm.close()


# -- the driver ---------------------------------------------------------------------------------------------------


def parse_log(text: str) -> dict[str, Any]:
    """llama.cpp's buffers (MiB as printed, summed per device over the caches) and its n_ctx and flash_attn."""
    out: dict[str, Any] = {"model": {}, "kv": {}, "compute": {}}
    for key, pattern in (("model", _MODEL), ("kv", _KV)):
        for device, mib in pattern.findall(text):
            out[key][device] = round(out[key].get(device, 0.0) + float(mib), 2)
    for device, mib in _COMPUTE.findall(text):  # a re-reserve prints again: the last figure stands
        out["compute"][device] = float(mib)
    if m := _N_CTX.search(text):
        out["n_ctx"] = int(m.group(1))
    if m := _FA.search(text):
        out["flash_attn"] = m.group(1)
    return out


def write_file(fn: str, ftype: str, extra: dict[str, Any], folder: str) -> str:
    from fixtures import gguf_build

    spec = getattr(gguf_build, fn)()
    spec = dataclasses.replace(spec, kv={**spec.kv, **extra})
    head, size = gguf_build.gguf_file(spec, ftype)
    path = os.path.join(folder, f"{fn}-{ftype}.gguf")
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)  # zeros up to the size, as a hole: sparse on disk
    return path


def hubfit_figures(path: str, n_ctx: int, flash_attn: bool) -> dict[str, Any]:
    from hubfit.formats.gguf import read_local_header
    from hubfit.sizing.llamacpp import LlamaCppSettings, memory

    settings = LlamaCppSettings(
        n_ctx=n_ctx, gpus=0, flash_attn=flash_attn, n_batch=N_BATCH, n_ubatch=N_UBATCH
    )
    m = memory([read_local_header(path)], settings)
    return {
        "n_ctx": m.n_ctx,
        "model": m.model.get("CPU", 0) / MIB,
        "kv": m.kv.get("CPU", 0) / MIB,
        "compute": m.compute.get("CPU", 0) / MIB,
    }


def run_load(python: str, path: str, n_ctx: int, flash_attn: bool) -> tuple[dict[str, Any], str, float]:
    cmd = [python, __file__, "--load", path, "--n-ctx", str(n_ctx)] + (["--flash-attn"] if flash_attn else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    info: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            info.update(json.loads(line))
    if proc.returncode:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"llama.cpp failed to load {path} (n_ctx {n_ctx}):\n{tail}")
    logged = parse_log(proc.stderr)
    logged["version"] = info.get("llama_cpp_python")
    return logged, proc.stderr, seconds


def _err(logged: float | None, ours: float) -> str:
    if logged is None:
        return "n/a"
    if logged == 0:
        return "0.00" if ours == 0 else "inf"
    return f"{100 * (ours - logged) / logged:+.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llama-python", default=os.environ.get("LLAMA_PYTHON", "/tmp/llvenv/bin/python"))
    parser.add_argument(
        "--build-seconds", type=float, help="llama-cpp-python's measured build time, for the notes"
    )
    parser.add_argument("--build-note", default="", help="how the build was measured (machine, flags)")
    parser.add_argument(
        "--llama-cpp-commit",
        default="0c1e57098",
        help="the llama.cpp commit llama-cpp-python vendors (its CHANGELOG)",
    )
    parser.add_argument("--only", help="a model label (pythia-2.8b, phi-3-mini, gemma-2-2b, llama-3.1-8b)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--logs", help="a folder to keep each load's full stderr in")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--n-ctx", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flash-attn", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load, args.n_ctx, args.flash_attn)
        return 0

    sys.path.insert(0, str(ROOT))
    rows: list[str] = []
    repack: dict[str, float] = {}
    version = "?"
    worst = {"model": 0.0, "kv": 0.0, "compute": 0.0}
    header = (
        "| file | n_ctx asked | n_ctx llama.cpp / hubfit | flash attn | model MiB llama.cpp / hubfit "
        "| KV MiB llama.cpp / hubfit | KV err % | compute MiB llama.cpp / hubfit | compute err % | load s |"
    )
    print(header)
    print("|" + "---|" * 10)
    with tempfile.TemporaryDirectory(prefix="hubfit-llamacpp-") as folder:
        for label, fn, ftype, extra, contexts in MODELS:
            if args.only and args.only != label:
                continue
            path = write_file(fn, ftype, extra, folder)
            disk = os.stat(path).st_blocks * 512
            print(
                f"# {label}: {os.path.getsize(path) / MIB:.2f} MiB file, {disk / MIB:.2f} MiB on disk",
                file=sys.stderr,
            )
            for n_ctx in contexts:
                for fa in (False, True):
                    logged, log, seconds = run_load(args.llama_python, path, n_ctx, fa)
                    version = logged.get("version") or version
                    if args.logs:
                        Path(args.logs).mkdir(parents=True, exist_ok=True)
                        Path(args.logs, f"{label}-{n_ctx}-fa{int(fa)}.log").write_text(log)
                    ours = hubfit_figures(path, n_ctx, fa)
                    model = logged["model"].get("CPU_Mapped", logged["model"].get("CPU"))
                    for device, mib in logged["model"].items():
                        if device not in ("CPU_Mapped", "CPU"):
                            repack[f"{label} {device}"] = mib
                    kv = sum(logged["kv"].values()) if logged["kv"] else None
                    compute = logged["compute"].get("CPU")
                    for key, got, want in (("model", model, ours["model"]), ("kv", kv, ours["kv"])):
                        if got:
                            worst[key] = max(worst[key], abs(want - got) / got * 100)
                    if compute:
                        worst["compute"] = max(
                            worst["compute"], abs(ours["compute"] - compute) / compute * 100
                        )
                    row = (
                        f"| {fn}-{ftype}.gguf | {n_ctx} | {logged.get('n_ctx', '?')} / {ours['n_ctx']} "
                        f"| {'on' if fa else 'off'} ({logged.get('flash_attn', '?')}) "
                        f"| {model if model is not None else 'n/a'} / {ours['model']:.2f} "
                        f"| {kv if kv is not None else 'n/a'} / {ours['kv']:.2f} | {_err(kv, ours['kv'])} "
                        f"| {compute if compute is not None else 'n/a'} / {ours['compute']:.2f} "
                        f"| {_err(compute, ours['compute'])} | {seconds:.1f} |"
                    )
                    print(row, flush=True)
                    rows.append(row)
            os.unlink(path)

    build = (
        f"{args.build_seconds / 60:.1f} min ({args.build_seconds:.0f} s)"
        if args.build_seconds
        else "not given"
    )
    notes = [
        "# hubfit's llama.cpp buffers against a real llama.cpp (CPU backend)",
        "",
        "Written by `python benchmarks/llamacpp_loop.py` (see its docstring). Each file is a GGUF that",
        "fixtures/gguf_build.py writes (real architecture's tensor names, shapes and Q4_K_M types; real vocab",
        "size with placeholder tokens), zero weights, sparse on disk; llama.cpp loads it with `n_gpu_layers=0`,",
        f"`n_batch={N_BATCH}`, `n_ubatch={N_UBATCH}`, one sequence. Figures are MiB as llama.cpp prints them",
        "(`CPU_Mapped model buffer size`, the sum of the `CPU KV buffer size` lines, `CPU compute buffer size`)",
        "beside `hubfit.sizing.llamacpp.memory(..., LlamaCppSettings(gpus=0, ...))`. Err % = (hubfit - llama.cpp)",
        "/ llama.cpp. The flash-attn column gives what was asked and, in brackets, what llama.cpp logged.",
        "",
        f"- llama-cpp-python {version} (vendors ggml-org/llama.cpp@{args.llama_cpp_commit} per its CHANGELOG)"
        + f"; build time: {build}. {args.build_note}".rstrip(),
        f"- worst error: model {worst['model']:.2f} %, KV {worst['kv']:.2f} %, compute {worst['compute']:.2f} %",
    ]
    if repack:
        notes.append(
            "- llama.cpp also repacked weights for the CPU's SIMD kernels (a second host buffer hubfit does not "
            "count): " + ", ".join(f"{k} {v:.2f} MiB" for k, v in sorted(repack.items()))
        )
    text = "\n".join([*notes, "", header, "|" + "---|" * 10, *rows, ""])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    existing = Path(args.out).read_text() if Path(args.out).exists() else ""
    marker = "\n## Findings"
    findings = existing[existing.index(marker) :] if marker in existing else ""
    Path(args.out).write_text(text + findings)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
