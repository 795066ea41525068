"""The CLI wrapper, submit, Job and Sweep against a fake ferry command."""

import io
import json
import os
import threading
import time
import unittest

from helpers import FakeCLITest

import ferry
from ferry import _cli
from ferry import _payload as P


class CLITest(FakeCLITest):
    def test_exit_codes_map_to_errors(self):
        for rc, cls in ((2, ferry.BadInput), (4, ferry.JobNotFound), (5, ferry.SlurmUnavailable),
                        (1, ferry.CLIError)):
            os.environ["FAKE_FERRY_RC"] = str(rc)
            os.environ["FAKE_FERRY_ERR"] = "submitting...\nferry: the thing went wrong\n"
            with self.assertRaises(cls) as cm:
                _cli.run(["status", "x"])
            self.assertEqual(cm.exception.code, rc)
            self.assertEqual(str(cm.exception), "ferry status x: the thing went wrong")

    def test_missing_binary(self):
        os.environ["FERRY_BIN"] = os.path.join(self.tmp, "no-such-ferry")
        with self.assertRaises(ferry.CLIError) as cm:
            ferry.Job("abc")
        self.assertIn("FERRY_BIN", str(cm.exception))

    def test_bad_json(self):
        p = os.path.join(self.tmp, "out.txt")
        with open(p, "w") as f:
            f.write("not json")
        os.environ["FAKE_FERRY_OUT"] = p
        with self.assertRaises(ferry.CLIError):
            _cli.run_json(["status", "-o", "json", "x"])

    def test_resource_flags(self):
        self.assertEqual(_cli.resource_flags({"cpus": 2, "mem": "4G", "time": "10m", "env": {"A": "b c"}}),
                         ["--cpus", "2", "--mem", "4G", "--time", "10m", "--env", "A=b c"])
        with self.assertRaises(TypeError):
            _cli.resource_flags({"memory": "4G"})


class SubmitTest(FakeCLITest):
    def setUp(self):
        super().setUp()
        self.proj = os.path.join(self.tmp, "proj")
        os.mkdir(self.proj)
        with open(os.path.join(self.proj, "main.py"), "w") as f:
            f.write("import json, os\nprint('params', os.environ['FERRY_PARAMS'])\n"
                    "open(os.path.join(os.environ['FERRY_OUTPUTS'], 'r.txt'), 'w').write('hi')\n")

    def test_submit_params_and_job_methods(self):
        import numpy as np
        job = ferry.submit(self.proj, "python3 main.py", params={"n": np.int64(5), "lr": 0.1}, cpus=2)
        argv = self.calls()[0]
        self.assertEqual(argv[:3], ["submit", "-o", "json"])
        self.assertEqual(argv[argv.index("--cpus") + 1], "2")
        self.assertIn("--params", argv)
        self.assertEqual(argv[-3:], ["--", "python3", "main.py"])
        self.assertFalse(os.path.exists(argv[argv.index("--params") + 1]), "temp params file removed")
        res = job.wait(timeout=10).result()
        self.assertEqual(res["state"], "succeeded")
        self.assertIn('"n": 5', job.logs())
        dest = job.outputs(os.path.join(self.tmp, "got"))
        with open(dest / "outputs" / "r.txt") as f:
            self.assertEqual(f.read(), "hi")
        self.assertTrue(job.done())
        html = job._repr_html_()
        self.assertIn(job.id[:10], html)
        self.assertIn("succeeded", html)

    def test_failed_job_raises_with_log(self):
        job = ferry.submit(self.proj, ["python3", "-c", "import sys; print('boom'); sys.exit(3)"])
        with self.assertRaises(ferry.JobFailed) as cm:
            job.result()
        self.assertEqual(cm.exception.exit_code, 3)
        self.assertIn("boom", str(cm.exception))

    def test_attach_by_id(self):
        job = ferry.submit(self.proj, "true")
        again = ferry.Job(job.id)
        self.assertEqual(str(again.dir), str(job.dir))
        with self.assertRaises(ferry.JobNotFound):
            ferry.Job("nope")


