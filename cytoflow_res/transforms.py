"""Compensation and display/gating transforms: pure functions from a Sample to a new Sample.

Compensation
    A :class:`Compensation` holds a spillover matrix ``S`` in the FCS ``$SPILLOVER``
    convention: rows are the fluorochromes (named by their primary detector), columns the
    detectors they spill into, diagonal 1, and ``observed = true @ S``. Compensated values
    are therefore ``observed @ inv(S)``, computed on the matrix's channels only. A matrix
    comes from the file's spillover keyword (:meth:`Compensation.from_sample`), from a
    CSV/TSV file (:meth:`Compensation.from_file`) or from single-stain controls
    (:meth:`Compensation.from_controls`).

Display and gating transforms
    :func:`make_transform` turns a template's spec such as
    ``{"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}`` into a transform with
    ``apply(values)`` and ``inverse(values)``. The Gating-ML 2.0 transforms of
    :mod:`cytoflow_res.gating` do the work (logicle, hyperlog, flin, flog, fasinh); the
    cytometry-style ``asinh(x / cofactor)`` is :class:`CofactorAsinhTransform`.
    :func:`default_logicle_for` chooses logicle parameters from the data the way FlowJo and
    flowCore do (Parks et al. 2006).

Examples
--------
>>> from cytoflow_res.transforms import compensate, make_transform
>>> comp = compensate(sample)  # doctest: +SKIP
>>> logicle = make_transform({"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0})
>>> float(logicle.apply([262144.0])[0])
1.0
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, overload, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from cytoflow_res.errors import ChannelError, FCSError, FitError, TemplateError
from cytoflow_res.gating._gml_transforms import (
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
)
from cytoflow_res.sample import Sample, normalize_channel_key

__all__ = [
    "TRANSFORM_TYPES",
    "CofactorAsinhTransform",
    "Compensation",
    "Transform",
    "compensate",
    "default_logicle_for",
    "make_transform",
]

logger = logging.getLogger(__name__)

# A spillover diagonal further than this from 1 is not a spillover matrix (percentages,
# a compensation matrix given instead of a spillover matrix, or a transposed layout).
_DIAGONAL_TOLERANCE = 1e-3
# Beyond this condition number the fluorochromes cannot be separated in float64.
_MAX_CONDITION = 1e12
# Tukey bisquare tuning constant: 95% efficiency for Gaussian residuals.
_BISQUARE_C = 4.685
_MAD_TO_SD = 1.4826
# Events in the Theil-Sen fit that starts the bisquare iterations (n^2 / 2 pairwise slopes).
_THEIL_SEN_EVENTS = 1000
_MAX_IRLS = 100
# Without an unstained control, positives lie this many robust SDs above the stain's own
# negative population (estimated from the lower half of the primary channel).
_OWN_NEGATIVE_SDS = 6.0


# =============================================================================== compensation
def _where(sample: Sample) -> str:
    return str(sample.path) if sample.path is not None else f"sample {sample.sample_id!r}"


def _matrix_problem(channels: Sequence[str], matrix: np.ndarray) -> str | None:
    """What is wrong with a spillover matrix for ``channels``, or None if it is usable."""
    n = len(channels)
    if n == 0:
        return "a compensation needs at least one channel"
    if any(not isinstance(c, str) or not c.strip() for c in channels):
        return f"channel names must be non-empty strings; got {list(channels)!r}"
    dupes = sorted({c for c in channels if list(channels).count(c) > 1})
    if dupes:
        return f"channel names must be unique; {', '.join(map(repr, dupes))} appear more than once"
    if matrix.ndim != 2 or matrix.shape != (n, n):
        return (
            f"the spillover matrix must be square with one row and one column per channel "
            f"({n} x {n} for {', '.join(channels)}); got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        rows, cols = np.nonzero(~np.isfinite(matrix))
        bad = [f"{channels[int(i)]} -> {channels[int(j)]}" for i, j in zip(rows, cols, strict=True)]
        return f"coefficients must be finite numbers; not finite: {', '.join(bad[:5])}"
    diag = np.diag(matrix)
    off = np.abs(diag - 1.0) > _DIAGONAL_TOLERANCE
    if off.any():
        listing = ", ".join(f"{channels[i]}={diag[i]:g}" for i in np.nonzero(off)[0][:5])
        hint = (
            "; the values look like percentages: divide the matrix by 100"
            if np.allclose(diag, 100.0, atol=0.1)
            else "; a spillover matrix has 1 on its diagonal (rows: fluorochromes, columns: detectors)"
        )
        return f"diagonal coefficients must be 1; got {listing}{hint}"
    cond = np.linalg.cond(matrix)
    if not cond < _MAX_CONDITION:
        return (
            f"the spillover matrix is singular (condition number {cond:.3g}): "
            "its channels cannot be separated"
        )
    return None


@dataclass(frozen=True, eq=False)
class Compensation:
    """A spillover matrix and the channels it refers to; compensates Samples.

    Attributes
    ----------
    channels
        The detector channels (``$PnN``) of the rows and columns, in order.
    spillover
        ``n x n`` spillover matrix, FCS ``$SPILLOVER`` convention: ``spillover[i, j]`` is
        the fraction of fluorochrome ``i``'s signal (named by its primary detector
        ``channels[i]``) seen in detector ``channels[j]``; diagonal 1;
        ``observed = true @ spillover``. Stored as a read-only float64 array.
    source
        Where the matrix came from: ``"file"`` (the sample's spillover keyword),
        ``"matrix:<path>"``, ``"controls"``, ``"identity"``, ``"matrix"`` (given in code).
    info
        Provenance details, JSON-safe (for ``"controls"``: per control the events used,
        positive events, threshold and negative reference).

    Raises
    ------
    TemplateError
        If the matrix is not square for the channels, not finite, has a diagonal other
        than 1 or is singular.

    Examples
    --------
    >>> comp = Compensation(("FITC-A", "PE-A"), np.array([[1.0, 0.13], [0.01, 1.0]]))
    >>> comp.apply(np.array([[1001.0, 230.0]]), channels=["FITC-A", "PE-A"]).round(6)
    array([[1000.,  100.]])
    """

    channels: tuple[str, ...]
    spillover: np.ndarray = field(repr=False)
    source: str = "matrix"
    info: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        channels = tuple(self.channels)
        matrix = np.array(self.spillover, dtype=np.float64, copy=True)
        problem = _matrix_problem(channels, matrix)
        if problem is not None:
            msg = f"invalid compensation ({self.source}): {problem}"
            raise TemplateError(msg)
        matrix.flags.writeable = False
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "spillover", matrix)
        object.__setattr__(self, "info", dict(self.info))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def identity(cls, channels: Sequence[str]) -> Compensation:
        """A compensation that changes nothing (identity spillover) on ``channels``.

        Parameters
        ----------
        channels
            Channel names (``$PnN``).

        Returns
        -------
        Compensation
            With ``source="identity"``.
        """
        return cls(tuple(channels), np.eye(len(channels)), source="identity")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, source: str = "matrix") -> Compensation:
        """A compensation from a labelled spillover DataFrame (as :meth:`to_frame` returns).

        Parameters
        ----------
        frame
            Square DataFrame; columns are the detector channels. Its index, when it holds
            the same names (in any order), orders the rows; otherwise rows are taken in the
            column order.
        source
            Recorded as :attr:`source`.

        Returns
        -------
        Compensation

        Raises
        ------
        TemplateError
            If the frame is not a valid spillover matrix.
        """
        columns = [str(c).strip() for c in frame.columns]
        values = frame.to_numpy()
        index = [str(i).strip() for i in frame.index]
        if sorted(index) == sorted(columns) and len(set(columns)) == len(columns):
            order = [index.index(c) for c in columns]
            values = values[order]
        try:
            matrix = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            msg = f"invalid compensation ({source}): coefficients must be numbers ({exc})"
            raise TemplateError(msg) from exc
        return cls(tuple(columns), matrix, source=source)

    @classmethod
    def from_sample(cls, sample: Sample) -> Compensation:
        """The compensation written by the instrument in the sample's spillover keyword.

        Parameters
        ----------
        sample
            A Sample read from an FCS file with ``$SPILLOVER``, ``$SPILL`` or ``SPILL``.

        Returns
        -------
        Compensation
            With ``source="file"`` and ``info["keyword"]`` the keyword read.

        Raises
        ------
        FCSError
            If the file has no spillover keyword, or it is malformed or invalid.
        ChannelError
            If the keyword names a channel the file does not have.
        """
        spill = sample.spillover
        if spill is None:
            msg = (
                "has no spillover keyword ($SPILLOVER, $SPILL or SPILL), so it cannot be "
                "compensated from the file; give a matrix file (compensation: matrix:<path>), "
                "single-stain controls (compensation: controls), or compensation: none if the "
                "data are already compensated or need none"
            )
            raise FCSError(sample.path if sample.path is not None else sample.sample_id, msg)
        matrix = np.asarray(spill.matrix, dtype=np.float64)
        problem = _matrix_problem(spill.channels, matrix)
        if problem is not None:
            msg = f"keyword {spill.keyword} is not a usable spillover matrix: {problem}"
            raise FCSError(sample.path if sample.path is not None else sample.sample_id, msg)
        comp = cls(spill.channels, matrix, source="file", info={"keyword": spill.keyword})
        comp._indices(sample)  # a keyword naming a missing channel is the file's fault: say so now
        return comp

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Compensation:
        """Read a spillover matrix from a CSV or TSV file.

        The first row holds the detector channel names (``$PnN``); each following row holds
        one fluorochrome's coefficients. A first column of row names, as FlowJo and
        Cytobank exports have, is recognised (its header cell may be empty) and used to
        order the rows. Commas, tabs or semicolons separate the fields.

        Parameters
        ----------
        path
            The matrix file.

        Returns
        -------
        Compensation
            With ``source="matrix:<path>"``.

        Raises
        ------
        TemplateError
            If the file cannot be read or is not a square, finite spillover matrix with
            1 on its diagonal; the message names the file and the problem.
        """
        path = Path(path)
        channels, matrix = _read_matrix_file(path)
        problem = _matrix_problem(channels, matrix)
        if problem is not None:
            msg = f"{path}: {problem}"
            raise TemplateError(msg)
        return cls(tuple(channels), matrix, source=f"matrix:{path}")

    @classmethod
    def from_controls(
        cls,
        single_stains: Mapping[str, Sample],
        *,
        unstained: Sample | None = None,
        channels: Sequence[str] | None = None,
        gate: _Masker | None = None,
        percentile: float = 99.5,
        min_positive: int = 100,
    ) -> Compensation:
        """Estimate the spillover matrix from single-stain controls.

        For each control, the positive events are those above the ``percentile``-th
        percentile of the unstained control in the stain's primary detector (without an
        unstained control: more than 6 robust SDs above the stain's own negative
        population, estimated from the lower half of the primary channel, which assumes at
        least half of the control is unstained). The spillover into every other detector
        is the slope of a robust straight-line fit (Tukey bisquare, started from
        Theil-Sen) of that detector against the primary detector over the positive
        events. A slope, unlike a difference of medians, ignores how much brighter the
        positive cells are in autofluorescence than the negatives, and the bisquare
        weights ignore autofluorescent and doublet outliers: on real LSR II controls it
        reproduces the instrument's matrix to within 0.01, where the median method is
        off by up to 0.04. Events that are not finite or are saturated (stored value at
        ``$PnR - 1``) in any of the channels are left out.

        Parameters
        ----------
        single_stains
            One control per stain, keyed by its primary detector channel (``$PnN``; a
            label also finds it).
        unstained
            Unstained control, for the positive threshold.
        channels
            Detector channels of the matrix, in order; default: the keys of
            ``single_stains``. Must include every key; a channel without a control gets
            a unit row (no spillover from it).
        gate
            Anything with ``apply(sample) -> mask`` (e.g. a scatter :class:`~cytoflow_res.gating.Gate`)
            applied to every control first.
        percentile
            Percentile of the unstained control above which events count as positive.
        min_positive
            Fewest positive events a control must have; with an unstained control, also at
            least twice the ``100 - percentile`` percent that unstained events alone put
            above the threshold.

        Returns
        -------
        Compensation
            With ``source="controls"`` and, in ``info``, per control the events used,
            positive events, threshold and negative reference.

        Raises
        ------
        ChannelError
            If a control lacks one of the channels.
        FitError
            If a control has too few positive events, or no spread in its primary
            channel, to estimate a slope.
        """
        if not single_stains:
            msg = "from_controls needs at least one single-stain control (none given)"
            raise FitError(msg)
        if not 50.0 <= percentile < 100.0:
            msg = f"percentile must lie in [50, 100), not {percentile}"
            raise ValueError(msg)
        first = next(iter(single_stains.values()))
        keys = {key: _resolve_name(first, key) for key in single_stains}
        names = [_resolve_name(first, c) for c in channels] if channels is not None else list(keys.values())
        shared = sorted({name for name in keys.values() if list(keys.values()).count(name) > 1})
        if shared:
            msg = (
                f"two or more single-stain controls have the primary channel {', '.join(shared)} "
                f"(keys {', '.join(repr(k) for k in keys)}); give one control per detector"
            )
            raise ChannelError(msg)
        missing = [key for key, name in keys.items() if name not in names]
        if missing:
            msg = (
                f"channels {names} of the compensation must include the primary channel of every "
                f"control; add {', '.join(repr(keys[k]) for k in missing)}"
            )
            raise ChannelError(msg)
        matrix = np.eye(len(names))
        info: dict[str, Any] = {"method": "robust slope (Tukey bisquare) over positive events"}
        neg_events = None
        if unstained is not None:
            neg_events = _control_events(unstained, names, gate)
        for key, sample in single_stains.items():
            p = names.index(keys[key])
            events = _control_events(sample, names, gate)
            primary = events[:, p]
            if neg_events is not None:
                threshold = float(np.percentile(neg_events[:, p], percentile))
                reference = "unstained"
            else:
                threshold = _own_negative_threshold(primary)
                reference = "own negatives"
            pos = events[primary > threshold]
            what = f"single-stain control {key!r} ({_where(sample)})"
            # Above the unstained percentile, unstained-like events alone give (100 - percentile)%;
            # a real positive population must at least double that.
            needed = max(min_positive, math.ceil(2.0 * (100.0 - percentile) / 100.0 * events.shape[0]))
            if neg_events is None:
                needed = min_positive
            if pos.shape[0] < needed:
                msg = (
                    f"{what} has {pos.shape[0]} positive events of {events.shape[0]} usable ones above "
                    f"{threshold:.4g} in {names[p]} (threshold from the {reference}); at least {needed} "
                    "are needed. Use a control with a brighter or larger positive population "
                    "(heat-killed cells for a DNA dye, compensation beads), or give the matrix as a file"
                )
                raise FitError(msg)
            for j in range(len(names)):
                if j != p:
                    matrix[p, j] = _robust_slope(pos[:, p], pos[:, j], what=f"{what}, {names[j]}")
            info[names[p]] = {
                "control": sample.sample_id,
                "n_events": int(events.shape[0]),
                "n_positive": int(pos.shape[0]),
                "threshold": threshold,
                "negative_reference": reference,
            }
            logger.debug("spillover from %s: %s", what, dict(zip(names, matrix[p].tolist(), strict=True)))
        return cls(tuple(names), matrix, source="controls", info=info)

    # ---------------------------------------------------------------------- queries
    @property
    def compensation_matrix(self) -> np.ndarray:
        """``inv(spillover)``: compensated = observed @ this."""
        return np.linalg.inv(self.spillover)

    def to_frame(self) -> pd.DataFrame:
        """The spillover matrix as a labelled DataFrame (rows: sources, columns: detectors)."""
        names = list(self.channels)
        return pd.DataFrame(np.array(self.spillover), index=pd.Index(names), columns=pd.Index(names))

    # ---------------------------------------------------------------------- compute
    @overload
    def apply(self, events: Sample, *, channels: None = None) -> Sample: ...

    @overload
    def apply(self, events: pd.DataFrame, *, channels: None = None) -> pd.DataFrame: ...

    @overload
    def apply(self, events: np.ndarray, *, channels: Sequence[str] | None = None) -> np.ndarray: ...

    def apply(
        self, events: Sample | pd.DataFrame | np.ndarray, *, channels: Sequence[str] | None = None
    ) -> Sample | pd.DataFrame | np.ndarray:
        """Compensate events: ``observed @ inv(spillover)`` on the compensation's channels.

        Other channels are returned unchanged (as float64). Events are compensated a block
        of 65,536 at a time, so the memory needed is the float64 result plus a few MB.

        Parameters
        ----------
        events
            A Sample (compensates its scale values, ``events``), a DataFrame whose columns
            are channel names, or a 2-D array (events x channels).
        channels
            For an array: the channel name of each column; default: the array's columns
            are exactly :attr:`channels`, in order.

        Returns
        -------
        Sample or pandas.DataFrame or numpy.ndarray
            Of the same kind as ``events``: a new Sample (its history keyword records the
            compensation), a new DataFrame, or a new float64 array.

        Raises
        ------
        ChannelError
            If a compensation channel is missing; the message lists the channels there are.
        """
        if isinstance(events, Sample):
            idx = self._indices(events)
            history = events.keywords.get("CYTOFLOW_RES_HISTORY", "")
            if "compensated" in history:
                logger.warning("%s is already compensated (%s); compensating again", _where(events), history)
            out = np.empty(events.raw.shape, dtype=np.float64)
            for start, stop in _event_blocks(events.n_events):
                out[start:stop] = events._event_rows(start, stop)
                out[start:stop, idx] = self._solve(out[start:stop, idx])
            return events.with_events(out, note=f"compensated ({self.source}: {', '.join(self.channels)})")
        if isinstance(events, pd.DataFrame):
            cols = [str(c) for c in events.columns]
            idx = self._lookup(cols, "this DataFrame")
            frame = events.copy()
            values = frame.iloc[:, idx].to_numpy(dtype=np.float64)
            comp = self._solve(values)
            for k, i in enumerate(idx):
                frame[frame.columns[i]] = comp[:, k]
            return frame
        arr = np.asarray(events, dtype=np.float64)
        if arr.ndim != 2:
            msg = f"events must be a 2-D array (events x channels); got shape {arr.shape}"
            raise ValueError(msg)
        names = list(self.channels) if channels is None else [str(c) for c in channels]
        if len(names) != arr.shape[1]:
            given = "were given" if channels is not None else f"(the compensation's: {', '.join(names)})"
            msg = (
                f"the array has {arr.shape[1]} columns but {len(names)} channel names {given}; pass channels="
            )
            raise ValueError(msg)
        idx = self._lookup(names, "the array's channels")
        out = arr.copy()
        for start, stop in _event_blocks(out.shape[0]):
            out[start:stop, idx] = self._solve(out[start:stop, idx])
        return out

    def _solve(self, observed: np.ndarray) -> np.ndarray:
        # x @ inv(S) as the solution of S^T y^T = x^T: no explicit inverse, as flowutils does.
        return np.asarray(np.linalg.solve(self.spillover.T, observed.T).T)

    def _lookup(self, names: Sequence[str], where: str) -> list[int]:
        folded = [normalize_channel_key(n) for n in names]
        idx: list[int] = []
        for ch in self.channels:
            if ch in names:
                idx.append(list(names).index(ch))
                continue
            hits = [i for i, f in enumerate(folded) if f == normalize_channel_key(ch)]
            if len(hits) != 1:
                msg = (
                    f"compensation channel {ch!r} ({self.source}) is not in {where}; channels are "
                    f"{', '.join(names)}; the matrix must name the $PnN channels of the data"
                )
                raise ChannelError(msg)
            idx.append(hits[0])
        return idx

    def _indices(self, sample: Sample) -> list[int]:
        return self._lookup(sample.channel_names, _where(sample))


_EVENT_BLOCK = 1 << 16
"""Events compensated at a time: bounds the temporaries of the solve (a few MB)."""


def _event_blocks(n: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of ``_EVENT_BLOCK`` events covering ``n``.

    The remainder joins the last block, so no block is smaller than ``_EVENT_BLOCK`` unless
    there is only one: LAPACK solves a single right-hand side by another route (one
    event's values could then differ in the last bit from a solve of many at once).
    """
    count = max(1, n // _EVENT_BLOCK)
    bounds = [i * _EVENT_BLOCK for i in range(count)] + [n]
    return list(itertools.pairwise(bounds))


class _Masker(Protocol):
    def apply(self, events: Sample) -> np.ndarray: ...


def _resolve_name(sample: Sample, key: str) -> str:
    """The ``$PnN`` of ``key``: an exact or folded $PnN first, then a label (Sample.channel)."""
    if key in sample.channel_names:
        return key
    folded = normalize_channel_key(key)
    hits = [n for n in sample.channel_names if normalize_channel_key(n) == folded]
    if len(hits) == 1:
        return hits[0]
    return sample.channel(key).name


def _control_events(sample: Sample, names: Sequence[str], gate: _Masker | None) -> np.ndarray:
    """Scale values of ``names`` for the usable events of a control (finite, unsaturated, gated)."""
    idx = [sample.channel_names.index(_resolve_name(sample, n)) for n in names]
    values = np.asarray(sample.events[:, idx], dtype=np.float64)
    keep = np.isfinite(values).all(axis=1)
    for i in idx:
        ch = sample.channels[i]
        if ch.range > 0:
            keep &= np.asarray(sample.raw[:, i]) < ch.range - 1
    if gate is not None:
        keep &= np.asarray(gate.apply(sample), dtype=bool)
    return values[keep]


def _own_negative_threshold(primary: np.ndarray) -> float:
    """Upper limit of a stain's own negative population, from the lower half of its channel."""
    if primary.size == 0:
        return math.inf
    lower = primary[primary <= np.median(primary)]
    centre = float(np.median(lower))
    spread = _MAD_TO_SD * float(np.median(np.abs(lower - centre)))
    return centre + _OWN_NEGATIVE_SDS * spread


def _robust_slope(x: np.ndarray, y: np.ndarray, *, what: str) -> float:
    """Slope of a Tukey-bisquare straight-line fit of y on x, started from Theil-Sen."""
    if x.size < 3 or not np.ptp(x) > 0:
        msg = f"{what}: the positive events have no spread in the primary channel; cannot fit a slope"
        raise FitError(msg)
    step = max(1, x.size // _THEIL_SEN_EVENTS)
    start = stats.theilslopes(y[::step], x[::step])
    beta = np.array([float(start.slope), float(start.intercept)])
    design = np.column_stack([x, np.ones_like(x)])
    for _ in range(_MAX_IRLS):
        resid = y - design @ beta
        scale = _MAD_TO_SD * float(np.median(np.abs(resid - np.median(resid))))
        if not scale > 0:
            break
        u = resid / (_BISQUARE_C * scale)
        w = np.sqrt(np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0))
        if np.count_nonzero(w) < 3:
            break
        new = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)[0]
        done = abs(new[0] - beta[0]) <= 1e-12 + 1e-10 * abs(beta[0])
        beta = new
        if done:
            break
    return float(beta[0])


