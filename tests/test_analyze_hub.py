"""The core analyzer against the local fake Hub (fixtures/hub_server.py), through huggingface_hub.

Figures for meta-llama/Llama-2-70b-hf are the published ones named in fixtures/README.md: F16 68,976,648,192
elements + F32 5,120 (80 layers x 64 ``rotary_emb.inv_freq``); the Hub's ``safetensors.total`` 68,976,653,312
counts the buffers, the model's parameter count 68,976,648,192 does not.
"""

from __future__ import annotations

import re

import pytest

import hubfit
from hubfit.errors import (
    GatedRepoError,
    NetworkError,
    PrivateRepoError,
    RateLimitedError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from hubfit.source.hub import HubClient

LLAMA = "meta-llama/Llama-2-70b-hf"
LLAMA_PARAMS = 68_976_648_192
LLAMA_F32_BUFFERS = 80 * 64
TOKEN = "hf_granted"  # the fixture's token with access to the gated repo


def _client(sleeps: list[float] | None = None, token: str | bool = TOKEN) -> HubClient:
    return HubClient(token=token, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def _range_reads(hub, repo_id: str) -> dict[str, int]:
    """Ranged GETs per file on the resolve endpoint (redirects to the CDN counted once)."""
    reads: dict[str, int] = {}
    for entry in hub.log:
        m = re.match(rf"/{re.escape(repo_id)}/resolve/[^/]+/(.+)$", entry.path)
        if m and entry.range and entry.method == "GET":
            reads[m.group(1)] = reads.get(m.group(1), 0) + 1
    return reads


def test_llama2_70b_exact_counts_at_main_in_few_requests(hub):
    client = _client()
    report = hubfit.analyze(LLAMA, client=client)
    d = report.to_dict()
    assert d["parameters"]["total"] == LLAMA_PARAMS
    assert d["parameters"]["active"] == LLAMA_PARAMS
    assert d["parameters"]["stored_by_dtype"] == {"F16": LLAMA_PARAMS, "F32": LLAMA_F32_BUFFERS}
    assert d["parameters"]["by_role"]["embedding"] == 32_000 * 8192
    assert d["parameters"]["by_role"]["lm_head"] == 32_000 * 8192
    assert d["weights"] == {
        "bytes": LLAMA_PARAMS * 2 + LLAMA_F32_BUFFERS * 4,
        "files": 15,
        "bytes_by_dtype": {"F16": LLAMA_PARAMS * 2, "F32": LLAMA_F32_BUFFERS * 4},
    }
    assert d["sha"] == hub.repos[LLAMA].refs["refs/heads/main"]
    assert d["source"] == "hub" and d["schema"] == "hubfit/1" and d["quantization"] is None
    # model info + config.json (one GET) + one request for every shard header
    assert len(hub.log) <= 5
    assert not _range_reads(hub, LLAMA)


@pytest.mark.parametrize("revision", ["v1.0", "refs/pr/3", "sha"])
def test_pinned_revisions_read_each_shard_header_once(hub, revision):
    repo = hub.repos[LLAMA]
    expected_sha = repo.resolve("v1.0" if revision == "sha" else revision).sha
    revision = expected_sha if revision == "sha" else revision
    client = _client()
    report = hubfit.analyze(LLAMA, revision=revision, client=client)
    assert report.sha == expected_sha
    assert report.parameters.total == LLAMA_PARAMS
    reads = _range_reads(hub, LLAMA)
    assert len(reads) == 15 and set(reads.values()) == {1}
    assert client.stats.requests <= 15 + 5
    # every read is pinned to the resolved commit, never to a moving branch
    assert all(expected_sha in e.path for e in hub.log if "/resolve/" in e.path)


def test_fallback_to_range_reads_without_the_sharded_endpoint(hub):
    repo = hub.repos[LLAMA]
    repo.sharded_metadata_endpoint = False
    try:
        report = hubfit.analyze(LLAMA, client=_client())
    finally:
        repo.sharded_metadata_endpoint = True
    assert report.parameters.total == LLAMA_PARAMS
    assert len(_range_reads(hub, LLAMA)) == 15


def test_gated_repo_without_access_says_how_to_get_it(hub):
    with pytest.raises(GatedRepoError, match="accept its conditions at .*meta-llama/Llama-2-70b-hf"):
        hubfit.analyze(LLAMA, client=_client(token=False))
    with pytest.raises(GatedRepoError):
        hubfit.analyze(LLAMA, client=_client(token="hf_someone_else"))


def test_unknown_repo_and_revision(hub):
    with pytest.raises(PrivateRepoError, match="if it is private, pass a token"):
        hubfit.analyze("nobody/does-not-exist", client=_client(token=False))
    with pytest.raises(RepoNotFoundError, match="no access"):
        hubfit.analyze("nobody/does-not-exist", client=_client(token="hf_x"))
    with pytest.raises(RevisionNotFoundError, match="'no-such-branch'"):
        hubfit.analyze(LLAMA, revision="no-such-branch", client=_client())


def test_rate_limit_honours_retry_after(hub):
    hub.retry_after = 7
    hub.fail_next(r"^/api/models/meta-llama/Llama-2-70b-hf$", 2, 429)
    sleeps: list[float] = []
    report = hubfit.analyze(LLAMA, client=_client(sleeps))
    assert report.parameters.total == LLAMA_PARAMS
    assert sleeps == [7.0, 7.0]


def test_server_errors_and_dropped_connections_are_retried(hub):
    hub.fail_next(r"safetensors-metadata", 1, 503)
    hub.fail_next(r"^/api/models/meta-llama/Llama-2-70b-hf$", 1, "drop")
    sleeps: list[float] = []
    report = hubfit.analyze(LLAMA, client=_client(sleeps))
    assert report.parameters.total == LLAMA_PARAMS
    assert len(sleeps) == 2


def test_persistent_failures_end_in_one_clear_error(hub):
    hub.fail_next(r"^/api/models/meta-llama/Llama-2-70b-hf$", 50, 500)
    sleeps: list[float] = []
    with pytest.raises(NetworkError, match="HTTP 500 after 5 attempts"):
        hubfit.analyze(LLAMA, client=_client(sleeps))
    assert len(sleeps) == 4
    hub.reset_faults()
    hub.fail_next(r"^/api/models/meta-llama/Llama-2-70b-hf$", 50, 429)
    with pytest.raises(RateLimitedError, match="rate-limiting"):
        hubfit.analyze(LLAMA, client=_client([]))


def test_timeouts_are_retried_then_reported(hub, monkeypatch):
    import hubfit.source.hub

    monkeypatch.setattr(hubfit.source.hub, "HTTP_TIMEOUT_S", 0.2)
    hub.latency_s = 0.6  # every answer comes after the client gave up
    sleeps: list[float] = []
    with pytest.raises(NetworkError, match="Timeout after 5 attempts"):
        hubfit.analyze(LLAMA, client=_client(sleeps))
    assert len(sleeps) == 4
