"""The Action on the default branch: refresh ``hub-repo``'s model card, in-process (what ``hubfit card`` does).

The card is the Hub repo's: it is analysed on the Hub at ``revision`` with the inputs' workload and GPUs, and
its "Hardware requirements" section is proposed in a Hub pull request (``update-card: pr``) or committed to
``main`` (``update-card: commit``) through :func:`hubfit.publish.card.plan_card` and
:func:`~hubfit.publish.card.apply_card`. The Hub token is ``hf-token``; it is never printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubfit.action.inputs import ActionInputs, RunnerContext
from hubfit.action.outputs import log
from hubfit.errors import UsageError

if TYPE_CHECKING:
    from hubfit.publish.card import CardResult
    from hubfit.source.hub import HubClient

__all__ = ["update_card"]


def update_card(inputs: ActionInputs, ctx: RunnerContext, hub_client: HubClient) -> CardResult | None:
    """On the default branch (push, schedule, manual run), refresh hub-repo's model card.

    ``hub_client`` must carry ``hf-token`` (a token with write access to hub-repo). Returns what was written
    (``None``: not asked for, or not on the default branch).

    Raises:
        UsageError: update-card without hub-repo or hf-token.
        hubfit.errors.HubfitError: the analysis or the write failed (with its own exit code: 9 refused,
            10 conflict ...).
    """
    if inputs.update_card == "false" or not ctx.on_default_branch:
        return None
    if not inputs.hub_repo:
        raise UsageError("update-card needs hub-repo (the Hub repository whose card to refresh)")
    if not inputs.hf_token:
        raise UsageError("update-card needs hf-token (a token with write access to hub-repo)")
    from hubfit.fit.planner import HardwareQuery
    from hubfit.pipeline import analyze
    from hubfit.publish._hub import Publisher
    from hubfit.publish.card import apply_card, plan_card
    from hubfit.sizing import Workload

    log(f"hubfit: refreshing the model card of {inputs.hub_repo} ({inputs.update_card})")
    # As `hubfit card` sizes it: the precisions asked for (not the fail-if-exceeds one), the default batch.
    hardware = HardwareQuery(gpus=inputs.gpus)
    hardware.devices()
    report = analyze(
        inputs.hub_repo,
        revision=inputs.revision,
        token=inputs.hf_token,
        client=hub_client,
        workload=Workload(context=inputs.context, batch=inputs.batch or 1, precisions=inputs.precisions),
        hardware=hardware,
    )
    publisher = Publisher(hub_client)
    plan = plan_card(publisher, report, mode=inputs.update_card)
    log(f"hubfit: {plan.describe()}")
    result = apply_card(publisher, plan)
    log(f"hubfit: model card: {result.url}")
    return result
