"""The GitHub Action's step: ``python -m hubfit.action``, run by ``action.yml``.

It reads what the runner provides (``GITHUB_EVENT_NAME``, ``GITHUB_EVENT_PATH``, ``GITHUB_STEP_SUMMARY``,
``GITHUB_OUTPUT``, ``GITHUB_API_URL``, ``GITHUB_REPOSITORY`` ...) and the action's inputs, which
``action.yml`` passes as ``INPUT_*`` environment variables (never interpolated into a script)
(:mod:`hubfit.action.inputs`). Then, in-process:

1. it analyses the model: a directory of the checkout or a Hub repo id, and on ``pull_request`` also the
   model at the pull request's base commit (:mod:`hubfit.action.analysis`). A Hub repo id has no base in the
   pull request; its comment has no comparison;
2. it renders one Markdown body from the reports (:func:`hubfit.render.comment.render_comment`), appends it
   to the job summary and posts or updates one sticky comment on the pull request, or leaves it for a
   ``workflow_run`` job when the pull request comes from a fork (:mod:`hubfit.action.comment`);
3. on the default branch with ``update-card`` set, it refreshes the model card on ``hub-repo``
   (:mod:`hubfit.action.card`);
4. it writes the outputs (``json``, ``total-parameters``, ``fits``, ``dir``; :mod:`hubfit.action.outputs`)
   and fails the step, last, when the model exceeds ``fail-if-exceeds``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hubfit.action.analysis import (
    Analysis,
    analyse_base,
    analyse_head,
    check_target,
    evaluate_target,
    model_directory,
)
from hubfit.action.card import update_card
from hubfit.action.comment import comment_bodies, post_comment, post_from_artifact
from hubfit.action.inputs import ActionInputs, RunnerContext
from hubfit.action.outputs import append_summary, log, write_artifacts, write_outputs
from hubfit.errors import HubfitError
from hubfit.units import gib

__all__ = ["main", "run"]


def run(env: Mapping[str, str]) -> int:
    """Run the action with the environment ``env``; returns the process exit code.

    Raises:
        HubfitError: any failure (``main`` prints it as a workflow error).
    """
    inputs = ActionInputs.from_env(env)
    ctx = RunnerContext.from_env(env)
    if ctx.event_name == "workflow_run":
        post_from_artifact(inputs, ctx)
        return 0
    check_target(inputs)
    from hubfit.source.hub import HubClient

    hub_client = HubClient(token=inputs.hf_token)
    head = analyse_head(inputs, ctx, hub_client)
    for warning in head.report.warnings:
        log(f"::warning title=hubfit::{warning}")
    base: Analysis | None = None
    base_error: str | None = None
    if ctx.pull_request is not None and model_directory(inputs, ctx) is not None:
        with tempfile.TemporaryDirectory(prefix="hubfit-base-") as workdir:
            try:
                base = analyse_base(inputs, ctx, hub_client, Path(workdir))
            except HubfitError as exc:
                base_error = str(exc)
                log(f"::warning title=hubfit::no comparison with the base commit: {exc}")
    target = evaluate_target(head.model, inputs) if head.model is not None else None

    full, body = comment_bodies(head, base, base_error=base_error, target=target, run_url=ctx.run_url)
    json_path = write_artifacts(ctx.out_dir, inputs, ctx, head, base, body)
    append_summary(ctx.summary_path, full)
    write_outputs(
        ctx.output_path,
        {
            "json": str(json_path),
            "total-parameters": str(head.report.parameters.total),
            "fits": "" if target is None else str(target.fits).lower(),
            "dir": str(ctx.out_dir),
        },
    )
    post_comment(inputs, ctx, body)
    update_card(inputs, ctx, hub_client)
    if target is not None and not target.fits:
        log(
            f"::error title=hubfit::the model exceeds {target.target}: it needs {gib(target.per_gpu_bytes)} "
            f"per GPU and {target.gpu_name} offers {gib(target.usable_bytes)}"
        )
        return 1
    return 0


def main() -> int:
    """Entry point of ``python -m hubfit.action``: errors become one workflow error line and an exit code."""
    try:
        return run(os.environ)
    except HubfitError as exc:
        log(f"::error title=hubfit::{exc}")
        return exc.exit_code
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("HUBFIT_DEBUG"):
            raise
        log(
            f"::error title=hubfit::internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
            "(set HUBFIT_DEBUG=1 for the traceback and please report it)"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
