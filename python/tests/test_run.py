"""ferry.run / run_async / map end to end against the fake CLI: payloads are
really pickled, run by ferry._runner in a subprocess and read back."""

import json
import os
import shutil
import threading
import unittest

from helpers import FakeCLITest

import ferry
from ferry import _payload as P


class CustomError(Exception):
    pass


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


class RunTest(FakeCLITest):
    def test_closure_over_numpy_array(self):
        import numpy as np
        a = np.arange(10.0)
        scale = 3
        self.assertEqual(ferry.run(lambda: float((a * scale).sum())), 135.0)
        argv = self.calls()[0]
        self.assertEqual(argv[:3], ["submit", "-o", "json"])
        self.assertEqual(argv[-4:], ["--", "python3", "-m", "ferry._runner"])
        self.assertIn("--name", argv)

    def test_args_kwargs_and_value_types(self):
        import numpy as np
        out = ferry.run(lambda x, y=0: {"sum": x + y, "arr": np.ones(3) * x}, 2, y=5)
        self.assertEqual(out["sum"], 7)
        self.assertEqual(out["arr"].tolist(), [2.0, 2.0, 2.0])

    def test_remote_exception_same_type_with_traceback(self):
        def divide(a, b):
            return a / b
        with self.assertRaises(ZeroDivisionError) as cm:
            ferry.run(divide, 1, 0)
        e = cm.exception
        self.assertIn("division by zero", str(e))
        self.assertIsInstance(e.__cause__, ferry.RemoteTraceback)
        self.assertIn("in divide", e.remote_traceback)
        self.assertIn("return a / b", str(e.__cause__))

    def test_exception_class_defined_in_notebook(self):
        class NotebookError(Exception):
            pass

        def boom():
            raise NotebookError("from the cluster")
        with self.assertRaises(NotebookError) as cm:
            ferry.run(boom)
        self.assertEqual(str(cm.exception), "from the cluster")

    def test_run_async_job(self):
        job = ferry.run_async(square, 7)
        self.assertIsInstance(job, ferry.FunctionJob)
        self.assertIs(job.wait(timeout=10), job)
        self.assertEqual(job.result(), 49)
        self.assertEqual(job.status()["state"], "succeeded")
        self.assertIn("succeeded", job._repr_html_())

    def test_lambda_over_unpicklable_object(self):
        lock = threading.Lock()
        with self.assertRaises(ferry.PayloadError) as cm:
            ferry.run(lambda: lock.locked())
        msg = str(cm.exception)
        self.assertIn("closure variable 'lock'", msg)
        self.assertIn("cannot pickle", msg)
        self.assertEqual(self.calls(), [], "nothing may be submitted")

    def test_unpicklable_argument(self):
        with self.assertRaises(ferry.PayloadError) as cm:
            ferry.run(square, threading.Lock())
        self.assertIn("cannot send the arguments of", str(cm.exception))
        self.assertEqual(self.calls(), [])

    def test_unpicklable_result(self):
        with self.assertRaises(ferry.PayloadError) as cm:
            ferry.run(lambda: threading.Lock())
        self.assertIn("cannot be pickled", str(cm.exception))

    def test_local_module_travels_by_value(self):
        # A helper module beside the notebook is not importable in the
        # sandbox: its functions are pickled by value.
        import importlib
        import sys
        mdir = os.path.join(self.tmp, "nbdir")
        os.mkdir(mdir)
        with open(os.path.join(mdir, "my_helpers_xyz.py"), "w") as f:
            f.write("K = 7\ndef seven_times(x):\n    return K * x\n")
        sys.path.insert(0, mdir)
        try:
            mod = importlib.import_module("my_helpers_xyz")
            self.assertEqual(ferry.run(mod.seven_times, 6), 42)
        finally:
            sys.path.remove(mdir)
            sys.modules.pop("my_helpers_xyz", None)
        # installed packages still travel by reference
        import json as json_mod
        self.assertEqual(ferry.run(json_mod.dumps, [1]), "[1]")

    def test_not_callable(self):
        with self.assertRaises(TypeError):
            ferry.run(42)

    def test_resources_and_project_dir(self):
        proj = os.path.join(self.tmp, "myproj")
        os.mkdir(proj)
        with open(os.path.join(proj, "helper_mod.py"), "w") as f:
            f.write("def triple(x):\n    return 3 * x\n")

        def use_helper(x):
            import helper_mod
            return helper_mod.triple(x)
        ex = ferry.Executor(project=proj, cpus=2, mem="2G", env={"A": "1"})
        self.assertEqual(ex.run(use_helper, 5), 15)
        argv = self.calls()[0]
        for flag in (["--cpus", "2"], ["--mem", "2G"], ["--env", "A=1"]):
            i = argv.index(flag[0])
            self.assertEqual(argv[i:i + 2], flag)
        self.assertTrue(any(a.endswith("/myproj") for a in argv))
        with self.assertRaises(TypeError):
            ferry.Executor(cpu=2)

    def test_requirements(self):
        proj = os.path.join(self.tmp, "reqproj")
        os.mkdir(proj)
        with open(os.path.join(proj, "requirements.txt"), "w") as f:
            f.write("numpy\n")
        ex = ferry.Executor(project=proj, requirements=["scipy>=1.10", "pandas"])
        root, d = ex._stage("call", {"fn": square, "args": (3,), "kwargs": {}}, square)
        try:
            with open(os.path.join(d, "requirements.txt")) as f:
                self.assertEqual(f.read(), "scipy>=1.10\npandas\n")
        finally:
            shutil.rmtree(root)
        with open(os.path.join(proj, "requirements.txt")) as f:
            self.assertEqual(f.read(), "numpy\n", "the project's own file is untouched")
        # the text of a requirements.txt works too, and ferry.run takes it
        self.assertEqual(ferry.run(square, 3, requirements="six\n# a comment\n"), 9)
        self.assertEqual(ferry.Executor()._with("a\nb").requirements, ["a", "b"])
        with self.assertRaises(TypeError):
            ferry.Executor(requirements=[1])
        with self.assertRaises(ValueError):
            ferry.Executor(requirements=["a\nb"])

    def test_job_that_dies_without_result(self):
        # The runner never ran (e.g. the image lacks python3): JobFailed.
        proj = os.path.join(self.tmp, "proj")
        os.mkdir(proj)
        job = ferry.submit(proj, ["sh", "-c", "echo oops >&2; exit 3"])
        with self.assertRaises(ferry.JobFailed) as cm:
            job.result()
        self.assertEqual(cm.exception.state, "failed")
        self.assertIn("oops", cm.exception.log_tail)


