"""Organization scan at scale on the local fake Hub: requests, bytes, wall time, faults, kill/resume, memory.

    python benchmarks/scan.py [--repos 1000] [--latency-ms 50] [--concurrency 8] [--out benchmarks/results/scan.md]

The fake Hub (fixtures/hub_server.py) runs in its own process (``--serve``) so that the scanner does not share a
GIL with the server. It holds one author, ``bench-org``, with ``--repos`` repositories registered
programmatically: round-robin copies of three real fixture repos (real configs and tensor layouts, small
headers; published counts in fixtures/README.md):

- Qwen/Qwen2.5-0.5B: one ``model.safetensors``, 494,032,768 parameters;
- mistralai/Mistral-7B-v0.1: 2 shards + index, 7,241,732,096 parameters;
- meta-llama/Llama-3.1-8B: 4 shards + index, 8,030,261,248 parameters.

Every request waits ``--latency-ms`` on the server. The listing is paginated 100 repos a page. Parts:

1. cold scan (empty cache) and a second scan with nothing changed (target: the listing pages only);
2. 5% of requests answered 429 (Retry-After: 1), 500, 503 or a dropped connection: every repo must end up
   analysed with the published count or recorded with its error, each exactly once; a second run completes
   the failures;
3. ``hubfit scan`` killed with SIGKILL mid-scan, then run again: finished repos must not be requested again;
4. peak memory of the scanning process at 250, 500 and 1,000 repos: tracemalloc's peak in one run, the max
   RSS in another without tracemalloc (whose bookkeeping would inflate it).

Prints Markdown; ``--out`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTHOR = "bench-org"
PAGE_SIZE = 100
SOURCES = {
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "meta-llama/Llama-3.1-8B": 8_030_261_248,
}

# Hub rate limits per 5-minute window (hub-docs docs/hub/rate-limits.md @242f4a1e, via
# research/ecosystem.md §1.9): (API bucket, resolver bucket).
HUB_LIMITS = {
    "anonymous (per IP)": (500, 3_000),
    "free user": (1_000, 5_000),
    "PRO user": (2_500, 12_000),
    "Team organization": (3_000, 20_000),
    "Enterprise organization": (6_000, 50_000),
}


# ---- the server process -------------------------------------------------------------------------------
def serve(repos: int, latency_ms: float) -> None:
    """Run the fake Hub with ``bench-org``; print its URL; serve ``/__bench/*`` control routes."""
    from fixtures.catalog import load
    from fixtures.hub_server import FakeHub, FaultPlan, Response

    hub = FakeHub(latency_s=latency_ms / 1000)
    hub.page_size = PAGE_SIZE
    load(hub, *SOURCES)
    sources = list(SOURCES)
    for i in range(repos):
        source = hub.repos[sources[i % len(sources)]]
        hub.add_repo(
            f"{AUTHOR}/model-{i:05d}",
            dict(source.head.files),
            library_name="transformers",
            tags=["transformers", "safetensors", "text-generation"],
        )

    def classify(path: str) -> str:
        if path == "/api/models":
            return "listing"
        if path.startswith("/api/"):
            return "api"
        if "/resolve/" in path:
            return "resolver"
        return "cdn"

    def repo_of(path: str) -> str | None:
        parts = path.strip("/").split("/")
        if path.startswith("/api/models/") and len(parts) >= 4:
            return f"{parts[2]}/{parts[3]}"
        if "/resolve/" in path:
            return f"{parts[0]}/{parts[1]}"
        if path.startswith("/repos/"):
            return f"{parts[1]}/{parts[2]}"
        return None

    def stats(hub: FakeHub, req) -> Response:
        log = [e for e in hub.log if not e.path.startswith("/__bench")]
        by_class: dict[str, int] = {}
        bytes_by_class: dict[str, int] = {}
        statuses: dict[str, int] = {}
        per_repo: dict[str, int] = {}
        for e in log:
            kind = classify(e.path)
            by_class[kind] = by_class.get(kind, 0) + 1
            bytes_by_class[kind] = bytes_by_class.get(kind, 0) + e.bytes_sent
            statuses[str(e.status)] = statuses.get(str(e.status), 0) + 1
            repo = repo_of(e.path)
            if repo is not None:
                per_repo[repo] = per_repo.get(repo, 0) + 1
        out = {
            "requests": len(log),
            "bytes": sum(e.bytes_sent for e in log),
            "by_class": by_class,
            "bytes_by_class": bytes_by_class,
            "statuses": statuses,
        }
        if req.arg("repos"):
            out["repos"] = per_repo
        return Response.json(out)

    def reset(hub: FakeHub, req) -> Response:
        hub.reset_log()
        return Response.json({})

    def faults(hub: FakeHub, req) -> Response:
        rate = float(req.arg("rate", "0"))
        hub.faults = FaultPlan(rate, seed=int(req.arg("seed", "0")), path=r"^/(?!__bench)") if rate else None
        return Response.json({"rate": rate})

    hub.add_route("GET", r"/__bench/stats", stats)
    hub.add_route("POST", r"/__bench/reset", reset)
    hub.add_route("POST", r"/__bench/faults", faults)
    hub.start()
    print(hub.url, flush=True)
    while True:
        time.sleep(3600)


# ---- the scanning side ----------------------------------------------------------------------------------
def control(url: str, path: str, method: str = "GET") -> dict:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=30) as r:
        return json.loads(r.read())


def child_scan(db: str, limit: int | None, concurrency: int, trace: bool) -> None:
    """Run one scan in this (fresh) process and print its memory figures as JSON.

    With ``trace``: tracemalloc's peak of Python allocations. Without: the resident set size (tracemalloc's own
    bookkeeping would inflate it), before the scan and at its largest.
    """
    import resource
    import tracemalloc

    import hubfit.fit.planner  # noqa: F401
    import hubfit.pipeline  # noqa: F401 - imported before the measurement starts
    import hubfit.sizing.memory  # noqa: F401
    from hubfit.scan.runner import ScanOptions, ScanQuery, run_scan
    from hubfit.scan.store import ScanStore

    # Warm up on one repo first (lazy imports, the GPU and precision catalogs, the HTTP client), so the figures
    # are the scan's own working set.
    with ScanStore(db + ".warmup") as store:
        run_scan(store, ScanQuery(AUTHOR, limit=1), ScanOptions(concurrency=1))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if trace:
        tracemalloc.start()
    with ScanStore(db) as store:
        result = run_scan(store, ScanQuery(AUTHOR, limit=limit), ScanOptions(concurrency=concurrency))
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "repos": result.listed,
                "ok": result.counts["ok"],
                "traced_peak": peak,
                "rss_before": rss_before,
                "rss_max": rss,
                "wall_s": result.wall_s,
            }
        )
    )


def check_rows(store, scan_id: int, expected: dict[str, int]) -> dict[str, int]:
    """Count ok rows with the right parameter count, wrong ones, errors, pending; and duplicates."""
    seen: set[str] = set()
    out = {"ok_correct": 0, "ok_wrong": 0, "error": 0, "pending": 0, "duplicates": 0}
    for row in store.rows(scan_id):
        if row.repo_id in seen:
            out["duplicates"] += 1
        seen.add(row.repo_id)
        if row.status == "ok":
            right = row.report["parameters"]["total"] == expected[row.repo_id]
            out["ok_correct" if right else "ok_wrong"] += 1
        else:
            out[row.status] += 1
    out["distinct"] = len(seen)
    return out


def fmt_bytes(n: int) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.repos, args.latency_ms)
        return
    if args.child:
        child_scan(args.child, args.limit, args.concurrency, args.trace)
        return

    work = Path(tempfile.mkdtemp(prefix="hubfit-bench-scan-"))
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--repos",
            str(args.repos),
            "--latency-ms",
            str(args.latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=open(work / "server.log", "w"),  # noqa: SIM115 - lives as long as the server
        text=True,
    )
    url = server.stdout.readline().strip()
    env = {
        **os.environ,
        "HF_ENDPOINT": url,
        "HF_HOME": str(work / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HUBFIT_DEBUG": "",
    }
    env.pop("HF_TOKEN", None)
    os.environ.update(env)
    from hubfit import __version__
    from hubfit.scan.runner import ScanOptions, ScanQuery, run_scan
    from hubfit.scan.store import ScanStore

    sources = list(SOURCES)
    expected = {f"{AUTHOR}/model-{i:05d}": SOURCES[sources[i % 3]] for i in range(args.repos)}
    n, lines = args.repos, []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    def scan(db: Path, **kw):
        with ScanStore(db) as store:
            start, cpu = time.perf_counter(), time.process_time()
            result = run_scan(store, ScanQuery(AUTHOR), ScanOptions(concurrency=args.concurrency, **kw))
            wall = time.perf_counter() - start
            result.cpu_s = time.process_time() - cpu
            return result, wall, check_rows(store, result.scan_id, expected)

    def cold_cache() -> None:
        """Empty huggingface_hub's download cache, so each part starts cold (config.json is cached per sha)."""
        shutil.rmtree(work / "hf-home" / "hub", ignore_errors=True)

    def faults_served(stats: dict) -> str:
        names = {"429": "429", "500": "500", "503": "503", "0": "dropped"}
        return ", ".join(f"{names[k]}: {v}" for k, v in sorted(stats["statuses"].items()) if k in names)

    try:
        say(f"## hubfit scan benchmark ({time.strftime('%Y-%m-%d')}, hubfit {__version__})")
        say()
        say(
            f"Fake Hub in its own process, {n:,} repos under `{AUTHOR}` (round-robin copies of Qwen2.5-0.5B, "
            f"Mistral-7B-v0.1 (2 shards), Llama-3.1-8B (4 shards)), {args.latency_ms:g} ms latency per request, "
            f"listing pages of {PAGE_SIZE}, `--concurrency {args.concurrency}`, {os.cpu_count()} CPUs."
        )
        say()

        # 1. cold and unchanged
        db = work / "cold.sqlite"
        cold_cache()
        control(url, "/__bench/reset", "POST")
        cold, cold_wall, cold_rows = scan(db)
        cold_stats = control(url, "/__bench/stats")
        control(url, "/__bench/reset", "POST")
        warm, warm_wall, warm_rows = scan(db)
        warm_stats = control(url, "/__bench/stats")
        say("### 1. Cold scan, then a second scan with nothing changed")
        say()
        say("| scan | requests | listing | API | resolver | CDN | bytes | wall | repos analysed | correct |")
        say("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for name, result, wall, st, rows in (
            ("cold", cold, cold_wall, cold_stats, cold_rows),
            ("unchanged", warm, warm_wall, warm_stats, warm_rows),
        ):
            c = st["by_class"]
            say(
                f"| {name} | {st['requests']:,} | {c.get('listing', 0)} | {c.get('api', 0)} | "
                f"{c.get('resolver', 0):,} | {c.get('cdn', 0):,} | {fmt_bytes(st['bytes'])} | {wall:.1f} s | "
                f"{result.analysed:,} (cached {result.cached:,}) | {rows['ok_correct']:,}/{n:,} |"
            )
        per_repo = {k: v / n for k, v in cold_stats["by_class"].items()}
        say()
        say(
            f"Cold: {cold_stats['requests'] / n:.2f} requests per repo ({per_repo.get('resolver', 0):.2f} resolver, "
            f"{per_repo.get('cdn', 0):.2f} CDN, {per_repo.get('api', 0):.2f} API, "
            f"{per_repo.get('listing', 0):.3f} listing), {n / cold_wall:.1f} repos/s, "
            f"{cold.cpu_s / n:.2f} CPU s per repo in the scanning process, "
            f"database {db.stat().st_size / 1e6:.1f} MB ({db.stat().st_size / n / 1e3:.1f} kB per repo). "
            f"Unchanged: {warm_stats['requests']} requests = "
            f"{-(-n // PAGE_SIZE)} listing pages of {PAGE_SIZE}, nothing per repo."
        )
        say()

        # Rate limits: the repos per hour one token sustains.
        api_per_repo = (cold_stats["by_class"].get("api", 0) + cold_stats["by_class"].get("listing", 0)) / n
        resolver_per_repo = cold_stats["by_class"].get("resolver", 0) / n
        say("Repos per hour one token sustains under the Hub's rate limits (5-minute windows; cold scan, ")
        say(f"{api_per_repo:.3f} API and {resolver_per_repo:.2f} resolver requests per repo as measured):")
        say()
        say("| tier | API / 5 min | resolvers / 5 min | repos / hour (cold) | bound by |")
        say("|---|--:|--:|--:|---|")
        for tier, (api, resolvers) in HUB_LIMITS.items():
            by_api = api / api_per_repo if api_per_repo else float("inf")
            by_res = resolvers / resolver_per_repo
            bound = "resolver" if by_res <= by_api else "API"
            say(f"| {tier} | {api:,} | {resolvers:,} | {12 * min(by_api, by_res):,.0f} | {bound} |")
        say()

        # 2. faults
        say("### 2. 5% of requests fail (429 with Retry-After: 1, 500, 503, dropped connection)")
        say()
        say(
            "| hubfit retries | run | requests | faults served | wall | analysed correctly | wrong | "
            "recorded errors | rows | duplicates | repos re-read |"
        )
        say("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
        from hubfit import constants

        default_attempts = constants.RETRY_ATTEMPTS
        for attempts in (default_attempts, 2):
            constants.RETRY_ATTEMPTS = attempts  # hubfit._http reads its policy from hubfit.constants
            db = work / f"faults-{attempts}.sqlite"
            cold_cache()
            control(url, "/__bench/faults?rate=0.05&seed=7", "POST")
            control(url, "/__bench/reset", "POST")
            faulty, faulty_wall, faulty_rows = scan(db)
            faulty_stats = control(url, "/__bench/stats")
            control(url, "/__bench/faults?rate=0", "POST")
            constants.RETRY_ATTEMPTS = default_attempts
            control(url, "/__bench/reset", "POST")
            healed, healed_wall, healed_rows = scan(db)
            healed_stats = control(url, "/__bench/stats?repos=1")
            label = f"{attempts} attempts" + (" (default)" if attempts == default_attempts else "")
            for run, _result, wall, st, rows, reread in (
                ("5% faults", faulty, faulty_wall, faulty_stats, faulty_rows, "-"),
                (
                    "next run, no faults",
                    healed,
                    healed_wall,
                    healed_stats,
                    healed_rows,
                    f"{len(healed_stats.get('repos', {}))} of {faulty.failed} failed",
                ),
            ):
                say(
                    f"| {label} | {run} | {st['requests']:,} | {faults_served(st) or '-'} | {wall:.1f} s | "
                    f"{rows['ok_correct']:,} | {rows['ok_wrong']} | {rows['error']} | {rows['distinct']:,} | "
                    f"{rows['duplicates']} | {reread} |"
                )
        say()
        say(
            "Each failure is recorded with its error (`NetworkError` / `RateLimitedError`, marked for retry) and "
            "the next run re-reads exactly those repos; nothing is lost or duplicated. With 2 attempts per request "
            "(`HUBFIT_RETRY_ATTEMPTS=2`) some repos exhaust their retries, which shows that path."
        )
        say()

        # 3. kill -9 mid-scan, then resume
        db = work / "kill.sqlite"
        cold_cache()
        control(url, "/__bench/reset", "POST")
        cmd = [
            sys.executable,
            "-m",
            "hubfit.cli.commands",
            "scan",
            AUTHOR,
            "--db",
            str(db),
            "-q",
            "--concurrency",
            str(args.concurrency),
            "--format",
            "jsonl",
            "-o",
            os.devnull,
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL)
        target = n // 2
        done = 0
        while proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as con:
                        (done,) = con.execute("SELECT COUNT(*) FROM results").fetchone()
                except sqlite3.OperationalError:
                    pass
            if done >= target:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_stats = control(url, "/__bench/stats")
        with sqlite3.connect(db) as con:
            finished = {r for (r,) in con.execute("SELECT repo_id FROM results WHERE status = 'ok'")}
        control(url, "/__bench/reset", "POST")
        resumed, resumed_wall, resumed_rows = scan(db)
        resumed_stats = control(url, "/__bench/stats?repos=1")
        redone = set(resumed_stats["repos"]) & finished
        say("### 3. `hubfit scan` killed with SIGKILL mid-scan, then run again")
        say()
        say(
            f"Killed after {len(finished):,} repos were recorded ({killed_stats['requests']:,} requests). "
            f"The rerun: {resumed.cached:,} cached, {resumed.analysed:,} analysed in {resumed_wall:.1f} s, "
            f"{resumed_stats['requests']:,} requests; finished repos requested again: {len(redone)}; "
            f"final rows {resumed_rows['distinct']:,}, correct {resumed_rows['ok_correct']:,}, "
            f"duplicates {resumed_rows['duplicates']}."
        )
        say()

        # 4. memory as the organization grows
        say("### 4. Memory of the scanning process (cold scan, fresh database and cache each)")
        say()
        say(
            "| repos | traced peak (tracemalloc run) | max RSS (run without tracemalloc) | RSS before the scan | wall |"
        )
        say("|--:|--:|--:|--:|--:|")
        for limit in (250, 500, 1000):
            if limit > n:
                continue
            runs = {}
            for trace in (False, True):
                cold_cache()
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    str(work / f"mem-{limit}-{trace}.sqlite"),
                    "--limit",
                    str(limit),
                    "--concurrency",
                    str(args.concurrency),
                ]
                out = subprocess.run(
                    cmd + (["--trace"] if trace else []),
                    cwd=ROOT,
                    env=os.environ.copy(),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                runs[trace] = json.loads(out.strip().splitlines()[-1])
            m, t = runs[False], runs[True]
            say(
                f"| {m['repos']:,} | {fmt_bytes(t['traced_peak'])} | {fmt_bytes(m['rss_max'])} | "
                f"{fmt_bytes(m['rss_before'])} | {m['wall_s']:.1f} s ({t['wall_s']:.1f} s traced) |"
            )
        say()
    finally:
        server.terminate()
        server.wait()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
