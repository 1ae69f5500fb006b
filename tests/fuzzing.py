"""Property-based fuzzing of hubfit's front doors (issue 19): the inputs, the calls, the invariants.

Each :class:`Door` is one way untrusted bytes or strings enter hubfit, a hypothesis strategy that generates
such inputs (structured ones near the valid format, and raw noise), and a function that feeds one input
through hubfit the way a user's run would and says whether hubfit refused it (a HubfitError). The invariant is the same for every door: the function returns, or
raises a :class:`hubfit.errors.HubfitError` (one line, a documented exit code); never another exception type,
never "internal error". Doors that accept an input also check what was accepted (a header read the same
whatever its key order and whitespace, a finite JSON report, a card edited in one place, a wait within its
cap, an input without control characters).

tests/test_fuzz.py runs every door with a short budget in the suite; benchmarks/fuzz.py runs them with a long
one, measures time and memory per input, and prints the summary committed in benchmarks/results/fuzz.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import strategies as st
from tinymodel import TINY, header, prefix_only, tiny_tensors

from hubfit.errors import HubfitError, PublishError, UsageError

__all__ = ["DOORS", "Door", "feed"]

# ---- values a JSON document can hold, biased towards the ones that break numbers ----------------------------

_NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 3, 7, 64, 256, 4096, 10**12, 2**63, 10**300, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 2.5, -64.0, 1e12, 1e308, 32.0, math.nan, math.inf, -math.inf]),
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "lots", "32", "NaN", "bf16", "full_attention", "<img src=x onerror=alert(1)>", "\n"]
    ),
)
_SCALARS = st.one_of(_NUMBERS, _TEXT, st.booleans(), st.none())
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    """JSON the way a hand-edited or hostile file may hold it (NaN and Infinity included, as Python writes)."""
    return json.dumps(value, allow_nan=True, default=str).encode()


# ---- safetensors headers -------------------------------------------------------------------------------------

_DTYPES = st.sampled_from(
    ["F32", "F16", "BF16", "I8", "U8", "I32", "I64", "F8_E4M3", "BOOL", "F64", "Q4", ""]
)
_DIMS = st.one_of(st.integers(0, 70), st.sampled_from([-1, 2**63, 2**64 + 1, 10**30]), _SCALARS)


@st.composite
def _entries(draw: st.DrawFn) -> dict[str, Any]:
    """A header dict near the format: entries with plausible or broken dtypes, shapes and offsets."""
    out: dict[str, Any] = {}
    cursor = 0
    for i in range(draw(st.integers(0, 6))):
        dtype = draw(_DTYPES)
        shape = draw(st.lists(_DIMS, max_size=4))
        size = 0
        if all(type(d) is int and 0 <= d < 100 for d in shape):
            size = math.prod(shape) * {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8, "F64": 8}.get(
                dtype, 1
            )
        begin = draw(st.one_of(st.just(cursor), st.integers(-5, 2**65)))
        end = draw(st.one_of(st.just(begin + size if type(begin) is int else 0), st.integers(-5, 2**65)))
        entry: Any = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
        if draw(st.booleans()):
            entry = draw(st.one_of(st.just(entry), JSON_VALUES, st.fixed_dictionaries({"dtype": _SCALARS})))
        out[draw(st.one_of(st.just(f"model.layers.{i}.weight"), st.text(max_size=20)))] = entry
        if isinstance(begin, int) and isinstance(end, int):
            cursor = max(cursor, end)
    if draw(st.booleans()):
        out["__metadata__"] = draw(
            st.one_of(st.dictionaries(st.text(max_size=8), st.text(max_size=8)), JSON_VALUES)
        )
    return out


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """``data`` with each (position, bytes removed, bytes inserted) applied."""
    out = bytearray(data)
    for pos, cut, insert in edits:
        at = pos % (len(out) + 1)
        out[at : at + cut] = insert
    return bytes(out)


_EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8), st.binary(max_size=8)), max_size=4)
_VALID_HEADER = prefix_only(tiny_tensors())[8:]

SAFETENSORS_HEADERS = st.one_of(
    _entries().map(_dumps),
    st.builds(_mutate, st.just(_VALID_HEADER), _EDITS),
    st.binary(max_size=200),
    JSON_VALUES.map(_dumps),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from(
        [  # integers longer than Python converts from text (4,300 digits)
            b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}',
            b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"4" * 4400 + b"]}}",
        ]
    ),
)


def feed_safetensors(case: tuple[bytes, int | None, int]) -> bool:
    """One header through every reader: parse_header, read_header (length prefix and ranged reads) and
    header_from_metadata (the Hub's safetensors-metadata answer, decoded and raw)."""
    from hubfit.formats.safetensors import decode_sharded, header_from_metadata, parse_header, read_header

    raw, file_size, prefix_delta = case
    accepted = None
    with contextlib.suppress(HubfitError):
        accepted = parse_header(raw, filename="f.safetensors", file_size=file_size)
    refused = accepted is None
    if accepted is not None:  # what was accepted is self-consistent, whatever the key order or whitespace
        assert sum(t.nbytes for t in accepted.tensors.values()) == accepted.data_bytes
        if file_size is not None:
            assert accepted.file_size == file_size
        entries = json.loads(raw)
        shuffled = json.dumps(dict(reversed(list(entries.items()))), indent=1).encode()
        again = parse_header(shuffled, filename="f.safetensors")
        assert again.tensors == accepted.tensors and again.metadata == accepted.metadata
    length = max(0, len(raw) + prefix_delta)
    blob = struct.pack("<Q", length % 2**64) + raw
    with contextlib.suppress(HubfitError):
        read_header(lambda a, b: blob[a:b], filename="f.safetensors", file_size=file_size, first_read=64)
    try:
        decoded = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        decoded = None
    if isinstance(decoded, dict):
        with contextlib.suppress(HubfitError):
            header_from_metadata(decoded, filename="f.safetensors", file_size=file_size)
    with contextlib.suppress(HubfitError):
        sharded = decode_sharded(b'{"headers": {"a.safetensors": ' + raw + b"}}")
        for name, entries in sharded.items():
            header_from_metadata(entries, filename=name, file_size=file_size)

    return refused


SAFETENSORS = st.tuples(
    SAFETENSORS_HEADERS, st.one_of(st.none(), st.integers(0, 10**7)), st.integers(-64, 64)
)


# ---- config.json through the model stage ---------------------------------------------------------------------

_CONFIG_KEYS = [
    "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "vocab_size", "max_position_embeddings", "num_local_experts", "num_experts_per_tok",
    "n_shared_experts", "moe_intermediate_size", "sliding_window", "attention_chunk_size", "layer_types",
    "no_rope_layers", "hybrid_override_pattern", "kv_lora_rank", "qk_rope_head_dim", "model_type",
    "architectures", "torch_dtype", "tie_word_embeddings", "is_encoder_decoder", "text_config",
    "quantization_config", "quantization", "use_sliding_window", "max_window_layers", "sliding_window_pattern",
    "attn_layer_period", "attn_layer_offset", "full_attention_interval", "first_k_dense_replace",
    "num_nextn_predict_layers", "state_size", "conv_kernel", "expand", "mamba_n_heads", "n_groups",
    "linear_num_key_heads", "linear_key_head_dim", "d_kv", "num_decoder_layers", "decoder_attention_heads",
    "max_source_positions", "multi_query", "mamba_ssm_dtype", "d_model", "num_heads",
]  # fmt: skip
_MODEL_TYPES = st.sampled_from(
    [
        "llama",
        "gemma2",
        "gemma3_text",
        "mamba",
        "mamba2",
        "jamba",
        "qwen3_next",
        "llama4_text",
        "t5",
        "bert",
        "x",
    ]
)
_SMALL = st.integers(-2, 300)
_QUANT = st.fixed_dictionaries(
    {
        "quant_method": st.sampled_from(
            ["gptq", "awq", "bitsandbytes", "fp8", "mxfp4", "compressed-tensors", "exl2", "?"]
        )
    },
    optional={
        "bits": _SCALARS,
        "group_size": _SCALARS,
        "config_groups": JSON_VALUES,
        "load_in_4bit": _SCALARS,
    },
)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """The tiny model's config with some fields replaced by hostile, odd or merely unusual values."""
    config: dict[str, Any] = dict(TINY)
    for key in draw(st.lists(st.sampled_from(_CONFIG_KEYS), max_size=6, unique=True)):
        if key == "model_type":
            config[key] = draw(st.one_of(_MODEL_TYPES, _SCALARS))
        elif key in ("quantization_config", "quantization"):
            config[key] = draw(st.one_of(_QUANT, JSON_VALUES))
        elif key == "text_config":
            config[key] = draw(st.one_of(st.builds(dict, st.just(TINY)), JSON_VALUES))
        elif key == "layer_types":
            kinds = st.sampled_from(
                ["full_attention", "sliding_attention", "linear_attention", "mamba", "chunked"]
            )
            config[key] = draw(st.one_of(st.lists(kinds, min_size=1, max_size=4), JSON_VALUES))
        else:
            config[key] = draw(st.one_of(_SMALL, _SCALARS, st.lists(_SMALL, max_size=4)))
    return config


@st.composite
def plausible_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A config no rule refuses, with the settings that choose the sizing's paths drawn at random (attention
    kinds per layer, windows, chunks, latent attention, recurrent state, experts, quantization): the sizing
    meets combinations no fixture has."""
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0]))
    hd = draw(st.sampled_from([8, 16, 32]))
    layers = draw(st.integers(1, 6))
    config: dict[str, Any] = {
        **TINY,
        "model_type": draw(_MODEL_TYPES),
        "hidden_size": heads * hd,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": layers,
        "intermediate_size": draw(st.integers(1, 256)),
        "vocab_size": draw(st.integers(1, 512)),
        "max_position_embeddings": draw(st.integers(1, 10**9)),
    }
    kinds = st.sampled_from(
        ["full_attention", "sliding_attention", "linear_attention", "mamba", "chunked_attention"]
    )
    optional = {
        "layer_types": st.lists(kinds, min_size=layers, max_size=layers),
        "sliding_window": st.integers(1, 10**6),
        "attention_chunk_size": st.integers(1, 10**6),
        "sliding_window_pattern": st.integers(1, 8),
        "use_sliding_window": st.booleans(),
        "kv_lora_rank": st.integers(1, 512),
        "qk_rope_head_dim": st.integers(1, 128),
        "num_local_experts": st.integers(0, 64),
        "num_experts_per_tok": st.integers(1, 1),
        "n_shared_experts": st.integers(0, 2),
        "moe_intermediate_size": st.integers(1, 256),
        "full_attention_interval": st.integers(1, 8),
        "state_size": st.integers(1, 256),
        "conv_kernel": st.integers(1, 8),
        "expand": st.integers(1, 4),
        "mamba_n_heads": st.integers(1, 16),
        "linear_num_key_heads": st.integers(1, 8),
        "linear_key_head_dim": st.integers(1, 64),
        "mamba_ssm_dtype": st.sampled_from(["float32", "bfloat16"]),
        "torch_dtype": st.sampled_from(["float16", "bfloat16", "float32"]),
        "quantization_config": st.fixed_dictionaries(
            {
                "quant_method": st.sampled_from(["fp8", "bitsandbytes", "mxfp4", "?"]),
                "bits": st.integers(1, 8),
            }
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=8, unique=True)):
        config[key] = draw(optional[key])
    return config


def _tensors_for(config: dict[str, Any]) -> dict[str, tuple[str, list[int]]]:
    """The checkpoint the config describes when its widths are small whole numbers; else the tiny one."""
    keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size")
    values = [config.get(k, TINY.get(k)) for k in keys]
    layers = config.get("num_hidden_layers", 2)
    if all(type(v) is int and 0 < v <= 512 for v in values) and type(layers) is int and 0 < layers <= 8:
        h, _, heads, kv, _ = values
        hd = config.get("head_dim") if type(config.get("head_dim")) is int else h // heads
        if 0 < hd <= 512 and heads * hd <= 4096 and kv * hd <= 4096:
            return tiny_tensors({**config, "head_dim": hd}, layers=layers)
    return tiny_tensors()


def feed_config(config: dict[str, Any]) -> bool:
    """config.json (written with NaN as Python writes it, read back as a source reads it) through the model
    stage's door and the whole sizing: memory per precision and the fit on two GPUs."""
    from hubfit.fit.planner import HardwareQuery
    from hubfit.model import quant
    from hubfit.model.component import Model, component_from_headers
    from hubfit.model.config import ModelConfig
    from hubfit.pipeline import build_report
    from hubfit.sizing import Workload

    raw = json.loads(_dumps(config))
    try:
        cfg = ModelConfig(raw)
        fmt = quant.detect(
            cfg.quantization_config,
            mlx_quantization=cfg.raw.get("quantization")
            if isinstance(cfg.raw.get("quantization"), dict)
            else None,
        )
        part = component_from_headers([header(_tensors_for(config))], cfg, quant=fmt)
        model = Model("fuzz/config", "local", None, "local", [part])
        report = build_report(
            model, workload=Workload(), hardware=HardwareQuery(gpus=("RTX 4090", "H100 SXM"))
        )
    except HubfitError:
        return True
    document = report.to_dict()
    json.dumps(document, allow_nan=False)  # a finite, valid JSON document
    for estimate in report.memory.estimates if report.memory else []:
        assert estimate.total_bytes >= 0
    return False


