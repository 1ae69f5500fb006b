"""llama.cpp as a sizing policy: the buffers ``llama-server`` / ``llama-cli`` allocate on each device.

llama.cpp's load reads as three stages, each with the log line this module reproduces:

- **model buffers** (``load_tensors: CUDA0 model buffer size``): every tensor on the device of its layer. The
  input layer (``token_embd``, position embeddings) stays in host memory even at full offload; with ``-ngl k``
  the last ``k`` of the ``n_layer`` blocks go to the GPUs and the output layer follows only when ``k > n_layer``
  (``i_gpu_start = n_layer - k``); ``--tensor-split`` fractions pick each offloaded block's GPU by
  ``upper_bound`` of the cumulative split (src/llama-model.cpp ``load_tensors``). A GPU tensor takes its ggml
  bytes, plus the row padding CUDA gives quantized rows that are not a multiple of 512 (``MATRIX_ROW_PADDING``),
  rounded to the buffer's 128-byte alignment; host tensors take their span of the mapped file.
- **KV buffers** (``llama_kv_cache: CUDA0 KV buffer size``): the layers with attention only, each on its
  layer's device, ``n_ctx`` padded as the llama.cpp version pads it (:data:`VERSIONS`; current builds: 256
  cells) of ``ggml_row_size(type_k, n_embd_k_gqa) + ggml_row_size(type_v, n_embd_v_gqa)``; sliding-window
  layers as the iswa cache sizes them (``min(n_ctx, pad(n_swa x n_seq + n_ubatch))``); MLA models cache the
  latent (``kv_lora_rank + rope dims``, no V); recurrent layers none (their small state is not counted here).
- **compute buffers** (``CUDA0 compute buffer size``): the graph reserved for one ``n_ubatch`` of tokens
  against the whole cache, the allocator reusing memory between layers, so the peak of the largest step:
  attention (the KQ mask, the residual, the fused or separate Q/K/V, the roped Q and K, and without flash
  attention ``KQ = F32[n_kv, n_ubatch, n_head]``), the FFN, or the output logits ``F32[n_vocab, n_ubatch]``.
  The host keeps the input embedding and mask (``CUDA_Host compute buffer``). Calibrated on the shared logs
  (Pythia-2.8B on a V100, Phi-3-mini and gemma-2-2b on CPU): 162.00 / 168.00 / 509.00 MiB reproduced.

Figures are bytes; :class:`LlamaCppMemory` keeps them per device (``CPU``, ``GPU0``, ``GPU1``...).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hubfit import _data
from hubfit.errors import UsageError
from hubfit.formats.gguf import GGUFArch, GGUFHeader, GGUFTensor, ggml_type, row_bytes

__all__ = [
    "CACHE_TYPES",
    "VERSIONS",
    "LlamaCppMemory",
    "LlamaCppSettings",
    "max_gpu_layers",
    "memory",
    "projector_bytes",
]

MIB = 1 << 20
#: ``--cache-type-k/-v`` values llama.cpp accepts (common/arg.cpp ``kv_cache_types``).
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
_CUDA_ALIGN = 128  # ggml_backend_cuda_buffer_type_get_alignment
_MATRIX_ROW_PADDING = 512  # ggml-cuda: quantized rows padded to a multiple of 512 elements
#: ``--llamacpp-version`` eras: how llama.cpp pads ``n_ctx`` (the KV cache's cells) and the sliding-window
#: cache, release by release. Each boundary is the pull request that changed it (merge dates from the PRs):
#:
#: - ``"current"`` (the default): ggml-org/llama.cpp#17046 "kv-cache : pad the cache size to 256 for
#:   performance" (Nov 2025): ``llama_context``'s constructor pads ``n_ctx`` to 256, flash attention or not.
#:   Measured: llama.cpp@0c1e57098 (llama-cpp-python 0.3.36) logged ``-c 2500`` as 2560 with flash attention
#:   off (benchmarks/results/llamacpp_loop.md). The sliding-window cache is padded to 256 too
#:   (src/llama-kv-cache-iswa.cpp: "the SWA cache is always padded to 256 for performance", ref.
#:   ggml-org/llama.cpp#17037).
#: - ``"2025-10"``: ggml-org/llama.cpp#16812 "memory : remove KV cache size padding" (28 Oct 2025) until #17046:
#:   ``llama_model::create_memory`` no longer pads (or mutates) ``n_ctx``, so the cache has exactly the cells
#:   asked, and the sliding-window cache's ``n_swa x n_seq + n_ubatch`` is not padded either.
#: - ``"legacy"``: ggml-org/llama.cpp#7257 "llama : less KV padding when FA is off" (13 May 2024) until #16812:
#:   ``n_ctx`` and the sliding-window cells padded to ``llama_kv_cache::get_padding``: 32, or 256 with flash
#:   attention. The shared logs R01-R04 (``build: 3280 (0e0590ad)``, July 2024) are of this era; a log of
#:   ``-c 2500`` shows 2528 (../shared/research/gguf-llamacpp.md A.1). Builds before #7257 padded to 256
#:   always; they are not modelled.
VERSIONS = ("current", "2025-10", "legacy")
_LAYER = re.compile(r"^blk\.(\d+)\.")
_INPUT = ("token_embd.", "position_embd.", "token_types.", "token_embd_norm.")


@cache
def _policy() -> dict[str, Any]:
    doc: dict[str, Any] = _data.load("ggml")
    return doc


def footprint_bytes() -> int:
    """What a GPU holds beyond llama.cpp's buffers (CUDA context, cuBLAS workspace): ``data/ggml.yaml``."""
    return int(_policy()["llamacpp"]["gpu_footprint_mib"]) * MIB


