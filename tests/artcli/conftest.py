"""Fixtures of the `nemotron-art` operation tests (the store they read: helpers/pipeline_store.py)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.clitools import clean_env
from helpers.pipeline_store import build_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Any]:
    """A store holding the pipeline's lineage; tests that change it must work on a copy."""
    base = tmp_path_factory.mktemp("pipeline")
    root = build_pipeline(base)
    return {"base": base, "root": root, "data": base / "data", "env": clean_env()}