CONFIGS = st.one_of(configs(), plausible_configs())


def feed_config_bytes(data: bytes) -> bool:
    """Raw config.json bytes through a local directory's reader and the model stage."""
    import tempfile
    from pathlib import Path

    from hubfit.pipeline import analyze_model
    from hubfit.source.sources import LocalSource

    with tempfile.TemporaryDirectory(prefix="hubfit-fuzz-") as tmp:
        (Path(tmp) / "config.json").write_bytes(data)
        (Path(tmp) / "model.safetensors").write_bytes(prefix_only(tiny_tensors()) + b"\0" * _DATA_BYTES)
        try:
            analyze_model(LocalSource(tmp))
        except HubfitError:
            return True
    return False


_DATA_BYTES = header(tiny_tensors()).data_bytes
CONFIG_BYTES = st.one_of(
    CONFIGS.map(_dumps),
    st.builds(_mutate, st.just(_dumps(TINY)), _EDITS),
    st.sampled_from(
        [b"1" * 5000, b'{"vocab_size": ' + b"9" * 5000 + b"}", b"[" * 5000, b"\xff\xfe", b"null"]
    ),
    st.binary(max_size=100),
)


# ---- GGUF headers ----------------------------------------------------------------------------------------------


def _gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


@st.composite
def gguf_files(draw: st.DrawFn) -> tuple[bytes, int]:
    """A GGUF file's header near the format (magic, version, counts, typed metadata, tensor infos): a valid
    one (F32 tensors at aligned offsets, the data after them), maybe with broken fields or bytes."""
    kvs = [
        _gguf_string(b"general.architecture") + struct.pack("<I", 8) + _gguf_string(b"llama"),
        _gguf_string(b"llama.block_count") + struct.pack("<II", 4, draw(st.integers(0, 2**32 - 1))),
        _gguf_string(b"tokenizer.ggml.scores")
        + struct.pack("<IIQ", 9, 6, 3)
        + struct.pack("<3f", *draw(st.lists(st.floats(width=32), min_size=3, max_size=3))),
    ]
    if draw(st.booleans()):
        kvs.append(
            _gguf_string(b"general.alignment") + struct.pack("<II", 4, draw(st.sampled_from([32, 64, 0, 3])))
        )
    for i in range(draw(st.integers(0, 2))):  # a value of any type id with any bytes
        kvs.append(
            _gguf_string(f"x.{i}".encode())
            + struct.pack("<I", draw(st.integers(0, 13)))
            + draw(st.binary(max_size=24))
        )
    tensors, offset = [], 0
    for i in range(draw(st.integers(0, 4))):
        dims = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
        if draw(st.integers(0, 5)) == 0:
            dims = draw(st.lists(st.integers(0, 2**64 - 1), max_size=6))
        type_id = draw(st.sampled_from([0, 0, 0, 1, 2, 8, 30, 99]))
        info = _gguf_string(f"blk.{i}.w".encode()) + struct.pack("<I", len(dims))
        info += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", type_id, offset % 2**64)
        tensors.append(info)
        size = 4 * math.prod(dims)
        offset += -(-size // 32) * 32 if size < 2**40 else 32
    version = draw(st.sampled_from([3, 3, 3, 2, 1, 4, 0x03000000]))
    n_tensors, n_kv = len(tensors), len(kvs)
    if draw(st.integers(0, 5)) == 0:
        n_tensors, n_kv = draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1))
    data = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kvs) + b"".join(tensors)
    if draw(st.integers(0, 3)) == 0:
        data = _mutate(data, draw(_EDITS))
    size = -(-len(data) // 32) * 32 + offset
    return data, size + draw(st.sampled_from([0, 0, 0, -1, 7, -(10**6)]))


def feed_gguf(case: tuple[bytes, int]) -> bool:
    from hubfit.formats.gguf import read_header

    data, size = case
    try:
        read_header(lambda a, b: data[a:b], filename="m.gguf", file_size=max(size, 0), first_read=64)
    except HubfitError:
        return True
    return False


GGUF = st.one_of(gguf_files(), st.tuples(st.binary(max_size=200), st.integers(0, 10**6)))


# ---- model-card markers ----------------------------------------------------------------------------------------

_START, _END = "<!-- hubfit:start -->", "<!-- hubfit:end -->"
_CARD_LINES = st.sampled_from(
    [
        _START, _END, "   " + _START, "    " + _END, _START + "  ", "\t" + _END, "```", "```markdown", "~~~",
        "````", "   ```", "---", "# Title", "text", "", "<!-- hubfit:start", "`` ` ``", "> " + _START,
    ]
)  # fmt: skip
SECTION = f"{_START}\n## Hardware requirements\n\n| a | b |\n|---|---|\n| 1 | 2 |\n{_END}"


@st.composite
def cards(draw: st.DrawFn) -> bytes | None:
    if draw(st.integers(0, 20)) == 0:
        return None
    lines = draw(st.lists(st.one_of(_CARD_LINES, st.text(max_size=20)), max_size=14))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 4)) == 0:
        data += draw(st.binary(max_size=6))
    return data