def _read_matrix_file(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        msg = f"{path}: cannot read the compensation matrix file ({exc.strerror or exc})"
        raise TemplateError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"{path}: not a text (CSV/TSV) compensation matrix file ({exc.reason})"
        raise TemplateError(msg) from exc
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        msg = f"{path}: the compensation matrix file is empty"
        raise TemplateError(msg)
    head = lines[0]
    delimiter = "\t" if "\t" in head else (";" if ";" in head and "," not in head else ",")
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    header, body = rows[0], rows[1:]
    if not body:
        msg = f"{path}: the compensation matrix file has a header row but no coefficients"
        raise TemplateError(msg)

    def is_number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    row_names: list[str] | None = None
    if all(row and not is_number(row[0]) for row in body):
        row_names = [row[0] for row in body]
        body = [row[1:] for row in body]
        if len(header) == len(body[0]) + 1:
            header = header[1:]
    if any(not name for name in header):
        msg = (
            f"{path}: the header row must name every column's channel; got {header!r} "
            "(an empty first cell is allowed only above a column of row names)"
        )
        raise TemplateError(msg)
    n = len(header)
    values = np.empty((len(body), n))
    for r, row in enumerate(body, start=2):
        if len(row) != n:
            msg = f"{path}: line {r} has {len(row)} coefficients; expected {n}, one per channel in the header"
            raise TemplateError(msg)
        for c, cell in enumerate(row):
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                msg = f"{path}: line {r}, column {header[c]!r}: {cell!r} is not a number"
                raise TemplateError(msg) from None
    if values.shape[0] != n:
        msg = (
            f"{path}: the matrix is not square: {values.shape[0]} rows of coefficients for "
            f"{n} channels ({', '.join(header)})"
        )
        raise TemplateError(msg)
    if row_names is not None and row_names != header:
        if sorted(row_names) != sorted(header):
            msg = (
                f"{path}: the row names ({', '.join(row_names)}) are not the channels of the "
                f"header ({', '.join(header)})"
            )
            raise TemplateError(msg)
        values = values[[row_names.index(h) for h in header]]
    return header, values


CompensationLike = Compensation | np.ndarray | pd.DataFrame | str | os.PathLike[str] | None
"""What :func:`compensate` accepts as ``comp``."""


def compensate(sample: Sample, comp: CompensationLike = "file") -> Sample:
    """Compensate a sample.

    Parameters
    ----------
    sample
        The sample (uncompensated scale values).
    comp
        * ``"file"`` (default): the file's spillover keyword (:meth:`Compensation.from_sample`);
        * ``None`` or ``"none"``: no compensation, ``sample`` is returned as it is;
        * ``"matrix:<path>"``, or a path to a ``.csv``/``.tsv``/``.txt`` file: a matrix file
          (:meth:`Compensation.from_file`);
        * a :class:`Compensation` (e.g. from :meth:`Compensation.from_controls`);
        * a labelled DataFrame (rows: sources, columns: detectors);
        * an ``n x n`` array in the channel order of the file's spillover keyword.

    Returns
    -------
    Sample
        A new, compensated Sample (or ``sample`` itself for no compensation).

    Raises
    ------
    TemplateError
        If ``comp`` is not one of the above, or its matrix is invalid.
    FCSError
        For ``"file"`` when the file has no usable spillover keyword.
    ChannelError
        If the matrix names a channel the sample does not have.
    """
    if comp is None:
        return sample
    if isinstance(comp, Compensation):
        return comp.apply(sample)
    if isinstance(comp, pd.DataFrame):
        return Compensation.from_frame(comp).apply(sample)
    if isinstance(comp, np.ndarray):
        spill = sample.spillover
        if spill is None or comp.shape != (len(spill.channels), len(spill.channels)):
            have = "no" if spill is None else f"a {len(spill.channels)}-channel"
            msg = (
                f"a bare {comp.shape} array does not say which channels it compensates and "
                f"{_where(sample)} has {have} spillover keyword to take the order from; pass a "
                "Compensation or a DataFrame labelled with channel names"
            )
            raise TemplateError(msg)
        return Compensation(spill.channels, comp, source="matrix").apply(sample)
    text = os.fspath(comp)
    key = text.strip().lower()
    if key == "file":
        return Compensation.from_sample(sample).apply(sample)
    if key == "none":
        return sample
    if key.startswith("matrix:"):
        return Compensation.from_file(text.strip()[len("matrix:") :].strip()).apply(sample)
    if not isinstance(comp, str) or Path(text).suffix.lower() in {".csv", ".tsv", ".txt"}:
        return Compensation.from_file(text).apply(sample)
    extra = (
        "; single-stain controls need all the control samples: build Compensation.from_controls(...) "
        "and pass it"
        if key == "controls"
        else ""
    )
    msg = (
        f"compensation {comp!r} is not understood; use 'file', 'none', 'matrix:<path>', a "
        f".csv/.tsv path, a Compensation, a labelled DataFrame or an array{extra}"
    )
    raise TemplateError(msg)


# ==================================================================== display/gating transforms
@runtime_checkable
class Transform(Protocol):
    """A one-dimensional, invertible display/gating transform."""

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values of data ``values``."""
        ...

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values``."""
        ...


@dataclass(frozen=True)
class CofactorAsinhTransform:
    """``asinh(x / cofactor)``, the cytometry arcsinh scale (Cytobank, CyTOF).

    Parameters
    ----------
    cofactor
        Width of the near-linear region around zero (``> 0``): about 150 for
        fluorescence flow cytometry, 5 for mass cytometry.
    """

    cofactor: float = 150.0
    kind: Literal["asinh"] = field(default="asinh", init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cofactor) and self.cofactor > 0):
            msg = f"asinh needs a finite cofactor > 0; got cofactor={self.cofactor}"
            raise TemplateError(msg)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values (same shape as ``values``)."""
        return np.arcsinh(np.array(values, dtype=np.float64, ndmin=1) / self.cofactor)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values``."""
        return np.sinh(np.array(values, dtype=np.float64, ndmin=1)) * self.cofactor


