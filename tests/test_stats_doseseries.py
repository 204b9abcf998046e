"""Dose-series combination analysis (Chou-Talalay / CompuSyn) on experiment tables.

Truth comes from outside the code under test: tables simulated from known median-effect
parameters with a combination built to a known combination index (solved numerically with
scipy's brentq), and a published dose-effect data set with reference values from an
independent implementation.
"""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from cytoflow_res import stats
from cytoflow_res.errors import CytoflowResError, DesignError, FitError

FA_LEVELS = (0.5, 0.75, 0.9)


# --------------------------------------------------------------------------- simulation
def _fa(dose: float, dm: float, m: float) -> float:
    """Median-effect equation, fa = 1 / (1 + (Dm / D)^m)."""
    return 1.0 / (1.0 + (dm / dose) ** m)


def _dx(fa: float, dm: float, m: float) -> float:
    return dm * (fa / (1.0 - fa)) ** (1.0 / m)


def _combination_fa(dose_a: float, dose_b: float, a: tuple[float, float], b: tuple[float, float],
                    ci: float) -> float:
    """The fa at which d_a / Dx_a(fa) + d_b / Dx_b(fa) = ci (Loewe additivity when ci = 1)."""
    def excess(logit: float) -> float:
        # Dx = Dm (fa / (1 - fa))^(1/m) = Dm exp(logit / m)
        return dose_a / (a[0] * math.exp(logit / a[1])) + dose_b / (b[0] * math.exp(logit / b[1])) - ci

    logit = brentq(excess, -40.0, 40.0, xtol=1e-14)
    return 1.0 / (1.0 + math.exp(-logit))


def _simulate(
    *, a: tuple[float, float] = (1.0, 1.5), b: tuple[float, float] = (10.0, 1.5), ci: float = 1.0,
    ratio: float = 10.0, measure: str = "total_apoptotic_pct", vehicle: float = 8.0, sd: float = 0.3,
    n_rep: int = 3, seed: int = 0, cell_line: str = "parental",
    singles: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
    combos: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0),
    extra_combos: tuple[tuple[float, float], ...] = (),
) -> pd.DataFrame:
    """One cell line's experiment: vehicle, each drug alone at ``singles`` x Dm, and A+B at
    ``combos`` x Dm_a of drug A with dose_b = ratio x dose_a, plus ``extra_combos`` (d_a, d_b).
    Replicates scatter with Gaussian noise of ``sd`` percentage points around the truth."""
    rng = np.random.default_rng(seed)
    rows = []

    def arm(treatment: str, dose_a: float, dose_b: float, fa: float) -> None:
        viable = measure.startswith("viable")
        mean = vehicle * (1.0 - fa) if viable else vehicle + (100.0 - vehicle) * fa
        for replicate in range(1, n_rep + 1):
            rows.append({
                "cell_line": cell_line, "treatment": treatment, "replicate": replicate,
                "role": "sample", "status": "ok",
                "drug_a": "drugA" if dose_a > 0 else None, "dose_a": dose_a,
                "drug_b": "drugB" if dose_b > 0 else None, "dose_b": dose_b,
                measure: mean + rng.normal(0.0, sd) if sd else mean,
            })

    arm("vehicle", 0.0, 0.0, 0.0)
    for k in singles:
        arm("drugA", a[0] * k, 0.0, _fa(a[0] * k, *a))
    for k in singles:
        arm("drugB", 0.0, b[0] * k, _fa(b[0] * k, *b))
    for k in combos:
        dose_a = a[0] * k
        arm("drugA+drugB", dose_a, ratio * dose_a, _combination_fa(dose_a, ratio * dose_a, a, b, ci))
    for dose_a, dose_b in extra_combos:
        arm("drugA+drugB", dose_a, dose_b, _combination_fa(dose_a, dose_b, a, b, ci))
    return pd.DataFrame(rows)


def _kind(out: pd.DataFrame, kind: str) -> pd.DataFrame:
    return out[out["kind"] == kind].reset_index(drop=True)