def feed_card(card: bytes | None) -> bool:
    """The card is updated in exactly one place, or refused; every byte outside hubfit's section is kept."""
    from hubfit.publish.cardtext import apply_section, current_section, find_section

    try:
        span = find_section(card) if card is not None else None
        new = apply_section(card, SECTION, repo_id="org/model")
    except PublishError:
        return True
    assert current_section(new) == SECTION  # one section, ours
    assert apply_section(new, SECTION, repo_id="org/model") == new  # applying again changes nothing
    if card is None:
        return False
    text = card.decode("utf-8", "surrogateescape")
    after = new.decode("utf-8", "surrogateescape")
    if span is None:
        assert after.startswith(text)  # appended: the card is kept whole, byte for byte
    else:
        assert after.startswith(text[: span.start]) and after.endswith(text[span.end :])
    return False


CARDS = cards()


# ---- Retry-After -----------------------------------------------------------------------------------------------

_DATES = st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"))
_WAITS = st.one_of(
    st.text(max_size=30),
    _DATES,
    st.integers(-(10**20), 10**400).map(str),
    st.floats().map(repr),
    st.sampled_from(
        [
            "1e999",
            "nan",
            "-inf",
            "0x10",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 99999999999 00:00:00 +9999",
        ]
    ),
)
RETRY_HEADERS = st.dictionaries(
    st.sampled_from(
        ["Retry-After", "retry-after", "RateLimit", "x-ratelimit-remaining", "x-ratelimit-reset"]
    ),
    st.one_of(_WAITS, st.builds(lambda r, t: f'"api";r={r};t={t}', _WAITS, _WAITS)),
    max_size=4,
)


