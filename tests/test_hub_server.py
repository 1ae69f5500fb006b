"""The fake Hub behaves like huggingface.co for everything huggingface_hub 2.4.0 does when reading a repo.

Every check goes through huggingface_hub itself (or, for raw HTTP details, through its own HTTP session), so a
server that answered differently from the Hub would make huggingface_hub fail or raise another error class.
Published figures are from fixtures/README.md.
"""

from __future__ import annotations

import json
import struct

import pytest
from huggingface_hub import HfApi, get_session, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fixtures.build import DTYPE_BITS
from fixtures.catalog import LLAMA2_70B, TOKEN_GRANTED, TOKEN_OTHER, model_file
from fixtures.hub_server import FakeHub, FaultPlan, FileEntry, Request, Response

# meta-llama/Llama-2-70b-hf, published: F16 68,976,648,192 + F32 5,120 (80 layers x 64 rotary inv_freq),
# Hub safetensors.total 68,976,653,312 (fixtures/README.md).
LLAMA2_70B_F16 = 68_976_648_192
LLAMA2_70B_F32 = 5_120


@pytest.fixture
def api() -> HfApi:
    return HfApi()


def test_model_info_matches_hub_shape(hub: FakeHub, api: HfApi) -> None:
    info = api.model_info(LLAMA2_70B)
    assert info.id == LLAMA2_70B
    assert info.gated == "manual"
    assert info.private is False
    assert info.library_name == "transformers"
    assert len(info.sha) == 40
    names = {s.rfilename for s in info.siblings}
    assert {"config.json", "model.safetensors.index.json", "model-00015-of-00015.safetensors"} <= names
    assert sum(n.endswith(".safetensors") for n in names) == 15
    # The Hub's own server-side count, computed by the fake from the headers it serves.
    assert info.safetensors.parameters == {"F16": LLAMA2_70B_F16, "F32": LLAMA2_70B_F32}
    assert info.safetensors.total == 68_976_653_312
    assert hub.log[0].path == f"/api/models/{LLAMA2_70B}"


def test_model_info_files_metadata_reports_lfs_sizes(hub: FakeHub, api: HfApi) -> None:
    info = api.model_info(LLAMA2_70B, files_metadata=True)
    by_name = {s.rfilename: s for s in info.siblings}
    shard = by_name["model-00001-of-00015.safetensors"]
    assert shard.lfs is not None and shard.lfs.size == shard.size
    assert len(shard.lfs.sha256) == 64
    config = by_name["config.json"]
    assert config.lfs is None and config.size == len(model_file(LLAMA2_70B, "config.json"))
    # Shard sizes add up to 8-byte prefixes + headers + every tensor's bytes (F16 2 B, F32 4 B per element).
    index_path = hf_hub_download(LLAMA2_70B, "model.safetensors.index.json", token=TOKEN_GRANTED)
    with open(index_path) as f:
        index = json.load(f)
    assert index["metadata"]["total_size"] == LLAMA2_70B_F16 * 2 + LLAMA2_70B_F32 * 4
    assert (
        sum(s.size for n, s in by_name.items() if n.endswith(".safetensors"))
        > index["metadata"]["total_size"]
    )


def test_expand_returns_only_requested_fields(hub: FakeHub, api: HfApi) -> None:
    info = api.model_info(LLAMA2_70B, expand=["sha", "gated"])
    assert info.sha is not None and info.gated == "manual"
    assert info.siblings is None and info.safetensors is None
    assert any(e.path == f"/api/models/{LLAMA2_70B}" for e in hub.log)


def test_revisions_tag_pr_ref_and_sha(hub: FakeHub, api: HfApi) -> None:
    main = api.model_info(LLAMA2_70B)
    tag = api.model_info(LLAMA2_70B, revision="v1.0")
    pr = api.model_info(LLAMA2_70B, revision="refs/pr/3")
    pinned = api.model_info(LLAMA2_70B, revision=tag.sha)
    assert len({main.sha, tag.sha, pr.sha}) == 3
    assert pinned.sha == tag.sha
    # huggingface_hub percent-encodes the revision (refs%2Fpr%2F3); the log shows decoded paths.
    assert f"/api/models/{LLAMA2_70B}/revision/refs/pr/3" in [e.path for e in hub.log]
    refs = api.list_repo_refs(LLAMA2_70B, include_pull_requests=True)
    assert [b.name for b in refs.branches] == ["main"]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", tag.sha)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/3", pr.sha)]
    readme = hf_hub_download(LLAMA2_70B, "README.md", revision="refs/pr/3", token=TOKEN_GRANTED)
    with open(readme, "rb") as f:
        assert f.read().endswith(b"## Hardware\n")


