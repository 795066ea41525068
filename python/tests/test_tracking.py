"""The in-job helpers: load_parameters, log_metric, log_param, set_tag, save_artifact."""

import io
import json
import math
import os
import unittest
from contextlib import redirect_stderr

from helpers import FakeCLITest

import ferry
from ferry import tracking


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class InJobTest(FakeCLITest):
    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)
        os.environ.update(FERRY_JOB_ID="01testjob", FERRY_OUTPUTS=self.out,
                          FERRY_PARAMS=json.dumps({"lr": 0.1, "layers": [64, 64]}))
        tracking._fds.clear()

    def tearDown(self):
        for fd in tracking._fds.values():
            os.close(fd)
        tracking._fds.clear()
        super().tearDown()

    def test_load_parameters_over_defaults(self):
        self.assertEqual(ferry.load_parameters({"lr": 1.0, "epochs": 3}),
                         {"lr": 0.1, "epochs": 3, "layers": [64, 64]})

    def test_load_parameters_from_file(self):
        del os.environ["FERRY_PARAMS"]
        p = os.path.join(self.tmp, "ferry_params.json")
        with open(p, "w") as f:
            json.dump({"n": 5}, f)
        os.environ["FERRY_PARAMS_FILE"] = p
        self.assertEqual(ferry.load_parameters(), {"n": 5})

    def test_metrics_numpy_and_any_name(self):
        import numpy as np
        ferry.log_metric("loss", np.float32(0.5), step=np.int64(3))
        ferry.log_metric("val/acc (%) — ünï \"q\"\n", np.float64(97.5))
        ferry.log_metric("hist", np.array([[1, 2], [3, 4]]))
        ferry.log_metric("flag", np.bool_(True))
        ferry.log_metric("bad", float("nan"))
        ferry.log_metric("big", -math.inf)
        recs = read_lines(os.path.join(self.out, "metrics.jsonl"))
        self.assertEqual([r["name"] for r in recs],
                         ["loss", "val/acc (%) — ünï \"q\"\n", "hist", "flag", "bad", "big"])
        self.assertEqual(recs[0]["value"], 0.5)
        self.assertEqual(recs[0]["step"], 3)
        self.assertIsNone(recs[1]["step"])
        self.assertEqual(recs[2]["value"], [[1, 2], [3, 4]])
        self.assertIs(recs[3]["value"], True)
        self.assertEqual(recs[4]["value"], "NaN")
        self.assertEqual(recs[5]["value"], "-Infinity")
        self.assertIsInstance(recs[0]["time"], float)

    def test_metric_value_not_json(self):
        with self.assertRaises(TypeError) as cm:
            ferry.log_metric("x", object())
        self.assertIn("metric 'x'", str(cm.exception))

    def test_metric_too_large_for_a_line(self):
        import numpy as np
        with self.assertRaises(ValueError) as cm:
            ferry.log_metric("weights", np.zeros(20000))
        self.assertIn("save_artifact", str(cm.exception))
        self.assertFalse(os.path.exists(os.path.join(self.out, "metrics.jsonl")))

    def test_params_and_tags(self):
        import numpy as np
        ferry.log_param("optimizer", "adam")
        ferry.log_param("widths", np.array([1, 2]))
        ferry.set_tag("team", "blue")
        self.assertEqual([(r["name"], r["value"]) for r in read_lines(os.path.join(self.out, "params.jsonl"))],
                         [("optimizer", "adam"), ("widths", [1, 2])])
        self.assertEqual(read_lines(os.path.join(self.out, "tags.jsonl"))[0]["value"], "blue")

    def test_save_artifact_file_and_dir(self):
        src = os.path.join(self.tmp, "model.bin")
        with open(src, "wb") as f:
            f.write(b"\x00weights")
        dest = ferry.save_artifact(src)
        self.assertEqual(str(dest), os.path.join(self.out, "artifacts", "model.bin"))
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"\x00weights")
        d = os.path.join(self.tmp, "plots")
        os.mkdir(d)
        with open(os.path.join(d, "a.txt"), "w") as f:
            f.write("a")
        ferry.save_artifact(d, name="figs")
        self.assertTrue(os.path.exists(os.path.join(self.out, "artifacts", "figs", "a.txt")))
        with self.assertRaises(FileNotFoundError):
            ferry.save_artifact(os.path.join(self.tmp, "missing"))

    def test_no_cli_call(self):
        ferry.log_metric("a", 1)
        self.assertEqual(self.calls(), [])


class OutsideJobTest(FakeCLITest):
    def setUp(self):
        super().setUp()
        tracking._warned = False
        tracking._fds.clear()

    def tearDown(self):
        for fd in tracking._fds.values():
            os.close(fd)
        tracking._fds.clear()
        super().tearDown()

    def test_local_and_says_so_once(self):
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(ferry.load_parameters({"a": 1}), {"a": 1})
            ferry.log_metric("loss", 0.25, step=1)
            ferry.set_tag("t", "v")
        self.assertEqual(err.getvalue().count("not inside a ferry job"), 1, err.getvalue())
        recs = read_lines(os.path.join(self.tmp, "ferry-local", "metrics.jsonl"))
        self.assertEqual(recs[0]["value"], 0.25)
        self.assertEqual(self.calls(), [], "no job may be created")
        self.assertFalse(ferry.in_job())

    def test_local_params_file(self):
        with open("ferry_params.json", "w") as f:
            json.dump({"n": 2}, f)
        with redirect_stderr(io.StringIO()):
            self.assertEqual(ferry.load_parameters({"n": 1, "m": 0}), {"n": 2, "m": 0})


if __name__ == "__main__":
    unittest.main()
