"""The phase-fraction accessors shared by every cell-cycle result type."""

from __future__ import annotations

import math


class PhaseFractions:
    """Mixin: ``g0g1_pct``, ``s_pct``, ``g2m_pct`` read from a ``fractions`` dict."""

    fractions: dict[str, float]

    @property
    def g0g1_pct(self) -> float:
        """% G0/G1 of cycling cells."""
        return self.fractions.get("g0g1_pct", math.nan)

    @property
    def s_pct(self) -> float:
        """% S of cycling cells."""
        return self.fractions.get("s_pct", math.nan)

    @property
    def g2m_pct(self) -> float:
        """% G2/M of cycling cells."""
        return self.fractions.get("g2m_pct", math.nan)