def _fit(out: pd.DataFrame, agent: str) -> pd.Series:
    rows = out[(out["kind"] == "fit") & (out["agent"] == agent)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --------------------------------------------------------------------------- ground truth
def test_noise_free_table_gives_exact_parameters_and_ci() -> None:
    # Equal slopes: a Loewe-additive mixture then follows the median-effect equation exactly,
    # with Dm_mix = 1 / (p / Dm_a + q / Dm_b) (p, q the dose fractions).
    table = _simulate(sd=0.0, ci=0.5)
    out = stats.dose_series_synergy(table)
    assert list(out.columns) == ["cell_line", *stats.DOSE_SERIES_COLUMNS]
    fit_a, fit_b = _fit(out, "drugA"), _fit(out, "drugB")
    assert fit_a["dm"] == pytest.approx(1.0, rel=1e-9) and fit_a["m"] == pytest.approx(1.5, rel=1e-9)
    assert fit_b["dm"] == pytest.approx(10.0, rel=1e-9) and fit_b["m"] == pytest.approx(1.5, rel=1e-9)
    assert fit_a["r"] == pytest.approx(1.0) and fit_a["n_doses"] == 5 and fit_a["n"] == 15
    combo = _fit(out, "drugA+drugB (1:10)")
    p, q = 1 / 11, 10 / 11
    assert combo["dm"] == pytest.approx(0.5 / (p / 1.0 + q / 10.0), rel=1e-9)  # CI 0.5 halves the dose
    assert combo["m"] == pytest.approx(1.5, rel=1e-9) and combo["ratio"] == 10.0
    levels = _kind(out, "fa_level")
    np.testing.assert_allclose(levels["fa"], FA_LEVELS)
    np.testing.assert_allclose(levels["ci"], 0.5, rtol=1e-9)
    # equipotent ratio: each drug carries half of the CI, so DRI = 2 / CI for both
    np.testing.assert_allclose(levels[["dri_a", "dri_b"]], 4.0, rtol=1e-9)
    np.testing.assert_allclose(levels["dose_b"] / levels["dose_a"], 10.0)
    np.testing.assert_allclose(levels["dx_a"], [_dx(f, 1.0, 1.5) for f in FA_LEVELS], rtol=1e-9)
    points = _kind(out, "point")
    np.testing.assert_allclose(points["ci"], 0.5, rtol=1e-9)
    assert set(points["call"]) == {"synergy"} and (points["n"] == 3).all()
    assert (out["note"] == "").all()


@pytest.mark.parametrize("measure", ["total_apoptotic_pct", "viable_pct"])
@pytest.mark.parametrize(("true_ci", "call"), [(1.0, "additive"), (0.5, "synergy"), (1.6, "antagonism")])
def test_simulated_triplicates_recover_parameters_and_ci(measure: str, true_ci: float, call: str) -> None:
    vehicle = 90.0 if measure == "viable_pct" else 8.0
    table = _simulate(ci=true_ci, measure=measure, vehicle=vehicle, sd=0.4, seed=7)
    out = stats.dose_series_synergy(table, measure)
    assert set(out["direction"]) == {"decrease" if measure == "viable_pct" else "increase"}
    for agent, (dm, m) in (("drugA", (1.0, 1.5)), ("drugB", (10.0, 1.5))):
        fit = _fit(out, agent)
        assert fit["dm"] == pytest.approx(dm, rel=0.05)
        assert fit["m"] == pytest.approx(m, rel=0.05)
        assert fit["r"] > 0.995
    levels = _kind(out, "fa_level")
    np.testing.assert_allclose(levels["ci"], true_ci, rtol=0.06)
    np.testing.assert_allclose(levels[["dri_a", "dri_b"]], 2.0 / true_ci, rtol=0.08)
    assert set(levels["call"]) == {call}
    points = _kind(out, "point")
    np.testing.assert_allclose(points["ci"], true_ci, rtol=0.08)
    assert set(points["call"]) == {call}


def test_unequal_slopes_point_ci_is_unbiased_and_fa_level_ci_approximates() -> None:
    # With slopes 1 and 2.5 a Loewe-additive mixture is not a median-effect curve; the CI from
    # the fitted mixture line is then only approximately 1 (a property of the method), while
    # the CI at each tested combination uses the observed fa and stays at 1.
    table = _simulate(a=(2.0, 1.0), b=(5.0, 2.5), ratio=2.5, ci=1.0, sd=0.0,
                      combos=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0))
    out = stats.dose_series_synergy(table)
    np.testing.assert_allclose(_kind(out, "point")["ci"], 1.0, rtol=1e-9)
    levels = _kind(out, "fa_level")["ci"].to_numpy()
    assert np.all(np.abs(levels - 1.0) < 0.15)
    assert not np.allclose(levels, 1.0, rtol=0.01)


