"""`hubfit card`: the hardware section proposed (PR) or committed to README.md on the fake Hub, writes checked."""

from __future__ import annotations

import pytest
from publish_support import (
    BOT_TOKEN,
    CARD,
    LLAMA2_70B_PARAMETERS,
    OTHER_TOKEN,
    OWNER_TOKEN,
    new_repo,
    publish_writes,
    resave_in_bf16,
)

import hubfit
from fixtures.hub_writes import discussions, lose_next_answers, readme
from hubfit.errors import ConflictError, DiscussionsDisabledError, PublishError
from hubfit.publish._hub import Publisher
from hubfit.publish.card import PR_TITLE, apply_card, plan_card
from hubfit.publish.cardtext import current_section
from hubfit.render.report import card_section as render_section
from hubfit.source.hub import HubClient


def publisher(token: str, sleeps: list[float] | None = None) -> Publisher:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return Publisher(HubClient(token=token, sleep=sleep), sleep=sleep)


def analyse(repo_id: str, token: str = BOT_TOKEN):
    return hubfit.analyze(repo_id, token=token)


def card(repo_id: str, token: str = BOT_TOKEN, mode: str = "pr"):
    pub = publisher(token)
    report = analyse(repo_id, token)
    plan = plan_card(pub, report, mode=mode)
    return report, plan, apply_card(pub, plan)


def test_section_figures_come_from_the_report(hub):
    repo_id = new_repo(hub)
    report = analyse(repo_id)
    section = render_section(report)
    # Published: 68,976,648,192 parameters (the F32 inv_freq buffers are not parameters).
    assert f"| Parameters | {LLAMA2_70B_PARAMETERS:,} (68.98B) |" in section
    # Stored bytes = F16 68,976,648,192 x 2 + F32 5,120 x 4 = 137,953,316,864 B = 137.95 GB = 128.48 GiB.
    assert (
        "| Checkpoint weights | 137.95 GB (128.48 GiB) in 15 files: `F16` 137.95 GB (128.48 GiB)" in section
    )
    assert f"at commit `{report.sha[:12]}`" in section
    assert f"hubfit {hubfit.__version__}" in section
    assert "GB = 10^9 bytes, GiB = 2^30 bytes" in section


def test_section_for_a_quantized_moe_model(hub):
    report = hubfit.analyze("openai/gpt-oss-20b")
    section = render_section(report)
    # fixtures/README.md: 20,914,757,184 logical parameters (U8 MXFP4 blocks x 2), 13,761,264,768 bytes stored.
    assert "| Parameters | 20,914,757,184 (20.91B) |" in section
    assert f"| Active parameters per token | {report.parameters.active:,} (" in section
    assert report.parameters.active < report.parameters.total  # 4 of 32 experts per token
    assert "| Checkpoint weights | 13.76 GB (12.82 GiB) in 3 files: `U8` " in section
    assert "| Quantization | `mxfp4`, 4.25-bit |" in section


def test_pr_readme_is_the_original_plus_the_section_byte_for_byte(hub):
    repo_id = new_repo(hub)
    main_before = hub.repos[repo_id].refs["refs/heads/main"]
    report, plan, result = card(repo_id)
    assert plan.action == "open_pr" and result.action == "open_pr"
    (write,) = publish_writes(hub, repo_id)
    assert write["kind"] == "pull_request" and write["title"] == PR_TITLE
    assert write["parent"] == main_before  # the PR is built on the commit that was read
    new_readme = write["files"]["README.md"]
    assert set(write["files"]) == {"README.md"}
    assert new_readme == CARD + b"\n" + render_section(report).encode() + b"\n"
    assert readme(hub, repo_id, f"refs/pr/{result.pr_num}") == new_readme
    assert readme(hub, repo_id, "main") == CARD  # main untouched
    assert result.url.endswith(f"/{repo_id}/discussions/{result.pr_num}")
    assert "feel free to close" in write["description"]


def test_second_run_opens_no_second_pr_and_a_model_change_updates_the_same_pr(hub):
    repo_id = new_repo(hub)
    _, _, first = card(repo_id)
    _, plan2, second = card(repo_id)
    assert plan2.action == "none" and second.action == "none"
    assert len(publish_writes(hub, repo_id)) == 1

    resave_in_bf16(hub, repo_id)  # the model changes on main
    report3, plan3, third = card(repo_id)
    assert plan3.action == "update_pr" and third.pr_num == first.pr_num
    writes = publish_writes(hub, repo_id)
    assert [w["kind"] for w in writes] == ["pull_request", "commit"]
    assert writes[1]["ref"] == f"refs/pr/{first.pr_num}"
    pr_readme = readme(hub, repo_id, f"refs/pr/{first.pr_num}")
    assert pr_readme == CARD + b"\n" + render_section(report3).encode() + b"\n"
    assert "`BF16`" in current_section(pr_readme)
    prs = [d for d in discussions(hub.repos[repo_id]) if d["isPullRequest"]]
    assert len(prs) == 1


