"""The Python matrix: the fast loop on every Python azexec supports (`.ci/run` runs it).

The full suite runs once, on the default python3, through the README's test
command; here each supported minor version runs `pytest -m "not slow"` in a
virtual environment of its own. A missing interpreter is an error, never a
skip: a matrix that quietly shrinks proves nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

#: The versions pyproject.toml's requires-python admits, up to the newest released.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["fast"]
nox.options.default_venv_backend = "venv"


def _pyenv_versions() -> None:
    """Let pyenv's shims find python3.X for every version it has installed, the selected one still first.

    Its shims answer only for the selected versions (PYENV_VERSION, `pyenv global`);
    CI machines here have 3.10 to 3.13 installed under pyenv, with 3.11 selected.
    """
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pyenv = shutil.which("pyenv")
    if pyenv is None or not os.path.isdir(f"{root}/versions"):
        return
    selected = subprocess.run([pyenv, "version-name"], capture_output=True, text=True, check=False).stdout.strip()
    newest = [sorted(glob.glob(f"{root}/versions/{version}.*"))[-1:] for version in PYTHONS]
    names = [os.path.basename(path) for paths in newest for path in paths]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*selected.split(":"), *names]))


_pyenv_versions()


@nox.session(python=PYTHONS)
def fast(session: nox.Session) -> None:
    """Run the fast loop (not the slow end-to-end suites) on one Python."""
    session.install("-q", "-e", ".[test]")
    session.run("python", "-c", "import sys; print(sys.version)")
    session.run("python", "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *session.posargs)
