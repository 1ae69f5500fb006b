"""What a model's ``config.json`` says: sizes, attention layout, MoE and quantization settings.

``ModelConfig`` wraps the raw dict and answers questions with the field names transformers uses across
architectures (``n_layer``/``num_layers``/``num_hidden_layers`` ...). Multimodal wrappers keep the language
model's settings in ``text_config`` (or ``llm_config``); :attr:`ModelConfig.text` is that inner config, and
the attribute lookups below fall back to it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelConfig"]

# Alternative names of the same fact across transformers configs, most common first.
_ALIASES: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim", "model_dim"),
    "intermediate_size": ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size"),
    "num_attention_heads": (
        "num_attention_heads",
        "n_head",
        "num_heads",
        "n_heads",
        "decoder_attention_heads",
    ),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
    "max_position_embeddings": (
        "max_position_embeddings",
        "n_positions",
        "max_sequence_length",
        "seq_length",
        "max_seq_len",
        "n_ctx",
        "max_target_positions",
    ),
    "num_experts": ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"),
    "num_experts_per_tok": ("num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k", "moe_k"),
    "num_shared_experts": ("n_shared_experts", "num_shared_experts", "shared_expert_count"),
}


class ModelConfig:
    """A read-only view of one ``config.json``.

    Args:
        raw: the parsed JSON object.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        inner = raw.get("text_config") or raw.get("llm_config") or raw.get("language_config")
        self.text: ModelConfig = ModelConfig(inner) if isinstance(inner, dict) and inner is not raw else self

    def __repr__(self) -> str:
        return f"ModelConfig(model_type={self.model_type!r})"

    def get(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` present in this config, else in the text config, else ``default``."""
        for source in (self.raw, self.text.raw):
            for name in names:
                value = source.get(name)
                if value is not None:
                    return value
        return default

    def _int(self, fact: str) -> int | None:
        value = self.get(*_ALIASES[fact])
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    # ---- identity -------------------------------------------------------------------------------------
    @property
    def model_type(self) -> str | None:
        return self.raw.get("model_type") or self.text.raw.get("model_type")

    @property
    def architectures(self) -> list[str]:
        return list(self.raw.get("architectures") or self.text.raw.get("architectures") or [])

    @property
    def torch_dtype(self) -> str | None:
        value = self.get("torch_dtype", "dtype")
        return str(value) if value else None

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.raw.get("is_encoder_decoder"))

    # ---- sizes ----------------------------------------------------------------------------------------
    @property
    def num_hidden_layers(self) -> int | None:
        return self._int("num_hidden_layers")

    @property
    def hidden_size(self) -> int | None:
        return self._int("hidden_size")

    @property
    def intermediate_size(self) -> int | None:
        return self._int("intermediate_size")

    @property
    def num_attention_heads(self) -> int | None:
        return self._int("num_attention_heads")

    @property
    def num_key_value_heads(self) -> int | None:
        """KV heads; equal to the attention heads when the config does not say (multi-head attention)."""
        kv = self._int("num_key_value_heads")
        if kv is None and self.get("multi_query") is True:
            return 1
        return kv if kv is not None else self.num_attention_heads

    @property
    def head_dim(self) -> int | None:
        value = self.get("head_dim")
        if isinstance(value, int) and value > 0:
            return value
        hidden, heads = self.hidden_size, self.num_attention_heads
        return hidden // heads if hidden and heads else None

    @property
    def vocab_size(self) -> int | None:
        value = self.get("vocab_size", "padded_vocab_size")
        return int(value) if isinstance(value, int) else None

    @property
    def max_position_embeddings(self) -> int | None:
        return self._int("max_position_embeddings")

    @property
    def tie_word_embeddings(self) -> bool | None:
        """The config's tie flag, or ``None`` when the config does not state one."""
        for source in (self.raw, self.text.raw):
            if "tie_word_embeddings" in source:
                return bool(source["tie_word_embeddings"])
        return None

    # ---- mixture of experts ---------------------------------------------------------------------------
    @property
    def num_experts(self) -> int | None:
        """Routed experts per MoE layer (``None`` for a dense model)."""
        value = self._int("num_experts")
        return value if value and value > 1 else None

    @property
    def num_experts_per_tok(self) -> int | None:
        return self._int("num_experts_per_tok")

    @property
    def num_shared_experts(self) -> int:
        return self._int("num_shared_experts") or 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts is not None

    # ---- quantization ---------------------------------------------------------------------------------
    @property
    def quantization_config(self) -> dict[str, Any] | None:
        value = self.raw.get("quantization_config") or self.text.raw.get("quantization_config")
        return value if isinstance(value, dict) else None