_DEFAULT_T = 262144.0
TRANSFORM_TYPES: dict[str, dict[str, float]] = {
    # t = 1, a = 0: flin is then the identity, so a bare {"type": "linear"} keeps data units
    "linear": {"t": 1.0, "a": 0.0},
    # the classic 4-decade log amplifier scale (FACSCalibur: 10^0 .. 10^4)
    "log": {"t": 10_000.0, "decades": 4.0},
    "logicle": {"t": _DEFAULT_T, "w": 0.5, "m": 4.5, "a": 0.0},
    "hyperlog": {"t": _DEFAULT_T, "w": 0.5, "m": 4.5, "a": 0.0},
    "asinh": {"cofactor": 150.0},
    "fasinh": {"t": _DEFAULT_T, "m": 4.5, "a": 0.0},
}
"""Transform types :func:`make_transform` knows, with their parameters and defaults."""


def make_transform(spec: Mapping[str, Any]) -> Transform:
    """Build a display/gating transform from a template spec.

    ============  ==================================  ===========================================
    ``type``      parameters (defaults)               transform
    ============  ==================================  ===========================================
    ``linear``    ``t`` (1), ``a`` (0)                ``(x + a) / (t + a)`` (Gating-ML flin);
                                                      the defaults leave data units unchanged
    ``log``       ``t`` (10000), ``decades`` (4)      ``log10(x / t) / decades + 1`` (flog)
    ``logicle``   ``t`` (262144), ``w`` (0.5),        Moore & Parks logicle, ``t -> 1``
                  ``m`` (4.5), ``a`` (0)
    ``hyperlog``  as logicle                          Bagwell hyperlog
    ``asinh``     ``cofactor`` (150)                  ``asinh(x / cofactor)``
    ``fasinh``    ``t`` (262144), ``m`` (4.5),        Gating-ML parametrised arcsinh, ``t -> 1``
                  ``a`` (0)
    ============  ==================================  ===========================================

    Keys are case-insensitive. Logicle, hyperlog, fasinh, log (and linear given ``t``) map
    the top of scale ``t`` to 1, as on the Gating-ML display scale.

    Parameters
    ----------
    spec
        E.g. ``{"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}`` or
        ``{"type": "asinh", "cofactor": 150}``.

    Returns
    -------
    Transform
        An object with ``apply(values)`` and ``inverse(values)``.

    Raises
    ------
    TemplateError
        Naming the key, the value and what is allowed, for an unknown type or key, a
        non-numeric value, or parameters outside their valid range.

    Examples
    --------
    >>> make_transform({"type": "asinh", "cofactor": 150}).apply([150.0]).round(4)
    array([0.8814])
    """
    if not isinstance(spec, Mapping):
        msg = f"a transform spec must be a mapping such as {{'type': 'logicle', 't': 262144}}; got {spec!r}"
        raise TemplateError(msg)
    params = {str(k).strip().lower(): v for k, v in spec.items()}
    allowed_types = ", ".join(repr(t) for t in TRANSFORM_TYPES)
    if "type" not in params:
        msg = f"transform spec {dict(spec)!r} has no key 'type'; allowed types are {allowed_types}"
        raise TemplateError(msg)
    kind_value = params.pop("type")
    kind = kind_value.strip().lower() if isinstance(kind_value, str) else kind_value
    if kind not in TRANSFORM_TYPES:
        msg = f"transform spec key 'type' has the value {kind_value!r}; allowed values are {allowed_types}"
        raise TemplateError(msg)
    defaults = TRANSFORM_TYPES[kind]
    values = dict(defaults)
    for key, value in params.items():
        if key not in defaults:
            msg = (
                f"transform spec key {key!r} (value {value!r}) is not a parameter of a {kind!r} "
                f"transform; allowed keys are 'type', {', '.join(repr(k) for k in defaults)}"
            )
            raise TemplateError(msg)
        number = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            msg = (
                f"transform spec key {key!r} has the value {value!r}; allowed values are finite "
                f"numbers (default {defaults[key]:g})"
            )
            raise TemplateError(msg)
        values[key] = number
    try:
        if kind == "linear":
            return LinearTransform(T=values["t"], A=values["a"])
        if kind == "log":
            return LogTransform(T=values["t"], M=values["decades"])
        if kind == "logicle":
            return LogicleTransform(T=values["t"], W=values["w"], M=values["m"], A=values["a"])
        if kind == "hyperlog":
            return HyperlogTransform(T=values["t"], W=values["w"], M=values["m"], A=values["a"])
        if kind == "fasinh":
            return AsinhTransform(T=values["t"], M=values["m"], A=values["a"])
        return CofactorAsinhTransform(cofactor=values["cofactor"])
    except TemplateError as exc:
        msg = f"transform spec {dict(spec)!r}: {exc} (keys are lower-case in a spec: t, w, m, a)"
        raise TemplateError(msg) from exc


