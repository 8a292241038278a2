"""azexec: run a command with an Azure access token in its environment only.

azexec writes nothing to disk, bytecode included. Whatever imports it first
(`python -m azexec`, the `azexec` command) turns Python's bytecode cache off
from here on; this file is compiled before it runs, so `python -m azexec` may
still cache this file's own bytecode where the install did not.
"""

import sys

sys.dont_write_bytecode = True
