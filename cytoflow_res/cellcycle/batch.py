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

__all__ = [
    "batch_linearity", "g2_is_placed", "needs_shared_linearity", "refit_with_linearity", "share_linearity",
]

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

    See Also
    --------
    batch_linearity, needs_shared_linearity, refit_with_linearity : The steps, for runs that
        do not keep every fit in memory.
    """
    from cytoflow_res.cellcycle.fit import CellCycleFit

    placed = [f.linearity for f in fits if isinstance(f, CellCycleFit) and g2_is_placed(f)]
    shared = batch_linearity(placed, min_placed=min_placed)
    if shared is None:
        return list(fits)
    return [refit_with_linearity(f, shared, n_placed=len(placed)) if needs_shared_linearity(f) else f
            for f in fits]


def batch_linearity(placed: Sequence[float], *, min_placed: int = 3) -> float | None:
    """The run's linearity: the median of the well-placed fits' own, or None if too few.

    Parameters
    ----------
    placed
        Linearity of each fit whose G2/M is placed (:func:`g2_is_placed`).
    min_placed
        Fewest such fits needed.

    Returns
    -------
    float or None
    """
    if len(placed) < min_placed:
        return None
    return float(np.median(placed))


def needs_shared_linearity(fit: Any) -> bool:
    """Whether :func:`share_linearity` would refit ``fit`` (a fitted linearity, G2/M not placed)."""
    from cytoflow_res.cellcycle.fit import CellCycleFit

    return (isinstance(fit, CellCycleFit) and fit.status != "failed" and not g2_is_placed(fit)
            and fit.spec.linearity is None)


def refit_with_linearity(fit: Any, shared: float, *, n_placed: int) -> Any:
    """Refit one sample with its linearity fixed at the run's (see :func:`share_linearity`).

    Parameters
    ----------
    fit
        A fit for which :func:`needs_shared_linearity` is true.
    shared
        The run's linearity (:func:`batch_linearity`).
    n_placed
        How many fits it is the median of (for the message).

    Returns
    -------
    CellCycleFit
        The refit, with a note in ``message``; ``fit`` itself if the refit failed.
    """
    from cytoflow_res.cellcycle.fit import fit_histogram

    own = fit.params["linearity"]
    refit = fit_histogram(fit.histogram, model=fit.spec.with_(linearity=shared),
                          g1_mean=fit.params["g1_mean"].value)
    if refit.status == "failed":
        return fit
    note = (
        f"G2/M too small or uncertain to place (own fit: linearity {own.value:.3f} "
        f"+/- {own.stderr:.3f}, G2/M {fit.fractions['g2m_pct']:.1f}%); linearity fixed at "
        f"{shared:.3f}, the median of {n_placed} fits in this batch with a well-placed G2/M"
    )
    message = f"{note}; {refit.message}" if refit.message else note
    log.info("%s: %s", fit.histogram.source or "sample", note)
    return replace(refit, message=message, candidates=fit.candidates)
