"""Parameter sweeps: ``ferry.sweep(DIR, COMMAND, spec=...)`` drives
``ferry sweep`` (one ``sbatch --array`` submission; several arrays when the
sweep is larger than the cluster's MaxArraySize)."""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from typing import Any, Sequence

from . import _cli
from .job import Job, wait_all
from .remote import _command, _json_default


def sweep(dir: str | os.PathLike, command: str | Sequence[str] | None = None,
          spec: dict | str | os.PathLike | None = None, *, params_list: list[dict] | None = None,
          max_parallel: int | None = None, **resources: Any) -> "Sweep":
    """Run `command` in `dir` once per point of a sweep.

    spec is a dict (as the YAML file would hold) or the path of a sweep
    YAML file; params_list is an explicit list of parameter dicts instead.
    At most max_parallel tasks run at a time. Resources as for submit.
    """
    if (spec is None) == (params_list is None):
        raise ValueError("ferry.sweep needs exactly one of spec= (a dict or a YAML file) or params_list=")
    args = ["sweep", "-o", "json", *_cli.resource_flags(resources)]
    if max_parallel is not None:
        if int(max_parallel) < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        args += ["--max-parallel", str(int(max_parallel))]
    tmp = None
    try:
        if isinstance(spec, dict):
            # JSON is YAML: the CLI reads it as a sweep spec.
            fd, tmp = tempfile.mkstemp(prefix="ferry-sweep-", suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                json.dump(spec, f, default=_json_default, indent=1)
            args += ["--spec", tmp]
        elif spec is not None:
            args += ["--spec", os.fspath(spec)]
        else:
            fd, tmp = tempfile.mkstemp(prefix="ferry-params-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(list(params_list or []), f, default=_json_default)
            args += ["--params-list", tmp]
        args.append(os.fspath(dir))
        cmd = _command(command)
        if cmd:
            args += ["--", *cmd]
        try:
            doc = _cli.run_json(args)
        except _cli.BadInput as e:
            if tmp and isinstance(spec, dict):
                # The file was ours, made from the dict: name the spec instead.
                e.args = (str(e).replace(tmp + " ", "spec (as JSON) ").replace(tmp, "spec"),)
            raise
    finally:
        if tmp:
            os.unlink(tmp)
    return Sweep._from_doc(doc)


class Sweep:
    """A submitted sweep: ``.tasks`` are its Jobs (each with ``.params`` and
    ``.index``), ``.show()`` its table, ``.best(metric)`` its best point."""

    def __init__(self, id: str, tasks: list[Job] | None = None, *, project: str | None = None,
                 arrays: list | None = None):
        self.id = id
        self.project = project
        self.arrays = arrays or []
        self.tasks = tasks if tasks is not None else self._load_tasks()

    @classmethod
    def _from_doc(cls, doc: dict) -> "Sweep":
        tasks = [Job(t["id"], dir=t.get("dir"), project=doc.get("project"), params=t.get("params"),
                     index=t.get("index", i), sweep_id=doc.get("id"))
                 for i, t in enumerate(sorted(doc.get("tasks") or [], key=lambda t: t.get("index", 0)))]
        return cls(doc["id"], tasks, project=doc.get("project"), arrays=doc.get("arrays"))

    def _load_tasks(self) -> list[Job]:
        rows = self.show()
        return [Job(r["id"], dir=r.get("dir"), params=r.get("params"), index=r.get("index"), sweep_id=self.id)
                for r in rows]

    def __len__(self) -> int:
        return len(self.tasks)

    def wait(self, timeout: float | None = None, progress: bool | None = None) -> "Sweep":
        """Wait until every task has ended (succeeded or not)."""
        wait_all(self.tasks, timeout=timeout, progress=progress, label=f"ferry sweep {self.id[:10]}")
        return self

    def show(self, sort: str | None = None, descending: bool = False) -> list[dict]:
        """``ferry sweep show -o json``: one row per task, {index, id, state,
        params, metrics: {name: latest value}}, sorted by a metric if asked
        (tasks without it last)."""
        args = ["sweep", "show", "-o", "json"]
        if sort:
            args.append(f"--sort={'-' if descending else ''}{sort}")
        doc = _cli.run_json([*args, self.id])
        rows = list(doc.get("tasks") or [])
        if not sort:
            rows.sort(key=lambda r: r.get("index", 0))
        return rows

    def best(self, metric: str, mode: str = "min") -> dict | None:
        """The row of the task with the lowest (mode="min") or highest
        ("max") latest value of `metric`; None when no task logged it."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        rows = [r for r in self.show(sort=metric, descending=(mode == "max"))
                if _num((r.get("metrics") or {}).get(metric)) is not None]
        return rows[0] if rows else None

    def cancel(self) -> None:
        ids = [t.id for t in self.tasks if not t._seen_done()]
        for i in range(0, len(ids), 200):
            _cli.run(["cancel", *ids[i:i + 200]], check=False)

    def table(self, sort: str | None = None, descending: bool = False) -> str:
        rows = self.show(sort=sort, descending=descending)
        pkeys, mkeys = _keys(rows)
        head = ["#", "state", *pkeys, *mkeys]
        body = [[str(r.get("index", "")), r.get("state", "")]
                + [_fmt((r.get("params") or {}).get(k)) for k in pkeys]
                + [_fmt((r.get("metrics") or {}).get(k)) for k in mkeys] for r in rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ferry.Sweep {self.id} ×{len(self.tasks)}>"

    def _repr_html_(self) -> str:
        try:
            rows = self.show()
        except Exception as e:  # noqa: BLE001 - a display must not raise
            return f"<pre>ferry sweep {html.escape(self.id)}: {html.escape(str(e))}</pre>"
        pkeys, mkeys = _keys(rows)
        states: dict[str, int] = {}
        for r in rows:
            states[r.get("state", "?")] = states.get(r.get("state", "?"), 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        th = "".join(f"<th>{html.escape(h)}</th>" for h in ["#", "state", *pkeys, *mkeys])
        trs = []
        for r in rows[:200]:
            cells = [str(r.get("index", "")), r.get("state", "")]
            cells += [_fmt((r.get("params") or {}).get(k)) for k in pkeys]
            cells += [_fmt((r.get("metrics") or {}).get(k)) for k in mkeys]
            trs.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        more = f"<p>… {len(rows) - 200} more</p>" if len(rows) > 200 else ""
        return (f"<div><b>ferry sweep</b> <code>{html.escape(self.id)}</code> · {len(rows)} tasks · "
                f"{html.escape(summary)}<table><tr>{th}</tr>{''.join(trs)}</table>{more}</div>")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and math.isnan(v) else float(v)
    return None


def _keys(rows: list[dict]) -> tuple[list[str], list[str]]:
    pk: dict[str, None] = {}
    mk: dict[str, None] = {}
    for r in rows:
        for k in (r.get("params") or {}):
            if not k.startswith("__ferry"):
                pk[k] = None
        for k in (r.get("metrics") or {}):
            mk[k] = None
    return list(pk), list(mk)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)
