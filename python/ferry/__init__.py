"""ferry from Python: run a function, a map or a parameter sweep on the
Slurm cluster, each in a single-use sandbox, from a notebook or a script.

    import ferry
    ferry.run(f, x)                      # f(x) on the cluster; its value, or its exception
    job = ferry.run_async(f, x)          # a Job: .status() .wait() .logs() .result() .cancel() .outputs()
    ferry.map(f, range(20))              # one Slurm job array; results in order
    job = ferry.submit("proj", "python3 main.py", params={"n": 10}, cpus=2)
    s = ferry.sweep("proj", "python3 train.py", spec={...}); s.wait(); s.best("loss")

Inside a job: ferry.load_parameters(), ferry.log_metric(name, value, step),
ferry.log_param, ferry.set_tag, ferry.save_artifact(path).

The package drives the ``ferry`` command (set FERRY_BIN to use another one).
Importing it is cheap: the sandbox imports it to run function payloads.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Everything loads on first use: the sandbox imports ferry to run each
    # function payload, and a fresh container has no bytecode cache warm.
    if name in _LAZY:
        import importlib
        mod = importlib.import_module(_LAZY[name], __name__)
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")


_LAZY = {
    "load_parameters": ".tracking", "log_metric": ".tracking", "log_param": ".tracking",
    "set_tag": ".tracking", "save_artifact": ".tracking", "in_job": ".tracking",
    **{e: ".errors" for e in ("FerryError", "CLIError", "BadInput", "JobNotFound", "SlurmUnavailable",
                              "JobFailed", "PayloadError", "VersionMismatch", "RemoteError", "RemoteTraceback")},
    "submit": ".remote", "run": ".remote", "run_async": ".remote", "map": ".remote",
    "map_async": ".remote", "Executor": ".remote", "MapJob": ".remote",
    "Job": ".job", "FunctionJob": ".job", "wait_all": ".job",
    "sweep": ".sweeps", "Sweep": ".sweeps",
}

__all__ = [
    "__version__", "submit", "run", "run_async", "map", "map_async", "Executor", "MapJob",
    "Job", "FunctionJob", "wait_all", "sweep", "Sweep",
    "load_parameters", "log_metric", "log_param", "set_tag", "save_artifact", "in_job",
    "FerryError", "CLIError", "BadInput", "JobNotFound", "SlurmUnavailable", "JobFailed",
    "PayloadError", "VersionMismatch", "RemoteError", "RemoteTraceback",
]


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
