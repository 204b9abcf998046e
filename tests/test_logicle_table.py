"""The tabulated logicle and hyperlog against the per-event solver they replace.

``LogicleTransform.apply`` (and hyperlog's) evaluates a piecewise quintic Hermite table of the
root (``cytoflow_res.gating._gml_transforms``); ``apply_exact`` still solves every event by
Halley's method. The guarantee tested here: the two differ by at most ``TABLE_MAX_ERROR``
(1e-14 on the display scale) everywhere, on both signs, at and next to every segment end,
and are identical outside the table (zero, tiny, huge, non-finite values); the table's
arithmetic is elementwise, so one value gives the same result alone or in any array.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoflow_res.gating import _gml_transforms as gml
from cytoflow_res.gating._gml_transforms import TABLE_MAX_ERROR, HyperlogTransform, LogicleTransform
from cytoflow_res.transforms import make_transform

PARAMS = [  # (T, W, M, A): the defaults, flowkit's test sets, W = 0, widest W, negative A, tiny T
    (262144.0, 0.5, 4.5, 0.0),
    (10000.0, 1.0, 4.0, 0.5),
    (262144.0, 0.0, 4.5, 0.0),
    (262144.0, 2.25, 4.5, 0.0),
    (1000.0, 1.0, 3.0, -0.5),
    (262144.0, 0.86, 4.5, 0.0),
    (1.0, 0.5, 4.5, 0.0),
]
Transform = LogicleTransform | HyperlogTransform


def _transforms() -> Iterator[Transform]:
    for t, w, m, a in PARAMS:
        yield LogicleTransform(T=t, W=w, M=m, A=a)
        if w > 0:
            yield HyperlogTransform(T=t, W=w, M=m, A=a)


TRANSFORMS = list(_transforms())


def _ids(xf: Transform) -> str:
    return f"{xf.kind}-T{xf.T:g}-W{xf.W:g}-M{xf.M:g}-A{xf.A:g}"


def _table(xf: Transform) -> gml._RootTable:
    table = gml._root_table(xf)
    assert table is not None, f"{xf}: no table"
    return table


def _segment_ends(table: gml._RootTable) -> np.ndarray:
    k = np.arange(table.size + 1, dtype=np.int64)
    return (table.start_bits + (k << table.shift)).view(np.float64)


@pytest.mark.parametrize("xf", TRANSFORMS, ids=_ids)
def test_table_is_within_the_bound_everywhere(xf: Transform) -> None:
    table = _table(xf)
    assert table.measured_error <= TABLE_MAX_ERROR / 4
    ends = _segment_ends(table)
    h = np.diff(ends)
    inner = np.concatenate([ends[:-1] + f * h for f in np.linspace(1 / 16, 15 / 16, 15)])
    # the ends themselves and their float neighbours on both sides (first and last segment too)
    near = np.concatenate([ends, np.nextafter(ends, 0.0), np.nextafter(ends, np.inf)])
    rng = np.random.default_rng(7)
    spread = np.exp(rng.uniform(np.log(ends[0]), np.log(ends[-1]), 200_000))
    x = np.concatenate([inner, near, spread])
    x = np.concatenate([x, -x])
    fast, exact = xf.apply(x), xf.apply_exact(x)
    assert np.isfinite(exact).all()
    err = float(np.max(np.abs(fast - exact)))
    assert err <= TABLE_MAX_ERROR, f"{xf}: max |table - solver| = {err:.3g}"


@pytest.mark.parametrize("xf", TRANSFORMS, ids=_ids)
def test_outside_the_table_the_solver_answers(xf: Transform) -> None:
    table = _table(xf)
    ends = _segment_ends(table)
    lo, hi = float(ends[0]), float(ends[-1])
    special = np.array(
        [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1e-300, np.nextafter(lo, 0.0), hi, 2.0 * hi, 1e20, 1e100]
    )
    x = np.concatenate([special, -special])
    np.testing.assert_array_equal(xf.apply(x), xf.apply_exact(x))
    # mixed with values inside: each kind still answered by its own path
    inside = np.array([1.0, 1234.5, -77.0, xf.T])
    mixed = np.concatenate([special, inside])
    got = xf.apply(mixed)
    np.testing.assert_array_equal(got[: special.size], xf.apply_exact(special))
    np.testing.assert_array_equal(got[special.size :], xf.apply(inside))
    assert xf.apply(np.array([0.0]))[0] == xf.x1


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(-1e9, 1e9, allow_nan=False),
    w=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]),
    a=st.sampled_from([0.0, 0.5, -0.25]),
    t=st.sampled_from([1000.0, 10000.0, 262144.0, 1e6]),
)
def test_any_value_is_within_the_bound(x: float, w: float, a: float, t: float) -> None:
    if -a > w:
        return
    xf = LogicleTransform(T=t, W=w, M=4.5, A=a)
    assert abs(xf.apply(np.array([x]))[0] - xf.apply_exact(np.array([x]))[0]) <= TABLE_MAX_ERROR


@pytest.mark.parametrize("xf", TRANSFORMS[:3], ids=_ids)
def test_one_value_alone_equals_it_in_an_array(xf: Transform) -> None:
    # a divider converted alone lands exactly where the same data value in the events does
    rng = np.random.default_rng(3)
    x = np.sinh(rng.uniform(-14, 14, 300)) * 10
    together = xf.apply(x)
    alone = np.array([xf.apply(np.array([v]))[0] for v in x])
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(xf.apply(x[::-1].copy()), together[::-1])
    np.testing.assert_array_equal(xf.apply(x[::3]), together[::3])  # a strided view


@pytest.mark.parametrize("xf", TRANSFORMS, ids=_ids)
def test_monotone_and_odd_about_zero(xf: Transform) -> None:
    x = np.concatenate([np.geomspace(1e-6, 1e8, 400_001)])
    y = xf.apply(x)
    assert np.all(np.diff(y) >= 0)
    np.testing.assert_array_equal(xf.apply(-x), 2.0 * xf.x1 - y)


def test_shapes_and_inputs() -> None:
    xf = LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    grid = np.array([[-100.0, 0.0, 5.0], [1e3, 1e4, np.nan]])
    kept = grid.copy()
    out = xf.apply(grid)
    assert out.shape == grid.shape
    np.testing.assert_array_equal(grid, kept)  # the input is not changed
    np.testing.assert_array_equal(out.ravel(), xf.apply(grid.ravel()))
    np.testing.assert_array_equal(xf.apply(grid.T), out.T)  # Fortran order
    assert xf.apply(3.0).shape == (1,)  # type: ignore[arg-type]
    np.testing.assert_array_equal(xf.apply([1.0, 2.0]), xf.apply(np.array([1.0, 2.0])))  # type: ignore[arg-type]
    f32 = np.array([1.5, -2.5, 3e4], dtype=np.float32)
    np.testing.assert_array_equal(xf.apply(f32), xf.apply(f32.astype(np.float64)))


def test_table_is_cached_on_the_parameters() -> None:
    spec = {"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}
    first, second = make_transform(spec), make_transform(spec)
    assert first is not second
    assert gml._root_table(first) is gml._root_table(second)  # type: ignore[arg-type]
    other = make_transform({**spec, "w": 0.75})
    assert gml._root_table(other) is not gml._root_table(first)  # type: ignore[arg-type]


def test_an_inaccurate_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    xf = LogicleTransform(T=5000.0, W=0.7, M=4.2, A=0.1)
    gml._root_table.cache_clear()
    monkeypatch.setattr(gml, "_TABLE_CHECK", 0.0)
    try:
        assert gml._root_table(xf) is None
        x = np.sinh(np.linspace(-12, 12, 1001))
        np.testing.assert_array_equal(xf.apply(x), xf.apply_exact(x))
    finally:
        gml._root_table.cache_clear()
