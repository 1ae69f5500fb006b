"""hubfit's fine-tuning policy against real training measurements (../shared/real-logs/training.jsonl, copied
in fixtures/real_logs/training.jsonl).

For every usable record: the model (a fixture repo: real config, headers by the family rules), the record's
settings, and hubfit's figure beside the measured one, compared with the meter the record names (torch
``max_memory_allocated`` / torchtune's peak: ``peak_allocated_bytes``; ``max_memory_reserved``:
``peak_reserved_bytes``; nvidia-smi and GPU monitors: ``device_bytes``), and OOM reports against "does not fit".
Estimate tables (not measurements) are printed beside hubfit's figure for the same model, not compared. Records
not used are listed with the reason.

    python -m benchmarks.training_accuracy            # prints the table (Markdown)
    python -m benchmarks.training_accuracy --write    # also writes benchmarks/results/training_accuracy.md

tests/test_training.py checks every usable record against the issue's tolerances.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.vllm_accuracy import model_of
from hubfit.sizing.training import Training, TrainSettings, train

HERE = Path(__file__).resolve().parent
RECORDS = HERE.parent / "fixtures" / "real_logs" / "training.jsonl"
GIB = 1 << 30
UNITS = {"GiB": GIB, "GB": 10**9, "MiB": 1 << 20}

#: Record model -> fixture repo with the same architecture and checkpoint shapes.
MODEL_REPO = {
    "meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Meta-Llama-3-8B",  # same shapes (fixtures/README.md)
    "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit": "meta-llama/Meta-Llama-3.1-8B-Instruct",  # quantized at load
}

#: torchtune's names for the Llama projections, as PEFT matches the HF modules.
TORCHTUNE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Use:
    """How a record is used: hubfit's settings for it, the GPU memory (bytes) and the figure compared."""

    settings: TrainSettings
    memory: int
    figure: str  # "allocated" | "reserved" | "device" | "oom"
    why: str = ""


_T4 = round(14.75 * GIB)
_80 = 80 * 10**9

#: The usable records, with the settings each names (inferred defaults are the record's own notes).
USED: dict[str, Use] = {
    # torchtune README table (bs 2, packed 2048, compile, chunked CE, bf16 weights and states): torchtune's
    # "peak memory", which follows the allocator's active bytes (research note 0): compared with allocated.
    "T39": Use(
        TrainSettings(
            "full",
            optimizer="paged-adamw-8bit",
            precision="bf16-true",
            batch_size=2,
            seq_len=2048,
            loss="chunked",
            optimizer_in_backward=True,
        ),
        24 * 10**9,
        "allocated",
        "PagedAdamW8bit with the step fused into backward (config default)",
    ),
    "T41": Use(
        TrainSettings(
            "lora", 8, ("q_proj", "v_proj"), precision="bf16-true", batch_size=2, seq_len=2048, loss="chunked"
        ),
        24 * 10**9,
        "allocated",
    ),
    "T43": Use(
        TrainSettings(
            "qlora", 8, TORCHTUNE, precision="bf16-true", batch_size=2, seq_len=2048, loss="chunked"
        ),
        24 * 10**9,
        "allocated",
        "torchao NF4 (double-quantized scalers)",
    ),
    "T46": Use(
        TrainSettings(
            "qlora",
            16,
            TORCHTUNE,
            precision="bf16-true",
            batch_size=2,
            seq_len=2048,
            gpus=8,
            sharding="fsdp",
            loss="chunked",
        ),
        _80,
        "allocated",
    ),
    # torchtune tutorial (Apr 2024): bf16, bs 2, alpaca at max 512 tokens, AC on, plain CE.
    "T60": Use(
        TrainSettings("lora", 8, ("q_proj", "v_proj"), precision="bf16-true", batch_size=2, seq_len=512),
        24 * 10**9,
        "allocated",
    ),
    # PEFT's sft examples on Llama-2-70B (packed 2048, FA2, adamw_torch): GPU-monitor figures = nvidia-smi.
    "T07": Use(
        TrainSettings("lora", 8, ("all-linear",), batch_size=8, seq_len=2048, gpus=8, sharding="zero3"),
        _80,
        "device",
    ),
    "T08": Use(
        TrainSettings("qlora", 8, ("all-linear",), batch_size=2, seq_len=2048, gpus=2, sharding="zero3"),
        40 * 10**9,
        "device",
    ),
    "T10": Use(
        TrainSettings(
            "qlora", 8, ("all-linear",), batch_size=2, seq_len=2048, gpus=2, sharding="fsdp", cpu_offload=True
        ),
        24 * 10**9,
        "device",
    ),
    "T11": Use(
        TrainSettings("qlora", 8, ("all-linear",), batch_size=2, seq_len=2048, gpus=2, sharding="fsdp"),
        _80,
        "device",
    ),
    # OOM reports: each must be answered "does not fit".
    "T117": Use(
        TrainSettings(
            "qlora",
            16,
            TORCHTUNE,
            optimizer="adamw-8bit",
            precision="fp16-mixed",
            batch_size=2,
            seq_len=18000,
            grad_checkpointing="offload",
        ),
        _T4,
        "oom",
    ),
    "T118": Use(
        TrainSettings("qlora", 8, ("all-linear",), batch_size=1, seq_len=51974),
        _80,
        "oom",
    ),
    "T119": Use(
        TrainSettings(
            "lora",
            8,
            ("all-linear",),
            batch_size=1,
            seq_len=32768,
            gpus=2,
            sharding="zero3",
            cpu_offload=True,
        ),
        _80,
        "oom",
        "GPU count not stated: 2 assumed (the per-GPU activations and logits do not depend on it)",
    ),
}

