"""What a model's ``config.json`` says: sizes, attention layout, MoE and quantization settings.

``ModelConfig`` wraps the raw dict and answers questions with the field names transformers uses across
architectures (``n_layer``/``num_layers``/``num_hidden_layers`` ...). Multimodal wrappers keep the language
model's settings in ``text_config`` (or ``llm_config``); :attr:`ModelConfig.text` is that inner config, and
the attribute lookups below fall back to it.

:meth:`ModelConfig.validate` checks the config once, in the model stage, before anything is sized
(:func:`hubfit.model.component.component_from_headers` calls it for every source): every field the sizing
reads has a type and a range (whole numbers from a minimum to the plausible bound of ``data/limits.yaml``),
and the relations between fields hold (heads divide the width unless ``head_dim`` is given, KV heads divide
the heads, experts per token do not exceed the experts, per-layer lists have one entry per layer). A broken
rule raises :class:`~hubfit.errors.ConfigError` naming the file, the field, the value and the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import ConfigError

__all__ = ["ModelConfig", "validate_quantization"]

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


#: Keys that give a head's width explicitly: with one of them, hidden_size need not divide by the heads.
_HEAD_WIDTH_KEYS = (
    "head_dim",
    "d_kv",
    "attention_head_dim",
    "kv_channels",
    "d_head",
    "attention_head_size",
    "head_size",
    "qk_nope_head_dim",
    "kv_lora_rank",
)
#: Per-layer settings that must have one entry per layer (``hybrid_override_pattern``: one character).
_PER_LAYER = ("layer_types", "no_rope_layers", "hybrid_override_pattern")
#: Wrappers whose inner dict is the language model's config (see :attr:`ModelConfig.text`).
_TEXT_KEYS = ("text_config", "llm_config", "language_config")


@dataclass(frozen=True)
class _Bound:
    """One plausible upper bound of ``data/limits.yaml``: the largest real value times the file's factor."""

    name: str
    largest: int
    model: str
    factor: int
    moe_only: bool

    @property
    def limit(self) -> int:
        return self.largest * self.factor


@cache
def _field_rules() -> dict[str, tuple[int, _Bound]]:
    """``config.json`` key -> (minimum, bound), from ``data/limits.yaml``."""
    document = _data.load("limits")
    factor = int(document["factor"])
    rules: dict[str, tuple[int, _Bound]] = {}
    for name, entry in document["bounds"].items():
        bound = _Bound(name, int(entry["largest"]), str(entry["model"]), factor, bool(entry.get("moe_only")))
        for key, minimum in entry["fields"].items():
            rules[key] = (int(minimum), bound)
    return rules


def _whole(value: object) -> int | None:
    """``value`` as an int when it is a whole number (``32`` or ``32.0``; never a bool, NaN or infinity)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _shown(value: object) -> str:
    """A short, one-line rendering of a value from a config, for an error message."""
    if type(value) is int and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


#: The facts whose relation the validation checks: heads, KV heads, width.
_FACTS_HKH = ("num_attention_heads", "num_key_value_heads", "hidden_size")


def _check_number(value: object, minimum: int, bound: _Bound, field: str) -> None:
    """A whole number (or a list of them) from ``minimum`` to the bound's limit."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        number = _whole(item)
        if number is None or not minimum <= number <= bound.limit:
            shown = _shown(value)
            raise ConfigError(
                f"{field} is {shown}; it must be a whole number from {minimum} to {bound.limit:,} "
                f"({bound.largest:,} in {bound.model}, times {bound.factor})"
                + (", or a list of them" if isinstance(value, list) else "")
            )


#: Fields that must have one JSON type when present (a bool read with ``bool()`` takes any value as true).
_TYPES: dict[str, tuple[type, ...]] = {
    "model_type": (str,),
    "torch_dtype": (str,),
    "dtype": (str,),
    "architectures": (list,),
    "tie_word_embeddings": (bool,),
    "is_encoder_decoder": (bool,),
    "layer_types": (list,),
    "no_rope_layers": (list,),
    "hybrid_override_pattern": (str,),
    "quantization_config": (dict,),
    "quantization": (dict,),
}
_TYPE_NAMES = {str: "a string", list: "a list", bool: "true or false", dict: "an object"}