def test_non_constant_ratio_points_get_point_rows_only() -> None:
    extra = ((0.5, 1.0), (2.0, 1.0), (0.25, 20.0))
    table = _simulate(sd=0.0, ci=0.7, extra_combos=extra)
    out = stats.dose_series_synergy(table)
    assert list(_kind(out, "fit")["agent"]) == ["drugA", "drugB", "drugA+drugB (1:10)"]
    assert set(_kind(out, "fa_level")["agent"]) == {"drugA+drugB (1:10)"}
    points = _kind(out, "point")
    lone = points[points["agent"] != "drugA+drugB (1:10)"]
    assert sorted(lone["agent"]) == ["drugA+drugB (1:2)", "drugA+drugB (1:80)", "drugA+drugB (2:1)"]
    np.testing.assert_allclose(lone["ci"], 0.7, rtol=1e-9)
    np.testing.assert_allclose(lone["ratio"], lone["dose_b"] / lone["dose_a"])


def test_groups_are_analysed_separately() -> None:
    table = pd.concat([
        _simulate(cell_line="parental", ci=0.5, seed=1),
        _simulate(cell_line="resistant", ci=1.0, a=(3.0, 1.2), b=(30.0, 1.2), seed=2),
    ], ignore_index=True)
    out = stats.dose_series_synergy(table)
    assert list(dict.fromkeys(out["cell_line"])) == ["parental", "resistant"]
    resistant = out[out["cell_line"] == "resistant"]
    assert _fit(resistant, "drugA")["dm"] == pytest.approx(3.0, rel=0.05)
    calls = out[out["kind"] == "fa_level"].groupby("cell_line")["call"].agg(set)
    assert calls.to_dict() == {"parental": {"synergy"}, "resistant": {"additive"}}
    pooled = stats.dose_series_synergy(table[table["cell_line"] == "parental"], by=None)
    assert "cell_line" not in pooled.columns
    np.testing.assert_allclose(pooled["ci"], out.loc[out["cell_line"] == "parental", "ci"])


# --------------------------------------------------------------------------- published data
# Chou TC, Motzer RJ, Tong Y, Bosl GJ (1994) J Natl Cancer Inst 86:1517-1524, Table 3: growth
# inhibition (fa) of human teratocarcinoma 833K cells by paclitaxel (taxol), cisplatin and their
# 1:100 constant-ratio combination, as transcribed in the medianeffect R package
# (github.com/jhchou/medianeffect, data-raw/chou_1994_example.R). The reference Dm, m and CI
# were computed with the independent `synergy` package 1.0.0 (D. J. Wooten; Hill_CI median-effect
# fit and CombinationIndex). The published Dm, m and CI values were not available to us.
TAXOL = ((0.002, 0.429), (0.004, 0.708), (0.005, 0.761), (0.01, 0.882), (0.02, 0.932))
CISPLATIN = ((0.05, 0.055), (0.1, 0.233), (0.2, 0.301), (0.5, 0.559), (1.0, 0.821), (2.0, 0.953))
TAXOL_CISPLATIN = ((0.001, 0.1, 0.45), (0.002, 0.2, 0.701), (0.005, 0.5, 0.910), (0.01, 1.0, 0.968))
REFERENCE_FITS = {  # agent: (Dm, m)
    "taxol": (0.002167772116, 1.247829351),
    "cisplatin": (0.3201556695, 1.459899574),
    "taxol+cisplatin (1:100)": (0.1158611604, 1.571596641),
}
REFERENCE_POINT_CI = (0.90015863, 0.81457718, 0.68131836, 0.60240996)
# CI at fa 0.5, 0.75, 0.9 from synergy's fitted curves and Chou's constant-ratio CI equation
REFERENCE_LEVEL_CI = (0.88748634, 0.78104656, 0.69013934)


