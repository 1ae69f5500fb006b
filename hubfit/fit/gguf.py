"""GGUF repositories: every quant file side by side against the GPU catalog, under llama.cpp's memory.

:func:`discover` groups a repository's ``.gguf`` files into models (one file, or the ``-0000i-of-0000n``
splits of one, in the root or a quant folder such as ``Q4_K_M/``), and sets the ``mmproj-*.gguf`` vision
projectors aside. :func:`gguf_fit` sizes each model with :mod:`hubfit.sizing.llamacpp` at the context asked:
one row per model (size, BPW, the GPUs it fits on fully offloaded, the largest ``-ngl`` on a named GPU) and,
per GPU, the best model that fits (the most bits per weight).

A vision model's projector is a second model llama.cpp loads beside the language model (``--mmproj``; ``-hf``
fetches it with the quant) and, by default, places on the GPU (``--no-mmproj-offload`` keeps it on the CPU). Its
weights (:func:`~hubfit.sizing.llamacpp.projector_bytes`: its tensors as the GPU buffer holds them, row
padding and alignment included) are added to every row's GPU need and taken from the GPU the ``-ngl`` search
fills. The vision encoder's own compute buffer is not modelled: it depends on the image size, and the one real
load log found (ollama/ollama#2706, 32.89 MB for one 336-pixel image) is too little to calibrate it on.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hubfit.fit.gpus import GPU
from hubfit.formats.gguf import GGUFHeader, split_of
from hubfit.sizing.llamacpp import LlamaCppSettings, max_gpu_layers, memory, projector_bytes

__all__ = [
    "GGUFFile",
    "GGUFQuery",
    "GGUFFit",
    "GGUFModelRow",
    "GGUFSplit",
    "LlamaCppServing",
    "choose_mmproj",
    "discover",
    "gguf_fit",
    "gguf_summary",
    "llamacpp_serving",
]

_MIB = 1 << 20


@dataclass(frozen=True)
class GGUFQuery:
    """What to ask of a GGUF repository: llama.cpp's flags, ``--file`` and whether to show the buffers.

    Attributes:
        settings: llama.cpp's flags (context, ``-ngl``, cache types ...).
        pattern: ``--file``: the files to size (``None``: every model of the repository).
        serve: ``--engine llama.cpp``: the report's ``serving`` holds llama.cpp's buffers for the first model.
    """

    settings: LlamaCppSettings = field(default_factory=LlamaCppSettings)
    pattern: str | None = None
    serve: bool = False


@dataclass(frozen=True)
class GGUFSplit:
    """A split file's place: ``index`` from 0 (``split.no``), ``count`` (``split.count``)."""

    index: int
    count: int


@dataclass(frozen=True)
class GGUFFile:
    """One GGUF file as its header says (the ``gguf_files`` rows of the JSON document).

    Attributes:
        path: the file's path in the repository.
        size: bytes.
        data_offset: where its tensor data begins (the header's size, padded).
        params: elements of its tensors (llama.cpp's ``n_elements``).
        tensor_bytes: bytes of its tensors (``n_bytes``; the data size when a type is unknown).
        bpw: ``tensor_bytes * 8 / params``, as llama.cpp prints it.
        types: ggml type name -> tensor count.
        bytes_by_type: ggml type name -> bytes.
        split: ``{"index", "count"}`` of a split file, else ``None``.
    """

    path: str
    size: int
    data_offset: int
    params: int
    tensor_bytes: int
    bpw: float
    types: dict[str, int]
    bytes_by_type: dict[str, int]
    split: GGUFSplit | None = None


def gguf_summary(header: GGUFHeader) -> GGUFFile:
    split = header.split
    return GGUFFile(
        path=header.filename,
        size=header.file_size,
        data_offset=header.data_offset,
        params=header.params,
        tensor_bytes=header.tensor_bytes,
        bpw=round(header.bpw, 4),
        types=dict(header.types),
        bytes_by_type=dict(header.bytes_by_type),
        split=GGUFSplit(*split) if split else None,
    )


@dataclass(frozen=True)
class GGUFModelRow:
    """One loadable model of the repository (a file, or all the splits of one).

    Attributes:
        name: the quant's name (``Q4_K_M``), from the file name or its folder.
        files: its files (splits in order).
        size: bytes of its files.
        params: parameters.
        bpw: bits per weight over its files.
        gpu_bytes: what one GPU holds fully offloaded at the context asked (buffers and the runtime's
            footprint).
        fits: the GPUs (catalog names) it fits on fully offloaded.
        max_gpu_layers: the largest ``-ngl`` on the named GPU (``None`` without one; -1: not even 0 layers).
        unknown_types: ggml types this hubfit does not know (the file size stands in for their bytes).
        mmproj_bytes: the vision projector's weights, included in ``gpu_bytes`` (0 without one).
    """

    name: str
    files: list[str]
    size: int
    params: int
    bpw: float
    gpu_bytes: int
    fits: list[str]
    max_gpu_layers: int | None = None
    unknown_types: list[str] = field(default_factory=list)
    mmproj_bytes: int = 0