def feed_retry_after(headers: dict[str, str]) -> bool:
    """Any answer's wait is None or a finite number of seconds >= 0; the wait slept is capped."""
    from types import SimpleNamespace

    from hubfit._http import Backoff, RetriesExhausted, RetryPolicy, retry_after

    wait = retry_after(headers, now=1_700_000_000.0)
    assert wait is None or (math.isfinite(wait) and wait >= 0)
    slept: list[float] = []
    backoff = Backoff(RetryPolicy(attempts=2, retry_after_max_s=120.0), sleep=slept.append)

    class Answer(Exception):
        response = SimpleNamespace(status_code=429, headers=headers)

    def attempt() -> None:
        raise Answer

    with contextlib.suppress(RetriesExhausted):
        backoff.call(attempt)
    assert len(slept) <= 1 and all(0 < s <= 120.0 for s in slept)  # one wait between two attempts, capped
    return wait is None  # "refused": not read as a wait (the backoff applies)


# ---- the Action's inputs ------------------------------------------------------------------------------------------

_INPUT_NAMES = [
    "model", "hub-repo", "revision", "context", "batch", "gpus", "precisions", "comment", "update-card",
    "hf-token", "github-token", "fail-if-exceeds", "report-dir",
]  # fmt: skip
_HOSTILE = st.sampled_from(
    ["$(id)", "`id`", "a;rm -rf /", "x\n::set-output name=fits::true", "x\r\n::add-mask::x", "%0A::error::x",
     "' \" \\", "${{ secrets.X }}", "1x RTX 4090 @ int4", "4096", "-1", "true", "pr", "org/name", "../../etc"]
)  # fmt: skip


