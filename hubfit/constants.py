"""Limits and defaults, read in one place."""

from __future__ import annotations

import os

#: The safetensors format caps the JSON header at 100 MB ("the header is at most 100MB",
#: https://github.com/huggingface/safetensors#format). A larger length prefix is hostile.
MAX_HEADER_BYTES = 100_000_000

#: Maximum JSON nesting depth accepted in a header. Real headers nest 3 deep
#: (tensor -> field -> list); anything far deeper is hostile.
MAX_HEADER_DEPTH = 64

#: First read of a single (unindexed) safetensors file: 8 KiB answers most small headers in one request
#: while keeping the bytes read within "header + 8 KB" for files with tiny headers.
FIRST_READ_BYTES = 8 * 1024

#: Concurrency for per-shard header reads (huggingface.js reads 20 shards at a time, hf-mem up to 32).
MAX_WORKERS = int(os.environ.get("HUBFIT_MAX_WORKERS", "32"))

#: Retries for 429 / 5xx / timeouts: attempts, first backoff, cap, and the longest Retry-After honoured.
RETRY_ATTEMPTS = int(os.environ.get("HUBFIT_RETRY_ATTEMPTS", "5"))
RETRY_BASE_S = float(os.environ.get("HUBFIT_RETRY_BASE_S", "1.0"))
RETRY_MAX_S = float(os.environ.get("HUBFIT_RETRY_MAX_S", "16.0"))
RETRY_AFTER_MAX_S = float(os.environ.get("HUBFIT_RETRY_AFTER_MAX_S", "120.0"))

#: Seconds to wait for the Hub to send data.
HTTP_TIMEOUT_S = float(os.environ.get("HUBFIT_HTTP_TIMEOUT_S", "30.0"))

#: Seconds a scan waits for another process that holds its SQLite cache's write lock before giving up.
SCAN_DB_TIMEOUT_S = float(os.environ.get("HUBFIT_SCAN_DB_TIMEOUT_S", "30.0"))

#: Largest JSON file (config.json, index, model_index.json ...) hubfit will parse.
MAX_JSON_BYTES = 64 * 1024 * 1024

JSON_SCHEMA = "hubfit/1"
