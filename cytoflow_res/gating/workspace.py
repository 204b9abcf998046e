"""Pre-gates from a FlowJo 10 workspace (``.wsp``), applied to cytoflow_res Samples.

A lab that has drawn its cell and singlet gates in FlowJo can reuse them: flowkit
(:func:`flowkit.parse_wsp`, the parser behind :class:`flowkit.Workspace`) reads the
workspace, and every gate on the way to the requested one is rebuilt as a gate of
:mod:`cytoflow_res.gating.gates` whose dimensions are :class:`FlowJoDimension` measures.
:func:`read_flowjo_pregate` returns a :class:`FlowJoPregate`: a gate whose
``apply(sample)`` is the mask of the requested population, the gate ANDed with all its
ancestors, exactly as FlowJo (and flowkit) count it.

How FlowJo's gates are evaluated:

* FlowJo keeps one gate tree per sample (group gates plus the sample's own, custom,
  gates) with that sample's compensation matrix and per-channel transforms. For each
  analysed sample the workspace sample with the same ``$FIL`` or file name is used (the
  workspace's sample name, its ``$FIL`` keyword and the file name of its ``DataSet``
  URI are compared), else the group's first sample, which is said in the step's note and
  logged as a warning; ``sample=`` fixes one workspace sample for all.
* A dimension is read from the events *as read from the file* (the stored values with
  ``$PnE``/``$PnG`` applied, i.e. ``Channel.scale(Sample.raw)``), whatever compensation was
  applied to the Sample since: FlowJo compensates with the workspace's own matrix, so a
  ``Comp-`` dimension is compensated here with that matrix, the others are not. Channels
  are matched on ``$PnN``, then ``$PnS``, then ``$PnN`` with ``/`` read as ``_`` (FlowJo's
  renaming).
* FlowJo stores gate coordinates in data units but draws a gate's straight edges on its
  display scale; flowkit converts the coordinates to that scale, and each dimension here
  applies the workspace's transform for its channel (flowkit's transform objects:
  ``linear``, ``log``, ``logicle``, ``biex``, ``fasinh``) before the gate compares it, so a
  polygon drawn on a biex axis keeps its shape.
* Polygon, rectangle (one-dimensional ones become range gates), ellipse (approximated by
  flowkit as a 128-vertex polygon on the display scale, as FlowJo does) and Boolean
  ``AndNode`` / ``OrNode`` / ``NotNode`` gates are supported, including FlowJo's
  "events outside" option. Quadrant gates, ratio dimensions and spectral (unmixing)
  matrices are not; asking for a gate that needs one raises
  :class:`~cytoflow_res.errors.TemplateError`.

Boundary conventions are those of :mod:`cytoflow_res.gating.gates` (ranges
``min <= x < max``, half-open even-odd polygons), which agree with flowkit's except for
events exactly on a slanted polygon edge.

Examples
--------
>>> pre = read_flowjo_pregate("experiment.wsp", "Cells/Singlets")  # doctest: +SKIP
>>> mask = pre.apply(read_fcs("drugA_r1.fcs"))  # doctest: +SKIP
>>> pre.describe(sample)  # doctest: +SKIP
"FlowJo gate 'Cells/Singlets' of workspace sample 'drugA_r1.fcs' (same $FIL) in experiment.wsp"
"""

from __future__ import annotations

import functools
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from cytoflow_res.errors import ChannelError, TemplateError
from cytoflow_res.gating.gates import (
    BooleanGate,
    Events,
    Gate,
    PolygonGate,
    RangeGate,
    RectangleGate,
)
from cytoflow_res.gating.templates import FLOWJO_DEFAULT_GROUP, FlowJoSpec
from cytoflow_res.sample import Channel, Sample

__all__ = [
    "FlowJoDimension",
    "FlowJoPregate",
    "flowjo_pregate",
    "read_flowjo_pregate",
]

logger = logging.getLogger(__name__)

_ROOT = "root"  # flowkit's name for the top of every gate path
_TRANSFORM_KINDS = {
    "LinearTransform": "linear",
    "WSPLogTransform": "log",
    "LogTransform": "log",
    "LogicleTransform": "logicle",
    "WSPBiexTransform": "biex",
    "AsinhTransform": "fasinh",
    "HyperlogTransform": "hyperlog",
}
SUPPORTED_GATES = ("polygon", "rectangle", "ellipse", "and", "or", "not")
"""FlowJo gate types this module evaluates (ellipses as flowkit's polygon approximation)."""