#: Estimate tables (not measurements): shown beside hubfit's figure for a default run, never compared.
ESTIMATES: dict[str, tuple[str, TrainSettings]] = {
    "T35": ("meta-llama/Llama-3.1-8B", TrainSettings("qlora", 16)),
    "T36": ("meta-llama/Llama-3.1-8B", TrainSettings("lora", 16)),
    "T120": ("meta-llama/Llama-3.1-8B", TrainSettings("full", precision="bf16-true")),
    "T121": ("meta-llama/Llama-3.1-8B", TrainSettings("lora", 16)),
    "T122": ("meta-llama/Llama-3.1-8B", TrainSettings("qlora", 16)),
}

_NO_CONFIG = "no real config of this model in fixtures/ (not written from memory)"
#: Records not used, and why.
NOT_USED = {
    "T01-T06": "T0_3B / mt0-xxl / bloomz-7b1: " + _NO_CONFIG,
    "T09": "a 72-80 GB range read from a screenshot (FSDP LoRA); T07 and T11 use the same recipe",
    "T17": "Unsloth on Alpaca without packing: the longest micro-batch's length is not logged (research note W6)",
    "T18-T23": "Unsloth notebooks without packing (lengths not logged); most models lack a real config here",
    "T24-T29": "published 'max context that fits' tables (vendor benchmark bounds, not measurements)",
    "T30-T34, T57-T59, T61-T65": "Llama-2-7b-hf: " + _NO_CONFIG,
    "T37, T38, T66, T123": "estimate tables for 70B models without a real config of that repo here",
    "T40, T42": "settings not given (activation checkpointing and optimizer unknown)",
    "T44, T45": "Llama-3.1-70B: " + _NO_CONFIG,
    "T47-T56": "Llama-3.2-3B: " + _NO_CONFIG,
    "T67-T75": "bert-large-uncased: " + _NO_CONFIG,
    "T76-T83": "decapoda-research/llama-7b-hf and -13b-hf: " + _NO_CONFIG + "; LoRA targets not given",
    "T84": "huggyllama/llama-65b: " + _NO_CONFIG,
    "T103": "Meta-Llama-3-70B: " + _NO_CONFIG,
    "T104-T112": "Qwen/Qwen-7B-Chat (remote code): " + _NO_CONFIG,
}


