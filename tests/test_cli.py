"""The command line as a user runs it: subprocesses of the installed console scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stfile import write

BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "hubfit"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A two-shard Llama-style directory: real tensor naming, tiny shapes."""
    model = tmp_path / "tiny-llama"
    write(
        model / "model-00001-of-00002.safetensors",
        {
            "model.embed_tokens.weight": ("BF16", [128, 32]),
            "model.layers.0.self_attn.q_proj.weight": ("BF16", [32, 32]),
        },
    )
    write(
        model / "model-00002-of-00002.safetensors",
        {"model.norm.weight": ("BF16", [32]), "lm_head.weight": ("BF16", [128, 32])},
    )
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "tie_word_embeddings": False}))
    return model


def test_local_directory_json(tiny_dir):
    result = run(str(tiny_dir), "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["source"] == "local" and d["sha"] is None
    assert d["parameters"]["total"] == 128 * 32 * 2 + 32 * 32 + 32
    assert d["weights"]["files"] == 2
    assert d["weights"]["bytes"] == d["parameters"]["total"] * 2


def test_text_and_markdown_say_their_units(tiny_dir):
    text = run(str(tiny_dir)).stdout
    assert "9.2K parameters" in text and "Memory in GiB (2^30 bytes)" in text
    details = run(str(tiny_dir), "--details").stdout
    assert "Parameters" in details and "9,248" in details and "GB = 10^9 bytes, GiB = 2^30 bytes" in details
    md = run(str(tiny_dir), "--markdown").stdout
    assert "| Parameters | 9,248" in md and "GB = 10^9 bytes, GiB = 2^30 bytes" in md


def test_hub_model_json_and_analyze_alias(fake_hub):
    result = run("analyze", "meta-llama/Llama-2-70b-hf", "--json", "--token", "hf_granted")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parameters"]["total"] == 68_976_648_192


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nobody/does-not-exist"], 3, "repository nobody/does-not-exist not found"),
        (["meta-llama/Llama-2-70b-hf"], 4, "is gated: accept its conditions"),
        (
            ["meta-llama/Llama-2-70b-hf", "--revision", "nope", "--token", "hf_granted"],
            5,
            "revision 'nope' not found",
        ),
        (["./no/such/dir"], 2, "neither a directory nor a Hub repo id"),
    ],
)
def test_errors_are_one_line_with_exit_codes(fake_hub, args, code, message):
    result = run(*args)
    assert result.returncode == code
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hubfit: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_lfs_pointer_in_a_checkout_is_named(tmp_path):
    model = tmp_path / "checkout"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 1000\n"
    )
    result = run(str(model))
    assert result.returncode == 7
    assert "model.safetensors is a Git LFS pointer" in result.stderr


def test_no_safetensors_lists_what_is_there(tmp_path):
    model = tmp_path / "old"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"\0" * 10)
    result = run(str(model))
    assert result.returncode == 6
    assert "no safetensors weights found; weight files present: pytorch_model.bin" in result.stderr


def test_hf_extension_dispatch(tmp_path, tiny_dir):
    """`hf hubfit` reaches the `hf-hubfit` console script when registered as huggingface_hub 2.x installs one."""
    from huggingface_hub.cli.extensions import EXTENSIONS_ROOT, ExtensionManifest

    home = tmp_path / "home"
    ext_dir = Path(str(EXTENSIONS_ROOT).replace("~", str(home), 1)) / "hf-hubfit"
    executable = ext_dir / "venv" / "bin" / "hf-hubfit"
    executable.parent.mkdir(parents=True)
    shutil.copy(BIN / "hf-hubfit", executable)
    ExtensionManifest(
        owner="hubfit",
        repo="hf-hubfit",
        repo_id="hubfit/hf-hubfit",
        short_name="hubfit",
        executable_path=str(executable),
        type="python",
        installed_at=datetime.now(UTC),
    ).save(ext_dir)
    env = {**os.environ, "HOME": str(home)}
    help_run = subprocess.run(
        [str(BIN / "hf"), "hubfit", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "What hardware does a Hugging Face model need?" in help_run.stdout
    json_run = subprocess.run(
        [str(BIN / "hf"), "hubfit", str(tiny_dir), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json_run.returncode == 0, json_run.stderr
    assert json.loads(json_run.stdout)["parameters"]["total"] == 9_248
    error = subprocess.run(
        [str(BIN / "hf"), "hubfit", str(tmp_path / "nothing")], capture_output=True, text=True, env=env
    )
    assert error.returncode == 2  # hubfit's exit code passes through `hf`


def test_report_options_reach_a_command_as_one_typed_object():
    import click
    from click.testing import CliRunner

    from hubfit.cli.options import ReportOptions, report_options
    from hubfit.fit.planner import HardwareQuery
    from hubfit.sizing import Workload

    seen: list[ReportOptions] = []

    @click.command()
    @click.argument("model")
    @report_options
    def cmd(model: str, opts: ReportOptions) -> None:
        seen.append(opts)

    args = [
        "org/m",
        "--revision",
        "v1",
        "--context",
        "8192",
        "--precision",
        "int4",
        "--gpu",
        "4090",
        "--gpus",
        "2",
    ]
    result = CliRunner().invoke(cmd, args)
    assert result.exit_code == 0, result.output
    assert seen == [
        ReportOptions("v1", None, Workload(context=8192, precisions=("int4",)), HardwareQuery(("4090",), 2))
    ]
    assert "token" not in repr(seen[0])  # a token given on the command line is never shown


def test_scan_options_are_grouped_for_scan_command(monkeypatch):
    import hubfit.scan.runner
    from hubfit.cli.commands import main
    from hubfit.fit.planner import HardwareQuery
    from hubfit.scan.runner import ScanOptions, ScanQuery
    from hubfit.sizing import Workload

    calls = []
    monkeypatch.setattr(hubfit.scan.runner, "scan_command", lambda *a, **kw: calls.append((a, kw)) or 3)
    code = main(
        ["scan", "org", "--filter", "gguf", "--limit", "5", "--concurrency", "2", "--token", "hf_x"]
        + ["--batch", "2", "--gpu", "4090", "--format", "csv", "-o", "out.csv", "-q"]
        + ["--apply", "card", "--yes", "--pause", "0", "--max-writes", "1"]
    )
    assert code == 3  # scan_command's exit code is the process's
    [(args, kwargs)] = calls
    assert args == (
        ScanQuery("org", filters=("gguf",), limit=5),
        ScanOptions(
            concurrency=2, token="hf_x", workload=Workload(batch=2), hardware=HardwareQuery(("4090",))
        ),
    )
    assert kwargs == {
        "db": None,
        "fmt": "csv",
        "output": "out.csv",
        "html": None,
        "quiet": True,
        "apply": "card",
        "yes": True,
        "direct": False,
        "pause_s": 0.0,
        "max_writes": 1,
    }


def test_bad_shared_options_fail_before_the_command(fake_hub):
    for command in (["analyze", "org/m"], ["card", "org/m"], ["comment", "org/m"], ["scan", "org"]):
        result = run(*command, "--gpu", "voodoo 5")
        assert result.returncode == 2 and result.stderr.startswith("hubfit: error: unknown GPU 'voodoo 5'")
        result = run(*command, "--batch", "0")
        assert result.returncode == 2 and "--batch must be at least 1" in result.stderr
