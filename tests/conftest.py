"""Test session setup: a local fake Hub, and an environment that cannot reach huggingface.co.

huggingface_hub reads HF_* variables when it is imported, so the fake Hub is started and the environment is set
here, at conftest import, before any test module imports huggingface_hub or hubfit. Subprocess-based CLI tests
inherit the same environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if "huggingface_hub" in sys.modules:  # pragma: no cover - a plugin imported it first
    raise RuntimeError(
        "huggingface_hub was imported before tests/conftest.py could point HF_ENDPOINT at the fake Hub"
    )

from fixtures.catalog import load_all  # noqa: E402
from fixtures.hub_server import FakeHub  # noqa: E402

_HF_HOME = tempfile.mkdtemp(prefix="hubfit-tests-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, True)

_HUB = FakeHub()
load_all(_HUB)
_HUB.start()
atexit.register(_HUB.stop)

for _name in (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_CACHE",
    "HF_OIDC_RESOURCE",
    "HF_HUB_OFFLINE",
):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "HF_ENDPOINT": _HUB.url,
        "HF_HOME": _HF_HOME,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_ETAG_TIMEOUT": "30",
        "HF_HUB_DOWNLOAD_TIMEOUT": "30",
    }
)


def _clean(hub: FakeHub) -> None:
    hub.reset_log()
    hub.reset_faults()
    hub.latency_s = 0.0
    hub.retry_after = 1


@pytest.fixture(scope="session")
def fake_hub() -> FakeHub:
    """The session's FakeHub (HF_ENDPOINT points at it) with every fixture repo of fixtures/catalog.py loaded."""
    return _HUB


@pytest.fixture
def hub(fake_hub: FakeHub) -> Iterator[FakeHub]:
    """The session FakeHub with an empty request log and no faults or latency, restored after the test."""
    _clean(fake_hub)
    yield fake_hub
    _clean(fake_hub)


@pytest.fixture
def hf_home() -> Path:
    """The temporary HF_HOME of this session (huggingface_hub's download cache lives under it)."""
    return Path(_HF_HOME)
