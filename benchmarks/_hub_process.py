"""The fake Hub in its own process, for benchmarks: clients then do not share a GIL with the server.

Prints its URL on the first line of stdout. Two extra routes serve the counters: ``GET /__bench/stats`` and
``POST /__bench/reset``.

    python benchmarks/_hub_process.py --latency-ms 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixtures.catalog import load_all  # noqa: E402
from fixtures.hub_server import FakeHub, Response  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--gguf-repo", metavar="REPO_ID", help="also serve a 25-file GGUF repo (benchmarks/gguf_repo.py)"
    )
    args = parser.parse_args()
    hub = FakeHub(latency_s=args.latency_ms / 1000)
    load_all(hub)
    if args.gguf_repo:
        from benchmarks.gguf_repo import add_25_file_repo

        add_25_file_repo(hub, args.gguf_repo)

    def stats(hub: FakeHub, req) -> Response:
        log = [e for e in hub.log if not e.path.startswith("/__bench")]
        return Response.json(
            {
                "requests": len(log),
                "redirects": sum(1 for e in log if e.status in (301, 302, 307)),
                "range_bytes": sum(e.bytes_sent for e in log if e.range),
                "bytes": sum(e.bytes_sent for e in log),
            }
        )

    def reset(hub: FakeHub, req) -> Response:
        hub.reset_log()
        return Response.json({})

    hub.add_route("GET", r"/__bench/stats", stats)
    hub.add_route("POST", r"/__bench/reset", reset)
    hub.start()
    print(hub.url, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
