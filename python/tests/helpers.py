"""Shared set-up for the unit tests: the package on the path, and a fake
ferry CLI (fake_ferry.py) with its own spool in a temp dir."""

import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

FAKE = os.path.join(HERE, "fake_ferry.py")


class FakeCLITest(unittest.TestCase):
    """Each test gets FERRY_BIN = the fake, a spool, and a log of the calls."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="ferry-test-")
        self.tmp = self._tmp.name
        self.spool = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool)
        self.calls_file = os.path.join(self.tmp, "calls.jsonl")
        self._env = {k: os.environ.get(k) for k in
                     ("FERRY_BIN", "FAKE_FERRY_SPOOL", "FAKE_FERRY_LOG", "FAKE_FERRY_RC", "FAKE_FERRY_ERR",
                      "FAKE_FERRY_OUT", "PYTHONPATH", "FERRY_JOB_ID", "FERRY_OUTPUTS", "FERRY_PARAMS",
                      "FERRY_PARAMS_FILE", "FERRY_LOCAL_DIR", "FAKE_FERRY_PYTHON")}
        for k in self._env:
            os.environ.pop(k, None)
        os.environ.update(FERRY_BIN=FAKE, FAKE_FERRY_SPOOL=self.spool, FAKE_FERRY_LOG=self.calls_file,
                          PYTHONPATH=PYDIR, FAKE_FERRY_PYTHON=sys.executable)
        self._cwd = os.getcwd()
        os.chdir(self.tmp)

    def tearDown(self):
        os.chdir(self._cwd)
        for k, v in self._env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._tmp.cleanup()

    def calls(self):
        if not os.path.exists(self.calls_file):
            return []
        with open(self.calls_file) as f:
            return [json.loads(line) for line in f]

    def canned(self, doc):
        """Make the fake print doc (as JSON) for every call."""
        p = os.path.join(self.tmp, "canned.json")
        with open(p, "w") as f:
            json.dump(doc, f)
        os.environ["FAKE_FERRY_OUT"] = p
