"""Gating templates: one YAML file says how to gate one kind of acquisition.

A template names the channel *roles* an analysis needs (``annexin``, ``pi``, ``fsc_a``,
``dna``, ...) with an ordered alias list for each, how the data are compensated, the
display transforms, the pre-gates (debris, singlets, an optional cell gate imported from a
Gating-ML 2.0 file or a FlowJo workspace), and how quadrant thresholds are set (apoptosis)
or how the DNA histogram is built (cell cycle). The schema is documented in
``gating_templates/README.md``; templates shipped with the package are listed by
:func:`list_templates` and loaded by name with :func:`load_template`.

Loading validates everything: an unknown key, a value of the wrong type, or an unknown
method or transform raises :class:`~cytoflow_res.errors.TemplateError` naming the file,
the line, the key path (``thresholds.method``), the value, and what is allowed.

The YAML is read with the safe loader (no ``!!python/...`` tags) and within bounds: at most
64 KiB, 32 levels of nesting and 100,000 values once anchors and aliases are expanded (a
"billion laughs" document is refused before it is built). A key given twice is an error,
not a silent override.

Examples
--------
>>> tpl = load_template("generic_modern")
>>> tpl.assay
'apoptosis'
>>> tpl.thresholds.method, tpl.thresholds.percentile
('percentile', 99.5)
"""

from __future__ import annotations

import codecs
import difflib
import json
import math
import os
import reprlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cytoflow_res.errors import ChannelError, TemplateError
from cytoflow_res.sample import Sample

__all__ = [
    "ASSAY_ROLES",
    "CHANNEL_ROLES",
    "FLOWJO_DEFAULT_GROUP",
    "SCHEMA_VERSION",
    "CellCycleSettings",
    "CompensationSpec",
    "FlowJoSpec",
    "GateSpec",
    "GatingMLSpec",
    "PregateSpecs",
    "Template",
    "ThresholdSpec",
    "list_templates",
    "load_template",
    "parse_template",
    "validate_transform_spec",
]

SCHEMA_VERSION = 1
"""The template schema this version of cytoflow_res reads (the ``schema:`` key)."""

CHANNEL_ROLES: tuple[str, ...] = (
    "annexin", "pi", "fsc_a", "fsc_h", "fsc_w", "ssc_a", "ssc_h", "ssc_w",
    "dna", "dna_width", "dna_height",
)
"""Every channel role a template may name."""

ASSAY_ROLES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "apoptosis": ("annexin", "pi"),
    "cellcycle": ("dna",),
})
"""Roles an assay always needs, whatever its pre-gates."""

Assay = Literal["apoptosis", "cellcycle"]
_ASSAYS = ("apoptosis", "cellcycle")
_COMPENSATION_SOURCES = ("file", "matrix", "controls", "none")
_DEBRIS_METHODS = ("auto", "rectangle", "polygon", "none")
_SINGLET_METHODS = ("auto", "rectangle", "polygon", "none")
_THRESHOLD_METHODS = ("fixed", "percentile", "valley")
_THRESHOLD_CONTROLS = ("unstained", "single_stains")
_DOUBLET_METHODS = ("auto", "width", "height", "none")
_CC_MODELS = ("djf", "auto", "watson")
# A DNA histogram finer than 65536 bins has a handful of events per bin and costs memory.
_MIN_BINS, _MAX_BINS = 16, 65_536

# transform type -> (parameter -> default). Every parameter is filled in on loading, so the
# stored spec is complete and explicit.
_TRANSFORM_PARAMS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "logicle": MappingProxyType({"t": 262_144.0, "w": 0.5, "m": 4.5, "a": 0.0}),
    "asinh": MappingProxyType({"cofactor": 150.0}),
    "linear": MappingProxyType({}),
    "log": MappingProxyType({"decades": 4.0, "t": 10_000.0}),
})

_TOP_KEYS = (
    "schema", "name", "description", "assay", "channels", "compensation", "transforms",
    "pregates", "thresholds", "cellcycle",
)
_PREGATE_KEYS = ("debris", "singlets", "gatingml", "flowjo")
_FLOWJO_KEYS = ("path", "gate", "group", "sample")

FLOWJO_DEFAULT_GROUP = "All Samples"
"""The FlowJo sample group ``pregates.flowjo`` reads when it names none (FlowJo's own default)."""
# Axis keys of each pre-gate step and their default roles.
_STEP_AXES: Mapping[str, tuple[tuple[str, str], tuple[str, str]]] = MappingProxyType({
    "debris": (("x", "fsc_a"), ("y", "ssc_a")),
    "singlets": (("area", "fsc_a"), ("height", "fsc_h")),
})

_REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "gating_templates"

# Bounds on what a template file may be: real ones are a few kilobytes and a few levels deep.
_MAX_BYTES = 64 * 1024
_MAX_DEPTH = 32
_MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"

# Values are quoted in messages, cut short: a message stays readable whatever the file holds.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 80
_SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8
_SHORT.maxlevel = 3


