"""DNA-content histograms: channel choice, doublet discrimination, binning, fit range."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cytoflow_res.errors import ChannelError, FitError
from cytoflow_res.sample import Channel, Sample

__all__ = ["DNAHistogram", "dna_channels", "dna_histogram", "singlet_mask"]

DNA_ALIASES = (
    "PI-A", "PI", "Propidium Iodide", "FL2-A", "FL3-A", "FL3 INT LIN", "FL2 INT LIN", "PE-A",
    "DAPI-A", "7-AAD-A", "DNA",
)
WIDTH_SUFFIXES = ("-W", ".W", " W", " TOF", "-TOF")
HEIGHT_SUFFIXES = ("-H", ".H", " H", " PEAK", "-PEAK")


@dataclass(frozen=True)
class DNAHistogram:
    """A binned DNA-content histogram ready to fit.

    Attributes
    ----------
    counts
        Events per bin.
    edges
        Bin edges in the data units of the DNA channel (length ``n_bins + 1``).
    channel
        The DNA channel (``$PnN``).
    events_total
        Events in the sample before doublet discrimination.
    events_singlets
        Events kept by doublet discrimination (all events if none was done).
    doublet_channel
        The width/height channel used against the DNA area, or None.
    fit_range
        ``(first, stop)`` bin indices used in the fit: the noisy first bins and the clipped
        top bin are left out.
    source
        The file the sample came from, if known.
    """

    counts: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)
    channel: str = "DNA"
    events_total: int = 0
    events_singlets: int = 0
    doublet_channel: str | None = None
    fit_range: tuple[int, int] = (0, 0)
    source: str | None = None

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.counts.size)

    @property
    def bin_width(self) -> float:
        """Width of one bin in data units."""
        return float(self.edges[1] - self.edges[0])

    @property
    def channel_edges(self) -> np.ndarray:
        """Bin edges in histogram-channel units (0, 1, ..., n_bins)."""
        return np.arange(self.n_bins + 1, dtype=float)

    @property
    def channel_centers(self) -> np.ndarray:
        """Bin centres in histogram-channel units (0.5, 1.5, ...)."""
        return np.arange(self.n_bins, dtype=float) + 0.5

    def to_data_units(self, channel_value: float) -> float:
        """Convert a position in histogram channels into the DNA channel's data units."""
        return float(self.edges[0] + channel_value * self.bin_width)

    @classmethod
    def from_counts(
        cls,
        counts: np.ndarray,
        *,
        edges: np.ndarray | None = None,
        channel: str = "DNA",
        fit_range: tuple[int, int] | None = None,
        source: str | None = None,
    ) -> DNAHistogram:
        """Wrap already-binned counts (e.g. exported from another program).

        Parameters
        ----------
        counts
            Events per bin.
        edges
            Bin edges in data units; ``0..n_bins`` if omitted.
        channel
            Name for reports.
        fit_range
            Bins to fit; by default all but the first 2% and the last bin.
        source
            Provenance for reports.

        Returns
        -------
        DNAHistogram
        """
        counts = np.asarray(counts, dtype=float)
        if counts.ndim != 1 or counts.size < 16:
            msg = f"a DNA histogram needs at least 16 bins; got shape {counts.shape}"
            raise FitError(msg)
        if edges is None:
            edges = np.arange(counts.size + 1, dtype=float)
        total = round(float(counts.sum()))
        rng = fit_range or default_fit_range(counts)
        return cls(counts, np.asarray(edges, dtype=float), channel, total, total, None, rng, source)


def default_fit_range(counts: np.ndarray) -> tuple[int, int]:
    """Choose the bins to fit.

    Skip the first 2% (electronic noise), the top bin (off-scale events pile there) and the
    empty tail above the last aggregates, which would only inflate the degrees of freedom and
    pull the reduced chi-square towards zero.
    """
    n = counts.size
    first = max(2, math.ceil(0.02 * n))
    # Low channels often rise steeply into noise and debris that no model shape follows; as
    # flowPloidy does, start at the tallest of the first ten non-empty bins past the noise.
    nonzero = np.flatnonzero(np.asarray(counts[first:], dtype=float) > 0)[:10] + first
    if nonzero.size:
        first = int(nonzero[np.argmax(np.asarray(counts)[nonzero])])
    body = np.asarray(counts[: n - 1], dtype=float)
    if body.sum() <= 0:
        return first, n - 1
    # last bin before which 99.95% of the events lie, plus a margin of 5% of the bins
    cum = np.cumsum(body) / body.sum()
    last = int(np.searchsorted(cum, 0.9995)) + 1
    stop = min(n - 1, max(last + math.ceil(0.05 * n), first + 16))
    return first, stop


