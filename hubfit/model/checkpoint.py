"""Config against checkpoint: do the tensors in the headers agree with ``config.json``?

The sizing reads the config (layers, heads, widths, vocabulary); the weights are counted from the tensors.
When the two disagree, one of them does not describe this checkpoint, and sizing from either side silently
would be wrong. :func:`check_checkpoint` compares them, on the language model's decoder stack only:

- the **stack** is found from the token embedding (``model.embed_tokens.weight`` -> the layers under
  ``model.layers.N.``; ``transformer.wte.weight`` -> ``transformer.h.N.`` ...). Vision and audio towers,
  connectors and multi-token-prediction modules live under other prefixes and are left alone; a checkpoint
  whose token embedding is not one tensor (an encoder-decoder, several language models) is not compared, nor
  is an encoder-decoder config;
- **layers**: the highest layer index the stack's tensors carry, plus one, against ``num_hidden_layers``
  (plus ``num_nextn_predict_layers``, the multi-token-prediction layers DeepSeek-V3 and GLM-4.5 store after
  the decoder). A disagreement is a warning, and the checkpoint's count is the one sized: the weights are
  counted from the tensors, and the KV cache is sized for the same layers;
- **widths**: the stack's unpacked q/k/v/o projections (``self_attn.*_proj``), dense MLP projections
  (``mlp.{gate,up,down}_proj``) and per-expert projections against ``hidden_size``,
  ``num_attention_heads x head_dim``, ``num_key_value_heads x head_dim`` (what the KV cache holds per token),
  ``intermediate_size`` and ``moe_intermediate_size``; the routed experts against the config's expert count;
  the token embedding's and output head's rows against ``vocab_size`` (more rows are padding; fewer cannot
  hold the vocabulary). A disagreement is a :class:`~hubfit.errors.ConfigMismatchError`: transformers would
  refuse to load the checkpoint with this config, and the KV cache and activations would be sized from widths
  the weights do not have. Packed quantized tensors (GPTQ/AWQ int32, bitsandbytes uint8, MLX, MXFP4 blocks)
  store shapes that are not the logical ones and are not compared; FP8 and int8 weights keep their shapes
  and are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hubfit.errors import ConfigMismatchError
from hubfit.model.config import ModelConfig
from hubfit.model.params import LogicalTensor

__all__ = ["check_checkpoint"]

_TOKEN_EMBEDDING = re.compile(
    r"(?:^|\.)(?:embed_tokens|wte|word_embeddings|tok_embeddings|token_embedding|embed_in|embeddings)\.weight$"
)
_LM_HEADS = ("lm_head.weight", "embed_out.weight", "output.weight")
# Modules that are not the language model: vision and audio towers, connectors between them.
_ELSEWHERE = re.compile(
    r"vision|visual|image|audio|speech|video|vpm|siglip|projector|resampler|perceiver|qformer", re.IGNORECASE
)
_STACKS = frozenset({"layers", "layer", "h", "blocks", "block"})
_UP = ("gate_proj.weight", "up_proj.weight", "w1.weight", "w3.weight")
_DOWN = ("down_proj.weight", "w2.weight")


def _packed(t: LogicalTensor) -> bool:
    """Whether the stored shape is not the logical one (a packed quantized tensor)."""
    return t.parameters not in (0, t.stored_elements)


def _parent(name: str) -> str:
    """The module path above a ``*.weight`` tensor's module, with its final dot (``""`` at the top)."""
    module = name.removesuffix(".weight")
    return module.rpartition(".")[0] + "." if "." in module else ""


def _stack_prefix(tensors: Sequence[LogicalTensor]) -> tuple[str, LogicalTensor] | None:
    """The prefix of the decoder stack (``"model."``) and the token embedding, when there is exactly one."""
    found = [
        t
        for t in tensors
        if t.role == "embedding"
        and t.layer is None
        and _TOKEN_EMBEDDING.search(t.name)
        and not _ELSEWHERE.search(t.name)
    ]
    prefixes = {_parent(t.name) for t in found}
    if len(prefixes) != 1:
        return None
    return prefixes.pop(), found[0]


class _Facts:
    """The config's widths the checkpoint is compared with (``None``: not stated, not compared)."""

    def __init__(self, config: ModelConfig) -> None:
        self.hidden = config.hidden_size
        heads, kv, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        latent = config.get("kv_lora_rank", "q_lora_rank", "v_head_dim") is not None
        attention = None if latent or not (heads and kv and head_dim) else (heads, kv, head_dim)
        self.attention = attention
        self.intermediate = config.intermediate_size
        moe = config.get("moe_intermediate_size", "expert_intermediate_size")
        self.expert_width = moe if type(moe) is int else self.intermediate
        self.experts = config.num_experts
        self.vocab = config.vocab_size

    def projection(self, rest: str) -> tuple[int | None, int | None, str] | None:
        """(rows, columns, what the config says) of a projection named ``rest`` within a layer."""
        h = self.hidden
        if self.attention is not None and rest.startswith("self_attn.") and h:
            heads, kv, hd = self.attention
            if rest in ("self_attn.k_proj.weight", "self_attn.v_proj.weight"):
                return (
                    kv * hd,
                    h,
                    f"num_key_value_heads x head_dim = {kv} x {hd} = {kv * hd} rows, hidden_size {h} columns",
                )
            if rest == "self_attn.o_proj.weight":
                return (
                    h,
                    heads * hd,
                    f"hidden_size {h} rows, num_attention_heads x head_dim = {heads} x {hd} = {heads * hd} columns",
                )
            if rest == "self_attn.q_proj.weight":
                return None, h, f"hidden_size {h} columns"
        inter = self.intermediate
        if h and inter and rest in ("mlp.gate_proj.weight", "mlp.up_proj.weight"):
            return inter, h, f"intermediate_size {inter} rows, hidden_size {h} columns"
        if h and inter and rest == "mlp.down_proj.weight":
            return h, inter, f"hidden_size {h} rows, intermediate_size {inter} columns"
        return None

    def expert(self, rest: str) -> tuple[int | None, int | None, str] | None:
        """(rows, columns, what the config says) of one routed expert's projection named ``rest``."""
        h, width = self.hidden, self.expert_width
        if not (h and width):
            return None
        if rest in _UP:
            return width, h, f"expert width {width} rows, hidden_size {h} columns"
        if rest in _DOWN:
            return h, width, f"hidden_size {h} rows, expert width {width} columns"
        return None


