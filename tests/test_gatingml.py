"""Gating-ML 2.0: the ISAC compliance set, flowkit as a second opinion, and the reader's errors.

The compliance set (data1.fcs, gml/*.xml, truth/Results_<id>.txt) lives in the shared data
folder; see ``tests/conftest.py``. Every gate of every file that has a truth file must give
the truth's mask event for event, and the same mask as flowkit's own implementation.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoflow_res import Sample, TemplateError, read_fcs
from cytoflow_res.gating import (
    AsinhTransform,
    BooleanGate,
    EllipseGate,
    EllipsoidGate,
    GmlDimension,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    PolygonGate,
    RangeGate,
    RatioTransform,
    RectangleGate,
    SpectrumMatrix,
    apply_gatingml,
    read_gatingml,
)
from cytoflow_res.sample import Channel
from tests.conftest import shared_file

REF = "gatingml_ref"

# Gate ids of each compliance file that have a truth file. Quadrant gates contribute their
# quadrants (Quadrant1/Quadrant2 themselves are not gates with a population); myEllipse2
# in gml_ellipse2_gate.xml has no truth file and is checked against flowkit only.
FILE_GATES: dict[str, tuple[str, ...]] = {
    "gml_all_gates.xml": (
        "Range1", "Rectangle1", "Rectangle2", "Polygon1", "Ellipse1", "Range2", "Polygon2",
        "FL2P-FL4P", "FL2N-FL4P", "FL2N-FL4N", "FL2P-FL4N", "Polygon3NS", "RatRange1", "RatRange2",
        "RatRange1a", "FSCN-SSCN", "FSCD-SSCN-FL1N", "FSCP-SSCN-FL1N", "FSCD-FL1P", "FSCN-SSCP-FL1P",
        "And1", "And2", "Or1", "And3", "Not1", "And4", "Or2", "Polygon4", "Rectangle3", "Rectangle4",
        "Rectangle5", "ScaleRange1", "ScaleRange2", "ScaleRange3", "ScaleRange4", "ScaleRange5",
        "ScaleRange6", "ScaleRange1c", "ScaleRange2c", "ScaleRange3c", "ScaleRange4c", "ScaleRange5c",
        "ScaleRect1", "ParAnd2", "ParAnd3", "ScalePar1", "ScaleRange6c", "ScaleRange7c", "ScaleRange8c",
    ),
    "gml_boolean_and1_gate.xml": ("Polygon1", "Range2", "And1"),
    "gml_boolean_and2_gate.xml": ("Polygon1", "Ellipse1", "Range1", "And2"),
    "gml_boolean_and3_complement_gate.xml": ("Polygon1", "Ellipse1", "Range1", "And3"),
    "gml_boolean_and4_not_gate.xml": ("Polygon1", "Ellipse1", "Range1", "Not1", "And4"),
    "gml_boolean_not1_gate.xml": ("Ellipse1", "Not1"),
    "gml_boolean_or1_gate.xml": ("Polygon1", "Ellipse1", "Range1", "Or1"),
    "gml_boolean_or2_gate.xml": ("Rectangle2", "FL2P-FL4P", "FL2N-FL4P", "FL2N-FL4N", "FL2P-FL4N", "Or2"),
    "gml_ellipse1_gate.xml": ("Ellipse1",),
    "gml_ellipse2_gate.xml": (),
    "gml_ellipsoid3d_gate.xml": ("Ellipsoid3D",),
    "gml_log_ratio_range1_gate.xml": ("RatRange1a",),
    "gml_matrix_poly4_gate.xml": ("Polygon4",),
    "gml_matrix_rect3_gate.xml": ("Rectangle3",),
    "gml_matrix_rect4_gate.xml": ("Rectangle4",),
    "gml_matrix_rect5_gate.xml": ("Rectangle5",),
    "gml_matrix_transform_asinh_range1c_gate.xml": ("ScaleRange1c",),
    "gml_matrix_transform_asinh_range6c_gate.xml": ("ScaleRange6c",),
    "gml_matrix_transform_hyperlog_range2c_gate.xml": ("ScaleRange2c",),
    "gml_matrix_transform_hyperlog_range7c_gate.xml": ("ScaleRange7c",),
    "gml_matrix_transform_linear_range3c_gate.xml": ("ScaleRange3c",),
    "gml_matrix_transform_logicle_range4c_gate.xml": ("ScaleRange4c",),
    "gml_matrix_transform_logicle_range5c_gate.xml": ("ScaleRange5c",),
    "gml_matrix_transform_logicle_range8c_gate.xml": ("ScaleRange8c",),
    "gml_matrix_transform_logicle_rect1_gate.xml": ("ScaleRect1",),
    "gml_parent_poly1_boolean_and2_gate.xml": ("Polygon1", "Ellipse1", "Range1", "ParAnd2"),
    "gml_parent_quadrant_rect_gate.xml": (
        "FL2P-FL4P", "FL2N-FL4P", "FL2N-FL4N", "FL2P-FL4N", "ParRectangle1",
    ),
    "gml_parent_range1_boolean_and3_gate.xml": ("Polygon1", "Ellipse1", "Range1", "ParAnd3"),
    "gml_parent_rect1_rect_par1_gate.xml": ("ScaleRect1", "ScalePar1"),
    "gml_poly1_gate.xml": ("Polygon1",),
    "gml_poly2_gate.xml": ("Polygon2",),
    "gml_poly3ns_gate.xml": ("Polygon3NS",),
    "gml_quadrant1_gate.xml": ("FL2P-FL4P", "FL2N-FL4P", "FL2N-FL4N", "FL2P-FL4N"),
    "gml_quadrant2_gate.xml": (
        "FSCN-SSCN", "FSCD-SSCN-FL1N", "FSCP-SSCN-FL1N", "FSCD-FL1P", "FSCN-SSCP-FL1P",
    ),
    "gml_range_gate.xml": ("Range1",),
    "gml_range_gate_attr_testing.xml": ("Range1",),
    "gml_ratio_range1_gate.xml": ("RatRange1",),
    "gml_ratio_range2_gate.xml": ("RatRange2",),
    "gml_rect1_gate.xml": ("Rectangle1",),
    "gml_rect2_gate.xml": ("Rectangle2",),
    "gml_time_range_gate.xml": ("Range2",),
    "gml_transform_asinh_range1_gate.xml": ("ScaleRange1",),
    "gml_transform_hyperlog_range2_gate.xml": ("ScaleRange2",),
    "gml_transform_linear_range3_gate.xml": ("ScaleRange3",),
    "gml_transform_log_range6_gate.xml": ("ScaleRange6",),
    "gml_transform_logicle_range4_gate.xml": ("ScaleRange4",),
    "gml_transform_logicle_range5_gate.xml": ("ScaleRange5",),
}
NO_TRUTH = {"gml_ellipse2_gate.xml": ("myEllipse2",)}
# The truth file of a gate is Results_<id>.txt, except for this one (as in flowkit's own tests).
TRUTH_NAME = {"ParRectangle1": "ParQuadRect"}
# flowkit validates against the XSD and rejects this file (a non-Gating-ML <sample> element
# wraps the gate); we read it, leniently, and it matches the truth.
FLOWKIT_REJECTS = {"gml_range_gate_attr_testing.xml"}

TRUTH_CASES = [(f, g) for f, ids in FILE_GATES.items() for g in ids]
FLOWKIT_CASES = [
    (f, g)
    for f, ids in {**FILE_GATES, **NO_TRUTH}.items()
    if f not in FLOWKIT_REJECTS
    for g in (ids or NO_TRUTH.get(f, ()))
]


def _case_id(case: tuple[str, str]) -> str:
    return f"{case[0].removeprefix('gml_').removesuffix('.xml')}:{case[1]}"


@cache
def _gates(path: Path) -> dict[str, Any]:
    return read_gatingml(path)


@cache
def _sample(path: Path) -> Sample:
    return read_fcs(path)


@cache
def _truth(path: Path) -> np.ndarray:
    values = np.loadtxt(path, dtype=np.int64)
    assert set(np.unique(values).tolist()) <= {0, 1}, f"{path} holds values other than 0 and 1"
    return values.astype(bool)


@pytest.fixture(scope="module")
def data1() -> Sample:
    return _sample(shared_file(REF, "data1.fcs"))


def _truth_for(gate_id: str) -> np.ndarray:
    return _truth(shared_file(REF, "truth", f"Results_{TRUTH_NAME.get(gate_id, gate_id)}.txt"))


# ------------------------------------------------------------------ compliance truth


@pytest.mark.shared
@pytest.mark.parametrize("case", TRUTH_CASES, ids=_case_id)
def test_mask_equals_compliance_truth(case: tuple[str, str], data1: Sample) -> None:
    fname, gate_id = case
    gates = _gates(shared_file(REF, "gml", fname))
    truth = _truth_for(gate_id)
    mask = apply_gatingml(gates, data1, gate_id)
    assert mask.dtype == bool and mask.shape == (data1.n_events,) == truth.shape
    wrong = np.flatnonzero(mask != truth)
    assert wrong.size == 0, f"{gate_id}: {wrong.size} events differ from the truth, first {wrong[:10]}"


@pytest.mark.shared
def test_case_table_covers_every_gate_and_truth_file() -> None:
    gml_dir = shared_file(REF, "gml")
    files = sorted(p.name for p in gml_dir.glob("*.xml"))
    assert files == sorted(FILE_GATES)
    for fname in files:
        read = set(_gates(gml_dir / fname))
        assert read == set(FILE_GATES[fname]) | set(NO_TRUTH.get(fname, ())), fname
    truth_dir = shared_file(REF, "truth")
    truths = {re.sub(r"^Results_(.+)\.txt$", r"\1", p.name) for p in truth_dir.glob("Results_*.txt")}
    used = {TRUTH_NAME.get(g, g) for _, g in TRUTH_CASES}
    assert truths == used
    for name in truths:  # any gate without a truth file is listed as such
        assert (truth_dir / f"Results_{name}.txt").exists()


@pytest.mark.shared
def test_compliance_needs_scale_values_not_stored_values(data1: Sample) -> None:
    # FSC-H is stored with $P1G = 3.67: Range1 (FSC-H >= 100) holds only on scale values
    gates = _gates(shared_file(REF, "gml", "gml_range_gate.xml"))
    truth = _truth_for("Range1")
    np.testing.assert_array_equal(gates["Range1"].apply(data1), truth)
    raw = pd.DataFrame(np.asarray(data1.raw, dtype=float), columns=data1.channel_names)
    assert (gates["Range1"].apply(raw) != truth).sum() > 100


@pytest.mark.shared
def test_truth_exercises_the_boundary_conventions(data1: Sample) -> None:
    # ranges are [min, max): Range2 is Time in [20, 80)
    time = data1.column("Time")
    range2 = _truth_for("Range2")
    assert (time == 20).sum() > 0 and range2[time == 20].all()
    assert (time == 80).sum() > 0 and not range2[time == 80].any()
    # polygon bottom edge is in: Polygon2 is the rectangle FL1-H in [20, 120), FL4-H in [10, 160)
    fl1, fl4 = data1.column("FL1-H"), data1.column("FL4-H")
    edge = (fl4 == 10) & (fl1 >= 20) & (fl1 < 120)
    assert edge.sum() > 0 and _truth_for("Polygon2")[edge].all()
    rect = RectangleGate(("FL1-H", "FL4-H"), ((20, 120), (10, 160)))
    np.testing.assert_array_equal(rect.apply(data1), _truth_for("Polygon2"))


@pytest.mark.shared
def test_all_gates_read_as_expected_types() -> None:
    gates = _gates(shared_file(REF, "gml", "gml_all_gates.xml"))
    assert isinstance(gates["Range1"], RangeGate)
    assert isinstance(gates["Rectangle1"], RectangleGate)
    assert isinstance(gates["Polygon1"], PolygonGate)
    assert isinstance(gates["Ellipse1"], EllipseGate)
    assert isinstance(gates["And3"], BooleanGate) and gates["And3"].complements == (False, True, False)
    assert isinstance(gates["FSCD-FL1P"], RectangleGate)
    # a quadrant between two values of a divider is a closed-open interval; lower side first
    fsc, fl1 = gates["FSCD-FL1P"].dimensions
    assert (fsc.source, fl1.source) == ("FSC-H", "FL1-H")
    assert gates["FSCD-FL1P"].ranges == ((28.0654, 70.02725), (6.43567, None))
    assert gates["ScalePar1"].parent_id == "ScaleRect1"
    dim = gates["ScalePar1"].dimensions[0]
    assert isinstance(dim, GmlDimension)
    assert dim.name == "Hyperlog_10000_1_4.5_0(FITC[MySpill])"
    assert isinstance(dim.transform, HyperlogTransform)
    ratio = gates["RatRange1a"].dimensions[0]
    assert ratio.ratio == RatioTransform("FL2-H", "FL2-A", 1.0, 0.0, -1.0)
    assert isinstance(ratio.transform, LogTransform)
    ell3 = _gates(shared_file(REF, "gml", "gml_ellipsoid3d_gate.xml"))["Ellipsoid3D"]
    assert type(ell3) is EllipsoidGate and len(ell3.dimensions) == 3


@pytest.mark.shared
def test_parent_chain_is_anded(data1: Sample) -> None:
    gates = _gates(shared_file(REF, "gml", "gml_parent_quadrant_rect_gate.xml"))
    alone = gates["ParRectangle1"].apply(data1)
    parent = gates["FL2P-FL4P"].apply(data1)
    full = apply_gatingml(gates, data1, "ParRectangle1")
    np.testing.assert_array_equal(full, alone & parent)
    assert alone.sum() > full.sum() > 0


# ------------------------------------------------------------------ flowkit as a second opinion


def _flowkit() -> Any:
    return pytest.importorskip("flowkit")


@cache
def _flowkit_results(gml_path: Path, fcs_path: Path) -> Any:
    fk = _flowkit()
    strategy = fk.parse_gating_xml(str(gml_path))
    return strategy.gate_sample(fk.Sample(str(fcs_path)))


@pytest.mark.shared
@pytest.mark.parametrize("case", FLOWKIT_CASES, ids=_case_id)
def test_mask_equals_flowkit(case: tuple[str, str], data1: Sample) -> None:
    fname, gate_id = case
    gml_path = shared_file(REF, "gml", fname)
    results = _flowkit_results(gml_path, shared_file(REF, "data1.fcs"))
    theirs = np.asarray(results.get_gate_membership(gate_id), dtype=bool)
    ours = apply_gatingml(_gates(gml_path), data1, gate_id)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.shared
def test_flowkit_rejects_the_file_we_read_leniently() -> None:
    fk = _flowkit()
    for fname in FLOWKIT_REJECTS:
        with pytest.raises(ValueError, match="GatingML"):
            fk.parse_gating_xml(str(shared_file(REF, "gml", fname)))


@pytest.mark.shared
def test_scale_values_equal_flowkits(data1: Sample) -> None:
    fk = _flowkit()
    theirs = fk.Sample(str(shared_file(REF, "data1.fcs"))).get_events(source="raw")
    np.testing.assert_array_equal(np.asarray(data1.events), theirs)


# ------------------------------------------------------------------ transforms


def _values() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate([np.sinh(rng.uniform(-12, 12, 3000)), [0.0, 1e-9, -1e-9, 1.0, -1.0, 1e4, 262144.0]])


@pytest.mark.parametrize(
    "params", [(10000, 0.5, 4.5, 0), (10000, 1, 4, 0.5), (262144, 0.5, 4.5, 0), (1000, 1, 3, -0.5)]
)
def test_logicle_matches_flowutils(params: tuple[float, float, float, float]) -> None:
    _flowkit()
    from flowutils import transforms as fu

    t, w, m, a = params
    x = _values()
    ours = LogicleTransform(T=t, W=w, M=m, A=a).apply(x)
    np.testing.assert_allclose(ours, fu.logicle(x.copy(), None, t=t, m=m, w=w, a=a), rtol=0, atol=1e-13)


@pytest.mark.parametrize("params", [(10000, 1, 4.5, 0), (262144, 0.5, 4.5, 0), (1000, 1, 3, 0.5)])
def test_hyperlog_matches_flowutils(params: tuple[float, float, float, float]) -> None:
    _flowkit()
    from flowutils import transforms as fu

    t, w, m, a = params
    x = _values()
    ours = HyperlogTransform(T=t, W=w, M=m, A=a).apply(x)
    np.testing.assert_allclose(ours, fu.hyperlog(x.copy(), None, t=t, m=m, w=w, a=a), rtol=0, atol=1e-13)


def test_simple_transforms_follow_their_formulas() -> None:
    x = np.array([-10.0, 0.0, 1.0, 100.0, 10000.0])
    np.testing.assert_allclose(LinearTransform(T=10000, A=500).apply(x), (x + 500) / 10500)
    with np.errstate(divide="ignore", invalid="ignore"):
        expect_log = np.where(x > 0, np.log10(x / 10000) / 5 + 1, np.nan)
    np.testing.assert_allclose(LogTransform(T=10000, M=5).apply(x), expect_log)
    ln10 = np.log(10)
    expect_asinh = (np.arcsinh(x * np.sinh(4 * ln10) / 10000) + ln10) / (5 * ln10)
    np.testing.assert_allclose(AsinhTransform(T=10000, M=4, A=1).apply(x), expect_asinh)
    ratio = RatioTransform("a", "b", A=2.0, B=1.0, C=-1.0).apply(np.array([3.0, 5.0]), np.array([1.0, -1.0]))
    np.testing.assert_array_equal(ratio, [2.0, np.inf])


def test_top_of_scale_maps_to_one_and_zero_to_x1() -> None:
    for xf in (
        LogicleTransform(T=262144, W=0.5, M=4.5, A=0),
        HyperlogTransform(T=262144, W=0.5, M=4.5, A=0),
        AsinhTransform(T=262144, M=4.5, A=0),
        LinearTransform(T=262144, A=0),
        LogTransform(T=262144, M=4.5),
    ):
        assert xf.apply(np.array([262144.0]))[0] == pytest.approx(1.0, abs=1e-14), xf
    logicle = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    assert logicle.apply(np.array([0.0]))[0] == logicle.x1 == pytest.approx(0.5 / 4.5)


def test_non_finite_values() -> None:
    x = np.array([np.nan, np.inf, -np.inf])
    out = LogicleTransform(T=10000, W=0.5, M=4.5, A=0).apply(x)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf
    out = HyperlogTransform(T=10000, W=1, M=4.5, A=0).apply(x)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf


def test_logicle_with_w_zero_is_accurate_near_zero() -> None:
    # W = 0 makes logicle an arcsinh; tiny values must stay tiny (odd symmetry)
    logicle = LogicleTransform(T=262144, W=0, M=4.5, A=0)
    out = logicle.apply(np.array([1e-9, -1e-9]))
    assert out[0] == pytest.approx(1e-9 / logicle.taylor[0], rel=1e-9)
    assert out[1] == pytest.approx(-out[0])


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(-1e6, 1e6, allow_nan=False),
    w=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5]),
    a=st.sampled_from([0.0, 0.5, -0.25]),
)
def test_logicle_and_hyperlog_invert_exactly(x: float, w: float, a: float) -> None:
    m = 4.5
    if -a > w:
        return
    for xf in (LogicleTransform(T=262144, W=w, M=m, A=a),) + (
        (HyperlogTransform(T=262144, W=w, M=m, A=a),) if w > 0 else ()
    ):
        y = xf.apply(np.array([x]))
        back = xf.inverse(y)[0]
        assert back == pytest.approx(x, rel=1e-9, abs=1e-7), xf
        # monotone: a slightly larger value never maps lower
        assert xf.apply(np.array([x + max(abs(x), 1) * 1e-6]))[0] >= y[0]


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: LinearTransform(T=0, A=0), "flin needs T > 0"),
        (lambda: LogTransform(T=10, M=0), "flog needs M > 0"),
        (lambda: AsinhTransform(T=10, M=4, A=5), "0 <= A <= M"),
        (lambda: LogicleTransform(T=10, W=3, M=4, A=0), r"W <= M/2"),
        (lambda: LogicleTransform(T=10, W=0.5, M=4, A=-1), "-W <= A"),
        (lambda: HyperlogTransform(T=10, W=0, M=4, A=0), "hyperlog needs W > 0"),
    ],
)
def test_transform_parameters_are_checked(factory: Any, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        factory()


def test_spectrum_matrix_compensates() -> None:
    spectrum = np.array([[1.0, 0.02, 0.06], [0.11, 1.0, 0.07], [0.09, 0.01, 1.0]])
    m = SpectrumMatrix(("FITC", "PE", "PerCP"), ("FL1-H", "FL2-H", "FL3-H"), spectrum)
    true = np.array([[100.0, 50.0, 10.0], [0.0, 200.0, 0.0]])
    np.testing.assert_allclose(m.apply(true @ spectrum), true, atol=1e-12)
    assert m.index_of("PE") == 1 and m.index_of("FL3-H") == 2 and m.index_of("FSC-H") is None
    with pytest.raises(TemplateError, match="singular"):
        SpectrumMatrix(("a", "b"), ("x", "y"), np.ones((2, 2)))
    with pytest.raises(TemplateError, match="must be 2 x 2"):
        SpectrumMatrix(("a", "b"), ("x", "y"), np.ones((3, 3)))


# ------------------------------------------------------------------ reader behaviour and errors

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
    'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
    'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">\n'
)
TAIL = "</gating:Gating-ML>\n"


def _dim(name: str, extra: str = "", comp: str = "uncompensated") -> str:
    return (
        f'<gating:dimension gating:compensation-ref="{comp}" {extra}>'
        f'<data-type:fcs-dimension data-type:name="{name}"/></gating:dimension>'
    )


def _rect(gid: str, dim: str, extra: str = "") -> str:
    return f'<gating:RectangleGate gating:id="{gid}" {extra}>' + dim + "</gating:RectangleGate>"


def _range(gid: str, name: str = "x", lo: float = 0, extra: str = "") -> str:
    return _rect(gid, _dim(name, f'gating:min="{lo}"'), extra)


MIN1 = 'gating:min="1"'


def _write(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    path = tmp_path / "gates.xml"
    path.write_text(head + textwrap.dedent(body) + TAIL, encoding="utf-8")
    return path


def test_reads_a_small_hierarchy(tmp_path: Path) -> None:
    path = _write(tmp_path, _range("big", "x", 1) + _range("child", "y", 2, 'gating:parent_id="big"') + """
        <gating:BooleanGate gating:id="notchild">
          <gating:not><gating:gateReference gating:ref="child"/></gating:not>
        </gating:BooleanGate>""")
    gates = read_gatingml(path)
    assert list(gates) == ["big", "child", "notchild"]
    data = {"x": np.array([0.0, 5.0, 5.0]), "y": np.array([5.0, 0.0, 5.0])}
    np.testing.assert_array_equal(apply_gatingml(gates, data, "child"), [False, False, True])
    np.testing.assert_array_equal(gates["child"].apply(data), [True, False, True])
    # a gate reference means the referenced population: child within big
    np.testing.assert_array_equal(apply_gatingml(gates, data, "notchild"), [True, True, False])


def test_fcs_compensation_uses_the_samples_spillover(tmp_path: Path) -> None:
    min50 = 'gating:min="50"'
    body = _rect("pe", _dim("PE-A", min50, comp="FCS")) + _rect("pe_raw", _dim("PE-A", min50))
    path = _write(tmp_path, body)
    gates = read_gatingml(path)
    spill = np.array([[1.0, 0.5], [0.0, 1.0]])  # FITC spills half its signal into PE
    true = np.array([[100.0, 10.0], [100.0, 80.0], [0.0, 60.0]])
    observed = true @ spill
    channels = [Channel(0, "FITC-A", datatype="F"), Channel(1, "PE-A", datatype="F")]
    keywords = {"$SPILLOVER": "2,FITC-A,PE-A,1,0.5,0,1"}
    sample = Sample(observed.astype(np.float32), channels, keywords)
    np.testing.assert_array_equal(apply_gatingml(gates, sample, "pe"), [False, True, True])
    np.testing.assert_array_equal(apply_gatingml(gates, sample, "pe_raw"), [True, True, True])
    # plain columns are taken as already compensated
    frame = pd.DataFrame(true, columns=["FITC-A", "PE-A"])
    np.testing.assert_array_equal(apply_gatingml(gates, frame, "pe"), [False, True, True])
    # without a spillover keyword, "FCS" means uncompensated
    plain = Sample(observed.astype(np.float32), channels)
    np.testing.assert_array_equal(apply_gatingml(gates, plain, "pe"), [True, True, True])


def test_unsupported_gate_names_element_and_lists_supported(tmp_path: Path) -> None:
    path = _write(tmp_path, '<gating:PolytopeGate gating:id="p1"/>')
    with pytest.raises(TemplateError, match=r"<PolytopeGate> \(id 'p1'\) is not supported; .*RectangleGate, "
                                            r"PolygonGate, EllipsoidGate, QuadrantGate, BooleanGate"):
        read_gatingml(path)


def test_unsupported_transformation_names_element_and_lists_supported(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        <transforms:transformation transforms:id="t1">
          <transforms:fsplit transforms:T="1"/>
        </transforms:transformation>""")
    with pytest.raises(TemplateError, match=r"<fsplit>.*flin, flog, fasinh, logicle, hyperlog, fratio"):
        read_gatingml(path)