def records() -> dict[str, dict[str, Any]]:
    """The shared records by id."""
    return {r["id"]: r for r in map(json.loads, RECORDS.read_text().splitlines()) if r}


def estimate(record: dict[str, Any]) -> Training:
    use = USED[record["id"]]
    return train(model_of(MODEL_REPO.get(record["model"], record["model"])), use.settings, "", use.memory)


def measured_bytes(record: dict[str, Any]) -> float:
    return float(record["measured_gib"]) * UNITS[record["unit"]]


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    method: str
    figure: str
    measured: float  # bytes (the GPU's memory for an OOM)
    ours: int  # bytes of the compared figure (device_bytes for an OOM)
    fits: bool

    @property
    def error(self) -> float | None:
        if self.figure == "oom":
            return None
        return abs(self.ours - self.measured) / self.measured


def row(record: dict[str, Any]) -> Row:
    got = estimate(record)
    use = USED[record["id"]]
    ours = {
        "allocated": got.peak_allocated_bytes,
        "reserved": got.peak_reserved_bytes,
        "device": got.device_bytes,
        "oom": got.device_bytes,
    }[use.figure]
    return Row(record["id"], record["model"], got.method, use.figure, measured_bytes(record), ours, got.fits)


def table(rows: list[Row]) -> str:
    lines = [
        "| record | model | method | compared with | measured (GiB) | hubfit (GiB) | error |",
        "|---|---|---|---|---|---|---|",
    ]
    errors: dict[str, list[float]] = {}
    for r in rows:
        if r.figure == "oom":
            cell = "does not fit" if not r.fits else "FITS (wrong)"
            lines.append(
                f"| {r.id} | {r.model} | {r.method} | OOM on {r.measured / GIB:.1f} GiB | OOM | "
                f"{r.ours / GIB:.2f} | {cell} |"
            )
            continue
        e = r.error
        assert e is not None
        errors.setdefault(r.figure, []).append(e)
        lines.append(
            f"| {r.id} | {r.model} | {r.method} | {r.figure} | {r.measured / GIB:.2f} | {r.ours / GIB:.2f} | "
            f"{e:.1%} |"
        )
    lines += ["", "| figure | records | median error | worst error |", "|---|---|---|---|"]
    for name, errs in errors.items():
        lines.append(f"| {name} | {len(errs)} | {statistics.median(errs):.1%} | {max(errs):.1%} |")
    ooms = [r for r in rows if r.figure == "oom"]
    lines.append(f"| OOM answered 'does not fit' | {len(ooms)} | {sum(not r.fits for r in ooms)} agree | |")
    recs = records()
    lines += [
        "",
        "Estimate tables (published estimates, not measurements), beside hubfit's peak for a default run "
        "(bs 1, 2,048 tokens, checkpointing on; device_bytes):",
        "",
        "| record | model | method | table | hubfit (GiB) |",
        "|---|---|---|---|---|",
    ]
    for rid, (repo, settings) in ESTIMATES.items():
        rec = recs[rid]
        got = train(model_of(repo), settings, "", 1 << 60)
        lines.append(
            f"| {rid} | {rec['model']} | {settings.method} | {rec['measured_gib']} {rec['unit']} "
            f"({rec['framework']}) | {got.device_bytes / GIB:.1f} |"
        )
    lines += ["", "Records not used:", ""]
    lines += [f"- {k}: {v}" for k, v in NOT_USED.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/training_accuracy.md")
    args = parser.parse_args(argv)
    recs = records()
    text = table([row(recs[i]) for i in USED])
    print(text)
    if args.write:
        header = (
            "# hubfit's fine-tuning policy vs real training measurements\n\n"
            "`python -m benchmarks.training_accuracy --write`\n\n"
        )
        (HERE / "results" / "training_accuracy.md").write_text(header + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
