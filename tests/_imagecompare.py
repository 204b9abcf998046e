"""Compare a figure with a baseline PNG in ``tests/baseline/``.

Baselines are small (about 90 x 60 mm at 100 dpi) and drawn with DejaVu Sans, the font that
ships with matplotlib, so they render the same on every machine with the same matplotlib.
The comparison allows an RMS difference of ``tol`` (grey levels, 0-255) for small
anti-aliasing differences between FreeType builds.

To (re)generate the baselines after an intended change of a figure::

    CYTOFLOW_RES_UPDATE_BASELINES=1 python -m pytest tests/test_plot_summary.py

then LOOK at the images in ``tests/baseline/`` before committing them. The image tests skip
while the variable is set (they have nothing to compare with).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib as mpl
import pytest
from matplotlib.figure import Figure
from matplotlib.testing.compare import compare_images
from matplotlib.testing.exceptions import ImageComparisonFailure

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"
UPDATE_ENV = "CYTOFLOW_RES_UPDATE_BASELINES"
DPI = 100

# What matplotlib's own image tests fix so that text renders the same everywhere
# (matplotlib.testing.set_font_settings_for_testing; the figures use DejaVu Sans already).
_RENDER_RC: Any = {"text.hinting": "default", "text.antialiased": True}
_HOW_TO = (
    f"(re)generate the baselines with `{UPDATE_ENV}=1 python -m pytest tests/test_plot_summary.py`, "
    "look at the images in tests/baseline/, and commit them"
)


def updating() -> bool:
    """Whether the baselines are being regenerated (the environment variable is 1/true/yes)."""
    return os.environ.get(UPDATE_ENV, "").strip().lower() in {"1", "true", "yes"}


def render(fig: Figure, path: Path, *, dpi: float = DPI) -> Path:
    """Write the figure as a PNG with the test text settings and no metadata that varies."""
    with mpl.rc_context(_RENDER_RC):
        fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    return path


def check_figure(fig: Figure, name: str, out_dir: Path, *, tol: float = 2.0, dpi: float = DPI) -> None:
    """Fail unless ``fig`` looks like ``tests/baseline/<name>.png`` (RMS difference <= tol).

    With ``CYTOFLOW_RES_UPDATE_BASELINES=1`` the baseline is written instead and the test
    skips. On a mismatch the rendered image and a difference image are left in ``out_dir``
    and named in the message.
    """
    expected = BASELINE_DIR / f"{name}.png"
    actual = render(fig, out_dir / f"{name}.png", dpi=dpi)
    if updating():
        BASELINE_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(actual, expected)
        pytest.skip(f"baseline written: {expected}; look at it before committing")
    if not expected.exists():
        pytest.fail(f"no baseline image {expected}; {_HOW_TO}")
    try:
        result = compare_images(str(expected), str(actual), tol=tol, in_decorator=True)
    except ImageComparisonFailure as exc:  # e.g. the image sizes differ
        pytest.fail(f"{name}: {exc}; rendered image: {actual}; if the change is intended, {_HOW_TO}")
    if result is not None:
        pytest.fail(
            f"{name}: the figure differs from {expected} (RMS {result['rms']:.2f} > tol {tol}); "
            f"rendered: {actual}; difference: {result['diff']}; if the change is intended, {_HOW_TO}"
        )
