"""The choices that option help texts name, copied from the modules that implement them.

Help texts are built when the CLI is assembled, on every command including `posttrain --help`; importing the
checkers for `MODES` would import NLTK, and with it SciPy, for one line of help. The modules
that act on a choice validate it against the original; tests/cli/test_startup.py asserts these copies equal it.
"""

from __future__ import annotations

CHECKER_MODES = ("ifeval", "fixed")  # posttrain.constraints.MODES
CONTRASTS = ("high", "low", "mixed", "cgpo")  # posttrain.pairs.rejection.CONTRASTS
RECORD_KINDS = ("prompt", "sample", "verdict", "pair", "group")  # posttrain.cli.records.record_class
