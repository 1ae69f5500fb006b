"""Local safetensors reads: hubfit's header reader beside ``safetensors.safe_open`` on the DeepSeek-V3 layout.

The file is built from the real DeepSeek-V3 config (fixtures/configs, the tensor names and shapes of
fixtures/families.py ``deepseek_v3_tensors``: 91,991 tensors, 688.6 GB of FP8 and BF16): the header the
safetensors library would write, then a sparse data section of the right size (``os.truncate``), so the header,
the offsets and the file size are the real ones and the disk holds only the header. Both as one 92k-tensor file
and as the real 163 shards (``split_even``, as the fixture repo is built).

Timed, warm page cache, median of ``--repeat`` runs, in this process:

* ``hubfit``: ``read_local_header`` as it was before safe_open was added (the bytes read + ``parse_header``,
  which returns the TensorInfo objects);
* ``safe_open (validate)``: ``safe_open(path, framework="numpy")`` and nothing else: the Rust reader parses and
  validates the header, as the loaders do;
* ``safe_open + keys/shapes/dtypes``: the same, then every tensor's name, shape and dtype through
  ``get_slice(name).get_shape()`` / ``get_dtype()`` (what building TensorInfo objects from safe_open would cost);
* ``read_local_header`` (now): hubfit's reader, then safe_open as the loaders' check (what hubfit does).

    python benchmarks/safe_open.py [--repeat 5] [--out benchmarks/results/safe_open.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.build import Tensor, header, split_even  # noqa: E402
from fixtures.catalog import DEEPSEEK_V3, real_config  # noqa: E402
from fixtures.families import deepseek_v3_tensors  # noqa: E402
from fixtures.hub_server import safetensors_header_bytes  # noqa: E402


def write_sparse(path: Path, tensors: list[Tensor]) -> int:
    """A safetensors file with ``tensors``' real header and a sparse (unwritten) data section; its size."""
    raw = safetensors_header_bytes(header(tensors, {"format": "pt"}))
    size = 8 + len(raw) + sum(t.nbytes for t in tensors)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
    os.truncate(path, size)
    return size


def hubfit_only(path: Path) -> int:
    """hubfit's reader alone (the header bytes, ``parse_header``): the TensorInfo objects."""
    from hubfit.formats.safetensors import read_header

    with path.open("rb") as fh:

        def read(start: int, end: int) -> bytes:
            fh.seek(start)
            return fh.read(end - start)

        size = os.fstat(fh.fileno()).st_size
        return len(read_header(read, filename=path.name, file_size=size, first_read=8).tensors)


def safe_open_validate(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return len(f.keys())


def safe_open_full(path: Path) -> int:
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
            piece = f.get_slice(name)
            out[name] = (piece.get_dtype(), tuple(piece.get_shape()))
    return len(out)


def hubfit_now(path: Path) -> int:
    from hubfit.formats.safetensors import read_local_header

    return len(read_local_header(path).tensors)


METHODS: list[tuple[str, Callable[[Path], int]]] = [
    ("hubfit reader (header bytes + parse_header)", hubfit_only),
    ("safe_open (validate only)", safe_open_validate),
    ("safe_open + keys/shapes/dtypes (get_slice)", safe_open_full),
    ("read_local_header now (hubfit reader, then safe_open)", hubfit_now),
]


def timed(fn: Callable[[Path], int], paths: list[Path], repeat: int) -> tuple[float, int]:
    """Median seconds to run ``fn`` over every path (one warm-up run first), and the tensors it saw."""
    count = sum(fn(p) for p in paths)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for p in paths:
            fn(p)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), count


def import_cost(repeat: int) -> float:
    """Median extra seconds a fresh process spends importing safetensors and numpy (paid on the first local read)."""
    import subprocess

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    runs = [run("import safetensors, numpy") - run("pass") for _ in range(max(repeat, 3))]
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import safetensors

    tensors = deepseek_v3_tensors(real_config(DEEPSEEK_V3))
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hubfit-safe-open-") as tmp:
        one = Path(tmp, "model.safetensors")
        size = write_sparse(one, tensors)
        shards_dir = Path(tmp, "shards")
        shards_dir.mkdir()
        shards = []
        for i, group in enumerate(split_even(tensors, 163), start=1):
            path = shards_dir / f"model-{i:05d}-of-000163.safetensors"
            write_sparse(path, group)
            shards.append(path)
        with one.open("rb") as fh:
            header_bytes = struct.unpack("<Q", fh.read(8))[0]
        layouts = [
            (
                f"one file, {len(tensors):,} tensors ({header_bytes / 1e6:.1f} MB header, {size / 1e9:.1f} GB)",
                [one],
            ),
            (f"163 shards, {len(tensors):,} tensors in all", shards),
        ]
        for label, paths in layouts:
            for name, fn in METHODS:
                seconds, count = timed(fn, paths, args.repeat)
                assert count == len(tensors), (name, count)
                rows.append(f"| {label} | {name} | {seconds * 1000:,.1f} ms |")
                print(rows[-1], flush=True)

    imports = import_cost(args.repeat)
    print(f"importing safetensors + numpy: {imports * 1000:.0f} ms", flush=True)
    text = "\n".join(
        [
            "# Local safetensors reads: hubfit's reader beside safetensors.safe_open",
            "",
            "`python benchmarks/safe_open.py` (see its docstring). DeepSeek-V3's real tensor layout (91,991 tensors,",
            "header as the safetensors library writes it, sparse data of the real size); warm page cache, median of",
            f"{args.repeat} runs after one warm-up; safetensors {safetensors.__version__}, Python "
            f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs.",
            "",
            "| layout | reader | time |",
            "|---|---|---:|",
            *rows,
            "",
            f"Importing safetensors and numpy (once per process, on the first local read; never for `hubfit --help` "
            f"or a Hub model): {imports * 1000:.0f} ms.",
            "",
            "Chosen (hubfit/formats/safetensors.py `read_local_header`): hubfit's reader stays the parser (the",
            "TensorInfo objects need the data offsets, which safe_open does not expose, and hostile files keep",
            "hubfit's one-line messages); safe_open then opens every local file hubfit accepted, as the loaders do,",
            "and a refusal is a HeaderError. The check costs about what the first read costs.",
            "",
        ]
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
