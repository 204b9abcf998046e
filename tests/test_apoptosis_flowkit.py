"""Same counts as flowkit for the same compensation, transform and gates on the same file.

Our Annexin V / PI pipeline places its own gates on each sample (an automatic debris
threshold on FSC-A, an automatic singlet band on FSC-A/FSC-H, quadrant thresholds from the
unstained control). These tests take the gates it actually placed, rebuild them as a flowkit
``GatingStrategy`` (debris gate -> singlets -> quadrant gate on the compensated Annexin V and
PI channels, the same spillover matrix as a flowkit ``Matrix``), run flowkit's ``Session``
on the same FCS file and require event-for-event identical membership of every gate and
identical quadrant counts. flowkit is the reference implementation of Gating-ML 2.0 gates.

Each comparison is made twice: in data units (no transform), and with a logicle transform
on both sides: flowkit applies ``LogicleTransform`` to the gate's dimensions and gets its gate
coordinates through its own transform, we apply ``make_transform`` logicle and convert our
coordinates with it; both must still select exactly the events the pipeline selected in data
units. Only one-dimensional boundaries (range thresholds, quadrant dividers) are converted:
a polygon's straight edges are not straight on a logicle scale, so a polygon with converted
vertices would be a different gate; the singlet polygon stays in data units in both.

Boundary conventions (ours: ``gating/gates.py``; flowkit: ``_models/gates/_gates.py`` and
flowutils' ``points_in_polygon``) agree: ranges and quadrants are ``min <= x < max`` in both
(a value equal to a quadrant divider is on the upper side), and on the polygons of these
tests flowkit's winding-number test puts events on an edge or vertex on the same side as our
half-open crossing rule. The last test places thresholds, rectangle bounds and polygon
vertices exactly on event values, so that those conventions are exercised on real events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cytoflow_res as cr
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import QUADRANTS, ApoptosisGating, ApoptosisResult
from cytoflow_res.gating import Gate, PolygonGate, QuadrantGate, RangeGate, RectangleGate
from cytoflow_res.gating.templates import GateSpec, Template, load_template
from cytoflow_res.transforms import make_transform
from tests.conftest import REPO_ROOT, shared_file

fk = pytest.importorskip("flowkit")

LOGICLE = {"type": "logicle", "t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}
SPACES = ("data", "logicle")
STAINS = "stains"
LSR = "CytoExploreRData_Compensation-{}.fcs"
EXAMPLE = REPO_ROOT / "example_fcs" / "apoptosis"
QUADRANT_GATE = "quadrants"


# ---------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Analysed:
    """One file through our pipeline, and the same file read by flowkit."""

    path: Path
    template: Template
    raw: cr.Sample
    result: ApoptosisResult
    fk_sample: Any


def _analyse(path: Path, unstained: Path, template: Template) -> Analysed:
    raw = cr.read_fcs(path)
    gating = ApoptosisGating.prepare(template, unstained=cr.read_fcs(unstained))
    return Analysed(path, template, raw, gating.analyze(raw), fk.Sample(str(path)))


def _with_channels(template: Template, **roles: str) -> Template:
    channels = {**template.channels, **{role: (name,) for role, name in roles.items()}}
    return dataclasses.replace(template, channels=channels)


def _simulated(tmp: Path) -> Analysed:
    # a treated arm: every quadrant well populated
    spec = sim.ApoptosisSpec(n_events=20_000, viable=0.55, early_apoptotic=0.20, late_apoptotic=0.18,
                             necrotic=0.07)
    sim.write_apoptosis_sample(tmp / "treated.fcs", spec, seed=11, dialect="modern")
    sim.write_apoptosis_sample(tmp / "unstained.fcs", sim.apoptosis_control_spec("unstained", spec), seed=12,
                               dialect="modern")
    return _analyse(tmp / "treated.fcs", tmp / "unstained.fcs", load_template("generic_modern"))


def _lsr2(pi_channel: str) -> Analysed:
    # Real BD LSR II single-stain control (mouse T cells, Alexa Fluor 488), compensated with its
    # own $SPILL; Alexa Fluor 488-A plays Annexin V and PE-A or 7-AAD-A plays PI, with
    # thresholds from the matching unstained control.
    path = shared_file(STAINS, LSR.format("FITC"))
    unstained = shared_file(STAINS, LSR.format("Unstained"))
    template = _with_channels(load_template("generic_modern"), annexin="Alexa Fluor 488-A", pi=pi_channel)
    return _analyse(path, unstained, template)


CASES = [
    "simulated",
    "example",
    pytest.param("lsr2_PE-A", marks=pytest.mark.shared),
    pytest.param("lsr2_7-AAD-A", marks=pytest.mark.shared),
]


@pytest.fixture(scope="module", params=CASES)
def analysed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    case = request.param
    if case == "simulated":
        return _simulated(tmp_path_factory.mktemp("apoptosis_flowkit"))
    if case == "example":
        return _analyse(EXAMPLE / "parental_drugA+drugB_r1.fcs", EXAMPLE / "parental_unstained.fcs",
                        load_template("generic_modern"))
    return _lsr2(case.removeprefix("lsr2_"))


# ------------------------------------------------------------------- both implementations
def _ours_logicle(values: Any) -> np.ndarray:
    return make_transform(LOGICLE).apply(np.asarray(values, dtype=np.float64))


def _fk_logicle() -> Any:
    return fk.transforms.LogicleTransform(LOGICLE["t"], LOGICLE["w"], LOGICLE["m"], LOGICLE["a"])


def _fk_coordinate(value: float | None, logicle: bool) -> float | None:
    """A data-unit coordinate on flowkit's scale, converted by flowkit's own transform.

    Our logicle and flowutils' differ by at most 1 ulp (2e-16 on the [0, 1] scale), so each
    side converts its coordinates with the transform it applies to the events; an event
    exactly on a boundary then lands on the same side of it in both.
    """
    if value is None or not logicle:
        return value
    return float(_fk_logicle().apply(np.array([value], dtype=np.float64))[0])


def _ours_coordinate(value: float | None, logicle: bool) -> float | None:
    if value is None or not logicle:
        return value
    return float(_ours_logicle([value])[0])


def _fk_gate(name: str, gate: Gate | None, *, logicle: bool) -> Any:
    """Our pre-gate as a flowkit gate (a RangeGate becomes a one-dimensional RectangleGate)."""
    xform = "logicle" if logicle else None
    if isinstance(gate, RangeGate):
        assert isinstance(gate.dimension, str)
        dims = [fk.Dimension(gate.dimension, transformation_ref=xform,
                             range_min=_fk_coordinate(gate.min, logicle),
                             range_max=_fk_coordinate(gate.max, logicle))]
        return fk.gates.RectangleGate(name, dims)
    if isinstance(gate, RectangleGate):
        dims = [fk.Dimension(d, transformation_ref=xform, range_min=_fk_coordinate(lo, logicle),
                             range_max=_fk_coordinate(hi, logicle))
                for d, (lo, hi) in zip(gate.dimensions, gate.ranges, strict=True)]
        return fk.gates.RectangleGate(name, dims)
    if isinstance(gate, PolygonGate):
        # data units on both sides: see the module docstring
        return fk.gates.PolygonGate(name, [fk.Dimension(d) for d in gate.dimensions],
                                    [list(v) for v in gate.vertices])
    msg = f"no flowkit equivalent written for the {name} gate {gate!r}"
    raise TypeError(msg)


def _side(cut: float | None, positive: bool) -> list[float | None]:
    return [cut, None] if positive else [None, cut]


def flowkit_strategy(result: ApoptosisResult, *, logicle: bool) -> Any:
    """The gates our pipeline placed on ``result``'s sample, as a flowkit GatingStrategy."""
    strategy = fk.GatingStrategy()
    comp_ref = "uncompensated"
    if result.compensation is not None:
        comp = result.compensation
        strategy.add_comp_matrix("ours", fk.Matrix(np.array(comp.spillover), list(comp.channels)))
        comp_ref = "ours"
    if logicle:
        strategy.add_transform("logicle", _fk_logicle())
    gates = result.pregate.gates
    assert gates["gatingml"] is None  # cells = debris gate alone in these templates
    strategy.add_gate(_fk_gate("debris", gates["debris"], logicle=logicle), ("root",))
    strategy.add_gate(_fk_gate("singlets", gates["singlets"], logicle=False), ("root", "debris"))
    cuts = {"annexin": _fk_coordinate(result.thresholds.annexin, logicle),
            "pi": _fk_coordinate(result.thresholds.pi, logicle)}
    dividers = [
        fk.QuadrantDivider(role, result.channels[role], comp_ref, [cuts[role]],
                           transformation_ref="logicle" if logicle else None)
        for role in ("annexin", "pi")
    ]
    quadrants = [
        fk.gates.Quadrant(name, ["annexin", "pi"], [_side(cuts["annexin"], ann), _side(cuts["pi"], pi)])
        for name, (ann, pi) in QUADRANTS.items()
    ]
    strategy.add_gate(fk.gates.QuadrantGate(QUADRANT_GATE, dividers, quadrants),
                      ("root", "debris", "singlets"))
    return strategy


