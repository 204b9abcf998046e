"""Shared fixtures: locating the real-data sets beside the project.

``CYTOFLOW_RES_SHARED_DATA`` points at ``../shared/data``. When it is set (CI), a test that
needs a missing file FAILS; when it is unset (a user's fresh clone), such tests skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_ENV = "CYTOFLOW_RES_SHARED_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_root() -> Path | None:
    """The shared data folder, or None when the variable is unset."""
    value = os.environ.get(SHARED_ENV, "").strip()
    return Path(value) if value else None


def shared_file(*parts: str) -> Path:
    """Path of a shared data file; skip if the variable is unset, fail if the file is missing."""
    root = shared_root()
    if root is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{SHARED_ENV}={root} is set but {path} does not exist")
    return path


@pytest.fixture
def shared() -> Path:
    """The shared data root (skips when unset, fails when it does not exist)."""
    root = shared_root()
    if root is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    if not root.is_dir():
        pytest.fail(f"{SHARED_ENV}={root} is not a directory")
    return root


@pytest.fixture
def example_dir() -> Path:
    """The project's own simulated example experiment."""
    return REPO_ROOT / "example_fcs"
