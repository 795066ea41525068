#!/usr/bin/env python3
"""A parameter sweep from a plain script (no notebook).

    PYTHONPATH=python python3 examples/sweep_script.py          # from the repository
    python3 sweep_script.py --count 20 --seed 7                  # with ferry installed

It samples `--count` random points (log-uniform learning rate, a depth from
a list of choices, a list of 1-3 widths) with a fixed seed, submits them as one Slurm job array
(at most `--max-parallel` at a time), waits, prints every task's params and
latest metrics, and the best point. The same spec works on the command line:
`ferry sweep sweep_demo --spec spec.yaml`.
"""

import argparse
import os
import sys

import ferry

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=12, help="random points to run")
    ap.add_argument("--seed", type=int, default=42, help="the same seed draws the same points")
    ap.add_argument("--max-parallel", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for the sweep")
    args = ap.parse_args()

    spec = {
        "method": "random",
        "count": args.count,
        "seed": args.seed,
        "params": {
            "lr": {"min": 1e-4, "max": 1e-1, "log": True},
            "layers": {"choices": [1, 2, 3, 4]},
            # a list of 1 to 3 widths, each an integer in 16..128
            "widths": {"min": 16, "max": 128, "int": True, "count_min": 1, "count_max": 3},
            "steps": 5,
        },
    }
    sweep = ferry.sweep(os.path.join(HERE, "sweep_demo"), "python3 train.py", spec=spec,
                        max_parallel=args.max_parallel, mem="512M", time="5m")
    print(f"sweep {sweep.id}: {len(sweep)} tasks in {len(sweep.arrays)} job array(s)", file=sys.stderr)
    try:
        sweep.wait(timeout=args.timeout)
    except KeyboardInterrupt:
        sweep.cancel()
        raise
    print(sweep.table(sort="loss"))
    best = sweep.best("loss")
    if best is None:
        print("no task logged a loss", file=sys.stderr)
        return 1
    print(f"\nbest: {best['params']} loss={best['metrics']['loss']:.4f} (task {best['id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