def flowkit_run(analysed: Analysed, *, logicle: bool) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """flowkit's membership of every gate, and the counts of its analysis report."""
    session = fk.Session(gating_strategy=flowkit_strategy(analysed.result, logicle=logicle),
                         fcs_samples=analysed.fk_sample)
    session.analyze_samples(use_mp=False)
    sample_id = analysed.fk_sample.id
    names = ["debris", "singlets", *QUADRANTS]
    membership = {n: np.asarray(session.get_gate_membership(sample_id, n), dtype=bool) for n in names}
    report = session.get_analysis_report()
    counts = {str(row.gate_name): int(row.count) for row in report.itertuples()}
    return membership, counts


def ours_rerun(result: ApoptosisResult, *, logicle: bool) -> dict[str, np.ndarray]:
    """Our gates re-applied by our gate classes, on logicle values with converted coordinates."""
    sample = result.sample  # compensated
    debris = result.pregate.gates["debris"]
    singlets = result.pregate.gates["singlets"]
    assert debris is not None and singlets is not None

    def column(name: str) -> np.ndarray:
        values = np.asarray(sample.column(name), dtype=np.float64)
        return _ours_logicle(values) if logicle else values

    if isinstance(debris, RangeGate):
        assert isinstance(debris.dimension, str)
        gate = RangeGate("t", _ours_coordinate(debris.min, logicle), _ours_coordinate(debris.max, logicle))
        cells = gate.apply({"t": column(debris.dimension)})
    elif isinstance(debris, RectangleGate):
        ranges = tuple((_ours_coordinate(lo, logicle), _ours_coordinate(hi, logicle))
                       for lo, hi in debris.ranges)
        dims = tuple(str(d) for d in debris.dimensions)
        cells = RectangleGate(dims, ranges).apply({d: column(d) for d in dims})
    else:
        cells = debris.apply(sample)
    single = cells & singlets.apply(sample)
    ann, pi = result.channels["annexin"], result.channels["pi"]
    cuts = (_ours_coordinate(result.thresholds.annexin, logicle),
            _ours_coordinate(result.thresholds.pi, logicle))
    # QuadrantGate names in index order: x-y-, x+y-, x-y+, x+y+ (Annexin V on x, PI on y)
    quad = QuadrantGate(("annexin", "pi"), cuts,
                        names=("viable", "early_apoptotic", "necrotic", "late_apoptotic"))
    values = {"annexin": column(ann), "pi": column(pi)}
    return {"debris": cells, "singlets": single, **{q: single & quad.apply(values, q) for q in QUADRANTS}}


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("space", SPACES)
def test_every_gate_selects_the_same_events_as_flowkit(analysed: Analysed, space: str) -> None:
    result = analysed.result
    logicle = space == "logicle"
    ours = ours_rerun(result, logicle=logicle)
    theirs, report = flowkit_run(analysed, logicle=logicle)

    # our re-run is the pipeline: same pre-gate masks, same quadrant counts
    np.testing.assert_array_equal(ours["debris"], result.pregate.cells)
    np.testing.assert_array_equal(ours["singlets"], result.pregate.singlets)
    assert {q: int(ours[q].sum()) for q in QUADRANTS} == dict(result.counts)
    # and flowkit selects the very same events, gate by gate
    for name, mask in ours.items():
        np.testing.assert_array_equal(theirs[name], mask, err_msg=f"{name} ({space})")
    assert {q: report[q] for q in QUADRANTS} == dict(result.counts)
    assert report["debris"] == result.pregate.events_cells
    assert report["singlets"] == result.pregate.events_singlets
    # not a vacuous comparison: every gate removed events, every quadrant has some
    n = result.pregate.events_total
    assert n > result.pregate.events_cells > result.pregate.events_singlets > 0
    assert all(c > 0 for c in result.counts.values()), result.counts