def test_hf_hub_download_small_file_and_pinned_cache(hub: FakeHub, api: HfApi, tmp_path) -> None:
    sha = api.model_info(LLAMA2_70B).sha
    path = hf_hub_download(LLAMA2_70B, "config.json", revision=sha, token=TOKEN_GRANTED, cache_dir=tmp_path)
    with open(path, "rb") as f:
        assert f.read() == model_file(LLAMA2_70B, "config.json")
    head = [e for e in hub.log if e.method == "HEAD" and e.path.endswith("/config.json")]
    assert head and head[-1].status == 200
    hub.reset_log()
    again = hf_hub_download(LLAMA2_70B, "config.json", revision=sha, token=TOKEN_GRANTED, cache_dir=tmp_path)
    assert again == path
    assert hub.requests == 0  # a sha-pinned file is served from the cache, as against the real Hub


def test_lfs_resolve_redirects_to_cdn_with_linked_headers(hub: FakeHub) -> None:
    url = f"{hub.url}/{LLAMA2_70B}/resolve/main/model-00001-of-00015.safetensors"
    auth = {"authorization": f"Bearer {TOKEN_GRANTED}"}
    head = get_session().head(url, headers=auth, follow_redirects=False)
    assert head.status_code == 302
    assert head.headers["location"].startswith(hub.cdn_url)
    assert len(head.headers["x-repo-commit"]) == 40
    size = int(head.headers["x-linked-size"])
    assert head.headers["x-linked-etag"].strip('"') != ""
    # Ranged reads follow the redirect; the CDN computes any range of the synthesized file.
    first = get_session().get(url, headers={**auth, "range": "bytes=0-7"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-7/{size}"
    (header_len,) = struct.unpack("<Q", first.content)
    body = get_session().get(url, headers={**auth, "range": f"bytes=8-{header_len + 7}"})
    header = json.loads(body.content)
    assert header["__metadata__"] == {"format": "pt"}
    assert header["model.embed_tokens.weight"] == {
        "dtype": "F16",
        "shape": [32000, 8192],
        "data_offsets": [0, 32000 * 8192 * 2],
    }
    tail = get_session().get(url, headers={**auth, "range": f"bytes={size - 10}-"})
    assert tail.status_code == 206 and tail.content == bytes(10)
    assert tail.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    middle = get_session().get(url, headers={**auth, "range": "bytes=5000000000-5000000003"})
    assert middle.content == bytes(4)
    bad = get_session().get(url, headers={**auth, "range": f"bytes={size}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    # The redirect leaves the Hub's origin, so the client must not forward the token there.
    cdn_calls = [e for e in hub.log if e.path.startswith(f"/repos/{LLAMA2_70B}/")]
    assert cdn_calls and hub.bytes_sent < 200_000


def test_per_dtype_counts_through_huggingface_hub(hub: FakeHub, api: HfApi) -> None:
    meta = api.get_safetensors_metadata(LLAMA2_70B, token=TOKEN_GRANTED)
    assert meta.sharded and len(meta.files_metadata) == 15
    assert meta.parameter_count == {"F16": LLAMA2_70B_F16, "F32": LLAMA2_70B_F32}
    inv_freq = [n for n in meta.weight_map if n.endswith("rotary_emb.inv_freq")]
    assert len(inv_freq) == 80


def test_parse_single_shard_at_pinned_sha(hub: FakeHub, api: HfApi) -> None:
    sha = api.model_info(LLAMA2_70B, revision="v1.0").sha
    meta = api.parse_safetensors_file_metadata(
        LLAMA2_70B, "model-00015-of-00015.safetensors", revision=sha, token=TOKEN_GRANTED
    )
    assert "lm_head.weight" in meta.tensors
    lm_head = meta.tensors["lm_head.weight"]
    assert lm_head.shape == [32000, 8192] and lm_head.dtype == "F16"
    for info in meta.tensors.values():  # offsets agree with shapes
        begin, end = info.data_offsets
        assert end - begin == info.parameter_count * DTYPE_BITS[info.dtype] // 8
    assert any(f"/resolve/{sha}/model-00015-of-00015.safetensors" in e.path for e in hub.log)


def test_sharded_metadata_endpoint_and_its_switch(hub: FakeHub, api: HfApi) -> None:
    meta = api.get_sharded_safetensors_metadata(LLAMA2_70B, token=TOKEN_GRANTED)
    assert meta.parameter_count == {"F16": LLAMA2_70B_F16, "F32": LLAMA2_70B_F32}
    assert len(meta.files_metadata) == 15
    assert hub.requests == 1
    repo = hub.repos[LLAMA2_70B]
    repo.sharded_metadata_endpoint = False
    try:
        with pytest.raises(HfHubHTTPError) as err:
            api.get_sharded_safetensors_metadata(LLAMA2_70B, token=TOKEN_GRANTED)
        assert err.value.response.status_code == 404
    finally:
        repo.sharded_metadata_endpoint = True
    with pytest.raises(GatedRepoError):
        api.get_sharded_safetensors_metadata(LLAMA2_70B)


def test_error_classes(hub: FakeHub, api: HfApi, tmp_path) -> None:
    with pytest.raises(RepositoryNotFoundError) as err:
        api.model_info("nobody/does-not-exist")
    assert err.value.response.status_code == 401
    assert err.value.response.headers["x-error-code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/does-not-exist", token=TOKEN_OTHER)
    with pytest.raises(GatedRepoError) as gated:
        hf_hub_download(LLAMA2_70B, "config.json", cache_dir=tmp_path)  # empty cache: no fallback
    assert gated.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as denied:
        api.parse_safetensors_file_metadata(LLAMA2_70B, "model-00001-of-00015.safetensors", token=TOKEN_OTHER)
    assert denied.value.response.status_code == 403
    assert "not in the authorized list" in str(denied.value)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(LLAMA2_70B, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(LLAMA2_70B, "config.json", revision="v9.9", token=TOKEN_GRANTED)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(LLAMA2_70B, "no-such-file.json", token=TOKEN_GRANTED)
    assert api.file_exists(LLAMA2_70B, "config.json", token=TOKEN_GRANTED)
    assert not api.file_exists(LLAMA2_70B, "model.safetensors", token=TOKEN_GRANTED)
    with pytest.raises(HfHubHTTPError) as invalid:
        api.model_info(LLAMA2_70B, token="hf_invalid")
    assert invalid.value.response.status_code == 401


def test_tree_listing_paginates_like_the_hub(hub: FakeHub, api: HfApi) -> None:
    hub.tree_page_size = 4
    try:
        files = api.list_repo_files(LLAMA2_70B)
    finally:
        hub.tree_page_size = 1000
    info = api.model_info(LLAMA2_70B)
    assert sorted(files) == sorted(s.rfilename for s in info.siblings)
    pages = [e for e in hub.log if "/tree/" in e.path]
    assert len(pages) == -(-len(files) // 4)
    entries = list(api.list_repo_tree(LLAMA2_70B, revision="v1.0"))
    shard = next(e for e in entries if e.path == "model-00001-of-00015.safetensors")
    assert shard.lfs is not None and shard.lfs.size == shard.size


def test_list_models_pages_with_link_header_and_expand(hub: FakeHub, api: HfApi) -> None:
    hub.page_size = 1
    try:
        rows = list(api.list_models(author="meta-llama", expand=["sha", "gated", "safetensors", "siblings"]))
    finally:
        hub.page_size = 1000
    assert LLAMA2_70B in [r.id for r in rows]
    assert len([e for e in hub.log if e.path == "/api/models"]) == len(rows)
    row = next(r for r in rows if r.id == LLAMA2_70B)
    assert row.gated == "manual" and len(row.sha) == 40
    assert row.safetensors.total == 68_976_653_312
    assert not list(api.list_models(author="meta-llama", search="no-such-model"))


def test_forced_faults_and_seeded_plan(hub: FakeHub, api: HfApi) -> None:
    hub.fail_next(r"^/api/models/meta-llama/Llama-2-70b-hf$", 1, 429)
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info(LLAMA2_70B)
    assert err.value.response.status_code == 429
    assert err.value.response.headers["retry-after"] == "1"
    assert api.model_info(LLAMA2_70B).id == LLAMA2_70B  # only the next request failed
    hub.fail_next(r"/api/models/meta-llama/Llama-2-70b-hf$", 1, "drop")
    with pytest.raises(Exception) as dropped:
        api.model_info(LLAMA2_70B)
    assert "disconnected" in str(dropped.value).lower() or "closed" in str(dropped.value).lower()

    plan_a, plan_b = FaultPlan(rate=0.5, seed=7), FaultPlan(rate=0.5, seed=7)
    assert [plan_a.draw("/x") for _ in range(50)] == [plan_b.draw("/x") for _ in range(50)]
    assert {plan_a.draw("/x") for _ in range(200)} == {None, 429, 500, 503, "drop"}
    hub.faults = FaultPlan(rate=1.0, seed=1, kinds=(503,), path=r"/config\.json$")
    assert get_session().get(f"{hub.url}/{LLAMA2_70B}/resolve/main/config.json").status_code == 503
    assert api.model_info(LLAMA2_70B).id == LLAMA2_70B  # paths outside the plan are unaffected


def test_extension_routes_and_synthesized_entries(hub: FakeHub) -> None:
    def hello(h: FakeHub, req: Request) -> Response:
        return Response.json({"repo": req.groups["repo_id"], "q": req.arg("q"), "token": req.token})

    hub.add_route("GET", r"/api/models/(?P<repo_id>[^/]+/[^/]+)/hello", hello)
    got = get_session().get(f"{hub.url}/api/models/a/b/hello?q=1", headers={"authorization": "Bearer t"})
    assert got.json() == {"repo": "a/b", "q": "1", "token": "t"}
    big = FileEntry.safetensors({"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}, size=10**12)
    assert big.size == 10**12 and big.read(10**12 - 4, 10**12) == bytes(4)
    assert sum(len(c) for c in big.iter_range(0, 3 << 20)) == 3 << 20


# Published per-dtype stored elements of each generated checkpoint (sources in fixtures/README.md). A naming or
# shape rule that drifted from the real checkpoint would change these sums.
PUBLISHED = {
    "TheBloke/Llama-2-70B-GPTQ": {"I32": 8_563_445_760, "F16": 532_324_352},
    "Qwen/Qwen2.5-0.5B": {"BF16": 494_032_768},
    "openai/gpt-oss-20b": {"BF16": 1_804_459_584, "U8": 10_152_345_600},
    "deepseek-ai/DeepSeek-V3": {"BF16": 3_918_786_560, "F8_E4M3": 680_571_043_840, "F32": 41_555_600},
    "meta-llama/Llama-3.1-405B": {"BF16": 405_853_388_800},
    "google/gemma-2-9b": {"F32": 9_241_705_984},
    "Qwen/Qwen3-30B-A3B": {"BF16": 30_532_122_624},
    "mistralai/Mistral-7B-v0.1": {"BF16": 7_241_732_096},
    "meta-llama/Llama-3.1-8B": {"BF16": 8_030_261_248},
}
SHARDS = {
    "deepseek-ai/DeepSeek-V3": 163,
    "meta-llama/Llama-3.1-405B": 191,
    "openai/gpt-oss-20b": 3,
    "google/gemma-2-9b": 8,
    "Qwen/Qwen3-30B-A3B": 16,
}


@pytest.mark.parametrize("repo_id", sorted(PUBLISHED))
def test_generated_checkpoints_match_published_counts(hub: FakeHub, api: HfApi, repo_id: str) -> None:
    if repo_id in SHARDS:  # one request instead of one per shard
        meta = api.get_sharded_safetensors_metadata(repo_id, token=TOKEN_GRANTED)
        assert len(meta.files_metadata) == SHARDS[repo_id]
    else:
        meta = api.get_safetensors_metadata(repo_id, token=TOKEN_GRANTED)
    assert meta.parameter_count == PUBLISHED[repo_id]


def test_tied_embeddings_store_no_lm_head(hub: FakeHub, api: HfApi) -> None:
    meta = api.get_safetensors_metadata("Qwen/Qwen2.5-0.5B")
    assert "lm_head.weight" not in meta.weight_map
    assert "model.embed_tokens.weight" in meta.weight_map


def test_private_repo_needs_its_token(hub: FakeHub, api: HfApi) -> None:
    from fixtures.catalog import PRIVATE_REPO, TOKEN_PRIVATE

    with pytest.raises(RepositoryNotFoundError):
        api.model_info(PRIVATE_REPO)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(PRIVATE_REPO, token=TOKEN_GRANTED)
    assert api.model_info(PRIVATE_REPO, token=TOKEN_PRIVATE).private is True
    assert PRIVATE_REPO not in [m.id for m in api.list_models(author="hubfit-fixtures")]
    assert PRIVATE_REPO in [m.id for m in api.list_models(author="hubfit-fixtures", token=TOKEN_PRIVATE)]


def test_hostile_headers_are_served_byte_exact(hub: FakeHub, api: HfApi) -> None:
    from huggingface_hub.errors import SafetensorsParsingError

    repo = "hubfit-fixtures/hostile-length-2e60"
    with pytest.raises(SafetensorsParsingError, match="too big"):
        api.parse_safetensors_file_metadata(repo, "model.safetensors")
    first = get_session().get(
        f"{hub.url}/{repo}/resolve/main/model.safetensors", headers={"range": "bytes=0-7"}
    )
    assert struct.unpack("<Q", first.content) == (2**60,)
    meta = api.parse_safetensors_file_metadata("hubfit-fixtures/hostile-negative-shape", "model.safetensors")
    assert meta.tensors["a"].shape == [-4, 2]  # huggingface_hub passes it through; hubfit must reject it
    info = api.model_info("hubfit-fixtures/pytorch-only-bert")
    assert [s.rfilename for s in info.siblings] == ["config.json", "pytorch_model.bin"]
    assert info.safetensors is None


def test_quantized_checkpoints_follow_their_packing_rules(hub: FakeHub, api: HfApi) -> None:
    # AWQ GEMM 4-bit, group 128 on Llama-2-7B: I32 = sum over linears of I*O/8 + (I/128)*O/8 (fixtures/README.md).
    awq = api.get_safetensors_metadata("TheBloke/Llama-2-7B-AWQ").parameter_count
    assert awq == {"I32": 815_824_896, "F16": 313_004_032}
    bnb = api.get_safetensors_metadata("unsloth/llama-3-8b-bnb-4bit")
    weights = [
        t for n, t in bnb.files_metadata["model.safetensors"].tensors.items() if n.endswith("proj.weight")
    ]
    assert sum(t.parameter_count for t in weights) * 2 == 6_979_321_856  # two NF4 values per U8 element
    w4a16 = api.get_safetensors_metadata("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16")
    assert w4a16.parameter_count["I32"] * 8 == 6_979_321_856  # eight int4 values per I32 element


def test_sentence_transformers_and_adapter_layouts(hub: FakeHub, api: HfApi) -> None:
    labse = api.model_info("sentence-transformers/LaBSE")
    names = {s.rfilename for s in labse.siblings}
    assert {"modules.json", "2_Dense/config.json", "2_Dense/model.safetensors", "model.safetensors"} <= names
    dense = api.parse_safetensors_file_metadata("sentence-transformers/LaBSE", "2_Dense/model.safetensors")
    assert dense.tensors["linear.weight"].shape == [768, 768]
    root = api.parse_safetensors_file_metadata("sentence-transformers/LaBSE", "model.safetensors")
    assert root.parameter_count == {"F32": 470_926_848}  # BERT rule on LaBSE's config (vocab 501,153)

    repo = "mmammidi/LoRA-fine-tuning-Llama-3.1-8B-FirstProject"
    info = api.model_info(repo, files_metadata=True)
    adapter = next(s for s in info.siblings if s.rfilename == "adapter_model.safetensors")
    assert adapter.size == 218_138_576  # the size in the repo's real LFS pointer
    meta = api.parse_safetensors_file_metadata(repo, "adapter_model.safetensors")
    # r = 64 on q/k/v/o of 32 Llama-3.1-8B layers: 32 x 64 x (4096+4096 + 4096+1024 + 4096+1024 + 4096+4096)
    assert meta.parameter_count == {"F32": 32 * 64 * (8192 + 5120 + 5120 + 8192)}
    assert adapter.size - 8 - 4 * meta.parameter_count["F32"] > 0  # room for the header, as in the real file
