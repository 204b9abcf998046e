"""Writing result tables: atomically, so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["write_csv_atomic"]


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as CSV through a temporary file renamed into place.

    Parameters
    ----------
    frame
        The table.
    path
        Destination.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