# ----------------------------------------------------------------------- helpers
class _Ctx:
    """Where a value came from, for error messages: the file, its key paths and their lines."""

    def __init__(self, source: str, lines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}

    def where(self, key: str) -> str:
        """``my.yaml line 12`` for the key's line (or its nearest parent's), else ``my.yaml``."""
        path = key
        while True:
            if path in self.lines:
                return f"{self.source} line {self.lines[path]}"
            if not path:
                return self.source
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def fail(self, key: str, value: Any, problem: str) -> NoReturn:
        """Raise the TemplateError naming the file, line, key path, value and problem."""
        msg = f"{self.where(key)}: {key or 'the document'} = {_show(value)}: {problem}"
        raise TemplateError(msg)

    def mapping(self, value: Any, key: str, allowed: Sequence[str] | None) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(key, value, f"must be a mapping ({_kind(value)} given)")
        out = dict(value)
        for k in out:
            path = f"{key}.{k}" if key else str(k)
            if not isinstance(k, str):
                self.fail(path, out[k], f"keys must be text ({_kind(k)} {_show(k)} given){_quote_hint(k)}")
            if allowed is not None and k not in allowed:
                msg = (f"{self.where(path)}: unknown key {_show(path)}; allowed keys are {', '.join(allowed)}"
                       f"{_did_you_mean(k, allowed)}")
                raise TemplateError(msg)
        return out

    def string(self, value: Any, key: str, *, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, value, f"must be a non-empty string ({_kind(value)} given){_quote_hint(value)}")
        if choices is not None and value not in choices:
            self.fail(key, value, f"is not allowed; use one of {', '.join(choices)}"
                                  f"{_did_you_mean(value, choices)}")
        return value

    def number(self, value: Any, key: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str) and _is_number(value):
                hint = "; write it without quotes"
            self.fail(key, value, f"must be a number ({_kind(value)} given){hint}")
        out = float(value)
        if not math.isfinite(out):
            self.fail(key, value, "must be a finite number")
        if positive and out <= 0:
            self.fail(key, value, "must be positive")
        return out

    def optional_number(self, value: Any, key: str) -> float | None:
        return None if value is None else self.number(value, key)