def _check_types(source: dict[str, Any], where: str) -> None:
    for key, types in _TYPES.items():
        value = source.get(key)
        if value is None:
            continue
        if not isinstance(value, types):
            raise ConfigError(f"{where}{key} is {_shown(value)}; it must be {_TYPE_NAMES[types[0]]}")
        if isinstance(value, list) and key != "no_rope_layers" and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}{key} is {_shown(value)}; it must be a list of strings")
        if isinstance(value, dict):
            validate_quantization(value, f"{where}{key}")


def validate_quantization(settings: dict[str, Any], where: str) -> None:
    """Check the numbers a quantization format reads from its settings (``quantization_config``,
    ``quantize_config.json``, MLX's ``quantization``): bits from 1 to 32, a whole group size (-1: none), and
    compressed-tensors' ``config_groups`` as objects.

    Raises:
        ConfigError: naming ``where`` and the field.
    """
    _check_bits(settings.get("bits"), f"{where}.bits")
    _check_group(settings.get("group_size"), f"{where}.group_size")
    groups = settings.get("config_groups")
    if groups is None:
        return
    if not isinstance(groups, dict):
        raise ConfigError(f"{where}.config_groups is {_shown(groups)}; it must be an object of groups")
    for name, group in groups.items():
        weights = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(group, dict) or (weights is not None and not isinstance(weights, dict)):
            raise ConfigError(
                f"{where}.config_groups.{str(name)[:40]} is {_shown(group)}; it must be an object whose "
                "weights are an object"
            )
        if weights is not None:
            _check_bits(weights.get("num_bits"), f"{where}.config_groups.{str(name)[:40]}.weights.num_bits")
            _check_group(
                weights.get("group_size"), f"{where}.config_groups.{str(name)[:40]}.weights.group_size"
            )


def _check_bits(value: object, field: str) -> None:
    if value is None:
        return
    # An int is compared as it is (math.isfinite(10**400) raises OverflowError); a float must be finite.
    number = value if type(value) is int or (type(value) is float and math.isfinite(value)) else None
    if number is None or not 1 <= number <= 32:
        raise ConfigError(f"{field} is {_shown(value)}; it must be a number of bits from 1 to 32")


def _check_group(value: object, field: str) -> None:
    if value is None:
        return
    number = _whole(value)
    if number is None or number < -1 or number == 0:
        raise ConfigError(f"{field} is {_shown(value)}; it must be a whole number of values, or -1 for none")