@st.composite
def action_envs(draw: st.DrawFn) -> dict[str, str]:
    env = {}
    for name in draw(st.lists(st.sampled_from(_INPUT_NAMES), max_size=6, unique=True)):
        value = draw(
            st.one_of(_HOSTILE, st.text(max_size=30), st.builds(str.__add__, _HOSTILE, st.text(max_size=8)))
        )
        if name.endswith(
            "token"
        ):  # a secret: its own value, maybe broken by a line break or a control character
            value = draw(st.sampled_from(["hf_", "ghs_"])) + draw(st.text("abcdefXYZ0123456789", min_size=12))
            value = draw(st.sampled_from(["", "\n", "\r\n::add-mask::", "\x1b[2J", "%0A"])).join(
                [value, value[:4]]
            )
        env[f"INPUT_{name.upper().replace('-', '_')}"] = value.replace("\0", "")
    return env


_CONTROL = {chr(c) for c in range(32)} | {"\x7f", "\x85", "\u2028", "\u2029"}


def feed_action_inputs(env: dict[str, str]) -> bool:
    """Inputs are refused with a UsageError that never quotes a token, or accepted without control characters."""
    from hubfit.action.inputs import ActionInputs

    tokens = [v.strip() for k, v in env.items() if k.endswith("_TOKEN")]
    try:
        inputs = ActionInputs.from_env(env)
    except UsageError as exc:
        assert "\n" not in str(exc) and not any(t[:12] in str(exc) for t in tokens)
        return True
    values = [
        inputs.model,
        inputs.hub_repo,
        inputs.revision,
        inputs.report_dir,
        *inputs.gpus,
        *inputs.precisions,
    ]
    if inputs.fail_if_exceeds is not None:
        values += [inputs.fail_if_exceeds.gpu, inputs.fail_if_exceeds.precision]
    for value in [v for v in values if v]:
        assert not _CONTROL & set(value), value
    return False


