"""Flags shared by the commands, declared once and handed to each command as one typed object.

An :class:`OptionGroup` is a set of click parameters and the function that builds one object from their parsed
values. As a decorator it adds the parameters to a command and calls the command with that object (keyword
``name``) in their place, so a command receives a few typed objects rather than one argument per flag, and the
commands that share flags cannot drift apart:

* the workload flags (``--context --batch --kv-dtype --precision --bpw --overhead``: a
  :class:`hubfit.sizing.Workload`) and the hardware flags (``--gpu --gpus --gpu-memory --apple-gpu-share``: a
  :class:`hubfit.fit.planner.HardwareQuery`) are declared once, with the functions that build those objects,
  and are part of two groups:
* :data:`report_options` (``analyze``, ``card``, ``comment``): ``--revision --token`` and the workload and
  hardware flags, as a :class:`ReportOptions` (``opts``) whose :meth:`~ReportOptions.analyze` builds the report;
* :data:`scan_options` (``scan``): ``--concurrency --refresh --retry-errors --token`` and the workload and
  hardware flags, as a :class:`hubfit.scan.runner.ScanOptions`; with ``scan``'s other groups,
  :data:`scan_query_options` (a :class:`hubfit.scan.runner.ScanQuery`), :data:`scan_output_options` (a
  :class:`ScanOutput`) and :data:`scan_apply_options` (a :class:`ScanApply`).

Values are checked when the object is built, before the command runs: an unknown GPU name or a bad size fails
before any Hub request. Heavy modules are imported only then, so ``hubfit --help`` stays fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import click

if TYPE_CHECKING:
    from hubfit.fit.gguf import GGUFQuery
    from hubfit.fit.planner import HardwareQuery
    from hubfit.report import Report
    from hubfit.scan.runner import ScanOptions, ScanQuery
    from hubfit.sizing import Workload
    from hubfit.sizing.training import TrainSettings
    from hubfit.sizing.vllm import ServeSettings
    from hubfit.source.hub import HubClient
    from hubfit.source.sources import Progress

__all__ = [
    "OptionGroup",
    "ReportOptions",
    "ScanApply",
    "ScanOutput",
    "report_options",
    "scan_apply_options",
    "scan_options",
    "scan_output_options",
    "scan_query_options",
]

T = TypeVar("T")
R = TypeVar("R")
#: A click parameter decorator (``click.option(...)``, ``click.argument(...)``).
Param = Callable[[Callable[..., Any]], Callable[..., Any]]


def _names(params: Sequence[Param]) -> tuple[str, ...]:
    """The keyword names click passes the values of ``params`` under."""

    def probe() -> None:  # pragma: no cover - never called
        pass

    for param in params:
        param(probe)
    found: list[click.Parameter] = getattr(probe, "__click_params__", [])
    return tuple(p.name for p in found if p.name)


class OptionGroup(Generic[T]):
    """Click parameters that a command receives as one object ``T``, built once from their parsed values.

    Args:
        name: the keyword the command receives the object under.
        params: the click parameters, in the order ``--help`` lists them.
        build: makes the object from the parsed values (keyed by parameter name); may raise
            :class:`~hubfit.errors.UsageError`.
    """

    def __init__(self, name: str, params: Sequence[Param], build: Callable[[Mapping[str, Any]], T]) -> None:
        self.name = name
        self.params = tuple(params)
        self.build = build
        self.names = _names(self.params)

    def __call__(self, fn: Callable[..., R]) -> Callable[..., R]:
        """Add the parameters to the command ``fn``, which is then called with ``name=build(values)``."""

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> R:
            values = {name: kwargs.pop(name) for name in self.names}
            kwargs[self.name] = self.build(values)
            return fn(*args, **kwargs)

        decorated: Callable[..., Any] = command
        for param in reversed(self.params):
            decorated = param(decorated)
        return cast("Callable[..., R]", decorated)


# ---- workload and hardware (in report_options and scan_options) ------------------------------------------------

_WORKLOAD: list[Param] = [
    click.option(
        "--context",
        type=int,
        help="Tokens per sequence (default 4096, capped at the model's maximum; 0: weights only).",
    ),
    click.option("--batch", type=int, default=1, show_default=True, help="Concurrent sequences."),
    click.option("--kv-dtype", help="KV-cache dtype: fp8, fp16, bf16 or fp32 (default: 16-bit)."),
    click.option(
        "--precision",
        "precisions",
        multiple=True,
        metavar="NAME",
        help="A precision row: stored, fp32, bf16, fp16, fp8, int8, int4, mxfp4, nvfp4 or a GGUF type "
        "(Q4_K ...); repeatable (default: stored fp32 bf16 int8 int4).",
    ),
    click.option(
        "--bpw", "bpws", type=float, multiple=True, help="A row at this average bits per weight (EXL2-style)."
    ),
    click.option(
        "--overhead", type=float, help="Seed formula: overhead = this fraction of the weights, no KV cache."
    ),
]

_HARDWARE: list[Param] = [
    click.option(
        "--gpu",
        "gpus",
        multiple=True,
        metavar="NAME",
        help="A GPU to fit on, matched forgivingly ('4090', 'h100 sxm'); repeatable (default: a curated set "
        "across consumer, workstation, data-centre and Apple). See `hubfit gpus`.",
    ),
    click.option(
        "--gpus", "gpu_count", type=int, help="A fixed number of devices (default: the fewest that fit)."
    ),
    click.option(
        "--gpu-memory",
        metavar="SIZE",
        help="Memory per device: 24GiB, 24GB, 24576MiB or 24 (GiB). Alone: a card the catalog does not "
        "list; with --gpu: overrides its memory.",
    ),
    click.option(
        "--apple-gpu-share",
        type=float,
        help="Share of unified memory the GPU may use on Apple silicon (default 0.75, macOS's default).",
    ),
]

_TOKEN: Param = click.option(
    "--token",
    envvar="HUBFIT_TOKEN",
    help="Hub token (default: HF_TOKEN or the `hf auth login` token); never printed.",
)


def _workload(values: Mapping[str, Any]) -> Workload:
    """The :class:`~hubfit.sizing.Workload` of the workload flags (checked: unknown precision, bad batch ...)."""
    from hubfit.sizing import Workload

    return Workload(
        context=values["context"],
        batch=values["batch"],
        kv_dtype=values["kv_dtype"],
        precisions=values["precisions"],
        bpw=values["bpws"],
        overhead=values["overhead"],
    )


def _hardware(values: Mapping[str, Any]) -> HardwareQuery:
    """The :class:`~hubfit.fit.planner.HardwareQuery` of the hardware flags.

    Raises:
        hubfit.errors.UsageError: an unknown GPU name or a bad size, before any Hub request.
    """
    from hubfit.fit.gpus import parse_size
    from hubfit.fit.planner import HardwareQuery

    memory = values["gpu_memory"]
    hardware = HardwareQuery(
        gpus=values["gpus"],
        count=values["gpu_count"],
        gpu_memory=parse_size(memory) if memory is not None else None,
        apple_gpu_share=values["apple_gpu_share"],
    )
    hardware.devices()
    return hardware


# ---- a report of one model (analyze, card, comment) ------------------------------------------------------


@dataclass(frozen=True)
class ReportOptions:
    """How to build one model's report: where to read it, and the memory and fit questions to answer.

    Attributes:
        revision: branch, tag, commit sha or ``refs/pr/N`` (Hub models; ``None``: main).
        token: the Hub token given (``None``: huggingface_hub finds one); never printed.
        workload: the memory table's workload.
        hardware: the GPU fit's query.
    """

    revision: str | None
    token: str | None = field(repr=False)
    workload: Workload
    hardware: HardwareQuery
    engine: ServeSettings | None = None
    gguf: GGUFQuery | None = None
    training: TrainSettings | None = None

    def analyze(
        self, model: str, *, client: HubClient | None = None, progress: Progress | None = None
    ) -> Report:
        """The report of ``model`` (a Hub repo id or a local directory): :func:`hubfit.pipeline.analyze`.

        The report's warnings (config.json against the checkpoint) go to stderr, one ``hubfit: warning:`` line
        each, whatever the output format.
        """
        from hubfit.pipeline import analyze

        report = analyze(
            model,
            revision=self.revision,
            token=self.token,
            progress=progress,
            client=client,
            workload=self.workload,
            hardware=self.hardware,
            engine=self.engine,
            gguf=self.gguf,
            training=self.training,
        )
        for warning in report.warnings:
            click.echo(f"hubfit: warning: {warning}", err=True)
        return report


# ---- fine-tuning (issue 18): --finetune and the run's flags -------------------------------------------------

_TRAINING: list[Param] = [
    click.option(
        "--finetune",
        type=click.Choice(["full", "lora", "dora", "qlora"]),
        help="Size one fine-tuning step on the one --gpu, or on each GPU of the set (with --precision bf16-true|bf16-mixed|fp16-mixed|fp32, "
        "--gpus N and --batch-size: the run's precision, GPUs and micro-batch).",
    ),
    click.option("--lora-rank", type=int, default=16, show_default=True),
    click.option(
        "--lora-targets",
        default="all-linear",
        show_default=True,
        help="all-linear or module names as PEFT matches them (q_proj,v_proj).",
    ),
    click.option("--no-double-quant", is_flag=True, help="QLoRA's NF4 without double-quantized constants."),
    click.option(
        "--optimizer",
        type=click.Choice(["adamw", "adamw-8bit", "paged-adamw", "paged-adamw-8bit", "sgd", "adafactor"]),
        default="adamw",
        show_default=True,
    ),
    click.option(
        "--seq-len", type=int, default=2048, show_default=True, help="Tokens per training sequence."
    ),
    click.option(
        "--grad-checkpointing", type=click.Choice(["on", "off", "offload"]), default="on", show_default=True
    ),
    click.option("--sharding", type=click.Choice(["ddp", "fsdp", "zero2", "zero3"])),
    click.option("--cpu-offload", is_flag=True, help="Optimizer states (and sharded parameters) on the CPU."),
    click.option("--attention", type=click.Choice(["sdpa", "eager"]), default="sdpa", show_default=True),
    click.option("--loss", type=click.Choice(["standard", "chunked"]), default="standard", show_default=True),
]


def _training(values: Mapping[str, Any]) -> TrainSettings | None:
    """The :class:`~hubfit.sizing.training.TrainSettings` of ``--finetune`` (``None`` without it). ``--precision``
    names the run's precision when it is one of the training ones; ``--batch-size`` (llama.cpp's n_batch
    otherwise) is the micro-batch when given."""
    if values["finetune"] is None:
        return None
    from hubfit.sizing.training import PRECISIONS, TrainSettings, parse_targets

    chosen = [p for p in values["precisions"] or () if p in PRECISIONS]
    ctx = click.get_current_context(silent=True)
    given = ctx is not None and ctx.get_parameter_source("n_batch") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    return TrainSettings(
        method=values["finetune"],
        lora_rank=values["lora_rank"],
        lora_targets=parse_targets(values["lora_targets"]),
        double_quant=not values["no_double_quant"],
        optimizer=values["optimizer"],
        precision=chosen[-1] if chosen else "bf16-mixed",
        batch_size=values["n_batch"] if given else 1,
        seq_len=values["seq_len"],
        grad_checkpointing=values["grad_checkpointing"],
        gpus=values["gpu_count"] or 1,
        sharding=values["sharding"],
        cpu_offload=values["cpu_offload"],
        attention=values["attention"],
        loss=values["loss"],
    )


# ---- serving engine (issue 17): the engine's own flag names ------------------------------------------------

_ENGINE: list[Param] = [
    click.option(
        "--engine",
        type=click.Choice(["vllm", "sglang", "llama.cpp", "transformers"]),
        help="Size as this engine allocates memory (vllm, sglang) on the one --gpu; llama.cpp: a GGUF file's "
        "buffers per device; transformers (default): hubfit's eager PyTorch model.",
    ),
    click.option(
        "--engine-version", help="The engine release modelled, e.g. 0.19 (default: the newest covered)."
    ),
    click.option(
        "--tensor-parallel-size", "--tp", "tensor_parallel_size", type=int, default=1, show_default=True
    ),
    click.option("--pipeline-parallel-size", type=int, default=1, show_default=True),
    click.option("--max-model-len", "--context-length", "max_model_len", help="Tokens per request, or auto."),
    click.option("--gpu-memory-utilization", "--mem-fraction-static", "gpu_memory_utilization", type=float),
    click.option("--max-num-seqs", type=int),
    click.option("--max-num-batched-tokens", type=int),
    click.option("--kv-cache-dtype", default="auto", show_default=True),
    click.option("--block-size", type=int),
    click.option("--enforce-eager", is_flag=True),
    click.option("--quantization", help="Online quantization of a 16-bit checkpoint (fp8 ...)."),
    click.option("--dtype", default="auto", show_default=True),
    click.option("--enable-expert-parallel", is_flag=True),
]


def _engine(values: Mapping[str, Any]) -> ServeSettings | None:
    """The :class:`~hubfit.sizing.vllm.ServeSettings` of the engine flags (``None`` for transformers)."""
    if values["engine"] in (None, "transformers", "llama.cpp"):
        return None
    from hubfit.errors import UsageError
    from hubfit.sizing.vllm import ServeSettings

    length = values["max_model_len"]
    if length is None or str(length).lower() == "auto":
        max_model_len = -1 if length is not None else None
    else:
        try:
            max_model_len = int(length)
        except ValueError:
            raise UsageError(f"--max-model-len must be a number or auto, got {length!r}") from None
    return ServeSettings(
        engine=values["engine"],
        version=values["engine_version"],
        tensor_parallel_size=values["tensor_parallel_size"],
        pipeline_parallel_size=values["pipeline_parallel_size"],
        max_model_len=max_model_len,
        gpu_memory_utilization=values["gpu_memory_utilization"],
        max_num_seqs=values["max_num_seqs"],
        max_num_batched_tokens=values["max_num_batched_tokens"],
        kv_cache_dtype=values["kv_cache_dtype"],
        block_size=values["block_size"],
        enforce_eager=values["enforce_eager"],
        quantization=values["quantization"],
        dtype=values["dtype"],
        enable_expert_parallel=values["enable_expert_parallel"],
    )


# ---- llama.cpp and GGUF repositories (issue 14): llama.cpp's own flag names ---------------------------------

_LLAMACPP: list[Param] = [
    click.option(
        "--file", "gguf_file", metavar="PATTERN", help="GGUF files to size (wildcards or a substring)."
    ),
    click.option(
        "--ctx-size", "ctx_size", type=int, help="llama.cpp's n_ctx (default: --context, else 4096)."
    ),
    click.option(
        "--n-gpu-layers", "--ngl", "n_gpu_layers", type=int, help="Layers offloaded (default: all)."
    ),
    click.option("--tensor-split", metavar="F,F,...", help="Fractions of the offloaded layers per GPU."),
    click.option("--flash-attn", is_flag=True, help="llama.cpp's flash attention."),
    click.option(
        "--llamacpp-version",
        type=click.Choice(["current", "2025-10", "legacy"]),
        default="current",
        show_default=True,
        help="The llama.cpp era sized, by how it pads n_ctx: current (since ggml-org/llama.cpp#17046, 256), "
        "2025-10 (#16812 to #17046, unpadded), legacy (#7257 to #16812, 32; 256 with flash attention).",
    ),
    click.option("--legacy-ctx-padding", is_flag=True, help="The same as --llamacpp-version legacy."),
    click.option("--cache-type-k", default="f16", show_default=True),
    click.option("--cache-type-v", default="f16", show_default=True),
    click.option("--batch-size", "n_batch", type=int, default=2048, show_default=True),
    click.option("--ubatch-size", "n_ubatch", type=int, default=512, show_default=True),
    click.option("--parallel", "n_parallel", type=int, default=1, show_default=True),
]


def _gguf(values: Mapping[str, Any]) -> GGUFQuery | None:
    """The :class:`~hubfit.fit.gguf.GGUFQuery` of the llama.cpp flags (``None``: none given)."""
    serve = values["engine"] == "llama.cpp"
    if (
        not serve
        and values["gguf_file"] is None
        and values["ctx_size"] is None
        and values["n_gpu_layers"] is None
    ):
        return None
    from hubfit.errors import UsageError
    from hubfit.fit.gguf import GGUFQuery
    from hubfit.sizing.llamacpp import LlamaCppSettings

    split = None
    if values["tensor_split"]:
        try:
            split = tuple(float(x) for x in str(values["tensor_split"]).split(","))
        except ValueError:
            raise UsageError(
                f"--tensor-split must be numbers separated by commas, got {values['tensor_split']!r}"
            ) from None
    ctx = values["ctx_size"] if values["ctx_size"] is not None else values["context"]
    settings = LlamaCppSettings(
        n_ctx=ctx or None,
        n_gpu_layers=values["n_gpu_layers"],
        gpus=len(split) if split else (values["gpu_count"] or 1),
        tensor_split=split,
        flash_attn=values["flash_attn"],
        legacy_ctx_padding=values["legacy_ctx_padding"],
        version=values["llamacpp_version"],
        type_k=values["cache_type_k"],
        type_v=values["cache_type_v"],
        n_batch=values["n_batch"],
        n_ubatch=values["n_ubatch"],
        n_seq=values["n_parallel"],
    )
    return GGUFQuery(settings=settings, pattern=values["gguf_file"], serve=serve)


def _report(values: Mapping[str, Any]) -> ReportOptions:
    training = _training(values)
    if training is not None:  # the training precision names are not memory-table rows
        from hubfit.sizing.training import PRECISIONS

        rows = tuple(p for p in values["precisions"] or () if p not in PRECISIONS)
        values = {**values, "precisions": rows, "gpu_count": None}
    return ReportOptions(
        values["revision"],
        values["token"],
        _workload(values),
        _hardware(values),
        _engine(values),
        _gguf(values),
        training,
    )


#: ``--revision --token``, the workload and the hardware flags as ``opts``: a ReportOptions.
report_options: OptionGroup[ReportOptions] = OptionGroup(
    "opts",
    [
        click.option("--revision", help="Branch, tag, commit sha or refs/pr/N (Hub models; default main)."),
        _TOKEN,
        *_WORKLOAD,
        *_HARDWARE,
        *_ENGINE,
        *_LLAMACPP,
        *_TRAINING,
    ],
    _report,
)


# ---- scan ------------------------------------------------------------------------------------------------


def _scan_query(values: Mapping[str, Any]) -> ScanQuery:
    from hubfit.scan.runner import ScanQuery

    return ScanQuery(
        values["author"],
        search=values["search"],
        filters=values["filters"],
        limit=values["limit"],
        gated=values["gated"],
    )


#: ``AUTHOR --search --filter --limit --gated`` as ``query``: a ScanQuery (which models to scan).
scan_query_options: OptionGroup[ScanQuery] = OptionGroup(
    "query",
    [
        click.argument("author"),
        click.option("--search", help="Only models whose id contains this text."),
        click.option(
            "--filter",
            "filters",
            multiple=True,
            metavar="TAG",
            help="Only models with this Hub tag (repeatable).",
        ),
        click.option("--limit", type=int, help="At most this many models from the listing."),
        click.option(
            "--gated",
            type=click.Choice(["include", "skip"]),
            default="include",
            show_default=True,
            help="Analyse gated models (needs a token with access) or leave them out.",
        ),
    ],
    _scan_query,
)


def _scan_options(values: Mapping[str, Any]) -> ScanOptions:
    from hubfit.scan.runner import DEFAULT_CONCURRENCY, ScanOptions

    return ScanOptions(
        concurrency=values["concurrency"] or DEFAULT_CONCURRENCY,
        token=values["token"],
        workload=_workload(values),
        hardware=_hardware(values),
        refresh=values["refresh"],
        retry_errors=values["retry_errors"],
    )


#: ``--concurrency --refresh --retry-errors --token``, the workload and the hardware flags as ``options``:
#: a ScanOptions (how to scan; the workload and hardware are part of the cache key).
scan_options: OptionGroup[ScanOptions] = OptionGroup(
    "options",
    [
        click.option("--concurrency", type=int, default=None, help="Models analysed at once (default 4)."),
        click.option("--refresh", is_flag=True, help="Analyse every model again, ignoring cached results."),
        click.option(
            "--retry-errors", is_flag=True, help="Also retry models whose failure was recorded as permanent."
        ),
        _TOKEN,
        *_WORKLOAD,
        *_HARDWARE,
    ],
    _scan_options,
)


@dataclass(frozen=True)
class ScanOutput:
    """Where a scan's results go.

    Attributes:
        db: the cache database (``None``: ``$HF_HOME/hubfit/scan.sqlite``).
        fmt: ``table``, ``csv``, ``json``, ``jsonl`` or ``md``.
        path: a file for the results (``--output``; ``None``: stdout).
        html: a file for a self-contained HTML report as well.
        quiet: no progress on stderr.
    """

    db: str | None
    fmt: str
    path: str | None
    html: str | None
    quiet: bool


#: ``--db --format --output --html --quiet`` as ``output``: a ScanOutput.
scan_output_options: OptionGroup[ScanOutput] = OptionGroup(
    "output",
    [
        click.option(
            "--db",
            type=click.Path(dir_okay=False),
            help="Cache database (default $HF_HOME/hubfit/scan.sqlite).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["table", "csv", "json", "jsonl", "md"]),
            default="table",
            show_default=True,
            help="Output format.",
        ),
        click.option(
            "--output", "-o", type=click.Path(dir_okay=False), help="Write the output to FILE, not stdout."
        ),
        click.option(
            "--html", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report to FILE."
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress on stderr."),
    ],
    lambda v: ScanOutput(v["db"], v["fmt"], v["output"], v["html"], v["quiet"]),
)


@dataclass(frozen=True)
class ScanApply:
    """What to publish to every analysed repo after a scan.

    Attributes:
        target: ``"card"`` (the model-card section), ``"comment"`` (a discussion comment) or ``None``.
        yes: write (otherwise only say what would be written).
        direct: with ``card``, commit to main instead of opening a pull request.
        pause_s: seconds between two writes (``None``: the default).
        max_writes: stop after this many writes.
    """

    target: str | None
    yes: bool
    direct: bool
    pause_s: float | None
    max_writes: int | None


#: ``--apply --yes --commit --pause --max-writes`` as ``publish``: a ScanApply.
scan_apply_options: OptionGroup[ScanApply] = OptionGroup(
    "publish",
    [
        click.option(
            "--apply",
            type=click.Choice(["card", "comment"]),
            help="Publish to every analysed repo: the model-card section or a discussion comment (dry run "
            "unless --yes).",
        ),
        click.option(
            "--yes", is_flag=True, help="With --apply: write (default: only say what would be written)."
        ),
        click.option(
            "--commit", "direct", is_flag=True, help="With --apply card: commit to main instead of a PR."
        ),
        click.option("--pause", type=float, help="With --apply: seconds between two writes (default 10)."),
        click.option("--max-writes", type=int, help="With --apply: stop after this many writes."),
    ],
    lambda v: ScanApply(v["apply"], v["yes"], v["direct"], v["pause"], v["max_writes"]),
)
