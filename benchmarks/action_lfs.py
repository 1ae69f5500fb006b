"""Headers of Git LFS pointer files through the LFS batch API: requests, bytes and time.

Writes a fixture model's files as a checkout without ``lfs: true`` would hold them (pointer files for the
weights), serves the objects from a local Git LFS server with a fixed latency per request, and analyses the
directory the way the GitHub Action does (``LocalSource`` with an ``LfsHeaderReader``). Prints the number of
batch and ranged requests, the bytes fetched against the size of the weights, and the wall time.

    python benchmarks/action_lfs.py --model meta-llama/Llama-3.1-405B --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixtures.catalog import load  # noqa: E402
from fixtures.hub_server import FakeHub  # noqa: E402


def serve(objects: dict[str, Any], latency_s: float) -> tuple[ThreadingHTTPServer, dict[str, int]]:
    stats = {"batch": 0, "ranges": 0, "bytes": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            time.sleep(latency_s)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            port = self.server.server_address[1]
            out = [
                {**o, "actions": {"download": {"href": f"http://127.0.0.1:{port}/o/{o['oid']}"}}}
                for o in body["objects"]
            ]
            with lock:
                stats["batch"] += 1
            self._send(200, json.dumps({"objects": out}).encode())

        def do_GET(self) -> None:
            time.sleep(latency_s)
            entry = objects[self.path.rsplit("/", 1)[1]]
            start, end = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers["Range"]).groups())
            data = entry.read(start, end + 1)
            with lock:
                stats["ranges"] += 1
                stats["bytes"] += len(data)
            self._send(206, data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="meta-llama/Llama-3.1-405B", help="a fixture repo id")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="LFS server latency per request")
    args = parser.parse_args()

    from hubfit.pipeline import analyze_source
    from hubfit.source.lfs import LfsClient, LfsHeaderReader
    from hubfit.source.sources import LocalSource

    hub = load(FakeHub(), args.model)
    files = hub.repos[args.model].head.files
    objects = {e.sha256: e for e in files.values() if e.lfs}
    server, stats = serve(objects, args.latency_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, entry in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(entry.lfs_pointer if entry.lfs else entry.prefix)
        url = f"http://127.0.0.1:{server.server_address[1]}/octo/model.git/info/lfs"
        reader = LfsHeaderReader(root, client=LfsClient(url))
        start = time.perf_counter()
        report = analyze_source(LocalSource(root, lfs=reader))
        elapsed = time.perf_counter() - start
    server.shutdown()
    weights = sum(e.size for e in objects.values())
    print(f"model                 {args.model}")
    print(f"LFS latency           {args.latency_ms:g} ms per request")
    print(f"pointer files read    {len(reader.reads)}")
    print(f"parameters            {report.parameters.total:,}")
    print(f"batch requests        {stats['batch']}")
    print(f"ranged GETs           {stats['ranges']}")
    print(
        f"bytes fetched         {stats['bytes']:,} of {weights:,} bytes of weights ({stats['bytes'] / weights:.2e})"
    )
    print(f"wall time             {elapsed:.2f} s")


if __name__ == "__main__":
    main()
