"""Optional dependencies in tests: skipped where missing, mandatory where CI says so.

A test may skip for a missing optional dependency only when the test is about that
dependency (the collector trains with torch; a comparison with torch's own Adam needs
torch). CI installs every optional dependency (``pip install -e '.[test]'``) and sets
``NAS_HARNESS_REQUIRE_OPTIONAL=1`` (``.ci/run``), so there a missing one fails the test
instead of skipping it.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require_module(name: str):
    """``import name``; skip without it, or fail under ``NAS_HARNESS_REQUIRE_OPTIONAL=1``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"optional dependency {name} is not importable ({exc}); pip install -e '.[test]'"
        if os.environ.get("NAS_HARNESS_REQUIRE_OPTIONAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg, allow_module_level=True)
