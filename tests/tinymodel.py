"""A tiny Llama-style model for tests of the model stage: a real config.json shape and the tensor names
transformers' ``LlamaForCausalLM`` writes (fixtures/families.py ``llama_tensors``), with small widths.

``TINY`` is hidden 64, 4 heads of 16, 2 KV heads, 2 layers, MLP 128, vocabulary 256. Tests change one field of
the config (or one tensor) and check what hubfit answers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from stfile import file_bytes
from stfile import header as header_dict

from fixtures.hub_server import safetensors_header_bytes
from hubfit.formats.safetensors import SafetensorsHeader, parse_header

Tensors = dict[str, tuple[str, list[int]]]

TINY: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 256,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def tiny_tensors(config: dict[str, Any] | None = None, *, layers: int | None = None) -> Tensors:
    """The tensors of ``config`` (default :data:`TINY`) as transformers names and shapes them, BF16."""
    c = {**TINY, **(config or {})}
    h, inter, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or h // heads
    out: Tensors = {"model.embed_tokens.weight": ("BF16", [vocab, h])}
    for i in range(c["num_hidden_layers"] if layers is None else layers):
        p = f"model.layers.{i}."
        out.update(
            {
                p + "input_layernorm.weight": ("BF16", [h]),
                p + "post_attention_layernorm.weight": ("BF16", [h]),
                p + "self_attn.q_proj.weight": ("BF16", [heads * hd, h]),
                p + "self_attn.k_proj.weight": ("BF16", [kv * hd, h]),
                p + "self_attn.v_proj.weight": ("BF16", [kv * hd, h]),
                p + "self_attn.o_proj.weight": ("BF16", [h, heads * hd]),
                p + "mlp.gate_proj.weight": ("BF16", [inter, h]),
                p + "mlp.up_proj.weight": ("BF16", [inter, h]),
                p + "mlp.down_proj.weight": ("BF16", [h, inter]),
            }
        )
    out["model.norm.weight"] = ("BF16", [h])
    out["lm_head.weight"] = ("BF16", [vocab, h])
    return out


def header(tensors: Tensors, filename: str = "model.safetensors") -> SafetensorsHeader:
    """The validated header of a file holding ``tensors`` (the bytes the safetensors library writes)."""
    head, size = header_dict(tensors)
    raw = safetensors_header_bytes(head)
    return parse_header(raw, filename=filename, file_size=8 + len(raw) + size)


def write_model(directory: Path, config: dict[str, Any] | bytes, tensors: Tensors | None = None) -> Path:
    """A local model directory: ``config.json`` (a dict, or raw bytes) and one ``model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    (directory / "config.json").write_bytes(raw)
    (directory / "model.safetensors").write_bytes(file_bytes(tensors or tiny_tensors()))
    return directory


def st_bytes(tensors: Tensors) -> bytes:
    """A whole safetensors file (header and zeroed data) holding ``tensors``."""
    return file_bytes(tensors)


def prefix_only(tensors: Tensors) -> bytes:
    """The 8-byte length and header of a file holding ``tensors`` (what a ranged read returns)."""
    head, _ = header_dict(tensors)
    raw = safetensors_header_bytes(head)
    return struct.pack("<Q", len(raw)) + raw