@dataclass(frozen=True)
class GGUFFit:
    """The GGUF table: a row per model, the best per GPU, at one context.

    Attributes:
        n_ctx: the context (padded as llama.cpp pads it).
        gpu: the named GPU the ``-ngl`` column is for (``None``: none named).
        rows: one per model, largest first.
        best: GPU name -> the name of the model with the most bits per weight that fits it (GPUs where none fits
            are absent).
        mmproj: the vision projector files found (a separate component of a VLM's memory).
        mmproj_file: the projector sized with every model (:func:`choose_mmproj`; ``None``: none).
        mmproj_bytes: its weights, on the GPU beside each model.
    """

    n_ctx: int
    gpu: str | None
    rows: list[GGUFModelRow]
    best: dict[str, str]
    mmproj: list[str] = field(default_factory=list)
    mmproj_file: str | None = None
    mmproj_bytes: int = 0


@dataclass(frozen=True)
class LlamaCppServing:
    """``--engine llama.cpp``: llama.cpp's buffers per device for one model (the ``serving`` JSON contract).

    Attributes:
        engine: ``"llama.cpp"``.
        file: the model's (first) file.
        n_ctx: the context, padded as llama.cpp pads it.
        n_gpu_layers: layers offloaded (the output layer counts as one).
        buffers_mib: ``{"model" | "kv" | "compute": {device: MiB}}``, devices ``CPU``, ``GPU0``, ``GPU1`` ...; a
            vision model adds ``"mmproj"``, its projector's weights.
        fits: every GPU holds its buffers and the runtime's footprint.
    """

    engine: str
    file: str
    n_ctx: int
    n_gpu_layers: int
    buffers_mib: dict[str, dict[str, float]]
    fits: bool


_QUANT = re.compile(
    r"(?i)(?:^|[-_.])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|F16|F32|BF16|MXFP4(?:_MOE)?|TQ\d_\d))(?=[-_.]|$)"
)


def _quant_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    stem = re.sub(r"-\d{5}-of-\d{5}\.gguf$", "", base)
    stem = re.sub(r"\.gguf$", "", stem)
    found = _QUANT.findall(stem)
    if found:
        return str(found[-1]).upper()
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    return folder.rsplit("/", 1)[-1] or stem


def discover(files: dict[str, int | None], pattern: str | None = None) -> tuple[list[list[str]], list[str]]:
    """The repository's GGUF models (each a list of files, splits in order) and its ``mmproj`` files.

    ``pattern`` (``--file``) keeps the files whose path or name matches it (shell wildcards; a plain string
    matches as a substring, case-insensitively).
    """
    ggufs = sorted(p for p in files if p.lower().endswith(".gguf"))
    mmproj = [p for p in ggufs if "mmproj" in p.rsplit("/", 1)[-1].lower()]
    models: dict[str, list[tuple[int, str]]] = {}
    for path in ggufs:
        if path in mmproj or (pattern and not _matches(path, pattern)):
            continue
        split = split_of(path)
        key = re.sub(r"-\d{5}-of-\d{5}\.gguf$", "", path) if split else path
        models.setdefault(key, []).append((split[0] if split else 0, path))
    return [[p for _, p in sorted(v)] for _, v in sorted(models.items())], mmproj


def _matches(path: str, pattern: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern)
    return pattern.lower() in path.lower()


#: Projector precisions in the order one is chosen when a repository publishes several.
_MMPROJ_ORDER = ("f16", "bf16", "q8_0", "f32")


def choose_mmproj(paths: Sequence[str]) -> str | None:
    """The projector sized with the models: the 16-bit one a repository publishes beside its quants (F16, else
    BF16, Q8_0, F32, else the first by name); ``None`` without one.

    F16 first because it is what repositories publish as their default projector (llama.cpp's conversion writes
    ``mmproj-model-f16.gguf``; bartowski/unsloth repos name ``mmproj-*-f16.gguf`` first) and what downloaders
    recommend beside a quant (bodaay/HuggingFaceModelDownloader#76: mmproj-f16, then bf16, then f32). Q8_0
    comes before F32 as the smaller file a user short of memory takes. The choice is shown in the table's
    "Vision projector" line and in the JSON (``mmproj_file``).
    """
    if not paths:
        return None

    def rank(path: str) -> tuple[int, str]:
        name = path.rsplit("/", 1)[-1].lower()
        for i, tag in enumerate(_MMPROJ_ORDER):
            if re.search(rf"(?:^|[-_.]){re.escape(tag)}(?:[-_.]|$)", name):
                return i, path
        return len(_MMPROJ_ORDER), path

    return min(paths, key=rank)