def _show(value: Any) -> str:
    """``repr`` cut short (long strings, big or deep lists and mappings)."""
    return _SHORT.repr(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _quote_hint(value: Any) -> str:
    """Why YAML read a word as something other than text, and the fix."""
    if isinstance(value, bool):
        return "; YAML reads yes, no, on, off, true and false as booleans: put the text in quotes"
    if isinstance(value, (int, float, date)):
        return "; put it in quotes to make it text"
    return ""


def _did_you_mean(value: str, options: Sequence[str]) -> str:
    by_lower = {option.lower(): option for option in options}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


def validate_transform_spec(spec: Mapping[str, Any], *, key: str = "transform",
                            source: str = "transform spec") -> dict[str, Any]:
    """Check a transform spec and return it complete, with defaults filled in.

    Transform specs are plain dicts (built into transform objects by
    ``cytoflow_res.transforms.make_transform``):

    * ``{"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}``
    * ``{"type": "asinh", "cofactor": 150}``
    * ``{"type": "linear"}``
    * ``{"type": "log", "decades": 4, "t": 10000}``

    Parameters
    ----------
    spec
        The spec to check.
    key
        Its key path, for messages (``"transforms.annexin"``).
    source
        The file it came from, for messages.

    Returns
    -------
    dict
        ``type`` plus every parameter of that type as a float.

    Raises
    ------
    TemplateError
        For an unknown type, an unknown or non-numeric parameter, or values out of range
        (logicle needs ``t > 0``, ``m > 0``, ``0 <= w <= m / 2``, ``-w <= a <= m - 2w``;
        the others need positive parameters).
    """
    return _transform_spec(_Ctx(source), spec, key)


def _transform_spec(ctx: _Ctx, spec: Any, key: str) -> dict[str, Any]:
    body = ctx.mapping(spec, key, None)
    kind = ctx.string(body.get("type"), f"{key}.type", choices=tuple(_TRANSFORM_PARAMS))
    params = _TRANSFORM_PARAMS[kind]
    allowed = ("type", *params)
    ctx.mapping(body, key, allowed)
    out: dict[str, Any] = {"type": kind}
    for name, default in params.items():
        value = body.get(name, default)
        out[name] = ctx.number(value, f"{key}.{name}", positive=name not in ("a", "w"))
    if kind == "logicle":
        w, m, a = out["w"], out["m"], out["a"]
        if not 0 <= w <= m / 2:
            ctx.fail(f"{key}.w", w, f"logicle needs 0 <= w <= m/2 = {m / 2:g}")
        if not -w <= a <= m - 2 * w:
            ctx.fail(f"{key}.a", a, f"logicle needs -w <= a <= m - 2w, i.e. {-w:g}..{m - 2 * w:g}")
    return out


# -------------------------------------------------------------------- the pieces
@dataclass(frozen=True)
class CompensationSpec:
    """How the events are compensated before gating.

    Attributes
    ----------
    source
        ``"file"`` (the file's ``$SPILLOVER``/``SPILL`` keyword), ``"matrix"`` (a
        spillover matrix file given by ``path``), ``"controls"`` (computed from the
        experiment's single-stain controls) or ``"none"`` (already compensated, e.g. in
        hardware on a FACSCalibur).
    path
        The matrix file for ``source: matrix`` (absolute; a relative path in the YAML is
        relative to the template file), else None.
    """

    source: Literal["file", "matrix", "controls", "none"] = "file"
    path: str | None = None


@dataclass(frozen=True)
class GateSpec:
    """One pre-gate step (debris or singlets) as the template describes it.

    Attributes
    ----------
    method
        ``"auto"``, ``"rectangle"``, ``"polygon"`` or ``"none"``.
    x, y
        The two roles the step reads: FSC and SSC for debris (keys ``x``, ``y``), pulse
        area and height for singlets (keys ``area``, ``height``).
    ranges
        For ``rectangle``: ``((x_min, x_max), (y_min, y_max))`` in data units (None for an
        open side).
    vertices
        For ``polygon``: the ``(x, y)`` vertices in data units.
    k
        For ``auto``: the width of the safety margin in robust standard deviations
        (None: the method's default).
    """

    method: Literal["auto", "rectangle", "polygon", "none"] = "none"
    x: str = "fsc_a"
    y: str = "ssc_a"
    ranges: tuple[tuple[float | None, float | None], tuple[float | None, float | None]] | None = None
    vertices: tuple[tuple[float, float], ...] | None = None
    k: float | None = None

    @property
    def roles(self) -> tuple[str, str]:
        """The ``(x, y)`` roles the step reads."""
        return (self.x, self.y)

    @property
    def active(self) -> bool:
        """False for ``method: none``."""
        return self.method != "none"


@dataclass(frozen=True)
class GatingMLSpec:
    """A Gating-ML 2.0 gate used as the cell gate (ANDed with the debris gate).

    Attributes
    ----------
    path
        The Gating-ML file (absolute; relative paths in the YAML are relative to the
        template file).
    gate
        The gate id whose population (the gate and all its ancestors) is kept.
    """

    path: str
    gate: str


@dataclass(frozen=True)
class FlowJoSpec:
    """A gate of a FlowJo workspace used as the cell gate (ANDed with the debris gate).

    Read with :func:`cytoflow_res.gating.workspace.flowjo_pregate`.

    Attributes
    ----------
    path
        The FlowJo 10 workspace (``.wsp``; absolute; relative paths in the YAML are
        relative to the template file).
    gate
        The gate whose population (the gate and all its ancestors) is kept: a gate name
        (``Singlets``) or a FlowJo gate path (``Cells/Singlets``).
    group
        The FlowJo sample group whose samples' gates are used (``All Samples``).
    sample
        The workspace sample whose gates are used for every analysed sample; None (the
        default) picks, for each analysed sample, the workspace sample with the same
        ``$FIL`` or file name, else the first sample of the group.
    """

    path: str
    gate: str
    group: str = FLOWJO_DEFAULT_GROUP
    sample: str | None = None


@dataclass(frozen=True)
class PregateSpecs:
    """The pre-gates: debris, then an optional imported cell gate, then singlets.

    The imported cell gate comes from a Gating-ML 2.0 file (``gatingml``) or a FlowJo
    workspace (``flowjo``); a template gives at most one of them.
    """

    debris: GateSpec = field(default_factory=lambda: GateSpec("none", "fsc_a", "ssc_a"))
    singlets: GateSpec = field(default_factory=lambda: GateSpec("none", "fsc_a", "fsc_h"))
    gatingml: GatingMLSpec | None = None
    flowjo: FlowJoSpec | None = None


@dataclass(frozen=True)
class ThresholdSpec:
    """How the Annexin V and PI quadrant thresholds are set (apoptosis templates).

    Attributes
    ----------
    method
        ``"fixed"`` (the values below), ``"percentile"`` (a high percentile of a negative
        control) or ``"valley"`` (the density valley of a single-stain control).
    percentile
        The percentile for ``method: percentile`` (0-100).
    control
        ``"unstained"`` or ``"single_stains"``; see
        :func:`~cytoflow_res.gating.thresholds.thresholds_from_controls`.
    annexin, pi
        Fixed thresholds in data units (compensated scale values) for ``method: fixed``.
    """

    method: Literal["fixed", "percentile", "valley"] = "percentile"
    percentile: float = 99.5
    control: Literal["unstained", "single_stains"] = "unstained"
    annexin: float | None = None
    pi: float | None = None


@dataclass(frozen=True)
class CellCycleSettings:
    """How the DNA histogram is built and fitted (cell-cycle templates).

    Attributes
    ----------
    bins
        Histogram bins; None for ``min($PnR, 1024)``.
    doublets
        ``"auto"`` (the ``dna_width`` role if resolved, else ``dna_height``, else none),
        ``"width"``, ``"height"`` or ``"none"``: doublet discrimination of DNA area against
        pulse width or height.
    model
        ``"djf"``, ``"auto"`` or ``"watson"`` (see ``fit_cell_cycle``).
    """

    bins: int | None = None
    doublets: Literal["auto", "width", "height", "none"] = "auto"
    model: Literal["djf", "auto", "watson"] = "djf"


@dataclass(frozen=True)
class Template:
    """A validated gating template (see ``gating_templates/README.md`` for the YAML).

    Attributes
    ----------
    name
        Template name (``generic_modern``).
    assay
        ``"apoptosis"`` or ``"cellcycle"``.
    channels
        Role -> alias list, matched in order against ``$PnN`` then ``$PnS``.
    description
        Free text.
    compensation
        See :class:`CompensationSpec`.
    transforms
        Role -> complete transform spec (display scales and scale-aware automatic
        methods; gating itself happens on data values).
    pregates
        See :class:`PregateSpecs`.
    thresholds
        See :class:`ThresholdSpec` (None for cell-cycle templates).
    cellcycle
        See :class:`CellCycleSettings` (None for apoptosis templates).
    schema
        Schema version of the file.
    source
        The YAML file it was read from (None if built from a dict).
    """

    name: str
    assay: Assay
    channels: Mapping[str, tuple[str, ...]]
    description: str = ""
    compensation: CompensationSpec = field(default_factory=CompensationSpec)
    transforms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pregates: PregateSpecs = field(default_factory=PregateSpecs)
    thresholds: ThresholdSpec | None = None
    cellcycle: CellCycleSettings | None = None
    schema: int = SCHEMA_VERSION
    source: str | None = None

    @property
    def required_roles(self) -> tuple[str, ...]:
        """Roles every sample must have: the assay's, and those the active pre-gates read."""
        need = list(ASSAY_ROLES[self.assay])
        for step in (self.pregates.debris, self.pregates.singlets):
            if step.active:
                need += [r for r in step.roles if r not in need]
        if self.cellcycle is not None and self.cellcycle.doublets in ("width", "height"):
            role = "dna_width" if self.cellcycle.doublets == "width" else "dna_height"
            if role not in need:
                need.append(role)
        return tuple(need)

    def resolve_channels(self, sample: Sample) -> dict[str, str]:
        """Map every role of the template to a channel name (``$PnN``) of ``sample``.

        Each role's aliases are tried in order through :meth:`Sample.channel`: an exact
        (case-, space- and punctuation-insensitive) match on ``$PnN`` or ``$PnS`` for any
        alias wins, then a unique prefix match. Roles the template needs (see
        :attr:`required_roles`) must be found; other listed roles are included when
        present and left out otherwise.

        Parameters
        ----------
        sample
            The sample whose channels are matched.

        Returns
        -------
        dict
            Role -> ``$PnN``, in the template's role order.

        Raises
        ------
        ChannelError
            If a required role matches no channel (or several), naming the role, the file,
            the sample's channels and what to do; or if two roles match the same channel.
        """
        required = set(self.required_roles)
        out: dict[str, str] = {}
        for role, aliases in self.channels.items():
            try:
                ch = sample.channel(aliases[0], aliases=aliases[1:])
            except ChannelError as exc:
                if role not in required:
                    continue
                where = sample.path if sample.path is not None else "this sample"
                listing = ", ".join(c.display_name for c in sample.channels)
                # an ambiguous alias is worth quoting; "nothing matched" is said below
                why = "" if str(exc).startswith("no channel matches") else f"; {exc}"
                msg = (
                    f"no channel matches role {role!r} of template {self.name!r} in {where} "
                    f"(aliases tried: {', '.join(aliases)}{why}); channels are {listing}; "
                    f"add an alias in the template (channels.{role})"
                )
                raise ChannelError(msg) from None
            out[role] = ch.name
        seen: dict[str, str] = {}
        for role, name in out.items():
            if name in seen:
                where = sample.path if sample.path is not None else "this sample"
                msg = (
                    f"roles {seen[name]!r} and {role!r} of template {self.name!r} both match "
                    f"channel {name!r} in {where}; make their alias lists in the template distinct"
                )
                raise ChannelError(msg)
            seen[name] = role
        return out

    def doublet_channel(self, channels: Mapping[str, str]) -> str | None:
        """The DNA pulse width or height channel for doublet discrimination (cell cycle).

        Parameters
        ----------
        channels
            Role -> channel name, as :meth:`resolve_channels` returns.

        Returns
        -------
        str or None
            ``cellcycle.doublets``: ``auto`` gives the ``dna_width`` channel if resolved, else
            ``dna_height``, else None; ``width`` / ``height`` give that role's channel;
            ``none`` (and apoptosis templates) give None.
        """
        if self.cellcycle is None or self.cellcycle.doublets == "none":
            return None
        order = {"auto": ("dna_width", "dna_height"), "width": ("dna_width",),
                 "height": ("dna_height",)}[self.cellcycle.doublets]
        return next((channels[r] for r in order if r in channels), None)

    def __hash__(self) -> int:
        # the mappings are read-only views; hash the content, as equality compares it
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        """The template as a plain, JSON- and YAML-safe dict (the YAML schema's shape)."""
        pre = self.pregates
        doc: dict[str, Any] = {
            "schema": self.schema,
            "name": self.name,
            "description": self.description,
            "assay": self.assay,
            "channels": {role: list(aliases) for role, aliases in self.channels.items()},
            "compensation": {"source": self.compensation.source}
            | ({"path": self.compensation.path} if self.compensation.path else {}),
            "transforms": {role: dict(spec) for role, spec in self.transforms.items()},
            "pregates": {
                "debris": _step_to_dict(pre.debris, "debris"),
                "singlets": _step_to_dict(pre.singlets, "singlets"),
                "gatingml": None if pre.gatingml is None
                else {"path": pre.gatingml.path, "gate": pre.gatingml.gate},
                "flowjo": None if pre.flowjo is None
                else {"path": pre.flowjo.path, "gate": pre.flowjo.gate, "group": pre.flowjo.group,
                      "sample": pre.flowjo.sample},
            },
        }
        if self.thresholds is not None:
            t = self.thresholds
            doc["thresholds"] = {
                "method": t.method, "percentile": t.percentile, "control": t.control,
                "annexin": t.annexin, "pi": t.pi,
            }
        if self.cellcycle is not None:
            c = self.cellcycle
            doc["cellcycle"] = {"bins": c.bins, "doublets": c.doublets, "model": c.model}
        return doc


def _step_to_dict(step: GateSpec, which: str) -> dict[str, Any]:
    (xkey, _), (ykey, _) = _STEP_AXES[which]
    out: dict[str, Any] = {"method": step.method, xkey: step.x, ykey: step.y}
    if step.ranges is not None:
        (x0, x1), (y0, y1) = step.ranges
        out.update(x_min=x0, x_max=x1, y_min=y0, y_max=y1)
    if step.vertices is not None:
        out["vertices"] = [list(v) for v in step.vertices]
    if step.k is not None:
        out["k"] = step.k
    return out


# ----------------------------------------------------------------------- parsing
def _parse_channels(ctx: _Ctx, value: Any) -> dict[str, tuple[str, ...]]:
    body = ctx.mapping(value, "channels", CHANNEL_ROLES)
    out: dict[str, tuple[str, ...]] = {}
    for role, aliases in body.items():
        key = f"channels.{role}"
        if not isinstance(aliases, list) or not aliases:
            ctx.fail(key, aliases, "must be a non-empty list of channel names or labels")
        out[role] = tuple(ctx.string(a, f"{key}[{i}]") for i, a in enumerate(aliases))
    return out


def _resolve_path(ctx: _Ctx, value: Any, key: str, base: Path | None) -> str:
    text = ctx.string(value, key)
    if "\0" in text:
        ctx.fail(key, value, "contains a NUL character; write the file's path")
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def _parse_compensation(ctx: _Ctx, value: Any, base: Path | None) -> CompensationSpec:
    body = {} if value is None else ctx.mapping(value, "compensation", ("source", "path"))
    source = ctx.string(body.get("source", "file"), "compensation.source", choices=_COMPENSATION_SOURCES)
    path = body.get("path")
    if source == "matrix":
        if path is None:
            ctx.fail("compensation.path", None, "is required with source: matrix")
        return CompensationSpec("matrix", _resolve_path(ctx, path, "compensation.path", base))
    if path is not None:
        ctx.fail("compensation.path", path, f"is only used with source: matrix, not {source}")
    return CompensationSpec(cast(Any, source))


def _parse_transforms(ctx: _Ctx, value: Any, roles: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    body = {} if value is None else ctx.mapping(value, "transforms", None)
    out: dict[str, dict[str, Any]] = {}
    for role, spec in body.items():
        if role not in roles:
            ctx.fail(
                f"transforms.{role}", spec,
                f"names a role that is not under channels; roles are {', '.join(roles)}",
            )
        out[role] = _transform_spec(ctx, spec, f"transforms.{role}")
    return out


def _parse_step(ctx: _Ctx, pregates: Mapping[str, Any], which: str, roles: Mapping[str, Any]) -> GateSpec:
    key = f"pregates.{which}"
    (xkey, xdef), (ykey, ydef) = _STEP_AXES[which]
    methods = _DEBRIS_METHODS if which == "debris" else _SINGLET_METHODS
    allowed = ("method", xkey, ykey, "x_min", "x_max", "y_min", "y_max", "vertices", "k")
    value = pregates.get(which)  # absent or null: no gate
    body = {} if value is None else ctx.mapping(value, key, allowed)
    method = ctx.string(body.get("method", "none"), f"{key}.method", choices=methods)
    x = ctx.string(body.get(xkey, xdef), f"{key}.{xkey}", choices=CHANNEL_ROLES)
    y = ctx.string(body.get(ykey, ydef), f"{key}.{ykey}", choices=CHANNEL_ROLES)
    used = {k for k in body if k not in ("method", xkey, ykey)}
    own = {
        "auto": {"k"}, "rectangle": {"x_min", "x_max", "y_min", "y_max"},
        "polygon": {"vertices"}, "none": set(),
    }[method]
    extra = sorted(used - own)
    if extra:
        ctx.fail(
            f"{key}.{extra[0]}", body[extra[0]],
            f"does not apply to method {method}; that method takes "
            f"{', '.join(sorted(own)) or 'no options'}",
        )
    if method != "none":
        for axis_key, role in ((xkey, x), (ykey, y)):
            if role not in roles:
                ctx.fail(
                    f"{key}.{axis_key}", role,
                    f"is not a role under channels; add channels.{role} or pick one of "
                    f"{', '.join(roles)}",
                )
    ranges = None
    vertices = None
    k = None
    if method == "rectangle":
        names = ("x_min", "x_max", "y_min", "y_max")
        bounds = [ctx.optional_number(body.get(b), f"{key}.{b}") for b in names]
        if all(b is None for b in bounds):
            ctx.fail(key, value, "a rectangle needs at least one of x_min, x_max, y_min, y_max")
        for lo, hi, name in ((bounds[0], bounds[1], "x"), (bounds[2], bounds[3], "y")):
            if lo is not None and hi is not None and lo >= hi:
                ctx.fail(f"{key}.{name}_min", lo, f"must be below {name}_max = {hi}")
        ranges = ((bounds[0], bounds[1]), (bounds[2], bounds[3]))
    elif method == "polygon":
        raw = body.get("vertices")
        if not isinstance(raw, list) or len(raw) < 3:
            ctx.fail(f"{key}.vertices", raw, "a polygon needs a list of at least 3 [x, y] points")
        pts = []
        for i, pt in enumerate(raw):
            if not isinstance(pt, list) or len(pt) != 2:
                ctx.fail(f"{key}.vertices[{i}]", pt, "must be an [x, y] pair")
            pts.append((ctx.number(pt[0], f"{key}.vertices[{i}][0]"),
                        ctx.number(pt[1], f"{key}.vertices[{i}][1]")))
        twice_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))
        if not twice_area or not math.isfinite(twice_area):
            ctx.fail(f"{key}.vertices", raw, "the polygon has no area (its points are on one line); "
                                             "give at least 3 points that enclose the cells")
        vertices = tuple(pts)
    elif method == "auto" and body.get("k") is not None:
        k = ctx.number(body["k"], f"{key}.k", positive=True)
    return GateSpec(cast(Any, method), x, y, ranges, vertices, k)


