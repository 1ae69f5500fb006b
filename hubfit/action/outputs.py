"""What the Action step leaves behind: log lines, the output directory, ``$GITHUB_OUTPUT`` and the job summary.

The output directory holds ``report.json`` (and ``base.json`` on a pull request), ``comment.md`` and
``action.json``: upload it as an artifact for the ``workflow_run`` pattern (:mod:`hubfit.action.comment`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hubfit.action.analysis import Analysis
from hubfit.action.inputs import ActionInputs, RunnerContext

__all__ = ["SUMMARY_BUDGET", "append_summary", "log", "write_artifacts", "write_outputs"]

#: Job summaries over 1024 KiB are rejected by the runner.
SUMMARY_BUDGET = 1_000_000


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def log(message: str) -> None:
    """One line of the step's log (workflow commands such as ``::error`` included), whatever it quotes.

    A workflow command's data is escaped as the runner unescapes it (``%`` ``%25``, CR ``%0D``, LF ``%0A``:
    ``escapeData`` of actions/toolkit), so a message shows as it is and stays one command; in any other line
    control characters become spaces. Either way, text from a repository or an input cannot start a line of its
    own, which the runner would read as a command (``::set-output``, ``::add-mask``, ``::stop-commands``).
    """
    if message.startswith("::") and "::" in message[2:]:
        command, _, data = message[2:].partition("::")
        data = data.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        message = f"::{command}::{_LINE_BREAKS.sub(' ', data)}"
    else:
        message = _LINE_BREAKS.sub(" ", message)
    print(message, flush=True)


def _json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_artifacts(
    out_dir: Path, inputs: ActionInputs, ctx: RunnerContext, head: Analysis, base: Analysis | None, body: str
) -> Path:
    """Write ``report.json``, ``base.json`` (with a base), ``comment.md`` and ``action.json`` into ``out_dir``.

    ``action.json`` names the pull request and the commits analysed, for a ``workflow_run`` job that posts
    ``comment.md``. Returns the path of ``report.json``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    _json(json_path, head.report.to_dict())
    if base is not None:
        _json(out_dir / "base.json", base.report.to_dict())
    (out_dir / "comment.md").write_text(body, encoding="utf-8")
    pr = ctx.pull_request
    reads = [*head.lfs_reads, *(base.lfs_reads if base else [])]
    meta = {
        "model": inputs.model,
        "event": ctx.event_name,
        "pull_request": pr.get("number") if pr else None,
        "head_sha": ((pr or {}).get("head") or {}).get("sha") or ctx.sha,
        "base_sha": base.report.sha if base else None,
        "lfs_reads": [asdict(read) for read in reads],
    }
    _json(out_dir / "action.json", meta)
    return json_path


def write_outputs(path: Path | None, values: Mapping[str, str]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT`` (``name=value`` lines; a heredoc for multi-line values)."""
    if path is None:
        return
    with path.open("a", encoding="utf-8") as fh:
        for name, value in values.items():
            if "\n" in value:
                delimiter = f"hubfit_{hashlib.sha256(value.encode()).hexdigest()[:16]}"
                fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                fh.write(f"{name}={value}\n")


def append_summary(path: Path | None, body: str) -> None:
    """Append ``body`` to the job summary (``$GITHUB_STEP_SUMMARY``), within the runner's size limit."""
    if path is None:
        return
    if len(body.encode()) > SUMMARY_BUDGET:
        body = body.encode()[: SUMMARY_BUDGET - 200].decode("utf-8", "ignore") + "\n\n(truncated)\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(body + "\n")