def test_flowkit_reads_and_compensates_the_same_values(analysed: Analysed) -> None:
    # the precondition of identical membership: the same scale values, the same compensation
    fk_sample = analysed.fk_sample
    np.testing.assert_array_equal(fk_sample.get_events(source="raw"), np.asarray(analysed.raw.events, float))
    comp = analysed.result.compensation
    assert comp is not None and comp.source == "file"
    matrix = fk.Matrix(np.array(comp.spillover), list(comp.channels))
    np.testing.assert_array_equal(matrix.apply(fk_sample), np.asarray(analysed.result.sample.events))


# ----------------------------------------------------------- events exactly on a boundary
def _nearest_event(x: np.ndarray, y: np.ndarray, target: tuple[float, float]) -> int:
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.hypot(np.log10(x / target[0]), np.log10(y / target[1]))
    return int(np.nanargmin(np.where(np.isfinite(d), d, np.nan)))


def _boundary_debris(raw: cr.Sample, channels: Mapping[str, str], kind: str) -> tuple[GateSpec, np.ndarray]:
    """A fixed debris gate whose bounds or vertices are events' own values, and those events."""
    fsc = np.asarray(raw.column(channels["fsc_a"]), dtype=np.float64)
    ssc = np.asarray(raw.column(channels["ssc_a"]), dtype=np.float64)
    if kind == "rectangle":
        lo = float(np.sort(fsc)[fsc.size // 10])  # an event's FSC-A: on the (inclusive) lower edge
        hi = float(np.sort(ssc)[int(ssc.size * 0.995)])  # an event's SSC-A: on the (exclusive) top
        on_edge = (fsc == lo) | (ssc == hi)
        return GateSpec("rectangle", "fsc_a", "ssc_a", ranges=((lo, None), (None, hi))), on_edge
    mx, my = float(np.median(fsc)), float(np.median(ssc))
    corners = [(0.45, 0.3), (2.5, 0.3), (2.5, 4.0), (0.6, 4.0), (0.35, 1.2)]
    picks = [_nearest_event(fsc, ssc, (mx * a, my * b)) for a, b in corners]
    vertices = tuple((float(fsc[i]), float(ssc[i])) for i in picks)
    on_vertex = np.zeros(fsc.size, dtype=bool)
    for vx, vy in vertices:
        on_vertex |= (fsc == vx) & (ssc == vy)
    return GateSpec("polygon", "fsc_a", "ssc_a", vertices=vertices), on_vertex


@pytest.mark.parametrize(("kind", "space"), [("rectangle", "data"), ("rectangle", "logicle"),
                                             ("polygon", "data")])
def test_events_exactly_on_a_boundary_fall_on_the_same_side(analysed: Analysed, kind: str,
                                                            space: str) -> None:
    raw, base = analysed.raw, analysed.template
    channels = base.resolve_channels(raw)
    spec, on_debris_edge = _boundary_debris(raw, channels, kind)
    template = dataclasses.replace(base, pregates=dataclasses.replace(base.pregates, debris=spec))
    first = ApoptosisGating.prepare(template, thresholds=(0.0, 0.0)).analyze(raw)
    # thresholds equal to the compensated values of two analysed cells
    ann = np.asarray(first.sample.column(channels["annexin"]), dtype=np.float64)
    pi = np.asarray(first.sample.column(channels["pi"]), dtype=np.float64)
    cells = np.flatnonzero(first.pregate.singlets)
    t_ann = float(ann[cells[np.argsort(ann[cells])[cells.size * 9 // 10]]])
    t_pi = float(pi[cells[np.argsort(pi[cells])[cells.size * 8 // 10]]])
    result = ApoptosisGating.prepare(template, thresholds=(t_ann, t_pi)).analyze(raw)
    np.testing.assert_array_equal(result.pregate.singlets, first.pregate.singlets)
    on_divider = result.pregate.singlets & ((ann == t_ann) | (pi == t_pi))
    assert on_divider.sum() >= 2 and on_debris_edge.sum() >= (2 if kind == "rectangle" else 5)

    logicle = space == "logicle"
    boundary = dataclasses.replace(analysed, template=template, result=result)
    ours = ours_rerun(result, logicle=logicle)
    theirs, report = flowkit_run(boundary, logicle=logicle)
    np.testing.assert_array_equal(ours["debris"], result.pregate.cells)
    for name, mask in ours.items():
        np.testing.assert_array_equal(theirs[name], mask, err_msg=f"{name} ({kind}, {space})")
    assert {q: report[q] for q in QUADRANTS} == dict(result.counts)
    # where the boundary events went (flowkit put them on the same sides, above): on a divider
    # is positive,
    single = result.pregate.singlets
    ann_pos = ours["early_apoptotic"] | ours["late_apoptotic"]
    pi_pos = ours["late_apoptotic"] | ours["necrotic"]
    assert ann_pos[single & (ann == t_ann)].all() and pi_pos[single & (pi == t_pi)].all()
    kept = ours["debris"]
    if kind == "rectangle":
        # a lower bound is in, an upper bound out
        assert spec.ranges is not None
        lo, hi = spec.ranges[0][0], spec.ranges[1][1]
        fsc = np.asarray(raw.column(channels["fsc_a"]), dtype=np.float64)
        ssc = np.asarray(raw.column(channels["ssc_a"]), dtype=np.float64)
        assert ((fsc == lo) & (ssc < hi)).any()
        assert kept[(fsc == lo) & (ssc < hi)].all() and not kept[ssc == hi].any()
    else:
        # events on polygon vertices: some in, some out (the half-open rule), the same in flowkit
        assert 0 < kept[on_debris_edge].sum() < on_debris_edge.sum()
