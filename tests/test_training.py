"""The fine-tuning policy (hubfit.sizing.training) against real training measurements
(fixtures/real_logs/training.jsonl, a copy of the shared records; sources per record in the file) and its rules
one by one.

Tolerances (issue 18): allocated within 10%; reserved, and nvidia-smi-like figures (reserved + the CUDA
context), within 15%; OOM reports answered "does not fit".
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import training_accuracy as acc
from benchmarks.vllm_accuracy import model_of
from hubfit.errors import UsageError
from hubfit.sizing.training import TrainSettings, parse_targets, train

RECORDS = acc.records()
GIB = 1 << 30

#: Records shown in the table but outside the tolerance, with the reason (not a fitted constant).
KNOWN_GAP = {
    "T43": "torch.compile fuses the fp32 norm copies and SwiGLU intermediates (not modelled): 11% over",
    "T46": "405B QLoRA under FSDP: torchtune's wrapping of the root and activation settings are not stated",
    "T10": "FSDP with CPU offload of parameters: a GPU-monitor figure 27% above the modelled working set",
}
TOLERANCE = {"allocated": 0.10, "reserved": 0.15, "device": 0.15}

LLAMA31_8B = "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize("rid", [r for r in acc.USED if r not in KNOWN_GAP])
def test_record(rid: str) -> None:
    r = acc.row(RECORDS[rid])
    if r.figure == "oom":
        assert not r.fits, f"{rid}: an OOM report must be answered 'does not fit'"
        return
    assert r.error is not None and r.error <= TOLERANCE[r.figure], (rid, r.measured / GIB, r.ours / GIB)


def test_known_gaps_are_listed() -> None:
    assert set(KNOWN_GAP) <= set(acc.USED)


def _train(settings: TrainSettings, memory: int = 80 * 10**9, repo: str = LLAMA31_8B):  # type: ignore[no-untyped-def]
    return train(model_of(repo), settings, "test", memory)


def test_lora_parameter_count_matches_unsloth() -> None:
    # research note 2.1: Llama-3.1-8B, r 16 on all 7 projections = 41,943,040 (Unsloth's printed count)
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    got = _train(TrainSettings("lora", 16, targets))
    assert got.trainable_params == 41_943_040
    # all-linear is the same set (PEFT leaves out the output embedding)
    assert _train(TrainSettings("lora", 16, ("all-linear",))).trainable_params == 41_943_040
    # the pre-quantized checkpoint (packed NF4) gives the same widths from its config (T117's log)
    assert (
        _train(TrainSettings("qlora", 16), repo="unsloth/llama-3-8b-bnb-4bit").trainable_params == 41_943_040
    )


def test_dora_adds_one_magnitude_per_output_feature() -> None:
    lora = _train(TrainSettings("lora", 8, ("q_proj",), grad_checkpointing="off"))
    dora = _train(TrainSettings("dora", 8, ("q_proj",), grad_checkpointing="off"))
    assert dora.trainable_params - lora.trainable_params == 32 * 4096
    assert dora.per_gpu_bytes.activations > lora.per_gpu_bytes.activations


def test_nf4_double_quant_weights() -> None:
    # research note 2.3: NF4-DQ linears 6.979e9 x 0.5159 + embed and lm_head 1.051e9 x 2 B = 5.70e9 B
    got = _train(TrainSettings("qlora", precision="bf16-true"))
    assert got.per_gpu_bytes.weights == pytest.approx(5.70e9, rel=0.005)
    plain = _train(TrainSettings("qlora", precision="bf16-true", double_quant=False))
    assert plain.per_gpu_bytes.weights > got.per_gpu_bytes.weights
    # under -mixed PEFT upcasts the unquantized embeddings and head to fp32
    assert _train(TrainSettings("qlora")).per_gpu_bytes.weights > got.per_gpu_bytes.weights


def test_targets_name_matching() -> None:
    with pytest.raises(UsageError):
        _train(TrainSettings("lora", 8, ("nope",)))
    assert parse_targets("all-linear") == ("all-linear",)
    assert parse_targets("q_proj, v_proj") == ("q_proj", "v_proj")
    with pytest.raises(UsageError):
        parse_targets(",")


def test_paged_states_are_outside_torch() -> None:
    base = TrainSettings("full", precision="bf16-true", optimizer="adamw-8bit")
    plain = _train(base)
    paged = _train(replace(base, optimizer="paged-adamw-8bit"))
    states = paged.per_gpu_bytes.optimizer_states
    assert paged.peak_allocated_bytes <= plain.peak_allocated_bytes - states
    assert paged.device_bytes > paged.peak_reserved_bytes + paged.per_gpu_bytes.cuda_context


def test_precision_bytes_per_parameter() -> None:
    mixed = _train(TrainSettings("full", precision="bf16-mixed"))
    true = _train(TrainSettings("full", precision="bf16-true"))
    p = mixed.trainable_params
    assert mixed.per_gpu_bytes.master_weights == pytest.approx(4 * p, rel=0.01)
    assert mixed.per_gpu_bytes.optimizer_states == 8 * p
    assert true.per_gpu_bytes.optimizer_states == 4 * p and true.per_gpu_bytes.master_weights == 0
    sgd = _train(TrainSettings("full", precision="bf16-true", optimizer="sgd"))
    assert sgd.per_gpu_bytes.optimizer_states == 2 * p


def test_checkpointing_eager_and_chunked_loss() -> None:
    base = TrainSettings("lora", batch_size=2, seq_len=4096)
    on = _train(base)
    off = _train(replace(base, grad_checkpointing="off"))
    offload = _train(replace(base, grad_checkpointing="offload"))
    assert offload.peak_allocated_bytes < on.peak_allocated_bytes < off.peak_allocated_bytes
    eager = _train(replace(base, grad_checkpointing="off", attention="eager"))
    # HF eager attention saves heads x seq^2 scores per layer: 6 B x 32 heads x 4096^2 x 2 sequences x 32 layers
    assert eager.per_gpu_bytes.activations - off.per_gpu_bytes.activations == 6 * 32 * 4096**2 * 2 * 32
    chunked = _train(replace(base, loss="chunked"))
    assert chunked.per_gpu_bytes.logits < on.per_gpu_bytes.logits
    # bf16 logits 2 B + three fp32 copies per element (research note 4)
    assert on.per_gpu_bytes.logits == 2 * 4096 * 128256 * 14


def test_sharding_divides_states() -> None:
    base = TrainSettings("full", precision="bf16-mixed")
    one = _train(base)
    z2 = _train(replace(base, gpus=8, sharding="zero2"))
    z3 = _train(replace(base, gpus=8, sharding="zero3"))
    ddp = _train(replace(base, gpus=8, sharding="ddp"))
    assert z2.per_gpu_bytes.optimizer_states == one.per_gpu_bytes.optimizer_states // 8
    assert z3.per_gpu_bytes.weights < z2.per_gpu_bytes.weights == one.per_gpu_bytes.weights
    assert ddp.per_gpu_bytes.gradients == 2 * one.per_gpu_bytes.gradients
    off = _train(replace(base, gpus=8, sharding="zero3", cpu_offload=True))
    assert off.per_gpu_bytes.optimizer_states == 0 and off.peak_allocated_bytes < z3.peak_allocated_bytes


def test_fit_answers_and_suggestions() -> None:
    settings = TrainSettings("lora", 16, batch_size=2, seq_len=8192, grad_checkpointing="off")
    got = _train(settings, memory=24 * 10**9)
    assert not got.fits
    assert got.suggestions and all("peak" in s for s in got.suggestions)
    assert got.max_seq_len < 8192 and got.max_batch_size <= 1
    # the longest sequence at the asked batch fits, one token more does not
    assert _train(replace(settings, seq_len=got.max_seq_len), memory=24 * 10**9).fits
    assert not _train(replace(settings, seq_len=got.max_seq_len + 1), memory=24 * 10**9).fits
    assert _train(TrainSettings("qlora", 16), memory=24 * 10**9).fits


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError):
        TrainSettings("prefix")
    with pytest.raises(UsageError):
        TrainSettings(batch_size=0)
    with pytest.raises(UsageError):
        TrainSettings(sharding="tp")


def test_cli_json_training_contract(fake_hub: object) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from hubfit.report import Report

    hubfit = str(Path(sys.executable).parent / "hubfit")
    args = [hubfit, "analyze", "Qwen/Qwen2.5-0.5B", "--finetune", "qlora", "--lora-rank", "8", "--gpu", "RTX 4090",
            "--precision", "bf16-true", "--batch-size", "2", "--seq-len", "1024"]  # fmt: skip
    doc = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, check=True).stdout)
    training = doc["training"]
    assert list(training) == [
        "method", "lora_rank", "trainable_params", "optimizer", "precision", "batch_size", "seq_len",
        "grad_checkpointing", "gpus", "sharding", "per_gpu_bytes", "peak_allocated_bytes", "peak_reserved_bytes",
        "device_bytes", "fits", "max_batch_size", "max_seq_len", "suggestions",
    ]  # fmt: skip
    assert list(training["per_gpu_bytes"]) == [
        "weights", "trainable_weights", "gradients", "optimizer_states", "master_weights", "activations", "logits",
        "cuda_context",
    ]  # fmt: skip
    assert training["method"] == "qlora" and training["lora_rank"] == 8 and training["batch_size"] == 2
    assert training["precision"] == "bf16-true" and training["fits"] is True and training["sharding"] is None
    assert json.loads(json.dumps(Report.from_dict(doc).to_dict())) == doc
    # without --finetune the document has no training object
    plain = subprocess.run([hubfit, "analyze", "Qwen/Qwen2.5-0.5B", "--json"], capture_output=True, text=True)
    assert "training" not in json.loads(plain.stdout)
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "Fine-tuning: QLoRA r8 fits 1 GPU at 1,024 tokens, batch 2" in text


# ---- the run on every GPU of the set (--finetune without one --gpu) ---------------------------------------------


def test_training_options_take_the_fewest_gpus_that_fit() -> None:
    from dataclasses import replace

    from benchmarks.vllm_accuracy import model_of
    from hubfit.fit.gpus import find_gpu
    from hubfit.fit.training import training_options
    from hubfit.sizing.training import TrainSettings, device_peak

    model = model_of("meta-llama/Llama-2-70b-hf")
    settings = TrainSettings("qlora", 16)
    devices = tuple(find_gpu(name) for name in ("RTX 3060", "RTX 4090", "H100", "M4 Max"))
    options = {o.gpu: o for o in training_options(model, settings, devices)}
    assert "Apple M4 Max 128GB" not in options
    for option in options.values():
        t = option.training
        assert t.device_bytes == device_peak(model, replace(settings, gpus=t.gpus, sharding=t.sharding))
        if t.fits and t.gpus > 1:  # half as many GPUs does not hold the step
            fewer = replace(settings, gpus=t.gpus // 2, sharding=t.sharding if t.gpus > 2 else None)
            assert device_peak(model, fewer) > option.memory_bytes
        assert t.fits == (t.device_bytes <= option.memory_bytes)
    assert options["H100 SXM 80GB"].training.gpus == 1  # 70B in NF4 with LoRA: one 80 GB card
    assert not options["RTX 3060 12GB"].training.fits and options["RTX 3060 12GB"].training.gpus == 8


def test_cli_finetune_without_a_gpu_prints_the_gpu_table(fake_hub: object) -> None:
    import json
    import subprocess
    import sys

    args = [sys.executable, "-m", "hubfit.cli", "meta-llama/Llama-2-70b-hf", "--token", "hf_granted"]
    args += ["--finetune", "qlora", "--lora-rank", "16"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "Fine-tuning: QLoRA r16 at 2,048 tokens, batch 1" in text
    # the answer asked for comes before the memory table
    assert text.index("Fine-tuning:") < text.index("Memory in GiB")
    data = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, check=True).stdout)
    assert "training" not in data
    h100 = next(o for o in data["training_options"] if o["gpu"] == "H100 SXM 80GB")
    assert h100["training"]["method"] == "qlora" and h100["training"]["fits"]