# ------------------------------------------------------------------ dimensions
class FlowJoDimension:
    """One dimension of a FlowJo gate: a channel as read, compensated and scaled as FlowJo does.

    It is a :class:`~cytoflow_res.gating.gates.Measure`: gates call :meth:`values`.

    Parameters
    ----------
    channel
        The channel's ``$PnN`` as the workspace names it, without the compensation prefix
        (``FITC-A`` for FlowJo's ``Comp-FITC-A``).
    transform
        The workspace's transform for the channel (a flowkit transform object with
        ``apply``), or None to compare data values.
    matrix_name
        Name of the workspace's compensation matrix when the dimension is compensated
        (``"Acquisition-defined"``), else None.
    detectors
        The matrix's detector channels, in its order (empty when not compensated).
    spillover
        The spillover matrix (rows: fluorochromes by primary detector, columns:
        detectors; ``observed = true @ spillover``), or None.
    where
        Which workspace, sample and gate the dimension belongs to (for messages).

    Raises
    ------
    TemplateError
        If the channel is compensated but not a detector of the matrix, or the matrix is
        not square, not finite or singular.
    """

    def __init__(
        self,
        channel: str,
        transform: Any | None = None,
        *,
        matrix_name: str | None = None,
        detectors: Sequence[str] = (),
        spillover: np.ndarray | None = None,
        where: str = "FlowJo gate",
    ) -> None:
        self.channel = channel
        self.transform = transform
        self.transform_kind = (
            None if transform is None
            else _TRANSFORM_KINDS.get(type(transform).__name__, type(transform).__name__)
        )
        self.matrix_name = matrix_name
        self.detectors = tuple(detectors)
        self.where = where
        self._unmix: np.ndarray | None = None
        if spillover is not None:
            self._unmix = _unmixing_column(channel, self.detectors, spillover, matrix_name, where)

    @property
    def compensated(self) -> bool:
        """True if the workspace's matrix is applied to this dimension."""
        return self._unmix is not None

    @property
    def name(self) -> str:
        """The channel, with the matrix in brackets and the transform around it.

        For example ``biex(FITC-A[Acquisition-defined])``.
        """
        text = self.channel if self.matrix_name is None else f"{self.channel}[{self.matrix_name}]"
        return text if self.transform_kind is None else f"{self.transform_kind}({text})"

    def __repr__(self) -> str:
        return f"FlowJoDimension({self.name!r})"

    def values(self, events: Events) -> np.ndarray:
        """Values of this dimension for every event, on the workspace's display scale.

        Parameters
        ----------
        events
            A Sample (read as stored in the file: ``$PnE``/``$PnG`` applied, any later
            compensation ignored), or a DataFrame / mapping of columns taken as given.

        Returns
        -------
        numpy.ndarray
            One float per event.

        Raises
        ------
        ChannelError
            If the events lack the channel (or a detector of the matrix); the message
            names the channel and lists the channels there are.
        """
        if self._unmix is None:
            vals = _as_read(events, self.channel, self.where)
        else:
            observed = np.column_stack([_as_read(events, d, self.where) for d in self.detectors])
            vals = observed @ self._unmix
        if self.transform is not None:
            vals = np.asarray(self.transform.apply(vals.reshape(-1, 1)), dtype=np.float64).reshape(-1)
        return vals


def _unmixing_column(
    channel: str, detectors: tuple[str, ...], spillover: np.ndarray, matrix_name: str | None, where: str,
) -> np.ndarray:
    """Column of the inverse spillover matrix that gives ``channel``'s compensated value."""
    matrix = np.asarray(spillover, dtype=np.float64)
    n = len(detectors)
    if matrix.shape != (n, n) or not np.isfinite(matrix).all():
        msg = (
            f"{where}: compensation matrix {matrix_name!r} of the workspace is not a finite "
            f"{n} x {n} matrix for its detectors {', '.join(detectors)} (shape {matrix.shape}); "
            "re-create the compensation in FlowJo"
        )
        raise TemplateError(msg)
    if channel not in detectors:
        msg = (
            f"{where}: channel {channel!r} is compensated with matrix {matrix_name!r}, which has "
            f"no such detector (detectors: {', '.join(detectors)})"
        )
        raise TemplateError(msg)
    try:
        inverse = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        msg = f"{where}: compensation matrix {matrix_name!r} of the workspace is singular; fix it in FlowJo"
        raise TemplateError(msg) from None
    return np.ascontiguousarray(inverse[:, detectors.index(channel)])