def _parse_pregates(ctx: _Ctx, value: Any, roles: Mapping[str, Any], base: Path | None) -> PregateSpecs:
    body = {} if value is None else ctx.mapping(value, "pregates", _PREGATE_KEYS)
    debris = _parse_step(ctx, body, "debris", roles)
    singlets = _parse_step(ctx, body, "singlets", roles)
    gml = body.get("gatingml")
    gml_spec = None
    if gml is not None:
        gbody = ctx.mapping(gml, "pregates.gatingml", ("path", "gate"))
        for needed in ("path", "gate"):
            if needed not in gbody:
                ctx.fail(f"pregates.gatingml.{needed}", None, "is required (the file and the gate id)")
        gml_spec = GatingMLSpec(
            _resolve_path(ctx, gbody["path"], "pregates.gatingml.path", base),
            ctx.string(gbody["gate"], "pregates.gatingml.gate"),
        )
    fj = body.get("flowjo")
    fj_spec = None if fj is None else _parse_flowjo(ctx, fj, base)
    if gml_spec is not None and fj_spec is not None:
        ctx.fail(
            "pregates.flowjo", fj,
            "a template imports one cell gate; give pregates.gatingml or pregates.flowjo, not both",
        )
    return PregateSpecs(debris, singlets, gml_spec, fj_spec)