class MapTest(FakeCLITest):
    def test_map_in_order_one_sweep(self):
        self.assertEqual(ferry.map(square, range(6), max_parallel=2), [0, 1, 4, 9, 16, 25])
        argv = self.calls()[0]
        self.assertEqual(argv[:3], ["sweep", "-o", "json"])
        i = argv.index("--max-parallel")
        self.assertEqual(argv[i + 1], "2")
        self.assertEqual(len([c for c in self.calls() if c[0] == "sweep" and c[1] != "show"]), 1)

    def test_map_params_list(self):
        ferry.map(square, [1, 2, 3])
        name = [f for f in os.listdir(self.spool) if f.startswith("sweep-")][0]
        with open(os.path.join(self.spool, name)) as f:
            sweep = json.load(f)
        self.assertEqual([t["params"] for t in sweep["tasks"]],
                         [{"__ferry_index": 0}, {"__ferry_index": 1}, {"__ferry_index": 2}])

    def test_map_failure_names_index(self):
        with self.assertRaises(ValueError) as cm:
            ferry.map(fails_on_three, range(5))
        e = cm.exception
        self.assertEqual(e.ferry_index, 3)
        self.assertIn("bad input 3", str(e))
        self.assertTrue(any("element 3 of 5" in n for n in getattr(e, "__notes__", [])), e.__notes__)

    def test_map_unpicklable_input_names_index(self):
        with self.assertRaises(ferry.PayloadError) as cm:
            ferry.map(square, [1, 2, threading.Lock()])
        self.assertIn("input 2 of", str(cm.exception))
        self.assertEqual(self.calls(), [])

    def test_map_items_stored_one_by_one(self):
        ex = ferry.Executor()
        root, d = ex._stage("map", {"fn": square}, square, items=[10, "x", [1, 2]])
        self.addCleanup(shutil.rmtree, root, True)
        with open(os.path.join(d, P.PAYLOAD_META)) as f:
            meta = json.load(f)
        self.assertEqual(meta["count"], 3)
        import cloudpickle
        self.assertEqual(cloudpickle.loads(P.read_item(d, meta, 1)), "x")
        self.assertEqual(cloudpickle.loads(P.read_item(d, meta, 2)), [1, 2])

    def test_map_empty(self):
        self.assertEqual(ferry.map(square, []), [])
        self.assertEqual(self.calls(), [])

    def test_map_bad_max_parallel(self):
        with self.assertRaises(ValueError):
            ferry.map(square, [1], max_parallel=0)


class VersionTest(FakeCLITest):
    def _staged(self, **meta_changes):
        ex = ferry.Executor()
        root, d = ex._stage("call", {"fn": square, "args": (3,), "kwargs": {}}, square)
        self.addCleanup(shutil.rmtree, root, True)
        with open(os.path.join(d, P.PAYLOAD_META)) as f:
            meta = json.load(f)
        meta.update(meta_changes)
        with open(os.path.join(d, P.PAYLOAD_META), "w") as f:
            json.dump(meta, f)
        return d

    def test_python_mismatch_fails_naming_both(self):
        d = self._staged(python="3.9", python_full="3.9.18")
        job = ferry.submit(d, ["python3", "-m", "ferry._runner"])
        job.__class__ = ferry.FunctionJob
        job.function = "square"
        with self.assertRaises(ferry.VersionMismatch) as cm:
            job.result()
        msg = str(cm.exception)
        self.assertIn("Python 3.9.18 in the notebook", msg)
        self.assertIn("Python %s in the sandbox" % P.versions()["python_full"], msg)

    def test_cloudpickle_mismatch(self):
        d = self._staged(cloudpickle="1.6.0")
        job = ferry.submit(d, ["python3", "-m", "ferry._runner"])
        job.__class__ = ferry.FunctionJob
        job.function = "square"
        with self.assertRaises(ferry.VersionMismatch) as cm:
            job.result()
        self.assertIn("cloudpickle 1.6.0 in the notebook", str(cm.exception))
        self.assertIn("cloudpickle %s in the sandbox" % P.cloudpickle_version(), str(cm.exception))

    def test_check_versions(self):
        self.assertIsNone(P.check_versions(P.versions()))
        other = dict(P.versions(), cloudpickle=P.cloudpickle_version() + ".post1")
        self.assertIsNone(P.check_versions(other), "patch releases of cloudpickle are compatible")


if __name__ == "__main__":
    unittest.main()