def _find_channel(sample: Sample, name: str) -> Channel | None:
    """The channel FlowJo means by ``name``: ``$PnN``, then ``$PnS``, then ``/`` read as ``_``."""
    for ch in sample.channels:
        if ch.name == name:
            return ch
    for ch in sample.channels:
        if ch.label and ch.label == name:
            return ch
    for ch in sample.channels:
        if ch.name.replace("/", "_") == name:
            return ch
    return None


def _as_read(events: Events, name: str, where: str) -> np.ndarray:
    """Values of channel ``name`` as read from the file (Sample) or as given (columns)."""
    if isinstance(events, Sample):
        ch = _find_channel(events, name)
        if ch is None:
            what = str(events.path) if events.path is not None else f"sample {events.sample_id!r}"
            listing = ", ".join(c.display_name for c in events.channels)
            msg = (
                f"{where} reads channel {name!r}, which {what} does not have; its channels are "
                f"{listing}; use a workspace gated on files with this panel, or re-draw the gate "
                "in FlowJo on these channels"
            )
            raise ChannelError(msg)
        return np.asarray(ch.scale(events.raw[:, ch.index]), dtype=np.float64)
    columns = list(events.columns) if isinstance(events, pd.DataFrame) else list(events)
    if name not in columns:
        msg = (
            f"{where} reads channel {name!r}, which is not among the events' columns: "
            f"{', '.join(map(str, columns))}"
        )
        raise ChannelError(msg)
    return np.asarray(events[name], dtype=np.float64).reshape(-1)