@dataclass(frozen=True)
class LlamaCppSettings:
    """llama.cpp's flags, with its defaults (common/common.h ``common_params``).

    Attributes:
        n_ctx: ``--ctx-size`` (``None``: 4096, llama.cpp's default).
        n_gpu_layers: ``--n-gpu-layers`` (``None`` or more than the blocks: everything, the output too).
        gpus: how many GPUs share the offloaded layers.
        tensor_split: ``--tensor-split`` fractions per GPU (``None``: even).
        flash_attn: ``--flash-attn``.
        type_k, type_v: ``--cache-type-k/-v``.
        n_batch, n_ubatch: ``--batch-size``, ``--ubatch-size``.
        n_seq: ``--parallel`` (slots share ``n_ctx``; they widen the sliding-window cache).
        version: the llama.cpp era sized (:data:`VERSIONS`): ``"current"`` (since ggml-org/llama.cpp#17046,
            Nov 2025: ``n_ctx`` padded to 256), ``"2025-10"`` (#16812 to #17046: no padding) or ``"legacy"``
            (#7257, May 2024, to #16812: 32 cells, 256 with flash attention).
        legacy_ctx_padding: ``--legacy-ctx-padding``, the same as ``version="legacy"``.
    """

    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    gpus: int = 1
    tensor_split: tuple[float, ...] | None = None
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    n_batch: int = 2048
    n_ubatch: int = 512
    n_seq: int = 1
    legacy_ctx_padding: bool = False
    version: str = "current"

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise UsageError(f"llama.cpp version {self.version!r}: hubfit sizes {', '.join(VERSIONS)}")
        for flag, value in (("--cache-type-k", self.type_k), ("--cache-type-v", self.type_v)):
            if value not in CACHE_TYPES:
                raise UsageError(f"{flag} {value!r}: llama.cpp accepts {', '.join(CACHE_TYPES)}")
        if self.gpus < 0 or self.n_ubatch < 1 or self.n_batch < 1 or self.n_seq < 1:
            raise UsageError("--ubatch-size, --batch-size and --parallel must be at least 1")
        if self.n_ctx is not None and self.n_ctx < 1:
            raise UsageError(f"--ctx-size must be at least 1, got {self.n_ctx}")
        if self.tensor_split is not None and (
            len(self.tensor_split) != self.gpus
            or any(f < 0 for f in self.tensor_split)
            or not sum(self.tensor_split)
        ):
            raise UsageError(
                f"--tensor-split needs {self.gpus} non-negative fractions, got {self.tensor_split}"
            )