def test_commit_mode_pushes_to_main_and_is_then_a_no_op(hub):
    repo_id = new_repo(hub)
    main_before = hub.repos[repo_id].refs["refs/heads/main"]
    report, plan, result = card(repo_id, OWNER_TOKEN, mode="commit")
    assert result.action == "commit"
    (write,) = publish_writes(hub, repo_id)
    assert write["kind"] == "commit" and write["ref"] == "refs/heads/main" and write["parent"] == main_before
    assert readme(hub, repo_id) == CARD + b"\n" + render_section(report).encode() + b"\n"
    assert result.url.endswith(f"/{repo_id}/commit/{write['sha']}")
    # main moved (the card commit), so the analysed sha differs; the figures do not: nothing to write.
    _, plan2, _ = card(repo_id, OWNER_TOKEN, mode="commit")
    assert plan2.action == "none"
    assert len(publish_writes(hub, repo_id)) == 1


def test_concurrent_edit_between_read_and_write_fails_cleanly(hub):
    repo_id = new_repo(hub)
    pub = publisher(OWNER_TOKEN)
    plan = plan_card(pub, analyse(repo_id), mode="commit")
    theirs = CARD + b"\nA paragraph the owner added meanwhile.\n"
    concurrent = hub.commit(repo_id, {"README.md": theirs}, message="Update README.md")
    with pytest.raises(ConflictError, match="changed while hubfit") as err:
        apply_card(pub, plan)
    assert err.value.exit_code == 10
    assert hub.repos[repo_id].refs["refs/heads/main"] == concurrent
    assert readme(hub, repo_id) == theirs
    assert publish_writes(hub, repo_id) == []


def test_concurrent_push_to_the_pr_fails_cleanly(hub):
    repo_id = new_repo(hub)
    _, _, first = card(repo_id)
    resave_in_bf16(hub, repo_id)
    pub = publisher(BOT_TOKEN)
    plan = plan_card(pub, analyse(repo_id))
    assert plan.action == "update_pr"
    ref = f"refs/pr/{first.pr_num}"
    hub.commit(repo_id, {"README.md": b"# edited in the PR\n"}, ref=ref, message="Edit in PR")
    with pytest.raises(ConflictError, match=f"pull request #{first.pr_num}"):
        apply_card(pub, plan)
    assert readme(hub, repo_id, ref) == b"# edited in the PR\n"
    assert len(publish_writes(hub, repo_id)) == 1


def test_pr_mode_is_not_fooled_by_a_concurrent_change_of_main(hub):
    repo_id = new_repo(hub)
    pub = publisher(BOT_TOKEN)
    report = analyse(repo_id)
    plan = plan_card(pub, report)
    read_at = plan.parent
    hub.commit(repo_id, {"README.md": CARD + b"\nNew paragraph.\n"}, message="Update README.md")
    result = apply_card(pub, plan)
    # The PR is based on the commit that was read: its diff adds the section and reverts nothing.
    (write,) = publish_writes(hub, repo_id)
    assert write["parent"] == read_at
    assert (
        readme(hub, repo_id, f"refs/pr/{result.pr_num}")
        == CARD + b"\n" + render_section(report).encode() + b"\n"
    )


def test_repo_without_readme_gets_a_minimal_card(hub):
    repo_id = new_repo(hub, readme=None)
    report, plan, result = card(repo_id)
    name = repo_id.split("/")[1]
    assert plan.old is None
    expected = f"# {name}\n\n".encode() + render_section(report).encode() + b"\n"
    assert readme(hub, repo_id, f"refs/pr/{result.pr_num}") == expected


def test_crlf_bom_card_keeps_its_bytes(hub):
    original = b"\xef\xbb\xbf" + CARD.replace(b"\n", b"\r\n").rstrip(b"\r\n")
    repo_id = new_repo(hub, readme=original)
    report, _, result = card(repo_id)
    section = render_section(report).replace("\n", "\r\n").encode()
    assert readme(hub, repo_id, f"refs/pr/{result.pr_num}") == original + b"\r\n\r\n" + section + b"\r\n"


