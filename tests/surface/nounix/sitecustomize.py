"""Make this Python look like Windows's to azexec: no resource, fcntl or termios module.

On PYTHONPATH for the test of azexec's refusal to run there. It takes itself
off PYTHONPATH at once, so that nothing azexec starts inherits it.
"""

from __future__ import annotations

import os
import sys

for name in ("resource", "fcntl", "termios"):
    sys.modules[name] = None  # type: ignore[assignment]  # import then raises ImportError

here = os.path.dirname(os.path.abspath(__file__))
rest = [
    entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry and os.path.abspath(entry) != here
]
if rest:
    os.environ["PYTHONPATH"] = os.pathsep.join(rest)
else:
    os.environ.pop("PYTHONPATH", None)
