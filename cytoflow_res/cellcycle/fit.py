"""Fit Dean-Jett-Fox models to DNA histograms (variable projection + NNLS)."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import OptimizeWarning, least_squares, nnls
from scipy.signal import find_peaks

from cytoflow_res.cellcycle import lineshapes as ls
from cytoflow_res.cellcycle._phases import PhaseFractions
from cytoflow_res.cellcycle.histogram import DNAHistogram, describe, dna_histogram
from cytoflow_res.cellcycle.model import (
    SUB_G1_SKEW,
    Component,
    ModelSpec,
    NonlinearParam,
    build_basis,
    nonlinear_params,
)
from cytoflow_res.errors import FitError
from cytoflow_res.sample import Sample

__all__ = [
    "MAX_G1_CV", "MIN_SINGLETS", "RCS_RANGE", "CellCycleFit", "ParamValue", "fit_cell_cycle", "fit_histogram",
]

log = logging.getLogger(__name__)

AUTO_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"debris": "single_cut", "aggregates": True, "sub_g1": True},
    {"debris": "single_cut", "aggregates": True, "sub_g1": False},
    {"debris": "exponential", "aggregates": True, "sub_g1": True},
    {"debris": "exponential", "aggregates": True, "sub_g1": False},
    {"debris": "none", "aggregates": True, "sub_g1": True},
    {"debris": "none", "aggregates": True, "sub_g1": False},
    {"debris": "single_cut", "aggregates": False, "sub_g1": False},
    {"debris": "none", "aggregates": False, "sub_g1": False},
)


@dataclass(frozen=True)
class ParamValue:
    """A fitted parameter with its standard error and bounds (lmfit-style)."""

    name: str
    value: float
    stderr: float
    lower: float = -math.inf
    upper: float = math.inf
    vary: bool = True

    @property
    def at_bound(self) -> bool:
        """True if the value sits on (within 0.1% of the span of) a finite bound."""
        span = self.upper - self.lower
        tol = 1e-3 * span if math.isfinite(span) and span > 0 else 1e-9
        return self.vary and (abs(self.value - self.lower) <= tol or abs(self.value - self.upper) <= tol)


@dataclass
class CellCycleFit(PhaseFractions):
    """The result of fitting a cell-cycle model to one DNA histogram.

    The fractions and their denominators:

    ``g0g1_pct``, ``s_pct``, ``g2m_pct``
        Percentages of the modelled cycling cells (both cycles if a second one is fitted);
        they sum to 100 (the ModFit convention).
    ``sub_g1_pct``
        Modelled sub-G1 events as a percentage of all modelled single cells, sub-G1 plus
        cycling: ``100 * A_subG1 / (A_subG1 + A_G0/G1 + A_S + A_G2/M)``, each ``A`` a
        component's whole area (events), including any part below the first fitted bin.
        Debris and aggregates are not single cells and are not in the denominator, as with a
        sub-G1 gate on singlets after a scatter gate that excludes debris. So
        ``g0g1_pct * (100 - sub_g1_pct) / 100`` is the percentage of single cells in G0/G1.
    ``debris_pct``, ``aggregates_pct``
        Percentages of all events in the histogram (every event kept by doublet
        discrimination, ``histogram.events_singlets``). Debris is the modelled debris inside
        the fit range plus the events below the fit range that the other components do not
        account for (the fit leaves those noise and debris channels out, but they are events
        all the same); aggregates are the whole modelled aggregate component.
    """

    histogram: DNAHistogram
    spec: ModelSpec
    params: dict[str, ParamValue]
    components: list[Component]
    amplitudes: np.ndarray
    success: bool
    status: Literal["ok", "warn", "failed"]
    message: str
    chisqr: float
    redchi: float
    aic: float
    bic: float
    n_data: int
    n_varys: int
    nfev: int
    fractions: dict[str, float] = field(default_factory=dict)
    fraction_errors: dict[str, float] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    # ---------------------------------------------------------------- numbers
    @property
    def linearity(self) -> float:
        """G2/G1 mean ratio (fitted or fixed)."""
        if "linearity" in self.params:
            return self.params["linearity"].value
        return float(self.spec.linearity or math.nan)

    @property
    def rcs(self) -> float:
        """Reduced chi-square (Poisson weights, the fit's own objective)."""
        return self.redchi

    def _value(self, name: str) -> float:
        p = self.params.get(name)
        return p.value if p is not None else math.nan

    def peak_cv(self, which: Literal["g1", "g2", "b_g1"] = "g1") -> float:
        """CV (fraction) of a fitted peak: its standard deviation over its mean.

        For Gaussian peaks this is the fitted CV; with ``peak_tail`` the exponential tail
        adds to the spread and moves the mean, so the CV is that of the whole skewed peak
        (``sqrt(cv**2 + tail**2) / (1 - tail)``), comparable with a Gaussian fit's.
        """
        name = {"g1": "g1_cv", "g2": "g2_cv", "b_g1": "b_g1_cv"}[which]
        cv = self._value(name) if name in self.params else self._value("g1_cv")
        tail = self._value("peak_tail") if "peak_tail" in self.params else 0.0
        return _effective_cv(cv, tail)

    def summary(self) -> dict[str, Any]:
        """JSON-safe dict of the result (numbers, flags, parameters with errors)."""
        g1 = self._value("g1_mean")
        cv1 = self.peak_cv("g1")
        cv2 = self.peak_cv("g2")
        out: dict[str, Any] = {
            "model": self.spec.name,
            "status": self.status,
            "message": self.message,
            "success": self.success,
            **{k: _clean(v) for k, v in self.fractions.items()},
            **{f"{k}_err": _clean(v) for k, v in self.fraction_errors.items()},
            "g1_mean": _clean(g1),
            "g2_mean": _clean(g1 * self.linearity),
            "g1_cv_pct": _clean(100 * cv1),
            "g2_cv_pct": _clean(100 * cv2),
            "linearity": _clean(self.linearity),
            "rcs": _clean(self.redchi),
            "chisqr": _clean(self.chisqr),
            "aic": _clean(self.aic),
            "bic": _clean(self.bic),
            "n_data": self.n_data,
            "n_varys": self.n_varys,
            "nfev": self.nfev,
            "histogram": describe(self.histogram),
            "params": {
                k: {"value": _clean(p.value), "stderr": _clean(p.stderr), "vary": p.vary}
                for k, p in self.params.items()
            },
        }
        if self.spec.second_cycle:
            b1 = self._value("b_g1_mean")
            out["b_g1_mean"] = _clean(b1)
            out["b_g1_cv_pct"] = _clean(100 * self.peak_cv("b_g1"))
            out["dna_index"] = _clean(b1 / g1 if g1 else math.nan)
        return out

    def to_frame(self) -> Any:
        """One tidy row (pandas DataFrame) in the column order of ``cellcycle.csv``."""
        import pandas as pd

        s = self.summary()
        row = {
            "events_total": self.histogram.events_total,
            "events_singlets": self.histogram.events_singlets,
            "g0g1_pct": s.get("g0g1_pct"),
            "s_pct": s.get("s_pct"),
            "g2m_pct": s.get("g2m_pct"),
            "sub_g1_pct": s.get("sub_g1_pct"),
            "debris_pct": s.get("debris_pct"),
            "aggregates_pct": s.get("aggregates_pct"),
            "g1_mean": s["g1_mean"],
            "g2_mean": s["g2_mean"],
            "g1_cv_pct": s["g1_cv_pct"],
            "g2_cv_pct": s["g2_cv_pct"],
            "linearity": s["linearity"],
            "rcs": s["rcs"],
            "model": s["model"],
            "status": self.status,
            "message": self.message,
            "g0g1_pct_err": s.get("g0g1_pct_err"),
            "s_pct_err": s.get("s_pct_err"),
            "g2m_pct_err": s.get("g2m_pct_err"),
            "aic": s["aic"],
            "bic": s["bic"],
        }
        return pd.DataFrame([row])

    def eval_components(self) -> dict[str, np.ndarray]:
        """Expected counts per bin of each component group (and ``"total"``).

        Returns
        -------
        dict
            ``"g1"``, ``"s"``, ``"g2"``, ``"debris"``, ``"aggregates"``, ``"sub_g1"`` (when in
            the model), each split by population (``"b_g1"``...) for a second cycle, and
            ``"total"``.
        """
        basis, comps = self._basis()
        out: dict[str, np.ndarray] = {}
        for row, comp, amp in zip(basis, comps, self.amplitudes, strict=True):
            key = comp.group if comp.population == "a" else f"b_{comp.group}"
            out[key] = out.get(key, np.zeros_like(row)) + amp * row
        out["total"] = basis.T @ self.amplitudes
        return out

    def _basis(self) -> tuple[np.ndarray, list[Component]]:
        h = self.histogram
        theta = {k: p.value for k, p in self.params.items() if not k.endswith("_area")}
        fixed = _fixed_shapes(h, triplets=self.spec.triplets)
        return build_basis(self.spec, theta, h.channel_edges, h.channel_centers, fixed)

    def fit_report(self) -> str:
        """A human-readable report in the manner of lmfit's."""
        s = self.summary()
        lines = [
            f"[[Cell-cycle fit: {self.spec.name}]]",
            f"    status             = {self.status}" + (f" ({self.message})" if self.message else ""),
            f"    source             = {self.histogram.source or '-'} ({self.histogram.channel}, "
            f"{self.histogram.n_bins} bins, fit range {self.histogram.fit_range[0]}-"
            f"{self.histogram.fit_range[1] - 1})",
            f"    events             = {self.histogram.events_total} total, "
            f"{self.histogram.events_singlets} singlets"
            + (f" (doublets by {self.histogram.doublet_channel})" if self.histogram.doublet_channel else ""),
            f"    data points        = {self.n_data}",
            f"    variables          = {self.n_varys}",
            f"    function evals     = {self.nfev}",
            f"    chi-square         = {self.chisqr:.4g}",
            f"    reduced chi-square = {self.redchi:.4g}",
            f"    Akaike info crit   = {self.aic:.4g}",
            f"    Bayesian info crit = {self.bic:.4g}",
            "[[Phases]]",
        ]
        for key in ("g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct", "debris_pct", "aggregates_pct"):
            if key in self.fractions:
                err = self.fraction_errors.get(key)
                err_text = f" +/- {err:.2f}" if err is not None and np.isfinite(err) else ""
                lines.append(f"    {key:<18} = {self.fractions[key]:.2f}{err_text}")
        lines.append(
            f"    G1 mean {s['g1_mean']:.2f}, G2 mean {s['g2_mean']:.2f} (channels), "
            f"CV {s['g1_cv_pct']:.2f}% / {s['g2_cv_pct']:.2f}%, linearity {s['linearity']:.3f}"
        )
        lines.append("[[Variables]]")
        for p in self.params.values():
            stderr = f" +/- {p.stderr:.4g}" if np.isfinite(p.stderr) else ""
            extra = "" if p.vary else " (fixed)"
            if p.vary and p.at_bound:
                extra = " (at bound)"
            lines.append(f"    {p.name:<18} {p.value:.6g}{stderr}{extra}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td>"
            f"<td>{self.fraction_errors.get(k, math.nan):.2f}</td></tr>"
            for k, v in self.fractions.items()
        )
        colour = {"ok": "#1b7837", "warn": "#b35806", "failed": "#b2182b"}[self.status]
        return (
            f"<div><b>Cell-cycle fit</b> ({html.escape(self.spec.name)}), status "
            f"<span style='color:{colour}'>{html.escape(self.status)}</span> "
            f"{html.escape(self.message)}<br>RCS {self.redchi:.3g}, linearity {self.linearity:.3f}, "
            f"G1 CV {100 * self.peak_cv('g1'):.2f}%"
            f"<table><tr><th>measure</th><th>%</th><th>SE</th></tr>{rows}</table></div>"
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Draw the histogram with fitted components in the ModFit look (see plotting)."""
        from cytoflow_res.plotting.cellcycle import plot_cell_cycle_fit

        return plot_cell_cycle_fit(self, ax=ax, **kwargs)


def _effective_cv(cv: float, tail: float) -> float:
    """CV of ``N(1, cv) - Exp(tail)``: sd ``sqrt(cv**2 + tail**2)`` over mean ``1 - tail``."""
    return math.sqrt(cv * cv + tail * tail) / max(1.0 - tail, 1e-9)


def _clean(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


# --------------------------------------------------------------------- fitting


def _fixed_shapes(hist: DNAHistogram, *, triplets: bool = False) -> dict[str, np.ndarray]:
    counts = np.clip(hist.counts, 0, None).copy()
    lo, hi = hist.fit_range
    # shapes computed from the data use the fitted range only (no noise bins, no clipped top)
    counts[:lo] = 0
    counts[hi:] = 0
    centers = hist.channel_centers
    return {
        "counts": counts,
        "single_cut": ls.single_cut_debris(centers, counts),
        "aggregates": ls.aggregates_from_histogram(counts, triplets=triplets),
    }


@dataclass
class _Problem:
    hist: DNAHistogram
    spec: ModelSpec
    params: list[NonlinearParam]
    fixed: dict[str, np.ndarray]
    y: np.ndarray  # counts in range
    w: np.ndarray  # Poisson weights in range
    sl: slice
    nfev: int = 0

    def theta(self, x: np.ndarray) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.params, x, strict=True)}

    def solve(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Component], np.ndarray]:
        self.nfev += 1
        h = self.hist
        basis, comps = build_basis(self.spec, self.theta(x), h.channel_edges, h.channel_centers, self.fixed)
        a = basis[:, self.sl].T * self.w[:, None]
        amps, _ = nnls(a, self.y * self.w, maxiter=50 * a.shape[1])
        resid = a @ amps - self.y * self.w
        return resid, amps, comps, basis

    def residual(self, x: np.ndarray) -> np.ndarray:
        return self.solve(x)[0]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([p.lower for p in self.params]), np.array([p.upper for p in self.params])


def _weights(y: np.ndarray) -> np.ndarray:
    # Poisson: var = expected count, estimated by the observed count (>= 1 for empty bins)
    return 1.0 / np.sqrt(np.maximum(y, 1.0))


def _peak_candidates(hist: DNAHistogram) -> list[tuple[float, float]]:
    """Candidate (G1 mean, linearity) starts from the smoothed histogram's peaks."""
    lo, hi = hist.fit_range
    y = gaussian_filter1d(hist.counts.astype(float), sigma=max(1.0, hist.n_bins / 512))
    y[:lo] = 0
    y[hi:] = 0
    if y.max() <= 0:
        return []
    peaks, props = find_peaks(y, prominence=0.02 * y.max())
    if peaks.size == 0:
        return [(float(np.argmax(y)) + 0.5, 1.95)]
    order = np.argsort(props["prominences"])[::-1]
    peaks = peaks[order][:5]
    centers = peaks.astype(float) + 0.5
    starts: list[tuple[float, float]] = []
    for p in centers:
        partners = [q for q in centers if 1.6 <= q / p <= 2.2]
        lin = partners[0] / p if partners else 1.95
        starts.append((p, lin))
    # the tallest peak whose double has a peak is the classic G1; keep the tallest too
    starts.sort(key=lambda s: (s[1] == 1.95, -y[int(s[0])]))
    seen: list[tuple[float, float]] = []
    for s in starts:
        if all(abs(s[0] - t[0]) > 2 for t in seen):
            seen.append(s)
    return seen[:3]


def _cv_start(hist: DNAHistogram, g1: float) -> float:
    """Half-width of the G1 peak from the left side (free of S phase)."""
    y = gaussian_filter1d(hist.counts.astype(float), sigma=1.0)
    i = int(g1)
    if not 0 <= i < y.size or y[i] <= 0:
        return 0.04
    half = y[i] / 2
    j = i
    while j > 0 and y[j] > half:
        j -= 1
    hwhm = max(i + 0.5 - (j + 0.5), 0.5)
    return float(np.clip(hwhm / 1.1774 / max(g1, 1.0), 0.01, 0.15))


def fit_histogram(
    hist: DNAHistogram,
    *,
    model: ModelSpec | Literal["auto", "djf"] = "djf",
    g1_mean: float | None = None,
    b_g1_mean: float | None = None,
    n_starts: int = 3,
    linearity: float | None = None,
) -> CellCycleFit:
    """Fit a Dean-Jett-Fox model to a DNA histogram.

    Parameters
    ----------
    hist
        The histogram (see :func:`~cytoflow_res.cellcycle.histogram.dna_histogram`).
    model
        A :class:`ModelSpec`, ``"djf"`` (default spec: quadratic S, single-cut debris,
        aggregates) or ``"auto"`` (debris/aggregate/sub-G1 components chosen by AIC).
    g1_mean
        Starting G0/G1 mean in histogram channels; found from the peaks when omitted.
    b_g1_mean
        Starting G1 mean of a second cycle (for ``second_cycle`` models).
    n_starts
        How many peak-based starting points to try.
    linearity
        Fixed G2/G1 ratio for ``"djf"`` and ``"auto"`` (None: fitted).

    Returns
    -------
    CellCycleFit
        Never raises for a poor or failed fit: ``status`` and ``message`` say why.
    """
    if isinstance(model, str):
        if model == "auto":
            return _fit_auto(hist, g1_mean=g1_mean, n_starts=n_starts, linearity=linearity)
        if model != "djf":
            msg = f"model must be 'djf', 'auto' or a ModelSpec, not {model!r}"
            raise FitError(msg)
        spec = ModelSpec(linearity=linearity)
    else:
        spec = model
    return _fit_spec(hist, spec, g1_mean=g1_mean, b_g1_mean=b_g1_mean, n_starts=n_starts)


def _fit_auto(
    hist: DNAHistogram, *, g1_mean: float | None, n_starts: int, linearity: float | None = None
) -> CellCycleFit:
    best: CellCycleFit | None = None
    table = []
    for changes in AUTO_CANDIDATES:
        spec = ModelSpec(**changes, linearity=linearity)
        res = _fit_spec(hist, spec, g1_mean=g1_mean, b_g1_mean=None, n_starts=n_starts)
        if g1_mean is None and res.success:
            g1_mean = res.params["g1_mean"].value  # warm start for the remaining candidates
        table.append({"model": spec.name, "aic": res.aic, "rcs": res.redchi, "status": res.status})
        if res.success and (best is None or res.aic < best.aic):
            best = res
    if best is None:
        best = _fit_spec(hist, ModelSpec(linearity=linearity), g1_mean=g1_mean, b_g1_mean=None,
                         n_starts=n_starts)
    best.candidates = table
    return best


def _failed(hist: DNAHistogram, spec: ModelSpec, message: str) -> CellCycleFit:
    nan = math.nan
    return CellCycleFit(
        histogram=hist, spec=spec, params={}, components=[], amplitudes=np.zeros(0), success=False,
        status="failed", message=message, chisqr=nan, redchi=nan, aic=nan, bic=nan,
        n_data=hist.fit_range[1] - hist.fit_range[0], n_varys=0, nfev=0,
        fractions={k: nan for k in ("g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct", "debris_pct",
                                    "aggregates_pct")},
    )


def _fit_spec(
    hist: DNAHistogram,
    spec: ModelSpec,
    *,
    g1_mean: float | None,
    b_g1_mean: float | None,
    n_starts: int,
) -> CellCycleFit:
    lo, hi = hist.fit_range
    if hi - lo < 16 or hist.counts[lo:hi].sum() < 50:
        return _failed(hist, spec, f"too few events or bins to fit ({hist.counts[lo:hi].sum():.0f} events "
                                   f"in bins {lo}-{hi - 1})")
    starts = [(g1_mean, 1.95)] if g1_mean is not None else _peak_candidates(hist)[: max(1, n_starts)]
    if not starts:
        return _failed(hist, spec, "no peak found in the fit range")
    sl = slice(lo, hi)
    y = hist.counts[sl].astype(float)
    if spec.second_cycle and b_g1_mean is None:
        return _failed(hist, spec, "a second-cycle model needs b_g1_mean (its G1 position in channels)")
    fixed = _fixed_shapes(hist, triplets=spec.triplets)
    best: tuple[float, Any, _Problem] | None = None
    total_nfev = 0
    for attempt, (g1, lin) in enumerate(starts):
        assert g1 is not None
        if best is not None and 2 * best[0] / max(y.size - 6, 1) < 2.0:
            break  # the first start already fits well: other peaks are not worth the time
        params = nonlinear_params(spec, g1_mean=float(g1), cv=_cv_start(hist, float(g1)), linearity=lin,
                                  n_bins=hist.n_bins, b_g1_mean=b_g1_mean)
        params = [p for p in params if p.name != SUB_G1_SKEW.name]  # freed later (_free_sub_g1_skew)
        prob = _Problem(hist, spec, params, fixed, y, _weights(y), sl)
        x0 = np.array([p.value for p in params])
        lb, ub = prob.bounds
        x0 = np.clip(x0, lb + 1e-9 * (ub - lb), ub - 1e-9 * (ub - lb))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                sol = least_squares(prob.residual, x0, bounds=(lb, ub), x_scale="jac", method="trf",
                                    xtol=1e-8, ftol=1e-8, max_nfev=300 if attempt == 0 else 80)
        except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - defensive
            log.debug("start %s failed: %s", g1, exc)
            continue
        total_nfev += prob.nfev
        # A start that turns a small shoulder into "G0/G1" and the real G0/G1 peak into S phase
        # can fit better than the true reading. S-phase density never rises above the G0/G1
        # peak in a cycling population, so such solutions only win when nothing else fits.
        cost = float(sol.cost) + (0.0 if _plausible(prob, sol.x) else 1e300)
        if best is None or cost < best[0]:
            best = (cost, sol, prob)
    if best is None:
        return _failed(hist, spec, "the optimiser failed from every starting point")
    _cost, sol, prob = best
    x = np.asarray(sol.x, dtype=float)
    if spec.sub_g1:
        x, prob = _free_sub_g1_skew(prob, x, float(sol.cost))  # its calls count with the pass below
    # Second pass: Poisson weights from the fitted model (Pearson chi-square) instead of from
    # the observed counts, which are biased low where counts are small. The reported RCS uses
    # these same weights, so it is the objective that was minimised.
    _resid, amps, _comps, basis = prob.solve(x)
    expected = basis[:, sl].T @ amps
    prob.w = _weights(expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        sol2 = least_squares(prob.residual, x, bounds=prob.bounds, x_scale="jac",
                             method="trf", xtol=1e-8, ftol=1e-8, max_nfev=150)
    total_nfev += prob.nfev
    return _finish(hist, spec, prob, sol2, total_nfev)


def _free_sub_g1_skew(prob: _Problem, x: np.ndarray, cost: float) -> tuple[np.ndarray, _Problem]:
    """Refit with the sub-G1 skew free, starting from the fit with a symmetric sub-G1.

    Which feature below G0/G1 the sub-G1 component takes up (the apoptotic hump, a shoulder of
    G0/G1, a small peak of other nuclei) is settled by the symmetric fit, as it always was;
    the skew then only lets that hump lean towards low DNA content where the data ask for it
    (see :func:`~cytoflow_res.cellcycle.model.build_basis`). The skewed fit is kept only if it
    fits at least as well (``cost`` is the symmetric fit's) and stays plausible.

    Returns
    -------
    x : numpy.ndarray
        Parameter values with the skew last.
    problem : _Problem
        The problem with the skew as its last parameter.
    """
    skewed = _Problem(prob.hist, prob.spec, [*prob.params, SUB_G1_SKEW], prob.fixed, prob.y, prob.w, prob.sl)
    lb, ub = skewed.bounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        sol = least_squares(skewed.residual, np.append(x, SUB_G1_SKEW.value), bounds=(lb, ub),
                            x_scale="jac", method="trf", xtol=1e-8, ftol=1e-8, max_nfev=200)
    if sol.cost <= cost and _plausible(skewed, sol.x):
        return np.asarray(sol.x, dtype=float), skewed
    # the symmetric solution, just inside the upper bound (0) of the skew
    return np.append(x, ub[-1] - 1e-9 * (ub[-1] - lb[-1])), skewed


def _plausible(prob: _Problem, x: np.ndarray) -> bool:
    """False when the fitted S phase is taller anywhere than the fitted G0/G1 peak."""
    _resid, amps, comps, basis = prob.solve(x)
    groups = np.array([c.group for c in comps])
    pop_a = np.array([c.population == "a" for c in comps])
    g1 = (amps[(groups == "g1") & pop_a, None] * basis[(groups == "g1") & pop_a]).sum(axis=0)
    s_phase = (amps[(groups == "s") & pop_a, None] * basis[(groups == "s") & pop_a]).sum(axis=0)
    return bool(s_phase.max(initial=0.0) <= g1.max(initial=0.0))


def _finish(hist: DNAHistogram, spec: ModelSpec, prob: _Problem, sol: Any, nfev: int) -> CellCycleFit:
    x = np.asarray(sol.x, dtype=float)
    resid, amps, comps, basis = prob.solve(x)
    n = resid.size
    k_amp = amps.size
    n_varys = len(prob.params) + k_amp
    chisqr = float(resid @ resid)
    dof = max(n - n_varys, 1)
    redchi = chisqr / dof
    safe = max(chisqr / n, 1e-300)
    aic = n * math.log(safe) + 2 * n_varys
    bic = n * math.log(safe) + math.log(n) * n_varys

    # Covariance of all parameters from the Jacobian of the weighted residual (lmfit scales
    # it by the reduced chi-square).
    full = np.concatenate([x, amps])
    raw_cov = _covariance(prob, x, amps)
    cov = None if raw_cov is None else raw_cov * redchi
    errs = np.sqrt(np.clip(np.diag(cov), 0, None)) if cov is not None else np.full(full.size, np.nan)

    params: dict[str, ParamValue] = {}
    for i, p in enumerate(prob.params):
        params[p.name] = ParamValue(p.name, float(x[i]), float(errs[i]), p.lower, p.upper)
    if spec.linearity is not None:
        params["linearity"] = ParamValue("linearity", float(spec.linearity), math.nan, vary=False)
    for j, c in enumerate(comps):
        params[c.name] = ParamValue(c.name, float(amps[j]), float(errs[len(prob.params) + j]), 0.0, math.inf)

    fractions, fraction_errors = _fractions(hist, comps, amps, cov, len(prob.params), basis)
    success = bool(sol.success) and bool(amps[0] > 0)
    status, message = _quality(hist, spec, params, fractions, redchi, success, sol)
    return CellCycleFit(
        histogram=hist, spec=spec, params=params, components=comps, amplitudes=amps, success=success,
        status=status, message=message, chisqr=chisqr, redchi=redchi, aic=aic, bic=bic, n_data=n,
        n_varys=n_varys, nfev=nfev, fractions=fractions, fraction_errors=fraction_errors,
    )


def _covariance(prob: _Problem, x: np.ndarray, amps: np.ndarray) -> np.ndarray | None:
    h = prob.hist

    def model_w(full: np.ndarray) -> np.ndarray:
        theta = prob.theta(full[: x.size])
        basis, _ = build_basis(prob.spec, theta, h.channel_edges, h.channel_centers, prob.fixed)
        return (basis[:, prob.sl].T @ full[x.size:]) * prob.w

    full = np.concatenate([x, amps])
    base = model_w(full)
    jac = np.empty((base.size, full.size))
    for i in range(full.size):
        step = 1e-6 * max(abs(full[i]), 1e-3)
        if i < x.size:
            p = prob.params[i]
            if full[i] + step > p.upper:
                step = -step
        shifted = full.copy()
        shifted[i] += step
        jac[:, i] = (model_w(shifted) - base) / step
    # amplitudes held at zero by the constraint are not free: leave them out of the inverse
    free = np.ones(full.size, dtype=bool)
    free[x.size:] = amps > 0
    cov = np.full((full.size, full.size), np.nan)
    try:
        sub = np.linalg.pinv(jac[:, free].T @ jac[:, free])
    except np.linalg.LinAlgError:
        return None
    idx = np.flatnonzero(free)
    cov[np.ix_(idx, idx)] = sub
    return cov


def _fractions(
    hist: DNAHistogram,
    comps: list[Component],
    amps: np.ndarray,
    cov: np.ndarray | None,
    offset: int,
    basis: np.ndarray,
) -> tuple[dict[str, float], dict[str, float]]:
    """Percentages (and their standard errors) with the denominators of :class:`CellCycleFit`."""
    groups = np.array([c.group for c in comps])
    cycling = np.isin(groups, ("g1", "s", "g2"))
    total_cycling = float(amps[cycling].sum())
    fr: dict[str, float] = {}
    err: dict[str, float] = {}
    amp_cov = None if cov is None else cov[offset:, offset:]
    for key, group in (("g0g1_pct", "g1"), ("s_pct", "s"), ("g2m_pct", "g2")):
        sel = groups == group
        value = 100 * float(amps[sel].sum()) / total_cycling if total_cycling > 0 else math.nan
        fr[key] = value
        # gradient of 100 * A_group / A_cycling with respect to each amplitude
        grad = np.zeros(amps.size)
        if total_cycling > 0:
            grad[cycling] = -value / total_cycling
            grad[sel] += 100 / total_cycling
        err[key] = _propagate(grad, amp_cov)

    # sub-G1 over single cells (sub-G1 + cycling), whole component areas
    sub = groups == "sub_g1"
    sub_events = float(amps[sub].sum())
    cells = sub_events + total_cycling
    grad = np.zeros(amps.size)
    if cells > 0:
        fr["sub_g1_pct"] = 100 * sub_events / cells
        grad[sub] = 100 * total_cycling / cells**2
        grad[cycling] = -100 * sub_events / cells**2
    else:
        fr["sub_g1_pct"] = math.nan
    err["sub_g1_pct"] = _propagate(grad, amp_cov)

    # Debris and aggregates over every event of the histogram. A debris shape fitted above the
    # first fitted bin cannot be trusted below it (a steep shape would extrapolate wildly), so
    # below the fit range the debris is what the data hold there less the other components.
    lo, hi = hist.fit_range
    all_events = float(np.clip(hist.counts, 0, None).sum())
    in_range = basis[:, lo:hi].sum(axis=1)
    below = basis[:, :lo].sum(axis=1)
    in_hist = basis.sum(axis=1)
    debris = groups == "debris"
    unexplained = float(np.clip(hist.counts[:lo], 0, None).sum()) - float((amps * below)[~debris].sum())
    debris_events = float((amps * in_range)[debris].sum()) + max(unexplained, 0.0)
    aggregates = groups == "aggregates"
    grad_debris = np.zeros(amps.size)
    grad_aggregates = np.zeros(amps.size)
    if all_events > 0:
        fr["debris_pct"] = 100 * debris_events / all_events
        fr["aggregates_pct"] = 100 * float((amps * in_hist)[aggregates].sum()) / all_events
        grad_debris[debris] = 100 * in_range[debris] / all_events
        if unexplained > 0:
            grad_debris[~debris] = -100 * below[~debris] / all_events
        grad_aggregates[aggregates] = 100 * in_hist[aggregates] / all_events
    else:
        fr["debris_pct"] = fr["aggregates_pct"] = math.nan
    err["debris_pct"] = _propagate(grad_debris, amp_cov)
    err["aggregates_pct"] = _propagate(grad_aggregates, amp_cov)
    return fr, err


def _propagate(grad: np.ndarray, cov: np.ndarray | None) -> float:
    if cov is None:
        return math.nan
    use = grad != 0
    if not use.any():
        return 0.0
    sub = cov[np.ix_(use, use)]
    sub = np.where(np.isnan(sub), 0.0, sub)
    var = float(grad[use] @ sub @ grad[use])
    return math.sqrt(var) if var >= 0 else math.nan


#: Reduced chi-square range of a good fit; outside it the fit is ``warn``.
RCS_RANGE = (0.7, 4.0)
#: Largest G0/G1 CV (as a fraction) before a ``warn``.
MAX_G1_CV = 0.08
#: Fewest singlets in the histogram before a ``warn``.
MIN_SINGLETS = 10_000


def _quality(
    hist: DNAHistogram,
    spec: ModelSpec,
    params: dict[str, ParamValue],
    fractions: dict[str, float],
    redchi: float,
    success: bool,
    sol: Any,
) -> tuple[Literal["ok", "warn", "failed"], str]:
    if not success:
        reason = "no G0/G1 peak could be fitted" if params["g1_area"].value <= 0 else str(sol.message)
        return "failed", f"fit failed: {reason}"
    notes = []
    low, high = RCS_RANGE
    if redchi > high:
        notes.append(f"RCS {redchi:.2f} > {high:g} (model misses structure in the data)")
    elif redchi < low:
        notes.append(f"RCS {redchi:.2f} < {low:g} (over-fitted or counts not Poisson)")
    tail = params["peak_tail"].value if "peak_tail" in params else 0.0
    cv = _effective_cv(params["g1_cv"].value, tail)
    if cv > MAX_G1_CV:
        notes.append(f"G1 CV {100 * cv:.1f}% > {100 * MAX_G1_CV:g}%")
    if hist.events_singlets < MIN_SINGLETS:
        notes.append(f"only {hist.events_singlets} singlets (< {MIN_SINGLETS:,})")
    lin = params.get("linearity")
    if lin is not None and lin.vary and lin.at_bound:
        notes.append(f"linearity {lin.value:.3f} at its bound {spec.linearity_bounds}")
    if not all(math.isfinite(fractions[k]) for k in ("g0g1_pct", "s_pct", "g2m_pct")):
        return "failed", "fit failed: phase fractions are undefined"
    if notes:
        return "warn", "; ".join(notes)
    return "ok", ""


def fit_cell_cycle(
    data: Sample | DNAHistogram | np.ndarray,
    *,
    channel: str | None = None,
    bins: int | None = None,
    doublets: Literal["auto", "width", "height", "none"] = "auto",
    model: ModelSpec | Literal["auto", "djf", "watson"] = "djf",
    g1_mean: float | None = None,
    b_g1_mean: float | None = None,
    linearity: float | None = None,
) -> Any:
    """Deconvolve a DNA-content histogram into G0/G1, S and G2/M (Dean-Jett-Fox, as ModFit).

    Parameters
    ----------
    data
        A Sample (the DNA histogram is built with doublet discrimination), a
        :class:`DNAHistogram`, or a 1-D array of counts per bin.
    channel
        DNA channel for a Sample (default: PI-A, FL2-A, FL3-A, "FL3 INT LIN", ...).
    bins
        Histogram bins for a Sample (default ``min($PnR, 1024)``).
    doublets
        Doublet discrimination for a Sample (see :func:`dna_histogram`).
    model
        ``"djf"`` (default), ``"auto"`` (components chosen by AIC), ``"watson"`` (the Watson
        pragmatic model, returns a :class:`~cytoflow_res.cellcycle.watson.WatsonFit`), or a
        :class:`ModelSpec`.
    g1_mean, b_g1_mean
        Optional starting positions (histogram channels).
    linearity
        Fix the G2/G1 ratio at this value (ModFit's "dependent" G2/M) for ``"djf"`` and
        ``"auto"``; ignored when ``model`` is a :class:`ModelSpec` (set it there). See
        :func:`~cytoflow_res.cellcycle.batch.share_linearity` to share one across a batch.

    Returns
    -------
    CellCycleFit
        With ``status`` ok / warn / failed and a message; a fit never raises for poor data.

    Raises
    ------
    ChannelError
        If the Sample has no usable DNA channel.
    """
    if isinstance(data, Sample):
        hist = dna_histogram(data, channel=channel, bins=bins, doublets=doublets)
    elif isinstance(data, DNAHistogram):
        hist = data
    else:
        hist = DNAHistogram.from_counts(np.asarray(data, dtype=float))
    if isinstance(model, str) and model == "watson":
        from cytoflow_res.cellcycle.watson import fit_watson

        return fit_watson(hist, g1_mean=g1_mean)
    try:
        return fit_histogram(hist, model=model, g1_mean=g1_mean, b_g1_mean=b_g1_mean, linearity=linearity)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        spec = model if isinstance(model, ModelSpec) else ModelSpec()
        return _failed(hist, spec, f"fit failed: {exc}")
