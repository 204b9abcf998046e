"""Pre-gates: remove debris and doublets before quadrants or DNA histograms are counted.

Two automatic gates, each returning an :class:`AutoGate` (a real gate from
:mod:`cytoflow_res.gating.gates`, its mask on the events it was fitted to, and what was
decided and why):

* :func:`auto_debris_gate`: a lower threshold on forward scatter. Debris are the events
  piled up near the origin of FSC, an order of magnitude below the cells; shrunken
  apoptotic cells (lower FSC, similar or higher SSC) are kept.
* :func:`auto_singlet_gate`: a band around the singlet ridge of pulse area against pulse
  height (FSC-A vs FSC-H). Doublets have about twice the area at about the same height.

:func:`gate_from_spec` turns a template's fixed ``rectangle`` / ``polygon`` step into a
gate, and :func:`pregate` runs a template's whole pre-gating (debris, optional Gating-ML cell
gate, singlets) on one sample and counts ``events_total``, ``events_cells`` and
``events_singlets``.

Everything here is pure computation on the values it is given: compensation and transforms
are the caller's business (pre-gates read scatter, which is never compensated).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from cytoflow_res.errors import ChannelError, TemplateError
from cytoflow_res.gating.gates import Gate, PolygonGate, RangeGate, RectangleGate
from cytoflow_res.gating.gatingml import apply_gatingml, read_gatingml
from cytoflow_res.gating.templates import GateSpec, Template
from cytoflow_res.gating.workspace import flowjo_pregate
from cytoflow_res.sample import Sample

__all__ = [
    "AutoGate",
    "PregateResult",
    "PregateStep",
    "auto_debris_gate",
    "auto_singlet_gate",
    "gate_from_spec",
    "pregate",
]

_MIN_EVENTS = 50
DEFAULT_K = 4.0
"""Default margin (robust SDs) of the automatic debris guard and singlet band."""
_MAD_TO_SD = 1.4826
_N_VERTICES = 48  # per side of the singlet band's polygon


@dataclass(frozen=True, eq=False)
class AutoGate:
    """An automatically placed gate with its mask and the reasons for its position.

    Attributes
    ----------
    gate
        The gate (``RangeGate`` for debris, ``PolygonGate`` for singlets), or None when too
        few events were given to place one (then every finite event is kept).
    mask
        ``gate.apply`` on the events the gate was fitted to (True = kept).
    rule
        Which rule placed it: ``"valley"``, ``"guard"``, ``"no_valley"``, ``"band"`` or
        ``"too_few_events"``.
    note
        One sentence saying what was decided, for reports.
    details
        Numbers behind the decision (thresholds, modes, spreads), JSON-safe.
    """

    gate: Gate | None
    mask: np.ndarray = field(repr=False)
    rule: str
    note: str
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        """Events the gate was fitted to."""
        return int(self.mask.size)

    @property
    def n_kept(self) -> int:
        """Events inside the gate."""
        return int(self.mask.sum())

    @property
    def n_removed(self) -> int:
        """Events outside the gate."""
        return self.n_events - self.n_kept


def _log_density(x: np.ndarray, *, bin_width: float, smooth: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed histogram density of ``x``: bin centres and counts."""
    lo, hi = float(x.min()), float(x.max())
    n_bins = max(16, min(2048, math.ceil((hi - lo) / bin_width) + 1))
    counts, edges = np.histogram(x, bins=n_bins, range=(lo, hi + 1e-12))
    dens = gaussian_filter1d(counts.astype(float), smooth / ((hi - lo + 1e-12) / n_bins), mode="constant")
    return 0.5 * (edges[:-1] + edges[1:]), dens