def singlet_mask(
    area: np.ndarray,
    other: np.ndarray,
    *,
    kind: Literal["width", "height"] = "width",
    k: float = 3.0,
) -> np.ndarray:
    """Automatic doublet discrimination on DNA area against pulse width or height.

    Doublets pass the laser as one longer pulse: their width (or area/height ratio) is
    larger than that of single cells of the same area. The singlet ridge is found as a
    straight line through the median width (or ratio) in quantile bins of area, which
    follows the slight rise from G1 to G2 singlets; events more than ``k`` robust standard
    deviations above the ridge are called doublets. Events below the ridge are kept.

    Parameters
    ----------
    area
        DNA pulse area per event.
    other
        Pulse width, or pulse height (then the ratio area/height is used).
    kind
        ``"width"`` or ``"height"``.
    k
        Cut-off in robust standard deviations (1.4826 x MAD) above the ridge.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True for singlets.
    """
    a = np.asarray(area, dtype=float)
    o = np.asarray(other)
    if o.dtype.kind != "f":
        o = o.astype(float)
    # Memory: besides ``area`` (float64) and ``other`` (kept in its float type: float32 values
    # are cast one by one where they meet float64), two float64 values per event at a time.
    # Medians and percentiles work in place on copies owned here; they depend on the values,
    # not on their order, so the numbers are those of copies left intact.
    if kind == "height":
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(o > 0, a / o, np.inf)
    else:
        v = o
    finite = np.isfinite(a) & np.isfinite(v)
    if np.count_nonzero(finite) < 100:
        return finite
    work = a[finite]
    lo, hi = np.percentile(work, [5, 97], overwrite_input=True)
    core = finite & (a >= lo) & (a <= hi)
    work = a[core]
    qs = np.quantile(work, np.linspace(0, 1, 17), overwrite_input=True)
    del work
    mids, meds, weights = [], [], []
    for q0, q1 in itertools.pairwise(qs):
        sel = core & (a >= q0) & (a <= q1)
        n_sel = int(np.count_nonzero(sel))
        if n_sel >= 20:
            mids.append(float(np.median(a[sel])))
            meds.append(float(np.median(np.asarray(v[sel], dtype=float))))
            weights.append(math.sqrt(float(n_sel)))
    if len(mids) >= 2:
        slope, intercept = np.polyfit(mids, meds, 1, w=weights)
    else:
        slope, intercept = 0.0, float(np.median(np.asarray(v[core], dtype=float)))
    resid = np.multiply(a, slope)
    np.add(resid, intercept, out=resid)
    np.subtract(v, resid, out=resid)  # v - (intercept + slope * a)
    work = resid[core]
    np.subtract(work, np.median(work, overwrite_input=True), out=work)
    np.abs(work, out=work)
    mad = float(np.median(work, overwrite_input=True))
    del work
    sigma = 1.4826 * mad if mad > 0 else float(np.std(resid[core])) or 1.0
    return finite & (resid <= k * sigma)


def _stem(dna: str) -> str:
    """The DNA channel's name without its area suffix (``"PI-A"`` -> ``"PI"``)."""
    for end in ("-A", ".A", " A", " INT LIN", " INT", "-INT"):
        if dna.upper().endswith(end):
            return dna[: -len(end)]
    return dna


def _find_partner(sample: Sample, dna: str, suffixes: tuple[str, ...],
                  tried: list[str] | None = None) -> str | None:
    stem = _stem(dna)
    for suffix in suffixes:
        if tried is not None:
            tried.append(stem + suffix)
        try:
            return sample.channel(stem + suffix).name
        except ChannelError:
            continue
    return None


def _dna_and_partner(
    sample: Sample, channel: str | None, doublets: str, doublet_channel: str | None,
    tried: list[str] | None = None,
) -> tuple[Channel, str | None, Literal["width", "height"]]:
    """The DNA channel, its doublet partner (None: no doublet discrimination) and its kind.

    ``tried`` collects the names looked up for the partner, in order.
    """
    if channel is None:
        ch = sample.channel(DNA_ALIASES[0], aliases=DNA_ALIASES[1:])
    else:
        ch = sample.channel(channel)
    partner: str | None = None
    partner_kind: Literal["width", "height"] = "width"
    if doublet_channel is not None:
        partner = sample.channel(doublet_channel).name
        up = partner.upper()
        partner_kind = "height" if any(up.endswith(s.strip()) for s in ("-H", ".H", "PEAK")) else "width"
    elif doublets in ("auto", "width"):
        partner = _find_partner(sample, ch.name, WIDTH_SUFFIXES, tried)
        if partner is None and doublets == "auto":
            partner = _find_partner(sample, ch.name, HEIGHT_SUFFIXES, tried)
            partner_kind = "height"
    elif doublets == "height":
        partner = _find_partner(sample, ch.name, HEIGHT_SUFFIXES, tried)
        partner_kind = "height"
    if doublets in ("width", "height") and partner is None:
        msg = (
            f"doublets={doublets!r} but {sample.path or 'the sample'} has no {doublets} channel "
            f"matching {ch.name}; channels are {', '.join(sample.channel_names)}; "
            "pass doublet_channel= or doublets='none'"
        )
        raise ChannelError(msg)
    if doublets == "none":
        partner = None
    return ch, partner, partner_kind


