"""Unit and property tests of the gate classes in cytoflow_res.gating.gates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoflow_res import ChannelError, TemplateError
from cytoflow_res.gating import (
    BooleanGate,
    EllipseGate,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RangeGate,
    RectangleGate,
    column_values,
)
from cytoflow_res.sample import Channel, Sample


def _sample(columns: dict[str, np.ndarray], labels: dict[str, str] | None = None) -> Sample:
    labels = labels or {}
    names = list(columns)
    raw = np.column_stack([np.asarray(columns[n], dtype=np.float32) for n in names])
    channels = [Channel(i, n, labels.get(n, ""), range=1024.0, datatype="F") for i, n in enumerate(names)]
    return Sample(raw, channels)


X = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.nan])


# ------------------------------------------------------------------ input types


def test_column_values_accepts_dict_dataframe_and_sample() -> None:
    data = {"FL1-A": np.array([1.0, 2.0]), "FL2-A": np.array([3.0, 4.0])}
    frame = pd.DataFrame(data)
    sample = _sample(data, labels={"FL1-A": "Annexin V-FITC"})
    for events in (data, frame, sample):
        np.testing.assert_array_equal(column_values(events, "FL1-A"), [1.0, 2.0])
        assert column_values(events, "FL2-A").dtype == np.float64
    # a Sample finds a channel by its label too
    np.testing.assert_array_equal(column_values(sample, "Annexin V"), [1.0, 2.0])


def test_same_mask_for_every_input_type() -> None:
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=200).astype(np.float32), "y": rng.normal(size=200).astype(np.float32)}
    gates: list[Gate] = [
        RangeGate("x", -0.5, 0.5),
        RectangleGate(("x", "y"), ((0, None), (None, 0.2))),
        PolygonGate(("x", "y"), ((0, 0), (1, 0), (0, 1))),
        EllipseGate(("x", "y"), (0, 0), ((1, 0.3), (0.3, 1)), 1.5),
    ]
    for gate in gates:
        ref = gate.apply(data)
        np.testing.assert_array_equal(gate.apply(pd.DataFrame(data)), ref)
        np.testing.assert_array_equal(gate.apply(_sample(data)), ref)
        assert ref.dtype == bool and ref.shape == (200,)


def test_missing_column_names_the_columns_there_are() -> None:
    with pytest.raises(ChannelError, match=r"no column named 'PI-A'.*FL1-A, FL2-A"):
        RangeGate("PI-A", 0).apply({"FL1-A": X, "FL2-A": X})
    with pytest.raises(ChannelError, match="PI-A"):
        RangeGate("PI-A", 0).apply(_sample({"FL1-A": X[:3]}))


def test_two_dimensional_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be 1-D"):
        RangeGate("x", 0).apply({"x": np.zeros((3, 2))})


# ------------------------------------------------------------------ RangeGate


def test_range_is_half_open() -> None:
    mask = RangeGate("x", 0.0, 2.0).apply({"x": X})
    np.testing.assert_array_equal(mask, [False, True, True, True, True, False, False, False])


def test_range_open_sides() -> None:
    np.testing.assert_array_equal(
        RangeGate("x", min=1.0).apply({"x": X}), [False, False, False, True, True, True, True, False]
    )
    np.testing.assert_array_equal(
        RangeGate("x", max=1.0).apply({"x": X}), [True, True, True, False, False, False, False, False]
    )
    assert RangeGate("x", 1.0).dimensions == ("x",)


def test_range_with_equal_bounds_is_empty() -> None:
    assert not RangeGate("x", 1.0, 1.0).apply({"x": X}).any()


@pytest.mark.parametrize(
    ("lo", "hi", "match"),
    [
        (None, None, "neither min nor max"),
        (2.0, 1.0, r"min 2\.0 > max 1\.0"),
        (math.nan, 1.0, "NaN"),
    ],
)
def test_range_rejects_bad_bounds(lo: float | None, hi: float | None, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        RangeGate("x", lo, hi)


def test_gates_are_frozen_and_hashable() -> None:
    gate = RangeGate("x", 0.0, 1.0, name="r")
    with pytest.raises(AttributeError):
        gate.min = 3.0  # type: ignore[misc]
    assert gate == RangeGate("x", 0, 1, name="r")
    assert hash(gate) == hash(RangeGate("x", 0, 1, name="r"))
    assert gate.parent_id is None


# ------------------------------------------------------------------ RectangleGate


def test_rectangle_ands_its_ranges() -> None:
    data = {"x": np.array([0.0, 1.0, 1.0, 2.0]), "y": np.array([0.0, 5.0, 10.0, 5.0])}
    gate = RectangleGate(("x", "y"), ((0.0, 2.0), (5.0, 10.0)))
    np.testing.assert_array_equal(gate.apply(data), [False, True, False, False])
    assert gate.dimensions == ("x", "y")


def test_rectangle_with_open_sides() -> None:
    data = {"x": np.array([-5.0, 5.0, 50.0]), "y": np.array([0.0, 0.0, 0.0])}
    gate = RectangleGate(("x", "y"), ((None, 10.0), (0.0, None)))
    np.testing.assert_array_equal(gate.apply(data), [True, True, False])


@pytest.mark.parametrize(
    ("dims", "ranges", "match"),
    [
        ("x", ((0, 1),), "sequence of one or more dimensions"),
        ((), (), "sequence of one or more dimensions"),
        (("x", "y"), ((0, 1),), r"one \(min, max\) pair per dimension"),
        (("x",), ((None, None),), "neither min nor max"),
        (("x",), ((0, 1, 2),), r"one \(min, max\) pair"),
    ],
)
def test_rectangle_rejects_bad_definitions(dims: object, ranges: object, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        RectangleGate(dims, ranges)  # type: ignore[arg-type]


# ------------------------------------------------------------------ PolygonGate

SQUARE = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))


def test_polygon_square_boundary_is_half_open_like_a_rectangle() -> None:
    pts = np.array(
        [
            (5, 5),  # inside
            (0, 5), (5, 0), (0, 0),  # left edge, bottom edge, bottom-left corner: in
            (10, 5), (5, 10), (10, 10), (10, 0), (0, 10),  # right, top and their corners: out
            (-1, 5), (11, 5), (5, -1), (5, 11),  # outside
        ],
        dtype=float,
    )
    data = {"x": pts[:, 0], "y": pts[:, 1]}
    expect = [True, True, True, True, False, False, False, False, False, False, False, False, False]
    np.testing.assert_array_equal(PolygonGate(("x", "y"), SQUARE).apply(data), expect)
    np.testing.assert_array_equal(RectangleGate(("x", "y"), ((0, 10), (0, 10))).apply(data), expect)


def test_polygon_triangle() -> None:
    data = {"x": np.array([2.0, 8.0, 5.0, 9.0]), "y": np.array([1.0, 1.0, 4.0, 8.0])}
    tri = PolygonGate(("x", "y"), ((0, 0), (10, 0), (10, 10)))
    np.testing.assert_array_equal(tri.apply(data), [True, True, True, True])
    data = {"x": np.array([1.0, 2.0]), "y": np.array([5.0, 9.0])}
    np.testing.assert_array_equal(tri.apply(data), [False, False])


def test_self_intersecting_polygon_uses_even_odd() -> None:
    # a bow tie: two triangles touching at (5, 5)
    bow = PolygonGate(("x", "y"), ((0, 0), (10, 10), (10, 0), (0, 10)))
    data = {"x": np.array([1.0, 9.0, 5.0, 5.0]), "y": np.array([5.0, 5.0, 2.0, 8.0])}
    np.testing.assert_array_equal(bow.apply(data), [True, True, False, False])
    # a pentagram: the centre is covered twice, so it is a hole under even-odd
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = PolygonGate(("x", "y"), tuple(zip(np.cos(angles), np.sin(angles), strict=True)))
    data = {"x": np.array([0.0, 0.0]), "y": np.array([0.0, 0.6])}
    np.testing.assert_array_equal(star.apply(data), [False, True])


def test_degenerate_polygons_contain_nothing() -> None:
    rng = np.random.default_rng(2)
    data = {"x": rng.uniform(-1, 11, 500), "y": rng.uniform(-1, 11, 500)}
    data["x"][:3] = [5.0, 0.0, 10.0]
    data["y"][:3] = [5.0, 0.0, 10.0]  # on the line itself
    for verts in (
        ((0, 0), (5, 5), (10, 10)),  # collinear, diagonal
        ((0, 5), (5, 5), (10, 5)),  # collinear, horizontal
        ((3, 0), (3, 5), (3, 10)),  # collinear, vertical
        ((1, 1), (1, 1), (1, 1)),  # one point
    ):
        assert not PolygonGate(("x", "y"), verts).apply(data).any(), verts


def test_polygon_closing_vertex_repeated_is_harmless() -> None:
    rng = np.random.default_rng(3)
    data = {"x": rng.uniform(-2, 12, 300), "y": rng.uniform(-2, 12, 300)}
    closed = PolygonGate(("x", "y"), (*SQUARE, SQUARE[0]))
    np.testing.assert_array_equal(closed.apply(data), PolygonGate(("x", "y"), SQUARE).apply(data))


def test_polygon_nan_is_outside() -> None:
    data = {"x": np.array([np.nan, 5.0]), "y": np.array([5.0, np.nan])}
    assert not PolygonGate(("x", "y"), SQUARE).apply(data).any()


@pytest.mark.parametrize(
    ("dims", "verts", "match"),
    [
        (("x",), SQUARE, "exactly 2 dimensions"),
        ("xy", SQUARE, "exactly 2 dimensions"),
        (("x", "y"), ((0, 0), (1, 1)), "at least 3"),
        (("x", "y"), ((0, 0, 0), (1, 1, 1), (2, 0, 0)), "at least 3 \\(x, y\\)"),
        (("x", "y"), ((0, 0), (1, np.inf), (2, 0)), "finite"),
        (("x", "y"), ((0, 0), (1, "a"), (2, 0)), "must be numbers"),
    ],
)
def test_polygon_rejects_bad_definitions(dims: object, verts: object, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        PolygonGate(dims, verts)  # type: ignore[arg-type]


_coord = st.integers(-20, 20).map(float)


@settings(max_examples=200, deadline=None)
@given(
    x0=_coord, y0=_coord, w=st.integers(1, 15).map(float), h=st.integers(1, 15).map(float),
    pts=st.lists(st.tuples(st.integers(-25, 40).map(float), st.integers(-25, 40).map(float)),
                 min_size=1, max_size=60),
    start=st.integers(0, 3), reverse=st.booleans(),
)
def test_rectangle_polygon_equals_rectangle_gate_even_on_the_boundary(
    x0: float, y0: float, w: float, h: float, pts: list[tuple[float, float]], start: int, reverse: bool
) -> None:
    # integer coordinates put many points exactly on edges and corners
    corners = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    corners = corners[start:] + corners[:start]
    if reverse:
        corners.reverse()
    arr = np.array(pts)
    data = {"a": arr[:, 0], "b": arr[:, 1]}
    poly = PolygonGate(("a", "b"), tuple(corners))
    rect = RectangleGate(("a", "b"), ((x0, x0 + w), (y0, y0 + h)))
    np.testing.assert_array_equal(poly.apply(data), rect.apply(data))


@settings(max_examples=100, deadline=None)
@given(
    verts=st.lists(st.tuples(_coord, _coord), min_size=3, max_size=8),
    start=st.integers(0, 7),
)
def test_polygon_mask_does_not_depend_on_orientation_or_start(
    verts: list[tuple[float, float]], start: int
) -> None:
    rng = np.random.default_rng(0)
    data = {"a": rng.uniform(-22, 22, 400), "b": rng.uniform(-22, 22, 400)}
    ref = PolygonGate(("a", "b"), tuple(verts)).apply(data)
    k = start % len(verts)
    rotated = verts[k:] + verts[:k]
    np.testing.assert_array_equal(PolygonGate(("a", "b"), tuple(rotated)).apply(data), ref)
    np.testing.assert_array_equal(PolygonGate(("a", "b"), tuple(reversed(verts))).apply(data), ref)


# ------------------------------------------------------------------ Ellipse / Ellipsoid


def test_ellipse_boundary_is_inside() -> None:
    gate = EllipseGate(("x", "y"), (0.0, 0.0), ((4.0, 0.0), (0.0, 1.0)), 1.0)
    data = {"x": np.array([2.0, 0.0, 2.0 + 1e-9, 0.0, 1.0]), "y": np.array([0.0, -1.0, 0.0, 1.0 + 1e-9, 0.5])}
    np.testing.assert_array_equal(gate.apply(data), [True, True, False, False, True])
    np.testing.assert_allclose(gate.distance2(data)[:2], [1.0, 1.0])


def test_ellipse_from_axes_reproduces_gatingml_ellipse1() -> None:
    # Gating-ML compliance Ellipse1: half-axes 10 and 5, rotated 45 degrees
    gate = EllipseGate.from_axes(("FL3-H", "FL4-H"), (12.99701, 16.22941), (10.0, 5.0), angle=math.pi / 4)
    np.testing.assert_allclose(gate.covariance, ((62.5, 37.5), (37.5, 62.5)))
    assert gate.distance_square == 1.0
    # the end of the long axis is on the boundary
    end = np.array([12.99701, 16.22941]) + 10 * np.array([math.cos(math.pi / 4), math.sin(math.pi / 4)])
    d2 = gate.distance2({"FL3-H": end[:1], "FL4-H": end[1:]})
    assert d2[0] == pytest.approx(1.0)


def test_ellipse_scales_with_distance_square() -> None:
    data = {"x": np.array([1.5, 2.5]), "y": np.array([0.0, 0.0])}
    small = EllipseGate(("x", "y"), (0, 0), ((1, 0), (0, 1)), 4.0)  # radius 2
    np.testing.assert_array_equal(small.apply(data), [True, False])


def test_ellipsoid_three_dimensions() -> None:
    gate = EllipsoidGate(("x", "y", "z"), (1, 2, 3), ((1, 0, 0), (0, 4, 0), (0, 0, 9)), 1.0)
    data = {"x": np.array([1.0, 1.0, 1.9, 1.0]), "y": np.array([2.0, 2.0, 2.0, 4.0]),
            "z": np.array([3.0, 6.0, 3.0, 3.0 + 1e-6])}
    np.testing.assert_array_equal(gate.apply(data), [True, True, True, False])


def test_ellipse_nan_is_outside() -> None:
    gate = EllipseGate(("x", "y"), (0, 0), ((1, 0), (0, 1)))
    assert not gate.apply({"x": np.array([np.nan]), "y": np.array([0.0])}).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dimensions": ("x", "y"), "mean": (0,), "covariance": ((1, 0), (0, 1))}, "mean of 2 numbers"),
        ({"dimensions": ("x", "y"), "mean": (0, 0), "covariance": ((1, 1), (1, 1))}, "singular"),
        ({"dimensions": ("x", "y"), "mean": (0, 0), "covariance": ((1, 0), (0, 1)), "distance_square": 0},
         "positive"),
        ({"dimensions": ("x", "y"), "mean": (0, np.nan), "covariance": ((1, 0), (0, 1))}, "finite"),
    ],
)
def test_ellipsoid_rejects_bad_definitions(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        EllipsoidGate(**kwargs)  # type: ignore[arg-type]


def test_ellipse_needs_two_dimensions_and_positive_axes() -> None:
    with pytest.raises(TemplateError, match="exactly 2 dimensions"):
        EllipseGate(("x", "y", "z"), (0, 0, 0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    with pytest.raises(TemplateError, match="half-axes must be positive"):
        EllipseGate.from_axes(("x", "y"), (0, 0), (1.0, 0.0))


# ------------------------------------------------------------------ QuadrantGate

APOPTOSIS = ("live", "early_apoptotic", "necrotic", "late_apoptotic")


def test_quadrant_labels_and_divider_goes_up() -> None:
    q = QuadrantGate(("annexin", "pi"), (10.0, 20.0), names=APOPTOSIS)
    data = {
        "annexin": np.array([1.0, 50.0, 1.0, 50.0, 10.0, 10.0, 9.999, np.nan]),
        "pi": np.array([1.0, 1.0, 90.0, 90.0, 1.0, 20.0, 19.999, 1.0]),
    }
    labels = q.labels(data)
    assert labels.tolist() == [
        "live", "early_apoptotic", "necrotic", "late_apoptotic",
        "early_apoptotic",  # annexin == divider: upper side
        "late_apoptotic",  # both on their dividers
        "live", "",  # NaN is in no quadrant
    ]
    np.testing.assert_array_equal(q.apply(data, "late_apoptotic"), labels == "late_apoptotic")


def test_quadrants_partition_the_events() -> None:
    rng = np.random.default_rng(4)
    data = {"x": rng.integers(0, 5, 300).astype(float), "y": rng.integers(0, 5, 300).astype(float)}
    q = QuadrantGate(("x", "y"), (2.0, 3.0))
    assert q.names == ("x-y-", "x+y-", "x-y+", "x+y+")
    masks = np.array([q.apply(data, n) for n in q.names])
    np.testing.assert_array_equal(masks.sum(axis=0), np.ones(300))
    for n in q.names:  # the RectangleGate view has the same boundaries
        np.testing.assert_array_equal(q.quadrant(n).apply(data), q.apply(data, n))
        assert q.quadrant(n).name == n


def test_quadrant_errors() -> None:
    q = QuadrantGate(("x", "y"), (0, 0), names=APOPTOSIS)
    with pytest.raises(TemplateError, match=r"no quadrant named 'dead'; quadrants are live, early"):
        q.apply({"x": X, "y": X}, "dead")
    with pytest.raises(TemplateError, match="4 distinct"):
        QuadrantGate(("x", "y"), (0, 0), names=("a", "a", "b", "c"))
    with pytest.raises(TemplateError, match="exactly 2 dimensions"):
        QuadrantGate(("x",), (0, 0))
    with pytest.raises(TemplateError, match="2 dividers"):
        QuadrantGate(("x", "y"), (0, 0, 0))  # type: ignore[arg-type]


# ------------------------------------------------------------------ BooleanGate

A = RangeGate("x", 0.0, 2.0)
B = RangeGate("x", 1.0, 3.0)
DATA = {"x": X}


def test_boolean_and_or_not() -> None:
    a, b = A.apply(DATA), B.apply(DATA)
    np.testing.assert_array_equal(BooleanGate("and", (A, B)).apply(DATA), a & b)
    np.testing.assert_array_equal(BooleanGate("or", (A, B)).apply(DATA), a | b)
    np.testing.assert_array_equal(BooleanGate("not", (A,)).apply(DATA), ~a)
    np.testing.assert_array_equal((A & B).apply(DATA), a & b)
    np.testing.assert_array_equal((A | B).apply(DATA), a | b)
    np.testing.assert_array_equal((~A).apply(DATA), ~a)


def test_boolean_complements_and_de_morgan() -> None:
    a, b = A.apply(DATA), B.apply(DATA)
    and_not_b = BooleanGate("and", (A, B), complements=(False, True))
    np.testing.assert_array_equal(and_not_b.apply(DATA), a & ~b)
    np.testing.assert_array_equal((~(A & B)).apply(DATA), (~A | ~B).apply(DATA))
    np.testing.assert_array_equal(
        BooleanGate("or", (A, B), complements=(True, True)).apply(DATA), (~(A & B)).apply(DATA)
    )
    # a complemented 'not' is the gate itself
    np.testing.assert_array_equal(BooleanGate("not", (A,), complements=(True,)).apply(DATA), a)


def test_boolean_of_many_and_nested() -> None:
    c = RectangleGate(("x", "y"), ((None, 1.5), (0, None)))
    data = {"x": X, "y": np.arange(X.size, dtype=float)}
    gate = BooleanGate("or", (A & B, c, ~A))
    expect = (A.apply(data) & B.apply(data)) | c.apply(data) | ~A.apply(data)
    np.testing.assert_array_equal(gate.apply(data), expect)
    assert gate.dimensions == ("x", "y")


@pytest.mark.parametrize(
    ("op", "operands", "kwargs", "match"),
    [
        ("xor", (A, B), {}, "'xor' is not one of and, or, not"),
        ("not", (A, B), {}, "exactly 1 operand"),
        ("and", (A,), {}, "2 or more operands"),
        ("or", (A, "x"), {}, "must be gates"),
        ("and", (A, B), {"complements": (True,)}, "2 operands but 1 complement"),
    ],
)
def test_boolean_rejects_bad_definitions(op: str, operands: tuple[object, ...], kwargs: dict[str, object],
                                         match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        BooleanGate(op, operands, **kwargs)  # type: ignore[arg-type]


def test_boolean_op_is_case_insensitive() -> None:
    assert BooleanGate("AND", (A, B)).op == "and"  # type: ignore[arg-type]