def _cell_mode(centres: np.ndarray, dens: np.ndarray) -> int:
    """Index of the cells' mode: the tallest peak, unless that peak is debris."""
    peaks, _ = find_peaks(np.concatenate([[0.0], dens, [0.0]]), prominence=0.05 * dens.max())
    peaks = peaks - 1
    tallest = int(np.argmax(dens))
    # A tallest peak with another sizeable peak >= 3x higher in FSC (0.48 decades; doublets
    # sit at 2x) is a debris peak: the cells are that higher peak.
    higher = [int(p) for p in peaks
              if centres[p] > centres[tallest] + math.log10(3.0) and dens[p] >= 0.1 * dens[tallest]]
    return max(higher, key=lambda p: dens[p]) if higher else tallest


def _debris_valley(centres: np.ndarray, dens: np.ndarray, cell: int, *, gap: float = 0.3) -> float:
    """Log10 FSC of the density valley between debris and the cell mode, NaN if none.

    The debris side is the density maximum at least ``gap`` decades (2x) below the cell
    mode; the valley is the lowest density between it and the cell mode (the middle of the
    lowest run when the density is flat there), and counts only when it is below half the
    debris maximum, i.e. when there is a real dip and something on its low side.
    """
    low = np.flatnonzero(centres < centres[cell] - gap)
    if low.size == 0:
        return math.nan
    debris = int(low[np.argmax(dens[low])])
    segment = dens[debris:cell + 1]
    lowest = float(segment.min())
    if not lowest < 0.5 * float(dens[debris]):
        return math.nan
    run = np.flatnonzero(segment <= lowest + 1e-9 * max(float(dens[cell]), 1.0))
    # the middle of the lowest run (a gap with no events is cut in its centre)
    idx = debris + int(run[run.size // 2]) if _contiguous(run) else debris + int(run[0])
    return float(centres[idx])


def _contiguous(idx: np.ndarray) -> bool:
    return bool(idx.size and idx[-1] - idx[0] == idx.size - 1)


def auto_debris_gate(
    fsc: np.ndarray,
    *,
    channel: str = "FSC-A",
    k: float = DEFAULT_K,
    smooth: float = 0.04,
) -> AutoGate:
    """Place a lower forward-scatter threshold that removes debris and keeps every cell.

    On log10 FSC, debris form a broad low mode (or a ramp rising towards the instrument's
    threshold) an order of magnitude below the cells. The rule:

    1. smooth the log10 FSC histogram (Gaussian, ``smooth`` decades);
    2. the cell mode is the tallest peak, unless another peak at least 3x higher in FSC
       (0.48 decades: far beyond doublets at 2x) holds a tenth of its height, in which case
       the tallest one was debris and that higher peak is the cells;
    3. the debris side is the density maximum at least 0.3 decades (2x) below the cell
       mode; the *valley* is the lowest density between it and the cell mode (the middle of
       an empty gap), and counts only if it is below half of the debris side;
    4. a *guard* protects shrunken cells: ``median - k * SD`` (robust SD from the MAD) of
       log10 FSC of the events above the valley;
    5. the threshold is the lower of valley and guard, so the gate never cuts into the
       cells' lower tail; with no valley (no debris mode), the lower of the guard and a
       tenth of the median FSC.

    Side scatter is not used: apoptotic cells shrink (lower FSC) but keep or gain SSC, so
    any cut on SSC risks them, while debris differ from cells most on FSC.

    Parameters
    ----------
    fsc
        Forward scatter (area or height) per event, data units.
    channel
        Channel name the returned gate reads.
    k
        Guard distance in robust standard deviations of log10 FSC below the cells' median.
    smooth
        Smoothing width in decades.

    Returns
    -------
    AutoGate
        ``gate`` is ``RangeGate(channel, threshold)``; ``details`` has ``threshold``,
        ``valley`` (NaN if none), ``guard``, ``cell_mode``, ``log_sd``, ``removed_pct``.
    """
    v = np.asarray(fsc, dtype=float)
    finite = np.isfinite(v)
    positive = finite & (v > 0)
    n_positive = int(np.count_nonzero(positive))
    if n_positive < _MIN_EVENTS:
        note = f"debris gate not placed: only {n_positive} events with positive {channel}"
        return AutoGate(None, finite, "too_few_events", note, {"removed_pct": _pct(~finite)})
    # Memory: at most two float64 copies of the events at a time (medians and percentiles
    # work in place on copies this function owns; they depend on the values, not the order).
    work = v[positive]
    del positive
    lowest = float(np.min(work))
    top = float(np.percentile(work, 99.9, overwrite_input=True))
    floor = max(lowest, top * 1e-5)
    x = v[finite]
    np.clip(x, floor, None, out=x)
    np.log10(x, out=x)
    centres, dens = _log_density(x, bin_width=0.005, smooth=smooth)
    cell = _cell_mode(centres, dens)
    valley = _debris_valley(centres, dens, cell)
    work = x[x > valley] if math.isfinite(valley) else x
    del x
    med = float(np.median(work, overwrite_input=True))
    np.subtract(work, med, out=work)
    np.abs(work, out=work)
    sd = _MAD_TO_SD * float(np.median(work, overwrite_input=True))
    del work
    guard = med - k * sd
    if math.isfinite(valley) and valley <= guard:
        rule, cut = "valley", valley
    elif math.isfinite(valley):
        rule, cut = "guard", guard
    else:
        rule, cut = "no_valley", min(guard, med - 1.0)
    threshold = float(10.0**cut)
    gate = RangeGate(channel, threshold, name="debris")
    mask = finite & (v >= threshold)
    why = {
        "valley": "at the density valley between debris and cells",
        "guard": f"below the debris/cell valley, {k:g} robust SD under the cells' median",
        "no_valley": "no debris mode found; a tenth of the cells' median",
    }[rule]
    removed = _pct(~mask)
    note = f"debris: {channel} >= {threshold:.4g} ({why}); removed {removed:.1f}% of events"
    details = {
        "threshold": threshold,
        "valley": float(10.0**valley) if math.isfinite(valley) else math.nan,
        "guard": float(10.0**guard),
        "cell_mode": float(10.0 ** centres[cell]),
        "log_sd": sd,
        "removed_pct": removed,
    }
    return AutoGate(gate, mask, rule, note, MappingProxyType(details))


def _pct(mask: np.ndarray) -> float:
    return 100.0 * float(np.mean(mask)) if mask.size else 0.0


def _binned_line(la: np.ndarray, r: np.ndarray, n_bins: int = 12) -> tuple[float, float]:
    """Line ``r = c0 + c1 * la`` through the medians of ``r`` in quantile bins of ``la``.

    ``la`` must be sorted (``r`` in the same order): the events of a bin,
    ``q0 <= la <= q1`` with ties at both ends included, are then one slice.
    """
    qs = np.quantile(la, np.linspace(0.0, 1.0, n_bins + 1))
    starts = np.searchsorted(la, qs, side="left")
    stops = np.searchsorted(la, qs, side="right")
    mids, meds, weights = [], [], []
    for start, stop in zip(starts[:-1].tolist(), stops[1:].tolist(), strict=True):
        if stop - start >= 20:
            mids.append(float(np.median(la[start:stop])))
            meds.append(float(np.median(r[start:stop])))
            weights.append(math.sqrt(float(stop - start)))
    if len(mids) < 3 or np.ptp(mids) <= 0:
        return float(np.median(r)), 0.0
    c1, c0 = np.polyfit(mids, meds, 1, w=weights)
    return float(c0), float(c1)


def auto_singlet_gate(
    area: np.ndarray,
    height: np.ndarray,
    *,
    channels: tuple[str, str] = ("FSC-A", "FSC-H"),
    k: float = DEFAULT_K,
    n_vertices: int = _N_VERTICES,
) -> AutoGate:
    """Keep the events on the singlet ridge of pulse area against pulse height.

    A doublet passes the laser as one long pulse: about twice the area of a singlet at about
    the same height, so its ratio area/height is far above the singlets'. The ridge is
    ``log10(A/H) = c0 + c1 * log10(A)``, fitted through the medians of quantile bins of
    area (so larger cells' slightly longer pulses are followed), first on all events and
    then twice more on the events within the band, so that doublets do not pull it up.
    The band is ``k`` robust standard deviations (1.4826 x MAD of the residuals) either
    side of the ridge; shrunken apoptotic cells lie on the same ridge, at lower area.

    Parameters
    ----------
    area, height
        Pulse area and height per event (same units, e.g. FSC-A and FSC-H).
    channels
        ``(area, height)`` channel names the returned gate reads.
    k
        Half-width of the band in robust standard deviations.
    n_vertices
        Vertices per side of the polygon that draws the band.

    Returns
    -------
    AutoGate
        ``gate`` is a ``PolygonGate`` on ``channels`` following the band over the range of
        area of the given events (events outside that range are outside the gate);
        ``details`` has ``ratio`` (median A/H on the ridge), ``slope``, ``log_sd``,
        ``removed_pct``.
    """
    a = np.asarray(area, dtype=float)
    h = np.asarray(height, dtype=float)
    if a.shape != h.shape:
        msg = f"area and height must have the same shape; got {a.shape} and {h.shape}"
        raise ValueError(msg)
    return _singlet_band(a, h, None, channels=channels, k=k, n_vertices=n_vertices)


def _singlet_band(
    a: np.ndarray,
    h: np.ndarray,
    keep: np.ndarray | None,
    *,
    channels: tuple[str, str],
    k: float,
    n_vertices: int,
) -> AutoGate:
    """:func:`auto_singlet_gate` on the events ``keep`` selects (all when None).

    The mask of the result is over the kept events. Taking whole columns and a mask rather
    than copies of the kept events, and working in place on the arrays it owns, it holds at
    most five float64 values per usable event at a time (the sorted log area and log ratio,
    their in-band copies and the work copy of a quantile).
    """
    ok = np.isfinite(a) & np.isfinite(h) & (a > 0) & (h > 0)
    if keep is not None:
        ok &= keep
    n_ok = int(np.count_nonzero(ok))
    if n_ok < _MIN_EVENTS:
        finite = np.isfinite(a) & np.isfinite(h)
        note = f"singlet gate not placed: only {n_ok} events with positive area and height"
        return AutoGate(None, finite if keep is None else finite[keep], "too_few_events", note,
                        {"removed_pct": 0.0})
    la = a[ok]
    # the polygon is drawn over the area range of the events, a hair wider (so the extreme
    # events are not lost to the half-open edges)
    a_lo, a_hi = float(la.min()) * 0.999, float(la.max()) * 1.001
    np.log10(la, out=la)
    # in order of area: every statistic below is a median or elementwise, so the order
    # changes no number, and the bins of _binned_line become slices of it
    order = np.argsort(la)
    la = la[order]
    median_la = float(np.median(la))
    r = h[ok][order]
    del order, ok
    np.log10(r, out=r)
    np.subtract(la, r, out=r)  # log10(A / H)
    c0, c1 = float(np.median(r)), 0.0
    work = np.subtract(r, c0)
    np.abs(work, out=work)
    sd = _MAD_TO_SD * float(np.median(work, overwrite_input=True))
    for _ in range(3):
        work = np.multiply(la, c1)
        np.add(work, c0, out=work)
        np.subtract(r, work, out=work)
        np.abs(work, out=work)
        inside = work <= k * max(sd, 1e-6)
        del work
        if np.count_nonzero(inside) < _MIN_EVENTS:
            break
        la_in, r_in = la[inside], r[inside]
        del inside
        c0, c1 = _binned_line(la_in, r_in)
        work = np.multiply(la_in, c1)
        del la_in
        np.add(work, c0, out=work)
        np.subtract(r_in, work, out=work)  # residuals from the new ridge
        del r_in
        np.subtract(work, float(np.median(work, overwrite_input=True)), out=work)
        np.abs(work, out=work)
        sd = _MAD_TO_SD * float(np.median(work, overwrite_input=True))
    del la, r
    sd = max(sd, 1e-4)
    grid = np.geomspace(a_lo, a_hi, max(int(n_vertices), 2))
    ridge = c0 + c1 * np.log10(grid)
    h_low = grid / 10.0 ** (ridge + k * sd)
    h_high = grid / 10.0 ** (ridge - k * sd)
    vertices = [*zip(grid, h_low, strict=True), *zip(grid[::-1], h_high[::-1], strict=True)]
    gate = PolygonGate(channels, tuple((float(x), float(y)) for x, y in vertices), name="singlets")
    mask = gate.apply({channels[0]: a, channels[1]: h})
    if keep is not None:
        mask = mask[keep]
    removed = _pct(~mask)
    ratio = float(10.0 ** (c0 + c1 * median_la))
    note = (
        f"singlets: {channels[0]}/{channels[1]} within {k:g} robust SD of the singlet ridge "
        f"(ratio {ratio:.3f}); removed {removed:.1f}% of events"
    )
    details = {"ratio": ratio, "slope": c1, "log_sd": sd, "removed_pct": removed}
    return AutoGate(gate, mask, "band", note, MappingProxyType(details))


def gate_from_spec(spec: GateSpec, channels: Mapping[str, str], *, name: str | None = None) -> Gate | None:
    """The fixed gate of a template step (``rectangle`` or ``polygon``) on resolved channels.

    Parameters
    ----------
    spec
        A pre-gate step of a template.
    channels
        Role -> channel name, as :meth:`Template.resolve_channels` returns.
    name
        Name given to the gate.

    Returns
    -------
    Gate or None
        ``RectangleGate`` or ``PolygonGate`` on the step's two channels; None for
        ``none`` and ``auto`` steps (automatic gates depend on the data: see
        :func:`auto_debris_gate`, :func:`auto_singlet_gate`).

    Raises
    ------
    TemplateError
        If a role of the step is not among ``channels``.
    """
    if spec.method in ("none", "auto"):
        return None
    missing = [r for r in spec.roles if r not in channels]
    if missing:
        msg = (
            f"the {spec.method} pre-gate reads role {missing[0]!r}, which is not among the resolved "
            f"channels ({', '.join(f'{k}={v}' for k, v in channels.items())})"
        )
        raise TemplateError(msg)
    dims = (channels[spec.x], channels[spec.y])
    if spec.method == "rectangle":
        assert spec.ranges is not None
        (x0, x1), (y0, y1) = spec.ranges
        kept = [(d, (lo, hi)) for d, (lo, hi) in zip(dims, ((x0, x1), (y0, y1)), strict=True)
                if lo is not None or hi is not None]
        return RectangleGate(tuple(d for d, _ in kept), tuple(r for _, r in kept), name=name)
    assert spec.vertices is not None
    return PolygonGate(dims, spec.vertices, name=name)


# ---------------------------------------------------------------- the whole step
@dataclass(frozen=True, eq=False)
class PregateStep:
    """What one pre-gate step did.

    Attributes
    ----------
    name
        ``"debris"``, ``"gatingml"`` or ``"singlets"``.
    method
        The template's method (``auto``, ``rectangle``, ``polygon``, ``gatingml``, ``none``).
    gate
        The gate applied (None when the step is off or could not be placed).
    n_in, n_out
        Events entering and leaving the step.
    note
        What was decided (from :class:`AutoGate` for automatic steps).
    details
        Numbers behind an automatic decision.
    """

    name: str
    method: str
    gate: Gate | None
    n_in: int
    n_out: int
    note: str = ""
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def removed_pct(self) -> float:
        """Percentage of the step's input it removed."""
        return 100.0 * (self.n_in - self.n_out) / self.n_in if self.n_in else 0.0


@dataclass(frozen=True, eq=False)
class PregateResult:
    """Masks and counts of a sample's pre-gating (see :func:`pregate`).

    Attributes
    ----------
    cells
        Mask over all events: passed the debris gate and the Gating-ML cell gate.
    singlets
        Mask over all events: cells that also passed the singlet gate (what is analysed).
    steps
        One :class:`PregateStep` per step, in order (debris, gatingml, singlets; steps
        that are off are included with method ``none``).
    channels
        Role -> channel name used.
    warnings
        One message per step that removed more than the allowed share of its input.
    """

    cells: np.ndarray = field(repr=False)
    singlets: np.ndarray = field(repr=False)
    steps: tuple[PregateStep, ...]
    channels: Mapping[str, str]
    warnings: tuple[str, ...] = ()

    @property
    def mask(self) -> np.ndarray:
        """The final mask (``singlets``)."""
        return self.singlets

    @property
    def events_total(self) -> int:
        """All events of the sample."""
        return int(self.cells.size)

    @property
    def events_cells(self) -> int:
        """Events that passed the debris (and Gating-ML) gate."""
        return int(self.cells.sum())

    @property
    def events_singlets(self) -> int:
        """Cells that passed the singlet gate."""
        return int(self.singlets.sum())

    @property
    def gates(self) -> dict[str, Gate | None]:
        """Step name -> gate applied."""
        return {s.name: s.gate for s in self.steps}

    def summary(self) -> dict[str, Any]:
        """Counts, notes and warnings as a JSON-safe dict (for result tables and reports)."""
        return {
            "events_total": self.events_total,
            "events_cells": self.events_cells,
            "events_singlets": self.events_singlets,
            "steps": [
                {"name": s.name, "method": s.method, "n_in": s.n_in, "n_out": s.n_out,
                 "removed_pct": s.removed_pct, "note": s.note}
                for s in self.steps
            ],
            "warnings": list(self.warnings),
        }


@functools.lru_cache(maxsize=16)
def _gatingml_gates(path: str, mtime_ns: int) -> Mapping[str, Gate]:
    del mtime_ns  # part of the cache key only: an edited file is read again
    return MappingProxyType(read_gatingml(path))


def _values(sample: Sample, name: str) -> np.ndarray:
    return np.asarray(sample.column(name), dtype=float)


def pregate(
    sample: Sample,
    template: Template,
    channels: Mapping[str, str] | None = None,
    *,
    max_removed: float = 0.30,
) -> PregateResult:
    """Run a template's pre-gates on one sample: debris, Gating-ML cell gate, singlets.

    Steps run in order, each on the events the previous one kept. An ``auto`` step places
    its gate on those events (:func:`auto_debris_gate`, :func:`auto_singlet_gate`); a
    ``rectangle`` or ``polygon`` step applies the template's coordinates (data units); the
    Gating-ML gate (``pregates.gatingml``) keeps its population, ancestors included, and is
    counted with the debris gate as the cell gate. Scatter is read from the sample as given
    (scale values); compensation does not change scatter, so pre-gating before or after
    compensating gives the same masks.

    Parameters
    ----------
    sample
        The sample.
    template
        Supplies the pre-gate steps.
    channels
        Role -> channel name; resolved with ``template.resolve_channels(sample)`` when None.
    max_removed
        A step removing more than this fraction of its input adds a warning.

    Returns
    -------
    PregateResult
        Masks over all events, ``events_total`` / ``events_cells`` / ``events_singlets``,
        the gates placed and warnings.

    Raises
    ------
    ChannelError
        If the template's channels cannot be resolved, or ``channels`` lacks a role a
        pre-gate reads.
    TemplateError
        If the Gating-ML file cannot be read or lacks the gate.
    """
    if channels is None:
        channels = template.resolve_channels(sample)
    steps_on = [s for s in (template.pregates.debris, template.pregates.singlets) if s.active]
    missing = sorted({r for s in steps_on for r in s.roles if r not in channels})
    if missing:
        msg = (
            f"the pre-gates of template {template.name!r} read role(s) {', '.join(missing)}, which "
            f"are not among the channels given ({', '.join(f'{k}={v}' for k, v in channels.items())}); "
            "pass template.resolve_channels(sample)"
        )
        raise ChannelError(msg)
    n = sample.n_events
    keep = np.ones(n, dtype=bool)
    steps: list[PregateStep] = []
    warnings: list[str] = []

    def record(name: str, method: str, gate: Gate | None, new_keep: np.ndarray,
               note: str = "", details: Mapping[str, float] | None = None) -> np.ndarray:
        n_in, n_out = int(keep.sum()), int(new_keep.sum())
        step = PregateStep(name, method, gate, n_in, n_out, note, MappingProxyType(dict(details or {})))
        steps.append(step)
        if n_in and (n_in - n_out) / n_in > max_removed:
            warnings.append(
                f"{sample.sample_id}: the {name} gate removed {step.removed_pct:.1f}% of "
                f"{n_in} events (more than {100 * max_removed:.0f}%); check the "
                f"{'FSC/SSC' if name == 'debris' else name} plot and the template's pregates.{name}"
            )
        return new_keep

    # debris
    spec = template.pregates.debris
    if spec.method == "auto":
        fsc_name = channels[spec.x]
        fsc = _values(sample, fsc_name)  # every event is still kept: no copy of the kept ones
        auto = auto_debris_gate(fsc, channel=fsc_name, k=spec.k or DEFAULT_K)
        del fsc
        new = keep.copy()
        new[keep] = auto.mask
        keep = record("debris", "auto", auto.gate, new, auto.note, auto.details)
    else:
        gate = gate_from_spec(spec, channels, name="debris")
        new = keep if gate is None else keep & gate.apply(sample)
        keep = record("debris", spec.method, gate, new)

    # Gating-ML cell gate
    gml = template.pregates.gatingml
    if gml is not None:
        try:
            mtime = os.stat(gml.path).st_mtime_ns
        except OSError as exc:
            where = template.source or template.name
            msg = f"{where}: pregates.gatingml.path {gml.path!r} cannot be read ({exc})"
            raise TemplateError(msg) from None
        gates = _gatingml_gates(gml.path, mtime)
        new = keep & apply_gatingml(gates, sample, gml.gate)
        keep = record("gatingml", "gatingml", gates[gml.gate], new, f"Gating-ML gate {gml.gate!r}")
    elif template.pregates.flowjo is not None:
        # A FlowJo workspace gate takes the same step (the lab's own cell gate, ancestors included).
        fj_gate = flowjo_pregate(template.pregates.flowjo)
        new = keep & fj_gate.apply(sample)
        keep = record("gatingml", "flowjo", fj_gate, new, fj_gate.describe(sample))
    else:
        keep = record("gatingml", "none", None, keep)
    cells = keep.copy()

    # singlets
    spec = template.pregates.singlets
    if spec.method == "auto":
        names = (channels[spec.x], channels[spec.y])
        area, height = _values(sample, names[0]), _values(sample, names[1])
        # auto_singlet_gate on the kept events, without copying them
        auto = _singlet_band(area, height, keep, channels=names, k=spec.k or DEFAULT_K,
                             n_vertices=_N_VERTICES)
        del area, height
        new = keep.copy()
        new[keep] = auto.mask
        keep = record("singlets", "auto", auto.gate, new, auto.note, auto.details)
    else:
        gate = gate_from_spec(spec, channels, name="singlets")
        new = keep if gate is None else keep & gate.apply(sample)
        keep = record("singlets", spec.method, gate, new)

    return PregateResult(
        cells=cells,
        singlets=keep,
        steps=tuple(steps),
        channels=MappingProxyType(dict(channels)),
        warnings=tuple(warnings),
    )
