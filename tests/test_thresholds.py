"""Quadrant thresholds: percentile and valley rules, and thresholds from (simulated and real) controls.

The key acceptance: 99.5th-percentile thresholds from a simulated unstained control, applied to
compensated, pre-gated simulated arms (90% to 38% viable), give quadrant percentages within
1.5 points of the ground truth in every dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cytoflow_res import DesignError, TemplateError, read_fcs
from cytoflow_res.gating import QuadrantGate
from cytoflow_res.gating.preprocess import pregate
from cytoflow_res.gating.templates import Template, load_template, parse_template
from cytoflow_res.gating.thresholds import (
    Thresholds,
    ValleyThreshold,
    display_scale,
    percentile_threshold,
    thresholds_from_controls,
    valley_threshold,
)
from cytoflow_res.sample import Sample
from cytoflow_res.simulate import apoptosis_control_spec
from tests.conftest import shared_file
from tests.test_preprocess import (
    QUADRANTS,
    TEMPLATE_OF,
    SimulatedFile,
    arm_composition,
    arm_spec,
    compensate,
    make_simulator,
)

LOGICLE = {"type": "logicle", "t": 262144, "w": 0.5, "m": 4.5, "a": 0}
# Annexin V on x, PI on y: quadrant index order x-y-, x+y-, x-y+, x+y+
NAMES = ("viable", "early_apoptotic", "necrotic", "late_apoptotic")
ALL_ARMS = [(line, t) for line in ("parental", "resistant")
            for t in ("vehicle", "drugA", "drugB", "drugA+drugB")]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SimulatedFile]:
    """Simulated files shared by the tests of this module."""
    return make_simulator(tmp_path_factory.mktemp("simulated"))


def _variant(name: str, **thresholds: Any) -> Template:
    doc = load_template(name).to_dict()
    doc["thresholds"].update(thresholds)
    return parse_template(doc)


def quadrant_errors(
    sample: Sample, truth: dict[str, Any], template: Template, th: Thresholds
) -> dict[str, float]:
    """Estimated minus true quadrant percentage (of single cells) for one compensated sample."""
    channels = template.resolve_channels(sample)
    gated = pregate(sample, template, channels)
    quad = QuadrantGate((channels["annexin"], channels["pi"]), (th.annexin, th.pi), names=NAMES)
    labels = quad.labels(sample)[gated.singlets]
    return {q: 100.0 * float(np.mean(labels == q)) - truth[f"{q}_pct"] for q in QUADRANTS}


# ------------------------------------------------------------------ percentile

def test_percentile_threshold_basics() -> None:
    assert percentile_threshold(np.arange(1001.0), 99.5) == pytest.approx(995.0)
    assert percentile_threshold(np.array([np.nan, 1.0, 2.0, np.inf, 3.0]), 50) == 2.0
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        percentile_threshold(np.ones(5), 100)
    with pytest.raises(ValueError, match="no finite values"):
        percentile_threshold(np.array([np.nan]), 99.5)


def test_percentile_threshold_on_tied_integer_data() -> None:
    # 10-bit data: the 99.5th percentile lands on a value 3% of events share
    values = np.concatenate([np.arange(970.0), np.full(30, 970.0), [980.0, 990.0]])
    thr = percentile_threshold(values, 99.5)
    assert 970.0 < thr < 980.0
    assert np.mean(values >= thr) <= 0.005


# ------------------------------------------------------------------ valley

def test_valley_between_two_modes() -> None:
    rng = np.random.default_rng(1)
    neg = 300 * np.exp(0.4 * rng.standard_normal(6000))
    pos = 20_000 * np.exp(0.4 * rng.standard_normal(4000))
    result = valley_threshold(np.concatenate([neg, pos]), LOGICLE)
    assert isinstance(result, ValleyThreshold)
    assert result.bimodal
    assert 1_200 < result.value < 6_000
    assert np.mean(neg >= result.value) < 0.01
    assert np.mean(pos < result.value) < 0.01
    # the threshold sits where the display value is
    assert float(display_scale(LOGICLE)(np.array([result.value]))[0]) == pytest.approx(
        result.display_value, abs=0.01)


@pytest.mark.parametrize(
    "transform",
    [{"type": "asinh", "cofactor": 150}, {"type": "log", "decades": 5, "t": 1e6},
     lambda x: np.log10(np.clip(x, 1.0, None))],
)
def test_valley_with_other_display_scales(transform: Any) -> None:
    rng = np.random.default_rng(2)
    values = np.concatenate([400 * np.exp(0.3 * rng.standard_normal(5000)),
                             30_000 * np.exp(0.3 * rng.standard_normal(5000))])
    result = valley_threshold(values, transform)
    assert result.bimodal
    assert 1_500 < result.value < 10_000


def test_valley_on_linear_scale_finds_the_linear_valley() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(100, 10, 5000), rng.normal(200, 10, 5000)])
    result = valley_threshold(values)
    assert result.value == pytest.approx(150, abs=8)


def test_valley_with_one_mode_falls_back_and_says_so() -> None:
    rng = np.random.default_rng(4)
    values = 300 * np.exp(0.4 * rng.standard_normal(10_000))
    result = valley_threshold(values, LOGICLE)
    assert not result.bimodal
    assert "one mode only" in result.note and "99.5th percentile" in result.note
    assert result.value == pytest.approx(percentile_threshold(values, 99.5))
    assert valley_threshold(values, LOGICLE, fallback_q=99).value == pytest.approx(
        percentile_threshold(values, 99))


def test_valley_ignores_a_pile_of_negative_values() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(-300, 60, 3000), 400 * np.exp(0.3 * rng.standard_normal(7000))])
    result = valley_threshold(values, LOGICLE)
    assert not result.bimodal  # the sub-zero pile is not a stained population
    assert result.value > 400


def test_valley_needs_enough_values() -> None:
    with pytest.raises(ValueError, match="at least 100"):
        valley_threshold(np.arange(50.0))


def test_display_scale_validates_specs() -> None:
    with pytest.raises(TemplateError, match=r"transform\.type = 'biexp'"):
        display_scale({"type": "biexp"})
    x = np.array([-10.0, 0.0, 10.0, 1e4])
    np.testing.assert_allclose(display_scale(None)(x), x)
    np.testing.assert_allclose(display_scale({"type": "linear"})(x), x)
    np.testing.assert_allclose(display_scale({"type": "asinh", "cofactor": 10})(x), np.arcsinh(x / 10))
    np.testing.assert_allclose(display_scale({"type": "log", "decades": 4, "t": 1e4})(x), [0, 0, 1, 4])
    logicle = display_scale(LOGICLE)(x)
    assert np.all(np.diff(logicle) > 0)


# ------------------------------------------------------------------ the key acceptance

@pytest.mark.parametrize("dialect", ["modern", "facscalibur", "accuri"])
def test_unstained_p995_quadrants_within_1_5_points_of_truth(
    dialect: str, simulated: Callable[..., SimulatedFile]
) -> None:
    template = load_template(TEMPLATE_OF[dialect])
    thresholds = {}
    for line in ("parental", "resistant"):
        control_spec = apoptosis_control_spec("unstained", arm_spec(arm_composition(line, "vehicle")))
        control, _, _ = simulated(control_spec, dialect, 101)
        thresholds[line] = thresholds_from_controls(template, unstained=compensate(control))
    errors: dict[str, dict[str, float]] = {}
    for line, treatment in ALL_ARMS:
        sample, _, truth = simulated(arm_spec(arm_composition(line, treatment)), dialect, 11)
        errors[f"{line} {treatment}"] = quadrant_errors(compensate(sample), truth, template, thresholds[line])
    worst = max(abs(e) for errs in errors.values() for e in errs.values())
    table = "\n".join(f"  {arm}: " + ", ".join(f"{q} {e:+.2f}" for q, e in errs.items())
                      for arm, errs in errors.items())
    assert worst <= 1.5, f"{dialect}: quadrant errors (estimate - truth, points)\n{table}"


def test_thresholds_record_their_source(simulated: Callable[..., SimulatedFile]) -> None:
    template = load_template("generic_modern")
    spec = apoptosis_control_spec("unstained", arm_spec(arm_composition("parental", "vehicle")))
    control, _, _ = simulated(spec, "modern", 101)
    th = thresholds_from_controls(template, unstained=compensate(control))
    assert th.method == "percentile"
    assert "99.5th percentile of unstained control" in th.source
    assert th.details["annexin_channel"] == "FITC-A" and th.details["pi_channel"] == "PE-A"
    assert th.details["unstained_events_singlets"] < th.details["unstained_events_total"]
    # ~1000 and ~850 on the model scale: 99.5% of unstained autofluorescence
    assert 700 < th.annexin < 1_400 and 600 < th.pi < 1_200
    doc = th.to_dict()
    assert doc["annexin_threshold"] == th.annexin and doc["threshold_method"] == "percentile"


@pytest.mark.parametrize("method", ["percentile", "valley"])
def test_single_stain_controls(method: str, simulated: Callable[..., SimulatedFile]) -> None:
    template = _variant("generic_modern", method=method, control="single_stains")
    base = arm_spec(arm_composition("parental", "vehicle"))
    annexin_only = compensate(simulated(apoptosis_control_spec("annexin_only", base), "modern", 102)[0])
    pi_only = compensate(simulated(apoptosis_control_spec("pi_only", base), "modern", 102)[0])
    th = thresholds_from_controls(template, annexin_only=annexin_only, pi_only=pi_only)
    assert th.method == method
    if method == "valley":
        assert th.details["annexin_bimodal"] and th.details["pi_bimodal"]
        assert th.notes == ()
    worst = 0.0
    for treatment in ("vehicle", "drugA+drugB"):
        sample, _, truth = simulated(arm_spec(arm_composition("parental", treatment)), "modern", 11)
        errs = quadrant_errors(compensate(sample), truth, template, th)
        worst = max(worst, *(abs(e) for e in errs.values()))
    assert worst <= 1.5


def test_fixed_thresholds_need_no_controls() -> None:
    template = _variant("generic_modern", method="fixed", annexin=1500.0, pi=1200.0)
    th = thresholds_from_controls(template)
    assert (th.annexin, th.pi, th.method) == (1500.0, 1200.0, "fixed")
    assert "fixed in template 'generic_modern'" in th.source


def test_missing_controls_and_wrong_assay() -> None:
    with pytest.raises(DesignError, match=r"needs the unstained control; none was given: add a file"):
        thresholds_from_controls(load_template("generic_modern"))
    with pytest.raises(DesignError, match="needs the pi_only control"):
        thresholds_from_controls(_variant("generic_modern", control="single_stains"))
    with pytest.raises(TemplateError, match="is a cellcycle template"):
        thresholds_from_controls(load_template("generic_cellcycle"))


# ------------------------------------------------------------------ real data

@pytest.mark.shared
def test_real_unstained_p995_thresholds_match_the_manifest() -> None:
    unstained = read_fcs(shared_file("stains", "CytoExploreRData_Compensation-Unstained.fcs"))
    # MANIFEST: unstained p99.5 thresholds (raw, all events): 488-A 3678, PE-A 2522, 7-AAD-A 4448
    for channel, expected in (("Alexa Fluor 488-A", 3678), ("PE-A", 2522), ("7-AAD-A", 4448)):
        assert percentile_threshold(np.asarray(unstained.column(channel, raw=True)), 99.5) == pytest.approx(
            expected, abs=1.0)
    # the same through a template without pre-gates
    doc = load_template("generic_modern").to_dict()
    doc["pregates"] = {"debris": {"method": "none"}, "singlets": {"method": "none"}, "gatingml": None}
    raw_template = parse_template(doc)
    th = thresholds_from_controls(raw_template, unstained=unstained)
    assert (th.annexin, th.pi) == (pytest.approx(3678, abs=1.0), pytest.approx(2522, abs=1.0))
    doc["channels"]["pi"] = ["7-AAD-A"]
    th = thresholds_from_controls(parse_template(doc), unstained=unstained)
    assert th.pi == pytest.approx(4448, abs=1.0)
    # pre-gated (debris + singlets), as the samples are: doublets were the brightest events
    gated = thresholds_from_controls(load_template("generic_modern"), unstained=unstained)
    assert 0.6 * 3678 < gated.annexin < 3678 and 0.6 * 2522 < gated.pi < 2522
    assert gated.details["unstained_events_singlets"] < 50_000


@pytest.mark.shared
def test_real_single_stain_valleys() -> None:
    # MANIFEST: 15.9% of the FITC control and 30.4% of the PE control are above the unstained p99.5
    for name, channel, positive in (("FITC", "Alexa Fluor 488-A", 0.159), ("PE", "PE-A", 0.304)):
        values = np.asarray(read_fcs(shared_file("stains", f"CytoExploreRData_Compensation-{name}.fcs"))
                            .column(channel))
        result = valley_threshold(values, LOGICLE)
        assert result.bimodal
        assert float(np.mean(values >= result.value)) == pytest.approx(positive, abs=0.03)
    # 7-AAD control: 2.5% dead cells make no second mode; the fallback says so
    values = np.asarray(read_fcs(shared_file("stains", "CytoExploreRData_Compensation-7AAD.fcs"))
                        .column("7-AAD-A"))
    result = valley_threshold(values, LOGICLE)
    assert not result.bimodal
    assert result.value == pytest.approx(percentile_threshold(values, 99.5))
