"""Batch-level steps of cell-cycle fitting: one instrument linearity for a run.

The G2/G1 ratio (linearity) is a property of the instrument and the run, not of a sample.
In samples with few G2/M cells the G2/M peak cannot be placed: its fitted position drifts to
wherever it best soaks up doublets or a bump in S phase. ModFit LT handles this by making
G2/M "dependent" (its position fixed at the G1 position times the run's linearity).
:func:`share_linearity` does that automatically: the linearity of the fits whose G2/M is
well placed is shared with the ones whose G2/M is not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

__all__ = ["g2_is_placed", "share_linearity"]

log = logging.getLogger(__name__)

#: A G2/M peak is "placed" when it holds at least this share of the cycling cells ...
MIN_G2_PCT = 5.0
#: ... and its fitted linearity has at most this standard error and is off its bounds.
MAX_LINEARITY_SE = 0.02


def g2_is_placed(fit: Any) -> bool:
    """Whether a fit's G2/M position (hence its linearity) is determined by the data.

    Parameters
    ----------
    fit
        A :class:`~cytoflow_res.cellcycle.fit.CellCycleFit`.

    Returns
    -------
    bool
        True when the fit is not failed, its linearity was fitted (not fixed), sits off its
        bounds with a standard error of at most :data:`MAX_LINEARITY_SE`, and G2/M holds at
        least :data:`MIN_G2_PCT` % of the cycling cells.
    """
    params = getattr(fit, "params", None)
    if not params or getattr(fit, "status", "failed") == "failed" or "linearity" not in params:
        return False
    lin = params["linearity"]
    g2 = fit.fractions.get("g2m_pct", math.nan)
    return bool(
        lin.vary
        and not lin.at_bound
        and math.isfinite(lin.stderr)
        and lin.stderr <= MAX_LINEARITY_SE
        and math.isfinite(g2)
        and g2 >= MIN_G2_PCT
    )


def share_linearity(fits: Sequence[Any], *, min_placed: int = 3) -> list[Any]:
    """Refit the samples whose G2/M cannot be placed with the batch's linearity.

    Parameters
    ----------
    fits
        Fits of one run (same instrument and settings). Items that are not Dean-Jett-Fox
        fits (Watson fits, None, failed fits) are passed through unchanged.
    min_placed
        How many fits with a well-placed G2/M (see :func:`g2_is_placed`) are needed to set
        the batch linearity; with fewer, every fit is returned unchanged.

    Returns
    -------
    list
        The fits, in order; a refitted one has its linearity fixed at the median of the
        well-placed fits and says so (with its own free-fit value) in ``message``.
    """
    from cytoflow_res.cellcycle.fit import CellCycleFit, fit_histogram

    placed = [f.linearity for f in fits if isinstance(f, CellCycleFit) and g2_is_placed(f)]
    if len(placed) < min_placed:
        return list(fits)
    shared = float(np.median(placed))
    out: list[Any] = []
    for fit in fits:
        if not isinstance(fit, CellCycleFit) or fit.status == "failed" or g2_is_placed(fit):
            out.append(fit)
            continue
        if fit.spec.linearity is not None:  # fixed by the user: leave it
            out.append(fit)
            continue
        own = fit.params["linearity"]
        refit = fit_histogram(fit.histogram, model=fit.spec.with_(linearity=shared),
                              g1_mean=fit.params["g1_mean"].value)
        if refit.status == "failed":
            out.append(fit)
            continue
        note = (
            f"G2/M too small or uncertain to place (own fit: linearity {own.value:.3f} "
            f"+/- {own.stderr:.3f}, G2/M {fit.fractions['g2m_pct']:.1f}%); linearity fixed at "
            f"{shared:.3f}, the median of {len(placed)} fits in this batch with a well-placed G2/M"
        )
        message = f"{note}; {refit.message}" if refit.message else note
        log.info("%s: %s", fit.histogram.source or "sample", note)
        out.append(replace(refit, message=message, candidates=fit.candidates))
    return out