# ------------------------------------------------------------------ the pre-gate
class FlowJoPregate(Gate):
    """A FlowJo gate's population (the gate and all its ancestors) as a cytoflow_res gate.

    Build it with :func:`read_flowjo_pregate` (or :func:`flowjo_pregate` for a template's
    ``pregates.flowjo``). It holds the population rebuilt for every workspace sample of the
    group (one for the fixed ``sample``), and picks one per analysed sample.

    Attributes
    ----------
    path
        The workspace file.
    gate
        The gate as requested (name or path).
    gate_path
        The gate's full FlowJo path (``Cells/Singlets``).
    group
        The FlowJo sample group.
    sample
        The fixed workspace sample, or None (chosen per analysed sample).
    samples
        The workspace samples of the group, in workspace order.
    name
        ``gate_path`` (gates carry a name).
    dimensions
        Every dimension any of the populations reads.
    """

    parent_id: str | None = None

    def __init__(
        self,
        path: str,
        gate: str,
        gate_path: str,
        group: str,
        sample: str | None,
        samples: Sequence[str],
        populations: Mapping[str, Gate],
        missing: Mapping[str, str],
        match_keys: Mapping[str, frozenset[str]],
    ) -> None:
        self.path = path
        self.gate = gate
        self.gate_path = gate_path
        self.group = group
        self.sample = sample
        self.samples = tuple(samples)
        self.name = gate_path
        self._populations = dict(populations)
        self._missing = dict(missing)
        self._keys = dict(match_keys)
        seen: dict[str, Any] = {}
        for pop in self._populations.values():
            for dim in pop.dimensions:
                seen.setdefault(dim if isinstance(dim, str) else dim.name, dim)
        self.dimensions = tuple(seen.values())

    def __repr__(self) -> str:
        return (
            f"FlowJoPregate({self.gate_path!r}, {Path(self.path).name!r}, group={self.group!r}, "
            f"sample={self.sample!r})"
        )

    @property
    def description(self) -> str:
        """One line saying which gate of which file, group and sample(s) is applied."""
        which = (
            f"sample {self.sample!r}" if self.sample is not None
            else "the sample with the same $FIL or file name"
        )
        return (
            f"FlowJo gate {self.gate_path!r} of {which} in {Path(self.path).name} "
            f"(group {self.group!r})"
        )

    def select(self, events: Events) -> tuple[str, str]:
        """The workspace sample whose gates apply to ``events``, and how it was chosen.

        Parameters
        ----------
        events
            The analysed sample (its ``$FIL`` keyword and file name are compared with the
            workspace samples' names, ``$FIL`` and data file names), or columns.

        Returns
        -------
        name : str
            The workspace sample.
        how : str
            ``"pregates.flowjo.sample"``, ``"same $FIL"``, ``"same file name"`` or a
            sentence saying that nothing matched and the group's first sample is used.
        """
        if self.sample is not None:
            return self.sample, "fixed by pregates.flowjo.sample"
        wanted = _sample_keys(events)
        for label, key in wanted:
            for name in self.samples:
                if key in self._keys[name]:
                    return name, f"same {label}"
        for label, key in wanted:
            folded = key.casefold()
            for name in self.samples:
                if any(k.casefold() == folded for k in self._keys[name]):
                    return name, f"same {label} (ignoring case)"
        first = next((s for s in self.samples if s in self._populations), self.samples[0])
        asked = " or ".join(f"{label} {key!r}" for label, key in wanted) or "no $FIL or file name"
        how = (
            f"no workspace sample of group {self.group!r} matches {asked}; using the gates of "
            f"{first!r}, the group's first sample with gate {self.gate_path!r} (set "
            "pregates.flowjo.sample to choose the workspace sample)"
        )
        return first, how

    def gate_for(self, events: Events) -> Gate:
        """The population gate (our gate objects) used for ``events``.

        Parameters
        ----------
        events
            The analysed sample.

        Returns
        -------
        Gate
            The gate ANDed with its ancestors, for the workspace sample :meth:`select`
            picks.

        Raises
        ------
        TemplateError
            If that workspace sample has no such gate.
        """
        name, _ = self.select(events)
        return self._population(name)

    def _population(self, name: str) -> Gate:
        if name not in self._populations:
            msg = self._missing.get(name) or (
                f"{self.path}: workspace sample {name!r} is not in group {self.group!r}"
            )
            raise TemplateError(msg)
        return self._populations[name]

    def describe(self, events: Events | None = None) -> str:
        """What is applied to ``events``: gate path, workspace sample and why, file, group.

        Parameters
        ----------
        events
            The analysed sample; None describes the pre-gate in general.

        Returns
        -------
        str
            For example ``FlowJo gate 'Cells/Singlets' of workspace sample 'a.fcs' (same
            $FIL) in experiment.wsp, group 'All Samples'``.
        """
        if events is None:
            return self.description
        name, how = self.select(events)
        return (
            f"FlowJo gate {self.gate_path!r} of workspace sample {name!r} ({how}) in "
            f"{Path(self.path).name}, group {self.group!r}"
        )

    def apply(self, events: Events) -> np.ndarray:
        """Mask of the events in the gate's population, with the matching sample's gates.

        Parameters
        ----------
        events
            A Sample (channels read as stored in the file), or a DataFrame / mapping of
            columns named as in the workspace.

        Returns
        -------
        numpy.ndarray
            Boolean mask, one entry per event.

        Raises
        ------
        ChannelError
            If a gate reads a channel the events lack.
        TemplateError
            If the chosen workspace sample has no such gate.
        """
        name, how = self.select(events)
        if how.startswith("no workspace sample"):
            logger.warning("%s: %s", self.path, how)
        else:
            logger.info("%s: FlowJo gate %r of workspace sample %r (%s)", self.path, self.gate_path,
                        name, how)
        return self._population(name).apply(events)


def _sample_keys(events: Events) -> list[tuple[str, str]]:
    """``(label, value)`` pairs identifying an analysed sample: its ``$FIL``, its file name."""
    if not isinstance(events, Sample):
        return []
    out = []
    fil = events.keywords.get("$FIL", "").strip()
    if fil:
        out.append(("$FIL", fil))
    if events.path is not None and events.path.name != fil:
        out.append(("file name", events.path.name))
    return out


# ------------------------------------------------------------------ reading
def _check_workspace(path: Path) -> None:
    """Raise a TemplateError unless ``path`` is an existing FlowJo 10 workspace."""
    if not path.is_file():
        msg = f"{path}: FlowJo workspace file not found; check the path (a .wsp saved by FlowJo 10)"
        raise TemplateError(msg)
    try:
        with path.open("rb") as fh:  # the root element only: no need to parse a large file twice
            _, root = next(iter(ET.iterparse(fh, events=("start",))))
    except ET.ParseError as exc:
        msg = f"{path}: not a FlowJo workspace: not well-formed XML ({exc}); give the .wsp FlowJo saved"
        raise TemplateError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read the FlowJo workspace ({exc})"
        raise TemplateError(msg) from None
    tag = root.tag.rpartition("}")[2] if isinstance(root.tag, str) else ""
    if tag != "Workspace" or "flowJoVersion" not in root.attrib:
        hint = (
            "; this is a Gating-ML file: use pregates.gatingml (read_gatingml) for it"
            if tag == "Gating-ML" else ""
        )
        msg = (
            f"{path}: not a FlowJo workspace: the root element is <{tag}>, not "
            f"<Workspace flowJoVersion=...> as in a .wsp saved by FlowJo 10{hint}"
        )
        raise TemplateError(msg)
    version = root.attrib["flowJoVersion"]
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 10:
        msg = (
            f"{path}: a FlowJo {version} workspace; only FlowJo 10 (and later) workspaces can be "
            "read: open it in FlowJo 10 and save it again"
        )
        raise TemplateError(msg)