def _row(
    headers: Sequence[GGUFHeader],
    settings: LlamaCppSettings,
    gpus: Sequence[GPU],
    named: GPU | None,
    mmproj_bytes: int = 0,
) -> GGUFModelRow:
    need = memory(headers, LlamaCppSettings(**{**settings.__dict__, "gpus": 1, "n_gpu_layers": None}))
    gpu_bytes = need.gpu_need("GPU0") + mmproj_bytes
    params = sum(h.params for h in headers)
    tensor_bytes = sum(h.tensor_bytes for h in headers)
    unknown = sorted({u for h in headers for u in h.unknown_types})
    return GGUFModelRow(
        name=_quant_name(headers[0].filename),
        files=[h.filename for h in headers],
        size=sum(h.file_size for h in headers),
        params=params,
        bpw=round(tensor_bytes * 8 / params, 4) if params else 0.0,
        gpu_bytes=gpu_bytes,
        fits=[g.name for g in gpus if gpu_bytes <= g.memory_bytes],
        max_gpu_layers=max_gpu_layers(headers, named.memory_bytes - mmproj_bytes, settings)
        if named
        else None,
        unknown_types=unknown,
        mmproj_bytes=mmproj_bytes,
    )


def gguf_fit(
    models: Sequence[Sequence[GGUFHeader]],
    gpus: Sequence[GPU],
    settings: LlamaCppSettings,
    *,
    named: GPU | None = None,
    mmproj: Sequence[str] = (),
    projectors: dict[str, GGUFHeader] | None = None,
) -> GGUFFit:
    """The GGUF table of a repository's models (see :class:`GGUFFit`).

    ``projectors``: the headers of the ``mmproj`` files; the chosen one's weights join every model on the GPU.
    """
    chosen = choose_mmproj([p for p in mmproj if projectors and p in projectors])
    extra = projector_bytes(projectors[chosen]) if chosen and projectors else 0
    rows = sorted(
        (_row(m, settings, gpus, named, extra) for m in models if m), key=lambda r: (-r.size, r.name)
    )
    best: dict[str, str] = {}
    for gpu in gpus:
        fitting = [r for r in rows if gpu.name in r.fits]
        if fitting:
            best[gpu.name] = max(fitting, key=lambda r: (r.bpw, r.size)).name
    n_ctx = memory(models[0], settings).n_ctx if models and models[0] else 0
    return GGUFFit(
        n_ctx=n_ctx,
        gpu=named.name if named else None,
        rows=rows,
        best=best,
        mmproj=list(mmproj),
        mmproj_file=chosen,
        mmproj_bytes=extra,
    )


def llamacpp_serving(
    headers: Sequence[GGUFHeader],
    settings: LlamaCppSettings,
    gpu_bytes: Sequence[int],
    projector: GGUFHeader | None = None,
) -> LlamaCppServing:
    """llama.cpp's buffers per device for one model on GPUs of ``gpu_bytes`` each (the ``serving`` section).

    ``projector``: a vision model's ``mmproj`` header; its weights are an ``mmproj`` buffer on the first GPU (on
    the CPU without one), as ``--mmproj`` offloads it by default.
    """
    m = memory(headers, settings)
    buffers = {
        kind: {device: round(value / _MIB, 2) for device, value in getattr(m, kind).items()}
        for kind in ("model", "kv", "compute")
    }
    extra = projector_bytes(projector, on_gpu=bool(gpu_bytes)) if projector is not None else 0
    if projector is not None:
        buffers["mmproj"] = {("GPU0" if gpu_bytes else "CPU"): round(extra / _MIB, 2)}
    fits = all(
        m.gpu_need(f"GPU{i}") + (extra if i == 0 else 0) <= size
        for i, size in enumerate(gpu_bytes)
        if f"GPU{i}" in m.devices
    )
    return LlamaCppServing(
        engine="llama.cpp",
        file=headers[0].filename,
        n_ctx=m.n_ctx,
        n_gpu_layers=m.n_gpu_layers,
        buffers_mib=buffers,
        fits=fits,
    )