def _parse_flowjo(ctx: _Ctx, value: Any, base: Path | None) -> FlowJoSpec:
    key = "pregates.flowjo"
    body = ctx.mapping(value, key, _FLOWJO_KEYS)
    for needed in ("path", "gate"):
        if body.get(needed) is None:
            ctx.fail(
                f"{key}.{needed}", None,
                "is required (the .wsp file, and the gate name or path such as Cells/Singlets)",
            )
    gate = ctx.string(body["gate"], f"{key}.gate").strip()
    steps = gate.strip("/").split("/")
    if any(not s.strip() for s in steps):
        ctx.fail(f"{key}.gate", gate, "has an empty step; write a gate name or a path like Cells/Singlets")
    group = body.get("group")
    group = FLOWJO_DEFAULT_GROUP if group is None else ctx.string(group, f"{key}.group")
    sample = body.get("sample")
    if sample is not None:
        sample = ctx.string(sample, f"{key}.sample")
    return FlowJoSpec(_resolve_path(ctx, body["path"], f"{key}.path", base), gate, group, sample)


def _parse_thresholds(ctx: _Ctx, value: Any) -> ThresholdSpec:
    allowed = ("method", "percentile", "control", "annexin", "pi")
    body = {} if value is None else ctx.mapping(value, "thresholds", allowed)
    method = ctx.string(body.get("method", "percentile"), "thresholds.method", choices=_THRESHOLD_METHODS)
    q = ctx.number(body.get("percentile", 99.5), "thresholds.percentile")
    if not 50.0 <= q < 100.0:
        ctx.fail("thresholds.percentile", q, "must lie in [50, 100) (typically 99 or 99.5)")
    control = ctx.string(body.get("control", "unstained"), "thresholds.control", choices=_THRESHOLD_CONTROLS)
    ann = ctx.optional_number(body.get("annexin"), "thresholds.annexin")
    pi = ctx.optional_number(body.get("pi"), "thresholds.pi")
    if method == "fixed":
        for name, v in (("annexin", ann), ("pi", pi)):
            if v is None:
                ctx.fail(f"thresholds.{name}", None, "is required with method: fixed (a data value)")
    elif ann is not None or pi is not None:
        which = "annexin" if ann is not None else "pi"
        ctx.fail(
            f"thresholds.{which}", ann if ann is not None else pi,
            f"fixed values are only used with method: fixed, not {method}",
        )
    if method == "valley" and control != "single_stains":
        ctx.fail(
            "thresholds.control", control,
            "method: valley needs control: single_stains (an unstained control has no valley)",
        )
    return ThresholdSpec(cast(Any, method), q, cast(Any, control), ann, pi)