def _parse(path: Path) -> dict[str, Any]:
    """Parse the workspace with flowkit, turning flowkit's errors into TemplateErrors."""
    import flowkit

    try:
        parsed = flowkit.parse_wsp(str(path))
    except (ValueError, KeyError, AttributeError, TypeError, IndexError, NotImplementedError,
            SyntaxError, flowkit.exceptions.FlowKitException) as exc:
        msg = (
            f"{path}: flowkit cannot read this FlowJo workspace ({type(exc).__name__}: {exc}); "
            "supported are FlowJo 10 workspaces with linear, log, logicle, biex or fasinh "
            "transforms and conventional (not spectral) compensation"
        )
        raise TemplateError(msg) from None
    return dict(parsed)


def _path_text(name: str, ancestors: Sequence[str]) -> str:
    """FlowJo path of a gate from flowkit's ``(name, ('root', ...))`` id."""
    return "/".join([*(a for a in ancestors if a != _ROOT), name])


def _gate_ids(strategy: Any) -> list[tuple[str, tuple[str, ...]]]:
    return [(str(n), tuple(p)) for n, p in strategy.get_gate_ids()]


def _find_gate(
    strategy: Any, wanted: str, where: str,
) -> tuple[tuple[str, tuple[str, ...]] | None, str]:
    """The flowkit gate id ``wanted`` (a name or a path) names, or None and why not."""
    text = wanted.strip().strip("/")
    if text == _ROOT or text.startswith(f"{_ROOT}/"):
        text = text[len(_ROOT):].lstrip("/")
    ids = _gate_ids(strategy)
    paths = [_path_text(n, p) for n, p in ids]
    if "/" in text:
        hits = [gid for gid, p in zip(ids, paths, strict=True) if p == text]
    else:
        hits = [gid for gid in ids if gid[0] == text]
    if len(hits) == 1:
        return hits[0], ""
    if len(hits) > 1:
        found = ", ".join(_path_text(n, p) for n, p in hits)
        return None, (
            f"{where}: gate name {wanted!r} is ambiguous: it is at {found}; give the gate's path"
        )
    return None, (
        f"{where}: no gate {wanted!r}; gate paths are {', '.join(paths) or '(none)'}; give a "
        "gate name or a path like Cells/Singlets"
    )


