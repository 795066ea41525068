"""{{.Project}}: a ferry project.

Run it on the cluster with `ferry submit --wait -f .` (from this dir), or
try it here first with `python3 main.py`. In the sandbox the project is at
/work, parameters are in /work/ferry_params.json, and whatever is written to
/out comes back with `ferry get ID`.
"""
import json
import os
import platform
import time


def load_parameters():
    """The job's parameters: job.yaml's params, overridden by --param k=v."""
    path = os.environ.get("FERRY_PARAMS_FILE", "ferry_params.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return json.loads(os.environ.get("FERRY_PARAMS", "{}"))


OUT = os.environ.get("FERRY_OUTPUTS", "outputs")


def log_metric(name, value, step=None):
    """Append a metric as one JSON line; `ferry` shows the latest values."""
    rec = {"name": name, "value": value, "step": step, "time": time.time()}
    with open(os.path.join(OUT, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")


def main():
    params = load_parameters()
    n = int(params.get("n", 1_000_000))
    greeting = params.get("greeting", "hello")
    print(f"{greeting} from {platform.node()} (python {platform.python_version()})", flush=True)
    print(f"parameters: {json.dumps(params, sort_keys=True)}", flush=True)

    os.makedirs(OUT, exist_ok=True)
    start = time.perf_counter()
    total = sum(i * i for i in range(n))
    took = time.perf_counter() - start
    print(f"sum of squares below {n} = {total} ({took:.3f}s)", flush=True)

    with open(os.path.join(OUT, "result.txt"), "w") as f:
        f.write(f"{total}\n")
    log_metric("seconds", took)
    log_metric("sum_of_squares", total)
    print(f"wrote {os.path.join(OUT, 'result.txt')}", flush=True)


if __name__ == "__main__":
    main()