class WaitTest(FakeCLITest):
    def _pending_job(self):
        d = os.path.join(self.spool, "01pending")
        os.makedirs(os.path.join(d, "outputs"))
        return ferry.FunctionJob("01pending", dir=d, function="f"), d

    def test_result_file_ends_the_wait(self):
        # ferry status keeps saying "running": only the result file in the
        # job dir can end this wait. (How fast it is seen is measured by the
        # ferry.run benchmark, not asserted here.)
        job, d = self._pending_job()
        self.canned({"id": job.id, "state": "running"})
        import cloudpickle

        def finish():
            time.sleep(0.3)
            P.atomic_write(os.path.join(d, "outputs", P.RESULT_VALUE), cloudpickle.dumps(42))
            P.atomic_write(os.path.join(d, "outputs", P.RESULT_META),
                           json.dumps({"format": P.RESULT_FORMAT, "ok": True, "value_file": P.RESULT_VALUE}).encode())
        t = threading.Thread(target=finish)
        t.start()
        job.wait(timeout=60, progress=False)
        t.join()
        self.assertEqual(job.result(), 42)

    def test_timeout(self):
        job, _ = self._pending_job()
        self.canned({"id": job.id, "state": "running"})
        with self.assertRaises(TimeoutError) as cm:
            job.wait(timeout=0.2, progress=False)
        self.assertIn("1 of 1 job(s) still running after 0.2 s", str(cm.exception))
        self.assertIn(job.id, str(cm.exception))

    def test_queued_status_line_says_where_it_stands(self):
        job, _ = self._pending_job()
        self.canned({"id": job.id, "state": "queued", "reason": "waiting for a free node",
                     "queue_position": 3, "queue_length": 12, "est_start": "2026-12-06T10:05:00Z"})
        html = job._repr_html_()
        self.assertIn("queued", html)
        self.assertIn("waiting for a free node", html)
        self.assertIn("number 3 of 12 in the queue", html)
        self.assertIn("Slurm expects it to start at", html)

    def test_job_ended_without_files_is_seen_through_status(self):
        # Cancelled while queued: no result.json, ferry status says cancelled.
        job, d = self._pending_job()
        with open(os.path.join(d, "result.json.fake"), "w"):
            pass
        self.canned({"id": job.id, "state": "cancelled", "reason": "cancelled while queued"})
        with self.assertRaises(ferry.JobFailed) as cm:
            job.result(timeout=60)
        self.assertEqual(cm.exception.state, "cancelled")
        self.assertEqual(cm.exception.reason, "cancelled while queued")

    def test_epilog_record_defers_to_status(self):
        # The epilog wrote result.json (the sandbox never started) while
        # Slurm still said COMPLETING; ferry status knows it was cancelled.
        job, d = self._pending_job()
        with open(os.path.join(d, "result.json"), "w") as f:
            json.dump({"state": "failed", "reason": "the job ended before its sandbox started",
                       "exit_code": -1, "written_by": "epilog"}, f)
        self.canned({"id": job.id, "state": "cancelled", "reason": "cancelled before it started"})
        with self.assertRaises(ferry.JobFailed) as cm:
            job.result(timeout=60)
        self.assertEqual(cm.exception.state, "cancelled")
        self.assertEqual(cm.exception.reason, "cancelled before it started")

    def test_progress_line_on_tty(self):
        from ferry._display import Progress
        buf = io.StringIO()
        buf.isatty = lambda: True
        import sys
        old = sys.stderr
        sys.stderr = buf
        try:
            p = Progress(True, delay=0, every=0)
            p.update(lambda: "ferry function x: running · 1.0 s")
            p.close("ferry function x: returned · 1.2 s")
        finally:
            sys.stderr = old
        self.assertIn("\rferry function x: running", buf.getvalue())
        self.assertTrue(buf.getvalue().endswith("returned · 1.2 s\n"))


class SweepTest(FakeCLITest):
    def setUp(self):
        super().setUp()
        self.proj = os.path.join(self.tmp, "sw")
        os.mkdir(self.proj)
        with open(os.path.join(self.proj, "train.py"), "w") as f:
            f.write("import ferry\np = ferry.load_parameters()\n"
                    "ferry.log_metric('loss', (p['x'] - 2) ** 2)\nferry.log_metric('acc', p['x'])\n")

    def test_sweep_best_and_table(self):
        s = ferry.sweep(self.proj, "python3 train.py", spec={"params": {"x": [0, 1, 2, 3]}}, max_parallel=2)
        argv = self.calls()[0]
        self.assertEqual(argv[argv.index("--max-parallel") + 1], "2")
        spec_arg = argv[argv.index("--spec") + 1]
        self.assertFalse(os.path.exists(spec_arg), "temp spec file removed")
        self.assertEqual(len(s), 4)
        self.assertEqual([t.params for t in s.tasks], [{"x": 0}, {"x": 1}, {"x": 2}, {"x": 3}])
        s.wait(timeout=10, progress=False)
        self.assertEqual(s.best("loss")["params"], {"x": 2})
        self.assertEqual(s.best("acc", mode="max")["params"], {"x": 3})
        self.assertIsNone(s.best("nope"))
        rows = s.show(sort="loss")
        self.assertEqual([r["index"] for r in rows][:2], [2, 1])
        self.assertIn("--sort=loss", self.calls()[-1], "the CLI sorts")
        rows = s.show(sort="acc", descending=True)
        self.assertEqual([r["index"] for r in rows], [3, 2, 1, 0])
        self.assertIn("--sort=-acc", self.calls()[-1])
        table = s.table(sort="loss")
        self.assertIn("loss", table.splitlines()[0])
        self.assertIn("<table>", s._repr_html_())
        with self.assertRaises(ValueError):
            s.best("loss", mode="lowest")

    def test_sweep_spec_unknown_key_is_named(self):
        with self.assertRaises(ferry.BadInput) as cm:
            ferry.sweep(self.proj, "true", spec={"x": [0, 1]})
        self.assertIn('unknown key "x"', str(cm.exception))
        self.assertIn("spec", str(cm.exception))

    def test_sweep_args(self):
        with self.assertRaises(ValueError):
            ferry.sweep(self.proj, "true")
        with self.assertRaises(ValueError):
            ferry.sweep(self.proj, "true", params_list=[{}], max_parallel=0)
        s = ferry.sweep(self.proj, ["python3", "train.py"], params_list=[{"x": 5}])
        self.assertEqual(s.tasks[0].params, {"x": 5})


if __name__ == "__main__":
    unittest.main()