class ModelConfig:
    """A read-only view of one ``config.json``.

    Args:
        raw: the parsed JSON object.
    """

    def __init__(self, raw: dict[str, Any], *, _unwrap: bool = True) -> None:
        self.raw = raw
        self._validated = False
        self._text_key = next((k for k in _TEXT_KEYS if raw.get(k)), None) if _unwrap else None
        inner = raw[self._text_key] if self._text_key else None
        # One level only: the language model's config of a wrapper (a config nesting wrappers a thousand deep
        # must not recurse a thousand times).
        self.text: ModelConfig = (
            ModelConfig(inner, _unwrap=False) if isinstance(inner, dict) and inner is not raw else self
        )

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
        return _whole(self.get(*_ALIASES[fact]))

    def _sources(self) -> list[tuple[str, dict[str, Any]]]:
        """``(label, dict)`` for the top level and, in a wrapper, the language model's config."""
        if self.text is self:
            return [("", self.raw)]
        return [("", self.raw), (f"{self._text_key}.", self.text.raw)]

    def _locate(self, *names: str) -> tuple[str, Any] | None:
        """``(label + key, value)`` of the first of ``names`` present, in the order :meth:`get` reads them."""
        for label, source in self._sources():
            for name in names:
                value = source.get(name)
                if value is not None:
                    return label + name, value
        return None

    def source_of(self, fact: str) -> str:
        """Where a fact (``"num_hidden_layers"`` ...) is read from: its key, ``text_config.``-prefixed in a
        wrapper's language model (the fact's name when the config does not state it)."""
        found = self._locate(*_ALIASES[fact])
        return found[0] if found else fact

    # ---- validation -----------------------------------------------------------------------------------
    def validate(self, path: str = "config.json") -> None:
        """Check every field the sizing reads, once (see the module docstring).

        Args:
            path: the file's path in the repository, for messages (``unet/config.json`` ...).

        Raises:
            ConfigError: a field has the wrong type, lies outside its range, or breaks a relation with
                another field; the message names the field, the value and the rule.
        """
        if self._validated:
            return
        for label, source in self._sources():
            _check_types(source, f"{path}: {label}")
        self._check_numbers(path, moe=False)
        self._check_numbers(path, moe=True)
        self._check_relations(path)
        self._validated = True

    def _check_numbers(self, path: str, *, moe: bool) -> None:
        """Ranges of ``data/limits.yaml``; the ``moe_only`` keys (``moe``) only in a mixture of experts."""
        if moe and not self.is_moe:
            return
        for key, (minimum, bound) in _field_rules().items():
            if bound.moe_only != moe:
                continue
            for label, source in self._sources():
                value = source.get(key)
                if value is not None:
                    _check_number(value, minimum, bound, f"{path}: {label}{key}")

    def _check_relations(self, path: str) -> None:
        where = f"{path}:"
        heads, kv, hidden = (self._locate(*_ALIASES[f]) for f in _FACTS_HKH)
        n_heads = _whole(heads[1]) if heads else None
        if n_heads and hidden and _whole(hidden[1]) and self.get(*_HEAD_WIDTH_KEYS) is None:
            width = _whole(hidden[1]) or 0
            if width % n_heads:
                raise ConfigError(
                    f"{where} {hidden[0]} {width} does not divide by {heads[0] if heads else ''} {n_heads}: "
                    "a head is hidden_size / num_attention_heads wide unless head_dim is given"
                )
        n_kv = _whole(kv[1]) if kv else None
        if n_heads and n_kv and kv and heads and (n_kv > n_heads or n_heads % n_kv):
            raise ConfigError(
                f"{where} {kv[0]} {n_kv} does not divide {heads[0]} {n_heads}: each KV head serves a "
                "whole group of attention heads"
            )
        if self.is_moe:
            per_token = self._locate(*_ALIASES["num_experts_per_tok"])
            experts = self._locate(*_ALIASES["num_experts"])
            k = _whole(per_token[1]) if per_token else None
            if per_token and experts and k and k > (self.num_experts or 0):
                raise ConfigError(
                    f"{where} {per_token[0]} {k} is more than the {self.num_experts} experts of {experts[0]}: "
                    "a token cannot use more experts than a layer has"
                )
        self._check_layers(where)

    def _check_layers(self, where: str) -> None:
        layers = self._locate(*_ALIASES["num_hidden_layers"])
        count = _whole(layers[1]) if layers else None
        if layers and count:
            for name in _PER_LAYER:
                found = self._locate(name)
                if found and isinstance(found[1], list | str) and found[1] and len(found[1]) != count:
                    unit = "characters" if isinstance(found[1], str) else "entries"
                    raise ConfigError(
                        f"{where} {found[0]} has {len(found[1])} {unit} but {layers[0]} is {count}: "
                        "one per layer"
                    )
            dense = self._locate("first_k_dense_replace")
            if dense and (_whole(dense[1]) or 0) > count:
                raise ConfigError(
                    f"{where} {dense[0]} {dense[1]} is more than the {count} layers of {layers[0]}"
                )
        period, offset = self._locate("attn_layer_period"), self._locate("attn_layer_offset")
        if period and offset and (_whole(offset[1]) or 0) >= (_whole(period[1]) or 1):
            raise ConfigError(
                f"{where} {offset[0]} {offset[1]} is not below {period[0]} {period[1]}: no layer would "
                "have attention"
            )

    def with_layers(self, count: int) -> ModelConfig:
        """This config with ``count`` decoder layers (the checkpoint's count, when it disagrees).

        Per-layer lists (``layer_types`` ...) that had one entry per layer are cut to ``count`` entries.
        """
        old = self.num_hidden_layers
        dicts = [dict(source) for _, source in self._sources()]
        for d, (_, source) in zip(dicts, self._sources(), strict=True):
            for name in _PER_LAYER:
                value = source.get(name)
                if isinstance(value, list | str) and old is not None and len(value) == old and count < old:
                    d[name] = value[:count]
        for d in dicts:
            key = next((k for k in _ALIASES["num_hidden_layers"] if d.get(k) is not None), None)
            if key is not None:
                d[key] = count
                break
        raw = dicts[0]
        if len(dicts) > 1 and self._text_key:
            raw[self._text_key] = dicts[1]
        changed = ModelConfig(raw)
        changed._validated = self._validated
        return changed

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
        value = _whole(self.get("head_dim"))
        if value is not None and value > 0:
            return value
        hidden, heads = self.hidden_size, self.num_attention_heads
        return hidden // heads if hidden and heads else None

    @property
    def vocab_size(self) -> int | None:
        return _whole(self.get("vocab_size", "padded_vocab_size"))

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
