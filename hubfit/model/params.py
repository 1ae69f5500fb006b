"""The tensor inventory: every stored tensor with its role, layer and logical parameter count.

Logical parameters are what the model's framework counts as parameters:

- non-parameter buffers stored in files (``rotary_emb.inv_freq``, ``position_ids``, GPT-2's causal-mask
  ``attn.bias``, BatchNorm statistics) count 0;
- quantization metadata (scales, zero points, ``g_idx``, ``absmax`` ...) counts 0, as the format says;
- packed quantized weights count the values they hold (:mod:`hubfit.quant`);
- a tied output projection counts once: when the files store ``lm_head.weight`` *and* the config explicitly
  ties it to the input embedding with the same shape, the copy counts 0. The headers are trusted over the
  flag: an ``lm_head.weight`` stored in a config with no tie flag (falcon-180B) counts, and a missing one
  counts nothing whatever the flag says.

For a mixture of experts, :func:`active_parameters` counts each MoE layer's routed experts at
``experts_per_token / experts`` of their size (shared experts and everything else in full).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import msgspec

from hubfit.formats.safetensors import SafetensorsHeader, TensorInfo
from hubfit.model.config import ModelConfig
from hubfit.model.quant import UNPACKED, QuantFormat

__all__ = ["ROLES", "LogicalTensor", "active_parameters", "inventory"]

#: Every role a tensor can have.
ROLES = (
    "embedding",
    "lm_head",
    "norm",
    "router",
    "linear",
    "expert",
    "bias",
    "other",
    "buffer",
    "quant_meta",
)

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block|decoder\.layers|encoder\.layers)\.(\d+)\.")
_EXPERT = re.compile(r"\.experts\.(\d+)\.")
_BUFFER = re.compile(
    r"(?:rotary_emb\.inv_freq|\.inv_freq|position_ids|\.masked_bias|num_batches_tracked|"
    r"running_mean|running_var|_float_tensor)$"
)
_LM_HEAD = re.compile(r"(?:^|\.)(?:lm_head|embed_out|output|head)\.weight$")
# The module that directly holds the weight is the embedding (``embed_tokens``, ``word_embeddings``,
# ``position_embedding``, GPT-2's ``wte``/``wpe``, T5's ``shared``); ``time_embedding.linear_1`` is a linear.
_EMBEDDING = re.compile(r"(?:^|\.)(?:\w*embed\w*|wte|wpe|shared)\.weight$")
_NORM = re.compile(r"(?:norm|(?:^|\.)ln_?\w*\.|layernorm|\.ln\.)", re.IGNORECASE)
_ROUTER = re.compile(
    r"(?:\.gate\.weight$|\.gate\.bias$|\.router\.\w+$|\.gate\.e_score_correction_bias$|"
    r"e_score_correction_bias$|shared_expert_gate\.weight$|\.gate\.wg\.weight$)"
)


class LogicalTensor(msgspec.Struct, frozen=True, gc=False):
    """One stored tensor, classified.

    Attributes:
        name: the tensor's name in its file.
        component: ``""`` for the root model, else the subfolder (``"unet"``, ``"text_encoder"`` ...).
        file: the file that stores it.
        dtype: stored dtype.
        shape: stored shape.
        stored_elements: elements as stored.
        stored_bytes: bytes as stored.
        parameters: logical parameters (unpacked); 0 for buffers, quantization metadata and tied copies.
        role: one of :data:`ROLES`.
        layer: the layer index in the name, if any.
        expert: the routed expert index, when the tensor belongs to one routed expert.
        tied_to: the tensor this one duplicates (then ``parameters`` is 0).
    """

    name: str
    component: str
    file: str
    dtype: str
    shape: tuple[int, ...]
    stored_elements: int
    stored_bytes: int
    parameters: int
    role: str
    layer: int | None = None
    expert: int | None = None
    tied_to: str | None = None

    @property
    def routed_expert(self) -> bool:
        """Whether this tensor is part of the routed experts (per-index, or fused with an expert dimension)."""
        return self.role == "expert"


def _role(info: TensorInfo, packed: bool) -> str:
    name = info.name
    if _BUFFER.search(name) or (name.endswith(".attn.bias") and len(info.shape) == 4):
        return "buffer"
    if _ROUTER.search(name):
        return "router"
    if ".experts." in name and "shared_expert" not in name:
        return "expert"
    if _LM_HEAD.search(name) and len(info.shape) == 2 and not name.startswith(("vision", "visual")):
        return "lm_head"
    if _NORM.search(name):
        return "norm"
    if _EMBEDDING.search(name) and len(info.shape) == 2 and not packed:
        return "embedding"
    if name.endswith(".bias") or name.endswith("_bias"):
        return "bias"
    if packed or (len(info.shape) == 2 and (name.endswith("weight") or name.endswith("_packed"))):
        return "linear"
    return "other"


def _values(elements: int, per_element: Fraction) -> int:
    """Logical values in ``elements`` packed ``per_element`` to an element, in integers.

    Packing ratios are exact for real checkpoints; a layout that is not rounds half up.
    """
    num, den = per_element.numerator, per_element.denominator
    if den == 1:
        return elements * num
    return (2 * elements * num + den) // (2 * den)


#: Maps every digit to 0: names that differ only in layer or expert indices (of the same width) share a key.
_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")


@dataclass(frozen=True)
class _NameRule:
    """What a tensor name (digits normalised) says, for every tensor of that shape of name."""

    role: str
    layer_at: int | None  # index in name.split(".") of the layer number
    expert_at: int | None  # index of the routed expert number (role "expert" only)


def _part_index(name: str, match: re.Match[str] | None) -> int | None:
    return None if match is None else name.count(".", 0, match.start(1))


def _name_rule(info: TensorInfo, packed: bool) -> _NameRule:
    name = info.name
    role = _role(info, packed)
    expert = _part_index(name, _EXPERT.search(name)) if role == "expert" else None
    return _NameRule(role, _part_index(name, _LAYER.search(name)), expert)


def inventory(
    headers: Iterable[SafetensorsHeader],
    *,
    component: str = "",
    config: ModelConfig | None = None,
    quant: QuantFormat | None = None,
) -> list[LogicalTensor]:
    """Classify every tensor of one component (a model whose weights may span several shards)."""
    headers = list(headers)
    all_tensors: dict[str, TensorInfo] = {}
    file_of: dict[str, str] = {}
    for header in headers:
        for name, info in header.tensors.items():
            all_tensors[name] = info
            file_of[name] = header.filename

    # The role and the positions of the layer and expert numbers depend on the name with its digits
    # normalised, its rank and packing: classified once per such key (a few hundred for 92k tensors).
    rules: dict[tuple[str, int, bool, bool], _NameRule] = {}
    out: list[LogicalTensor] = []
    for name, info in all_tensors.items():
        rule = quant.rule(info, all_tensors) if quant else UNPACKED
        per_element = rule.values_per_element
        packed = per_element != 1
        key = (name.translate(_DIGITS_TO_ZERO), len(info.shape), packed, rule.metadata)
        named = rules.get(key)
        if named is None:
            named = rules[key] = (
                _NameRule("quant_meta", _part_index(name, _LAYER.search(name)), None)
                if rule.metadata
                else _name_rule(info, packed)
            )
        role = named.role
        params = 0 if role in ("buffer", "quant_meta") else _values(info.elements, per_element)
        parts = name.split(".") if named.layer_at is not None or named.expert_at is not None else ()
        out.append(
            LogicalTensor(
                name,
                component,
                file_of[name],
                info.dtype,
                info.shape,
                info.elements,
                info.nbytes,
                params,
                role,
                int(parts[named.layer_at]) if named.layer_at is not None else None,
                int(parts[named.expert_at]) if named.expert_at is not None else None,
            )
        )
    return _resolve_ties(out, config)


def _resolve_ties(tensors: list[LogicalTensor], config: ModelConfig | None) -> list[LogicalTensor]:
    """Count a stored ``lm_head`` once when the config explicitly ties it to the input embedding."""
    if config is None or config.tie_word_embeddings is not True:
        return tensors
    heads = [t for t in tensors if t.role == "lm_head"]
    embeddings = [t for t in tensors if t.role == "embedding" and t.layer is None]
    if len(heads) != 1:
        return tensors
    twin = next((e for e in embeddings if e.shape == heads[0].shape), None)
    if twin is None:
        return tensors
    head = heads[0]
    tied = msgspec.structs.replace(head, parameters=0, tied_to=twin.name)
    return [tied if t is head else t for t in tensors]


def active_parameters(tensors: list[LogicalTensor], config: ModelConfig | None) -> int:
    """Parameters used per token: routed experts at ``k / E`` of their size per layer, everything else in full."""
    total = sum(t.parameters for t in tensors)
    if config is None or not config.is_moe or not config.num_experts_per_tok:
        return total
    experts, k = config.num_experts, config.num_experts_per_tok
    if not experts:
        return total
    per_layer: dict[int | None, int] = {}
    for t in tensors:
        if t.role == "expert":
            per_layer[t.layer] = per_layer.get(t.layer, 0) + t.parameters
    inactive = 0
    for routed in per_layer.values():
        used = Fraction(routed * min(k, experts), experts)
        inactive += routed - int(used)
    return total - inactive
