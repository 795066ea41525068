"""Running Python functions and project dirs on the cluster."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from typing import Any, Callable, Iterable, Sequence

from . import _cli
from . import _payload as P
from .errors import PayloadError
from .job import FunctionJob, Job, wait_all

RUNNER = ["python3", "-m", "ferry._runner"]


def _command(command: str | Sequence[str] | None) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(c) for c in command]


def submit(dir: str | os.PathLike, command: str | Sequence[str] | None = None, params: dict | None = None,
           **resources: Any) -> Job:
    """Pack `dir` and run `command` (a list, or a string split like a shell
    would; None: job.yaml's command) as a ferry job. `params` reach the
    program as /work/ferry_params.json and $FERRY_PARAMS. Resources: cpus,
    mem ("4G"), gpus, time ("10m"), image, name, partition, network, env."""
    args = ["submit", "-o", "json", *_cli.resource_flags(resources)]
    tmp = None
    try:
        if params:
            fd, tmp = tempfile.mkstemp(prefix="ferry-params-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(params, f, default=_json_default)
            args += ["--params", tmp]
        args.append(os.fspath(dir))
        cmd = _command(command)
        if cmd:
            args += ["--", *cmd]
        doc = _cli.run_json(args)
    finally:
        if tmp:
            os.unlink(tmp)
    return Job._from_submit(doc, params=params)


def _json_default(o: Any) -> Any:
    from .tracking import _plain
    v = _plain(o)
    if v is o:
        raise TypeError(f"{type(o).__name__} is not JSON serializable")
    return v


_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def _default_project() -> str:
    from ._display import in_notebook
    if in_notebook():
        return "notebook"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = os.path.basename(argv0)[:-3] if argv0.endswith(".py") else ""
    stem = _NAME_RE.sub("-", stem).strip("-._")
    return stem or "python"


def _fn_name(fn: Callable) -> str:
    mod = getattr(fn, "__module__", None) or ""
    qn = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"{mod}.{qn}" if mod and mod != "__main__" else qn


def _explain_unpicklable(fn: Callable, what: str, err: Exception) -> str:
    """Name the closure variable or global that does not pickle, when we can."""
    import cloudpickle
    culprits = []
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    if code is not None:
        for name, cell in zip(code.co_freevars, cells):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            try:
                cloudpickle.dumps(value)
            except Exception:
                culprits.append(f"the closure variable '{name}' (a {type(value).__module__}."
                                f"{type(value).__qualname__})")
        g = getattr(fn, "__globals__", {})
        for name in code.co_names:
            if name in g and not isinstance(g[name], type(sys)):
                try:
                    cloudpickle.dumps(g[name])
                except Exception:
                    culprits.append(f"the global '{name}' (a {type(g[name]).__module__}."
                                    f"{type(g[name]).__qualname__})")
    where = ("it refers to " + ", ".join(culprits)) if culprits else "it, or an argument, holds an object that cannot be pickled"
    return (f"cannot send {what} to the cluster: {where}: {type(err).__name__}: {err}. "
            f"Create such objects inside the function (open files, locks, connections, "
            f"generators cannot travel), or pass plain data instead.")


def _system_dirs() -> list[str]:
    import site
    import sysconfig
    dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:
        pass
    dirs.update(p for p in sys.path if p.endswith(("dist-packages", "site-packages")))
    return [os.path.realpath(d) + os.sep for d in dirs if d]


class _by_value:
    """Pickle the function's own module by value when it is the user's code
    (a .py beside the notebook), not an installed package: the sandbox
    cannot import it. Installed packages still travel by reference."""

    def __init__(self, fn: Callable):
        self.mod = None
        name = getattr(fn, "__module__", None)
        if not name or name == "__main__":
            return
        mod = sys.modules.get(name.split(".")[0])
        f = getattr(mod, "__file__", None)
        if mod is None or not f:
            return
        f = os.path.realpath(f)
        if any(f.startswith(d) for d in _system_dirs()):
            return
        self.mod = mod

    def __enter__(self):
        if self.mod is not None:
            import cloudpickle
            try:
                cloudpickle.register_pickle_by_value(self.mod)
            except (AttributeError, ValueError):
                self.mod = None
        return self

    def __exit__(self, *exc):
        if self.mod is not None:
            import cloudpickle
            try:
                cloudpickle.unregister_pickle_by_value(self.mod)
            except (AttributeError, ValueError):
                pass
        return False


class Executor:
    """Runs functions on the cluster with the given resources.

    ``ferry.run``, ``ferry.run_async`` and ``ferry.map`` use a default one;
    ``ferry.Executor(cpus=4, mem="8G", project="src/")`` makes another.
    `project` is a dir shipped with the function (importable in the
    sandbox: it is the working dir /work). `requirements` are pip
    requirement lines (``["scipy>=1.10", "pandas"]``) or the text of a
    requirements.txt: the cluster builds that environment once, on top of
    the sandbox image, and every later call with the same requirements
    runs in it at once (they replace a requirements.txt of `project`).
    """

    def __init__(self, *, project: str | os.PathLike | None = None, project_name: str | None = None,
                 progress: bool | None = None, requirements: str | Sequence[str] | None = None,
                 **resources: Any):
        _cli.resource_flags(resources)  # reject unknown options now
        self.project = os.fspath(project) if project is not None else None
        self.project_name = project_name
        self.progress = progress
        self.resources = resources
        self.requirements = _requirement_lines(requirements)

    def _with(self, requirements: str | Sequence[str] | None) -> "Executor":
        """This executor, or a copy of it with other requirements."""
        if requirements is None:
            return self
        e = Executor(project=self.project, project_name=self.project_name, progress=self.progress,
                     **self.resources)
        e.requirements = _requirement_lines(requirements)
        return e

    # --- building the submitted dir -----------------------------------

    def _stage(self, kind: str, obj: dict, fn: Callable, items: list | None = None) -> tuple[str, str]:
        """Write the payload into a fresh project dir; returns (temp root, dir)."""
        import cloudpickle
        name = _fn_name(fn)
        blob, offsets = bytearray(), []
        try:
            with _by_value(fn):
                data = cloudpickle.dumps(obj)
                for i, item in enumerate(items or ()):
                    try:
                        b = cloudpickle.dumps(item)
                    except Exception as e:
                        raise PayloadError(f"cannot send input {i} of {name} to the cluster: {type(e).__name__}: "
                                           f"{e}. Pass plain data (numbers, strings, lists, dicts, numpy arrays).") from e
                    offsets.append([len(blob), len(b)])
                    blob += b
        except PayloadError:
            raise
        except Exception as e:
            try:
                cloudpickle.dumps(fn)
                fn_ok = True
            except Exception:
                fn_ok = False
            if not fn_ok:
                msg = _explain_unpicklable(fn, name, e)
            else:
                msg = (f"cannot send the arguments of {name} to the cluster: {type(e).__name__}: {e}. "
                       f"Pass plain data (numbers, strings, lists, dicts, numpy arrays).")
            raise PayloadError(msg) from e
        root = tempfile.mkdtemp(prefix="ferry-payload-")
        try:
            pname = self.project_name or (os.path.basename(os.path.abspath(self.project))
                                          if self.project else _default_project())
            pname = _NAME_RE.sub("-", pname).strip("-._") or "python"
            d = os.path.join(root, pname)
            if self.project:
                _copy_project(self.project, d)
            else:
                os.mkdir(d)
            if self.requirements is not None:
                # Unlink first: the project's file may be a hard link to
                # the user's own.
                req = os.path.join(d, "requirements.txt")
                if os.path.lexists(req):
                    os.unlink(req)
                with open(req, "w", encoding="utf-8") as f:
                    f.write("".join(line + "\n" for line in self.requirements))
            P.write_payload(d, kind, data, function=name,
                            items=(bytes(blob), offsets) if items is not None else None)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root, d

    def _flags(self, fn: Callable) -> list[str]:
        res = dict(self.resources)
        res.setdefault("name", _fn_name(fn)[:100])
        return _cli.resource_flags(res)

    # --- the API --------------------------------------------------------

    def run_async(self, fn: Callable, *args: Any, **kwargs: Any) -> FunctionJob:
        """Start fn(*args, **kwargs) on the cluster; returns its Job."""
        if not callable(fn):
            raise TypeError(f"ferry.run needs a function, got {type(fn).__name__}")
        root, d = self._stage("call", {"fn": fn, "args": args, "kwargs": kwargs}, fn)
        try:
            doc = _cli.run_json(["submit", "-o", "json", *self._flags(fn), d, "--", *RUNNER])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return FunctionJob._from_submit(doc, function=_fn_name(fn))

    def run(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run fn(*args, **kwargs) on the cluster and return its value; if it
        raised, raise the same exception type here, remote traceback attached."""
        job = self.run_async(fn, *args, **kwargs)
        try:
            job.wait(progress=self.progress)
        except KeyboardInterrupt:
            _cancel_quietly([job])
            raise
        return job._value()

    def map_async(self, fn: Callable, iterable: Iterable, max_parallel: int | None = None) -> "MapJob":
        """Start fn over every item as one Slurm job array; returns a MapJob."""
        if not callable(fn):
            raise TypeError(f"ferry.map needs a function, got {type(fn).__name__}")
        items = list(iterable)
        if max_parallel is not None and int(max_parallel) < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        if not items:
            return MapJob(None, [], function=_fn_name(fn))
        root, d = self._stage("map", {"fn": fn}, fn, items=items)
        try:
            plist = os.path.join(root, "params-list.json")
            with open(plist, "w") as f:
                json.dump([{P.INDEX_PARAM: i} for i in range(len(items))], f)
            args = ["sweep", "-o", "json", "--params-list", plist]
            if max_parallel is not None:
                args += ["--max-parallel", str(int(max_parallel))]
            doc = _cli.run_json([*args, *self._flags(fn), d, "--", *RUNNER])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        tasks = sorted(doc.get("tasks") or [], key=lambda t: t.get("index", 0))
        jobs = [FunctionJob(t["id"], dir=t.get("dir"), project=doc.get("project"), params=t.get("params"),
                            index=t.get("index", i), sweep_id=doc.get("id"), function=_fn_name(fn))
                for i, t in enumerate(tasks)]
        return MapJob(doc.get("id"), jobs, function=_fn_name(fn), arrays=doc.get("arrays"))

    def map(self, fn: Callable, iterable: Iterable, max_parallel: int | None = None) -> list:
        """fn over every item, as one Slurm job array; the results in order.
        A failed element raises its exception, naming its index."""
        mj = self.map_async(fn, iterable, max_parallel=max_parallel)
        try:
            mj.wait(progress=self.progress)
        except KeyboardInterrupt:
            mj.cancel()
            raise
        return mj.results()


class MapJob:
    """The tasks of one ``ferry.map``: one Slurm job array (or a few)."""

    def __init__(self, id: str | None, jobs: list[FunctionJob], *, function: str = "", arrays: list | None = None):
        self.id = id
        self.jobs = jobs
        self.function = function
        self.arrays = arrays or []

    def __len__(self) -> int:
        return len(self.jobs)

    def wait(self, timeout: float | None = None, progress: bool | None = None) -> "MapJob":
        wait_all(self.jobs, timeout=timeout, progress=progress, label=f"ferry.map {self.function}")
        return self

    def results(self, timeout: float | None = None) -> list:
        """Wait, then the values in order; the lowest failed index raises."""
        self.wait(timeout)
        out = []
        for j in self.jobs:
            try:
                out.append(j._value())
            except BaseException as e:
                failed = sum(1 for k in self.jobs if _failed(k))
                note = (f"ferry.map: element {j.index} of {len(self.jobs)} ({self.function}) raised "
                        f"{type(e).__name__} in job {j.id}"
                        + (f"; {failed} element(s) failed in all" if failed > 1 else ""))
                if hasattr(e, "add_note"):
                    e.add_note(note)
                elif e.args and isinstance(e.args[0], str):
                    e.args = (f"{note}: {e.args[0]}",) + e.args[1:]
                try:
                    e.ferry_index = j.index
                except (AttributeError, TypeError):
                    pass
                raise
        return out

    def cancel(self) -> None:
        _cancel_quietly(self.jobs)

    def __repr__(self) -> str:
        return f"<ferry.MapJob {self.id} {self.function} ×{len(self.jobs)}>"

    def _repr_html_(self) -> str:
        import html
        done = sum(1 for j in self.jobs if j._seen_done())
        bad = sum(1 for j in self.jobs if j._seen_done() and _failed(j))
        return (f'<div style="font-family:monospace">ferry map <code>{html.escape(str(self.id))}</code> · '
                f'{html.escape(self.function)} · {done}/{len(self.jobs)} done'
                f'{f" · {bad} failed" if bad else ""}</div>')


def _failed(j: FunctionJob) -> bool:
    from .job import _looks_failed
    return _looks_failed(j)


def _cancel_quietly(jobs: Sequence[Job]) -> None:
    ids = [j.id for j in jobs if not j._seen_done()]
    for i in range(0, len(ids), 200):
        try:
            _cli.run(["cancel", *ids[i:i + 200]], check=False)
        except Exception:
            pass


def _copy_project(src: str, dst: str) -> None:
    """Copy a project dir (hard links where possible: it is only packed)."""
    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"project dir {src} does not exist")
    shutil.copytree(src, dst, copy_function=link_or_copy, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"))


def _requirement_lines(requirements: str | Sequence[str] | None) -> list[str] | None:
    """pip requirement lines from a list or a requirements.txt's text; the
    cluster checks them (no options, URLs or paths) when the job is
    submitted."""
    if requirements is None:
        return None
    if isinstance(requirements, (str, bytes)):
        if isinstance(requirements, bytes):
            requirements = requirements.decode()
        lines = requirements.splitlines()
    else:
        lines = list(requirements)
    out = []
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"requirements must be strings, got {type(line).__name__}")
        if "\n" in line or "\r" in line:
            raise ValueError(f"requirement {line!r} spans lines: give one requirement per element")
        out.append(line)
    return out


_default = Executor()


def run(fn: Callable, *args: Any, requirements: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) in the sandbox on the cluster and return its
    value. If it raised, the same exception type is raised here, carrying the
    remote traceback (as its __cause__ and .remote_traceback).
    `requirements` (pip lines) run it in that environment, built once by the
    cluster (keyword-only: a function argument of that name goes through
    ``ferry.Executor().run``)."""
    return _default._with(requirements).run(fn, *args, **kwargs)


def run_async(fn: Callable, *args: Any, requirements: str | Sequence[str] | None = None, **kwargs: Any) -> FunctionJob:
    """Like run, but return the Job at once (``job.result()`` waits)."""
    return _default._with(requirements).run_async(fn, *args, **kwargs)


def map(fn: Callable, iterable: Iterable, max_parallel: int | None = None) -> list:  # noqa: A001
    """fn over every item of iterable, as one Slurm job array, at most
    max_parallel at a time; returns the results in order. A failed element
    raises its exception, with its index (``.ferry_index`` and a note)."""
    return _default.map(fn, iterable, max_parallel=max_parallel)


def map_async(fn: Callable, iterable: Iterable, max_parallel: int | None = None) -> MapJob:
    return _default.map_async(fn, iterable, max_parallel=max_parallel)