ACTION_ENVS = action_envs()


# ---- the doors -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    """One way untrusted input enters hubfit: its name, a strategy for the input and the call that feeds it."""

    name: str
    what: str
    strategy: st.SearchStrategy[Any]
    feed: Callable[[Any], bool]
    #: A plain input, fed once before timing starts (the first call imports the sizing and the GPU catalog).
    sample: Any = None


DOORS: tuple[Door, ...] = (
    Door("safetensors", "safetensors headers: parse_header, read_header, header_from_metadata, decode_sharded", SAFETENSORS, feed_safetensors, (_VALID_HEADER, None, 0)),
    Door("config", "config.json values through the model stage and the sizing (memory, fit)", CONFIGS, feed_config, TINY),
    Door("config-bytes", "config.json bytes through a local directory's reader and the model stage", CONFIG_BYTES, feed_config_bytes, _dumps(TINY)),
    Door("gguf", "GGUF headers: formats.gguf.read_header over ranged reads", GGUF, feed_gguf, (b"GGUF", 4)),
    Door("card-markers", "model cards with hubfit's markers: find_section, apply_section", CARDS, feed_card, b"# Card\n"),
    Door("retry-after", "Retry-After, RateLimit and x-ratelimit headers: retry_after and the wait slept", RETRY_HEADERS, feed_retry_after, {"Retry-After": "1"}),
    Door("action-inputs", "the Action's INPUT_* variables: ActionInputs.from_env", ACTION_ENVS, feed_action_inputs, {}),
)  # fmt: skip


def feed(door: Door, value: Any) -> bool:
    """Feed one input; True when hubfit refused it with a HubfitError. Any other exception propagates (that is a
    failure)."""
    return door.feed(value)
