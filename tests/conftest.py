"""Hypothesis profiles: under CI=true the property tests are deterministic.

``ci`` derives every example from the test itself (derandomize: the same
examples on every run, so a red CI run is reproducible and a green one is not
luck), keeps no example database, and has no deadline (the suite must pass on
a Raspberry Pi 3, ~10x slower than a desktop).  Tests that set max_examples
keep theirs; the rest run a fixed 100.  Elsewhere the default profile explores
new examples each run.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=100)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")
