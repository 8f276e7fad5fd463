"""Shared test set-up.

- The firmware tree is importable as ``pen`` under CPython.
- Hypothesis: under CI (``CI`` set) the examples are derived from each test's name,
  so a run is repeatable and a landing never depends on luck; locally every run
  draws new examples (and keeps failing ones in .hypothesis/). Long fuzzing runs
  belong in bench/.
"""

import os
import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

# Tests never touch the keyring of the person running them: keys go to owner-only
# files in each test's SCALPPEN_HOME (tests/cli/test_keys_at_rest.py starts a keyring
# of its own and unsets this for the commands it runs).
os.environ["SCALPPEN_KEYRING"] = "off"
# ... and never write into the home of the person running them: a test that names no
# SCALPPEN_HOME of its own gets one for the whole run.
if not os.environ.get("SCALPPEN_HOME"):
    import tempfile

    os.environ["SCALPPEN_HOME"] = tempfile.mkdtemp(prefix="scalppen-test-home-")

# the store's engines: ``db_target`` (SQLite and PostgreSQL), ``pg_url``
pytest_plugins = ["tests.engines"]

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
