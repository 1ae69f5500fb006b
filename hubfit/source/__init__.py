"""Where a model's files come from: the Hub (through ``huggingface_hub``), Git LFS, or a local directory.

A :class:`Source` lists files, reads small JSON files and returns validated safetensors headers; nothing
above this package talks to the network.
"""

from hubfit.source.sources import HubSource, LocalSource, Source, open_source

__all__ = ["HubSource", "LocalSource", "Source", "open_source"]
