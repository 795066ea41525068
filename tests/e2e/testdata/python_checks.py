"""Checks of the Python client against the real cluster, run as a test user
by tests/e2e/python_e2e_test.go (PYTHONPATH = a copy of python/).

Each check prints "CHECK <name> ok: <detail>" or "CHECK <name> FAILED:
<why>"; the exit code is the number of failed checks.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import ferry
from ferry import _payload as P

FAILED = []


def check(fn):
    name = fn.__name__.removeprefix("check_")
    t = time.monotonic()
    try:
        detail = fn()
    except Exception:
        FAILED.append(name)
        print(f"CHECK {name} FAILED:\n{traceback.format_exc()}", flush=True)
        return fn
    print(f"CHECK {name} ok ({time.monotonic() - t:.2f}s): {detail}", flush=True)
    return fn


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def my_jobs():
    out = subprocess.run([os.environ.get("FERRY_BIN", "ferry"), "ls", "-o", "json"], capture_output=True,
                         text=True, check=True).stdout
    return {j["id"] for j in json.loads(out or "[]")}


def remove_jobs(sweep, timeout=60):
    """Cancel a sweep's tasks and ferry rm them once they have ended."""
    subprocess.run(["scancel", *[str(a["slurm_id"]) for a in sweep.arrays]], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.get("state") in ferry.job.TERMINAL for r in sweep.show()):
            break
        time.sleep(0.5)
    ids = [t.id for t in sweep.tasks]
    for i in range(0, len(ids), 200):
        subprocess.run([os.environ.get("FERRY_BIN", "ferry"), "rm", *ids[i:i + 200]], capture_output=True)

@check
def check_version_mismatch_fails_at_once():
    ex = ferry.Executor()
    root, d = ex._stage("call", {"fn": abs, "args": (-1,), "kwargs": {}}, abs)
    meta_path = os.path.join(d, P.PAYLOAD_META)
    with open(meta_path) as f:
        meta = json.load(f)
    meta.update(python="3.9", python_full="3.9.18")
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    t = time.monotonic()
    job = ferry.submit(d, "python3 -m ferry._runner")
    shutil.rmtree(root, ignore_errors=True)
    fj = ferry.FunctionJob(job.id, dir=str(job.dir), function="abs")
    try:
        fj.result(timeout=120)
    except ferry.VersionMismatch as e:
        took = time.monotonic() - t
        msg = str(e)
        expect("Python 3.9.18 in the notebook" in msg, msg)
        expect("Python 3.11" in msg and "in the sandbox" in msg, msg)
        return f"{took:.2f}s: {msg[:160]}"
    raise AssertionError("no VersionMismatch")


@check
def check_unpicklable_closure_is_refused_before_submit():
    before = my_jobs()
    lock = threading.Lock()
    try:
        ferry.run(lambda: lock.locked())
    except ferry.PayloadError as e:
        expect("closure variable 'lock'" in str(e), str(e))
        expect(my_jobs() == before, "a job was created")
        return str(e)[:160]
    raise AssertionError("no PayloadError")


@check
def check_exception_class_from_main():
    class QuotaExceeded(RuntimeError):
        pass

    def spend(n):
        raise QuotaExceeded(f"{n} is over the quota")
    try:
        ferry.run(spend, 7)
    except QuotaExceeded as e:
        expect(str(e) == "7 is over the quota", str(e))
        expect("in spend" in e.remote_traceback, e.remote_traceback)
        expect(isinstance(e.__cause__, ferry.RemoteTraceback), repr(e.__cause__))
        return f"{type(e).__name__}: {e}"
    raise AssertionError("not raised")


@check
def check_map_failure_names_index():
    def f(x):
        if x == 3:
            raise KeyError(f"no key {x}")
        return x
    try:
        ferry.map(f, range(5))
    except KeyError as e:
        expect(e.ferry_index == 3, e.ferry_index)
        expect(any("element 3 of 5" in n for n in e.__notes__), e.__notes__)
        return e.__notes__[0]
    raise AssertionError("not raised")


