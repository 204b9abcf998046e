"""The in-memory form of one FCS data set: events, channels and keywords.

A :class:`Sample` is a plain object: numpy arrays plus metadata, never a numpy subclass.
``raw`` holds the values exactly as stored in the file (integers masked to their range);
``events`` holds scaled values ($PnE log decoding and $PnG gain applied as the FCS
standard says). Both are read-only, so a Sample can be shared safely; transforms and
gates return new Samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoflow_res.errors import ChannelError, FCSError

__all__ = ["Channel", "Sample", "Spillover", "normalize_channel_key"]

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_channel_key(text: str) -> str:
    """Fold a channel name for matching: lower case, no spaces or punctuation.

    Parameters
    ----------
    text
        A channel name, label or alias such as ``"FITC-A"`` or ``"Annexin V"``.

    Returns
    -------
    str
        ``"fitca"``, ``"annexinv"``, ...
    """
    return _NON_ALNUM.sub("", text.lower())


@dataclass(frozen=True)
class Channel:
    """One measured parameter of an FCS data set.

    Attributes
    ----------
    index
        Zero-based column index in ``Sample.events``.
    name
        Short name, ``$PnN`` (e.g. ``"FL1-H"``).
    label
        Long name / stain, ``$PnS`` (e.g. ``"Annexin V-FITC"``); empty if absent.
    range
        ``$PnR``: the number of channel values the instrument can produce.
    bits
        ``$PnB``: bits per stored value (32 for float, 64 for double).
    datatype
        ``"I"``, ``"F"`` or ``"D"`` for this column.
    log_decades
        First field of ``$PnE``; 0 for a linear channel.
    log_offset
        Second field of ``$PnE`` (already corrected from 0 to 1 for log channels).
    gain
        ``$PnG``; 1 when absent (and for the time channel, where writers misuse it).
    timestep
        ``$TIMESTEP`` for the time channel (seconds per stored unit); 0 for others.
    """

    index: int
    name: str
    label: str = ""
    range: float = 0.0
    bits: int = 32
    datatype: str = "F"
    log_decades: float = 0.0
    log_offset: float = 0.0
    gain: float = 1.0
    timestep: float = 0.0

    @property
    def is_log(self) -> bool:
        """True if the stored integer values are log-amplified ($PnE decades > 0)."""
        return self.datatype == "I" and self.log_decades > 0

    @property
    def display_name(self) -> str:
        """``"name (label)"`` when a distinct label exists, else the name."""
        if self.label and self.label != self.name:
            return f"{self.name} ({self.label})"
        return self.name

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Convert stored channel values into scale values as FCS 3.1 defines.

        Log channels (integer data with ``$PnE = f1,f2``, f1 > 0) give
        ``10**(f1 * x / $PnR) * f2``; linear channels are divided by ``$PnG``; the
        time channel is multiplied by ``$TIMESTEP``. Float channels are never log-decoded.

        Parameters
        ----------
        values
            Stored values of this channel.

        Returns
        -------
        numpy.ndarray
            Scaled values (float64 for integer data, the input's float type otherwise).
            Values beyond the float range become ``inf`` and NaNs stay NaN, silently:
            the reader has already warned about keywords that cause this.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._scale(values)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        if self.is_log:
            rng = self.range if self.range > 0 else 2.0**self.bits
            out = np.asarray(values, dtype=np.float64) * (self.log_decades / rng)
            np.power(10.0, out, out=out)
            out *= self.log_offset
            return out
        if self.timestep > 0:
            return np.asarray(values, dtype=np.float64) * self.timestep
        if self.datatype == "I":
            out = np.asarray(values, dtype=np.float64)
            if self.gain not in (0.0, 1.0):
                out = out / self.gain
            return out
        if self.gain not in (0.0, 1.0):
            return np.asarray(values) / np.asarray(self.gain, dtype=np.asarray(values).dtype)
        return np.asarray(values)

    @property
    def needs_scaling(self) -> bool:
        """True if :meth:`scale` changes the stored values or their dtype."""
        return self.datatype == "I" or self.gain not in (0.0, 1.0) or self.timestep > 0

    @property
    def max_value(self) -> float:
        """Largest scale value the instrument can produce on this channel."""
        if self.is_log:
            return float(10.0**self.log_decades * self.log_offset)
        rng = self.range if self.range > 0 else math.nan
        return rng / (self.gain if self.gain not in (0.0, 1.0) else 1.0)


@dataclass(frozen=True)
class Spillover:
    """A spillover (compensation) matrix as written in an FCS keyword.

    Attributes
    ----------
    channels
        Channel names the matrix refers to, in row/column order.
    matrix
        ``matrix[i, j]`` is the fraction of fluorochrome ``i``'s signal seen in
        detector ``j`` (rows: sources, columns: detectors; diagonal 1).
    keyword
        The keyword it came from (``$SPILLOVER``, ``SPILL`` or ``$SPILL``).
    """

    channels: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)
    keyword: str = "$SPILLOVER"

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a labelled DataFrame (rows: sources, columns: detectors)."""
        return pd.DataFrame(self.matrix, index=list(self.channels), columns=list(self.channels))


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


