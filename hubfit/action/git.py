"""The Git plumbing of the Action: the checkout's top, and the model directory at another commit.

The pull request's base is read from the checkout's Git objects (``git ls-tree`` / ``git cat-file``), never
through a work tree: Git LFS files stay pointer files (no smudge filter runs), so nothing large is written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from hubfit.errors import HubfitError

__all__ = ["ensure_commit", "git", "git_toplevel", "write_tree"]


def git(args: list[str], cwd: Path, *, stdin: bytes | None = None) -> bytes:
    """Run git; :class:`HubfitError` with git's first error line when it fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise HubfitError(f"git {args[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[0]
        raise HubfitError(f"git {args[0]} failed: {first}")
    return done.stdout


def git_toplevel(directory: Path) -> Path | None:
    """The top of the Git checkout containing ``directory``, or ``None``."""
    try:
        return Path(git(["rev-parse", "--show-toplevel"], directory).decode().strip())
    except HubfitError:
        return None


def ensure_commit(top: Path, sha: str) -> None:
    """Make sure ``sha`` is in the local object store, fetching that one commit (depth 1) when not.

    ``actions/checkout`` fetches one commit by default and keeps its credentials for ``origin``.

    Raises:
        HubfitError: the commit cannot be had, or ``sha`` is not a full commit id (it would reach git's
            command line: ``--upload-pack=...`` must not be read as an option).
    """
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        raise HubfitError(f"the event names base commit {sha!r:.80}, which is not a full commit id")
    try:
        git(["cat-file", "-e", f"{sha}^{{commit}}"], top)
    except HubfitError:
        git(["fetch", "--no-tags", "--no-recurse-submodules", "--depth=1", "origin", sha], top)


def write_tree(top: Path, sha: str, subdir: str, dest: Path) -> int:
    """Write the files under ``subdir`` of commit ``sha`` into ``dest`` exactly as Git stores them.

    Git LFS files stay pointer files (no smudge filter runs), so nothing large is written. Symlinks and
    submodules are skipped. Returns the number of files written.
    """
    spec = [subdir.rstrip("/") + "/"] if subdir not in ("", ".") else []
    listing = git(["ls-tree", "-r", "-z", "--full-tree", sha, "--", *spec], top)
    blobs: list[tuple[str, str]] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            blobs.append((oid, raw_path.decode("utf-8", "surrogateescape")))
    if not blobs:
        return 0
    data = git(["cat-file", "--batch"], top, stdin="".join(f"{oid}\n" for oid, _ in blobs).encode())
    pos = 0
    prefix = spec[0] if spec else ""
    for oid, path in blobs:
        newline = data.index(b"\n", pos)
        got_oid, _, size = data[pos:newline].decode().split()
        if got_oid != oid:
            raise HubfitError(f"git cat-file answered {got_oid} for {oid}")
        start = newline + 1
        target = (dest / path[len(prefix) :]).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise HubfitError(f"the base commit has a path outside its directory: {path!r:.200}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[start : start + int(size)])
        pos = start + int(size) + 1
    return len(blobs)
