"""Helpers more than one test suite uses; a suite's own helpers stay in its directory."""