def dna_channels(
    sample: Sample,
    *,
    channel: str | None = None,
    doublets: Literal["auto", "width", "height", "none"] = "auto",
    doublet_channel: str | None = None,
) -> list[int]:
    """The channels :func:`dna_histogram` may read with these options, for ``read_fcs(channels=)``.

    The DNA channel and its doublet partner, and for each name tried for the partner
    before it was found, every channel that name could match
    (:meth:`Sample.deciding_channels`): a sample holding only these resolves both exactly
    as the whole sample does. Raises what :func:`dna_histogram` raises for a missing
    channel, so that its message lists every channel of the file.

    Parameters
    ----------
    sample
        The sample, or its channels alone (as ``read_fcs`` passes them).
    channel, doublets, doublet_channel
        As for :func:`dna_histogram`.

    Returns
    -------
    list of int
        Column indices, in order.

    Raises
    ------
    ChannelError
        If there is no DNA channel, or no partner for ``doublets="width"``/``"height"``.

    Examples
    --------
    >>> sample = read_fcs("huge.fcs", channels=dna_channels)  # doctest: +SKIP
    >>> dna_histogram(sample)  # same histogram as from the whole file  # doctest: +SKIP
    """
    tried: list[str] = []
    ch, _, _ = _dna_and_partner(sample, channel, doublets, doublet_channel, tried)
    if doublet_channel is not None:
        tried.append(doublet_channel)
    picked = {ch.index}
    for name in tried:
        picked.update(c.index for c in sample.deciding_channels(name))
    return sorted(picked)


def dna_histogram(
    sample: Sample,
    *,
    channel: str | None = None,
    bins: int | None = None,
    doublets: Literal["auto", "width", "height", "none"] = "auto",
    doublet_channel: str | None = None,
    max_value: float | None = None,
    k: float = 3.0,
) -> DNAHistogram:
    """Build the DNA-content histogram of a sample.

    Parameters
    ----------
    sample
        The (ethanol-fixed, PI-stained) sample.
    channel
        DNA channel (name, label or alias); by default the first of PI-A, FL2-A, FL3-A,
        "FL3 INT LIN", ... that exists.
    bins
        Number of bins (256, 512, 1024, ...); default ``min($PnR, 1024)``.
    doublets
        ``"auto"`` uses the DNA channel's width partner (e.g. PI-W), else its height
        partner (PI-H), else none; ``"width"``/``"height"`` require that partner;
        ``"none"`` keeps every event.
    doublet_channel
        The width or height channel to use instead of the automatic partner.
    max_value
        Upper end of the histogram in data units; default ``$PnR`` of the DNA channel.
    k
        Doublet cut-off in robust standard deviations (see :func:`singlet_mask`).

    Returns
    -------
    DNAHistogram

    Raises
    ------
    ChannelError
        If no DNA channel (or the requested partner) exists.

    Notes
    -----
    Memory: besides the sample, at most 27 bytes per event (a float64 copy of the DNA
    channel, two float64 work arrays of the doublet discrimination and three masks) and a
    few MB. A sample read with ``read_fcs(path, channels=dna_channels)`` holds only the DNA
    channel and its partner, so a file of float32 data needs ``8 + 27 = 35`` bytes per
    event: about 350 MB for 10,000,000 events.
    """
    ch, partner, partner_kind = _dna_and_partner(sample, channel, doublets, doublet_channel)
    values = np.asarray(sample.column(ch.name), dtype=float)
    total = values.size
    keep = np.ones(total, dtype=bool)
    if partner is not None:
        keep = singlet_mask(values, sample.column(partner), kind=partner_kind, k=k)
    top = float(max_value) if max_value else (ch.range if ch.range > 0 else float(np.nanmax(values)) + 1)
    n_bins = int(bins) if bins else int(min(max(ch.range, 256), 1024)) if ch.range > 0 else 1024
    if n_bins < 16:
        msg = f"bins must be at least 16, got {n_bins}"
        raise FitError(msg)
    edges = np.linspace(0.0, top, n_bins + 1)
    v = values[keep]
    del values
    np.clip(v, 0.0, np.nextafter(top, 0), out=v)
    counts, _ = np.histogram(v, bins=edges)
    del v
    # events at or above the top are off-scale: they land in the last bin, which is not fitted
    counts = counts.astype(float)
    return DNAHistogram(
        counts=counts,
        edges=edges,
        channel=ch.name,
        events_total=total,
        events_singlets=int(keep.sum()),
        doublet_channel=partner,
        fit_range=default_fit_range(counts),
        source=None if sample.path is None else str(sample.path),
    )


def describe(hist: DNAHistogram) -> dict[str, Any]:
    """JSON-safe description of a histogram's provenance."""
    return {
        "channel": hist.channel,
        "n_bins": hist.n_bins,
        "events_total": hist.events_total,
        "events_singlets": hist.events_singlets,
        "doublet_channel": hist.doublet_channel,
        "fit_range": list(hist.fit_range),
        "source": hist.source,
    }
