"""Benchmarks of the Python client, run as a test user by
tests/e2e/python_e2e_test.go.

    python_bench.py run-server   one ferry.run(lambda: 1) per "run" line on
                                 stdin, answered with "RUN <seconds>"; the Go
                                 side runs the issue's floor (a bare sbatch
                                 --wrap 'docker run ...') between calls, so
                                 the two are measured side by side.
    python_bench.py sweep        a 1,000-point sweep (one ferry.sweep, the
                                 median of S) against 1,000 separate
                                 `ferry submit` calls, all of them run; prints
                                 a "BENCH ..." line and "RESULT {json}". Both
                                 submit into the parked partition (jobs queue,
                                 never start), so that no job of theirs starts
                                 a container on the two cores while submits
                                 are timed.

Everything submitted is cancelled and removed afterwards.
"""

import getpass
import json
import os
import subprocess
import sys
import tempfile
import time

import ferry

FERRY = os.environ.get("FERRY_BIN", "ferry")
POINTS = int(os.environ.get("BENCH_POINTS", "1000"))
SEPARATE = int(os.environ.get("BENCH_SEPARATE", str(POINTS)))
S = int(os.environ.get("BENCH_SWEEPS", "3"))
PARKED = "parked"  # State=DOWN in the test cluster's slurm.conf

EXECUTOR = ferry.Executor(project_name="pybench")


def pct(xs, p):
    s = sorted(xs)
    return s[int((len(s) - 1) * p)]


def ms(x):
    return f"{x * 1000:.0f} ms"


def run_once():
    t = time.perf_counter()
    v = EXECUTOR.run(lambda: 1)
    took = time.perf_counter() - t
    assert v == 1, v
    return took


def cleanup(ids, arrays=(), timeout=300):
    if arrays:
        subprocess.run(["scancel", *arrays], check=False)
    for i in range(0, len(ids), 200):
        subprocess.run([FERRY, "cancel", *ids[i:i + 200]], capture_output=True)
    deadline = time.monotonic() + timeout
    left = list(ids)
    while left and time.monotonic() < deadline:
        still = []
        for i in range(0, len(left), 200):
            batch = left[i:i + 200]
            if subprocess.run([FERRY, "rm", *batch], capture_output=True).returncode != 0:
                still += batch
        left = still
        if left:
            time.sleep(1)


def cleanup_project(project):
    out = subprocess.run([FERRY, "ls", "-o", "json", "--project", project], capture_output=True, text=True).stdout
    cleanup([j["id"] for j in json.loads(out or "[]")])


def run_server():
    for _ in range(2):  # warm-up: page cache, the kernel's imports, the image
        run_once()
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            print(f"RUN {run_once():.6f}", flush=True)
        elif cmd == "quit":
            break
    cleanup_project("pybench")
    return 0


def sweep_bench():
    work = tempfile.mkdtemp(prefix="ferry-bench-", dir=os.getcwd())
    proj = os.path.join(work, "floor")
    os.mkdir(proj)
    with open(os.path.join(proj, "main.py"), "w") as f:
        f.write("print(1)\n")

    # A 1,000-point sweep, one submission; S of them, the median counts.
    sweeps, sweep_times = [], []
    for _ in range(S):
        t = time.perf_counter()
        sweep = ferry.sweep(proj, "true", spec={"method": "grid", "params": {"i": list(range(POINTS))}},
                            max_parallel=1, partition=PARKED)
        sweep_times.append(time.perf_counter() - t)
        assert len(sweep) == POINTS, len(sweep)
        sweeps.append(sweep)
    subprocess.run(["scancel", "--partition", PARKED, "--user", getpass.getuser()], check=False)
    sweep_s = pct(sweep_times, .5)
    for sweep in sweeps:
        cleanup([tk.id for tk in sweep.tasks])

    # The same points as separate submits: every one of them is made.
    ids, each = [], []
    t0 = time.perf_counter()
    for _ in range(SEPARATE):
        t = time.perf_counter()
        out = subprocess.run([FERRY, "submit", "-o", "json", "--partition", PARKED, proj, "--", "true"],
                             capture_output=True, text=True, check=True).stdout
        each.append(time.perf_counter() - t)
        ids.append(json.loads(out)["id"])
    sep_total = time.perf_counter() - t0
    print(f"BENCH python sweep submit (parked partition): {POINTS}-point sweep (ferry.sweep, {len(sweep.arrays)} sbatch --array) "
          f"median {ms(sweep_s)} of {S} (min {ms(min(sweep_times))}); {SEPARATE} separate ferry submit "
          f"{sep_total:.1f} s (median {ms(pct(each, .5))} each); {sep_total / sweep_s:.0f}x faster "
          f"(target: < 500 ms and >= 20x)", flush=True)
    print("RESULT " + json.dumps({"sweep_s": sweep_s, "sweep_times": sweep_times, "separate_s": sep_total,
                                  "separate_n": SEPARATE, "points": POINTS}), flush=True)
    subprocess.run(["scancel", "--partition", PARKED, "--user", getpass.getuser()], check=False)
    cleanup(ids)
    cleanup_project("floor")
    return 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "run-server":
        sys.exit(run_server())
    if mode == "sweep":
        sys.exit(sweep_bench())
    sys.exit(f"usage: {sys.argv[0]} run-server|sweep")
