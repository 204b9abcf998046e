"""The Watson pragmatic model (Watson, Chambers & Smith 1987): an independent cross-check.

Only the outer halves of the peaks are trusted: a Gaussian is fitted to the left side of
the G0/G1 peak (which S phase does not reach) and to the right side of the G2/M peak;
S phase is whatever the two Gaussians leave between the peak means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

from cytoflow_res.cellcycle._phases import PhaseFractions
from cytoflow_res.cellcycle.histogram import DNAHistogram

__all__ = ["WatsonFit", "fit_watson"]


@dataclass
class WatsonFit(PhaseFractions):
    """Phase fractions from the Watson pragmatic model."""

    histogram: DNAHistogram
    g1_mean: float
    g1_sd: float
    g2_mean: float
    g2_sd: float
    status: str
    message: str
    fractions: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-safe dict of the result."""
        return {
            "model": "watson",
            "status": self.status,
            "message": self.message,
            **self.fractions,
            "g1_mean": self.g1_mean,
            "g2_mean": self.g2_mean,
            "g1_cv_pct": 100 * self.g1_sd / self.g1_mean if self.g1_mean else math.nan,
            "g2_cv_pct": 100 * self.g2_sd / self.g2_mean if self.g2_mean else math.nan,
            "linearity": self.g2_mean / self.g1_mean if self.g1_mean else math.nan,
        }


def _gauss(x: np.ndarray, area: float, mean: float, sd: float) -> np.ndarray:
    return area * np.exp(-0.5 * ((x - mean) / sd) ** 2) / (math.sqrt(2 * math.pi) * sd)


def _half_fit(x: np.ndarray, y: np.ndarray, peak: float, side: str) -> tuple[float, float, float]:
    sd0 = max(0.04 * peak, 0.8)
    if side == "left":
        sel = (x <= peak + 0.5) & (x >= peak - 4 * sd0)
    else:
        sel = (x >= peak - 0.5) & (x <= peak + 4 * sd0)
    p0 = (float(y[sel].sum()) * 2, peak, sd0)
    popt, _ = curve_fit(_gauss, x[sel], y[sel], p0=p0, sigma=np.sqrt(np.maximum(y[sel], 1.0)), maxfev=2000)
    return float(popt[0]), float(popt[1]), abs(float(popt[2]))


def fit_watson(hist: DNAHistogram, *, g1_mean: float | None = None) -> WatsonFit:
    """Fit the Watson pragmatic model.

    Parameters
    ----------
    hist
        The DNA histogram.
    g1_mean
        G0/G1 position in channels; the tallest peak when omitted.

    Returns
    -------
    WatsonFit
        ``status`` is ``"failed"`` with a message when the peaks cannot be fitted.
    """
    lo, hi = hist.fit_range
    x = hist.channel_centers[lo:hi]
    y = hist.counts[lo:hi].astype(float)
    g1 = float(g1_mean) if g1_mean is not None else float(x[np.argmax(y)])
    near = (x > 1.7 * g1) & (x < 2.2 * g1)
    if not near.any():
        return WatsonFit(hist, g1, math.nan, math.nan, math.nan, "failed", "no room for a G2/M peak", {})
    g2 = float(x[near][np.argmax(y[near])])
    try:
        a1, m1, s1 = _half_fit(x, y, g1, "left")
        a2, m2, s2 = _half_fit(x, y, g2, "right")
    except (RuntimeError, ValueError) as exc:
        return WatsonFit(hist, g1, math.nan, g2, math.nan, "failed", f"half-peak fit failed: {exc}", {})
    between = (x >= m1) & (x <= m2)
    rest = y[between] - _gauss(x[between], a1, m1, s1) - _gauss(x[between], a2, m2, s2)
    s_area = float(np.clip(rest, 0, None).sum())
    total = a1 + a2 + s_area
    fr = {"g0g1_pct": 100 * a1 / total, "s_pct": 100 * s_area / total, "g2m_pct": 100 * a2 / total}
    return WatsonFit(hist, m1, s1, m2, s2, "ok", "", fr)
