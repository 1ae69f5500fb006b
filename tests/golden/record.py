"""Record every fixture model's report documents, the reference the performance work must reproduce exactly.

    python -m tests.golden.record        # rewrites tests/golden/reports.json.gz from the fake Hub

For each analysable fixture repo (fixtures/catalog.py) it records ``Report.to_dict()`` for three questions: the
command line's defaults (default precisions, the default GPU set), a long context with an fp8 KV cache on a
fixed count of two named GPUs with ``--bpw`` rows, and the seed formula. ``hubfit_version`` is left out.
tests/test_golden.py compares the current code's documents with these, figure by figure.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "reports.json.gz"

#: The questions asked of every model (name -> Workload and HardwareQuery keyword arguments).
QUESTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults": ({}, {}),
    "long-fp8-two-gpus": (
        {"context": 32768, "batch": 2, "kv_dtype": "fp8", "bpw": (2.5, 4.65)},
        {"gpus": ("RTX 4090", "H100 SXM"), "count": 2},
    ),
    "seed": ({"overhead": 0.2, "precisions": ("bf16", "int8", "int4")}, {"gpus": ("MI300X", "H100 SXM")}),
}


def analysable() -> list[str]:
    from fixtures.catalog import FIXTURES

    skip = ("hubfit-fixtures/hostile-", "hubfit-fixtures/pytorch-only", "hubfit-fixtures/private")
    return [repo for repo in FIXTURES if not repo.startswith(skip)]


def documents(token: str) -> dict[str, dict[str, Any]]:
    """``{"<repo> <question>": document}`` for every analysable fixture and question."""
    from hubfit.errors import HubfitError
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import build_report, load_model
    from hubfit.sizing.memory import Workload
    from hubfit.source.hub import HubClient

    out: dict[str, dict[str, Any]] = {}
    for repo in analysable():
        model = load_model(repo, client=HubClient(token=token))
        for name, (work, hard) in QUESTIONS.items():
            try:
                doc = build_report(model, workload=Workload(**work), hardware=HardwareQuery(**hard)).to_dict()
            except HubfitError as exc:  # e.g. a fixed --gpus count a one-layer model cannot be split into
                out[f"{repo} {name}"] = {"error": str(exc)}
                continue
            doc.pop("hubfit_version")
            out[f"{repo} {name}"] = doc
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from fixtures.catalog import TOKEN_GRANTED, load_all
    from fixtures.hub_server import FakeHub

    hub = FakeHub()
    load_all(hub)
    hub.start()
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        docs = documents(TOKEN_GRANTED)
    finally:
        hub.stop()
    text = json.dumps(docs, sort_keys=True, separators=(",", ":"))
    OUT.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{len(docs)} documents -> {OUT.relative_to(ROOT)} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
