"""Run hf-mem's command line against the local fake Hub (hf-mem hard-codes https://huggingface.co).

Its httpx2 client gets a transport that rewrites huggingface.co to ``HF_ENDPOINT``; nothing else changes, so
the process does what ``hf-mem --model-id ...`` does for a user. Used by benchmarks/speed.py.

    HF_ENDPOINT=http://127.0.0.1:8765 python benchmarks/_hf_mem_local.py --model-id org/name --revision SHA
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import httpx2
from hf_mem import cli

run = importlib.import_module("hf_mem.run")  # the module (the package exports a function of that name)

_LOCAL = httpx2.URL(os.environ["HF_ENDPOINT"])
_REAL = httpx2.AsyncClient


class _Rewrite(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "huggingface.co":
            request.url = request.url.copy_with(scheme=_LOCAL.scheme, host=_LOCAL.host, port=_LOCAL.port)
        return await self.inner.handle_async_request(request)


def _client(*args: Any, **kwargs: Any) -> httpx2.AsyncClient:
    kwargs.pop("http2", None)
    return _REAL(*args, transport=_Rewrite(), **kwargs)


run.httpx2.AsyncClient = _client  # type: ignore[misc]

if __name__ == "__main__":
    cli.main()
