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

__all__ = ["ROLES", "LogicalTensor", "active_of", "active_parameters", "inventory"]

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


#: Maps every digit to 0 (on the name's UTF-8 bytes: a 256-byte table, ten times faster than ``str.translate``'s
#: per-character lookups): names that differ only in layer or expert indices of the same width share a key.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


@dataclass(frozen=True)
class _NameRule:
    """What a tensor name (digits normalised) says, for every tensor of that shape of name.

    Names sharing a key have their digits at the same character positions, so the layer and expert numbers are
    read by slicing, not by parsing each name.
    """

    role: str
    layer_at: slice | None  # characters of the layer number
    expert_at: slice | None  # characters of the routed expert number (role "expert" only)


def _digits(match: re.Match[str] | None) -> slice | None:
    return None if match is None else slice(match.start(1), match.end(1))


def _name_rule(info: TensorInfo, packed: bool, metadata: bool) -> _NameRule:
    name = info.name
    layer = _digits(_LAYER.search(name))
    if metadata:
        return _NameRule("quant_meta", layer, None)
    role = _role(info, packed)
    return _NameRule(role, layer, _digits(_EXPERT.search(name)) if role == "expert" else None)


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
    for header in headers:
        all_tensors.update(header.tensors)

    # The role and the positions of the layer and expert numbers depend on the name with its digits
    # normalised, its rank and packing: classified once per such key (a few hundred for 92k tensors).
    rules: dict[tuple[bytes, int, int], _NameRule] = {}
    packing: dict[int, tuple[bool, int, int]] = {}  # id(TensorRule) -> packed, values per element as num/den
    out: list[LogicalTensor] = []
    append = out.append
    for header in headers:
        filename = header.filename
        for name, info in header.tensors.items():
            if all_tensors[name] is not info:  # a name stored twice: the later shard's entry counts
                continue
            rule = quant.rule(info, all_tensors) if quant else UNPACKED
            packed_as = packing.get(id(rule))
            if packed_as is None:
                per = rule.values_per_element
                packed_as = packing[id(rule)] = (per != 1, per.numerator, per.denominator)
            packed, num, den = packed_as
            key = (name.encode().translate(_DIGITS_TO_ZERO), len(info.shape), packed + 2 * rule.metadata)
            named = rules.get(key)
            if named is None:
                named = rules[key] = _name_rule(info, packed, rule.metadata)
            role = named.role
            if role in ("buffer", "quant_meta"):
                params = 0
            elif den == 1:
                params = info.elements * num
            else:  # packing ratios are exact for real checkpoints; a layout that is not rounds half up
                params = (2 * info.elements * num + den) // (2 * den)
            layer, expert = named.layer_at, named.expert_at
            append(
                LogicalTensor(
                    name,
                    component,
                    filename,
                    info.dtype,
                    info.shape,
                    info.elements,
                    info.nbytes,
                    params,
                    role,
                    None if layer is None else int(name[layer]),
                    None if expert is None else int(name[expert]),
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
    routed: dict[int | None, int] = {}
    for t in tensors:
        if t.role == "expert":
            routed[t.layer] = routed.get(t.layer, 0) + t.parameters
    return active_of(sum(t.parameters for t in tensors), routed, config)


def active_of(total: int, routed_by_layer: dict[int | None, int], config: ModelConfig | None) -> int:
    """:func:`active_parameters` from the sums it needs: ``total`` parameters and the routed experts' per layer."""
    if config is None or not config.is_moe or not config.num_experts_per_tok:
        return total
    experts, k = config.num_experts, config.num_experts_per_tok
    if not experts:
        return total
    inactive = 0
    for routed in routed_by_layer.values():
        used = Fraction(routed * min(k, experts), experts)
        inactive += routed - int(used)
    return total - inactive
