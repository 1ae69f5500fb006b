"""Property-based fuzzing of every front door, a short budget (issue 19; the doors are in tests/fuzzing.py).

Each door gets a few dozen generated inputs per run (structured ones near the format and raw noise) with a
deadline of one second per input; an exception that is not a ``HubfitError`` fails the test with the shrunk
input. benchmarks/fuzz.py runs the same doors with a long budget (results in benchmarks/results/fuzz.md). The
failures hypothesis found while these were written are pinned below as ordinary regression tests.
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import pytest
from fuzzing import DOORS, SECTION, Door, feed
from hypothesis import HealthCheck, given, settings
from tinymodel import TINY, prefix_only, tiny_tensors, write_model

from hubfit._http import Backoff, RetryPolicy, Transient, retry_after
from hubfit.action.inputs import ActionInputs
from hubfit.cli import main
from hubfit.errors import HeaderError, PublishError, UsageError
from hubfit.formats.safetensors import parse_header, read_header
from hubfit.publish.cardtext import apply_section, current_section

#: Inputs per door in the suite (the whole file stays within a few seconds).
EXAMPLES = 40

SUITE = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)


@pytest.mark.parametrize("door", DOORS, ids=[d.name for d in DOORS])
def test_door_raises_only_hubfit_errors(door: Door) -> None:
    feed(door, door.sample)  # imports and caches first: the deadline is for hubfit's work on each input

    @SUITE
    @given(door.strategy)
    def run(value: object) -> None:
        feed(door, value)

    run()


# ---- what fuzzing found, pinned ----------------------------------------------------------------------------


def test_an_integer_too_long_for_python_in_a_safetensors_header():
    """json.loads raises ValueError (not JSONDecodeError) past 4,300 digits: was an internal error."""
    raw = b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'
    with pytest.raises(HeaderError, match="header holds an integer too long to be a shape or an offset"):
        parse_header(raw, filename="model.safetensors")
    blob = len(raw).to_bytes(8, "little") + raw
    with pytest.raises(HeaderError):
        read_header(lambda a, b: blob[a:b], filename="model.safetensors", file_size=len(blob))


def test_a_huge_shape_is_named_with_its_exact_size():
    """The size in the message was a float (``bits / 8``): a large enough shape raised OverflowError."""
    raw = b'{"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}}'
    expected = (
        "is F32 [4611686018427387904] (18,446,744,073,709,551,616 bytes) but its data_offsets span 4 bytes"
    )
    with pytest.raises(HeaderError, match=re.escape(expected)):
        parse_header(raw, filename="model.safetensors")


def test_a_shape_whose_element_count_overflows_64_bits_is_refused_at_once():
    """200,000 dimensions of 2^64 - 1 (a 4 MB header): the product took 289 s of big-integer arithmetic and
    then failed converting it to text; now refused as the Rust reader refuses it (checked_mul)."""
    raw = b'{"a": {"dtype": "F32", "shape": [' + b",".join([b"18446744073709551615"] * 200_000) + b"]"
    raw += b', "data_offsets": [0, 4]}}'
    start = time.perf_counter()
    with pytest.raises(HeaderError, match="shape of 200000 dimensions whose element count overflows 64 bits"):
        parse_header(raw, filename="model.safetensors")
    assert time.perf_counter() - start < 5


def test_an_integer_too_long_for_python_in_config_json(tmp_path, capsys):
    model = write_model(tmp_path / "m", b'{"model_type": "llama", "vocab_size": ' + b"9" * 5000 + b"}")
    assert main([str(model)]) == 7
    assert capsys.readouterr().err == "hubfit: error: config.json is not valid JSON\n"


def test_a_config_json_on_the_hub_with_an_integer_too_long(hub, capsys):
    from fixtures.hub_server import FileEntry

    repo = "fuzz-found/long-integer"
    hub.add_repo(
        repo,
        {
            "config.json": b'{"hidden_size": ' + b"1" * 4400 + b"}",
            "model.safetensors": FileEntry.safetensors(prefix_only(tiny_tensors())[8:]),
        },
    )
    assert main([repo]) == 7
    assert capsys.readouterr().err == f"hubfit: error: {repo}/config.json is not valid JSON\n"


@pytest.mark.parametrize(
    "value",
    ["Mon, 01 Jan 99999999999999999999 00:00:00 GMT", "Mon, 01 Jan 2024 00:00:00 +99999999999999999999"],
)
def test_a_retry_after_date_whose_year_overflows(value):
    """email.utils raises OverflowError for such a year: was an internal error from a server's header."""
    assert retry_after({"Retry-After": value}) is None
    slept: list[float] = []
    policy = RetryPolicy(attempts=2, base_s=1.0, jitter=0.0)
    transient = Transient.from_answer(429, {"Retry-After": value})
    assert transient.retry_after is None and policy.delay(1, transient.retry_after) == 1.0
    Backoff(policy, sleep=slept.append).sleep(policy.delay(1, transient.retry_after))
    assert slept == [1.0]


def test_a_card_ending_in_an_unclosed_fence_is_refused():
    """Appended after ``` that never closes, the section would be code and never found again: every run
    would append one more."""
    card = b"# Model\n\nUsage:\n\n```python\nimport model\n"
    with pytest.raises(
        PublishError, match=r"ends inside a fenced code block opened on line 5 and never closed"
    ):
        apply_section(card, SECTION, repo_id="org/model")
    closed = card + b"```\n"
    assert current_section(apply_section(closed, SECTION, repo_id="org/model")) == SECTION


def test_a_card_that_is_only_a_byte_order_mark():
    """The section written after a BOM was not found again (the BOM was read as part of the marker line)."""
    new = apply_section(b"\xef\xbb\xbf", SECTION, repo_id="org/model")
    assert new == b"\xef\xbb\xbf" + SECTION.encode() + b"\n"
    assert current_section(new) == SECTION
    assert apply_section(new, SECTION, repo_id="org/model") == new


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("model", "\x1b[2Jmodel"),
        ("revision", "main\n::set-output name=fits::true"),
        ("fail-if-exceeds", "1x RTX 4090 @ int4\r::add-mask::x"),
        ("report-dir", "out\u2028dir"),
    ],
)
def test_action_inputs_with_control_characters_are_refused(name, value):
    env = {f"INPUT_{name.upper().replace('-', '_')}": value}
    with pytest.raises(UsageError, match=f"^input {name} must be one line without control characters"):
        ActionInputs.from_env(env)


def test_a_quantization_setting_that_is_not_an_object(tmp_path, capsys):
    """MLX's ``quantization`` was tested with ``in`` before the model stage: ``1`` raised TypeError."""
    assert main([str(write_model(tmp_path / "m", {**TINY, "quantization": 1}))]) == 12
    assert capsys.readouterr().err == (
        "hubfit: error: config.json: quantization is 1; it must be an object\n"
    )


def test_a_config_with_nan_everywhere_is_one_error():
    nan = {k: math.nan for k in ("hidden_size", "num_attention_heads", "num_hidden_layers")}
    from fuzzing import feed_config

    feed_config({**TINY, **nan})  # raises only HubfitErrors (caught inside), never ValueError
