"""Annexin V / PI apoptosis: compensate, pre-gate, split into four quadrants.

The quadrants, among pre-gated single cells:

* viable: Annexin V- / PI-
* early apoptotic: Annexin V+ / PI-
* late apoptotic: Annexin V+ / PI+
* necrotic: Annexin V- / PI+

An event is positive when its compensated value is at least the threshold (the convention of
:class:`~cytoflow_res.gating.QuadrantGate`). Thresholds are set once from the controls of a
group (unstained, or single stains) and applied unchanged to every sample of the group:
:class:`ApoptosisGating` holds that once-per-group state, :func:`analyze_apoptosis` is the
one-sample shortcut.

Examples
--------
>>> import cytoflow_res as cr
>>> gating = cr.ApoptosisGating.prepare(  # doctest: +SKIP
...     "generic_modern", unstained=cr.read_fcs("unstained.fcs"))
>>> result = gating.analyze(cr.read_fcs("drugA_r1.fcs"))  # doctest: +SKIP
>>> result.to_frame()  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from cytoflow_res.errors import DesignError, FCSError, TemplateError
from cytoflow_res.gating.preprocess import PregateResult, pregate
from cytoflow_res.gating.templates import Template, load_template
from cytoflow_res.gating.thresholds import Thresholds, thresholds_from_controls
from cytoflow_res.sample import Sample
from cytoflow_res.transforms import Compensation

__all__ = [
    "APOPTOSIS_COLUMNS",
    "QUADRANTS",
    "ApoptosisGating",
    "ApoptosisResult",
    "analyze_apoptosis",
]

#: Quadrant names in the order of the result columns, with (annexin+, pi+) for each.
QUADRANTS: dict[str, tuple[bool, bool]] = {
    "viable": (False, False),
    "early_apoptotic": (True, False),
    "late_apoptotic": (True, True),
    "necrotic": (False, True),
}

#: Leading columns of ``apoptosis.csv`` (and of :meth:`ApoptosisResult.to_frame`).
APOPTOSIS_COLUMNS = [
    "sample_id", "file", "events_total", "events_cells", "events_singlets", "viable_pct",
    "early_apoptotic_pct", "late_apoptotic_pct", "necrotic_pct", "total_apoptotic_pct",
    "annexin_threshold", "pi_threshold", "status", "message",
]

#: Fewer analysed cells than this gives a warning (a percentage of 1 cell in 500 is 0.2 points).
MIN_CELLS = 500

CompensationArg = Compensation | str | os.PathLike[str] | None


def _template(template: Template | str | os.PathLike[str]) -> Template:
    tpl = template if isinstance(template, Template) else load_template(template)
    if tpl.assay != "apoptosis":
        msg = (
            f"template {tpl.name!r} is a {tpl.assay} template; Annexin V / PI analysis needs an "
            "apoptosis template (e.g. generic_modern, facscalibur, accuri_c6)"
        )
        raise TemplateError(msg)
    return tpl


@dataclass(frozen=True, eq=False)
class ApoptosisResult:
    """Quadrant counts and percentages of one sample, with everything used to get them.

    Attributes
    ----------
    sample
        The compensated sample (all events; ``pregate.singlets`` selects the analysed ones).
    template
        The template used.
    channels
        Role -> channel name (``annexin``, ``pi``, scatter roles).
    compensation
        The compensation applied (None when the template says ``none``).
    pregate
        Pre-gating masks, counts and warnings.
    thresholds
        Annexin V and PI thresholds (data units, compensated).
    counts
        Quadrant name -> number of analysed cells.
    status
        ``"ok"`` or ``"warn"``.
    message
        Why the status is ``warn`` (empty when ok).
    """

    sample: Sample
    template: Template
    channels: Mapping[str, str]
    compensation: Compensation | None
    pregate: PregateResult
    thresholds: Thresholds
    counts: Mapping[str, int]
    status: Literal["ok", "warn"]
    message: str = ""
    file: str = field(default="")

    # ------------------------------------------------------------------ numbers
    @property
    def sample_id(self) -> str:
        """The sample's identifier ($FIL or the file name)."""
        return self.sample.sample_id

    @property
    def n_cells(self) -> int:
        """Analysed events (pre-gated singlets)."""
        return int(sum(self.counts.values()))

    @property
    def percentages(self) -> dict[str, float]:
        """Quadrant name -> percentage of analysed cells (NaN when there are none)."""
        n = self.n_cells
        return {k: (100.0 * v / n if n else math.nan) for k, v in self.counts.items()}

    @property
    def total_apoptotic_pct(self) -> float:
        """Early plus late apoptotic, in percent."""
        p = self.percentages
        return p["early_apoptotic"] + p["late_apoptotic"]

    def annexin_values(self) -> np.ndarray:
        """Compensated Annexin V values of the analysed cells."""
        return np.asarray(self.sample.column(self.channels["annexin"]), dtype=float)[self.pregate.singlets]

    def pi_values(self) -> np.ndarray:
        """Compensated PI values of the analysed cells."""
        return np.asarray(self.sample.column(self.channels["pi"]), dtype=float)[self.pregate.singlets]

    def summary(self) -> dict[str, Any]:
        """JSON-safe dict: counts, percentages, thresholds, pre-gating, compensation."""
        pct = self.percentages
        return {
            "sample_id": self.sample_id,
            "file": self.file,
            "template": self.template.name,
            "status": self.status,
            "message": self.message,
            "channels": dict(self.channels),
            "counts": dict(self.counts),
            **{f"{k}_pct": _clean(v) for k, v in pct.items()},
            "total_apoptotic_pct": _clean(self.total_apoptotic_pct),
            "thresholds": self.thresholds.to_dict(),
            "pregate": self.pregate.summary(),
            "compensation": None if self.compensation is None else {
                "source": self.compensation.source,
                "channels": list(self.compensation.channels),
                "spillover": self.compensation.spillover.tolist(),
            },
        }

    def to_frame(self) -> pd.DataFrame:
        """One tidy row in the column order of ``apoptosis.csv`` (then extra columns)."""
        pct = self.percentages
        row: dict[str, Any] = {
            "sample_id": self.sample_id,
            "file": self.file,
            "events_total": self.pregate.events_total,
            "events_cells": self.pregate.events_cells,
            "events_singlets": self.pregate.events_singlets,
            **{f"{k}_pct": pct[k] for k in QUADRANTS},
            "total_apoptotic_pct": self.total_apoptotic_pct,
            "annexin_threshold": self.thresholds.annexin,
            "pi_threshold": self.thresholds.pi,
            "status": self.status,
            "message": self.message,
            **{f"{k}_n": int(self.counts[k]) for k in QUADRANTS},
            "annexin_channel": self.channels["annexin"],
            "pi_channel": self.channels["pi"],
            "compensation": "none" if self.compensation is None else self.compensation.source,
            "threshold_method": self.thresholds.method,
            "threshold_source": self.thresholds.source,
            "template": self.template.name,
        }
        return pd.DataFrame([row])

    def _repr_html_(self) -> str:
        pct = self.percentages
        colour = {"ok": "#1b7837", "warn": "#b35806"}[self.status]
        rows = "".join(
            f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{self.counts[k]}</td>"
            f"<td>{pct[k]:.2f}</td></tr>"
            for k in QUADRANTS
        )
        return (
            f"<div><b>Annexin V / PI</b> {html.escape(self.sample_id)} "
            f"(template {html.escape(self.template.name)}), status "
            f"<span style='color:{colour}'>{self.status}</span> {html.escape(self.message)}<br>"
            f"{self.pregate.events_total} events, {self.pregate.events_cells} cells, "
            f"{self.pregate.events_singlets} singlets; thresholds Annexin V "
            f"{self.thresholds.annexin:.4g}, PI {self.thresholds.pi:.4g} "
            f"({html.escape(self.thresholds.method)})"
            f"<table><tr><th>quadrant</th><th>cells</th><th>%</th></tr>{rows}"
            f"<tr><td>total apoptotic</td><td></td><td>{self.total_apoptotic_pct:.2f}</td></tr></table></div>"
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Pseudocolor Annexin V vs PI density with quadrant lines and percentages.

        See :func:`cytoflow_res.plotting.apoptosis.plot_apoptosis`.
        """
        from cytoflow_res.plotting.apoptosis import plot_apoptosis

        return plot_apoptosis(self, ax=ax, **kwargs)

    def plot_gating(self, axes: Any = None, **kwargs: Any) -> Any:
        """The pre-gating steps (FSC/SSC with the debris gate, FSC-A/FSC-H singlets).

        See :func:`cytoflow_res.plotting.apoptosis.plot_gating_steps`.
        """
        from cytoflow_res.plotting.apoptosis import plot_gating_steps

        return plot_gating_steps(self, axes=axes, **kwargs)


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _resolve_compensation(
    template: Template,
    compensation: CompensationArg,
    *,
    annexin_only: Sample | None,
    pi_only: Sample | None,
    unstained: Sample | None,
) -> Compensation | Literal["file"] | None:
    """The compensation to use for a group: a fixed matrix, ``"file"`` (each sample's own) or None."""
    if isinstance(compensation, Compensation):
        return compensation
    if compensation is not None:
        text = os.fspath(compensation)
        if text == "file":
            return "file"
        if text == "none":
            return None
        if text == "controls":
            source = "controls"
        else:
            return Compensation.from_file(text.removeprefix("matrix:"))
    else:
        source = template.compensation.source
    if source == "file":
        return "file"
    if source == "none":
        return None
    if source == "matrix":
        assert template.compensation.path is not None
        return Compensation.from_file(template.compensation.path)
    # computed from single-stain controls
    missing = [name for name, s in (("annexin_only", annexin_only), ("pi_only", pi_only)) if s is None]
    if missing:
        msg = (
            f"template {template.name!r} computes compensation from single-stain controls, but no "
            f"{' or '.join(missing)} control was given; pass them (--annexin-only / --pi-only, or rows "
            "with those roles in the design sheet), or set compensation.source to file, matrix or none"
        )
        raise DesignError(msg)
    assert annexin_only is not None and pi_only is not None
    ann = template.resolve_channels(annexin_only)["annexin"]
    pi = template.resolve_channels(pi_only)["pi"]
    return Compensation.from_controls({ann: annexin_only, pi: pi_only}, unstained=unstained,
                                      channels=[ann, pi])


def _compensate(
    sample: Sample, comp: Compensation | Literal["file"] | None
) -> tuple[Sample, Compensation | None]:
    if comp is None:
        return sample, None
    if comp == "file":
        try:
            matrix = Compensation.from_sample(sample)
        except FCSError as exc:
            msg = (
                f"{exc.problem} (the template compensates with the file's own spillover; a "
                "hardware-compensated instrument such as the FACSCalibur needs a template with "
                "compensation: none)"
            )
            raise FCSError(exc.path, msg) from None
    else:
        matrix = comp
    return matrix.apply(sample), matrix


@dataclass(frozen=True, eq=False)
class ApoptosisGating:
    """The once-per-group part of the analysis: template, compensation and thresholds.

    Build it with :meth:`prepare` from a group's controls, then call :meth:`analyze` on
    every sample of the group: the same thresholds (and, unless each file carries its own
    spillover, the same compensation) apply to all of them.

    Attributes
    ----------
    template
        The apoptosis template.
    compensation
        A fixed :class:`~cytoflow_res.transforms.Compensation`, ``"file"`` (each sample's own
        spillover keyword) or None (no compensation).
    thresholds
        The quadrant thresholds in compensated data units.
    """

    template: Template
    compensation: Compensation | Literal["file"] | None
    thresholds: Thresholds

    @classmethod
    def prepare(
        cls,
        template: Template | str | os.PathLike[str] = "generic_modern",
        *,
        unstained: Sample | None = None,
        annexin_only: Sample | None = None,
        pi_only: Sample | None = None,
        compensation: CompensationArg = None,
        thresholds: Thresholds | tuple[float, float] | None = None,
    ) -> ApoptosisGating:
        """Set up a group's analysis from its controls.

        Parameters
        ----------
        template
            Template name, path or object (default ``generic_modern``).
        unstained, annexin_only, pi_only
            The group's control samples (raw, as read; they are compensated here exactly
            like the samples). Which are needed depends on the template's thresholds and
            compensation settings.
        compensation
            Overrides the template: a Compensation, ``"file"``, ``"none"``, ``"controls"`` or
            the path of a matrix file.
        thresholds
            Fixed (annexin, pi) thresholds in compensated data units, overriding the template.

        Returns
        -------
        ApoptosisGating

        Raises
        ------
        DesignError
            If a control the template needs is missing.
        TemplateError, ChannelError, FCSError
            For a bad template, a missing channel, or a file without the spillover the
            template asks for.
        """
        tpl = _template(template)
        comp = _resolve_compensation(tpl, compensation, annexin_only=annexin_only, pi_only=pi_only,
                                     unstained=unstained)
        if isinstance(thresholds, Thresholds):
            thr = thresholds
        elif thresholds is not None:
            ann, pi = (float(v) for v in thresholds)
            thr = Thresholds(ann, pi, "fixed", "given by the caller")
        else:
            def comp_or_none(control: Sample | None) -> Sample | None:
                return None if control is None else _compensate(control, comp)[0]

            thr = thresholds_from_controls(
                tpl, unstained=comp_or_none(unstained), annexin_only=comp_or_none(annexin_only),
                pi_only=comp_or_none(pi_only),
            )
        return cls(tpl, comp, thr)

    def needed_channels(self, sample: Sample) -> list[int]:
        """The channels of ``sample`` that :meth:`analyze` may read, for ``read_fcs(channels=)``.

        The channel of each template role (with, for an optional role that matches
        nothing, every channel its aliases could match: see
        :meth:`Sample.deciding_channels`), so that roles resolve on a sample holding only
        these exactly as on the whole one; the compensation's channels (all of them: a
        compensated value depends on every channel of the spillover); every channel when
        the template has a Gating-ML or FlowJo pre-gate. Checks what :meth:`analyze`
        checks first and raises the same errors, so that their messages list every
        channel of the file.

        Parameters
        ----------
        sample
            The sample, or its channels alone (as ``read_fcs`` passes them).

        Returns
        -------
        list of int
            Column indices, in order.

        Raises
        ------
        ChannelError
            If a required role matches no channel, or the compensation names a channel the
            sample lacks.

        Examples
        --------
        >>> sample = read_fcs("huge.fcs", channels=gating.needed_channels)  # doctest: +SKIP
        >>> gating.analyze(sample)  # doctest: +SKIP
        """
        tpl = self.template
        if tpl.pregates.gatingml is not None or tpl.pregates.flowjo is not None:
            return list(range(sample.n_channels))  # their gates name their own dimensions
        tpl.resolve_channels(sample)
        picked = {ch.index for aliases in tpl.channels.values()
                  for ch in sample.deciding_channels(aliases[0], aliases=aliases[1:])}
        comp = self.compensation
        if comp == "file":
            try:
                comp = Compensation.from_sample(sample)
            except FCSError:
                comp = None  # analyze raises it, with its advice
        if isinstance(comp, Compensation):
            picked.update(comp._indices(sample))
        return sorted(picked)

    def analyze(self, sample: Sample, *, file: str | os.PathLike[str] | None = None) -> ApoptosisResult:
        """Compensate, pre-gate and split one sample into the four quadrants.

        Parameters
        ----------
        sample
            The raw sample (as read; ``read_fcs(path, channels=gating.needed_channels)``
            reads only the channels used here, with the same result).
        file
            Path recorded in the result (default: the sample's own path).

        Returns
        -------
        ApoptosisResult

        Raises
        ------
        ChannelError, FCSError
            If the sample lacks a channel the template needs, or the spillover it asks for.

        Notes
        -----
        Memory, with the automatic pre-gates and ``n`` events of ``c`` channels, ``b``
        bytes each as stored: the sample (``n*c*b``) and the compensated sample that the
        result keeps (``n*c*8``, float64), plus at most ``40*n`` bytes of temporaries
        while the singlet gate is placed (five float64 values per event), plus a constant
        of a few MB for compensation, polygon tests and counting, which go a block of
        events at a time. For float32 data that is ``3*n*c*4 + 40*n`` bytes: 100 bytes per
        event with the five channels of the template (``tests/test_huge.py`` checks it on
        1,000,000 events), about 1 GB for 10,000,000 events. Reading only the channels
        used (``needed_channels``) keeps ``c`` at what the analysis needs.
        """
        tpl = self.template
        channels = tpl.resolve_channels(sample)
        comp_sample, matrix = _compensate(sample, self.compensation)
        gated = pregate(comp_sample, tpl, channels)
        counts, n_bad = _quadrant_counts(comp_sample.column(channels["annexin"]),
                                         comp_sample.column(channels["pi"]), gated.singlets,
                                         self.thresholds)
        notes = list(gated.warnings)
        if n_bad:  # in no quadrant, as QuadrantGate has it; said rather than hidden
            notes.append(f"{n_bad} cells with a non-finite Annexin V or PI value are in no quadrant")
        n = sum(counts.values())
        if n < MIN_CELLS:
            notes.append(f"only {n} cells left after pre-gating (< {MIN_CELLS}); percentages are coarse")
        notes.extend(f"thresholds: {t}" for t in self.thresholds.notes)
        path = os.fspath(file) if file is not None else (sample.path or "")
        return ApoptosisResult(
            sample=comp_sample, template=tpl, channels=channels, compensation=matrix, pregate=gated,
            thresholds=self.thresholds, counts=counts, status="warn" if notes else "ok",
            message="; ".join(notes), file=str(path),
        )


_COUNT_BLOCK = 1 << 16


def _quadrant_counts(
    annexin: np.ndarray, pi: np.ndarray, keep: np.ndarray, thresholds: Thresholds
) -> tuple[dict[str, int], int]:
    """Events of ``keep`` in each quadrant, and those with a non-finite value (in none).

    A block of events at a time: the counts are sums over events, the same in any blocks.
    """
    counts = dict.fromkeys(QUADRANTS, 0)
    n_bad = 0
    for start in range(0, keep.size, _COUNT_BLOCK):
        sel = keep[start : start + _COUNT_BLOCK]
        ann = np.asarray(annexin[start : start + _COUNT_BLOCK], dtype=float)[sel]
        pi_v = np.asarray(pi[start : start + _COUNT_BLOCK], dtype=float)[sel]
        finite = np.isfinite(ann) & np.isfinite(pi_v)
        ann_pos = ann >= thresholds.annexin
        pi_pos = pi_v >= thresholds.pi
        for name, (a, p) in QUADRANTS.items():
            counts[name] += int(np.count_nonzero(finite & (ann_pos == a) & (pi_pos == p)))
        n_bad += int(finite.size - np.count_nonzero(finite))
    return counts, n_bad


def analyze_apoptosis(
    sample: Sample,
    template: Template | str | os.PathLike[str] = "generic_modern",
    *,
    controls: Mapping[str, Sample | None] | None = None,
    compensation: CompensationArg = None,
    thresholds: Thresholds | tuple[float, float] | None = None,
) -> ApoptosisResult:
    """Annexin V / PI quadrants of one sample (the one-sample form of :class:`ApoptosisGating`).

    Parameters
    ----------
    sample
        The raw sample (as read with :func:`~cytoflow_res.read_fcs`).
    template
        Template name, path or object (default ``generic_modern``).
    controls
        ``{"unstained": ..., "annexin_only": ..., "pi_only": ...}`` (any subset; raw samples).
    compensation
        Overrides the template's compensation (see :meth:`ApoptosisGating.prepare`).
    thresholds
        Fixed (annexin, pi) thresholds, overriding the template and controls.

    Returns
    -------
    ApoptosisResult

    Raises
    ------
    DesignError
        If the thresholds or compensation need a control that was not given.
    """
    ctrl = dict(controls or {})
    unknown = sorted(set(ctrl) - {"unstained", "annexin_only", "pi_only"})
    if unknown:
        msg = f"unknown control role(s) {', '.join(unknown)}; use unstained, annexin_only, pi_only"
        raise DesignError(msg)
    gating = ApoptosisGating.prepare(
        template, unstained=ctrl.get("unstained"), annexin_only=ctrl.get("annexin_only"),
        pi_only=ctrl.get("pi_only"), compensation=compensation, thresholds=thresholds,
    )
    return gating.analyze(sample)

