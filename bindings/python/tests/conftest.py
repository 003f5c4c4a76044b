import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)

# Children must never be forked from a process running the Go runtime.
try:
    multiprocessing.set_start_method("spawn")
except RuntimeError:
    pass


def run_python(code: str, timeout: float = 60.0, env: "dict[str, str] | None" = None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with this package importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = PKG_ROOT + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=e)


@pytest.fixture
def py():
    return run_python
