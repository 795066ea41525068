"""The package installs offline: `pip install --no-build-isolation ./python`
into a venv that sees Debian's cloudpickle and setuptools."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import PYDIR


class InstallTest(unittest.TestCase):
    def test_pip_install_offline(self):
        with tempfile.TemporaryDirectory(prefix="ferry-install-") as tmp:
            src = os.path.join(tmp, "python")
            shutil.copytree(PYDIR, src, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
            venv = os.path.join(tmp, "venv")
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True,
                           capture_output=True)
            py = os.path.join(venv, "bin", "python")
            cp = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", "-q", src],
                                capture_output=True, text=True, timeout=300, cwd=tmp)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            cp = subprocess.run([py, "-c", "import ferry, ferry._runner; print(ferry.__file__, ferry.__version__)"],
                                capture_output=True, text=True, cwd=tmp, env={"PATH": "/usr/bin:/bin"})
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn(os.path.join(venv, "lib"), cp.stdout)


if __name__ == "__main__":
    unittest.main()
