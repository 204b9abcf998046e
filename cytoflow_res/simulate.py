"""Synthetic flow-cytometry data with known ground truth, written as FCS files.

Two assays are simulated event by event:

* **Annexin V-FITC / PI apoptosis**: viable (AnnV-/PI-), early apoptotic (AnnV+/PI-),
  late apoptotic (AnnV+/PI+) and necrotic (AnnV-/PI+) single cells, plus debris and
  doublets, with FITC <-> PI spillover and electronic noise.
* **PI cell cycle**: G0/G1, S and G2/M singlets, sub-G1 (apoptotic) cells, debris and
  doublets, with PI area, height and width pulses.

The ``simulate_*`` functions are pure: they return the events (in a linear, instrument-free
"model" scale, one row per event, with the true population of each event in the column
``population``) and a JSON-safe truth dict. The ``write_*`` functions encode the events for one
instrument *dialect* (a modern FCS 3.1 float export, a FACSCalibur FCS 2.0 file with 4-decade
log channels, or an Accuri C6 FCS 3.0 file with 24-bit linear integers) and write them.
:func:`write_experiment` writes a whole drug-combination experiment with a design sheet and
a truth file. Everything is deterministic given the seed.

Spillover convention: ``observed = true @ S`` with rows of ``S`` the fluorochromes (Annexin
V-FITC, PI) and columns the detectors (FITC, PE), diagonal 1. Compensation is therefore
``true ≈ observed @ inv(S)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cytoflow_res.io.fcs_write import write_fcs

__all__ = [
    "APOPTOSIS_POPULATIONS",
    "CELL_CYCLE_POPULATIONS",
    "CELL_CYCLE_PROFILES",
    "DEFAULT_SEED",
    "DIALECTS",
    "ApoptosisSpec",
    "CellCycleSpec",
    "SimulatedExperiment",
    "apoptosis_control_spec",
    "dialect_channels",
    "encode_events",
    "events_from_truth",
    "planted_arms",
    "simulate_apoptosis",
    "simulate_cell_cycle",
    "write_apoptosis_sample",
    "write_cellcycle_sample",
    "write_experiment",
]

logger = logging.getLogger(__name__)

DEFAULT_SEED = 20261121
"""Seed of the committed example experiment (``cytoflow-res simulate example_fcs``)."""

Dialect = Literal["modern", "facscalibur", "accuri"]
Assay = Literal["apoptosis", "cellcycle"]
ControlRole = Literal["unstained", "annexin_only", "pi_only"]
SeedLike = int | Sequence[int] | np.random.Generator

DIALECTS: tuple[str, ...] = ("modern", "facscalibur", "accuri")
APOPTOSIS_POPULATIONS: tuple[str, ...] = (
    "viable", "early_apoptotic", "late_apoptotic", "necrotic", "debris", "doublet",
)
CELL_CYCLE_POPULATIONS: tuple[str, ...] = ("g0g1", "s", "g2m", "subg1", "debris", "doublet")
_QUADRANTS = ("viable", "early_apoptotic", "late_apoptotic", "necrotic")

# Model scale: a modern cytometer's linear 18-bit float scale.
_MODEL_RANGE = 262_144.0
# Ratio of pulse width to (area / height) for PI-W, as on BD instruments.
_WIDTH_SCALE = 65_536.0


# ---------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ApoptosisSpec:
    """Parameters of one simulated Annexin V-FITC / PI sample.

    Population fractions are among real single cells and must sum to 1; debris and
    doublets are fractions of all events. Intensities are on the model scale (linear,
    0..262144, like a modern instrument's float export).

    Attributes
    ----------
    n_events
        Events in the file (debris + doublets + single cells).
    viable, early_apoptotic, late_apoptotic, necrotic
        Fractions of single cells that are AnnV-/PI-, AnnV+/PI-, AnnV+/PI+, AnnV-/PI+.
    debris_fraction
        Fraction of events that are debris (low FSC/SSC, random dim fluorescence).
    doublet_fraction
        Fraction of events that are doublets of two single cells (FSC-A ~ 2x, FSC-H ~ 1.15x).
    fitc_to_pe
        Spillover of FITC into the PE (PI) detector.
    pe_to_fitc
        Spillover of PI into the FITC detector.
    annexin_stain, pi_stain
        Whether the sample was stained (switch off for controls).
    autofluorescence_fitc, autofluorescence_pe
        Median autofluorescence of a viable cell in each detector.
    autofluorescence_spread
        Log-normal sigma of autofluorescence, shared by all detectors of a cell (real
        autofluorescence is strongly correlated between FITC and PE, so the few unstained
        cells above a 99.5th-percentile threshold tend to be the same cells in both).
    annexin_decades, pi_decades
        How far positive cells sit above the autofluorescence median, in decades.
    electronic_noise
        Standard deviation of additive detector noise (can make dim values negative).
    photon_noise
        Variance of counting noise per unit of signal (spreads bright populations).
    """

    n_events: int = 5000
    viable: float = 0.90
    early_apoptotic: float = 0.04
    late_apoptotic: float = 0.04
    necrotic: float = 0.02
    debris_fraction: float = 0.04
    doublet_fraction: float = 0.03
    fitc_to_pe: float = 0.13
    pe_to_fitc: float = 0.01
    annexin_stain: bool = True
    pi_stain: bool = True
    autofluorescence_fitc: float = 300.0
    autofluorescence_pe: float = 250.0
    autofluorescence_spread: float = 0.45
    annexin_decades: float = 1.8
    pi_decades: float = 2.0
    electronic_noise: float = 15.0
    photon_noise: float = 0.5

    def __post_init__(self) -> None:
        _check_fractions(
            {name: getattr(self, name) for name in _QUADRANTS}, what="population fractions"
        )
        _check_unit("debris_fraction", self.debris_fraction)
        _check_unit("doublet_fraction", self.doublet_fraction)
        if self.debris_fraction + self.doublet_fraction >= 1.0:
            msg = (
                f"debris_fraction + doublet_fraction must be below 1; got "
                f"{self.debris_fraction} + {self.doublet_fraction}"
            )
            raise ValueError(msg)
        if self.n_events < 1:
            msg = f"n_events must be a positive integer, not {self.n_events}"
            raise ValueError(msg)
        for name in ("fitc_to_pe", "pe_to_fitc"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                msg = f"{name} must lie in [0, 1), not {value}"
                raise ValueError(msg)
        for name in ("autofluorescence_fitc", "autofluorescence_pe", "annexin_decades",
                     "pi_decades"):
            if getattr(self, name) <= 0:
                msg = f"{name} must be positive, not {getattr(self, name)}"
                raise ValueError(msg)
        if self.electronic_noise < 0 or self.photon_noise < 0:
            msg = (
                f"noise levels must be >= 0; got electronic_noise={self.electronic_noise}, "
                f"photon_noise={self.photon_noise}"
            )
            raise ValueError(msg)

    @property
    def spillover_matrix(self) -> np.ndarray:
        """2x2 spillover matrix, rows (Annexin V-FITC, PI), columns (FITC, PE detectors)."""
        return np.array([[1.0, self.fitc_to_pe], [self.pe_to_fitc, 1.0]])

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-safe dict."""
        return dataclasses.asdict(self)


_SHAPES: dict[str, tuple[float, float]] = {
    "uniform": (1.0, 1.0),
    "early": (1.0, 2.5),
    "late": (2.5, 1.0),
}


@dataclass(frozen=True)
class CellCycleSpec:
    """Parameters of one simulated PI cell-cycle sample.

    Attributes
    ----------
    n_events
        Events in the file.
    g0g1, s, g2m
        Fractions of cycling single cells in each phase (sum 1).
    subg1_fraction, debris_fraction, doublet_fraction
        Fractions of all events that are sub-G1 cells, debris and doublets.
    g1_mean
        Mean PI-A of G0/G1 cells on the model scale (50,000 of 262,144).
    cv
        Coefficient of variation of the G0/G1 peak; every cell's DNA signal is broadened by
        the same relative CV (sigma proportional to DNA content).
    linearity
        G2/M mean divided by G0/G1 mean.
    s_shape
        Distribution of S-phase DNA content between G1 and G2: ``"uniform"``, ``"early"``
        (front-loaded, e.g. an early-S block), ``"late"`` (back-loaded), or Beta ``(a, b)``
        parameters of the position between the two peaks.
    electronic_noise
        Standard deviation of additive noise on PI-A.
    """

    n_events: int = 8000
    g0g1: float = 0.55
    s: float = 0.30
    g2m: float = 0.15
    subg1_fraction: float = 0.02
    debris_fraction: float = 0.03
    doublet_fraction: float = 0.04
    g1_mean: float = 50_000.0
    cv: float = 0.04
    linearity: float = 1.97
    s_shape: str | tuple[float, float] = "uniform"
    electronic_noise: float = 150.0

    def __post_init__(self) -> None:
        _check_fractions({"g0g1": self.g0g1, "s": self.s, "g2m": self.g2m},
                         what="phase fractions")
        for name in ("subg1_fraction", "debris_fraction", "doublet_fraction"):
            _check_unit(name, getattr(self, name))
        other = self.subg1_fraction + self.debris_fraction + self.doublet_fraction
        if other >= 1.0:
            msg = f"sub-G1 + debris + doublet fractions must be below 1; got {other:g}"
            raise ValueError(msg)
        if self.n_events < 1:
            msg = f"n_events must be a positive integer, not {self.n_events}"
            raise ValueError(msg)
        if not 0.005 <= self.cv <= 0.2:
            msg = f"cv must lie in [0.005, 0.2] (typically 0.02-0.06), not {self.cv}"
            raise ValueError(msg)
        if not 1.5 <= self.linearity <= 2.5:
            msg = f"linearity (G2/M mean / G1 mean) must lie in [1.5, 2.5], not {self.linearity}"
            raise ValueError(msg)
        if not 0 < self.g1_mean * self.linearity * 2.2 < _MODEL_RANGE:
            msg = (
                f"g1_mean={self.g1_mean} leaves no room for G2/M doublets below "
                f"{_MODEL_RANGE:.0f}; use a value between 1 and {_MODEL_RANGE / 4.4:.0f}"
            )
            raise ValueError(msg)
        self.beta_params  # noqa: B018 - validates s_shape

    @property
    def beta_params(self) -> tuple[float, float]:
        """Beta ``(a, b)`` of the S-phase position between the G1 and G2 peaks."""
        if isinstance(self.s_shape, str):
            try:
                return _SHAPES[self.s_shape]
            except KeyError:
                msg = (
                    f"s_shape must be one of {', '.join(map(repr, _SHAPES))} or a pair of "
                    f"positive Beta parameters, not {self.s_shape!r}"
                )
                raise ValueError(msg) from None
        a, b = (float(v) for v in self.s_shape)
        if a <= 0 or b <= 0:
            msg = f"Beta parameters of s_shape must be positive, not {self.s_shape!r}"
            raise ValueError(msg)
        return a, b

    @property
    def g2_mean(self) -> float:
        """Mean PI-A of G2/M cells (``linearity * g1_mean``)."""
        return self.linearity * self.g1_mean

    @classmethod
    def profile(cls, name: str, **changes: Any) -> CellCycleSpec:
        """A spec from a named profile of :data:`CELL_CYCLE_PROFILES`, with changes.

        Parameters
        ----------
        name
            ``"control"``, ``"g1_arrest"``, ``"g2m_arrest"`` or ``"s_arrest"``.
        **changes
            Any other field of the spec.

        Returns
        -------
        CellCycleSpec
        """
        try:
            base = CELL_CYCLE_PROFILES[name]
        except KeyError:
            msg = f"unknown cell-cycle profile {name!r}; choose from {', '.join(CELL_CYCLE_PROFILES)}"
            raise ValueError(msg) from None
        return cls(**{**base, **changes})

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-safe dict."""
        out = dataclasses.asdict(self)
        if isinstance(self.s_shape, tuple):
            out["s_shape"] = list(self.s_shape)
        return out


CELL_CYCLE_PROFILES: dict[str, dict[str, Any]] = {
    "control": {"g0g1": 0.55, "s": 0.30, "g2m": 0.15, "s_shape": "uniform"},
    "g1_arrest": {"g0g1": 0.75, "s": 0.12, "g2m": 0.13, "s_shape": "uniform"},
    "g2m_arrest": {"g0g1": 0.25, "s": 0.20, "g2m": 0.55, "s_shape": "uniform"},
    "s_arrest": {"g0g1": 0.35, "s": 0.50, "g2m": 0.15, "s_shape": "early"},
}
"""Named phase distributions (%G0/G1, %S, %G2/M of cycling cells) for :meth:`CellCycleSpec.profile`."""


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{name} must lie in [0, 1], not {value}"
        raise ValueError(msg)


def _check_fractions(values: Mapping[str, float], *, what: str) -> None:
    for name, value in values.items():
        _check_unit(name, value)
    total = sum(values.values())
    if abs(total - 1.0) > 1e-6:
        listing = ", ".join(f"{k}={v:g}" for k, v in values.items())
        msg = f"{what} must sum to 1; got {listing} (sum {total:g})"
        raise ValueError(msg)


def apoptosis_control_spec(
    role: ControlRole, base: ApoptosisSpec | None = None
) -> ApoptosisSpec:
    """The spec of an apoptosis staining control derived from a sample spec.

    ``unstained`` keeps the base composition (use the vehicle's) with both stains off, so
    its autofluorescence matches the samples'. The single-stain controls use a
    heat-killed-like 50/50 mix of live and killed cells, giving a clear positive
    population (~47.5%) in the one stained channel.

    Parameters
    ----------
    role
        ``"unstained"``, ``"annexin_only"`` or ``"pi_only"``.
    base
        Spec whose instrument settings, event count and (for ``unstained``) composition
        are kept; the default spec when omitted.

    Returns
    -------
    ApoptosisSpec
    """
    base = base or ApoptosisSpec()
    killed_mix: dict[str, Any] = {"viable": 0.50, "early_apoptotic": 0.025, "late_apoptotic": 0.45,
                  "necrotic": 0.025}
    if role == "unstained":
        return dataclasses.replace(base, annexin_stain=False, pi_stain=False)
    if role == "annexin_only":
        return dataclasses.replace(base, **killed_mix, annexin_stain=True, pi_stain=False)
    if role == "pi_only":
        return dataclasses.replace(base, **killed_mix, annexin_stain=False, pi_stain=True)
    msg = f"control role must be 'unstained', 'annexin_only' or 'pi_only', not {role!r}"
    raise ValueError(msg)


# ------------------------------------------------------------------------ helpers
def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _seed_record(seed: SeedLike) -> int | list[int] | None:
    if isinstance(seed, np.random.Generator):
        return None
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return [int(s) for s in seed]


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions`` (exact, deterministic)."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    short = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return [int(c) for c in counts]


def _lognormal(rng: np.random.Generator, median: float | np.ndarray, sigma: float,
               size: int) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def _pct(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


# ---------------------------------------------------------------------- apoptosis
# Scatter relative to a viable cell, (FSC, SSC), by population code: apoptotic cells
# shrink and grow granular, necrotic cells lose both.
_APOP_SCATTER = {0: (1.0, 1.0), 1: (0.82, 1.15), 2: (0.70, 1.25), 3: (0.74, 0.92)}
_FSC_MEDIAN = 90_000.0
_SSC_MEDIAN = 40_000.0


def _apoptotic_cells(
    rng: np.random.Generator, codes: np.ndarray, spec: ApoptosisSpec
) -> dict[str, np.ndarray]:
    """True (pre-detector) scatter and fluorescence of single cells of given populations."""
    n = codes.size
    fsc_rel = np.array([_APOP_SCATTER[c][0] for c in range(4)])[codes]
    ssc_rel = np.array([_APOP_SCATTER[c][1] for c in range(4)])[codes]
    size = np.exp(0.12 * rng.standard_normal(n))  # before any apoptotic shrinkage
    fsc_a = _FSC_MEDIAN * fsc_rel * size
    # Height/area of a singlet pulse: FSC-A/FSC-H ~ 1.18.
    fsc_h = fsc_a * rng.normal(0.85, 0.02, n)
    ssc_a = _SSC_MEDIAN * ssc_rel * (fsc_rel * size) ** 0.5 * np.exp(0.22 * rng.standard_normal(n))
    # Autofluorescence scales with the cell's original size (apoptotic volume loss is
    # water, not flavins) and is shared between detectors: a cell bright in one is bright
    # in the others, as in real cells.
    common = rng.standard_normal(n)
    shared = spec.autofluorescence_spread * common
    own = 0.01
    af_f = spec.autofluorescence_fitc * size * np.exp(shared + own * rng.standard_normal(n))
    af_p = spec.autofluorescence_pe * size * np.exp(shared + own * rng.standard_normal(n))
    af_r = 0.6 * spec.autofluorescence_pe * size * np.exp(shared + own * rng.standard_normal(n))
    annexin_pos = (codes == 1) | (codes == 2)
    pi_pos = (codes == 2) | (codes == 3)
    annexin = np.zeros(n)
    pi = np.zeros(n)
    if spec.annexin_stain:
        ann_med = spec.autofluorescence_fitc * 10.0**spec.annexin_decades
        late_boost = np.where(codes == 2, 10.0**0.1, 1.0)
        annexin = np.where(annexin_pos, _lognormal(rng, ann_med * late_boost, 0.45, n), 0.0)
    if spec.pi_stain:
        pi_med = spec.autofluorescence_pe * 10.0**spec.pi_decades
        necrotic_boost = np.where(codes == 3, 10.0**0.15, 1.0)
        pi = np.where(pi_pos, _lognormal(rng, pi_med * necrotic_boost, 0.35, n), 0.0)
    return {
        "FSC-A": fsc_a, "FSC-H": fsc_h, "SSC-A": ssc_a,
        "fitc": af_f + annexin, "pi": af_p + pi,
        # Far-red detectors (unused by the assay): PI's long tail plus autofluorescence.
        "far_red": af_r + 0.45 * pi + 0.004 * annexin,
        "apc": 0.5 * af_r + 0.03 * pi,
    }


def _debris(rng: np.random.Generator, n: int, spec: ApoptosisSpec) -> dict[str, np.ndarray]:
    fsc_a = 1_500.0 + rng.exponential(7_000.0, n)
    return {
        "FSC-A": fsc_a,
        "FSC-H": fsc_a * rng.uniform(0.8, 1.0, n),
        "SSC-A": _lognormal(rng, 8_000.0, 0.6, n),
        "fitc": _lognormal(rng, 0.15 * spec.autofluorescence_fitc, 1.2, n),
        "pi": _lognormal(rng, 0.15 * spec.autofluorescence_pe, 1.4, n),
        "far_red": _lognormal(rng, 0.1 * spec.autofluorescence_pe, 1.0, n),
        "apc": _lognormal(rng, 0.05 * spec.autofluorescence_pe, 1.0, n),
    }


def _detect(rng: np.random.Generator, signal: np.ndarray, spec: ApoptosisSpec) -> np.ndarray:
    """Counting noise (proportional to sqrt(signal)) plus electronic noise."""
    var = spec.photon_noise * np.clip(signal, 0.0, None) + spec.electronic_noise**2
    return signal + np.sqrt(var) * rng.standard_normal(signal.size)


def simulate_apoptosis(
    spec: ApoptosisSpec | None = None, *, seed: SeedLike = DEFAULT_SEED
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate one Annexin V-FITC / PI sample.

    Parameters
    ----------
    spec
        Composition, stains and instrument settings; :class:`ApoptosisSpec` defaults when
        omitted.
    seed
        Seed (or generator) for :func:`numpy.random.default_rng`; the same seed gives the
        same events.

    Returns
    -------
    events : pandas.DataFrame
        One row per event on the model scale: ``FSC-A``, ``FSC-H``, ``SSC-A``, ``FITC-A``
        (Annexin V detector), ``PE-A`` (PI detector), ``PerCP-A`` and ``APC-A`` (far-red
        detectors, unused), all uncompensated (``observed = true @ S``); and ``population``,
        the true class of each event (one of :data:`APOPTOSIS_POPULATIONS`).
    truth : dict
        JSON-safe ground truth: ``n_events``, ``n_single_cells``, ``n_debris``,
        ``n_doublets``, per-population counts (``n_viable``, ...), the quadrant percentages
        a perfect analysis reports among single cells (``viable_pct``,
        ``early_apoptotic_pct``, ``late_apoptotic_pct``, ``necrotic_pct``; they sum to 100
        and, when a stain is off, cells move to the quadrant they appear in),
        ``population_pct`` (composition regardless of stains), ``debris_pct``,
        ``doublet_pct``, ``stains``, ``spillover`` and ``spec``.

    Examples
    --------
    >>> events, truth = simulate_apoptosis(ApoptosisSpec(n_events=2000), seed=1)
    >>> round(sum(truth[f"{q}_pct"] for q in ("viable", "early_apoptotic",
    ...       "late_apoptotic", "necrotic")), 6)
    100.0
    """
    spec = spec or ApoptosisSpec()
    rng = _rng(seed)
    n = spec.n_events
    n_debris, n_doublets, n_single = _split_counts(
        n, [spec.debris_fraction, spec.doublet_fraction,
            1.0 - spec.debris_fraction - spec.doublet_fraction]
    )
    fractions = np.array([getattr(spec, q) for q in _QUADRANTS])
    pop_counts = rng.multinomial(n_single, fractions / fractions.sum())
    codes = np.repeat(np.arange(4), pop_counts)

    singles = _apoptotic_cells(rng, codes, spec)
    debris = _debris(rng, n_debris, spec)
    # Doublets: two random cells from the same composition, stuck together.
    pair_codes = rng.choice(4, size=(2, n_doublets), p=fractions / fractions.sum())
    first = _apoptotic_cells(rng, pair_codes[0], spec)
    second = _apoptotic_cells(rng, pair_codes[1], spec)
    doublets = {k: first[k] + second[k] for k in first}
    doublets["FSC-H"] = 0.5 * (first["FSC-H"] + second["FSC-H"]) * rng.uniform(1.1, 1.2, n_doublets)

    parts = (singles, debris, doublets)
    true = {k: np.concatenate([p[k] for p in parts]) for k in singles}
    labels = np.concatenate([codes, np.full(n_debris, 4), np.full(n_doublets, 5)]).astype(np.int64)

    s_mat = spec.spillover_matrix
    fluor = np.column_stack([true["fitc"], true["pi"]]) @ s_mat
    fitc_det = _detect(rng, fluor[:, 0], spec)
    pe_det = _detect(rng, fluor[:, 1], spec)
    percp = _detect(rng, true["far_red"] + 0.02 * true["fitc"], spec)
    apc = _detect(rng, true["apc"], spec)
    scatter_noise = 0.1 * spec.electronic_noise
    columns = {
        "FSC-A": true["FSC-A"] + scatter_noise * rng.standard_normal(n),
        "FSC-H": true["FSC-H"] + scatter_noise * rng.standard_normal(n),
        "SSC-A": true["SSC-A"] + scatter_noise * rng.standard_normal(n),
        "FITC-A": fitc_det, "PE-A": pe_det, "PerCP-A": percp, "APC-A": apc,
    }
    order = rng.permutation(n)
    events = pd.DataFrame({k: v[order] for k, v in columns.items()})
    events["population"] = pd.Categorical.from_codes(
        labels[order], categories=pd.Index(APOPTOSIS_POPULATIONS)
    )

    counts = {q: int(c) for q, c in zip(_QUADRANTS, pop_counts, strict=True)}
    ann = {q: spec.annexin_stain and q in ("early_apoptotic", "late_apoptotic") for q in _QUADRANTS}
    pi = {q: spec.pi_stain and q in ("late_apoptotic", "necrotic") for q in _QUADRANTS}
    quadrant_of = {
        (False, False): "viable", (True, False): "early_apoptotic",
        (True, True): "late_apoptotic", (False, True): "necrotic",
    }
    seen = dict.fromkeys(_QUADRANTS, 0)
    for q in _QUADRANTS:
        seen[quadrant_of[(ann[q], pi[q])]] += counts[q]
    truth: dict[str, Any] = {
        "assay": "apoptosis",
        "n_events": n,
        "n_single_cells": n_single,
        "n_debris": n_debris,
        "n_doublets": n_doublets,
        **{f"n_{q}": counts[q] for q in _QUADRANTS},
        **{f"{q}_pct": _pct(seen[q], n_single) for q in _QUADRANTS},
        "population_pct": {q: _pct(counts[q], n_single) for q in _QUADRANTS},
        "debris_pct": _pct(n_debris, n),
        "doublet_pct": _pct(n_doublets, n),
        "stains": {"annexin_v": spec.annexin_stain, "pi": spec.pi_stain},
        "spillover": {
            "sources": ["Annexin V-FITC", "PI"],
            "channels": ["FITC-A", "PE-A"],
            "matrix": s_mat.tolist(),
        },
        "seed": _seed_record(seed),
        "spec": spec.to_dict(),
    }
    return events, truth


# ---------------------------------------------------------------------- cell cycle
def _cycling_dna(rng: np.random.Generator, codes: np.ndarray, spec: CellCycleSpec) -> np.ndarray:
    """Noise-free PI-A (DNA content x g1_mean) of cycling cells with phase codes 0/1/2."""
    a, b = spec.beta_params
    position = rng.beta(a, b, codes.size)
    content = np.where(
        codes == 0, 1.0, np.where(codes == 2, spec.linearity, 1.0 + position * (spec.linearity - 1.0))
    )
    return content * spec.g1_mean


def _pulses(rng: np.random.Generator, dna: np.ndarray, spec: CellCycleSpec,
            ratio: float = 0.90) -> dict[str, np.ndarray]:
    """PI-A/H/W and scatter of single particles with given DNA content."""
    n = dna.size
    pi_a = dna * (1.0 + spec.cv * rng.standard_normal(n))
    pi_h = pi_a * rng.normal(ratio, 0.015, n)
    rel = np.clip(dna / spec.g1_mean, 0.05, None)
    fsc_a = 85_000.0 * rel ** (1.0 / 3.0) * np.exp(0.10 * rng.standard_normal(n))
    return {
        "FSC-A": fsc_a,
        "FSC-H": fsc_a * rng.normal(0.85, 0.02, n),
        "SSC-A": 35_000.0 * rel**0.3 * np.exp(0.22 * rng.standard_normal(n)),
        "PI-A": pi_a,
        "PI-H": pi_h,
    }


def simulate_cell_cycle(
    spec: CellCycleSpec | None = None, *, seed: SeedLike = DEFAULT_SEED
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate one PI cell-cycle sample.

    Parameters
    ----------
    spec
        Phase fractions, peak positions, CV and contaminants; :class:`CellCycleSpec`
        defaults when omitted (see also :meth:`CellCycleSpec.profile`).
    seed
        Seed (or generator) for :func:`numpy.random.default_rng`.

    Returns
    -------
    events : pandas.DataFrame
        One row per event on the model scale: ``FSC-A``, ``FSC-H``, ``SSC-A``, ``PI-A``,
        ``PI-H``, ``PI-W`` (``PI-W = 65536 * PI-A / PI-H``; about 72,800 for singlets and
        1.7-1.9x that for doublets) and ``population`` (one of
        :data:`CELL_CYCLE_POPULATIONS`).
    truth : dict
        JSON-safe ground truth: ``g0g1_pct``, ``s_pct``, ``g2m_pct`` among cycling single
        cells (sum 100); ``subg1_pct``, ``debris_pct``, ``doublet_pct`` of all events;
        ``subg1_pct_of_singlets``; the counts; the planted ``g1_mean``, ``g2_mean``, ``cv``,
        ``linearity``, ``s_shape``; the realised ``g1_mean_realised`` and
        ``cv_realised`` of the G0/G1 events; ``seed`` and ``spec``.
    """
    spec = spec or CellCycleSpec()
    rng = _rng(seed)
    n = spec.n_events
    n_subg1, n_debris, n_doublets, n_cycling = _split_counts(
        n, [spec.subg1_fraction, spec.debris_fraction, spec.doublet_fraction,
            1.0 - spec.subg1_fraction - spec.debris_fraction - spec.doublet_fraction]
    )
    phase_p = np.array([spec.g0g1, spec.s, spec.g2m])
    phase_p = phase_p / phase_p.sum()
    phase_counts = rng.multinomial(n_cycling, phase_p)
    codes = np.repeat(np.arange(3), phase_counts)

    cycling = _pulses(rng, _cycling_dna(rng, codes, spec), spec)
    # Sub-G1: fragmented DNA spread broadly below the G1 peak.
    subg1_dna = spec.g1_mean * (0.08 + 0.70 * rng.beta(2.2, 1.6, n_subg1))
    subg1 = _pulses(rng, subg1_dna, spec)
    subg1["FSC-A"] *= 0.6
    subg1["FSC-H"] *= 0.6
    subg1["SSC-A"] *= 1.2
    # Debris: exponentially decaying from the lowest channels; short pulses.
    debris_dna = spec.g1_mean * (0.01 + rng.exponential(0.07, n_debris))
    debris = _pulses(rng, debris_dna, spec, ratio=0.95)
    debris["FSC-A"] = 1_500.0 + rng.exponential(8_000.0, n_debris)
    debris["FSC-H"] = debris["FSC-A"] * rng.uniform(0.8, 1.0, n_debris)
    debris["SSC-A"] = _lognormal(rng, 7_000.0, 0.6, n_debris)
    # Doublets: two cycling singlets passing together: areas add, the height rises a
    # little above one cell's, so the pulse is much wider.
    pair_codes = rng.choice(3, size=(2, n_doublets), p=phase_p)
    first = _pulses(rng, _cycling_dna(rng, pair_codes[0], spec), spec)
    second = _pulses(rng, _cycling_dna(rng, pair_codes[1], spec), spec)
    doublets = {k: first[k] + second[k] for k in first}
    boost = rng.uniform(1.05, 1.2, n_doublets)
    doublets["PI-H"] = 0.5 * (first["PI-H"] + second["PI-H"]) * boost
    doublets["FSC-H"] = 0.5 * (first["FSC-H"] + second["FSC-H"]) * boost

    parts = (cycling, subg1, debris, doublets)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in cycling}
    labels = np.concatenate(
        [codes, np.full(n_subg1, 3), np.full(n_debris, 4), np.full(n_doublets, 5)]
    ).astype(np.int64)
    noise = spec.electronic_noise
    cols["PI-A"] = cols["PI-A"] + noise * rng.standard_normal(n)
    cols["PI-H"] = cols["PI-H"] + noise * rng.standard_normal(n)
    # Width from area/height; floor the height so sub-noise debris gives finite widths.
    cols["PI-W"] = _WIDTH_SCALE * np.clip(cols["PI-A"], 1.0, None) / np.clip(cols["PI-H"], 1.0, None)
    cols["PI-W"] = np.clip(cols["PI-W"], 0.0, _MODEL_RANGE - 1.0)

    order = rng.permutation(n)
    names = ["FSC-A", "FSC-H", "SSC-A", "PI-A", "PI-H", "PI-W"]
    events = pd.DataFrame({k: cols[k][order] for k in names})
    events["population"] = pd.Categorical.from_codes(
        labels[order], categories=pd.Index(CELL_CYCLE_POPULATIONS)
    )

    g1_values = cols["PI-A"][: phase_counts[0]]
    g1_real = float(np.mean(g1_values)) if g1_values.size else float("nan")
    cv_real = float(np.std(g1_values) / g1_real) if g1_values.size > 1 else float("nan")
    singlets = n_cycling + n_subg1
    phase_names = ("g0g1", "s", "g2m")
    truth: dict[str, Any] = {
        "assay": "cellcycle",
        "n_events": n,
        "n_cycling": n_cycling,
        **{f"n_{p}": int(c) for p, c in zip(phase_names, phase_counts, strict=True)},
        "n_subg1": n_subg1,
        "n_debris": n_debris,
        "n_doublets": n_doublets,
        **{f"{p}_pct": _pct(int(c), n_cycling) for p, c in zip(phase_names, phase_counts, strict=True)},
        "subg1_pct": _pct(n_subg1, n),
        "debris_pct": _pct(n_debris, n),
        "doublet_pct": _pct(n_doublets, n),
        "subg1_pct_of_singlets": _pct(n_subg1, singlets),
        "g1_mean": spec.g1_mean,
        "g2_mean": spec.g2_mean,
        "cv": spec.cv,
        "linearity": spec.linearity,
        "s_shape": spec.to_dict()["s_shape"],
        "g1_mean_realised": g1_real,
        "cv_realised": cv_real,
        "seed": _seed_record(seed),
        "spec": spec.to_dict(),
    }
    return events, truth


def events_from_truth(truth: Mapping[str, Any]) -> pd.DataFrame:
    """Regenerate the labelled events of a simulated file from its truth record.

    Every truth dict (and every ``files[...]["truth"]`` entry of an experiment's
    ``truth.json``) records the spec and the seed, so the model-scale events, including the
    per-event ``population`` labels that the FCS file cannot carry, can be rebuilt exactly,
    in file order.

    Parameters
    ----------
    truth
        A truth dict with ``assay``, ``spec`` and an integer or list ``seed``.

    Returns
    -------
    pandas.DataFrame
        As returned by :func:`simulate_apoptosis` or :func:`simulate_cell_cycle`.

    Raises
    ------
    ValueError
        If the record has no reproducible seed (it was simulated from a Generator).
    """
    seed = truth.get("seed")
    if seed is None:
        msg = "this truth record has no seed (simulated from a Generator); its events cannot be rebuilt"
        raise ValueError(msg)
    spec = dict(truth["spec"])
    if truth.get("assay") == "apoptosis":
        return simulate_apoptosis(ApoptosisSpec(**spec), seed=seed)[0]
    if truth.get("assay") == "cellcycle":
        if isinstance(spec.get("s_shape"), list):
            spec["s_shape"] = tuple(spec["s_shape"])
        return simulate_cell_cycle(CellCycleSpec(**spec), seed=seed)[0]
    msg = f"truth record has assay {truth.get('assay')!r}; expected 'apoptosis' or 'cellcycle'"
    raise ValueError(msg)


# ------------------------------------------------------------------------ dialects
@dataclass(frozen=True)
class _Param:
    name: str
    source: str
    label: str = ""
    scale: float = 1.0
    log: bool = False


@dataclass(frozen=True)
class _DialectInfo:
    version: Literal["3.1", "3.0", "2.0"]
    datatype: Literal["F", "I"]
    bits: int
    range: float
    cytometer: str
    hardware_compensation: bool
    params: Mapping[str, tuple[_Param, ...]]
    spill_channels: tuple[str, str] | None
    keywords: Mapping[str, str] = field(default_factory=dict)


# FACSCalibur log channels: model intensity / 25 so that negatives sit in the first decade
# and positives in the third, as on the instrument; 4 decades over 1024 channels.
_CAL_FLUOR = 1.0 / 25.0
_ACCURI = 64.0  # 16777216 / 262144

_DIALECT_INFO: dict[str, _DialectInfo] = {
    "modern": _DialectInfo(
        version="3.1", datatype="F", bits=32, range=_MODEL_RANGE,
        cytometer="cytoflow_res simulated cytometer (modern FCS 3.1 export)",
        hardware_compensation=False,
        params={
            "apoptosis": (
                _Param("FSC-A", "FSC-A"), _Param("FSC-H", "FSC-H"), _Param("SSC-A", "SSC-A"),
                _Param("FITC-A", "FITC-A", "Annexin V"), _Param("PE-A", "PE-A", "PI"),
            ),
            "cellcycle": (
                _Param("FSC-A", "FSC-A"), _Param("SSC-A", "SSC-A"), _Param("PI-A", "PI-A", "PI"),
                _Param("PI-H", "PI-H"), _Param("PI-W", "PI-W"),
            ),
        },
        spill_channels=("FITC-A", "PE-A"),
    ),
    "facscalibur": _DialectInfo(
        version="2.0", datatype="I", bits=16, range=1024.0, cytometer="FACSCalibur",
        hardware_compensation=True,
        params={
            "apoptosis": (
                _Param("FSC-H", "FSC-H", scale=1.0 / 130.0),
                _Param("SSC-H", "SSC-A", scale=1.0 / 110.0),
                _Param("FL1-H", "FITC-A", "Annexin V", scale=_CAL_FLUOR, log=True),
                _Param("FL2-H", "PE-A", "PI", scale=_CAL_FLUOR, log=True),
                _Param("FL3-H", "PerCP-A", scale=_CAL_FLUOR, log=True),
            ),
            "cellcycle": (
                _Param("FSC-H", "FSC-H", scale=1.0 / 130.0),
                _Param("SSC-H", "SSC-A", scale=1.0 / 110.0),
                _Param("FL2-H", "PI-H", scale=1.0 / 250.0),
                _Param("FL2-A", "PI-A", "PI", scale=1.0 / 250.0),
                _Param("FL2-W", "PI-W", scale=1.0 / 200.0),
            ),
        },
        spill_channels=None,
        keywords={"$SYS": "Macintosh System Software 9.2.2", "CREATOR": "CellQuest Pro 6.0 (simulated)"},
    ),
    "accuri": _DialectInfo(
        version="3.0", datatype="I", bits=32, range=16_777_216.0, cytometer="Accuri C6",
        hardware_compensation=False,
        params={
            "apoptosis": (
                _Param("FSC-A", "FSC-A", scale=_ACCURI), _Param("SSC-A", "SSC-A", scale=_ACCURI),
                _Param("FSC-H", "FSC-H", scale=_ACCURI),
                _Param("FL1-A", "FITC-A", "Annexin V", scale=_ACCURI),
                _Param("FL2-A", "PE-A", "PI", scale=_ACCURI),
                _Param("FL3-A", "PerCP-A", scale=_ACCURI),
                _Param("FL4-A", "APC-A", scale=_ACCURI),
            ),
            "cellcycle": (
                _Param("FSC-A", "FSC-A", scale=_ACCURI), _Param("SSC-A", "SSC-A", scale=_ACCURI),
                _Param("FSC-H", "FSC-H", scale=_ACCURI),
                _Param("FL2-A", "PI-A", "PI", scale=_ACCURI),
                _Param("FL2-H", "PI-H", scale=_ACCURI),
            ),
        },
        spill_channels=("FL1-A", "FL2-A"),
    ),
}


def _dialect(dialect: str) -> _DialectInfo:
    try:
        return _DIALECT_INFO[dialect]
    except KeyError:
        msg = f"unknown dialect {dialect!r}; choose from {', '.join(DIALECTS)}"
        raise ValueError(msg) from None


def _params(assay: str, dialect: str) -> tuple[_Param, ...]:
    info = _dialect(dialect)
    try:
        return tuple(info.params[assay])
    except KeyError:
        msg = f"unknown assay {assay!r}; choose 'apoptosis' or 'cellcycle'"
        raise ValueError(msg) from None


def dialect_channels(assay: Assay, dialect: Dialect = "modern") -> list[tuple[str, str]]:
    """The ``($PnN, $PnS)`` pairs a dialect writes for an assay, in file order.

    Parameters
    ----------
    assay
        ``"apoptosis"`` or ``"cellcycle"``.
    dialect
        ``"modern"``, ``"facscalibur"`` or ``"accuri"``.

    Returns
    -------
    list of (str, str)
        Channel names and labels (empty label for none).
    """
    return [(p.name, p.label) for p in _params(assay, dialect)]


def _log_channel(x: np.ndarray) -> np.ndarray:
    """Linear intensity -> channel of a 4-decade, 1024-channel log amplifier."""
    ch = np.rint(1024.0 / 4.0 * np.log10(np.clip(x, 1.0, 1e4)))
    return np.clip(ch, 0, 1023)


def encode_events(
    events: pd.DataFrame,
    assay: Assay,
    *,
    dialect: Dialect = "modern",
    spillover: np.ndarray | None = None,
) -> pd.DataFrame:
    """Convert model-scale events into the values a dialect stores in its files.

    * ``modern``: float values on the model scale, saturating at 262143; negatives kept.
    * ``facscalibur``: integer channels 0..1023. Scatter and cell-cycle PI are linear;
      apoptosis FL1-H/FL2-H/FL3-H are 4-decade log channels,
      ``round(256 * log10(clip(x / 25, 1, 1e4)))``, decoded by readers as
      ``10 ** (4 * ch / 1024)``. The FACSCalibur compensated in hardware before the log
      amplifiers, so FL1/FL2 are written already compensated (``observed @ inv(S)``) and
      the file carries no spillover keyword.
    * ``accuri``: linear integers, model values x 64, clipped to 0..16777215 (uncompensated).

    Parameters
    ----------
    events
        Output of :func:`simulate_apoptosis` or :func:`simulate_cell_cycle`.
    assay
        ``"apoptosis"`` or ``"cellcycle"``.
    dialect
        Target instrument dialect.
    spillover
        The 2x2 spillover matrix the events were made with (needed to undo it for the
        hardware-compensated FACSCalibur apoptosis files; default: ``ApoptosisSpec()``'s).

    Returns
    -------
    pandas.DataFrame
        Stored values, columns named as in the file (``$PnN``).
    """
    info = _dialect(dialect)
    params = _params(assay, dialect)
    source = events
    if info.hardware_compensation and assay == "apoptosis":
        s_mat = ApoptosisSpec().spillover_matrix if spillover is None else np.asarray(spillover)
        comp = events[["FITC-A", "PE-A"]].to_numpy(dtype=float) @ np.linalg.inv(s_mat)
        source = events.copy()
        source["FITC-A"] = comp[:, 0]
        source["PE-A"] = comp[:, 1]
    out: dict[str, np.ndarray] = {}
    for p in params:
        x = source[p.source].to_numpy(dtype=float) * p.scale
        if p.log:
            x = _log_channel(x)
        elif info.datatype == "I":
            x = np.clip(np.rint(x), 0, info.range - 1)
        else:
            x = np.minimum(x, info.range - 1)
        out[p.name] = x
    return pd.DataFrame(out)


def _write(
    path: Path,
    events: pd.DataFrame,
    truth: dict[str, Any],
    assay: Assay,
    dialect: Dialect,
    keywords: Mapping[str, str] | None,
) -> dict[str, Any]:
    info = _dialect(dialect)
    params = _params(assay, dialect)
    s_mat = np.asarray(truth["spillover"]["matrix"]) if assay == "apoptosis" else None
    stored = encode_events(events, assay, dialect=dialect, spillover=s_mat)
    kw: dict[str, str] = {
        "$CYT": info.cytometer,
        "$DATE": "21-NOV-2026",
        "$SRC": path.stem,
        "SIMULATED": "cytoflow_res.simulate",
        # Not the package version: the committed example must not change with a release.
        "CREATOR": "cytoflow_res.simulate",
        **info.keywords,
        **(keywords or {}),
    }
    spill: tuple[list[str], np.ndarray] | None = None
    if s_mat is not None and info.spill_channels is not None:
        spill = (list(info.spill_channels), s_mat)
    write_fcs(
        path,
        stored.to_numpy(),
        [p.name for p in params],
        labels=[p.label for p in params],
        ranges=[info.range] * len(params),
        keywords=kw,
        spillover=spill,
        datatype=info.datatype,
        bits=info.bits if info.datatype == "I" else None,
        log_decades=[4.0 if p.log else 0.0 for p in params],
        version=info.version,
    )
    file_truth = dict(truth)
    file_truth["dialect"] = dialect
    file_truth["channels"] = [p.name for p in params]
    if assay == "apoptosis":
        spill_info = dict(truth["spillover"])
        keyword = "SPILL" if info.version == "2.0" else "$SPILLOVER"
        spill_info["keyword"] = None if spill is None else keyword
        spill_info["file_channels"] = None if spill is None else list(info.spill_channels or ())
        spill_info["hardware_compensated"] = info.hardware_compensation
        file_truth["spillover"] = spill_info
    return file_truth


def write_apoptosis_sample(
    path: str | os.PathLike[str],
    spec: ApoptosisSpec | None = None,
    *,
    seed: SeedLike = DEFAULT_SEED,
    dialect: Dialect = "modern",
    keywords: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate an Annexin V / PI sample and write it as an FCS file.

    Parameters
    ----------
    path
        Output file; its directory must exist. Written atomically.
    spec
        See :func:`simulate_apoptosis`.
    seed
        See :func:`simulate_apoptosis`.
    dialect
        ``"modern"`` (FCS 3.1 float, ``$SPILLOVER``), ``"facscalibur"`` (FCS 2.0, 16-bit
        integers, log FL channels, hardware-compensated: no spillover keyword) or
        ``"accuri"`` (FCS 3.0, 32-bit integers, ``$SPILLOVER`` on FL1-A/FL2-A).
    keywords
        Extra TEXT keywords.

    Returns
    -------
    events : pandas.DataFrame
        The model-scale events (row order = file order, with ``population``).
    truth : dict
        As from :func:`simulate_apoptosis`, plus ``dialect``, ``channels`` and, under
        ``spillover``, the ``keyword`` and ``file_channels`` written (None for none) and
        whether the data were ``hardware_compensated``.
    """
    events, truth = simulate_apoptosis(spec, seed=seed)
    return events, _write(Path(path), events, truth, "apoptosis", dialect, keywords)


def write_cellcycle_sample(
    path: str | os.PathLike[str],
    spec: CellCycleSpec | None = None,
    *,
    seed: SeedLike = DEFAULT_SEED,
    dialect: Dialect = "modern",
    keywords: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate a PI cell-cycle sample and write it as an FCS file.

    Parameters
    ----------
    path
        Output file; its directory must exist. Written atomically.
    spec
        See :func:`simulate_cell_cycle`.
    seed
        See :func:`simulate_cell_cycle`.
    dialect
        ``"modern"`` (FSC-A, SSC-A, PI-A, PI-H, PI-W as float), ``"facscalibur"``
        (FSC-H, SSC-H, FL2-H, FL2-A, FL2-W, linear 0..1023; G1 near channel 200) or
        ``"accuri"`` (FSC-A, SSC-A, FSC-H, FL2-A, FL2-H as 24-bit integers).
    keywords
        Extra TEXT keywords.

    Returns
    -------
    events : pandas.DataFrame
        The model-scale events (row order = file order, with ``population``).
    truth : dict
        As from :func:`simulate_cell_cycle`, plus ``dialect`` and ``channels``.
    """
    events, truth = simulate_cell_cycle(spec, seed=seed)
    return events, _write(Path(path), events, truth, "cellcycle", dialect, keywords)


# ---------------------------------------------------------------------- experiment
CELL_LINES = ("parental", "resistant")
TREATMENTS = ("vehicle", "drugA", "drugB", "drugA+drugB")
_DOSES = {"drugA": 1.0, "drugB": 0.5}  # µM
_CONTROLS: tuple[ControlRole, ...] = ("unstained", "annexin_only", "pi_only")

# Vehicle-normalised fraction affected, fa = 1 - viable / viable_vehicle.
_APOP_PLAN: dict[str, dict[str, Any]] = {
    "parental": {
        "vehicle": {"viable": 0.90, "split": (0.40, 0.40, 0.20)},
        "fa": {"drugA": 0.20, "drugB": 0.25},
        "combo_excess": 0.18,  # fa_AB - Bliss(fa_A, fa_B): synergy
        "splits": {"drugA": (0.50, 0.36, 0.14), "drugB": (0.45, 0.40, 0.15),
                   "drugA+drugB": (0.38, 0.48, 0.14)},
    },
    "resistant": {
        "vehicle": {"viable": 0.92, "split": (0.44, 0.37, 0.19)},
        "fa": {"drugA": 0.03, "drugB": 0.22},
        "combo_excess": 0.0,  # exactly Bliss: additive
        "splits": {"drugA": (0.44, 0.37, 0.19), "drugB": (0.45, 0.40, 0.15),
                   "drugA+drugB": (0.44, 0.41, 0.15)},
    },
}

_CC_PLAN: dict[str, dict[str, dict[str, Any]]] = {
    "parental": {
        "vehicle": {"profile": (0.55, 0.30, 0.15), "subg1": 0.02},
        "drugA": {"profile": (0.75, 0.12, 0.13), "subg1": 0.04},
        "drugB": {"profile": (0.25, 0.20, 0.55), "subg1": 0.05},
        "drugA+drugB": {"profile": (0.48, 0.14, 0.38), "subg1": 0.14},
    },
    "resistant": {
        "vehicle": {"profile": (0.57, 0.29, 0.14), "subg1": 0.015},
        "drugA": {"profile": (0.60, 0.27, 0.13), "subg1": 0.02},
        "drugB": {"profile": (0.27, 0.21, 0.52), "subg1": 0.05},
        "drugA+drugB": {"profile": (0.33, 0.22, 0.45), "subg1": 0.06},
    },
}
_CC_CV = {"parental": 0.040, "resistant": 0.045}
_APOP_CONCENTRATION = 250.0  # Dirichlet concentration: replicate SD ~2-3 points
_CC_CONCENTRATION = 300.0


def planted_arms() -> dict[str, Any]:
    """The planted arm means of :func:`write_experiment` (JSON-safe).

    Apoptosis percentages are among single cells; ``fa`` is the vehicle-normalised fraction
    affected ``1 - viable / viable_vehicle``. For each cell line ``combination`` gives
    ``fa_A``, ``fa_B``, ``fa_AB``, the Bliss expectation ``fa_A + fa_B - fa_A * fa_B`` and
    the excess over it in points (parental: synergy, +18; resistant: additive, 0).
    Cell-cycle percentages are of cycling single cells; ``subg1_pct`` is of all events.

    Returns
    -------
    dict
        ``{"apoptosis": {line: {treatment: {...}}}, "combination": {...},
        "cellcycle": {...}}``.
    """
    apoptosis: dict[str, dict[str, dict[str, float]]] = {}
    combination: dict[str, dict[str, Any]] = {}
    for line, plan in _APOP_PLAN.items():
        v0 = plan["vehicle"]["viable"]
        fa_a, fa_b = plan["fa"]["drugA"], plan["fa"]["drugB"]
        bliss = fa_a + fa_b - fa_a * fa_b
        fa = {"vehicle": 0.0, "drugA": fa_a, "drugB": fa_b, "drugA+drugB": bliss + plan["combo_excess"]}
        arms: dict[str, dict[str, float]] = {}
        for t in TREATMENTS:
            viable = v0 * (1.0 - fa[t])
            split = plan["vehicle"]["split"] if t == "vehicle" else plan["splits"][t]
            dead = 1.0 - viable
            arms[t] = {
                "viable_pct": 100.0 * viable,
                "early_apoptotic_pct": 100.0 * dead * split[0],
                "late_apoptotic_pct": 100.0 * dead * split[1],
                "necrotic_pct": 100.0 * dead * split[2],
                "fa": fa[t],
            }
        apoptosis[line] = arms
        # The same test on raw non-viable fractions (not vehicle-normalised) disagrees when
        # the vehicle has background death; recorded so that either convention can be checked.
        dead = {t: 1.0 - arms[t]["viable_pct"] / 100.0 for t in TREATMENTS}
        raw_bliss = dead["drugA"] + dead["drugB"] - dead["drugA"] * dead["drugB"]
        combination[line] = {
            "fa_A": fa_a, "fa_B": fa_b, "fa_AB": fa["drugA+drugB"], "bliss_fa_AB": bliss,
            "excess_over_bliss_pts": 100.0 * plan["combo_excess"],
            "interaction": "synergy" if plan["combo_excess"] > 0 else "additive (Bliss)",
            "raw_nonviable": {
                "A": dead["drugA"], "B": dead["drugB"], "AB": dead["drugA+drugB"],
                "bliss_AB": raw_bliss,
                "excess_over_bliss_pts": 100.0 * (dead["drugA+drugB"] - raw_bliss),
            },
        }
    cellcycle: dict[str, dict[str, dict[str, float]]] = {}
    for line, arms_cc in _CC_PLAN.items():
        cellcycle[line] = {
            t: {
                "g0g1_pct": 100.0 * a["profile"][0],
                "s_pct": 100.0 * a["profile"][1],
                "g2m_pct": 100.0 * a["profile"][2],
                "subg1_pct": 100.0 * a["subg1"],
                "cv": _CC_CV[line],
            }
            for t, a in arms_cc.items()
        }
    return {"apoptosis": apoptosis, "combination": combination, "cellcycle": cellcycle}


@dataclass(frozen=True, eq=False)
class SimulatedExperiment:
    """What :func:`write_experiment` wrote.

    Attributes
    ----------
    outdir
        The experiment folder.
    design
        The design sheet (as written to ``design.csv``).
    truth
        The content of ``truth.json``.
    n_files
        Number of FCS files written.
    total_bytes
        Size of everything written (FCS files, design, truth, README).
    """

    outdir: Path
    design: pd.DataFrame
    truth: dict[str, Any]
    n_files: int
    total_bytes: int


def _file_rng(seed: int, name: str, stream: int) -> np.random.Generator:
    # Keyed by the file name, so adding files never changes the others.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), stream])


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def _replicate_apoptosis(rng: np.random.Generator, arm: Mapping[str, float]) -> np.ndarray:
    means = np.array([arm[f"{q}_pct"] for q in _QUADRANTS]) / 100.0
    return rng.dirichlet(_APOP_CONCENTRATION * means)


def write_experiment(
    outdir: str | os.PathLike[str],
    *,
    seed: int = DEFAULT_SEED,
    n_apoptosis_events: int = 5000,
    n_cellcycle_events: int = 12000,
    dialect: Dialect = "modern",
) -> SimulatedExperiment:
    """Write a small two-cell-line drug-combination experiment with known truth.

    Cell lines ``parental`` and ``resistant`` x arms ``vehicle``, ``drugA``, ``drugB``,
    ``drugA+drugB`` x replicates 1-3, for both assays, plus per cell line the apoptosis
    controls ``unstained`` (vehicle cells, no stain), ``annexin_only`` and ``pi_only``
    (50/50 live/heat-killed mix). Planted biology (see :func:`planted_arms`): drugs A and
    B each raise apoptosis modestly; in ``parental`` the combination is synergistic
    (fa_AB 18 points above Bliss independence), in ``resistant`` drug A barely acts and the
    combination is exactly Bliss-additive. Cell cycle: drug A arrests in G0/G1, drug B in
    G2/M, the combination mixes both with more sub-G1. Replicates vary around the arm
    means (Dirichlet, SD of a few points).

    Files written: ``apoptosis/<line>_<treatment>_r<k>.fcs``, ``apoptosis/<line>_<control>.fcs``,
    ``cellcycle/<line>_<treatment>_r<k>.fcs``, ``design.csv`` (columns ``file, assay,
    cell_line, treatment, drug_a, dose_a, drug_b, dose_b, replicate, role, group``; paths
    relative to it; doses in µM, 0 = not given; controls have treatment ``none`` and
    replicate 1), ``truth.json`` (seed, spec, planted arm means, per-file planted and
    realised truth) and ``README.md``. Existing files of the same names are replaced
    atomically; nothing else in ``outdir`` is touched.

    Parameters
    ----------
    outdir
        Folder to write into (created if needed).
    seed
        Master seed; each file's generator is derived from it and the file's name.
    n_apoptosis_events
        Events per apoptosis file.
    n_cellcycle_events
        Events per cell-cycle file.
    dialect
        Instrument dialect of all files (see :func:`write_apoptosis_sample`).

    Returns
    -------
    SimulatedExperiment
        Design, truth, number of files and bytes written.
    """
    outdir = Path(outdir)
    _dialect(dialect)
    for sub in ("apoptosis", "cellcycle"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)
    arms = planted_arms()
    rows: list[dict[str, Any]] = []
    files: dict[str, Any] = {}
    written: list[Path] = []

    def design_row(rel: str, assay: str, line: str, treatment: str, replicate: int,
                   role: str) -> dict[str, Any]:
        return {
            "file": rel, "assay": assay, "cell_line": line, "treatment": treatment,
            "drug_a": "drugA", "dose_a": _DOSES["drugA"] if "drugA" in treatment else 0.0,
            "drug_b": "drugB", "dose_b": _DOSES["drugB"] if "drugB" in treatment else 0.0,
            "replicate": replicate, "role": role, "group": line,
        }

    for line in CELL_LINES:
        vehicle = arms["apoptosis"][line]["vehicle"]
        for treatment in TREATMENTS:
            arm = arms["apoptosis"][line][treatment]
            for rep in (1, 2, 3):
                rel = f"apoptosis/{line}_{treatment}_r{rep}.fcs"
                frac = _replicate_apoptosis(_file_rng(seed, rel, 0), arm)
                viable = float(frac[0])
                replicate: dict[str, Any] = {
                    q: float(f) for q, f in zip(_QUADRANTS, frac, strict=True)
                }
                spec = ApoptosisSpec(
                    n_events=n_apoptosis_events, **replicate,
                    debris_fraction=0.03 + 0.08 * (1.0 - viable),
                )
                _, truth = write_apoptosis_sample(
                    outdir / rel, spec, seed=_file_rng(seed, rel, 1), dialect=dialect,
                    keywords={"$SRC": f"{line} {treatment} replicate {rep}"},
                )
                truth["seed"] = [seed, zlib.crc32(rel.encode("utf-8")), 1]
                files[rel] = {
                    "assay": "apoptosis", "cell_line": line, "treatment": treatment,
                    "replicate": rep, "role": "sample",
                    "planted": {f"{q}_pct": 100.0 * float(f) for q, f in zip(_QUADRANTS, frac, strict=True)},
                    "truth": truth,
                }
                rows.append(design_row(rel, "apoptosis", line, treatment, rep, "sample"))
                written.append(outdir / rel)
        composition: dict[str, Any] = {q: vehicle[f"{q}_pct"] / 100.0 for q in _QUADRANTS}
        base = ApoptosisSpec(
            n_events=n_apoptosis_events,
            **composition,
            debris_fraction=0.03 + 0.08 * (1.0 - vehicle["viable_pct"] / 100.0),
        )
        for role in _CONTROLS:
            rel = f"apoptosis/{line}_{role}.fcs"
            spec = apoptosis_control_spec(role, base)
            _, truth = write_apoptosis_sample(
                outdir / rel, spec, seed=_file_rng(seed, rel, 1), dialect=dialect,
                keywords={"$SRC": f"{line} {role.replace('_', ' ')} control"},
            )
            truth["seed"] = [seed, zlib.crc32(rel.encode("utf-8")), 1]
            files[rel] = {
                "assay": "apoptosis", "cell_line": line, "treatment": "none", "replicate": 1,
                "role": role, "planted": {f"{q}_pct": 100.0 * getattr(spec, q) for q in _QUADRANTS},
                "truth": truth,
            }
            rows.append(design_row(rel, "apoptosis", line, "none", 1, role))
            written.append(outdir / rel)
        for treatment in TREATMENTS:
            cc = arms["cellcycle"][line][treatment]
            for rep in (1, 2, 3):
                rel = f"cellcycle/{line}_{treatment}_r{rep}.fcs"
                rng = _file_rng(seed, rel, 0)
                means = np.array([cc["g0g1_pct"], cc["s_pct"], cc["g2m_pct"]]) / 100.0
                phases = rng.dirichlet(_CC_CONCENTRATION * means)
                subg1 = float(cc["subg1_pct"] / 100.0 * np.exp(0.15 * rng.standard_normal()))
                g1 = float(50_000.0 * (1.0 + 0.015 * rng.standard_normal()))
                spec_cc = CellCycleSpec(
                    n_events=n_cellcycle_events,
                    g0g1=float(phases[0]), s=float(phases[1]), g2m=float(phases[2]),
                    subg1_fraction=subg1, debris_fraction=0.03 + 0.2 * subg1,
                    doublet_fraction=0.04, g1_mean=g1, cv=cc["cv"],
                )
                _, truth = write_cellcycle_sample(
                    outdir / rel, spec_cc, seed=_file_rng(seed, rel, 1), dialect=dialect,
                    keywords={"$SRC": f"{line} {treatment} replicate {rep}"},
                )
                truth["seed"] = [seed, zlib.crc32(rel.encode("utf-8")), 1]
                files[rel] = {
                    "assay": "cellcycle", "cell_line": line, "treatment": treatment,
                    "replicate": rep, "role": "sample",
                    "planted": {
                        "g0g1_pct": 100.0 * float(phases[0]), "s_pct": 100.0 * float(phases[1]),
                        "g2m_pct": 100.0 * float(phases[2]), "subg1_pct": 100.0 * subg1,
                        "g1_mean": g1, "cv": cc["cv"],
                    },
                    "truth": truth,
                }
                rows.append(design_row(rel, "cellcycle", line, treatment, rep, "sample"))
                written.append(outdir / rel)

    design = pd.DataFrame(rows, columns=[
        "file", "assay", "cell_line", "treatment", "drug_a", "dose_a", "drug_b", "dose_b",
        "replicate", "role", "group",
    ])
    truth_doc: dict[str, Any] = {
        "generator": "cytoflow_res.simulate.write_experiment",
        "seed": seed,
        "dialect": dialect,
        "spec": {
            "n_apoptosis_events": n_apoptosis_events,
            "n_cellcycle_events": n_cellcycle_events,
            "cell_lines": list(CELL_LINES),
            "treatments": list(TREATMENTS),
            "replicates": [1, 2, 3],
            "doses_uM": dict(_DOSES),
            "apoptosis_replicate_dirichlet_concentration": _APOP_CONCENTRATION,
            "cellcycle_replicate_dirichlet_concentration": _CC_CONCENTRATION,
            "definitions": {
                "apoptosis_pct": "percent of single cells (not debris, not doublets) per quadrant",
                "fa": "vehicle-normalised fraction affected: 1 - viable / viable_vehicle",
                "bliss_fa_AB": "fa_A + fa_B - fa_A * fa_B",
                "cellcycle_phase_pct": "percent of cycling single cells (sum 100)",
                "subg1_pct": "percent of all events",
                "spillover": "observed = true @ S; rows sources (Annexin V-FITC, PI), "
                             "columns detectors (FITC, PE)",
            },
        },
        "arms": arms,
        "files": files,
    }
    design_path = outdir / "design.csv"
    _write_text(design_path, design.to_csv(index=False, lineterminator="\n"))
    truth_path = outdir / "truth.json"
    _write_text(truth_path, json.dumps(truth_doc, indent=1, allow_nan=False) + "\n")
    readme_path = outdir / "README.md"
    _write_text(readme_path, _readme(arms, seed=seed, dialect=dialect,
                                     n_apop=n_apoptosis_events, n_cc=n_cellcycle_events))
    total = sum(p.stat().st_size for p in [*written, design_path, truth_path, readme_path])
    logger.info("wrote %d FCS files (%.1f MB) to %s", len(written), total / 1e6, outdir)
    return SimulatedExperiment(outdir=outdir, design=design, truth=truth_doc,
                               n_files=len(written), total_bytes=total)


def _readme(arms: Mapping[str, Any], *, seed: int, dialect: str, n_apop: int, n_cc: int) -> str:
    default = seed == DEFAULT_SEED and dialect == "modern" and n_apop == 5000 and n_cc == 12000
    how = (
        "`cytoflow-res simulate example_fcs`" if default else
        f"`cytoflow_res.simulate.write_experiment(outdir, seed={seed}, "
        f"n_apoptosis_events={n_apop}, n_cellcycle_events={n_cc}, dialect={dialect!r})`"
    )
    lines = [
        "# Simulated example experiment",
        "",
        f"Generated by {how} (that is, `cytoflow_res.simulate.write_experiment` with seed "
        f"{seed}, dialect `{dialect}`). Regenerating with the same arguments gives "
        "byte-identical files. Do not edit by hand.",
        "",
        "Every event is synthetic with known ground truth: `truth.json` records the planted arm",
        "means, each replicate's planted values and each file's realised counts; `design.csv`",
        "maps files to cell line, treatment, doses (µM, 0 = not given), replicate and role.",
        "",
        f"- `apoptosis/`: Annexin V-FITC (FITC-A) / PI (PE-A), {n_apop} events per file, "
        "FITC->PE spillover 0.13 and PE->FITC 0.01 in `$SPILLOVER` (uncompensated data); "
        "~3-8% debris and 3% doublets (FSC-A/FSC-H separates them). Controls per cell line: "
        "`unstained` (vehicle cells), `annexin_only`, `pi_only` (50/50 live/heat-killed mix).",
        f"- `cellcycle/`: PI-A/PI-H/PI-W, {n_cc} events per file, G0/G1 near 50,000, "
        "G2/M at 1.97x, CV 4.0% (parental) / 4.5% (resistant), doublets 4%.",
        "",
        "## Planted apoptosis arm means (% of single cells)",
        "",
        "| cell line | treatment | viable | early apoptotic | late apoptotic | necrotic |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for line, by_t in arms["apoptosis"].items():
        for t, a in by_t.items():
            lines.append(
                f"| {line} | {t} | {a['viable_pct']:.1f} | {a['early_apoptotic_pct']:.1f} | "
                f"{a['late_apoptotic_pct']:.1f} | {a['necrotic_pct']:.1f} |"
            )
    lines += ["", "Fraction affected fa = 1 - viable / viable(vehicle) (vehicle-normalised); "
              "Bliss: fa_A + fa_B - fa_A * fa_B.", ""]
    for line, c in arms["combination"].items():
        lines.append(
            f"- {line}: fa_A {c['fa_A']:.2f}, fa_B {c['fa_B']:.2f}, fa_AB {c['fa_AB']:.4f} vs "
            f"Bliss {c['bliss_fa_AB']:.4f} -> {c['interaction']} "
            f"({c['excess_over_bliss_pts']:+.0f} points; on raw non-viable fractions "
            f"{c['raw_nonviable']['excess_over_bliss_pts']:+.1f})"
        )
    lines += [
        "",
        "## Planted cell-cycle arm means (% of cycling single cells; sub-G1 % of events)",
        "",
        "| cell line | treatment | G0/G1 | S | G2/M | sub-G1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for line, by_t in arms["cellcycle"].items():
        for t, a in by_t.items():
            lines.append(
                f"| {line} | {t} | {a['g0g1_pct']:.0f} | {a['s_pct']:.0f} | "
                f"{a['g2m_pct']:.0f} | {a['subg1_pct']:.1f} |"
            )
    lines += [
        "",
        "Drug A arrests in G0/G1, drug B in G2/M; the combination mixes both with more "
        "sub-G1. Replicates scatter around these means by a few points (Dirichlet).",
        "",
    ]
    return "\n".join(lines)
