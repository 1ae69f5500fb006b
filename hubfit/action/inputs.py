"""The Action's inputs (``INPUT_*``) and what the runner tells the step (``GITHUB_*``, the event payload)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfit.errors import UsageError

__all__ = ["PULL_REQUEST_EVENTS", "ActionInputs", "FitTarget", "RunnerContext"]

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


#: Characters no input may hold: a line break or another control character could end a log line and start a
#: workflow command (``::set-output``, ``::add-mask``) or a forged line in the step's log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_SECRETS = ("hf-token", "github-token")
#: A Hub repo id: ``owner/name`` of letters, digits, ``-``, ``_`` and ``.`` (huggingface_hub's validation).
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _one_line(name: str, value: str, *, lists: bool = False) -> str:
    """``value`` when it holds no control character (``lists``: line breaks separate items, as commas do).

    Raises:
        UsageError: naming the input; a secret's value is never shown.
    """
    text = re.sub(r"\r\n|\r|\n", ",", value) if lists else value
    if _CONTROL.search(text):
        shown = "its value is not shown" if name in _SECRETS else f"got {value!r:.80}"
        raise UsageError(f"input {name} must be one line without control characters ({shown})")
    return text


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise UsageError(f"input {name} must be true or false, got {value!r}")


def _int(name: str, value: str, *, minimum: int) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise UsageError(f"input {name} must be a whole number of at least {minimum}, got {value!r}")
    return int(text)


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class FitTarget:
    """A ``fail-if-exceeds`` target: ``count`` GPUs named ``gpu`` at ``precision`` ("1x RTX 4090 @ int4")."""

    count: int
    gpu: str
    precision: str

    @classmethod
    def parse(cls, text: str) -> FitTarget:
        """Parse ``"[N x] GPU @ PRECISION"`` (``x`` or ``×``; the count defaults to 1).

        Raises:
            UsageError: the text does not have that shape.
        """
        match = re.fullmatch(r"\s*(?:(\d+)\s*[x×]\s+)?(.+?)\s*@\s*([A-Za-z0-9_.]+)\s*", text)
        if (
            not match
            or (match.group(1) is not None and int(match.group(1)) < 1)
            or re.fullmatch(r"\d+\s*[x×]", match.group(2))
        ):
            raise UsageError(
                f"fail-if-exceeds must look like '1x RTX 4090 @ int4' (count, GPU, precision), got {text!r}"
            )
        return cls(int(match.group(1) or 1), match.group(2), match.group(3))

    def __str__(self) -> str:
        return f"{self.count}x {self.gpu} @ {self.precision}"


@dataclass(frozen=True)
class ActionInputs:
    """The action's inputs, validated (see ``action.yml`` for their meaning)."""

    model: str = "."
    hub_repo: str | None = None
    revision: str | None = None
    context: int | None = None
    batch: int | None = None
    gpus: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    engine: str | None = None
    engine_version: str | None = None
    max_model_len: int | None = None
    comment: bool = True
    update_card: str = "false"
    hf_token: str | None = field(default=None, repr=False)
    github_token: str | None = field(default=None, repr=False)
    fail_if_exceeds: FitTarget | None = None
    report_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionInputs:
        """Read ``INPUT_*`` variables (``INPUT_HUB_REPO`` for ``hub-repo`` ...).

        Raises:
            UsageError: an input has an invalid value.
        """

        def get(name: str) -> str:
            value = env.get(f"INPUT_{name.upper().replace('-', '_')}", "").strip()
            return _one_line(name, value, lists=name in ("gpus", "precisions"))

        update_card = get("update-card").lower() or "false"
        if update_card not in ("false", "pr", "commit"):
            raise UsageError(f"input update-card must be false, pr or commit, got {update_card!r}")
        target = get("fail-if-exceeds")
        engine = get("engine").lower() or None
        if engine not in (None, "vllm", "sglang"):
            raise UsageError(f"input engine must be vllm or sglang, got {engine!r:.40}")
        length = get("max-model-len").lower()
        max_model_len = -1 if length == "auto" else _int("max-model-len", length, minimum=1)
        hub_repo = get("hub-repo")
        if hub_repo and (not _REPO_ID.fullmatch(hub_repo) or ".." in hub_repo):
            raise UsageError(f"input hub-repo must be a Hub repo id like org/name, got {hub_repo!r:.80}")
        return cls(
            model=get("model") or ".",
            hub_repo=hub_repo or None,
            revision=get("revision") or None,
            context=_int("context", get("context"), minimum=0),
            batch=_int("batch", get("batch"), minimum=1),
            gpus=_list(get("gpus")),
            precisions=_list(get("precisions")),
            engine=engine,
            engine_version=get("engine-version") or None,
            max_model_len=max_model_len,
            comment=_flag("comment", get("comment") or "true"),
            update_card=update_card,
            hf_token=get("hf-token") or None,
            github_token=get("github-token") or None,
            fail_if_exceeds=FitTarget.parse(target) if target else None,
            report_dir=get("report-dir") or None,
        )


@dataclass(frozen=True)
class RunnerContext:
    """What the GitHub runner tells a step, from its environment variables."""

    event_name: str
    event: dict[str, Any]
    workspace: Path
    repository: str
    server_url: str
    api_url: str
    sha: str
    ref: str
    run_url: str | None
    summary_path: Path | None
    output_path: Path | None
    out_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerContext:
        """Read the ``GITHUB_*`` and ``RUNNER_TEMP`` variables and the event payload.

        Raises:
            UsageError: the event payload cannot be read.
        """
        event: dict[str, Any] = {}
        if env.get("GITHUB_EVENT_PATH"):
            try:
                event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the event payload GITHUB_EVENT_PATH: {exc}") from None
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repository = env.get("GITHUB_REPOSITORY", "")
        run_url = None
        if repository and env.get("GITHUB_RUN_ID"):
            run_url = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}"
        temp = env.get("RUNNER_TEMP") or tempfile.gettempdir()
        return cls(
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event if isinstance(event, dict) else {},
            workspace=Path(env.get("GITHUB_WORKSPACE") or os.getcwd()),
            repository=repository,
            server_url=server,
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA", ""),
            ref=env.get("GITHUB_REF", ""),
            run_url=run_url,
            summary_path=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output_path=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            out_dir=Path(env.get("HUBFIT_OUT_DIR") or Path(temp, "hubfit")),
        )

    @property
    def pull_request(self) -> dict[str, Any] | None:
        """The ``pull_request`` object of a pull request event."""
        if self.event_name in PULL_REQUEST_EVENTS:
            pr = self.event.get("pull_request")
            return pr if isinstance(pr, dict) else None
        return None

    @property
    def from_fork(self) -> bool:
        """Whether the pull request comes from another repository (its token is read-only, no secrets)."""
        pr = self.pull_request or {}
        head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        base = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
        return bool(head and base and head != base)

    @property
    def on_default_branch(self) -> bool:
        """A push to the default branch, a scheduled run (always on it) or a manual run on it."""
        if self.event_name == "schedule":
            return True
        if self.event_name not in ("push", "workflow_dispatch"):
            return False
        default = (self.event.get("repository") or {}).get("default_branch")
        return bool(default) and (self.event.get("ref") or self.ref) == f"refs/heads/{default}"
