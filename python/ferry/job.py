"""Jobs: handles on ferry jobs, and waiting for them.

Completion is seen from the job dir on the shared /home: ``result.json``
(any job) or ``outputs/ferry_result.json`` (a function call), polled every
10 ms. ``ferry status`` is asked too, now and then, for jobs that end
without writing anything (cancelled while queued, lost).
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from . import _cli
from . import _payload as P
from ._display import Progress
from .errors import (FerryError, JobFailed, PayloadError, RemoteError, RemoteTraceback,
                     VersionMismatch)

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timeout", "out_of_memory",
                      "node_fail", "preempted", "lost"})
_COLORS = {"succeeded": "#1a7f37", "failed": "#cf222e", "cancelled": "#6e7781", "timeout": "#bc4c00",
           "out_of_memory": "#bc4c00", "node_fail": "#cf222e", "preempted": "#bc4c00", "lost": "#cf222e",
           "running": "#0969da", "queued": "#6e7781"}

POLL = 0.01  # seconds between looks at the job dirs


def _parse_time(s: str | None) -> datetime | None:
    if not s:
        return None
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def _short(job_id: str) -> str:
    return job_id[:10]


class Job:
    """A ferry job. ``ferry.submit`` returns one; ``Job(id)`` attaches to an
    existing job by its id (or a unique prefix, or its Slurm id)."""

    kind = "command"

    def __init__(self, id: str, *, dir: str | None = None, slurm_id: str | None = None,
                 project: str | None = None, params: dict | None = None, index: int | None = None,
                 sweep_id: str | None = None):
        self.id = id
        self.slurm_id = slurm_id
        self.project = project
        self.params = params
        self.index = index
        self.sweep_id = sweep_id
        self._final: dict | None = None  # terminal status seen through the CLI
        self._last_state = "submitted"
        if dir is None:
            st = self.status()
            dir = st.get("dir")
            self.id = st.get("id", id)
        self.dir = Path(dir) if dir else None

    @classmethod
    def _from_submit(cls, doc: dict, **kw) -> "Job":
        return cls(doc["id"], dir=doc.get("dir"), slurm_id=doc.get("slurm_id"),
                   project=doc.get("project"), **kw)

    # --- state ---------------------------------------------------------

    def status(self) -> dict:
        """``ferry status -o json``: state, reason, exit_code, node, times, ..."""
        st = _cli.run_json(["status", "-o", "json", self.id])
        self._note_status(st)
        return st

    def _note_status(self, st: dict) -> None:
        state = st.get("state", "")
        if state:
            self._last_state = state
        if self.slurm_id is None and st.get("slurm_id"):
            self.slurm_id = st["slurm_id"]
        if state in TERMINAL:
            self._final = st

    @property
    def state(self) -> str:
        """The job's current state (asks ferry)."""
        return self.status().get("state", "unknown")

    def _result_json(self) -> dict | None:
        if self.dir is None:
            return None
        try:
            return P.read_json(str(self.dir / "result.json"))
        except (OSError, ValueError):
            return None

    def _seen_done(self) -> bool:
        """True once the job dir shows the job is over (no CLI call)."""
        return self._final is not None or (self.dir is not None and (self.dir / "result.json").exists())

    def _local_state(self) -> str:
        """The state as far as the job dir and the last status call tell."""
        r = self._result_json()
        if r is not None and r.get("state"):
            return r["state"]
        return self._last_state

    def done(self) -> bool:
        """True when the job has ended (or, for a function call, its result is in)."""
        if self._seen_done():
            return True
        return self.status().get("state") in TERMINAL

    def wait(self, timeout: float | None = None, progress: bool | None = None) -> "Job":
        """Wait until the job ends; returns the job. Raises TimeoutError after
        `timeout` seconds. In a notebook a status line shows the progress."""
        wait_all([self], timeout=timeout, progress=progress)
        return self

    def _end(self) -> dict:
        """How the job ended: result.json, else the terminal status from ferry.
        A result.json the Slurm epilog wrote (the sandbox could not) is only
        what the worker saw: ferry status, which also asks Slurm, decides."""
        r = self._result_json()
        if r is not None and r.get("written_by") != "epilog":
            self._last_state = r.get("state", self._last_state)
            return r
        if self._final is None:
            try:
                self.status()
            except FerryError:
                pass
        if self._final is not None:
            return self._final
        return r if r is not None else {"state": self._last_state}

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return result.json (state, exit_code, node, times) if
        the job succeeded; raise JobFailed (with the log's tail) if not."""
        self.wait(timeout)
        end = self._end()
        if end.get("state") != "succeeded":
            raise self._failure(end)
        return end

    def _failure(self, end: dict, what: str = "job") -> JobFailed:
        state = end.get("state", "unknown")
        reason = end.get("reason", "")
        tail = self._log_tail()
        msg = f"{what} {self.id} ended {state}" + (f": {reason}" if reason else "")
        if tail:
            msg += "\n--- last lines of its log ---\n" + tail
        return JobFailed(msg, job_id=self.id, state=state, reason=reason,
                         exit_code=end.get("exit_code"), log_tail=tail)

    def _log_tail(self, n: int = 20) -> str:
        try:
            text = self.logs()
        except FerryError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-n:])

    # --- actions -------------------------------------------------------

    def logs(self, follow: bool = False) -> str | None:
        """The job's output (stdout and stderr). With follow=True, print it as
        it grows until the job ends, and return None."""
        if not follow:
            return _cli.run(["logs", self.id]).stdout
        import subprocess
        import sys
        with subprocess.Popen([_cli.ferry_bin(), "logs", "-f", self.id], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL) as p:
            assert p.stdout is not None
            for line in p.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
        return None

    def cancel(self) -> None:
        """``ferry cancel``: the job ends 'cancelled'."""
        _cli.run(["cancel", self.id])

    def outputs(self, dest: str | os.PathLike | None = None) -> Path:
        """``ferry get``: copy outputs/, log and result.json into dest (default
        ./ferry-<id>); returns the dir."""
        d = Path(dest) if dest is not None else Path(f"ferry-{_short(self.id)}")
        _cli.run(["get", self.id, "-o", str(d)])
        return d

    # --- display -------------------------------------------------------

    def _line_parts(self) -> tuple[str, str]:
        try:
            st = self.status()
        except FerryError as e:
            return "unknown", str(e)
        state = st.get("state", "unknown")
        bits = []
        if state not in TERMINAL and isinstance(self, FunctionJob) and self._seen_done():
            bits.append("result in (" + self._local_state() + ")")
        if st.get("reason"):
            bits.append(st["reason"])
        if state == "queued" and st.get("queue_position"):
            bits.append(f"number {st['queue_position']} of {st.get('queue_length', '?')} in the queue")
        est = _parse_time(st.get("est_start")) if state == "queued" else None
        if est:
            bits.append("Slurm expects it to start at " + est.astimezone().strftime("%H:%M"))
        if st.get("node"):
            bits.append("on " + st["node"])
        t0, t1 = _parse_time(st.get("started")), _parse_time(st.get("ended"))
        if t0 and t1:
            bits.append(f"ran {(t1 - t0).total_seconds():.1f} s")
        return state, " · ".join(bits)

    def __repr__(self) -> str:
        return f"<ferry.{type(self).__name__} {self.id}>"

    def _repr_html_(self) -> str:
        state, detail = self._line_parts()
        color = _COLORS.get(state, "#6e7781")
        slurm = f" · Slurm {html.escape(str(self.slurm_id))}" if self.slurm_id else ""
        name = html.escape(self.project or "")
        return (f'<div style="font-family:monospace">ferry {html.escape(self.kind)} '
                f'<code title="{html.escape(self.id)}">{html.escape(_short(self.id))}</code>'
                f'{" · " + name if name else ""}{slurm} · '
                f'<b style="color:{color}">{html.escape(state)}</b>'
                f'{" · " + html.escape(detail) if detail else ""}</div>')


