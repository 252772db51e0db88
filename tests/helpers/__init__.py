"""Helpers shared by the tests (importable as `helpers.X`: pytest's pythonpath is tests/)."""