def test_gatingml_1_5_is_refused(tmp_path: Path) -> None:
    head = (
        '<?xml version="1.0"?>\n<gating:Gating-ML '
        'xmlns:gating="http://www.isac-net.org/std/Gating-ML/v1.5/gating">\n'
    )
    path = _write(tmp_path, "", head=head)
    with pytest.raises(TemplateError, match=r"only Gating-ML 2\.0 is supported"):
        read_gatingml(path)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_range("a") + _range("a"), "'a' is defined twice"),
        (_range("a", extra='gating:parent_id="nope"'), "refers to gate 'nope'"),
        (_range("a", extra='gating:parent_id="b"') + _range("b", extra='gating:parent_id="a"'), "cycle"),
        ('<gating:BooleanGate gating:id="b"><gating:and><gating:gateReference gating:ref="z"/>'
         '<gating:gateReference gating:ref="b"/></gating:and></gating:BooleanGate>', "'z'"),
        ('<gating:BooleanGate gating:id="b"><gating:or><gating:gateReference gating:ref="c"/>'
         '<gating:gateReference gating:ref="c"/></gating:or></gating:BooleanGate>'
         '<gating:BooleanGate gating:id="c"><gating:not><gating:gateReference gating:ref="b"/>'
         '</gating:not></gating:BooleanGate>', "cycle: b -> c -> b"),
        (_rect("r", _dim("x", MIN1, comp="Spill9")), "compensation-ref 'Spill9'.*valid: uncompensated, FCS"),
        (_rect("r", _dim("x", MIN1 + ' gating:transformation-ref="L"')),
         "transformation-ref 'L' is not defined"),
        (_rect("r", _dim("x", 'gating:min="one"')), "min='one' is not a number"),
        (_rect("r", _dim("x")), "neither min nor max"),
        ('<gating:PolygonGate gating:id="p">' + _dim("x") + _dim("y")
         + '<gating:vertex><gating:coordinate data-type:value="1"/><gating:coordinate data-type:value="1"/>'
         "</gating:vertex></gating:PolygonGate>", "at least 3"),
        ('<gating:RectangleGate gating:min="1"/>', "has no id"),
    ],
)
def test_reader_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        read_gatingml(_write(tmp_path, body))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not found"):
        read_gatingml(tmp_path / "absent.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<gating:Gating-ML", encoding="utf-8")
    with pytest.raises(TemplateError, match="not well-formed XML"):
        read_gatingml(bad)