class FunctionJob(Job):
    """A function call running in the sandbox (``ferry.run_async``, one
    element of ``ferry.map``). ``result()`` returns its value or re-raises
    its exception."""

    kind = "function"

    def __init__(self, *a, function: str = "", **kw):
        super().__init__(*a, **kw)
        self.function = function

    def _result_path(self) -> Path | None:
        return None if self.dir is None else self.dir / "outputs" / P.RESULT_META

    def _seen_done(self) -> bool:
        p = self._result_path()
        return (p is not None and p.exists()) or super()._seen_done()

    def _local_state(self) -> str:
        p = self._result_path()
        try:
            doc = P.read_json(str(p))
        except (OSError, ValueError, TypeError):
            return super()._local_state()
        return "returned" if doc.get("ok") else "raised"

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the function's value, or raise what it raised
        (same type, remote traceback as its __cause__)."""
        self.wait(timeout)
        return self._value()

    def _value(self) -> Any:
        p = self._result_path()
        doc = None
        if p is not None:
            try:
                doc = P.read_json(str(p))
            except (OSError, ValueError):
                doc = None
        if doc is None:
            end = self._end()
            raise self._failure(end, what=f"function {self.function or ''} in job".replace("  ", " "))
        if doc.get("ok"):
            import cloudpickle
            path = self.dir / "outputs" / doc.get("value_file", P.RESULT_VALUE)
            try:
                with open(path, "rb") as f:
                    return cloudpickle.load(f)
            except Exception as e:
                raise PayloadError(f"the result of {self.function or 'the function'} (job {self.id}) "
                                   f"came back but cannot be unpickled here: {type(e).__name__}: {e}") from e
        raise _remote_exception(doc, self)


def _find_type(module: str, qualname: str):
    import importlib
    import sys
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = importlib.import_module(module)
        except Exception:
            return None
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None


def _remote_exception(doc: dict, job: FunctionJob) -> BaseException:
    err = doc.get("error") or {}
    kind = err.get("kind", "exception")
    msg = err.get("message", "")
    tb = err.get("traceback") or ""
    where = f"job {job.id}" + (f", element {job.index}" if job.index is not None else "")
    if kind == "version_mismatch":
        return VersionMismatch(f"{where}: {msg}")
    if kind in ("payload", "result"):
        e = PayloadError(f"{where}: {msg}")
        if tb:
            e.__cause__ = RemoteTraceback(tb)
        return e
    exc = None
    if err.get("pickle_file") and job.dir is not None:
        try:
            import cloudpickle
            with open(job.dir / "outputs" / err["pickle_file"], "rb") as f:
                exc = cloudpickle.load(f)
            if not isinstance(exc, BaseException):
                exc = None
        except Exception:
            exc = None
    if exc is None:
        t = _find_type(err.get("module", ""), err.get("type", ""))
        if t is not None:
            try:
                exc = t(msg)
            except Exception:
                exc = None
    if exc is None:
        name = ".".join(x for x in (err.get("module"), err.get("type")) if x and x != "builtins")
        exc = RemoteError(f"{name}: {msg}", type_name=name)
    exc.__cause__ = RemoteTraceback(tb)
    try:
        exc.remote_traceback = tb
        exc.ferry_job_id = job.id
        if job.index is not None:
            exc.ferry_index = job.index
    except (AttributeError, TypeError):
        pass
    return exc


def wait_all(jobs: Iterable[Job], timeout: float | None = None, progress: bool | None = None,
             label: str | None = None) -> None:
    """Wait until every job is done; TimeoutError after `timeout` seconds."""
    jobs = list(jobs)
    pending = [j for j in jobs if not j._seen_done()]
    if not pending:
        return
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    bar = Progress(progress)
    cli_every, next_cli = 1.0, start + 1.0
    checker: threading.Thread | None = None  # ferry status, off the 10 ms poll
    failed = 0

    def line() -> str:
        el = bar.elapsed()
        if len(jobs) == 1:
            j = jobs[0]
            st = j._local_state() if not pending else j._last_state
            return f"ferry {j.kind} {_short(j.id)}: {st} · {el:.1f} s"
        done = len(jobs) - len(pending)
        states: dict[str, int] = {}
        for j in pending:
            states[j._last_state] = states.get(j._last_state, 0) + 1
        rest = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        return (f"{label or 'ferry'}: {done}/{len(jobs)} done" + (f" ({failed} failed)" if failed else "")
                + (f", {rest}" if rest else "") + f" · {el:.1f} s")

    while True:
        still = []
        for j in pending:
            if j._seen_done():
                if _looks_failed(j):
                    failed += 1
            else:
                still.append(j)
        pending = still
        if not pending:
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            bar.close(line() + " · timed out")
            raise TimeoutError(f"{len(pending)} of {len(jobs)} job(s) still running after {timeout} s "
                               f"(first: {pending[0].id})")
        if now >= next_cli and (checker is None or not checker.is_alive()):
            # Asking ferry takes tens of ms: in a thread, so that a result
            # file is still seen within one poll meanwhile.
            checker = threading.Thread(target=_cli_check, args=(list(pending),), daemon=True)
            checker.start()
            cli_every = min(cli_every * 1.5, 5.0)
            next_cli = now + cli_every
        bar.update(line)
        # ~1 µs per stat: poll many pending jobs a little less often.
        time.sleep(max(POLL, len(pending) * 2e-5))
    bar.close(line())


def _looks_failed(j: Job) -> bool:
    if isinstance(j, FunctionJob):
        p = j._result_path()
        try:
            return not P.read_json(str(p)).get("ok", False)
        except (OSError, ValueError, TypeError):
            pass
    r = j._result_json() or j._final or {}
    return r.get("state", "succeeded") != "succeeded"


def _cli_check(pending: list[Job]) -> None:
    """Ask ferry about jobs the job dirs say nothing about yet."""
    by_sweep: dict[str, list[Job]] = {}
    singles = []
    for j in pending:
        if j.sweep_id:
            by_sweep.setdefault(j.sweep_id, []).append(j)
        else:
            singles.append(j)
    for sid, js in by_sweep.items():
        try:
            doc = _cli.run_json(["sweep", "show", "-o", "json", sid])
        except FerryError:
            singles.extend(js[:5])
            continue
        states = {t.get("id"): t for t in doc.get("tasks") or []}
        for j in js:
            t = states.get(j.id)
            if t and t.get("state"):
                j._note_status(t)
    for j in singles[:10]:
        try:
            j.status()
        except FerryError:
            pass