def _container(name: str, prefix: str, layer: int) -> str | None:
    """The stack's container name (``layers``) when ``name`` is ``<prefix><container>.<layer>.<...>``."""
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split(".", 2)
    return parts[0] if len(parts) == 3 and parts[0] in _STACKS and parts[1] == str(layer) else None


def _short_head(t: LogicalTensor, prefix: str, vocab: int) -> bool:
    """An unpacked output head of the stack's model with fewer rows than the vocabulary."""
    return (
        t.name.endswith(_LM_HEADS)
        and not _packed(t)
        and prefix.startswith(_parent(t.name))
        and t.shape[0] < vocab
    )


def _mismatch(t: LogicalTensor, expected: tuple[int | None, int | None, str] | None, path: str) -> None:
    if expected is None or len(t.shape) != 2 or _packed(t):
        return
    rows, cols, says = expected
    if (rows is not None and t.shape[0] != rows) or (cols is not None and t.shape[1] != cols):
        raise ConfigMismatchError(
            f"{t.name} is {list(t.shape)} but {path} says {says}: the checkpoint does not match its config "
            "(it cannot load as configured)"
        )


def check_checkpoint(
    tensors: Sequence[LogicalTensor], config: ModelConfig | None, *, path: str = "config.json"
) -> tuple[ModelConfig | None, list[str]]:
    """Compare a component's tensors with its (validated) config; see the module docstring.

    Returns:
        The config to size with (the checkpoint's layer count where it disagrees) and the warnings to show.

    Raises:
        ConfigMismatchError: a width, the experts or the vocabulary rows contradict the config.
    """
    if config is None or config.is_encoder_decoder:
        return config, []
    stack = _stack_prefix(tensors)
    if stack is None:
        return config, []
    prefix, embedding = stack
    facts = _Facts(config)
    if facts.vocab and embedding.shape[0] < facts.vocab:
        raise ConfigMismatchError(
            f"{embedding.name} has {embedding.shape[0]} rows but {path} says vocab_size {facts.vocab}: the "
            "checkpoint does not match its config (it cannot load as configured)"
        )
    top = -1
    last: LogicalTensor | None = None
    top_expert = -1
    container: str | None = None  # "layers", "h", "blocks" ...: found on the first tensor of the stack
    layer_prefix: dict[int, str] = {}  # layer -> "model.layers.7."
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for t in tensors:
        layer = t.layer
        if layer is None:
            if t.role == "lm_head" and facts.vocab and _short_head(t, prefix, facts.vocab):
                raise ConfigMismatchError(
                    f"{t.name} has {t.shape[0]} rows but {path} says vocab_size {facts.vocab}: the "
                    "checkpoint does not match its config (it cannot load as configured)"
                )
            continue
        name = t.name
        if container is None:
            container = _container(name, prefix, layer)
            if container is None:
                continue
        head = layer_prefix.get(layer)
        if head is None:
            head = layer_prefix[layer] = f"{prefix}{container}.{layer}."
        if not name.startswith(head):
            continue
        if layer > top:
            top, last = layer, t
        role = t.role
        # Names (below the layer) and shapes repeat across layers and experts: each pair is checked once.
        if role == "linear":
            key = (name[len(head) :], t.shape)
            if key not in seen:
                seen.add(key)
                _mismatch(t, facts.projection(key[0]), path)
        elif role == "expert" and facts.experts:
            expert = t.expert
            if expert is not None:
                if expert > top_expert:
                    top_expert = expert
                key = (name[name.rfind(".", 0, name.rfind(".")) + 1 :], t.shape)  # "gate_proj.weight"
                if key not in seen:
                    seen.add(key)
                    _mismatch(t, facts.expert(key[0]), path)
            elif len(t.shape) >= 3 and not _packed(t) and t.shape[0] != facts.experts:
                raise ConfigMismatchError(
                    f"{name} holds {t.shape[0]} experts but {path} says {facts.experts}: the checkpoint "
                    "does not match its config (it cannot load as configured)"
                )
    if top_expert >= 0 and facts.experts and top_expert + 1 != facts.experts:
        raise ConfigMismatchError(
            f"the checkpoint stores routed experts 0 to {top_expert} per layer but {path} says "
            f"{facts.experts} experts: the checkpoint does not match its config (it cannot load as configured)"
        )
    return _layers(config, top + 1, last, path)


def _layers(
    config: ModelConfig, held: int, last: LogicalTensor | None, path: str
) -> tuple[ModelConfig, list[str]]:
    """The config sized with the checkpoint's layer count, and the warning, when the two disagree."""
    stated = config.num_hidden_layers
    if not held or last is None or stated is None:
        return config, []
    extra = config.get("num_nextn_predict_layers")
    extra = extra if type(extra) is int else 0
    if stated <= held <= stated + extra:
        return config, []
    warning = (
        f"{path} says {config.source_of('num_hidden_layers')} {stated} but the checkpoint holds {held} decoder layers ({last.name} is the "
        f"last); hubfit sized {held} layers, as the checkpoint holds"
    )
    return config.with_layers(held), [warning]
