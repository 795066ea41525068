"""Helpers for code running inside a ferry job: parameters, metrics, params,
tags and artifacts. They write JSON lines and files into the job's outputs
(/out = <jobdir>/outputs), which the tracker and the dashboard read; they
never talk to Redis.

Outside a job (no $FERRY_JOB_ID) they work locally, in ./ferry-local/ (or
$FERRY_LOCAL_DIR), say so once on stderr, and never create a job.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

# The tracker reads lines of up to 64 KiB (pkg/tracker: maxMetricLine).
MAX_LINE = 64 << 10

_lock = threading.Lock()
_warned = False
_fds: dict[str, int] = {}


def in_job() -> bool:
    """True inside a ferry job's sandbox."""
    return bool(os.environ.get("FERRY_JOB_ID"))


def _outdir() -> Path:
    global _warned
    if in_job():
        return Path(os.environ.get("FERRY_OUTPUTS") or "/out")
    d = Path(os.environ.get("FERRY_LOCAL_DIR") or "ferry-local")
    if not _warned:
        _warned = True
        sys.stderr.write(f"ferry: not inside a ferry job: metrics, params, tags and artifacts go to "
                         f"{d.resolve()}/ (nothing is submitted)\n")
        sys.stderr.flush()
    return d


def _plain(v: Any) -> Any:
    """numpy scalars and arrays (and anything with .item()/.tolist()) to plain Python."""
    if isinstance(v, (str, bool, int)) or v is None:
        return v
    if isinstance(v, float):
        return v
    tolist = getattr(v, "tolist", None)
    if callable(tolist) and type(v).__module__.startswith("numpy"):
        return tolist()
    item = getattr(v, "item", None)
    if callable(item) and type(v).__module__.startswith("numpy"):
        return item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v


def _finite(v: Any) -> Any:
    """JSON has no NaN or infinities (Go's decoder refuses them): send those as strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def _append(file: str, record: dict) -> None:
    """One JSON object per line, appended with a single write (O_APPEND)."""
    line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    if len(line) > MAX_LINE:
        raise ValueError(f"{file[:-6]} {record['name'][:60]!r}: {len(line)} bytes as JSON, over the "
                         f"{MAX_LINE // 1024} KiB a line may hold (the tracker skips longer lines); "
                         f"save large values with ferry.save_artifact instead")
    d = _outdir()
    path = str(d / file)
    with _lock:
        fd = _fds.get(path)
        if fd is None:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            _fds[path] = fd
        os.write(fd, line)


def _value(v: Any, what: str) -> Any:
    v = _finite(_plain(v))
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what}: {type(v).__name__} cannot be written as JSON ({e})") from None
    return v


def load_parameters(defaults: dict | None = None) -> dict:
    """The job's parameters (from --param/--params, a sweep point, ...), over
    `defaults`. Outside a job: ./ferry_params.json if there is one."""
    raw = None
    if in_job():
        raw = os.environ.get("FERRY_PARAMS")
        if raw is None:
            p = os.environ.get("FERRY_PARAMS_FILE", "/work/ferry_params.json")
            try:
                raw = Path(p).read_text()
            except OSError:
                raw = None
    else:
        _outdir()  # say once that we run locally
        p = Path("ferry_params.json")
        if p.exists():
            raw = p.read_text()
    params = json.loads(raw) if raw else {}
    if not isinstance(params, dict):
        raise ValueError(f"job parameters are not a JSON object: {raw[:100]!r}")
    out = dict(defaults or {})
    out.update(params)
    return out


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record a metric: a line {"name", "value", "step", "time"} in
    metrics.jsonl. numpy scalars and arrays are accepted; the name may hold
    any character; NaN and infinities are written as "NaN", "Infinity",
    "-Infinity"."""
    if not isinstance(name, str):
        name = str(name)
    if step is not None:
        step = int(_plain(step))
    _append("metrics.jsonl", {"name": name, "value": _value(value, f"metric {name!r}"),
                              "step": step, "time": time.time()})


def log_param(name: str, value: Any) -> None:
    """Record a parameter used by the run: a line in params.jsonl."""
    _append("params.jsonl", {"name": str(name), "value": _value(value, f"param {name!r}"),
                             "time": time.time()})


def set_tag(name: str, value: Any = "") -> None:
    """Tag the run: a line in tags.jsonl."""
    _append("tags.jsonl", {"name": str(name), "value": _value(value, f"tag {name!r}"),
                           "time": time.time()})


def save_artifact(path: str | os.PathLike, name: str | None = None) -> Path:
    """Copy a file or dir into the job's artifacts/ (it comes back with
    ``ferry get``); returns where it went."""
    src = Path(path)
    if not src.exists():
        raise FileNotFoundError(f"save_artifact: {src} does not exist")
    dest_dir = _outdir() / "artifacts"
    dest_dir.mkdir(parents=True, exist_ok=True)
    base = name or src.name
    if not base or base in (".", "..") or "/" in base:
        raise ValueError(f"save_artifact: bad artifact name {base!r}")
    dest = dest_dir / base
    if src.is_dir():
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest)
    else:
        tmp = dest_dir / f".{base}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return dest