@dataclass(frozen=True)
class LlamaCppMemory:
    """llama.cpp's buffers per device (bytes), as its load log prints them."""

    n_ctx: int
    n_gpu_layers: int
    model: dict[str, int] = field(default_factory=dict)
    kv: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)

    def device_total(self, device: str) -> int:
        return self.model.get(device, 0) + self.kv.get(device, 0) + self.compute.get(device, 0)

    def gpu_need(self, device: str = "GPU0") -> int:
        """What a GPU must hold: its buffers and the runtime's own footprint."""
        return self.device_total(device) + footprint_bytes()

    @property
    def devices(self) -> list[str]:
        names = set(self.model) | set(self.kv) | set(self.compute)
        return sorted(names, key=lambda d: (d != "CPU", len(d), d))


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _int(value: int | tuple[int, ...] | None, layer: int, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, tuple):
        return int(value[layer]) if layer < len(value) else default
    return int(value)


@dataclass(frozen=True)
class _Layer:
    """What one block caches: ``kind`` full / swa / mla / none and its K and V widths (elements per cell)."""

    kind: str
    k: int
    v: int


def _layers(arch: GGUFArch) -> list[_Layer]:
    n = arch.block_count or 0
    embd = arch.embedding_length or 0
    out: list[_Layer] = []
    mla = arch.kv_lora_rank is not None and arch.kv_lora_rank > 0
    pattern_row = _policy()["swa_patterns"].get(arch.architecture)
    for il in range(n):
        heads = _int(arch.head_count, il)
        kv_heads = _int(arch.head_count_kv, il, heads)
        head_k = arch.key_length or (embd // heads if heads else 0)
        head_v = arch.value_length or head_k
        if arch.full_attention_interval and (il + 1) % arch.full_attention_interval:
            out.append(_Layer("none", 0, 0))
            continue
        if kv_heads == 0 or heads == 0:
            out.append(_Layer("none", 0, 0))
            continue
        if mla:
            rope = arch.rope_dimension_count or 64
            out.append(_Layer("mla", (arch.kv_lora_rank or 0) + rope, 0))
            continue
        swa = False
        if arch.sliding_window:
            pattern = arch.sliding_window_pattern
            if isinstance(pattern, tuple):
                swa = bool(pattern[il]) if il < len(pattern) else False
            elif isinstance(pattern, int) and pattern > 0:
                swa = il % pattern < pattern - 1
            elif pattern_row is not None:
                period = int(pattern_row["period"])
                swa = il % period < period - 1
        out.append(_Layer("swa" if swa else "full", kv_heads * head_k, kv_heads * head_v))
    return out


def _placement(n_layer: int, settings: LlamaCppSettings) -> tuple[list[str], str]:
    """Each block's device and the output layer's, as llama_model::load_tensors assigns them."""
    ngl = n_layer + 1 if settings.n_gpu_layers is None or settings.n_gpu_layers < 0 else settings.n_gpu_layers
    if settings.gpus == 0:
        ngl = 0
    start = max(n_layer - ngl, 0)
    act = min(ngl, n_layer + 1)
    fractions = settings.tensor_split or tuple(1.0 for _ in range(max(settings.gpus, 1)))
    total = sum(fractions)
    cumulative: list[float] = []
    running = 0.0
    for f in fractions:
        running += f
        cumulative.append(running / total)

    def gpu(il: int) -> str:
        index = bisect.bisect_right(cumulative, (il - start) / act)
        return f"GPU{min(index, len(cumulative) - 1)}"

    devices = ["CPU" if il < start else gpu(il) for il in range(n_layer)]
    output = gpu(n_layer) if ngl > n_layer else "CPU"
    return devices, output


def _gpu_bytes(t: GGUFTensor, nbytes: int) -> int:
    gtype = ggml_type(t.type_id)
    size = nbytes
    if gtype is not None and gtype.block > 1 and t.shape and t.shape[0] % _MATRIX_ROW_PADDING:
        size += (_MATRIX_ROW_PADDING - t.shape[0] % _MATRIX_ROW_PADDING) // gtype.block * gtype.bytes
    return _pad(size, _CUDA_ALIGN)


def projector_bytes(header: GGUFHeader, *, on_gpu: bool = True) -> int:
    """A vision projector's (``mmproj``) weight buffer as mtmd's CLIP loader allocates it.

    ``--mmproj`` loads every tensor of the projector into one buffer on the first GPU (``--no-mmproj-offload``:
    host memory), so each takes its ggml bytes with the GPU's row padding and alignment, as a model layer's
    tensors do. A real load log shows the buffer is the tensors and nothing more: ollama/ollama#2706 (llava
    v1.6's f16 projector, CUDA) prints ``model size: 595.49 MB`` and ``params backend buffer size = 595.49 MB
    (377 tensors)``. The encoder's compute buffer (``compute allocated memory: 32.89 MB`` in the same log, for
    one 336-pixel image) depends on the image size and is not counted.
    """
    share = _unknown_share(header)
    total = 0
    for t in header.tensors:
        nbytes = t.nbytes if t.nbytes is not None else share.get(t.name, 0)
        total += _gpu_bytes(t, nbytes) if on_gpu else _pad(nbytes, header.alignment)
    return total


def _model_buffers(files: Sequence[GGUFHeader], layers: list[str], output: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for header in files:
        share = _unknown_share(header)
        for t in header.tensors:
            nbytes = t.nbytes if t.nbytes is not None else share.get(t.name, 0)
            m = _LAYER.match(t.name)
            if t.name.startswith(_INPUT):
                device = "CPU"
            elif m is not None:
                il = int(m.group(1))
                device = layers[il] if il < len(layers) else output
            else:
                device = output
            size = _pad(nbytes, header.alignment) if device == "CPU" else _gpu_bytes(t, nbytes)
            out[device] = out.get(device, 0) + size
    return out


def _unknown_share(header: GGUFHeader) -> dict[str, int]:
    """An unknown type's tensors: the gap to the next tensor's offset stands in for their bytes."""
    if not header.unknown_types:
        return {}
    ordered = sorted(header.tensors, key=lambda t: t.offset)
    end = header.file_size - header.data_offset
    return {
        t.name: (ordered[i + 1].offset if i + 1 < len(ordered) else end) - t.offset
        for i, t in enumerate(ordered)
        if t.nbytes is None
    }


def _era(settings: LlamaCppSettings) -> str:
    return "legacy" if settings.legacy_ctx_padding else settings.version


def _kv_padding(settings: LlamaCppSettings) -> int:
    """The cells the KV cache is padded to in ``settings``' llama.cpp era (1: none)."""
    policy = _policy()["llamacpp"]
    era = _era(settings)
    if era == "legacy":
        key = "legacy_n_ctx_padding_flash_attn" if settings.flash_attn else "legacy_n_ctx_padding"
        return int(policy[key])
    if era == "2025-10":
        return 1
    return int(policy["n_ctx_padding"])


def _swa_padding(settings: LlamaCppSettings) -> int:
    """The sliding-window cache's padding: the KV cache's (none in the ``"2025-10"`` era, 256 since #17046)."""
    return _kv_padding(settings)


def _n_ctx(arch: GGUFArch, settings: LlamaCppSettings) -> int:
    n_ctx = settings.n_ctx if settings.n_ctx is not None else 4096
    return _pad(n_ctx, _kv_padding(settings))


def _kv_buffers(
    specs: list[_Layer], devices: list[str], arch: GGUFArch, settings: LlamaCppSettings, n_ctx: int
) -> dict[str, int]:
    pad = _swa_padding(settings)
    swa_cells = n_ctx
    if arch.sliding_window:
        swa_cells = min(n_ctx, _pad(arch.sliding_window * settings.n_seq + settings.n_ubatch, pad))
    out: dict[str, int] = {}
    for il, spec in enumerate(specs):
        if spec.kind == "none":
            continue
        cells = swa_cells if spec.kind == "swa" else n_ctx
        per_cell = row_bytes(settings.type_k, spec.k) + (row_bytes(settings.type_v, spec.v) if spec.v else 0)
        out[devices[il]] = out.get(devices[il], 0) + cells * per_cell
    return out


def _ffn_width(arch: GGUFArch) -> int:
    ff = arch.feed_forward_length
    if isinstance(ff, tuple):
        return max(ff) if ff else 0
    return int(ff or 0)


def _compute(arch: GGUFArch, specs: list[_Layer], settings: LlamaCppSettings, n_ctx: int) -> tuple[int, int]:
    """(the main device's compute buffer, the host's input buffer when a GPU computes) in bytes."""
    n_ub = min(settings.n_ubatch, settings.n_batch, n_ctx)
    embd = arch.embedding_length or 0
    heads = max((_int(arch.head_count, il) for il in range(len(specs))), default=0)
    head_k = arch.key_length or (embd // heads if heads else 0)
    n_q = heads * head_k
    n_kv_embd = max((s.k for s in specs), default=0)
    n_kv = n_ctx
    widths = embd + (n_q + 2 * n_kv_embd) + n_q + n_kv_embd
    if settings.flash_attn:
        masks = 2 if any(s.kind == "swa" for s in specs) else 1
        attention = masks * 2 * n_kv * n_ub + 4 * n_ub * (widths + n_q)
    else:
        attention = 4 * n_ub * (n_kv + widths) + 4 * n_kv * n_ub * heads
    ffn = 4 * n_ub * (2 * embd + 2 * _ffn_width(arch))
    output = 4 * n_ub * ((arch.vocab_size or 0) + 2 * embd)
    host = 4 * n_ub * (embd + n_kv) + 8 * n_ub
    return max(attention, ffn, output), host


def memory(files: Sequence[GGUFHeader], settings: LlamaCppSettings | None = None) -> LlamaCppMemory:
    """llama.cpp's model, KV and compute buffers per device for a model of these GGUF files (its splits).

    Raises:
        UsageError: no file, or a file without ``general.architecture``.
    """
    settings = settings or LlamaCppSettings()
    if not files:
        raise UsageError("no GGUF file to size")
    arch = files[0].arch
    if not arch.architecture:
        raise UsageError(f"{files[0].filename}: no general.architecture in its metadata")
    n_layer = arch.block_count or 0
    devices, output = _placement(n_layer, settings)
    specs = _layers(arch)
    n_ctx = _n_ctx(arch, settings)
    model = _model_buffers(files, devices, output)
    kv_bytes = _kv_buffers(specs, devices, arch, settings, n_ctx)
    main, host = _compute(arch, specs, settings, n_ctx)
    gpus = sorted({d for d in [*devices, output] if d != "CPU"})
    compute: dict[str, int] = {}
    if gpus:
        for gpu in gpus:
            compute[gpu] = main
        compute["CPU"] = host
    else:
        compute["CPU"] = main
    offloaded = sum(d != "CPU" for d in devices) + (output != "CPU")
    return LlamaCppMemory(n_ctx=n_ctx, n_gpu_layers=offloaded, model=model, kv=kv_bytes, compute=compute)


def max_gpu_layers(
    files: Sequence[GGUFHeader], gpu_bytes: int, settings: LlamaCppSettings | None = None
) -> int:
    """The largest ``-ngl`` whose GPU0 buffers (and the runtime's footprint) fit in ``gpu_bytes``; -1 if none."""
    settings = settings or LlamaCppSettings()
    n_layer = files[0].arch.block_count or 0
    for ngl in range(n_layer + 1, -1, -1):
        trial = LlamaCppSettings(**{**settings.__dict__, "n_gpu_layers": ngl, "gpus": max(settings.gpus, 1)})
        if memory(files, trial).gpu_need("GPU0") <= gpu_bytes:
            return ngl
    return -1