def _parse_cellcycle(ctx: _Ctx, value: Any) -> CellCycleSettings:
    body = {} if value is None else ctx.mapping(value, "cellcycle", ("bins", "doublets", "model"))
    bins = body.get("bins")
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int)
                             or not _MIN_BINS <= bins <= _MAX_BINS):
        ctx.fail("cellcycle.bins", bins,
                 f"must be null or an integer >= {_MIN_BINS} and <= {_MAX_BINS} (256, 512, 1024)")
    doublets = ctx.string(body.get("doublets", "auto"), "cellcycle.doublets", choices=_DOUBLET_METHODS)
    model = ctx.string(body.get("model", "djf"), "cellcycle.model", choices=_CC_MODELS)
    return CellCycleSettings(bins, cast(Any, doublets), cast(Any, model))


def parse_template(doc: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None) -> Template:
    """Validate a template document (the parsed YAML) and build a :class:`Template`.

    Parameters
    ----------
    doc
        The document, as ``yaml.safe_load`` returns it.
    source
        The file it came from: named in messages, and relative paths in the template
        (``compensation.path``, ``pregates.gatingml.path``, ``pregates.flowjo.path``) are
        resolved against its folder.

    Returns
    -------
    Template

    Raises
    ------
    TemplateError
        Naming the key path, the value and what is allowed, for any unknown key, wrong
        type, unknown method or transform, or missing required entry.
    """
    return _parse_document(doc, source, {})