def _chou_1994_table() -> pd.DataFrame:
    # vehicle 0% with direction "increase": fa = measure / 100, the published fractions
    rows = [{"treatment": "vehicle", "drug_a": None, "dose_a": 0.0, "drug_b": None, "dose_b": 0.0,
             "inhibition_pct": 0.0}]
    rows += [{"treatment": "taxol", "drug_a": "taxol", "dose_a": d, "drug_b": None, "dose_b": 0.0,
              "inhibition_pct": 100 * fa} for d, fa in TAXOL]
    rows += [{"treatment": "cisplatin", "drug_a": None, "dose_a": 0.0, "drug_b": "cisplatin", "dose_b": d,
              "inhibition_pct": 100 * fa} for d, fa in CISPLATIN]
    rows += [{"treatment": "taxol+cisplatin", "drug_a": "taxol", "dose_a": da, "drug_b": "cisplatin",
              "dose_b": db, "inhibition_pct": 100 * fa} for da, db, fa in TAXOL_CISPLATIN]
    return pd.DataFrame(rows)


def test_chou_1994_taxol_cisplatin_matches_independent_implementation() -> None:
    out = stats.dose_series_synergy(_chou_1994_table(), "inhibition_pct", by=None)
    for agent, (dm, m) in REFERENCE_FITS.items():
        fit = _fit(out, agent)
        assert fit["dm"] == pytest.approx(dm, rel=1e-8)
        assert fit["m"] == pytest.approx(m, rel=1e-8)
    points = _kind(out, "point")
    np.testing.assert_allclose(points["fa"], [fa for *_, fa in TAXOL_CISPLATIN], rtol=1e-12)
    np.testing.assert_allclose(points["ci"], REFERENCE_POINT_CI, rtol=1e-7)
    assert list(points["call"]) == ["additive", "synergy", "synergy", "synergy"]
    levels = _kind(out, "fa_level")
    np.testing.assert_allclose(levels["ci"], REFERENCE_LEVEL_CI, rtol=1e-7)
    # the median-effect plot's correlation, from scipy directly
    d, fa = np.array(TAXOL).T
    r = np.corrcoef(np.log(d), np.log(fa / (1 - fa)))[0, 1]
    assert _fit(out, "taxol")["r"] == pytest.approx(r, rel=1e-12)


def test_chou_1994_against_synergy_package_when_installed() -> None:
    synergy_single = pytest.importorskip("synergy.single")
    synergy_combination = pytest.importorskip("synergy.combination")
    out = stats.dose_series_synergy(_chou_1994_table(), "inhibition_pct", by=None)
    d_a, fa_a = np.array(TAXOL).T
    d_b, fa_b = np.array(CISPLATIN).T
    model_a, model_b = synergy_single.Hill_CI(), synergy_single.Hill_CI()
    model_a.fit(d_a, 1 - fa_a)
    model_b.fit(d_b, 1 - fa_b)
    assert _fit(out, "taxol")["dm"] == pytest.approx(model_a.C, rel=1e-9)
    assert _fit(out, "cisplatin")["m"] == pytest.approx(model_b.h, rel=1e-9)
    combo = np.array(TAXOL_CISPLATIN)
    model = synergy_combination.CombinationIndex(drug1_model=model_a, drug2_model=model_b)
    expected = model.fit(combo[:, 0], combo[:, 1], 1 - combo[:, 2])
    np.testing.assert_allclose(_kind(out, "point")["ci"], expected, rtol=1e-9)


# --------------------------------------------------------------------------- edge cases
def test_fa_outside_unit_interval_is_left_out_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    table = _simulate(sd=0.0)
    # a dose with no effect (mean below the vehicle) and one that kills everything
    low = table[(table["treatment"] == "drugA") & (table["dose_a"] == 0.25)].assign(
        dose_a=0.01, total_apoptotic_pct=7.0)
    high = low.assign(dose_a=100.0, total_apoptotic_pct=100.0)
    with caplog.at_level(logging.WARNING, logger="cytoflow_res.stats"):
        out = stats.dose_series_synergy(pd.concat([table, low, high], ignore_index=True))
    fit = _fit(out, "drugA")
    assert fit["n_doses"] == 5 and fit["n"] == 15
    assert fit["dm"] == pytest.approx(1.0, rel=1e-9)
    assert "left out dose 0.01 (fa -0.0109), 100 (fa 1)" in fit["note"]
    assert "fa outside (0, 1)" in fit["note"]
    assert _fit(out, "drugB")["note"] == ""
    assert "left out dose 0.01" in caplog.text


def test_fewer_than_two_usable_fa_is_a_fit_error() -> None:
    table = _simulate(sd=0.0)
    weak = table["treatment"] == "drugB"
    table.loc[weak & (table["dose_b"] < 40), "total_apoptotic_pct"] = 5.0  # below the vehicle's 8%
    with pytest.raises(FitError, match=r"'drugB' alone has fa strictly between 0 and 1 at fewer than two"):
        stats.dose_series_synergy(table)


