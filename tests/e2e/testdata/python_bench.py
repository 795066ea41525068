"""Benchmarks of the Python client, run as a test user by
tests/e2e/python_e2e_test.go. Prints "BENCH ..." lines, and one
"RESULT {json}" line with the raw figures for the Go side.

1. ferry.run(lambda: 1) round trip, against the floor: `ferry submit` of a
   one-file project whose command is the same Python one-liner in the same
   sandbox image, then touches /out/done; timed from submit until a 10 ms
   poll sees <jobdir>/outputs/done. Interleaved, N runs each, after warm-up.
2. Submitting a 1,000-point sweep (one sbatch --array; the median of S)
   against separate `ferry submit` calls (M measured, extrapolated to 1,000).
Everything submitted is cancelled and removed afterwards.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import ferry

FERRY = os.environ.get("FERRY_BIN", "ferry")
N = int(os.environ.get("BENCH_N", "20"))
M = int(os.environ.get("BENCH_SEPARATE", "50"))
POINTS = int(os.environ.get("BENCH_POINTS", "1000"))
S = int(os.environ.get("BENCH_SWEEPS", "3"))
ONE_LINER = "(lambda: 1)(); open('/out/done', 'w').close()"


def pct(xs, p):
    s = sorted(xs)
    return s[int((len(s) - 1) * p)]


def ms(x):
    return f"{x * 1000:.0f} ms"


def floor_once(proj):
    t = time.perf_counter()
    out = subprocess.run([FERRY, "submit", "-o", "json", proj, "--", "python3", "-c", ONE_LINER],
                         capture_output=True, text=True, check=True).stdout
    done = os.path.join(json.loads(out)["dir"], "outputs", "done")
    while not os.path.exists(done):
        time.sleep(0.01)
    return time.perf_counter() - t


EXECUTOR = ferry.Executor(project_name="pybench")


def run_once():
    t = time.perf_counter()
    v = EXECUTOR.run(lambda: 1)
    took = time.perf_counter() - t
    assert v == 1, v
    return took


def cleanup(ids, arrays=(), timeout=120):
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


def main():
    work = tempfile.mkdtemp(prefix="ferry-bench-", dir=os.getcwd())
    proj = os.path.join(work, "floor")
    os.mkdir(proj)
    with open(os.path.join(proj, "main.py"), "w") as f:
        f.write("print(1)\n")

    for _ in range(2):  # warm-up: page cache, the kernel's imports, the image
        run_once()
        floor_once(proj)
    runs, floors = [], []
    for _ in range(N):
        runs.append(run_once())
        floors.append(floor_once(proj))
    r50, r95, f50, f95 = pct(runs, .5), pct(runs, .95), pct(floors, .5), pct(floors, .95)
    print(f"BENCH python ferry.run(lambda: 1) round trip: p50 {ms(r50)}, p95 {ms(r95)} over {N} calls; "
          f"floor (ferry submit of the same one-liner in the same image, touching /out/done, seen by a "
          f"10 ms poll): p50 {ms(f50)}, p95 {ms(f95)}; ratio p50 {r50 / f50:.2f}x "
          f"(target: p50 < 1000 ms and <= 1.5x)", flush=True)

    # A 1,000-point sweep, one submission; S of them, the median counts.
    sweeps, sweep_times = [], []
    for _ in range(S):
        t = time.perf_counter()
        sweep = ferry.sweep(proj, "true", spec={"method": "grid", "params": {"i": list(range(POINTS))}},
                            max_parallel=1)
        sweep_times.append(time.perf_counter() - t)
        assert len(sweep) == POINTS, len(sweep)
        subprocess.run(["scancel", *[str(a["slurm_id"]) for a in sweep.arrays]], check=False)
        sweeps.append(sweep)
    sweep_s = pct(sweep_times, .5)

    # Separate submits, M of them, extrapolated.
    ids = []
    t = time.perf_counter()
    for _ in range(M):
        out = subprocess.run([FERRY, "submit", "-o", "json", proj, "--", "true"], capture_output=True,
                             text=True, check=True).stdout
        ids.append(json.loads(out)["id"])
    sep_each = (time.perf_counter() - t) / M
    sep_total = sep_each * POINTS
    print(f"BENCH python sweep submit: {POINTS}-point sweep (ferry.sweep, {len(sweep.arrays)} sbatch --array) "
          f"median {ms(sweep_s)} of {S} (min {ms(min(sweep_times))}); {POINTS} separate ferry submit ~{sep_total:.1f} s ({M} measured, "
          f"{ms(sep_each)} each, extrapolated); {sep_total / sweep_s:.0f}x faster "
          f"(target: < 500 ms and >= 20x)", flush=True)
    print("RESULT " + json.dumps({"run_p50": r50, "run_p95": r95, "floor_p50": f50, "floor_p95": f95,
                                  "runs": runs, "floors": floors, "sweep_s": sweep_s,
                                  "sweep_times": sweep_times, "separate_each_s": sep_each,
                                  "points": POINTS}), flush=True)
    cleanup(ids)
    for sweep in sweeps:
        cleanup([tk.id for tk in sweep.tasks])
    for project in ("pybench", "floor"):
        out = subprocess.run([FERRY, "ls", "-o", "json", "--project", project], capture_output=True, text=True).stdout
        cleanup([j["id"] for j in json.loads(out or "[]")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
