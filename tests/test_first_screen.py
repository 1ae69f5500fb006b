"""Rows a user must not misread (issue 15's "rows that cannot be true"), asserting the text a user reads.

- a name that is neither a directory nor a Hub repository says both were tried;
- a fit sized for the weights alone says so instead of "at 0 tokens";
- a quantized row whose bits per weight over the model are far from the format's own says why.

The tiny example model (examples/, 4,111,696 parameters, nearly all in the 128,256 x 16 embedding and output
head) keeps int8 and int4 near 16 bits per weight: its linear layers are a sliver of the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hubfit
from fixtures.catalog import FIXTURES, TOKEN_GRANTED
from hubfit.errors import RepoNotFoundError
from hubfit.fit.planner import HardwareQuery
from hubfit.render.fit import fit_markdown, fit_text
from hubfit.render.report import to_markdown, to_text
from hubfit.sizing.memory import Workload

#: Fixture repos that are errors by design (no weights, hostile headers, private without the token).
ANALYSABLE = [
    repo
    for repo in FIXTURES
    if not repo.startswith(
        ("hubfit-fixtures/hostile-", "hubfit-fixtures/pytorch-only", "hubfit-fixtures/private")
    )
]
EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "tiny-random-Llama3ForCausalLM")


@pytest.mark.usefixtures("fake_hub")
def test_a_name_that_is_neither_a_directory_nor_a_repo_says_so() -> None:
    with pytest.raises(
        RepoNotFoundError, match=r"^no-such-dir is neither a local directory nor a repository"
    ):
        hubfit.analyze("no-such-dir")


@pytest.mark.usefixtures("fake_hub")
def test_an_owner_name_id_keeps_the_repository_message() -> None:
    with pytest.raises(RepoNotFoundError, match=r"^repository no-such-org/no-such-model not found"):
        hubfit.analyze("no-such-org/no-such-model")


@pytest.mark.usefixtures("fake_hub")
def test_weights_only_best_bpw_does_not_say_zero_tokens() -> None:
    report = hubfit.analyze(
        "meta-llama/Llama-2-70b-hf",
        token=TOKEN_GRANTED,
        workload=Workload(context=0, precisions=("int4",)),
        hardware=HardwareQuery(gpus=("RTX 4090",)),
    )
    assert report.fit is not None
    text = fit_text(report.fit)
    assert "at 0 tokens" not in text
    assert "best on 1x RTX 4090 for the weights only, no KV cache: EXL2 2.85 bpw" in text
    assert "| 1× RTX 4090 | weights only |" in fit_markdown(report.fit)


def test_far_effective_bits_per_weight_are_explained_once() -> None:
    report = hubfit.analyze(EXAMPLE, workload=Workload(), hardware=None)
    text = to_text(report)
    note = [line for line in text.splitlines() if "Bits per weight over the whole model" in line]
    assert len(note) == 1
    assert "int8 15.986 (not 8), int4 15.979 (not 4.15625)" in note[0]
    assert "Bits per weight over the whole model: int8 15.986" in to_markdown(report)


@pytest.mark.usefixtures("fake_hub")
def test_no_note_when_the_rows_are_near_their_formats() -> None:
    """Llama-2-70B's int4 row is 4.247 bits per weight: near 4.156, nothing to explain."""
    report = hubfit.analyze(
        "meta-llama/Llama-2-70b-hf", token=TOKEN_GRANTED, workload=Workload(precisions=("int4",))
    )
    assert "Bits per weight over the whole model" not in to_text(report)


def test_a_bpw_above_the_heads_six_bits_does_not_lower_the_head() -> None:
    """ExLlamaV2 keeps the output head at 6 bits by default; a 32 bpw row must not put it below the rest."""
    report = hubfit.analyze(EXAMPLE, workload=Workload(precisions=("bf16",), bpw=(4.0, 32.0)))
    text = to_text(report)
    assert "32bpw: lm_head, linear, expert weights at 32 bits;" in text
    assert (
        "lm_head at 6 bits"
        not in [line for line in text.splitlines() if line.strip().startswith("32bpw:")][0]
    )
    assert "4bpw: linear, expert weights at 4 bits; lm_head at 6 bits;" in text
    from hubfit.sizing import memory

    model = hubfit.load_model(EXAMPLE)
    head = next(t for t in model.tensors if t.role == "lm_head")
    # the head's bytes at 32 bits, not 6
    assert memory.precision(32.0).tensor_bytes(head) == head.parameters * 4
    assert memory.precision(4.0).tensor_bytes(head) == head.parameters * 6 // 8


# ---- the first screen (hubfit MODEL without --details) ---------------------------------------------------------


@pytest.mark.usefixtures("fake_hub")
@pytest.mark.parametrize("repo_id", ANALYSABLE)
def test_the_first_screen_fits_twenty_lines_at_100_columns(repo_id: str) -> None:
    from hubfit.render.summary import to_summary

    report = hubfit.analyze(repo_id, token=TOKEN_GRANTED, workload=Workload(), hardware=HardwareQuery())
    lines = to_summary(report, width=100).splitlines()
    assert len(lines) <= 20, "\n".join(lines)
    assert max(len(line) for line in lines) <= 100, "\n".join(lines)
    # one line per precision row, never one per catalog GPU
    assert sum(line.lstrip().startswith("best for") for line in lines) <= 2
    assert lines[0].startswith(repo_id)


@pytest.mark.usefixtures("fake_hub")
def test_first_screen_of_llama_2_70b() -> None:
    """The stored F16 row equals bf16: one row, labelled so; GiB stated once; the best mix for consumer cards."""
    from hubfit.render.summary import to_summary

    report = hubfit.analyze(
        "meta-llama/Llama-2-70b-hf", token=TOKEN_GRANTED, workload=Workload(), hardware=HardwareQuery()
    )
    text = to_summary(report, width=160)
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "stored" not in rows
    assert rows["bf16"].startswith("  bf16 (as stored)    128.5      1.25")
    # 131.1 GiB at bf16: one H200 (140.4 GiB usable), not one H100 (79.6)
    assert "1x H200 141GB" in rows["bf16"] and "1x H100" not in rows["bf16"]
    assert "8x RTX 4090" in rows["bf16"]
    assert "2x RTX 4090" in rows["int4"]
    assert "  best for 1x RTX 4090 (24.0 GiB): EXL2 2.55 bpw · GGUF Q2_K (2.625 bpw)" in text
    assert text.count("GiB (2^30 bytes)") == 1 and " GB " not in text.split("\n", 2)[2]


@pytest.mark.usefixtures("fake_hub")
def test_first_screen_lists_each_named_gpu() -> None:
    from hubfit.render.summary import to_summary

    report = hubfit.analyze(
        "deepseek-ai/DeepSeek-V3",
        token=TOKEN_GRANTED,
        workload=Workload(precisions=("int4",)),
        hardware=HardwareQuery(gpus=("RTX 4090", "H100")),
    )
    text = to_summary(report, named_gpus=True)
    assert "fits on (each GPU named)" in text
    int4 = next(line for line in text.splitlines() if line.startswith("  int4"))
    assert int4.endswith("16x RTX 4090 · 8x H100 SXM 80GB")
    assert "  best for 1x RTX 4090 (24.0 GiB): no EXL2 mix or GGUF type fits" in text


def test_summary_clips_the_gpu_list_to_the_width() -> None:
    from hubfit.render.summary import _clip

    text = "1x A · 2x BBBB · 4x CCCCCC"
    assert _clip(text, 100) == text
    assert _clip(text, 20) == "1x A · 2x BBBB ..."
    assert _clip(text, 3) == "1x A ..."
