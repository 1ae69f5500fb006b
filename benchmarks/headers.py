"""Header-reading cost: HTTP requests, bytes and wall time for a many-shard model on the local fake Hub.

Runs, against fixtures/hub_server.py with injected latency (default 50 ms per request):

- hubfit at ``main`` (one request for every shard header through the Hub's safetensors-metadata endpoint);
- hubfit at a pinned sha (one ranged read per shard, sized from the index);
- huggingface_hub's ``get_safetensors_metadata`` (the library's own reader: 100 kB first read per shard);
- hf-mem (PyPI ``hf-mem``; it hard-codes https://huggingface.co, so its client is pointed at the local server
  by a URL-rewriting transport). Skipped with a note when hf-mem is not installed (``pip install -e .[bench]``).

Each run starts with an empty huggingface_hub cache. "requests" counts every HTTP exchange the server saw,
redirects to the LFS/CDN host included; "hubfit requests" counts the requests hubfit itself sent.

    python benchmarks/headers.py [--repo meta-llama/Llama-3.1-405B] [--latency-ms 50]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.catalog import load_all  # noqa: E402
from fixtures.hub_server import FakeHub  # noqa: E402

FIXTURES = load_all(FakeHub())  # the same repos the server process serves; read here for header sizes
HF_HOME = tempfile.mkdtemp(prefix="hubfit-bench-")


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "_hub_process.py"), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    return proc, url


def _fresh_cache() -> None:
    shutil.rmtree(Path(HF_HOME) / "hub", ignore_errors=True)


def _header_bytes(repo_id: str, sha: str) -> tuple[int, int]:
    """(shards, total bytes of the 8-byte prefixes plus JSON headers) from the fixture itself."""
    commit = FIXTURES.repos[repo_id].commits[sha]
    shards = [e for p, e in commit.files.items() if p.endswith(".safetensors")]
    return len(shards), sum(len(e.prefix) for e in shards)


def _server(url: str, method: str, path: str) -> dict:
    from huggingface_hub.utils import get_session

    return get_session().request(method, url + path).json()


def measure(url: str, label: str, fn) -> dict:
    _fresh_cache()
    _server(url, "POST", "/__bench/reset")
    start = time.perf_counter()
    extra = fn() or {}
    wall = time.perf_counter() - start
    stats = _server(url, "GET", "/__bench/stats")
    return {"label": label, **stats, "wall_s": wall, **extra}


def run_hubfit(repo_id: str, revision: str | None, token: str | None):
    def go() -> dict:
        import hubfit
        from hubfit.source.hub import HubClient

        client = HubClient(token=token)
        report = hubfit.analyze(repo_id, revision=revision, client=client)
        return {"hubfit_requests": client.stats.requests, "parameters": report.parameters.total}

    return go


def run_hf_hub(repo_id: str, revision: str | None, token: str | None):
    def go() -> dict:
        from huggingface_hub import HfApi

        meta = HfApi(token=token).get_safetensors_metadata(repo_id, revision=revision)
        return {"parameters": sum(meta.parameter_count.values())}

    return go


def run_hf_mem(repo_id: str, revision: str, token: str | None):
    def go() -> dict:
        import importlib

        import httpx2

        hf_mem_run = importlib.import_module("hf_mem.run")

        local = httpx2.URL(os.environ["HF_ENDPOINT"])

        class Rewrite(httpx2.AsyncBaseTransport):
            def __init__(self) -> None:
                self.inner = httpx2.AsyncHTTPTransport()

            async def handle_async_request(self, request):
                if request.url.host == "huggingface.co":
                    request.url = request.url.copy_with(scheme=local.scheme, host=local.host, port=local.port)
                return await self.inner.handle_async_request(request)

        real = httpx2.AsyncClient

        def client(*args, **kwargs):
            kwargs.pop("http2", None)
            return real(*args, transport=Rewrite(), **kwargs)

        hf_mem_run.httpx2.AsyncClient = client
        try:
            result = hf_mem_run.run(model_id=repo_id, revision=revision, hf_token=token)
        finally:
            hf_mem_run.httpx2.AsyncClient = real
        return {"parameters": result.safetensors.param_count if result.safetensors else None}

    return go


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", default="meta-llama/Llama-3.1-405B")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median wall time is shown")
    args = parser.parse_args()
    if args.repo not in FIXTURES.repos:
        sys.exit(f"{args.repo} is not a fixture repo; choose one of fixtures/catalog.py")
    repo = FIXTURES.repos[args.repo]
    token = next(iter(sorted(repo.authorized_tokens)), None)
    sha = repo.refs["refs/heads/main"]
    shards, header_total = _header_bytes(args.repo, sha)

    proc, url = start_server(args.latency_ms)
    os.environ.update(
        {
            "HF_ENDPOINT": url,
            "HF_HOME": HF_HOME,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        }
    )
    os.environ.pop("HF_TOKEN", None)
    # Import every client up front: the timings compare requests, not import costs (see `hubfit --help` below).
    import huggingface_hub.hf_api  # noqa: F401

    import hubfit.pipeline  # noqa: F401

    runs = [
        ("hubfit @ main", run_hubfit(args.repo, None, token)),
        ("hubfit @ sha", run_hubfit(args.repo, sha, token)),
        ("huggingface_hub get_safetensors_metadata @ sha", run_hf_hub(args.repo, sha, token)),
    ]
    try:
        import hf_mem.run  # noqa: F401

        runs.append(("hf-mem @ main", run_hf_mem(args.repo, "main", token)))
    except ImportError:
        print("(hf-mem not installed: pip install -e '.[bench]' to compare)", file=sys.stderr)
    try:
        rows = []
        for label, fn in runs:
            results = [measure(url, label, fn) for _ in range(args.repeat)]
            results.sort(key=lambda r: r["wall_s"])
            rows.append(results[len(results) // 2])
    finally:
        proc.terminate()

    print(
        f"{args.repo}: {shards} shards, header bytes (prefix + JSON) {header_total:,}; latency {args.latency_ms:g} ms"
    )
    budget = 1.1 * header_total + 8 * 1024 * shards
    print(f"byte budget for a pinned sha (1.1 x headers + 8 KB per shard): {budget:,.0f}")
    print(
        "requests = HTTP exchanges the server saw (LFS redirects included); hubfit req = requests hubfit sent"
    )
    print()
    print(
        f"{'run':<48} {'requests':>8} {'redirects':>9} {'hubfit req':>10} {'range bytes':>12} {'wall s':>8} {'params':>14}"
    )
    for r in rows:
        print(
            f"{r['label']:<48} {r['requests']:>8} {r['redirects']:>9} {r.get('hubfit_requests', ''):>10} "
            f"{r['range_bytes']:>12,} {r['wall_s']:>8.2f} {r.get('parameters') or '':>14}"
        )
    mem = next((r for r in rows if r["label"].startswith("hf-mem")), None)
    if mem:
        for r in rows[:2]:
            print(f"{r['label']}: wall time {r['wall_s'] / mem['wall_s']:.2f} x hf-mem's")

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hubfit.cli.commands", "--help"], capture_output=True, check=True)
    print(f"\n`hubfit --help`: {time.perf_counter() - start:.3f} s (python -m hubfit.cli, cold process)")
    shutil.rmtree(HF_HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
