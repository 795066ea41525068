"""Running the ferry command line. The Python package drives the Go CLI
(``-o json``) and never reimplements it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Sequence

from .errors import BadInput, CLIError, JobNotFound, SlurmUnavailable

_CODES = {2: BadInput, 4: JobNotFound, 5: SlurmUnavailable}


def ferry_bin() -> str:
    """The ferry executable: $FERRY_BIN, else ``ferry`` on PATH, else /usr/local/bin/ferry."""
    b = os.environ.get("FERRY_BIN")
    if b:
        return b
    return shutil.which("ferry") or "/usr/local/bin/ferry"


def _message(stderr: str, args: Sequence[str], code: int) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    # ferry prints progress to stderr too; its error is the last "ferry: " line.
    msg = ""
    for ln in reversed(lines):
        if ln.startswith("ferry: ") or ln.startswith("Error: "):
            msg = ln.split(": ", 1)[1]
            break
    if not msg:
        msg = lines[-1] if lines else f"exited with code {code}"
    words = []
    for a in args[:2]:
        if a.startswith("-"):
            break
        words.append(a)
    return f"ferry {' '.join(words)}: {msg}".replace("ferry : ", "ferry: ")


def run(args: Sequence[str], *, timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ferry ARGS``; raise a CLIError subclass (by exit code) when it fails."""
    argv = [ferry_bin(), *args]
    try:
        cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CLIError(f"the ferry command was not found ({argv[0]}): install it, or set FERRY_BIN",
                       args=list(args), code=127) from None
    if check and cp.returncode != 0:
        cls = _CODES.get(cp.returncode, CLIError)
        raise cls(_message(cp.stderr, list(args), cp.returncode), args=list(args),
                  code=cp.returncode, stderr=cp.stderr)
    return cp


def run_json(args: Sequence[str], *, timeout: float | None = None) -> Any:
    """Run ``ferry ARGS`` (which must include ``-o json``) and decode its stdout."""
    cp = run(args, timeout=timeout)
    try:
        return json.loads(cp.stdout)
    except json.JSONDecodeError as e:
        raise CLIError(f"ferry {args[0] if args else ''}: could not read its JSON output ({e}): {cp.stdout[:200]!r}",
                       args=list(args), code=cp.returncode, stderr=cp.stderr) from None


def resource_flags(resources: dict) -> list[str]:
    """Turn keyword resources (cpus=2, mem="4G", env={...}) into submit flags."""
    flags: list[str] = []
    known = {"cpus", "mem", "gpus", "time", "image", "name", "partition", "network", "env"}
    unknown = sorted(set(resources) - known)
    if unknown:
        raise TypeError(f"unknown resource option(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(known))}")
    for k in ("cpus", "mem", "gpus", "time", "image", "name", "partition", "network"):
        v = resources.get(k)
        if v is None:
            continue
        flags += [f"--{k}", str(v)]
    env = resources.get("env") or {}
    for k, v in env.items():
        flags += ["--env", f"{k}={v}"]
    return flags