def test_combination_points_outside_unit_interval() -> None:
    table = _simulate(sd=0.0, ci=0.5)
    table.loc[table["dose_a"].eq(2.0) & table["dose_b"].gt(0), "total_apoptotic_pct"] = 100.0
    out = stats.dose_series_synergy(table)
    points = _kind(out, "point")
    full = points[points["dose_a"] == 2.0].iloc[0]
    assert math.isnan(full["ci"]) and full["call"] == "undetermined"
    assert full["note"] == "fa 1 outside (0, 1): no CI"
    assert "left out total dose 22 (fa 1)" in _fit(out, "drugA+drugB (1:10)")["note"]
    np.testing.assert_allclose(points["ci"].dropna(), 0.5, rtol=1e-9)


def test_combination_series_that_cannot_be_fitted_keeps_its_points() -> None:
    table = _simulate(sd=0.0, ci=0.5, combos=(1.0, 2.0, 4.0))
    table.loc[table["dose_a"].ge(2.0) & table["dose_b"].gt(0), "total_apoptotic_pct"] = 100.0
    out = stats.dose_series_synergy(table)
    combo = _fit(out, "drugA+drugB (1:10)")
    assert math.isnan(combo["dm"]) and combo["n_doses"] == 0
    assert "not fitted" in combo["note"]
    assert _kind(out, "fa_level").empty
    assert len(_kind(out, "point")) == 3


def test_missing_vehicle_names_the_arms_found() -> None:
    table = _simulate()
    table.loc[table["treatment"] == "vehicle", "treatment"] = "DMSO"
    with pytest.raises(DesignError, match=r"no usable vehicle arm 'vehicle'.*'DMSO' \(n=3\).*"
                                          r"'drugA\+drugB' \(n=15\).*pass vehicle="):
        stats.dose_series_synergy(table)
    out = stats.dose_series_synergy(table, vehicle="DMSO")
    assert _fit(out, "drugA")["dm"] == pytest.approx(1.0, rel=0.05)


def test_one_dose_only_is_a_design_error() -> None:
    table = _simulate(singles=(1.0,))
    with pytest.raises(DesignError, match=r"1 usable dose\(s\) of 'drugA' alone \(1\).*use bliss\(\)"):
        stats.dose_series_synergy(table)


def test_failed_and_control_rows_are_excluded() -> None:
    table = _simulate(seed=3)
    expected = stats.dose_series_synergy(table)
    broken = table.iloc[[0, 10, 40]].assign(status="failed", total_apoptotic_pct=99.0)
    nan_row = table.iloc[[5]].assign(total_apoptotic_pct=np.nan)
    control = table.iloc[[0]].assign(role="unstained", total_apoptotic_pct=0.5)
    noisy = pd.concat([table, broken, nan_row, control], ignore_index=True)
    pd.testing.assert_frame_equal(stats.dose_series_synergy(noisy), expected)
    # with role=None the unstained row becomes a vehicle replicate and changes the result
    other = stats.dose_series_synergy(noisy, role=None)
    assert not np.allclose(other["ci"].dropna(), expected["ci"].dropna())


def test_a_drug_may_sit_in_any_dose_column() -> None:
    table = _simulate(seed=4)
    expected = stats.dose_series_synergy(table)
    swapped = table.copy()
    alone_b = swapped["treatment"] == "drugB"
    swapped.loc[alone_b, ["drug_a", "dose_a"]] = swapped.loc[alone_b, ["drug_b", "dose_b"]].to_numpy()
    swapped.loc[alone_b, ["drug_b", "dose_b"]] = [None, 0.0]
    pd.testing.assert_frame_equal(stats.dose_series_synergy(swapped), expected)


def test_three_drugs_need_a_choice() -> None:
    table = _simulate(seed=5)
    third = table[table["treatment"] == "drugB"].assign(
        treatment="drugC", drug_b=None, dose_b=0.0, drug_c="drugC", dose_c=table["dose_b"])
    table = pd.concat([table.assign(drug_c=None, dose_c=np.nan), third], ignore_index=True)
    with pytest.raises(DesignError, match=r"gives 3 drug\(s\) \('drugA', 'drugB', 'drugC'\).*pass drugs="):
        stats.dose_series_synergy(table)
    out = stats.dose_series_synergy(table, drugs=("drugA", "drugB"))
    assert set(out["drug_b"]) == {"drugB"}
    assert len(_kind(out, "point")) == 5
    with pytest.raises(DesignError, match=r"no usable combination of 'drugA' and 'drugC'"):
        stats.dose_series_synergy(table, drugs=("drugA", "drugC"))