class Sample:
    """Events, channels and keywords of one FCS data set.

    Parameters
    ----------
    raw
        2-D array (events x channels) of stored values.
    channels
        One :class:`Channel` per column, in column order.
    keywords
        TEXT keywords with upper-cased, stripped keys (``"$PAR"``, ``"$P1N"``, ...).
    path
        The file it came from, if any.
    dataset
        Zero-based index of the data set within the file.
    version
        FCS version string from the HEADER (``"FCS3.1"``).
    events
        Already scaled values; computed from ``raw`` on first use when omitted.

    Examples
    --------
    >>> s = read_fcs("sample.fcs")  # doctest: +SKIP
    >>> s.channel("annexin v").name  # doctest: +SKIP
    'FITC-A'
    """

    def __init__(
        self,
        raw: np.ndarray,
        channels: Sequence[Channel],
        keywords: Mapping[str, str] | None = None,
        *,
        path: str | Path | None = None,
        dataset: int = 0,
        version: str = "FCS3.1",
        events: np.ndarray | None = None,
    ) -> None:
        raw = np.asarray(raw)
        if raw.ndim != 2 or raw.shape[1] != len(channels):
            msg = (
                f"raw must be a 2-D array with one column per channel; got shape {raw.shape} "
                f"for {len(channels)} channels"
            )
            raise ValueError(msg)
        self._raw = _readonly(raw)
        self._events = None if events is None else _readonly(np.asarray(events))
        self.channels: tuple[Channel, ...] = tuple(channels)
        self.keywords: dict[str, str] = dict(keywords or {})
        self.path: Path | None = None if path is None else Path(path)
        self.dataset = dataset
        self.version = version

    # ------------------------------------------------------------------ data
    @property
    def raw(self) -> np.ndarray:
        """Stored values, exactly as in the file (read-only)."""
        return self._raw

    @property
    def events(self) -> np.ndarray:
        """Scale values: $PnE decoded, $PnG applied (read-only, computed once)."""
        if self._events is None:
            self._events = _readonly(self._scale_all())
        return self._events

    def _scale_all(self) -> np.ndarray:
        return self._scale_rows(self._raw)

    def _scale_rows(self, raw: np.ndarray) -> np.ndarray:
        """Scale values of some rows of ``raw`` (events are scaled one by one)."""
        if not any(ch.needs_scaling for ch in self.channels):
            return raw
        if raw.dtype.kind == "f" and all(ch.datatype != "I" and ch.timestep <= 0 for ch in self.channels):
            out = np.array(raw, copy=True)
        else:
            out = np.empty(raw.shape, dtype=np.float64)
        # Casting float32 NaNs with the signalling bit set (damaged DATA) flags "invalid".
        with np.errstate(over="ignore", invalid="ignore"):
            for ch in self.channels:
                out[:, ch.index] = ch.scale(raw[:, ch.index])
        return out

    def _event_rows(self, start: int, stop: int) -> np.ndarray:
        """Scale values of events ``start:stop``: the values of ``events[start:stop]``.

        When :attr:`events` has not been computed only these rows are scaled, so a caller
        going through a large sample block by block never holds a scaled copy of all of it.
        """
        if self._events is not None:
            return self._events[start:stop]
        return _readonly(self._scale_rows(self._raw[start:stop]))

    @property
    def n_events(self) -> int:
        """Number of events (rows)."""
        return int(self._raw.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels (columns)."""
        return len(self.channels)

    @property
    def channel_names(self) -> list[str]:
        """``$PnN`` of every channel, in column order."""
        return [ch.name for ch in self.channels]

    @property
    def channel_labels(self) -> list[str]:
        """``$PnS`` of every channel (empty string where absent)."""
        return [ch.label for ch in self.channels]

    @property
    def sample_id(self) -> str:
        """A short identifier: the file stem, with the data set index if not the first."""
        if self.path is not None:
            stem = self.path.stem if self.path.suffix.lower() in {".fcs", ".lmd"} else self.path.name
        else:
            stem = self.keywords.get("$FIL", "") or "sample"
        return stem if self.dataset == 0 else f"{stem}#{self.dataset}"

    @property
    def datatype(self) -> str:
        """``$DATATYPE`` (``"I"``, ``"F"``, ``"D"``)."""
        return self.keywords.get("$DATATYPE", "").strip().upper()

    @property
    def cytometer(self) -> str:
        """``$CYT`` (instrument) or an empty string."""
        return self.keywords.get("$CYT", "").strip()

    # -------------------------------------------------------------- channels
    def channel(self, key: str | int, *, aliases: Iterable[str] = ()) -> Channel:
        """Find one channel by name, label, alias or index.

        Matching is insensitive to case, spaces and punctuation. An exact (folded)
        match on ``$PnN`` wins, then on ``$PnS``, then on any alias; failing that,
        a unique prefix match on a name or label (``"Annexin V"`` finds the label
        ``"Annexin V-FITC"``).

        Parameters
        ----------
        key
            A name, label or zero-based index.
        aliases
            Further names to try (a template's alias list for a role).

        Returns
        -------
        Channel
            The matching channel.

        Raises
        ------
        ChannelError
            If nothing or more than one channel matches; the message lists the channels.
        """
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if 0 <= int(key) < len(self.channels):
                return self.channels[int(key)]
            msg = f"channel index {key} is out of range for {self._where()} ({len(self.channels)} channels)"
            raise ChannelError(msg)
        candidates = [str(key), *aliases]
        for cand in candidates:
            folded = normalize_channel_key(cand)
            if not folded:
                continue
            for attr in ("name", "label"):
                hits = [ch for ch in self.channels if normalize_channel_key(getattr(ch, attr)) == folded]
                if len(hits) == 1:
                    return hits[0]
                if len(hits) > 1:
                    msg = (
                        f"{len(hits)} channels of {self._where()} have the {attr} {cand!r}: "
                        f"{', '.join(h.display_name for h in hits)}; ask by index or by another name"
                    )
                    raise ChannelError(msg)
        for cand in candidates:
            folded = normalize_channel_key(cand)
            if not folded:
                continue
            hits = [
                ch
                for ch in self.channels
                if normalize_channel_key(ch.name).startswith(folded)
                or (ch.label and normalize_channel_key(ch.label).startswith(folded))
            ]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                msg = (
                    f"{cand!r} is ambiguous in {self._where()}: it could be "
                    f"{', '.join(h.display_name for h in hits)}; give the full name"
                )
                raise ChannelError(msg)
        tried = ", ".join(repr(c) for c in candidates)
        msg = (
            f"no channel matches {tried} in {self._where()}; channels are "
            f"{', '.join(ch.display_name for ch in self.channels)}; "
            "use one of these names or add an alias in the template"
        )
        raise ChannelError(msg)

    def deciding_channels(self, key: str | int, *, aliases: Iterable[str] = ()) -> list[Channel]:
        """The channels a reduced sample must keep to match ``key`` exactly as this one does.

        When :meth:`channel` finds a channel for ``key`` (and ``aliases``), that channel: a
        sample holding it finds it too, since every step of the matching sees no more
        channels than here. When it raises, every channel any of the names could match
        (exact or prefix, name or label), so that the reduced sample fails the same way.
        Used to read only the channels an analysis needs
        (``read_fcs(path, channels=...)``) without changing what its names resolve to.

        Parameters
        ----------
        key, aliases
            As for :meth:`channel`.

        Returns
        -------
        list of Channel
            In column order (empty when no channel can match).
        """
        try:
            return [self.channel(key, aliases=aliases)]
        except ChannelError:
            pass
        picked: set[int] = set()
        for name in (key, *aliases):
            if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
                continue  # an index out of range matches nothing
            folded = normalize_channel_key(str(name))
            if folded:
                picked.update(
                    ch.index for ch in self.channels
                    if normalize_channel_key(ch.name).startswith(folded)
                    or (ch.label and normalize_channel_key(ch.label).startswith(folded))
                )
        return [ch for ch in self.channels if ch.index in picked]

    def column(self, key: str | int, *, raw: bool = False) -> np.ndarray:
        """Values of one channel (see :meth:`channel` for how ``key`` is matched).

        Parameters
        ----------
        key
            Channel name, label or index.
        raw
            Return stored values instead of scale values.

        Returns
        -------
        numpy.ndarray
            1-D read-only array of length ``n_events``.
        """
        idx = self.channel(key).index
        return (self._raw if raw else self.events)[:, idx]

    @property
    def spillover(self) -> Spillover | None:
        """The spillover matrix from ``$SPILLOVER``, ``SPILL`` or ``$SPILL``, if present."""
        for kw in ("$SPILLOVER", "SPILL", "$SPILL", "SPILLOVER"):
            text = self.keywords.get(kw)
            if text and text.strip():
                return parse_spillover(text, keyword=kw, where=self._where())
        return None

    # ------------------------------------------------------------ conversion
    def to_dataframe(self, *, raw: bool = False, use_labels: bool = False) -> pd.DataFrame:
        """Events as a DataFrame, one column per channel.

        Parameters
        ----------
        raw
            Use stored values instead of scale values.
        use_labels
            Name columns by ``$PnS`` where present (else ``$PnN``).

        Returns
        -------
        pandas.DataFrame
        """
        data = self._raw if raw else self.events
        cols = [ch.label or ch.name for ch in self.channels] if use_labels else self.channel_names
        return pd.DataFrame(np.asarray(data), columns=pd.Index(cols))

    def subset(self, mask: np.ndarray) -> Sample:
        """A new Sample with only the events where ``mask`` is true (or at given indices)."""
        raw = self._raw[mask]
        events = None if self._events is None else self._events[mask]
        return Sample(
            raw, self.channels, self.keywords, path=self.path, dataset=self.dataset,
            version=self.version, events=events,
        )

    def with_events(self, events: np.ndarray, *, note: str | None = None) -> Sample:
        """A new Sample with replaced scale values (e.g. after compensation).

        Parameters
        ----------
        events
            Array of the same shape as ``self.events``.
        note
            Recorded in the keyword ``CYTOFLOW_RES_HISTORY`` of the new Sample.

        Returns
        -------
        Sample
        """
        events = np.asarray(events)
        if events.shape != self._raw.shape:
            msg = f"events shape {events.shape} does not match the sample's {self._raw.shape}"
            raise ValueError(msg)
        kw = dict(self.keywords)
        if note:
            prev = kw.get("CYTOFLOW_RES_HISTORY", "")
            kw["CYTOFLOW_RES_HISTORY"] = f"{prev}; {note}" if prev else note
        return Sample(
            self._raw, self.channels, kw, path=self.path, dataset=self.dataset,
            version=self.version, events=events,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-safe description: file, version, events, channels, instrument.

        A malformed spillover keyword does not make the sample unreadable: it is described
        as ``{"error": message}`` under ``"spillover"``.
        """
        spill_doc: dict[str, Any] | None
        try:
            spill = self.spillover
            spill_doc = (
                None if spill is None else {"keyword": spill.keyword, "channels": list(spill.channels)}
            )
        except FCSError as exc:
            spill_doc = {"error": str(exc)}
        return {
            "file": None if self.path is None else str(self.path),
            "sample_id": self.sample_id,
            "dataset": self.dataset,
            "fcs_version": self.version,
            "datatype": self.datatype,
            "n_events": self.n_events,
            "n_channels": self.n_channels,
            "cytometer": self.cytometer,
            "channels": [
                {
                    "name": ch.name,
                    "label": ch.label,
                    "range": ch.range,
                    "bits": ch.bits,
                    "log_decades": ch.log_decades,
                }
                for ch in self.channels
            ],
            "spillover": spill_doc,
        }

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "this sample"

    def __repr__(self) -> str:
        src = self.path.name if self.path is not None else "in memory"
        return (
            f"<Sample {self.sample_id!r} ({src}): {self.n_events} events x {self.n_channels} "
            f"channels [{', '.join(self.channel_names)}]>"
        )


def parse_spillover(text: str, *, keyword: str = "$SPILLOVER", where: str = "sample") -> Spillover:
    """Parse a spillover keyword value: ``n, name_1..name_n, m_11, m_12, ..., m_nn``.

    Parameters
    ----------
    text
        The keyword value.
    keyword
        Its key, kept for provenance.
    where
        Named in error messages.

    Returns
    -------
    Spillover

    Raises
    ------
    FCSError
        If the value is not a well-formed spillover matrix.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        n = int(float(parts[0]))
    except (ValueError, OverflowError):  # OverflowError: "inf"
        n = -1
    if n <= 0 or len(parts) < 1 + n + n * n:
        msg = (
            f"keyword {keyword} is not a spillover matrix (expected 'n, n names, n*n numbers'; "
            f"got {len(parts)} fields starting {text[:40]!r})"
        )
        raise FCSError(where, msg)
    names = tuple(parts[1 : 1 + n])
    try:
        values = np.array([float(v) for v in parts[1 + n : 1 + n + n * n]], dtype=np.float64)
    except ValueError as exc:
        msg = f"keyword {keyword} has a non-numeric coefficient ({exc})"
        raise FCSError(where, msg) from exc
    return Spillover(channels=names, matrix=values.reshape(n, n), keyword=keyword)
