"""Display/gating transforms from template specs, checked against flowkit and the formulas."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoflow_res import FitError, TemplateError
from cytoflow_res.gating import (
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
)
from cytoflow_res.io.fcs import read_fcs
from cytoflow_res.sample import Channel, Sample
from cytoflow_res.transforms import (
    TRANSFORM_TYPES,
    CofactorAsinhTransform,
    Transform,
    compensate,
    default_logicle_for,
    make_transform,
)

from .conftest import shared_file

SPECS: list[dict[str, Any]] = [
    {"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0},
    {"type": "logicle", "t": 10000, "w": 1, "m": 4, "a": 0.5},
    {"type": "hyperlog", "t": 262144, "w": 0.5, "m": 4.5, "a": 0},
    {"type": "asinh", "cofactor": 150},
    {"type": "asinh", "cofactor": 5},
    {"type": "fasinh", "t": 262144, "m": 4.5, "a": 1},
    {"type": "linear"},
    {"type": "linear", "t": 1024, "a": 100},
    {"type": "log", "decades": 4, "t": 10000},
]


def _grid() -> np.ndarray:
    return np.concatenate([-np.logspace(4, -3, 40), [0.0], np.logspace(-3, 5.4, 60), [262144.0]])


def _flowkit_transforms() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flowkit's own deprecation chatter is not ours to fix
        flowkit = pytest.importorskip("flowkit")
    return flowkit.transforms


# ------------------------------------------------------------------ specs -> the right objects


def test_specs_build_the_gatingml_implementations() -> None:
    assert make_transform(SPECS[0]) == LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    assert make_transform(SPECS[2]) == HyperlogTransform(T=262144, W=0.5, M=4.5, A=0)
    assert make_transform(SPECS[5]) == AsinhTransform(T=262144, M=4.5, A=1)
    assert make_transform(SPECS[7]) == LinearTransform(T=1024, A=100)
    assert make_transform(SPECS[8]) == LogTransform(T=10000, M=4)
    assert make_transform(SPECS[3]) == CofactorAsinhTransform(cofactor=150)
    # defaults, and keys in any case
    assert make_transform({"type": "logicle"}) == LogicleTransform(T=262144, W=0.5, M=4.5, A=0)
    assert make_transform({"type": "log"}) == LogTransform(T=10000, M=4)
    # a bare linear spec keeps data units (flin with t = 1, a = 0)
    x = np.array([-150.0, 0.0, 262143.0])
    np.testing.assert_array_equal(make_transform({"type": "linear"}).apply(x), x)
    assert make_transform({"Type": " Logicle ", "T": 10000, "W": 1}) == LogicleTransform(
        T=10000, W=1, M=4.5, A=0
    )
    assert set(TRANSFORM_TYPES) == {"linear", "log", "logicle", "hyperlog", "asinh", "fasinh"}
    for spec in SPECS:
        assert isinstance(make_transform(spec), Transform)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_apply_inverse_round_trip(spec: dict[str, Any]) -> None:
    xform = make_transform(spec)
    x = _grid()
    if spec["type"] == "log":
        x = x[x > 0]
    y = xform.apply(x)
    assert y.shape == x.shape and np.all(np.diff(y) > 0)  # strictly increasing
    np.testing.assert_allclose(xform.inverse(y), x, rtol=1e-9, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(0.5, 1000))
def test_cofactor_asinh_formula_and_inverse(x: float, cofactor: float) -> None:
    xform = CofactorAsinhTransform(cofactor=cofactor)
    y = xform.apply(np.array([x]))
    assert y[0] == pytest.approx(math.asinh(x / cofactor), rel=1e-12, abs=1e-15)
    assert xform.inverse(y)[0] == pytest.approx(x, rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------ flowkit as the reference


@pytest.mark.parametrize(
    "params", [(262144, 0.5, 4.5, 0), (10000, 1, 4, 0.5), (262144, 0.86, 4.5, 0), (1000, 1, 3, -0.5)]
)
def test_logicle_equals_flowkit(params: tuple[float, float, float, float]) -> None:
    fkt = _flowkit_transforms()
    t, w, m, a = params
    x = _grid()
    ours = make_transform({"type": "logicle", "t": t, "w": w, "m": m, "a": a})
    theirs = fkt.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a)
    np.testing.assert_allclose(ours.apply(x), theirs.apply(x.copy()), rtol=0, atol=1e-12)
    y = np.linspace(-0.2, 1.0, 61)
    np.testing.assert_allclose(ours.inverse(y), theirs.inverse(y.copy()), rtol=1e-9, atol=1e-9)


def test_other_transforms_equal_flowkit() -> None:
    fkt = _flowkit_transforms()
    x = _grid()
    pairs = [
        (
            {"type": "hyperlog", "t": 262144, "w": 0.5, "m": 4.5, "a": 0},
            fkt.HyperlogTransform(262144, 0.5, 4.5, 0),
        ),
        ({"type": "fasinh", "t": 262144, "m": 4.5, "a": 1}, fkt.AsinhTransform(262144, 4.5, 1)),
        ({"type": "linear", "t": 262144, "a": 100}, fkt.LinearTransform(262144, 100)),
    ]
    for spec, theirs in pairs:
        np.testing.assert_allclose(
            make_transform(spec).apply(x), theirs.apply(x.copy()), rtol=1e-12, atol=1e-12
        )
    pos = x[x > 0]
    np.testing.assert_allclose(
        make_transform({"type": "log", "t": 10000, "decades": 4}).apply(pos),
        fkt.LogTransform(10000, 4).apply(pos.copy()),
        rtol=1e-12,
    )


# ------------------------------------------------------------------ bad specs


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"type": "biex"}, r"key 'type' has the value 'biex'; allowed values are 'linear', 'log', 'logicle'"),
        ({"t": 262144}, r"has no key 'type'; allowed types are 'linear'"),
        ({"type": 3}, "key 'type' has the value 3"),
        (
            {"type": "logicle", "cofactor": 150},
            r"key 'cofactor' \(value 150\) is not a parameter of a 'logicle' transform; "
            r"allowed keys are 'type', 't', 'w', 'm', 'a'",
        ),
        ({"type": "asinh", "w": 1}, r"key 'w' \(value 1\) .* allowed keys are 'type', 'cofactor'"),
        (
            {"type": "logicle", "w": "wide"},
            r"key 'w' has the value 'wide'; allowed values are finite numbers \(default 0.5\)",
        ),
        ({"type": "logicle", "t": True}, "key 't' has the value True"),
        ({"type": "log", "t": float("inf")}, "key 't' has the value inf"),
        ({"type": "logicle", "w": 3}, r"logicle needs 0 <= W <= M/2; got W=3.0, M=4.5"),
        ({"type": "logicle", "t": -1}, "logicle needs T > 0; got T=-1.0"),
        ({"type": "asinh", "cofactor": 0}, "asinh needs a finite cofactor > 0; got cofactor=0.0"),
        ({"type": "log", "decades": 0}, "flog needs M > 0"),
    ],
)
def test_bad_specs_name_key_value_and_what_is_allowed(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        make_transform(spec)


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(TemplateError, match="must be a mapping"):
        make_transform("logicle")  # type: ignore[arg-type]


# ------------------------------------------------------------------ automatic logicle


def _sample(values: np.ndarray, *, rng_value: float = 262144.0) -> Sample:
    raw = np.asarray(values, dtype=np.float64)[:, None]
    return Sample(raw, [Channel(0, "FITC-A", "Annexin V", range=rng_value, bits=64, datatype="D")])


def test_default_logicle_follows_parks_rule() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 200, 5000), rng.lognormal(8, 1, 5000)])
    xform = default_logicle_for(_sample(values), "Annexin V")
    r = np.quantile(values[values < 0], 0.05)
    assert xform.T == 262144.0 and xform.M == 4.5 and xform.A == 0
    width = xform.W
    assert width == pytest.approx((4.5 - math.log10(262144 / abs(r))) / 2, rel=1e-12)
    assert 0.5 < width < 1.2


def test_default_logicle_edge_cases() -> None:
    # no negative values: W = 0
    assert default_logicle_for(_sample(np.array([1.0, 10.0, 100.0])), 0).W == 0.0
    # tiny negatives give a negative W: clipped to 0
    assert default_logicle_for(_sample(np.array([-0.01, 10.0, 100.0])), 0).W == 0.0
    # huge negatives: clipped to M/2
    assert default_logicle_for(_sample(np.array([-1e6, 10.0, 100.0])), 0).W == 2.25
    # negative A needs W >= -A
    assert default_logicle_for(_sample(np.array([1.0, 10.0])), 0, a=-0.5).W == 0.5
    # without $PnR the largest value is the top of scale
    assert default_logicle_for(_sample(np.array([-5.0, 5000.0]), rng_value=0.0), 0).T == 5000.0
    with pytest.raises(FitError, match=r"FITC-A \(Annexin V\) of sample 'sample': it has no \$PnR"):
        default_logicle_for(_sample(np.array([-5.0, -1.0]), rng_value=0.0), 0)


@pytest.mark.shared
def test_default_logicle_on_compensated_lsr2_data() -> None:
    sample = compensate(read_fcs(shared_file("stains", "CytoExploreRData_Compensation-FITC.fcs")))
    for name in ("Alexa Fluor 488-A", "PE-A", "7-AAD-A"):
        xform = default_logicle_for(sample, name)
        values = sample.column(name)
        r = np.quantile(values[values < 0], 0.05)
        assert xform.T == 262144.0
        width = xform.W
        assert width == pytest.approx((4.5 - math.log10(262144 / abs(r))) / 2, rel=1e-12)
        assert 0.3 < width < 1.5  # FlowJo's automatic widths for LSR II data are in this range
        y = xform.apply(values)
        assert np.isfinite(y).all() and y.max() <= 1.0 + 1e-12
