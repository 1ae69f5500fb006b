"""The long fuzzing budget: every front door of tests/fuzzing.py, thousands of inputs each (issue 19).

    python benchmarks/fuzz.py                      # 2,000 inputs per door, a Markdown summary on stdout
    python benchmarks/fuzz.py --examples 200 --door config

For each door it feeds hypothesis-generated inputs through hubfit and counts, per input: an exception that is not
a ``HubfitError`` (a failure, its first input kept), the wall time (over one second is a failure when a second
run confirms it, as hypothesis confirms a deadline) and the peak of traced Python allocations (over 300 MB is a
failure). No network: a door that reads a repository reads a
temporary local directory. tests/test_fuzz.py runs the same doors with a short budget in the suite; the summary
of a long run is committed in benchmarks/results/fuzz.md.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import __version__ as hypothesis_version  # noqa: E402

from hubfit.errors import HubfitError  # noqa: E402
from tests.fuzzing import DOORS, Door  # noqa: E402

TIME_LIMIT_S = 1.0
MEMORY_LIMIT = 300 * 1024 * 1024


@dataclass
class Tally:
    """What one door's run saw."""

    inputs: int = 0
    refused: int = 0  # inputs answered with a HubfitError (a documented exit code)
    failures: int = 0
    pauses: int = 0  # inputs over the time limit once and well within it when run again
    slowest_s: float = 0.0
    total_s: float = 0.0
    peak_bytes: int = 0
    first_failure: str = ""
    kinds: dict[str, int] = field(default_factory=dict)


def run_door(door: Door, examples: int) -> Tally:
    tally = Tally()
    door.feed(door.sample)  # imports and caches before the clock starts

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(door.strategy)
    def feed(value: object) -> None:
        tracemalloc.start()
        start = time.perf_counter()
        problem = ""
        try:
            if door.feed(value):
                tally.refused += 1
        except HubfitError:  # a door that lets one through: still a documented answer
            tally.refused += 1
        except Exception as exc:  # a failure: counted, and the run goes on
            problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if not problem and elapsed > TIME_LIMIT_S:
            # Confirmed like hypothesis's deadline: run again; a pause of the machine is not the input's doing.
            again = time.perf_counter()
            with contextlib.suppress(HubfitError):
                door.feed(value)
            rerun = time.perf_counter() - again
            if rerun > TIME_LIMIT_S:
                problem = f"slow: {elapsed:.2f} s, then {rerun:.2f} s"
            else:
                tally.pauses += 1
                elapsed = rerun
        if not problem and peak > MEMORY_LIMIT:
            problem = f"memory: {peak / 2**20:.0f} MiB"
        tally.inputs += 1
        tally.total_s += elapsed
        tally.slowest_s = max(tally.slowest_s, elapsed)
        tally.peak_bytes = max(tally.peak_bytes, peak)
        if problem:
            tally.failures += 1
            kind = problem.split(":", 1)[0]
            tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
            if not tally.first_failure:
                tally.first_failure = f"{problem} <- {value!r:.300}"

    feed()
    return tally


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per door (default 2,000)")
    parser.add_argument("--door", action="append", help="only this door (repeatable)")
    args = parser.parse_args(argv)
    doors = [d for d in DOORS if not args.door or d.name in args.door]
    started = time.perf_counter()
    rows = []
    for door in doors:
        tally = run_door(door, args.examples)
        rows.append((door, tally))
        print(f"{door.name}: {tally.inputs} inputs, {tally.failures} failures", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    print("# Fuzzing the front doors: the long budget\n")
    print(
        f"`python benchmarks/fuzz.py --examples {args.examples}` at hubfit {_commit()}, hypothesis "
        f"{hypothesis_version}, Python {platform.python_version()} on {platform.machine()} "
        f"({wall:.0f} s in all). Each input is a failure if it raises anything but a `HubfitError`, takes more "
        f"than {TIME_LIMIT_S:g} s, or its traced Python allocations peak above {MEMORY_LIMIT // 2**20} MiB. "
        "The doors and their strategies are in `tests/fuzzing.py`; `tests/test_fuzz.py` runs them in the suite "
        "with 40 inputs each.\n"
    )
    print("| door | what is fed | inputs | refused (HubfitError) | failures | slowest | mean | peak memory |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for door, t in rows:
        mean_ms = 1000 * t.total_s / t.inputs if t.inputs else 0.0
        print(
            f"| {door.name} | {door.what} | {t.inputs:,} | {t.refused:,} | {t.failures} | "
            f"{1000 * t.slowest_s:.0f} ms | {mean_ms:.1f} ms | {t.peak_bytes / 2**20:.1f} MiB |"
        )
    total = sum(t.inputs for _, t in rows)
    failures = sum(t.failures for _, t in rows)
    pauses = sum(t.pauses for _, t in rows)
    print(f"\n**{total:,} inputs, {failures} failures.**")
    if pauses:
        print(
            f"\n{pauses} input(s) took over {TIME_LIMIT_S:g} s once and were within it when run again (a pause of "
            "the machine, not the input's work): their second time is the one counted."
        )
    for door, t in rows:
        if t.failures:
            print(f"\n- {door.name}: {t.kinds}; first: `{t.first_failure}`")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
