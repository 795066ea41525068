"""The payload format: how a function call travels to the sandbox and its
result comes back, as files.

In the submitted project dir (it becomes the job's bundle, unpacked at /work):

``ferry_payload.json``
    ``{"format": "ferry-payload/1", "kind": "call" | "map", "python": "3.11",
    "python_full": "3.11.2", "cloudpickle": "2.2.0", "ferry": "0.1.0",
    "function": "module.qualname", "count": N, "items": {...}}``. Plain JSON, read first, so
    the sandbox checks the versions before it unpickles anything.
``ferry_payload.pkl``
    cloudpickle of ``{"fn": fn, "args": args, "kwargs": kwargs}`` (call) or
    ``{"fn": fn}`` (map).
``ferry_items.pkl`` (map only)
    every item pickled on its own, back to back; ``ferry_payload.json``
    holds ``"items": {"file": "ferry_items.pkl", "offsets": [[offset,
    length], ...]}``. Task i (its params hold ``__ferry_index: i``) unpickles
    only item i and calls ``fn(item)``.

In the job's outputs dir (``/out`` in the sandbox, ``<jobdir>/outputs``):

``ferry_result.pkl`` / ``ferry_exception.pkl``
    cloudpickle of the return value, or of the exception (best effort).
``ferry_result.json``
    written last and atomically (temp file, fsync, rename): it is the commit
    point the notebook polls for. ``{"format": "ferry-result/1", "ok": true,
    "value_file": "ferry_result.pkl", ...}`` or ``{"ok": false, "error":
    {"kind": "exception" | "version_mismatch" | "payload" | "result",
    "type": "ValueError", "module": "builtins", "message": "...",
    "traceback": "...", "pickle_file": "ferry_exception.pkl" | null}}``.
"""

from __future__ import annotations

import json
import os
import sys

PAYLOAD_FORMAT = "ferry-payload/1"
RESULT_FORMAT = "ferry-result/1"
PAYLOAD_META = "ferry_payload.json"
PAYLOAD_PICKLE = "ferry_payload.pkl"
PAYLOAD_ITEMS = "ferry_items.pkl"
RESULT_META = "ferry_result.json"
RESULT_VALUE = "ferry_result.pkl"
RESULT_EXCEPTION = "ferry_exception.pkl"
INDEX_PARAM = "__ferry_index"


def python_version() -> str:
    return "%d.%d" % sys.version_info[:2]


def cloudpickle_version() -> str:
    try:
        import cloudpickle
    except ImportError:
        return "none"
    return getattr(cloudpickle, "__version__", "unknown")


def _major_minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def versions() -> dict:
    from . import __version__
    return {
        "python": python_version(),
        "python_full": sys.version.split()[0],
        "cloudpickle": cloudpickle_version(),
        "ferry": __version__,
    }


def check_versions(meta: dict) -> str | None:
    """Compare a payload's recorded versions with this interpreter's.

    Returns None when they match, else a message that names both versions.
    Python must match in major.minor (pickled code objects depend on it);
    cloudpickle must match in major.minor too.
    """
    mine = versions()
    problems = []
    if meta.get("python") != mine["python"]:
        problems.append(
            f"Python {meta.get('python_full') or meta.get('python')} in the notebook but "
            f"Python {mine['python_full']} in the sandbox (major.minor must match: "
            f"{meta.get('python')} != {mine['python']})")
    theirs_cp = str(meta.get("cloudpickle", ""))
    if _major_minor(theirs_cp) != _major_minor(mine["cloudpickle"]):
        problems.append(
            f"cloudpickle {theirs_cp} in the notebook but cloudpickle {mine['cloudpickle']} "
            f"in the sandbox")
    if not problems:
        return None
    return ("version mismatch: " + "; ".join(problems) +
            ". Use a notebook kernel with the sandbox's versions (Debian's /usr/bin/python3 "
            "and python3-cloudpickle), or a sandbox image that matches the notebook.")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write data to path atomically: temp file in the same dir, fsync, rename, fsync dir."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(d)


def write_payload(dirpath: str, kind: str, data: bytes, *, function: str = "",
                  items: tuple[bytes, list] | None = None) -> dict:
    """Write the pickled payload into dirpath and record the versions beside
    it; a map's items go to one file, each pickled on its own, so a task
    unpickles only its own item."""
    meta = {"format": PAYLOAD_FORMAT, "kind": kind, **versions(), "function": function}
    if items is not None:
        blob, offsets = items
        with open(os.path.join(dirpath, PAYLOAD_ITEMS), "wb") as f:
            f.write(blob)
        meta["count"] = len(offsets)
        meta["items"] = {"file": PAYLOAD_ITEMS, "offsets": offsets}
    with open(os.path.join(dirpath, PAYLOAD_PICKLE), "wb") as f:
        f.write(data)
    with open(os.path.join(dirpath, PAYLOAD_META), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
        f.write("\n")
    return meta


def read_item(dirpath: str, meta: dict, index: int) -> bytes:
    """The pickled bytes of a map's item `index`."""
    offset, length = meta["items"]["offsets"][index]
    with open(os.path.join(dirpath, meta["items"]["file"]), "rb") as f:
        f.seek(offset)
        b = f.read(length)
    if len(b) != length:
        raise ValueError(f"{meta['items']['file']} is truncated at item {index}")
    return b


def read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())