def test_other_design_errors() -> None:
    table = _simulate()
    with pytest.raises(DesignError, match=r"no dose columns.*use bliss\(\)"):
        stats.dose_series_synergy(table.drop(columns=["dose_a", "dose_b"]))
    with pytest.raises(DesignError, match=r"has no column 'cell_line'"):
        stats.dose_series_synergy(table.drop(columns=["cell_line"]))
    bad = table.astype({"dose_a": object})
    bad.loc[3, "dose_a"] = "0.25 uM"
    with pytest.raises(DesignError, match=r"column 'dose_a' has doses that are not numbers \('0.25 uM'\)"):
        stats.dose_series_synergy(bad)
    negative = table.copy()
    negative.loc[3, "dose_a"] = -1.0
    with pytest.raises(DesignError, match=r"column 'dose_a' has doses -1; doses must be finite and >= 0"):
        stats.dose_series_synergy(negative)
    dosed_vehicle = table.copy()
    dosed_vehicle.loc[0, ["drug_a", "dose_a"]] = ["drugA", 1.0]
    with pytest.raises(DesignError, match=r"vehicle arm 'vehicle' has a row with a drug given \(drugA=1\)"):
        stats.dose_series_synergy(dosed_vehicle)
    dead_vehicle = table.assign(viable_pct=0.0)
    with pytest.raises(DesignError, match=r"vehicle mean of 'viable_pct' is 0%.*direction='decrease'"):
        stats.dose_series_synergy(dead_vehicle, "viable_pct")
    no_combo = table[table["treatment"] != "drugA+drugB"]
    with pytest.raises(DesignError, match=r"no usable combination of 'drugA' and 'drugB'"):
        stats.dose_series_synergy(no_combo)


def test_argument_errors() -> None:
    table = _simulate()
    with pytest.raises(ValueError, match=r"fa_levels must be fractions strictly between 0 and 1"):
        stats.dose_series_synergy(table, fa_levels=(50, 75))
    with pytest.raises(ValueError, match=r"direction must be 'increase' or 'decrease', got 'up'"):
        stats.dose_series_synergy(table, direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"drugs must name two different drugs"):
        stats.dose_series_synergy(table, drugs=("drugA", "drugA"))


def test_without_drug_or_treatment_columns() -> None:
    # drugs are then named after their dose columns, and the vehicle is the rows with no drug
    table = _simulate(sd=0.0, ci=0.5).drop(columns=["drug_a", "drug_b", "treatment"])
    out = stats.dose_series_synergy(table)
    assert list(_kind(out, "fit")["agent"]) == ["dose_a", "dose_b", "dose_a+dose_b (1:10)"]
    np.testing.assert_allclose(_kind(out, "fa_level")["ci"], 0.5, rtol=1e-9)


# --------------------------------------------------------------------------- has_dose_series
def _single_dose_table() -> pd.DataFrame:
    rows = []
    for treatment, dose_a, dose_b, value in (("vehicle", 0, 0, 8), ("drugA", 1, 0, 20),
                                             ("drugB", 0, 10, 25), ("drugA+drugB", 1, 10, 50)):
        for replicate in (1, 2, 3):
            rows.append({"cell_line": "parental", "treatment": treatment, "replicate": replicate,
                         "role": "sample", "status": "ok", "drug_a": "drugA" if dose_a else None,
                         "dose_a": float(dose_a), "drug_b": "drugB" if dose_b else None,
                         "dose_b": float(dose_b), "total_apoptotic_pct": value + replicate})
    return pd.DataFrame(rows)


