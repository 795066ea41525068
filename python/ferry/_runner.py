"""Runs a function payload inside the sandbox: ``python3 -m ferry._runner``.

It reads ``ferry_payload.json`` from the working dir (/work, or
$FERRY_PAYLOAD_DIR), refuses at once when the notebook's Python or
cloudpickle version differs from its own, unpickles the function, calls it,
and writes the outcome to $FERRY_OUTPUTS (/out): the value or the exception
pickle first, then ``ferry_result.json`` atomically. Exit codes: 0 the call
returned, 1 it raised, 2 the payload could not be run (versions, unpickling,
an unpicklable result).
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import _payload as P


def _exc_info(exc: BaseException, kind: str, message: str | None = None) -> dict:
    import traceback
    t = type(exc)
    return {
        "kind": kind,
        "type": t.__qualname__,
        "module": t.__module__,
        "message": message if message is not None else str(exc),
        "traceback": "".join(traceback.format_exception(t, exc, exc.__traceback__)),
        "pickle_file": None,
    }


class Runner:
    def __init__(self, workdir: str, outdir: str, params: dict):
        self.workdir = workdir
        self.outdir = outdir
        self.params = params
        self.started = time.time()

    def _common(self) -> dict:
        return {
            "format": P.RESULT_FORMAT,
            **P.versions(),
            "node": os.environ.get("FERRY_NODE") or os.uname().nodename,
            "job_id": os.environ.get("FERRY_JOB_ID", ""),
            "duration_s": round(time.time() - self.started, 6),
        }

    def write_ok(self, value_bytes: bytes) -> None:
        P.atomic_write(os.path.join(self.outdir, P.RESULT_VALUE), value_bytes)
        doc = {**self._common(), "ok": True, "value_file": P.RESULT_VALUE}
        P.atomic_write(os.path.join(self.outdir, P.RESULT_META), json.dumps(doc).encode())

    def write_error(self, err: dict, exc: BaseException | None = None) -> None:
        if exc is not None:
            try:
                import cloudpickle
                data = cloudpickle.dumps(exc)
            except Exception:
                data = None
            if data is not None:
                P.atomic_write(os.path.join(self.outdir, P.RESULT_EXCEPTION), data)
                err["pickle_file"] = P.RESULT_EXCEPTION
        doc = {**self._common(), "ok": False, "error": err}
        P.atomic_write(os.path.join(self.outdir, P.RESULT_META), json.dumps(doc).encode())
        # The same story in the job's log, for `ferry logs`.
        sys.stderr.write(err.get("traceback") or ("ferry: " + err["message"] + "\n"))
        sys.stderr.flush()

    def fail(self, kind: str, message: str, exc: BaseException | None = None) -> int:
        if exc is not None:
            err = _exc_info(exc, kind, message)
        else:
            err = {"kind": kind, "type": "", "module": "", "message": message,
                   "traceback": "", "pickle_file": None}
        self.write_error(err)
        return 2

    def run(self) -> int:
        meta_path = os.path.join(self.workdir, P.PAYLOAD_META)
        try:
            meta = P.read_json(meta_path)
        except (OSError, ValueError) as e:
            return self.fail("payload", f"no readable function payload at {meta_path}: {e}")
        if meta.get("format") != P.PAYLOAD_FORMAT:
            return self.fail("payload", f"payload format {meta.get('format')!r} is not the sandbox's "
                             f"{P.PAYLOAD_FORMAT!r}: the notebook's ferry package and the image's differ")
        problem = P.check_versions(meta)
        if problem:
            return self.fail("version_mismatch", problem)
        try:
            import cloudpickle
            with open(os.path.join(self.workdir, P.PAYLOAD_PICKLE), "rb") as f:
                payload = cloudpickle.load(f)
        except BaseException as e:  # noqa: BLE001 - reported to the notebook
            return self.fail("payload", f"could not unpickle {meta.get('function') or 'the function'} in the "
                             f"sandbox: {type(e).__name__}: {e} (a module it uses may be missing from the image: "
                             f"pass its project dir, or import it inside the function)", e)
        fn = payload["fn"]
        if meta.get("kind") == "map":
            try:
                index = int(self.params[P.INDEX_PARAM])
                raw = P.read_item(self.workdir, meta, index)
            except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
                return self.fail("payload", f"map task without a valid {P.INDEX_PARAM} parameter or item "
                                 f"(params {self.params!r}): {type(e).__name__}: {e}")
            try:
                args, kwargs = (cloudpickle.loads(raw),), {}
            except BaseException as e:  # noqa: BLE001
                return self.fail("payload", f"could not unpickle input {index} of {meta.get('function')} in the "
                                 f"sandbox: {type(e).__name__}: {e}", e)
        else:
            args, kwargs = payload.get("args", ()), payload.get("kwargs", {})
        del payload
        try:
            value = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt travel too
            self.write_error(_exc_info(e, "exception"), e)
            return 1
        try:
            data = cloudpickle.dumps(value)
        except BaseException as e:  # noqa: BLE001
            return self.fail("result", f"{meta.get('function') or 'the function'} returned a "
                             f"{type(value).__module__}.{type(value).__qualname__} that cannot be "
                             f"pickled: {type(e).__name__}: {e}", e)
        self.write_ok(data)
        return 0


def _params() -> dict:
    raw = os.environ.get("FERRY_PARAMS")
    if raw is None:
        path = os.environ.get("FERRY_PARAMS_FILE", "ferry_params.json")
        try:
            with open(path) as f:
                raw = f.read()
        except OSError:
            raw = "{}"
    try:
        v = json.loads(raw or "{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def main() -> int:
    workdir = os.environ.get("FERRY_PAYLOAD_DIR") or os.getcwd()
    outdir = os.environ.get("FERRY_OUTPUTS") or "/out"
    if workdir not in sys.path:
        sys.path.insert(0, workdir)  # the project's own modules
    return Runner(workdir, outdir, _params()).run()


if __name__ == "__main__":
    sys.exit(main())
