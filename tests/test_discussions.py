"""`hubfit comment REPO`: one hubfit comment per repository on the fake Hub, edited in place on later runs."""

from __future__ import annotations

import pytest
from publish_support import BOT, BOT_TOKEN, OTHER_TOKEN, new_repo, publish_writes, resave_in_bf16

import hubfit
from fixtures.hub_writes import discussions, lose_next_answers
from hubfit.errors import DiscussionsDisabledError, PublishError
from hubfit.publish._hub import Publisher
from hubfit.publish.discussions import (
    COMMENT_MARKER,
    DISCUSSION_TITLE,
    apply_comment,
    plan_comment,
    render_comment,
)
from hubfit.source.hub import HubClient


def comment(repo_id: str, token: str = BOT_TOKEN, discussion: int | None = None):
    pub = Publisher(HubClient(token=token, sleep=lambda s: None), sleep=lambda s: None)
    body = render_comment(hubfit.analyze(repo_id, token=token))
    plan = plan_comment(pub, repo_id, body, discussion=discussion)
    return body, plan, apply_comment(pub, plan)


def comments(hub, repo_id: str, num: int) -> list[dict]:
    d = next(d for d in discussions(hub.repos[repo_id]) if d["num"] == num)
    return [e for e in d["events"] if e["type"] == "comment"]


def test_opens_a_discussion_then_edits_its_comment_in_place(hub):
    repo_id = new_repo(hub)
    body1, plan1, first = comment(repo_id)
    assert plan1.action == "open" and first.action == "open"
    (opened,) = publish_writes(hub, repo_id)
    assert (
        opened["kind"] == "discussion" and opened["title"] == DISCUSSION_TITLE and opened["content"] == body1
    )
    assert body1.endswith(COMMENT_MARKER)
    assert first.url.endswith(f"/{repo_id}/discussions/{first.num}")

    _, plan2, _ = comment(repo_id)  # same figures: nothing to write
    assert plan2.action == "none"
    assert len(publish_writes(hub, repo_id)) == 1

    resave_in_bf16(hub, repo_id)
    body3, plan3, third = comment(repo_id)
    assert plan3.action == "edit" and third.num == first.num and third.comment_id == first.comment_id
    writes = publish_writes(hub, repo_id)
    assert [w["kind"] for w in writes] == ["discussion", "edit_comment"]
    assert writes[1]["id"] == first.comment_id and writes[1]["content"] == body3
    (only,) = comments(hub, repo_id, first.num)
    assert only["data"]["latest"]["raw"] == body3 and only["data"]["edited"] is True
    assert len(discussions(hub.repos[repo_id])) == 1


def test_comment_on_a_given_discussion_then_edit_it(hub):
    repo_id = new_repo(hub)
    pub = Publisher(HubClient(token=OTHER_TOKEN))
    question = pub.api.create_discussion(
        repo_id, "Does it fit on a 24 GB card?", description="Asking for a friend."
    )
    _, plan1, first = comment(repo_id, discussion=question.num)
    assert plan1.action == "comment" and first.num == question.num
    resave_in_bf16(hub, repo_id)
    body, plan2, second = comment(repo_id, discussion=question.num)
    assert plan2.action == "edit" and second.comment_id == first.comment_id
    thread = comments(hub, repo_id, question.num)
    assert [c["author"]["name"] for c in thread] == ["someone-else", BOT]
    assert thread[1]["data"]["latest"]["raw"] == body
    assert first.url.endswith(f"/discussions/{question.num}#{first.comment_id}")


def test_someone_elses_comment_with_the_marker_is_never_edited(hub):
    repo_id = new_repo(hub)
    pub = Publisher(HubClient(token=OTHER_TOKEN))
    quoted = f"Look at what the bot wrote: {COMMENT_MARKER}"
    thread = pub.api.create_discussion(repo_id, "Quoting hubfit", description=quoted)
    _, plan, _ = comment(repo_id, discussion=thread.num)
    assert plan.action == "comment"
    first, mine = comments(hub, repo_id, thread.num)
    assert first["data"]["latest"]["raw"] == quoted and first["data"]["edited"] is False
    assert mine["author"]["name"] == BOT


def test_a_closed_hubfit_discussion_is_not_reused(hub):
    repo_id = new_repo(hub)
    _, _, first = comment(repo_id)
    next(d for d in discussions(hub.repos[repo_id]) if d["num"] == first.num)["status"] = "closed"
    _, plan, second = comment(repo_id)
    assert plan.action == "open" and second.num != first.num


def test_discussions_disabled_is_a_distinct_error(hub):
    repo_id = new_repo(hub, discussions_disabled=True)
    with pytest.raises(DiscussionsDisabledError, match="disabled") as err:
        comment(repo_id)
    assert err.value.exit_code == 11
    assert publish_writes(hub, repo_id) == []


def test_unknown_discussion_number(hub):
    repo_id = new_repo(hub)
    with pytest.raises(PublishError, match="no discussion or pull request #42"):
        comment(repo_id, discussion=42)


def test_lost_answer_does_not_open_a_second_discussion(hub):
    repo_id = new_repo(hub)
    lose_next_answers(hub, 1)
    _, _, result = comment(repo_id)
    assert result.action == "open"
    assert len(discussions(hub.repos[repo_id])) == 1


def test_lost_answer_does_not_post_a_second_comment(hub):
    repo_id = new_repo(hub)
    pub = Publisher(HubClient(token=OTHER_TOKEN))
    thread = pub.api.create_discussion(repo_id, "Hardware?", description="Which GPU?")
    lose_next_answers(hub, 1)
    _, _, result = comment(repo_id, discussion=thread.num)
    assert result.action == "comment"
    assert len(comments(hub, repo_id, thread.num)) == 2


# ---- the command line -------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from hubfit.cli.commands import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_comment_twice_edits_in_place(hub, capsys):
    repo_id = new_repo(hub)
    code, out, err = run_cli(capsys, "comment", repo_id, "--token", BOT_TOKEN, "--verbose")
    assert code == 0, err
    assert f"opening a discussion '{DISCUSSION_TITLE}' on {repo_id}" in err
    (opened,) = publish_writes(hub, repo_id)
    assert out.strip() == f"{hub.url}/{repo_id}/discussions/{opened['num']}"
    assert "## Hardware requirements" in opened["content"] and "### GPUs" in opened["content"]
    resave_in_bf16(hub, repo_id)
    code, out, err2 = run_cli(capsys, "comment", repo_id, "--token", BOT_TOKEN)
    assert code == 0 and "editing hubfit's comment" in err2
    assert [w["kind"] for w in publish_writes(hub, repo_id)] == ["discussion", "edit_comment"]
    assert BOT_TOKEN not in out + err + err2


def test_cli_discussions_disabled_exits_11(hub, capsys):
    repo_id = new_repo(hub, discussions_disabled=True)
    code, out, err = run_cli(capsys, "comment", repo_id, "--token", BOT_TOKEN)
    assert code == 11
    assert (
        err.startswith("hubfit: error: discussions and pull requests are disabled") and err.count("\n") == 1
    )


def test_cli_comment_needs_a_token(hub, capsys):
    repo_id = new_repo(hub)
    code, _, err = run_cli(capsys, "comment", repo_id)
    assert code == 2 and "needs a Hub token" in err