@check
def check_job_handle_logs_outputs_metrics():
    def work():
        import numpy as np
        print("hello from the sandbox", flush=True)
        ferry.log_metric("loss/√2", np.float32(0.25), step=np.int64(1))
        with open("/tmp/model.txt", "w") as f:
            f.write("weights")
        ferry.save_artifact("/tmp/model.txt")
        return os.environ["FERRY_JOB_ID"]
    job = ferry.run_async(work)
    expect(job.result(timeout=120) == job.id, "job id seen inside")
    job.wait()
    deadline = time.monotonic() + 30
    while job.status()["state"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.1)
    expect("hello from the sandbox" in job.logs(), job.logs())
    dest = job.outputs(tempfile.mkdtemp(prefix="ferry-get-") + "/got")
    with open(dest / "outputs" / "artifacts" / "model.txt") as f:
        expect(f.read() == "weights", "artifact")
    with open(dest / "outputs" / "metrics.jsonl") as f:
        m = json.loads(f.readline())
    expect(m["name"] == "loss/√2" and m["value"] == 0.25 and m["step"] == 1, m)
    expect("succeeded" in job._repr_html_(), job._repr_html_())
    return f"job {job.id}: log, artifact, metric {m}"


@check
def check_logs_follow_streams_until_the_end():
    def talk():
        for i in range(3):
            print(f"line {i}", flush=True)
            time.sleep(0.5)
        return 7
    job = ferry.run_async(talk)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ret = job.logs(follow=True)
    out = buf.getvalue()
    expect(ret is None, f"follow returns None, not {ret!r}")
    lines = [ln for ln in out.splitlines() if ln.startswith("line ")]
    expect(lines == ["line 0", "line 1", "line 2"], f"streamed in order, to the end: {out!r}")
    # follow returned because the job ended: its result is there at once.
    expect(job.result(timeout=30) == 7, "result after follow")
    return f"job {job.id}: {lines}"


@check
def check_cancel_running_function():
    job = ferry.run_async(time.sleep, 120)
    deadline = time.monotonic() + 60
    while job.status()["state"] != "running":
        expect(time.monotonic() < deadline, "never ran")
        time.sleep(0.1)
    job.cancel()
    try:
        job.result(timeout=60)
    except ferry.JobFailed as e:
        expect(e.state == "cancelled", e.state)
        return str(e).splitlines()[0]
    raise AssertionError("no JobFailed")


@check
def check_bad_sweep_specs():
    msgs = []
    for spec, want in (({"params": {"x": [1]}, "bogus": 1}, 'unknown key "bogus"'),
                       ({"params": {"x": []}}, "empty list"),
                       ({"method": "random", "count": 2, "params": {"x": {"min": 2, "max": 1}}}, "empty range")):
        try:
            ferry.sweep(os.path.join(os.getcwd(), "examples", "sweep_demo"), "true", spec=spec)
        except ferry.BadInput as e:
            expect(want in str(e), str(e))
            msgs.append(str(e))
            continue
        raise AssertionError(f"accepted {spec}")
    return " | ".join(msgs)


@check
def check_sweep_over_array_limit_is_split():
    # MaxArraySize=1001 on the test cluster: 1002 tasks need two arrays.
    n = 1002
    s = ferry.sweep(os.path.join(os.getcwd(), "examples", "sweep_demo"), "true",
                    params_list=[{"i": i} for i in range(n)], max_parallel=1)
    try:
        expect(len(s) == n, len(s))
        expect(len(s.arrays) >= 2, s.arrays)
        expect(sorted(t.index for t in s.tasks) == list(range(n)), "indexes")
        return f"{n} tasks in arrays {[(a.get('slurm_id'), a.get('first'), a.get('last')) for a in s.arrays]}"
    finally:
        remove_jobs(s)


sys.exit(len(FAILED))