def test_commit_without_write_access_is_refused_and_nothing_written(hub):
    repo_id = new_repo(hub)
    with pytest.raises(PublishError, match="write access") as err:
        card(repo_id, OTHER_TOKEN, mode="commit")
    assert err.value.exit_code == 9
    assert publish_writes(hub, repo_id) == []
    assert readme(hub, repo_id) == CARD


def test_front_matter_the_hub_rejects_is_reported_not_fixed(hub):
    broken = b"---\nlicense: [mit\n---\n# Model\n"
    repo_id = new_repo(hub, readme=broken)
    with pytest.raises(PublishError, match="front matter"):
        card(repo_id)
    assert publish_writes(hub, repo_id) == []


def test_disabled_pull_requests(hub):
    repo_id = new_repo(hub, discussions_disabled=True)
    with pytest.raises(DiscussionsDisabledError) as err:
        card(repo_id)
    assert err.value.exit_code == 11
    assert "--commit" in str(err.value)


def test_lost_answer_does_not_open_a_second_pr(hub):
    repo_id = new_repo(hub)
    lose_next_answers(hub, 1)  # the PR is created, but hubfit sees 502
    _, _, result = card(repo_id)
    assert result.action == "open_pr"
    assert [w["kind"] for w in publish_writes(hub, repo_id)] == ["pull_request"]
    assert len([d for d in discussions(hub.repos[repo_id]) if d["isPullRequest"]]) == 1


def test_server_errors_are_retried_within_bounds(hub):
    repo_id = new_repo(hub)
    hub.fail_next(rf"/api/models/{repo_id}/commit/", n=2, status=503)
    _, _, result = card(repo_id)
    assert result.action == "open_pr"
    assert len(publish_writes(hub, repo_id)) == 1


def test_rate_limit_is_waited_out(hub):
    repo_id = new_repo(hub)
    hub.retry_after = 7
    hub.fail_next(rf"/api/models/{repo_id}/commit/", n=1, status=429)
    sleeps: list[float] = []
    pub = publisher(BOT_TOKEN, sleeps)
    result = apply_card(pub, plan_card(pub, analyse(repo_id)))
    assert result.action == "open_pr"
    assert 7.0 in sleeps


# ---- the command line -------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from hubfit.cli.commands import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dry_run_prints_the_diff_and_writes_nothing(hub, capsys):
    repo_id = new_repo(hub)
    code, out, err = run_cli(capsys, "card", repo_id, "--token", BOT_TOKEN, "--dry-run")
    assert code == 0
    assert "opening a pull request against main" in err
    assert out.startswith("--- a/README.md\n+++ b/README.md\n")
    assert "+<!-- hubfit:start -->\n" in out and "+## Hardware requirements\n" in out
    assert not [line for line in out.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert publish_writes(hub, repo_id) == []


def test_cli_opens_the_pr_prints_its_url_and_never_the_token(hub, capsys):
    repo_id = new_repo(hub)
    code, out, err = run_cli(capsys, "card", repo_id, "--token", BOT_TOKEN, "--verbose", "--context", "2048")
    assert code == 0, err
    (write,) = publish_writes(hub, repo_id)
    assert out.strip() == f"{hub.url}/{repo_id}/discussions/{write['num']}"
    section = current_section(write["files"]["README.md"])
    assert "### Memory at 2,048 tokens, batch 1" in section and "### GPUs" in section
    code, out2, err2 = run_cli(capsys, "card", repo_id, "--token", BOT_TOKEN, "--context", "2048")
    assert code == 0 and "nothing to write" in err2
    assert len(publish_writes(hub, repo_id)) == 1
    for text in (out, err, out2, err2):
        assert BOT_TOKEN not in text


def test_cli_concurrent_edit_exits_10_and_changes_nothing(hub, capsys):
    from fixtures.hub_writes import before_next_commit

    repo_id = new_repo(hub)
    theirs = CARD + b"\nEdited by the owner while hubfit ran.\n"
    before_next_commit(hub, lambda h: h.commit(repo_id, {"README.md": theirs}, message="Owner edit"))
    code, out, err = run_cli(capsys, "card", repo_id, "--token", OWNER_TOKEN, "--commit")
    assert code == 10
    said, error = err.splitlines()  # what it was about to write, then the one-line error
    assert said.startswith(f"{repo_id}: committing to main")
    assert error.startswith("hubfit: error: ") and "nothing was written" in error
    assert OWNER_TOKEN not in err + out
    assert readme(hub, repo_id) == theirs
    assert publish_writes(hub, repo_id) == []
