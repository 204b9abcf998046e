"""Dean-Jett-Fox cell-cycle models as a set of basis components.

A model is a sum of components, each a unit-area shape times a non-negative amplitude
(its number of events). The shapes depend on a few nonlinear parameters (G0/G1 mean, CV,
G2/G1 linearity, ...); given those, the amplitudes enter linearly. The fit exploits that
(variable projection): amplitudes are solved by non-negative least squares inside the
optimisation of the nonlinear parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cytoflow_res.cellcycle import lineshapes as ls
from cytoflow_res.errors import FitError

__all__ = ["SUB_G1_SKEW", "Component", "ModelSpec", "NonlinearParam", "build_basis", "nonlinear_params"]

DebrisModel = Literal["none", "single_cut", "multi_cut", "exponential"]
SPhaseModel = Literal["polynomial", "sbr", "fox_wave"]


@dataclass(frozen=True)
class ModelSpec:
    """Which components a cell-cycle model has, and how they are constrained.

    Attributes
    ----------
    s_phase
        ``"polynomial"`` (Dean-Jett polynomial of ``s_degree``, broadened; default),
        ``"sbr"`` (sum of ``n_rectangles`` broadened rectangles, as ModFit's SBR), or
        ``"fox_wave"`` (a flat S plus a Gaussian wave inside S, for synchronised cells).
    s_degree
        0, 1 or 2 for the polynomial S phase.
    n_rectangles
        Number of rectangles for ``"sbr"``.
    debris
        ``"none"``, ``"single_cut"``, ``"multi_cut"`` (both computed from the histogram,
        Bagwell) or ``"exponential"``.
    aggregates
        Add doublets (and triplets if ``triplets``) computed from the histogram itself.
    triplets
        Include three-cell aggregates in the aggregate shape.
    sub_g1
        Add a sub-G1 (apoptotic, hypodiploid) component below G0/G1: a skew-normal hump
        leaning towards lower DNA content, with fitted mean ``sub_g1_position`` (0.25 to 0.88
        of the G0/G1 mean), CV ``sub_g1_cv`` (SD over mean, 0.05 to 0.45) and shape
        ``sub_g1_skew`` (-8 to 0; 0 is a Gaussian).
    g2_cv
        ``"equal"`` (G2/M CV = G0/G1 CV) or ``"free"``.
    linearity
        Fixed G2/G1 ratio, or None to fit it within ``linearity_bounds``.
    linearity_bounds
        Bounds of the fitted linearity.
    second_cycle
        Add a second G1/S/G2 cycle (aneuploid population or internal standard) with its own
        G1 mean and CV, the same linearity and S-phase shape.
    peak_tail
        Give the G0/G1 and G2/M peaks (and the S-phase spread) an exponential tail towards
        lower DNA content, one fitted parameter ``peak_tail`` relative to position (an
        ex-Gaussian; see :func:`~cytoflow_res.cellcycle.lineshapes.peak_bins`). For
        instruments or preparations whose peaks fall off slowly on the left and steeply on the
        right, where a Gaussian would inflate the CV and bend the S phase.
    """

    s_phase: SPhaseModel = "polynomial"
    s_degree: int = 2
    n_rectangles: int = 4
    debris: DebrisModel = "single_cut"
    aggregates: bool = True
    triplets: bool = False
    sub_g1: bool = False
    g2_cv: Literal["equal", "free"] = "equal"
    linearity: float | None = None
    linearity_bounds: tuple[float, float] = (1.6, 2.2)
    second_cycle: bool = False
    peak_tail: bool = False

    def __post_init__(self) -> None:
        if self.s_phase not in ("polynomial", "sbr", "fox_wave"):
            msg = f"s_phase must be 'polynomial', 'sbr' or 'fox_wave', not {self.s_phase!r}"
            raise FitError(msg)
        if self.s_degree not in (0, 1, 2):
            msg = f"s_degree must be 0, 1 or 2, not {self.s_degree!r}"
            raise FitError(msg)
        if self.debris not in ("none", "single_cut", "multi_cut", "exponential"):
            msg = (
                f"debris must be 'none', 'single_cut', 'multi_cut' or 'exponential', "
                f"not {self.debris!r}"
            )
            raise FitError(msg)
        lo, hi = self.linearity_bounds
        if not 1.0 < lo < hi:
            msg = f"linearity_bounds must satisfy 1 < low < high, got {self.linearity_bounds}"
            raise FitError(msg)
        if self.linearity is not None and not 1.0 < self.linearity < 3.0:
            msg = f"a fixed linearity must lie between 1 and 3, got {self.linearity}"
            raise FitError(msg)

    @property
    def name(self) -> str:
        """Short description such as ``djf(poly2)+single_cut+agg+subG1``."""
        s = {"polynomial": f"poly{self.s_degree}", "sbr": f"sbr{self.n_rectangles}", "fox_wave": "fox"}
        parts = [f"djf({s[self.s_phase]}{',tail' if self.peak_tail else ''})"]
        if self.debris != "none":
            parts.append(self.debris)
        if self.aggregates:
            parts.append("agg3" if self.triplets else "agg")
        if self.sub_g1:
            parts.append("subG1")
        if self.second_cycle:
            parts.append("2cycles")
        return "+".join(parts)

    def with_(self, **changes: object) -> ModelSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NonlinearParam:
    """A nonlinear parameter: name, start, bounds."""

    name: str
    value: float
    lower: float
    upper: float


# Skew (alpha) of the sub-G1 hump: to the left only, as apoptotic nuclei lose DNA and do not
# gain it. The start is off zero, where a moment-matched skew-normal has no first-order effect.
SUB_G1_SKEW = NonlinearParam("sub_g1_skew", -1.0, -8.0, 0.0)


@dataclass(frozen=True)
class Component:
    """One amplitude of the model: its name, the group it counts towards, its population."""

    name: str
    group: Literal["g1", "s", "g2", "debris", "aggregates", "sub_g1"]
    population: Literal["a", "b"] = "a"


def nonlinear_params(
    spec: ModelSpec,
    *,
    g1_mean: float,
    cv: float,
    linearity: float,
    n_bins: int,
    b_g1_mean: float | None = None,
) -> list[NonlinearParam]:
    """Starting values and bounds of the nonlinear parameters for a model.

    Parameters
    ----------
    spec
        The model.
    g1_mean, cv, linearity
        Starting G0/G1 mean (channels), CV (fraction) and G2/G1 ratio.
    n_bins
        Histogram size (bounds the means).
    b_g1_mean
        Start of the second cycle's G1 mean (required with ``second_cycle``).

    Returns
    -------
    list of NonlinearParam
    """
    lo_l, hi_l = spec.linearity_bounds
    params = [
        NonlinearParam("g1_mean", g1_mean, max(1.0, 0.8 * g1_mean), min(n_bins / 1.5, 1.2 * g1_mean)),
        NonlinearParam("g1_cv", float(np.clip(cv, 0.006, 0.2)), 0.005, 0.25),
    ]
    if spec.linearity is None:
        params.append(NonlinearParam("linearity", float(np.clip(linearity, lo_l + 1e-3, hi_l - 1e-3)),
                                     lo_l, hi_l))
    if spec.g2_cv == "free":
        params.append(NonlinearParam("g2_cv", float(np.clip(cv, 0.006, 0.2)), 0.005, 0.25))
    if spec.peak_tail:
        params.append(NonlinearParam("peak_tail", 0.03, 5e-4, 0.25))
    if spec.sub_g1:
        params.append(NonlinearParam("sub_g1_position", 0.6, 0.25, 0.88))
        params.append(NonlinearParam("sub_g1_cv", 0.15, 0.05, 0.45))
        params.append(SUB_G1_SKEW)
    if spec.debris == "multi_cut":
        params.append(NonlinearParam("debris_decay", 2.0 / max(g1_mean, 1.0), 1e-4, 1.0))
    elif spec.debris == "exponential":
        params.append(NonlinearParam("debris_scale", 0.25 * g1_mean, 0.5, float(n_bins)))
    if spec.s_phase == "fox_wave":
        params.append(NonlinearParam("s_wave_position", 0.5, 0.05, 0.95))
        params.append(NonlinearParam("s_wave_width", 0.15, 0.03, 0.5))
    if spec.second_cycle:
        if b_g1_mean is None:
            msg = "a second cycle needs a starting G1 mean for it (b_g1_mean)"
            raise FitError(msg)
        params.append(NonlinearParam("b_g1_mean", b_g1_mean, 0.85 * b_g1_mean, 1.15 * b_g1_mean))
        params.append(NonlinearParam("b_g1_cv", float(np.clip(cv, 0.006, 0.2)), 0.005, 0.25))
    return params


def _s_basis(
    spec: ModelSpec, edges: np.ndarray, m1: float, m2: float, cv: float, theta: dict[str, float]
) -> np.ndarray:
    tail = theta.get("peak_tail", 0.0)
    if spec.s_phase == "polynomial":
        return ls.broadened_s_phase(edges, m1, m2, cv, degree=spec.s_degree, tail=tail)
    if spec.s_phase == "sbr":
        return ls.broadened_rectangles(edges, m1, m2, cv, n=spec.n_rectangles, tail=tail)
    flat = ls.broadened_s_phase(edges, m1, m2, cv, degree=0, tail=tail)
    pos = m1 + theta["s_wave_position"] * (m2 - m1)
    width = theta["s_wave_width"] * (m2 - m1)
    sd = float(np.hypot(width, cv * pos))
    wave = ls.peak_bins(edges, pos, sd, tail * pos)
    return np.vstack([flat, wave[None, :]])


def build_basis(
    spec: ModelSpec,
    theta: dict[str, float],
    edges: np.ndarray,
    centers: np.ndarray,
    fixed: dict[str, np.ndarray],
) -> tuple[np.ndarray, list[Component]]:
    """Evaluate every unit-area component for given nonlinear parameters.

    Parameters
    ----------
    spec
        The model.
    theta
        Nonlinear parameter values by name.
    edges, centers
        Histogram bin edges and centres in channel units.
    fixed
        Data-derived shapes computed once per histogram: ``"single_cut"``, ``"aggregates"``
        and ``"counts"`` (for multi-cut).

    Returns
    -------
    basis : numpy.ndarray
        Shape ``(n_components, n_bins)``.
    components : list of Component
        What each row is.
    """
    m1 = theta["g1_mean"]
    cv1 = theta["g1_cv"]
    lin = spec.linearity if spec.linearity is not None else theta["linearity"]
    cv2 = theta.get("g2_cv", cv1)
    m2 = lin * m1
    tail = theta.get("peak_tail", 0.0)
    rows: list[np.ndarray] = [
        ls.peak_bins(edges, m1, cv1 * m1, tail * m1),
        ls.peak_bins(edges, m2, cv2 * m2, tail * m2),
    ]
    comps = [Component("g1_area", "g1"), Component("g2_area", "g2")]
    s = _s_basis(spec, edges, m1, m2, cv1, theta)
    rows.extend(s)
    comps.extend(Component(f"s_area_{i}", "s") for i in range(s.shape[0]))
    if spec.second_cycle:
        b1 = theta["b_g1_mean"]
        bcv = theta["b_g1_cv"]
        rows.append(ls.peak_bins(edges, b1, bcv * b1, tail * b1))
        rows.append(ls.peak_bins(edges, lin * b1, bcv * lin * b1, tail * lin * b1))
        comps.extend([Component("b_g1_area", "g1", "b"), Component("b_g2_area", "g2", "b")])
        sb = _s_basis(spec, edges, b1, lin * b1, bcv, theta)
        rows.extend(sb)
        comps.extend(Component(f"b_s_area_{i}", "s", "b") for i in range(sb.shape[0]))
    if spec.debris == "single_cut":
        rows.append(fixed["single_cut"])
        comps.append(Component("debris_area", "debris"))
    elif spec.debris == "multi_cut":
        rows.append(ls.multi_cut_debris(centers, fixed["counts"], theta["debris_decay"]))
        comps.append(Component("debris_area", "debris"))
    elif spec.debris == "exponential":
        rows.append(ls.exponential_debris(centers, theta["debris_scale"]))
        comps.append(Component("debris_area", "debris"))
    if spec.aggregates:
        rows.append(fixed["aggregates"])
        comps.append(Component("aggregates_area", "aggregates"))
    if spec.sub_g1:
        # Apoptotic nuclei lose DNA in fragments by degrees, so the hypodiploid peak is broad
        # and leans towards low DNA content: a symmetric Gaussian cannot follow its long left
        # flank, and the debris component would take that flank instead. The skew-normal's
        # skewness is bounded (|skewness| < 1), so it stays a hump and cannot become the
        # decaying tail near zero that belongs to debris.
        pos = theta["sub_g1_position"] * m1
        skew = theta.get(SUB_G1_SKEW.name, 0.0)
        rows.append(ls.skew_normal_bins(edges, pos, theta["sub_g1_cv"] * pos, skew))
        comps.append(Component("sub_g1_area", "sub_g1"))
    return np.vstack(rows), comps
