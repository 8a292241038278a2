"""What-if, for measurement only: the design floor if pyjwt imported PyJWKClient lazily.

pyjwt's package __init__ imports jwks_client, which pulls in urllib.request,
http.client, email and ssl, though decoding a token needs none of them. This
stands an empty module in for jwt.jwks_client, then runs the floor. azexec
never does this: it would be patching another package's internals.
"""

import runpy
import sys
import types
from pathlib import Path

stub = types.ModuleType("jwt.jwks_client")
stub.PyJWKClient = None  # type: ignore[attr-defined]
sys.modules["jwt.jwks_client"] = stub
sys.argv[0] = str(Path(__file__).with_name("floor.py"))
runpy.run_path(sys.argv[0], run_name="__main__")
