"""Which files hold a model's weights, wherever the Hub's libraries put them.

- transformers: ``model.safetensors.index.json`` and its shards, else ``model.safetensors``, else the root
  ``*.safetensors`` files (GPTQ and EXL2 repos name theirs freely; ``consolidated.safetensors`` is Mistral's
  duplicate of the transformers shards and is used only when nothing else is there);
- diffusers: ``model_index.json`` names components, each a subfolder (``unet/``, ``transformer/``,
  ``text_encoder/``, ``vae/`` ...) with its own config and weights (``.fp16``-style variants only when the
  plain file is absent);
- sentence-transformers: ``modules.json`` lists modules; the root holds the transformer, others (``2_Dense/``)
  their own ``model.safetensors``;
- PEFT adapters: ``adapter_config.json`` + ``adapter_model.safetensors``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hubfit.errors import NoWeightsError

#: Reads a JSON file of the repository by path (``None`` when it is absent).
ReadJson = Callable[[str], Any]

__all__ = ["ComponentFiles", "WEIGHT_SUFFIXES", "find_components"]

#: File endings of weight formats other than safetensors, named in the "no safetensors" error.
WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz", ".pkl")

_VARIANT = re.compile(r"\.(fp16|fp32|bf16|non_ema|ema)\.safetensors$")


@dataclass
class ComponentFiles:
    """The weight files of one component.

    Attributes:
        name: ``""`` for a single-model repo, else the subfolder or module path.
        kind: ``transformers``, ``diffusers``, ``sentence-transformers``, ``adapter`` or ``safetensors``.
        weights: safetensors paths, in shard order.
        config_path: the component's ``config.json`` (``None`` when there is none).
        index_path: the shard index, when the weights are sharded.
        extra: layout details worth reporting (diffusers class names, adapter settings).
    """

    name: str
    kind: str
    weights: list[str]
    config_path: str | None = None
    index_path: str | None = None
    extra: dict = field(default_factory=dict)


def _in_folder(files: dict[str, int | None], folder: str) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    return sorted(
        p
        for p in files
        if p.startswith(prefix) and "/" not in p[len(prefix) :] and p.endswith(".safetensors")
    )


def _numbered_shards(files: dict[str, int | None], prefix: str, stem: str) -> list[str] | None:
    """``{stem}-00001-of-00015.safetensors`` ... when exactly one complete numbered set is present."""
    pattern = re.compile(rf"^{re.escape(prefix + stem)}-(\d+)-of-(\d+)\.safetensors$")
    found = [(m, p) for p in files if (m := pattern.match(p))]
    totals = {int(m.group(2)) for m, _ in found}
    if len(totals) != 1:
        return None
    total = totals.pop()
    numbers = sorted(int(m.group(1)) for m, _ in found)
    if numbers != list(range(1, total + 1)):
        return None
    return sorted(p for _, p in found)


def _weights_in(
    files: dict[str, int | None], folder: str, read_json: ReadJson
) -> tuple[list[str], str | None]:
    """(weight files, index path) of a folder, following the transformers / diffusers naming rules."""
    prefix = f"{folder}/" if folder else ""
    for stem in ("model", "diffusion_pytorch_model"):
        index_path = f"{prefix}{stem}.safetensors.index.json"
        if index_path in files:
            # The standard shard names list the whole set without reading the index
            shards = _numbered_shards(files, prefix, stem)
            if shards is None:
                index = read_json(index_path) or {}
                shards = sorted({prefix + s for s in (index.get("weight_map") or {}).values()})
                if not shards or any(s not in files for s in shards):
                    shards = None
            if shards:
                return shards, index_path
        single = f"{prefix}{stem}.safetensors"
        if single in files:
            return [single], None
    candidates = _in_folder(files, folder)
    plain = [p for p in candidates if not _VARIANT.search(p)]
    if plain and any(not p.endswith("consolidated.safetensors") for p in plain):
        plain = [p for p in plain if not p.rsplit("/", 1)[-1].startswith("consolidated")]
    chosen = plain or [p for p in candidates if ".fp16." in p or ".bf16." in p] or candidates
    return chosen, None


def find_components(files: dict[str, int | None], read_json: ReadJson) -> list[ComponentFiles]:
    """The components of a model and their weight files.

    Args:
        files: every file path in the repository or directory.
        read_json: reads a JSON file by path (``None`` if absent).

    Raises:
        NoWeightsError: nothing in safetensors format; the message lists the weight files that exist.
    """
    components: list[ComponentFiles] = []
    if "adapter_config.json" in files and "adapter_model.safetensors" in files:
        adapter = read_json("adapter_config.json") or {}
        components.append(
            ComponentFiles(
                "", "adapter", ["adapter_model.safetensors"], None, None, {"adapter_config": adapter}
            )
        )
    elif "model_index.json" in files:
        index = read_json("model_index.json") or {}
        for name, value in index.items():
            if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
                continue
            weights, index_path = _weights_in(files, name, read_json)
            if weights:
                config = f"{name}/config.json" if f"{name}/config.json" in files else None
                components.append(
                    ComponentFiles(
                        name,
                        "diffusers",
                        weights,
                        config,
                        index_path,
                        {"library": value[0], "class": value[1]},
                    )
                )
    elif "modules.json" in files:
        modules = read_json("modules.json") or []
        for module in modules if isinstance(modules, list) else []:
            folder = str(module.get("path", "")).strip("/")
            weights, index_path = _weights_in(files, folder, read_json)
            if weights:
                prefix = f"{folder}/" if folder else ""
                config = f"{prefix}config.json" if f"{prefix}config.json" in files else None
                kind = "sentence-transformers"
                components.append(
                    ComponentFiles(folder, kind, weights, config, index_path, {"module": module.get("type")})
                )
    if not components:
        weights, index_path = _weights_in(files, "", read_json)
        if weights:
            config = "config.json" if "config.json" in files else None
            kind = "transformers" if config else "safetensors"
            components.append(ComponentFiles("", kind, weights, config, index_path))
    if not components:
        others = sorted(p for p in files if p.endswith(WEIGHT_SUFFIXES))
        found = (
            f"; weight files present: {', '.join(others[:6])}{' ...' if len(others) > 6 else ''}"
            if others
            else ""
        )
        raise NoWeightsError(f"no safetensors weights found{found}")
    return components