class _Converter:
    """Rebuilds one workspace sample's flowkit gates as cytoflow_res gates."""

    def __init__(self, strategy: Any, sample_name: str, source: str) -> None:
        self.strategy = strategy
        self.sample_name = sample_name
        self.source = source
        self._gates: dict[tuple[str, tuple[str, ...]], Gate] = {}
        self._populations: dict[tuple[str, tuple[str, ...]], Gate] = {}

    def where(self, gid: tuple[str, tuple[str, ...]]) -> str:
        return f"{self.source}: FlowJo gate {_path_text(*gid)!r} of workspace sample {self.sample_name!r}"

    def population(self, gid: tuple[str, tuple[str, ...]]) -> Gate:
        """The gate ANDed with its ancestors (what FlowJo counts in a population)."""
        if gid in self._populations:
            return self._populations[gid]
        name, ancestors = gid
        chain = [(ancestors[i], tuple(ancestors[:i])) for i in range(1, len(ancestors))]
        members = [self.gate(g) for g in [*chain, gid]]
        pop = members[0] if len(members) == 1 else BooleanGate(
            "and", tuple(members), name=_path_text(name, ancestors)
        )
        self._populations[gid] = pop
        return pop

    def gate(self, gid: tuple[str, tuple[str, ...]]) -> Gate:
        """One gate on its own (not ANDed with its ancestors), in our classes."""
        if gid not in self._gates:
            self._gates[gid] = self._convert(gid)
        return self._gates[gid]

    def _convert(self, gid: tuple[str, tuple[str, ...]]) -> Gate:
        import flowkit

        fk_gates = flowkit.gates
        name, ancestors = gid
        where = self.where(gid)
        label = _path_text(name, ancestors)
        try:
            fk_gate = self.strategy.get_gate(name, ancestors, sample_id=self.sample_name)
        except flowkit.exceptions.FlowKitException as exc:  # e.g. a single quadrant
            msg = f"{where} cannot be used ({exc}); quadrant gates are not supported"
            raise TemplateError(msg) from None
        gate: Gate
        if isinstance(fk_gate, fk_gates.BooleanGate):
            operands = tuple(self.population((str(r["ref"]), tuple(r["path"]))) for r in fk_gate.gate_refs)
            complements = tuple(bool(r.get("complement", False)) for r in fk_gate.gate_refs)
            try:
                return BooleanGate(fk_gate.type, operands, complements=complements, name=label)
            except TemplateError as exc:
                msg = f"{where}: {exc}"
                raise TemplateError(msg) from None
        if isinstance(fk_gate, fk_gates.PolygonGate):
            dims = self._dimensions(fk_gate, where)
            verts = tuple((float(x), float(y)) for x, y in np.asarray(fk_gate.vertices, dtype=float))
            gate = PolygonGate(dims, verts, name=label)
        elif isinstance(fk_gate, fk_gates.RectangleGate):
            dims = self._dimensions(fk_gate, where)
            bounded = [
                (dim, (d.min, d.max)) for dim, d in zip(dims, fk_gate.dimensions, strict=True)
                if d.min is not None or d.max is not None
            ]
            if not bounded:
                msg = f"{where}: the rectangle gate has no bound on any dimension; re-draw it in FlowJo"
                raise TemplateError(msg)
            if len(bounded) == 1:
                gate = RangeGate(bounded[0][0], *bounded[0][1], name=label)
            else:
                gate = RectangleGate(tuple(d for d, _ in bounded), tuple(r for _, r in bounded), name=label)
        else:
            kind = type(fk_gate).__name__
            msg = (
                f"{where} is a {kind}, which is not supported; supported FlowJo gates are "
                f"{', '.join(SUPPORTED_GATES)}"
            )
            raise TemplateError(msg)
        if getattr(fk_gate, "use_complement", False):  # FlowJo's "events outside the gate"
            gate = BooleanGate("not", (gate,), name=label)
        return gate

    def _dimensions(self, fk_gate: Any, where: str) -> tuple[FlowJoDimension, ...]:
        import flowkit

        out = []
        for d in fk_gate.dimensions:
            if not isinstance(d, flowkit.Dimension):
                msg = f"{where} uses a {type(d).__name__}; ratio dimensions are not supported"
                raise TemplateError(msg)
            transform = None
            if d.transformation_ref is not None:
                transform = self.strategy.get_transform(d.transformation_ref)
            comp = d.compensation_ref
            if comp in (None, "uncompensated"):
                out.append(FlowJoDimension(str(d.id), transform, where=where))
                continue
            matrix = self.strategy.comp_matrices.get(comp) if comp != "FCS" else None
            if not isinstance(matrix, flowkit.Matrix):
                kind = "none" if matrix is None else type(matrix).__name__
                msg = (
                    f"{where}: dimension {d.id!r} is compensated with {comp!r} ({kind}); only "
                    "conventional spillover matrices stored in the workspace are supported"
                )
                raise TemplateError(msg)
            out.append(FlowJoDimension(
                str(d.id), transform, matrix_name=str(comp), detectors=[str(x) for x in matrix.detectors],
                spillover=np.asarray(matrix.matrix, dtype=float), where=where,
            ))
        return tuple(out)


def _match_keys(name: str, data: Mapping[str, Any]) -> frozenset[str]:
    """Names a workspace sample goes by: its name, ``$FIL`` and its data file's name."""
    keys = {name}
    keywords = data.get("keywords") or {}
    fil = str(keywords.get("$FIL", "")).strip()
    if fil:
        keys.add(fil)
    uri = data.get("sample_uri")
    if uri:
        file_name = PurePosixPath(unquote(urlparse(str(uri)).path).replace("\\", "/")).name
        if file_name:
            keys.add(file_name)
    return frozenset(keys)


