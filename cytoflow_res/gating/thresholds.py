"""Quadrant thresholds for Annexin V x PI: fixed, a percentile of a negative control, or a valley.

* :func:`percentile_threshold`: a high percentile (99.5 by default) of a control's values:
  the classic "99.5% of unstained cells are negative" rule.
* :func:`valley_threshold`: the deepest density valley between a negative and a positive
  mode, found on a display scale (logicle, asinh, log) where both modes are compact.
* :func:`thresholds_from_controls`: both thresholds of a template from the experiment's
  controls, after pre-gating the controls exactly as the samples are.

Thresholds are in data units: scaled (and, where the template compensates, compensated)
values, the values the quadrant gate compares. Transforms only shape the density that
:func:`valley_threshold` searches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq
from scipy.signal import find_peaks

from cytoflow_res.errors import DesignError, TemplateError
from cytoflow_res.gating._gml_transforms import LogicleTransform
from cytoflow_res.gating.preprocess import PregateResult, pregate
from cytoflow_res.gating.templates import Template, validate_transform_spec
from cytoflow_res.sample import Sample

__all__ = [
    "Thresholds",
    "ValleyThreshold",
    "display_scale",
    "percentile_threshold",
    "thresholds_from_controls",
    "valley_threshold",
]

TransformLike: TypeAlias = "Mapping[str, Any] | Callable[[np.ndarray], np.ndarray] | None"
"""A transform spec dict, a forward function (``make_transform(spec).apply``), or None."""

_MIN_EVENTS = 100
_MAD_TO_SD = 1.4826


def _finite(values: np.ndarray | Any, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        msg = f"{what}: no finite values to set a threshold from"
        raise ValueError(msg)
    return v


def percentile_threshold(values: np.ndarray, q: float = 99.5) -> float:
    """The ``q``-th percentile of ``values`` (NaN and infinite values ignored).

    Parameters
    ----------
    values
        A negative control's values in one channel (data units).
    q
        Percentile in (0, 100); 99.5 leaves 0.5% of the control above the threshold.

    Returns
    -------
    float
        Linear interpolation between order statistics (numpy's default method); on data
        with repeated values (integer channels), if the percentile falls on a value shared by
        several events, half-way to the next larger value, so that at most ``100 - q``
        percent of the values are at or above the threshold.

    Raises
    ------
    ValueError
        If ``q`` is outside (0, 100) or there are no finite values.

    Examples
    --------
    >>> percentile_threshold(np.arange(1001.0), 99.5)
    995.0
    """
    if not 0.0 < float(q) < 100.0:
        msg = f"percentile q must lie strictly between 0 and 100; got {q}"
        raise ValueError(msg)
    v = _finite(values, "percentile_threshold")
    thr = float(np.percentile(v, float(q)))
    # Integer (e.g. 10-bit log) data repeat values: when the percentile lands on a value many
    # events share, all of them would count as positive (a gate keeps x >= threshold). Move
    # the threshold half-way to the next value so that at most (100 - q)% is at or above it.
    ties = int(np.count_nonzero(v == thr))
    if ties > 1 and np.count_nonzero(v >= thr) > (1.0 - float(q) / 100.0) * v.size:
        above = v[v > thr]
        if above.size:
            thr = 0.5 * (thr + float(above.min()))
    return thr


def display_scale(transform: TransformLike) -> Callable[[np.ndarray], np.ndarray]:
    """A forward function for a transform spec (or pass a function through).

    Parameters
    ----------
    transform
        None (identity), a forward function, or a spec dict of the kinds a template accepts
        (``logicle`` ``t, w, m, a``; ``asinh`` ``cofactor``; ``linear``; ``log``
        ``decades, t``).

    Returns
    -------
    callable
        Monotone non-decreasing map of data values to display values. ``log`` clips values
        below ``t / 10**decades`` to the bottom of the scale instead of returning NaN.

    Raises
    ------
    TemplateError
        If the spec is not valid.
    """
    if transform is None:
        return lambda x: np.asarray(x, dtype=float)
    if callable(transform):
        return transform
    spec = validate_transform_spec(transform)
    kind = spec["type"]
    if kind == "linear":
        return lambda x: np.asarray(x, dtype=float)
    if kind == "asinh":
        cof = float(spec["cofactor"])
        return lambda x: np.arcsinh(np.asarray(x, dtype=float) / cof)
    if kind == "log":
        t, decades = float(spec["t"]), float(spec["decades"])
        bottom = t / 10.0**decades
        return lambda x: np.log10(np.clip(np.asarray(x, dtype=float), bottom, None))
    logicle = LogicleTransform(T=spec["t"], W=spec["w"], M=spec["m"], A=spec["a"])
    return lambda x: np.asarray(logicle.apply(np.asarray(x, dtype=float)), dtype=float)


@dataclass(frozen=True)
class ValleyThreshold:
    """Result of :func:`valley_threshold`.

    Attributes
    ----------
    value
        The threshold in data units.
    bimodal
        True if a valley between two modes was found; False if the fallback rule was used.
    note
        How the threshold was placed, for reports.
    display_value
        The threshold on the display scale.
    """

    value: float
    bimodal: bool
    note: str
    display_value: float


def valley_threshold(
    values: np.ndarray,
    transform: TransformLike = None,
    *,
    bins: int = 256,
    smooth: float = 2.0,
    min_prominence: float = 0.05,
    fallback_q: float = 99.5,
) -> ValleyThreshold:
    """Threshold at the deepest density valley between two modes, on a display scale.

    The values are mapped to the display scale, histogrammed between their 0.1th and
    99.9th percentiles and smoothed (Gaussian, ``smooth`` bins). Peaks with a prominence of
    at least ``min_prominence`` of the highest are modes; the valley is the lowest point
    between the two tallest modes (the middle of the lowest run where the density is
    flat). The threshold is the data value whose display value is the valley, solved for
    between the two events either side of it (no inverse transform is needed, so any
    monotone forward function will do).

    Modes below data zero (noise, over-compensated events) are ignored. With one mode left
    there is no valley: the stated fallback reads the values as a negative control and
    returns their ``fallback_q`` percentile (:func:`percentile_threshold`), with ``bimodal``
    False so the caller can report it.

    Parameters
    ----------
    values
        One channel's values (data units).
    transform
        Display scale: a spec dict (``{"type": "logicle", ...}``), a forward function, or
        None for the values' own scale.
    bins
        Histogram bins.
    smooth
        Smoothing in bins.
    min_prominence
        Minimum prominence of a mode, as a fraction of the highest density.
    fallback_q
        Percentile used when there is only one mode.

    Returns
    -------
    ValleyThreshold

    Raises
    ------
    ValueError
        With fewer than 100 finite values.
    """
    v = _finite(values, "valley_threshold")
    if v.size < _MIN_EVENTS:
        msg = f"valley_threshold needs at least {_MIN_EVENTS} finite values; got {v.size}"
        raise ValueError(msg)
    forward = display_scale(transform)
    order = np.argsort(v, kind="stable")
    xs = v[order]
    ys = np.fmax.accumulate(np.asarray(forward(xs), dtype=float))
    ok = np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    lo, hi = np.percentile(ys, [0.1, 99.9])
    if not hi > lo:
        lo, hi = float(ys[0]), float(ys[-1]) + 1e-12
    counts, edges = np.histogram(ys, bins=int(bins), range=(float(lo), float(hi)))
    dens = gaussian_filter1d(counts.astype(float), float(smooth), mode="constant")
    centres = 0.5 * (edges[:-1] + edges[1:])
    peaks, _ = find_peaks(np.concatenate([[0.0], dens, [0.0]]), prominence=min_prominence * dens.max())
    peaks = peaks - 1
    # A stained population has positive values: a "mode" of events below data zero (noise,
    # over-compensation) is never one side of a stain's valley.
    zero = float(np.asarray(forward(np.zeros(1)), dtype=float)[0])
    peaks = peaks[centres[peaks] > zero] if math.isfinite(zero) else peaks
    if peaks.size < 2:
        value = percentile_threshold(xs, fallback_q)
        note = (
            f"one mode only: no valley; fallback: the {fallback_q:g}th percentile of all values "
            "(the control is read as a negative control)"
        )
        y_fallback = float(np.asarray(forward(np.array([value])), dtype=float)[0])
        return ValleyThreshold(value=value, bimodal=False, note=note, display_value=y_fallback)
    top2 = np.sort(peaks[np.argsort(dens[peaks])[-2:]])
    seg = dens[top2[0]:top2[1] + 1]
    run = np.flatnonzero(seg <= seg.min() + 1e-9 * dens.max())
    # the middle of the lowest run when the density is flat (an empty gap is cut in its centre)
    mid = int(run[run.size // 2]) if run[-1] - run[0] == run.size - 1 else int(run[0])
    y_cut = float(centres[top2[0] + mid])
    note = f"valley between modes at display {centres[top2[0]]:.4g} and {centres[top2[1]]:.4g}"
    value = _invert(forward, y_cut, xs, ys)
    return ValleyThreshold(value=value, bimodal=True, note=note, display_value=y_cut)


def _invert(forward: Callable[[np.ndarray], np.ndarray], y: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """The data value whose display value is ``y``, bracketed by the sorted events ``xs``."""
    i = int(np.searchsorted(ys, y))
    lo, hi = float(xs[max(i - 1, 0)]), float(xs[min(i, xs.size - 1)])

    def f(x: float) -> float:
        return float(np.asarray(forward(np.array([x])), dtype=float)[0]) - y

    if hi <= lo or f(lo) >= 0.0:
        return lo
    if f(hi) <= 0.0:
        return hi
    return float(brentq(f, lo, hi, xtol=1e-9 * max(abs(lo), abs(hi), 1.0)))


@dataclass(frozen=True)
class Thresholds:
    """Annexin V and PI thresholds and where they came from.

    Attributes
    ----------
    annexin, pi
        Thresholds in data units (compensated scale values); an event is positive when its
        value is at least the threshold (as in ``QuadrantGate``).
    method
        ``"fixed"``, ``"percentile"`` or ``"valley"``.
    source
        One sentence: which controls (file names, events after pre-gating) or the template.
    notes
        Further remarks (valley fallbacks, pre-gating warnings of the controls).
    details
        Numbers behind them (percentile, events used per control), JSON-safe.
    """

    annexin: float
    pi: float
    method: str
    source: str
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (for result tables and reports)."""
        return {
            "annexin_threshold": self.annexin,
            "pi_threshold": self.pi,
            "threshold_method": self.method,
            "threshold_source": self.source,
            "threshold_notes": list(self.notes),
            "details": dict(self.details),
        }


def _control_values(
    control: Sample, template: Template, channels: Mapping[str, str] | None, role: str
) -> tuple[np.ndarray, PregateResult, str]:
    chans = channels if channels is not None else template.resolve_channels(control)
    gated = pregate(control, template, chans)
    values = np.asarray(control.column(chans[role]), dtype=float)[gated.singlets]
    return values, gated, chans[role]


def _need(control: Sample | None, role: str, template: Template, why: str) -> Sample:
    if control is None:
        msg = (
            f"template {template.name!r} sets thresholds with {why}, which needs the {role} control; "
            f"none was given: add a file with role {role} to the design sheet, or use "
            "thresholds.method: fixed in the template"
        )
        raise DesignError(msg)
    return control


def thresholds_from_controls(
    template: Template,
    *,
    unstained: Sample | None = None,
    annexin_only: Sample | None = None,
    pi_only: Sample | None = None,
    channels: Mapping[str, str] | None = None,
) -> Thresholds:
    """Set the Annexin V and PI thresholds of an apoptosis template from its controls.

    Each control is first pre-gated exactly like the samples (:func:`pregate` with the
    template: debris, Gating-ML cell gate, singlets); only its singlets count. Controls must
    also be compensated exactly like the samples: pass Samples that are **already
    compensated** (by the caller, with the same matrix as the samples; uncompensated
    controls under a compensating template give thresholds in the wrong space).

    ``thresholds.method`` / ``thresholds.control`` of the template decide:

    * ``fixed``: the template's ``annexin`` and ``pi`` values; controls are not needed.
    * ``percentile`` + ``unstained``: the ``percentile`` of the unstained control in each
      channel.
    * ``percentile`` + ``single_stains``: fluorescence-minus-one logic: the Annexin V
      threshold is the percentile of the Annexin V channel of the PI-only control (no
      Annexin V, but PI's compensated spread), the PI threshold that of the PI channel of the
      Annexin-V-only control.
    * ``valley`` + ``single_stains``: the density valley (on the template's display
      transform of that role) of the Annexin V channel of the Annexin-V-only control, and of
      the PI channel of the PI-only control; when a control shows one mode only, the fallback
      of :func:`valley_threshold` (the template's ``percentile`` of that control) is used and
      noted.

    Parameters
    ----------
    template
        An apoptosis template.
    unstained, annexin_only, pi_only
        Compensated control samples (keyword-only); only those the method needs are read.
    channels
        Role -> channel name for the controls; resolved for each control from the template
        when None.

    Returns
    -------
    Thresholds

    Raises
    ------
    TemplateError
        If the template is not an apoptosis template.
    DesignError
        If a control the method needs was not given.
    ChannelError
        If a control lacks a channel the template needs.
    """
    spec = template.thresholds
    if template.assay != "apoptosis" or spec is None:
        msg = (
            f"template {template.name!r} is a {template.assay} template; "
            "thresholds need an apoptosis template"
        )
        raise TemplateError(msg)
    if spec.method == "fixed":
        assert spec.annexin is not None and spec.pi is not None
        return Thresholds(
            annexin=spec.annexin, pi=spec.pi, method="fixed",
            source=f"fixed in template {template.name!r}",
        )
    q = spec.percentile
    notes: list[str] = []
    details: dict[str, Any] = {}

    def values(control: Sample, label: str, role: str) -> np.ndarray:
        vals, gated, name = _control_values(control, template, channels, role)
        notes.extend(f"{label} control: {w}" for w in gated.warnings)
        details[f"{label}_events_total"] = gated.events_total
        details[f"{label}_events_singlets"] = gated.events_singlets
        details[f"{role}_channel"] = name
        if vals.size < _MIN_EVENTS:
            msg = (
                f"{control.sample_id}: only {vals.size} {label} control events are left after "
                f"pre-gating; a threshold needs at least {_MIN_EVENTS}"
            )
            raise DesignError(msg)
        return vals

    if spec.method == "percentile":
        details["percentile"] = q
        if spec.control == "unstained":
            ctrl = _need(unstained, "unstained", template, f"the {q:g}th percentile of the unstained control")
            ann = percentile_threshold(values(ctrl, "unstained", "annexin"), q)
            pi = percentile_threshold(values(ctrl, "unstained", "pi"), q)
            n = details["unstained_events_singlets"]
            source = f"{q:g}th percentile of unstained control {ctrl.sample_id} ({n} singlets)"
        else:
            pi_ctrl = _need(pi_only, "pi_only", template, "single-stain (FMO) percentiles")
            ann_ctrl = _need(annexin_only, "annexin_only", template, "single-stain (FMO) percentiles")
            ann = percentile_threshold(values(pi_ctrl, "pi_only", "annexin"), q)
            pi = percentile_threshold(values(ann_ctrl, "annexin_only", "pi"), q)
            source = (
                f"{q:g}th percentile of Annexin V in PI-only control {pi_ctrl.sample_id} and of PI in "
                f"Annexin-V-only control {ann_ctrl.sample_id}"
            )
        return Thresholds(ann, pi, "percentile", source, tuple(notes), MappingProxyType(details))

    ann_ctrl = _need(annexin_only, "annexin_only", template, "density valleys of single stains")
    pi_ctrl = _need(pi_only, "pi_only", template, "density valleys of single stains")
    ann_v = valley_threshold(values(ann_ctrl, "annexin_only", "annexin"), template.transforms.get("annexin"),
                             fallback_q=q)
    pi_v = valley_threshold(values(pi_ctrl, "pi_only", "pi"), template.transforms.get("pi"), fallback_q=q)
    for label, res in (("Annexin V", ann_v), ("PI", pi_v)):
        if not res.bimodal:
            notes.append(f"{label}: {res.note}")
    details["annexin_bimodal"] = ann_v.bimodal
    details["pi_bimodal"] = pi_v.bimodal
    source = (
        f"density valley of Annexin V in {ann_ctrl.sample_id} and of PI in {pi_ctrl.sample_id}"
    )
    if math.isnan(ann_v.value) or math.isnan(pi_v.value):  # pragma: no cover - defensive
        msg = f"valley thresholds could not be computed from {ann_ctrl.sample_id} / {pi_ctrl.sample_id}"
        raise DesignError(msg)
    return Thresholds(ann_v.value, pi_v.value, "valley", source, tuple(notes), MappingProxyType(details))