def test_has_dose_series() -> None:
    single = _single_dose_table()
    assert stats.has_dose_series(single) is False
    assert stats.has_dose_series(single.drop(columns=["dose_a", "dose_b"])) is False
    assert stats.has_dose_series(_simulate()) is True
    # a second dose of drug A only in failed rows, or only in control rows, does not count
    extra = single[single["treatment"] == "drugA"].assign(dose_a=2.0)
    assert stats.has_dose_series(pd.concat([single, extra.assign(status="failed")])) is False
    assert stats.has_dose_series(pd.concat([single, extra.assign(role="unstained")])) is False
    assert stats.has_dose_series(pd.concat([single, extra.assign(role="unstained")]), role=None) is True
    # two doses in different cell lines are not a series; in one cell line they are
    other_line = extra.assign(cell_line="resistant")
    assert stats.has_dose_series(pd.concat([single, other_line])) is False
    assert stats.has_dose_series(pd.concat([single, other_line]), by=None) is True
    # a combination at two doses is not a single-agent series
    combo = single[single["treatment"] == "drugA+drugB"].assign(dose_a=2.0, dose_b=20.0)
    assert stats.has_dose_series(pd.concat([single, combo])) is False


def test_single_dose_table_goes_to_bliss_not_here() -> None:
    single = _single_dose_table()
    with pytest.raises(DesignError, match=r"1 usable dose\(s\) of 'drugA' alone"):
        stats.dose_series_synergy(single)
    assert len(stats.bliss(single, n_boot=200)) == 1


def test_public_api() -> None:
    for name in ("dose_series_synergy", "has_dose_series", "synergy_surface", "DOSE_SERIES_COLUMNS",
                 "SURFACE_COLUMNS"):
        assert name in stats.__all__


# --------------------------------------------------------------------------- synergy_surface
def test_synergy_surface_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "synergy", None)  # makes `import synergy` fail
    with pytest.raises(CytoflowResError, match=r"pip install 'cytoflow-res\[synergy\]'"):
        stats.synergy_surface(_simulate())


@pytest.mark.parametrize(("true_ci", "sign"), [(1.0, 0), (0.5, 1), (1.6, -1)])
def test_synergy_surface_loewe_on_a_ray_design(true_ci: float, sign: int) -> None:
    pytest.importorskip("synergy")
    out = stats.synergy_surface(_simulate(ci=true_ci, sd=0.0), model="loewe")
    assert list(out.columns) == ["cell_line", *stats.SURFACE_COLUMNS]
    assert len(out) == 5 and set(out["model"]) == {"loewe"} and (out["n"] == 3).all()
    delta = out["delta"].to_numpy()
    if sign == 0:
        np.testing.assert_allclose(delta, 0.0, atol=1e-4)  # Hill fits of exact data
    else:
        assert np.all(np.sign(delta) == sign) and np.all(np.abs(delta) > 0.03)


def _checkerboard(*, bliss_excess: float, a: tuple[float, float] = (1.0, 1.5),
                  b: tuple[float, float] = (10.0, 1.5)) -> pd.DataFrame:
    """Every pairing of 5 doses of each drug; fa of the pair = Bliss + ``bliss_excess``."""
    rows = []
    scale = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    for ka in scale:
        for kb in scale:
            fa_a = _fa(a[0] * ka, *a) if ka else 0.0
            fa_b = _fa(b[0] * kb, *b) if kb else 0.0
            fa = fa_a + fa_b - fa_a * fa_b + (bliss_excess if ka and kb else 0.0)
            treatment = "+".join(name for name, k in (("drugA", ka), ("drugB", kb)) if k) or "vehicle"
            rows.append({"cell_line": "parental", "treatment": treatment, "drug_a": "drugA",
                         "dose_a": a[0] * ka, "drug_b": "drugB", "dose_b": b[0] * kb,
                         "total_apoptotic_pct": 10.0 + 90.0 * min(fa, 0.999)})
    return pd.DataFrame(rows)


def test_synergy_surface_zip_on_a_checkerboard() -> None:
    pytest.importorskip("synergy")
    independent = stats.synergy_surface(_checkerboard(bliss_excess=0.0), model="zip")
    assert len(independent) == 25
    np.testing.assert_allclose(independent["delta"], 0.0, atol=1e-6)
    synergistic = stats.synergy_surface(_checkerboard(bliss_excess=0.05), model="zip")
    assert synergistic["delta"].mean() > 0.02
    with pytest.raises(DesignError, match=r"model='zip' needs a checkerboard.*use model='loewe'"):
        stats.synergy_surface(_simulate(), model="zip")
    with pytest.raises(ValueError, match=r"model must be 'loewe' or 'zip'"):
        stats.synergy_surface(_simulate(), model="bliss")  # type: ignore[arg-type]