def read_flowjo_pregate(
    path: str | os.PathLike[str],
    gate: str,
    *,
    group: str = FLOWJO_DEFAULT_GROUP,
    sample: str | None = None,
) -> FlowJoPregate:
    """Read a gate of a FlowJo 10 workspace as a pre-gate for cytoflow_res Samples.

    Parameters
    ----------
    path
        The workspace (``.wsp``).
    gate
        A gate name (``Singlets``) or FlowJo gate path (``Cells/Singlets``). The
        population kept is the gate ANDed with all its ancestors.
    group
        The FlowJo sample group whose samples' gates are used.
    sample
        A workspace sample (its name in FlowJo) whose gates apply to every analysed
        sample. None (default): per analysed sample, the workspace sample with the same
        ``$FIL`` or file name, else the group's first sample (said in :meth:`describe
        <FlowJoPregate.describe>` and logged).

    Returns
    -------
    FlowJoPregate
        ``apply(sample)`` gives the membership mask; ``describe(sample)`` says what was
        applied.

    Raises
    ------
    TemplateError
        If the file is missing or not a FlowJo 10 workspace, the group or the sample is not
        in it (the message lists those there are), the gate is in none of the group's
        samples or its name is ambiguous (the message lists the gate paths), or the gate
        needs an unsupported feature (quadrant gates, ratio dimensions, spectral matrices).

    Examples
    --------
    >>> pre = read_flowjo_pregate("experiment.wsp", "Cells/Singlets")  # doctest: +SKIP
    >>> sample.subset(pre.apply(sample))  # doctest: +SKIP
    """
    wsp = Path(path)
    source = str(path)
    _check_workspace(wsp)
    parsed = _parse(wsp)
    groups: Mapping[str, Any] = parsed.get("groups") or {}
    samples: Mapping[str, Any] = parsed.get("samples") or {}
    if group not in groups:
        msg = (
            f"{source}: no sample group {group!r}; groups (with samples or gates) are "
            f"{', '.join(map(repr, groups)) or '(none)'}"
        )
        raise TemplateError(msg)
    members = [str(s) for s in groups[group].get("samples", []) if s in samples]
    if not members:
        msg = (
            f"{source}: group {group!r} has no samples, so no gates to apply; pick a group with "
            f"samples: {', '.join(repr(g) for g, d in groups.items() if d.get('samples')) or '(none)'}"
        )
        raise TemplateError(msg)
    if sample is not None and sample not in members:
        msg = (
            f"{source}: no sample {sample!r} in group {group!r}; its samples are "
            f"{', '.join(map(repr, members))}"
        )
        raise TemplateError(msg)
    used = members if sample is None else [sample]
    populations: dict[str, Gate] = {}
    missing: dict[str, str] = {}
    canonical = ""
    first_problem = ""
    for name in used:
        strategy = samples[name]["gating_strategy"]
        where = f"{source} (workspace sample {name!r}, group {group!r})"
        gid, problem = _find_gate(strategy, gate, where)
        if gid is None:
            missing[name] = problem
            first_problem = first_problem or problem
            continue
        populations[name] = _Converter(strategy, name, source).population(gid)
        canonical = canonical or _path_text(*gid)
    if not populations:
        raise TemplateError(first_problem)
    keys = {name: _match_keys(name, samples[name]) for name in used}
    return FlowJoPregate(source, gate, canonical, group, sample, used, populations, missing, keys)


@functools.lru_cache(maxsize=16)
def _cached(path: str, mtime_ns: int, gate: str, group: str, sample: str | None) -> FlowJoPregate:
    del mtime_ns  # part of the cache key only: an edited workspace is read again
    return read_flowjo_pregate(path, gate, group=group, sample=sample)


def flowjo_pregate(spec: FlowJoSpec) -> FlowJoPregate:
    """The pre-gate a template's ``pregates.flowjo`` names, read once per workspace version.

    Parameters
    ----------
    spec
        ``template.pregates.flowjo``.

    Returns
    -------
    FlowJoPregate

    Raises
    ------
    TemplateError
        As :func:`read_flowjo_pregate`.
    """
    try:
        mtime = os.stat(spec.path).st_mtime_ns
    except OSError:
        return read_flowjo_pregate(spec.path, spec.gate, group=spec.group, sample=spec.sample)
    return _cached(spec.path, mtime, spec.gate, spec.group, spec.sample)