def default_logicle_for(
    sample: Sample,
    channel: str | int,
    *,
    m: float = 4.5,
    a: float = 0.0,
    quantile: float = 0.05,
) -> LogicleTransform:
    """A logicle transform fitted to one channel, as FlowJo and flowCore choose it.

    ``T`` is the channel's top of scale (from ``$PnR``, or the largest value when the
    range is unknown). ``W`` follows Parks et al. (2006): with ``r`` the ``quantile`` of
    the negative values, ``W = (M - log10(T / |r|)) / 2``, clipped to ``[max(0, -A), (M - A) / 2]``;
    0 when there are no negative values. Compensate the sample first: compensation is what
    spreads events below zero.

    Parameters
    ----------
    sample
        The (compensated) sample.
    channel
        Channel name, label or index.
    m
        Decades of the full scale.
    a
        Additional negative decades.
    quantile
        Quantile of the negative values taken as ``r`` (0.05: the 5th percentile).

    Returns
    -------
    LogicleTransform

    Raises
    ------
    ChannelError
        If the channel is not in the sample.
    FitError
        If the channel has neither a range nor a positive value to set ``T`` from.
    """
    ch = sample.channel(channel)
    values = np.asarray(sample.events[:, ch.index], dtype=np.float64)
    values = values[np.isfinite(values)]
    top = ch.max_value
    if not (math.isfinite(top) and top > 0):
        top = float(values.max()) if values.size else math.nan
    if not (math.isfinite(top) and top > 0):
        msg = (
            f"cannot choose a logicle scale for {ch.display_name} of {_where(sample)}: it has no "
            "$PnR and no positive values; give the transform explicitly"
        )
        raise FitError(msg)
    negative = values[values < 0]
    w = 0.0
    if negative.size:
        r = abs(float(np.quantile(negative, quantile)))
        w = (m - math.log10(top / r)) / 2.0
    w = min(max(w, 0.0, -a), (m - a) / 2.0, m / 2.0)
    return LogicleTransform(T=top, W=w, M=m, A=a)