def _parse_document(doc: Any, source: str | os.PathLike[str] | None, lines: Mapping[str, int]) -> Template:
    """:func:`parse_template`, with the line of each key path for messages."""
    src = "template" if source is None else str(source)
    base = None if source is None else Path(source).resolve().parent
    ctx = _Ctx(src, lines)
    if not isinstance(doc, Mapping):
        ctx.fail("", doc, f"must be a mapping ({_kind(doc)} given); a template is keys and values, "
                          "starting schema: 1, name: ..., assay: ..., channels: ...")
    body = ctx.mapping(doc, "", _TOP_KEYS)
    for needed in ("schema", "name", "assay", "channels"):
        if needed not in body:
            msg = (
                f"{src}: the required key {needed!r} is missing; "
                "a template needs schema, name, assay, channels"
            )
            raise TemplateError(msg)
    schema = body["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int):
        ctx.fail("schema", schema, f"must be the integer {SCHEMA_VERSION}")
    if schema != SCHEMA_VERSION:
        problem = (
            f"is newer than this cytoflow_res reads ({SCHEMA_VERSION}); upgrade cytoflow_res"
            if schema > SCHEMA_VERSION else f"is not a known schema version; use {SCHEMA_VERSION}"
        )
        ctx.fail("schema", schema, problem)
    name = ctx.string(body["name"], "name")
    description = body.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str):
        ctx.fail("description", description, f"must be a string ({_kind(description)} given)")
    assay = ctx.string(body["assay"], "assay", choices=_ASSAYS)
    channels = _parse_channels(ctx, body["channels"])
    for role in ASSAY_ROLES[assay]:
        if role not in channels:
            ctx.fail(f"channels.{role}", None, f"is required for assay: {assay}")
    compensation = _parse_compensation(ctx, body.get("compensation"), base)
    transforms = _parse_transforms(ctx, body.get("transforms"), channels)
    pregates = _parse_pregates(ctx, body.get("pregates"), channels, base)
    thresholds = None
    cellcycle = None
    if assay == "apoptosis":
        if body.get("cellcycle") is not None:
            ctx.fail("cellcycle", body["cellcycle"], "only applies to assay: cellcycle")
        thresholds = _parse_thresholds(ctx, body.get("thresholds"))
    else:
        if body.get("thresholds") is not None:
            ctx.fail("thresholds", body["thresholds"], "only applies to assay: apoptosis")
        cellcycle = _parse_cellcycle(ctx, body.get("cellcycle"))
        if cellcycle.doublets in ("width", "height"):
            role = "dna_width" if cellcycle.doublets == "width" else "dna_height"
            if role not in channels:
                ctx.fail("cellcycle.doublets", cellcycle.doublets, f"needs channels.{role}")
    return Template(
        name=name,
        assay=cast(Assay, assay),
        channels=MappingProxyType(channels),
        description=description.strip(),
        compensation=compensation,
        transforms=MappingProxyType({r: MappingProxyType(s) for r, s in transforms.items()}),
        pregates=pregates,
        thresholds=thresholds,
        cellcycle=cellcycle,
        schema=schema,
        source=None if source is None else str(source),
    )