def test_apply_gatingml_errors() -> None:
    gates = {"a": RangeGate("x", 0, parent_id="gone")}
    with pytest.raises(TemplateError, match=r"no gate with id 'b'; ids are a"):
        apply_gatingml(gates, {"x": np.zeros(2)}, "b")
    with pytest.raises(TemplateError, match="parent_id 'gone'"):
        apply_gatingml(gates, {"x": np.zeros(2)}, "a")
    loop = {"a": RangeGate("x", 0, parent_id="b"), "b": RangeGate("x", 0, parent_id="a")}
    with pytest.raises(TemplateError, match="cycle: a -> b -> a"):
        apply_gatingml(loop, {"x": np.zeros(2)}, "a")


def test_no_warnings_from_log_of_non_positive_values() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = LogTransform(T=100, M=2).apply(np.array([-1.0, 0.0, 1.0]))
    assert np.isnan(out[:2]).all() and out[2] == 0.0


# ------------------------------------------------- polygon and quadrant fast paths
def _pnpoly(vertices: tuple[tuple[float, float], ...], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The reference crossing-number rule, one event at a time (what PolygonGate vectorises)."""
    inside = np.zeros(x.size, dtype=bool)
    for k in range(x.size):
        for i in range(len(vertices)):
            (xi, yi), (xj, yj) = vertices[i], vertices[i - 1]
            if (y[k] < yi) != (y[k] < yj) and x[k] < (xj - xi) * (y[k] - yi) / (yj - yi) + xi:
                inside[k] = not inside[k]
    return inside


@pytest.mark.parametrize("n_side", [2, 48])
def test_polygon_matches_the_reference_rule_on_edges_and_vertices(n_side: int) -> None:
    # a band of 2 * n_side vertices (many short edges, each at few events' height) with a
    # vertical and a long slanted edge added (edges at most events' height)
    grid = np.linspace(1.0, 9.0, n_side)
    vertices = (
        *zip(grid, grid - 0.7, strict=True),
        (9.0, 9.5),
        *zip(grid[::-1] - 0.5, grid[::-1] + 0.8, strict=True),
        (0.5, 0.0),
    )
    gate = PolygonGate(("x", "y"), vertices)
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 10, 1500)
    y = rng.uniform(-1, 10, 1500)
    vx, vy = np.array(gate.vertices).T
    pick = rng.integers(0, vx.size, 300)
    frac = rng.uniform(0, 1, 300)
    on_edge_x = vx[pick] + frac * (np.roll(vx, 1)[pick] - vx[pick])
    on_edge_y = vy[pick] + frac * (np.roll(vy, 1)[pick] - vy[pick])
    x = np.concatenate([x, vx, on_edge_x, vx, [np.nan, 5.0, np.inf, 5.0, 5.0]])
    y = np.concatenate([y, vy, on_edge_y, rng.uniform(0, 10, vx.size), [5.0, np.nan, 5.0, np.inf, -np.inf]])
    with np.errstate(invalid="ignore"):
        expected = _pnpoly(gate.vertices, x, y)
    np.testing.assert_array_equal(gate.apply({"x": x, "y": y}), expected)
    assert 0 < expected.sum() < expected.size


def test_quadrant_masks_agree_with_the_index_including_nan_and_inf() -> None:
    from cytoflow_res.gating import QuadrantGate

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 500), [0.5, 0.5, np.nan, 1.0, np.inf, -np.inf, np.nan]])
    y = np.concatenate([rng.normal(0, 1, 500), [-0.25, 2.0, 1.0, np.nan, 0.0, 3.0, np.nan]])
    q = QuadrantGate(("x", "y"), (0.5, -0.25))
    labels = q.labels({"x": x, "y": y})
    masks = [q.apply({"x": x, "y": y}, name) for name in q.names]
    for name, mask in zip(q.names, masks, strict=True):
        np.testing.assert_array_equal(mask, labels == name)
    np.testing.assert_array_equal(np.sum(masks, axis=0), ~(np.isnan(x) | np.isnan(y)))
