"""Shared setup for the publishing tests: writable copies of a real fixture model on the fake Hub.

The model is meta-llama/Llama-2-70b-hf as registered by fixtures/catalog.py (real config, real tensor layout,
15 shards; published counts in fixtures/README.md). Each test gets its own repository under the namespace
``hubfit-demo`` holding the same config and weights and a README of the test's choosing, so writes never
leak between tests.
"""

from __future__ import annotations

import itertools
from typing import Any

from fixtures.build import Checkpoint, shard_names, split_even
from fixtures.catalog import LLAMA2_70B, model_json
from fixtures.families import llama_tensors
from fixtures.hub_server import FakeHub

OWNER = "hubfit-demo"  # the namespace of the test repos: its token may push to main
OWNER_TOKEN = "hf_publish_owner"
BOT = "hubfit-bot"  # a user without write access: it may open pull requests and discussions
BOT_TOKEN = "hf_publish_bot"
OTHER = "someone-else"
OTHER_TOKEN = "hf_publish_other"

# Llama-2-70b-hf, published figures (fixtures/README.md, the Hub's safetensors parameter count):
# F16 68,976,648,192 parameters and 80 x 64 = 5,120 F32 rotary_emb.inv_freq buffer elements.
LLAMA2_70B_PARAMETERS = 68_976_648_192
LLAMA2_70B_BUFFERS = 5_120

_counter = itertools.count(1)

# A hand-written front matter: every construct here is one that a ModelCard round trip rewrites
# (research/ecosystem.md §1.6), so a byte-for-byte comparison proves the card was edited as text.
CARD = b"""---
# Main metadata -- edited by hand
license: llama2   # keep in sync with LICENSE.txt
language:
    - en
tags: [facebook, meta, pytorch, "llama", llama-2]
pipeline_tag: text-generation
inference: false
extra_gated_heading: >
  You need to share contact information
  with Meta to access this model
version: 1.10
empty:
---
# **Llama 2**

Llama 2 is a collection of pretrained and fine-tuned generative text models ranging in scale from 7 billion to
70 billion parameters. This is the repository for the 70B pretrained model.
"""


def setup_users(hub: FakeHub) -> None:
    hub.users.update({OWNER_TOKEN: OWNER, BOT_TOKEN: BOT, OTHER_TOKEN: OTHER})


def new_repo(hub: FakeHub, readme: bytes | None = CARD, **attrs: Any) -> str:
    """A fresh public repo ``hubfit-demo/llama-2-70b-N`` with Llama-2-70b-hf's files and ``readme``."""
    setup_users(hub)
    repo_id = f"{OWNER}/llama-2-70b-{next(_counter)}"
    files = {path: entry for path, entry in hub.repos[LLAMA2_70B].head.files.items() if path != "README.md"}
    if readme is not None:
        files["README.md"] = readme
    hub.add_repo(repo_id, files, message="Upload LlamaForCausalLM", **attrs)
    return repo_id


def resave_in_bf16(hub: FakeHub, repo_id: str) -> str:
    """A model change: the same model re-saved in BF16 by transformers >= 4.32 (no inv_freq buffers).

    Returns the new main sha. The parameter count is unchanged; the stored dtype is now BF16 only.
    """
    config = model_json(LLAMA2_70B)
    ckpt = Checkpoint(
        f"{repo_id}-bf16",
        lambda: split_even(llama_tensors(config, dtype="BF16", inv_freq=False), 15),
        shard_names(15),
    )
    return hub.commit(repo_id, dict(ckpt.files()), message="Re-save weights in bfloat16")


def publish_writes(hub: FakeHub, repo_id: str) -> list[dict[str, Any]]:
    """The writes the fake Hub accepted for ``repo_id`` (fixtures/hub_writes.py records them)."""
    return [w for w in hub.state.get("writes", []) if w["repo_id"] == repo_id]