# ---------------------------------------------------------------------- shipped
def _shipped_dirs() -> list[Path]:
    """Folders holding the shipped templates: inside the installed package, or the checkout's."""
    dirs: list[Path] = []
    try:
        packaged = Path(str(resources.files("cytoflow_res") / "gating_templates"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - zipped or odd installs
        packaged = None
    if packaged is not None and packaged.is_dir():
        dirs.append(packaged)
    if _REPO_TEMPLATES.is_dir() and _REPO_TEMPLATES not in dirs:
        dirs.append(_REPO_TEMPLATES)
    return dirs


def _shipped() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in _shipped_dirs():
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            found.setdefault(path.stem, path)
    return found


def list_templates() -> list[str]:
    """Names of the templates shipped with cytoflow_res, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load_template` (``["accuri_c6", "facscalibur", ...]``).
    """
    return sorted(_shipped())


def load_template(name_or_path: str | os.PathLike[str]) -> Template:
    """Load and validate a template by shipped name or from a YAML file.

    Parameters
    ----------
    name_or_path
        A shipped template's name (see :func:`list_templates`), or the path of a YAML file
        (anything with a ``.yaml``/``.yml`` suffix or a folder separator, or an existing file).

    Returns
    -------
    Template

    Raises
    ------
    TemplateError
        If no such template exists (the message lists the shipped ones), the file is not
        valid YAML, or the content does not follow the schema.
    """
    text = os.fspath(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, os.PathLike)
        or Path(text).suffix.lower() in (".yaml", ".yml")
        or os.sep in text or "/" in text
        or Path(text).is_file()
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if path.is_dir():
            msg = f"{path}: is a folder, not a template file; give the YAML file inside it"
            raise TemplateError(msg)
        if not path.is_file():
            msg = f"{path}: template file not found; give a YAML file or one of {', '.join(list_templates())}"
            raise TemplateError(msg)
    else:
        shipped = _shipped()
        if text not in shipped:
            msg = (
                f"no shipped template named {text!r}; shipped templates are "
                f"{', '.join(sorted(shipped)) or '(none found)'}; or give the path of a YAML file"
            )
            raise TemplateError(msg)
        path = shipped[text]
    doc, lines = _read_yaml(path)
    if doc is None:
        msg = (f"{path}: the template file is empty; start from a shipped template "
               "(`cytoflow-res templates --show generic_modern` prints one)")
        raise TemplateError(msg)
    return _parse_document(doc, path, lines)


# ------------------------------------------------------------------ reading YAML
class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than ``_MAX_DEPTH`` while it scans.

    PyYAML's scanner slows down with the flow depth (``[[[[...``) and its composer recurses
    with the depth, so a deep document is refused at the bracket or indent that goes too far.
    """

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= _MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"more than {_MAX_DEPTH} nested [ ] or {{ }}", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # A scalar the safe constructors choke on (`2024-13-45`, `!!int abc`, `!!bool maybe`)
        # becomes a YAML error at its line, like any other.
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"{_show(node.value)} cannot be read as a {tag} ({exc})", node.start_mark,
            ) from None

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= _MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"more than {_MAX_DEPTH} levels of indentation", self.get_mark())
        return super().add_indent(column)


def _decode(path: Path, data: bytes) -> str:
    """The text of a template: UTF-8 (with or without BOM) or UTF-16/32 with a BOM."""
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    codec = next((name for bom, name in boms if data.startswith(bom)), None)
    if codec is None:
        codec = "utf-8"
        if b"\0" in data:
            msg = (f"{path}: is a binary file, not YAML text (it holds NUL bytes); a template is a "
                   "text file such as gating_templates/generic_modern.yaml")
            raise TemplateError(msg)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        msg = (f"{path} line {line}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at position "
               f"{exc.start}); save the template as UTF-8")
        raise TemplateError(msg) from None


def _read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """The document in ``path`` and the line of each key path, within the bounds above.

    Raises
    ------
    TemplateError
        For a file that is too big, not text, not valid YAML, uses tags or duplicate keys,
        nests too deeply or expands (through aliases) to too many values.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        msg = f"{path}: cannot read the template ({exc.strerror or exc})"
        raise TemplateError(msg) from None
    if len(data) > _MAX_BYTES:
        msg = (f"{path}: is larger than {_MAX_BYTES // 1024} KiB; a template is a few kilobytes of "
               "YAML: check that this is the template file")
        raise TemplateError(msg)
    text = _decode(path, data)
    lines: dict[str, int] = {}
    try:
        loader = _BoundedLoader(text)  # checks for control characters
        try:
            node = loader.get_single_node()
            if node is None:
                return None, lines
            _check_nodes(path, loader, node, lines)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None
    except RecursionError:  # pragma: no cover - the depth bound comes first
        msg = f"{path}: the YAML nests too deeply; a template is a few levels deep"
        raise TemplateError(msg) from None


def _yaml_error(path: Path, text: str, exc: yaml.YAMLError) -> TemplateError:
    """A TemplateError naming the line, PyYAML's complaint and, for common slips, the fix."""
    where = str(path)
    problem = str(exc)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f"{path} line {mark.line + 1}, column {mark.column + 1}"
        problem = exc.problem or exc.context or "unreadable"
        if exc.problem and exc.context:
            started = exc.context_mark
            since = "" if started is None or started.line == getattr(mark, "line", None) \
                else f" that starts on line {started.line + 1}"
            problem = f"{problem} ({exc.context}{since})"
    elif isinstance(exc, yaml.reader.ReaderError):
        where = f"{path} line {text[:exc.position].count(chr(10)) + 1}"
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        problem = f"the control character U+{char:04X} is not allowed in YAML text"
    hint = "fix the YAML syntax (quote values holding ': ' or ' #', close every bracket and quote)"
    if "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    elif "could not determine a constructor" in problem:
        hint = ("tags such as !!python/object are not allowed: a template holds only text, numbers, "
                "lists and mappings; remove the tag")
    elif "nested" in problem or "levels of indentation" in problem:
        hint = "a template is a few levels deep; check the indentation"
    elif "expected a single document" in problem:
        problem = "a second YAML document starts here"
        hint = "a template is one document; remove the extra '---' and what follows"
    elif "undefined alias" in problem:
        hint = "an alias *name needs an anchor &name earlier in the file"
    elif "control character" in problem:
        hint = "delete it (save the template as plain UTF-8 text)"
    elif isinstance(exc, yaml.constructor.ConstructorError):
        hint = "remove the !!tag, or put the value in quotes if it is text"
    msg = f"{where}: not valid YAML: {problem}; {hint}"
    return TemplateError(msg)


def _check_nodes(path: Path, loader: yaml.SafeLoader, root: Node, lines: dict[str, int]) -> None:
    """Refuse duplicate keys and alias bombs; record the line of every key path.

    Aliases make the composed graph share nodes, so its size is linear in the file, while
    the document they expand to can be exponential ("billion laughs"): count the expanded
    size with one visit per node, and refuse a document that refers to itself.
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()

    def line(node: Node) -> int:
        return int(node.start_mark.line) + 1

    def visit(node: Node, key: str) -> int:
        lines.setdefault(key, line(node))
        if id(node) in size:  # an alias of a node seen before: its size, not a second walk
            return size[id(node)]
        if id(node) in open_nodes:
            msg = (f"{path} line {line(node)}: {key or 'the document'} refers to itself through an "
                   "alias (*name inside the &name it names); write the values out")
            raise TemplateError(msg)
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                total += visit(item, f"{key}[{i}]")
        elif isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for knode, vnode in node.value:
                if knode.tag == _MERGE_TAG:  # `<<: *base`: the merged keys, under this path
                    total += visit(vnode, key)
                    continue
                # the key as the document will hold it (`on` is True, `01` is 1), as messages name it
                name = loader.construct_object(knode) if isinstance(knode, ScalarNode) else f"<{knode.id}>"
                child = f"{key}.{name}" if key else str(name)
                if isinstance(knode, ScalarNode) and isinstance(name, Hashable):
                    first = seen.setdefault(name, knode)
                    if first is not knode:
                        msg = (f"{path} line {line(knode)}: key {child!r} is given twice (first on line "
                               f"{line(first)}); keep one (YAML would silently use the last)")
                        raise TemplateError(msg)
                lines.setdefault(child, line(knode))
                total += (1 if isinstance(knode, ScalarNode) else visit(knode, child)) + visit(vnode, child)
        if total > _MAX_VALUES:
            msg = (f"{path} line {line(node)}: {key or 'the document'} expands to more than "
                   f"{_MAX_VALUES:,} values through anchors and aliases (&name / *name); a template "
                   "is small: write the values out")
            raise TemplateError(msg)
        open_nodes.discard(id(node))
        size[id(node)] = total
        return total

    visit(root, "")
