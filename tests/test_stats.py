"""Statistics: against scipy called directly, textbook ANOVA tables, planted synergy, simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cytoflow_res import stats
from cytoflow_res.errors import DesignError, FitError
from tests.conftest import REPO_ROOT

ARMS = ("vehicle", "drugA", "drugB", "drugA+drugB")


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def truth() -> dict:
    with (REPO_ROOT / "example_fcs" / "truth.json").open() as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def apoptosis(truth: dict) -> pd.DataFrame:
    """Per-sample apoptosis table of the committed example: each file's realised percentages."""
    rows = []
    for file, record in truth["files"].items():
        if record["assay"] != "apoptosis":
            continue
        t = record["truth"]
        rows.append({
            "file": file, "cell_line": record["cell_line"], "treatment": record["treatment"],
            "replicate": record["replicate"], "role": record["role"], "status": "ok",
            "viable_pct": t["viable_pct"], "early_apoptotic_pct": t["early_apoptotic_pct"],
            "late_apoptotic_pct": t["late_apoptotic_pct"], "necrotic_pct": t["necrotic_pct"],
            "total_apoptotic_pct": t["early_apoptotic_pct"] + t["late_apoptotic_pct"],
        })
    return pd.DataFrame(rows)


def _values(table: pd.DataFrame, cell_line: str, measure: str) -> dict[str, np.ndarray]:
    sub = table[(table["cell_line"] == cell_line) & (table["role"] == "sample")]
    return {arm: sub.loc[sub["treatment"] == arm, measure].to_numpy(float) for arm in ARMS}


def _planted_table(truth: dict, measure: str, *, offset: float = 1.0) -> pd.DataFrame:
    """Three replicates per arm at planted mean - offset, mean, mean + offset (mean exact)."""
    rows = []
    for cell_line, arms in truth["arms"]["apoptosis"].items():
        for arm, planted in arms.items():
            value = (planted["early_apoptotic_pct"] + planted["late_apoptotic_pct"]
                     if measure == "total_apoptotic_pct" else planted[measure])
            for r, delta in enumerate((-offset, 0.0, offset), start=1):
                rows.append({"cell_line": cell_line, "treatment": arm, "replicate": r,
                             measure: value + delta})
    return pd.DataFrame(rows)


def _simulate_bliss(n_experiments: int, *, extra: float, seed: int, vehicle: float = 90.0,
                    fa_a: float = 0.20, fa_b: float = 0.25, n_rep: int = 3) -> pd.DataFrame:
    """Experiments in the spirit of ``cytoflow_res.simulate``: each replicate's viable fraction
    scatters around the arm mean (Beta, concentration 250 as the example's Dirichlet) and is
    then counted on 4700 single cells. ``extra`` is the planted excess over Bliss."""
    rng = np.random.default_rng(seed)
    fa_ab = fa_a + fa_b - fa_a * fa_b + extra
    arm_means = (vehicle, vehicle * (1 - fa_a), vehicle * (1 - fa_b), vehicle * (1 - fa_ab))
    means = dict(zip(ARMS, arm_means, strict=True))
    n_cells, conc = 4700, 250.0
    frames = []
    for arm, mean in means.items():
        p = rng.beta(conc * mean / 100, conc * (1 - mean / 100), size=(n_experiments, n_rep))
        viable = 100.0 * rng.binomial(n_cells, p) / n_cells
        frames.append(pd.DataFrame({
            "experiment": np.repeat(np.arange(n_experiments), n_rep), "treatment": arm,
            "replicate": np.tile(np.arange(1, n_rep + 1), n_experiments), "viable_pct": viable.ravel(),
        }))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- marks
@pytest.mark.parametrize(("p", "mark"), [
    (0.2, "ns"), (0.05, "ns"), (0.0499, "*"), (0.01, "*"), (0.0099, "**"), (0.001, "**"),
    (0.00099, "***"), (0.0001, "***"), (0.0000999, "****"), (0.0, "****"), (math.nan, "n/a"),
])
def test_significance_mark(p: float, mark: str) -> None:
    assert stats.significance_mark(p) == mark


# --------------------------------------------------------------------------- summarize
def test_summarize_matches_numpy(apoptosis: pd.DataFrame) -> None:
    out = stats.summarize(apoptosis, ["viable_pct", "total_apoptotic_pct"])
    assert list(out.columns) == ["cell_line", "treatment", "measure", "n", "n_excluded", "mean", "sd",
                                 "sem", "ci95_low", "ci95_high"]
    assert len(out) == 2 * 4 * 2  # controls (role != sample) are not groups
    assert set(out["treatment"]) == set(ARMS)
    for row in out.itertuples():
        x = _values(apoptosis, row.cell_line, row.measure)[row.treatment]
        sd = np.std(x, ddof=1)
        sem = sd / np.sqrt(x.size)
        half = sps.t.ppf(0.975, x.size - 1) * sem
        assert (row.n, row.n_excluded) == (3, 0)
        np.testing.assert_allclose([row.mean, row.sd, row.sem, row.ci95_low, row.ci95_high],
                                   [x.mean(), sd, sem, x.mean() - half, x.mean() + half], rtol=1e-12)
    # the same interval as scipy's t-interval
    x = _values(apoptosis, "parental", "viable_pct")["drugA"]
    low, high = sps.t.interval(0.95, x.size - 1, loc=x.mean(), scale=sps.sem(x))
    row = out[(out.cell_line == "parental") & (out.treatment == "drugA") & (out.measure == "viable_pct")]
    np.testing.assert_allclose(row[["ci95_low", "ci95_high"]].to_numpy()[0], [low, high], rtol=1e-12)


def test_summarize_excludes_failed_and_nan_rows(apoptosis: pd.DataFrame) -> None:
    table = apoptosis.copy()
    drug_a = table.index[(table.cell_line == "parental") & (table.treatment == "drugA")]
    table.loc[drug_a[0], "status"] = "error"
    table.loc[drug_a[1], "viable_pct"] = np.nan
    out = stats.summarize(table, "viable_pct", by=("cell_line", "treatment"))
    row = out[(out.cell_line == "parental") & (out.treatment == "drugA")].iloc[0]
    assert (row.n, row.n_excluded) == (1, 2)
    assert row["mean"] == table.loc[drug_a[2], "viable_pct"]
    assert math.isnan(row.sd) and math.isnan(row.ci95_low)
    # "warn" rows are results, so they count
    table.loc[drug_a[0], "status"] = "warn"
    assert stats.summarize(table, "viable_pct").query("treatment == 'drugA'")["n"].tolist() == [2, 3]


def test_summarize_all_rows_and_roles(apoptosis: pd.DataFrame) -> None:
    whole = stats.summarize(apoptosis, "viable_pct", by=None)
    samples = apoptosis[apoptosis.role == "sample"]["viable_pct"]
    assert whole["n"].tolist() == [samples.size]
    assert whole["mean"].iloc[0] == pytest.approx(samples.mean())
    with_controls = stats.summarize(apoptosis, "viable_pct", by="role", role=None)
    assert dict(zip(with_controls.role, with_controls.n, strict=True)) == {"sample": 24, "unstained": 2,
                                                              "annexin_only": 2, "pi_only": 2}


def test_summarize_errors(apoptosis: pd.DataFrame) -> None:
    with pytest.raises(DesignError, match=r"no column 'g2m_pct'; its columns are file, cell_line"):
        stats.summarize(apoptosis, ["viable_pct", "g2m_pct"])
    with pytest.raises(DesignError, match=r"column 'file' is not numeric"):
        stats.summarize(apoptosis, "file")


# --------------------------------------------------------------------------- Dunnett / Tukey
@pytest.mark.parametrize("measure", ["total_apoptotic_pct", "viable_pct"])
def test_dunnett_equals_scipy(apoptosis: pd.DataFrame, measure: str) -> None:
    out = stats.compare_to_vehicle(apoptosis, measure, seed=7)
    assert list(out.columns) == ["cell_line", *stats.COMPARISON_COLUMNS]
    for cell_line in ("parental", "resistant"):
        values = _values(apoptosis, cell_line, measure)
        direct = sps.dunnett(values["drugA"], values["drugB"], values["drugA+drugB"],
                             control=values["vehicle"], rng=np.random.default_rng(7))
        rows = out[out.cell_line == cell_line]
        assert rows["group1"].tolist() == ["vehicle"] * 3
        assert rows["group2"].tolist() == list(ARMS[1:])
        np.testing.assert_array_equal(rows["p_value"], direct.pvalue)
        np.testing.assert_array_equal(rows["statistic"], direct.statistic)
        np.testing.assert_allclose(rows["mean_diff"],
                                   [values[a].mean() - values["vehicle"].mean() for a in ARMS[1:]])
        assert rows["mark"].tolist() == [stats.significance_mark(p) for p in direct.pvalue]
    assert set(out["test"]) == {"Dunnett vs vehicle"} and set(out["correction"]) == {"Dunnett"}


def test_dunnett_leaves_out_failed_rows_and_needs_the_control(apoptosis: pd.DataFrame) -> None:
    table = apoptosis.copy()
    bad = table.index[(table.cell_line == "resistant") & (table.treatment == "drugB")][0]
    table.loc[bad, "status"] = "failed"
    out = stats.compare_to_vehicle(table, "viable_pct")
    values = _values(table.drop(index=bad), "resistant", "viable_pct")
    direct = sps.dunnett(values["drugA"], values["drugB"], values["drugA+drugB"],
                         control=values["vehicle"], rng=np.random.default_rng(0))
    rows = out[out.cell_line == "resistant"]
    assert rows["n2"].tolist() == [3, 2, 3]
    np.testing.assert_array_equal(rows["p_value"], direct.pvalue)
    no_vehicle = apoptosis[~((apoptosis.cell_line == "resistant") & (apoptosis.treatment == "vehicle"))]
    with pytest.raises(DesignError, match=r"cell_line='resistant' has no usable 'vehicle' values of "
                                          r"'viable_pct'; arms found: 'drugA' \(n=3\), 'drugB'"):
        stats.compare_to_vehicle(no_vehicle, "viable_pct")


def test_one_replicate_per_arm_gives_no_tests_and_no_crash(apoptosis: pd.DataFrame,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # A pilot run with one well per arm: nothing to estimate the variance from. Dunnett used to
    # raise scipy's "'df' must be greater than zero" (after a RuntimeWarning) and end the run.
    single = apoptosis[apoptosis["replicate"] == 1]
    with caplog.at_level("WARNING", logger="cytoflow_res.stats"):
        assert stats.compare_to_vehicle(single, "viable_pct").empty
        assert stats.pairwise_tukey(single, "viable_pct").empty
    assert "Dunnett's test needs replicates in at least one arm" in caplog.text


def test_tukey_equals_scipy(apoptosis: pd.DataFrame) -> None:
    out = stats.pairwise_tukey(apoptosis, "viable_pct")
    assert len(out) == 2 * 6
    for cell_line in ("parental", "resistant"):
        values = _values(apoptosis, cell_line, "viable_pct")
        direct = sps.tukey_hsd(*values.values())
        rows = out[out.cell_line == cell_line].reset_index(drop=True)
        pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
        assert list(zip(rows.group1, rows.group2, strict=True)) == [(ARMS[i], ARMS[j]) for i, j in pairs]
        np.testing.assert_array_equal(rows["p_value"], [direct.pvalue[i, j] for i, j in pairs])
        # scipy's statistic[i, j] is mean_i - mean_j; ours is group2 - group1
        np.testing.assert_allclose(rows["mean_diff"], [-direct.statistic[i, j] for i, j in pairs])
        # statistic is the studentized range q whose upper tail is scipy's p-value
        np.testing.assert_allclose(sps.studentized_range.sf(rows["statistic"], 4, 8), rows["p_value"],
                                   rtol=1e-6)
    assert set(out["test"]) == {"Tukey HSD"}


def test_comparisons_with_small_or_constant_arms() -> None:
    # an arm of one value, another whose values are all equal (scipy's "precision loss" warning
    # would be an error under the test settings), rows without a role, no grouping column
    table = pd.DataFrame({
        "treatment": ["vehicle", "vehicle", "vehicle", "drugA", "drugB", "drugB", "drugB"],
        "role": ["sample", None, "", "sample", "sample", "sample", "sample"],
        "v": [10.0, 12.0, 11.0, 20.0, 27.0, 27.0, 27.0],
    })
    dunnett = stats.compare_to_vehicle(table, "v", by=None)
    assert list(dunnett.columns) == list(stats.COMPARISON_COLUMNS)
    assert dunnett[["group2", "n1", "n2"]].values.tolist() == [["drugA", 3, 1], ["drugB", 3, 3]]
    samples = [np.array([20.0]), np.array([27.0, 27.0, 27.0])]
    with pytest.warns(RuntimeWarning, match="Precision loss"):  # scipy called directly does warn
        direct = sps.dunnett(*samples, control=np.array([10.0, 12.0, 11.0]), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(dunnett["p_value"], direct.pvalue)
    tukey = stats.pairwise_tukey(table, "v", by=None)  # drugA (n = 1) is left out
    assert tukey[["group1", "group2"]].values.tolist() == [["vehicle", "drugB"]]
    assert tukey["p_value"].iloc[0] < 0.001


# --------------------------------------------------------------------------- combination vs singles
def test_holm_hand_worked() -> None:
    # m = 4, sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    np.testing.assert_allclose(stats._holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats._holm(np.array([0.6, np.nan, 0.3])), [0.6, np.nan, 0.6])


def test_combination_vs_singles_welch_holm(apoptosis: pd.DataFrame) -> None:
    out = stats.combination_vs_singles(apoptosis, "viable_pct")
    assert list(out.columns) == ["cell_line", *stats.COMPARISON_COLUMNS, "p_raw"]
    for cell_line in ("parental", "resistant"):
        values = _values(apoptosis, cell_line, "viable_pct")
        rows = out[out.cell_line == cell_line]
        assert rows["group1"].tolist() == ["drugA", "drugB"]
        assert rows["group2"].tolist() == ["drugA+drugB"] * 2
        direct = [sps.ttest_ind(values["drugA+drugB"], values[s], equal_var=False)
                  for s in ("drugA", "drugB")]
        np.testing.assert_allclose(rows["p_raw"], [d.pvalue for d in direct], rtol=1e-12)
        np.testing.assert_allclose(rows["statistic"], [d.statistic for d in direct], rtol=1e-12)
        p1, p2 = sorted(d.pvalue for d in direct)
        assert sorted(rows["p_value"]) == pytest.approx([2 * p1, max(2 * p1, p2)])
    assert set(out["correction"]) == {"Holm"} and set(out["test"]) == {"Welch t-test"}
    # resistant: the combination is not better than drug B alone (planted: drug A barely acts)
    resistant_b = out[(out.cell_line == "resistant") & (out.group1 == "drugB")].iloc[0]
    assert resistant_b.mark == "ns"


def test_combination_vs_singles_errors(apoptosis: pd.DataFrame) -> None:
    no_combo = apoptosis[apoptosis.treatment != "drugA+drugB"]
    with pytest.raises(DesignError, match=r"cell_line='parental' has no combination arm .*arms found: "
                                          r"'vehicle' \(n=3\), 'drugA' \(n=3\), 'drugB' \(n=3\)"):
        stats.combination_vs_singles(no_combo, "viable_pct")
    with pytest.raises(DesignError, match=r"has no single agent arm 'drugC'"):
        stats.combination_vs_singles(apoptosis, "viable_pct", singles=["drugA", "drugC"])


# --------------------------------------------------------------------------- two-way ANOVA
# Montgomery, D. C. Design and Analysis of Experiments (5th ed. 2001 and later), Example 5-1,
# battery life (hours) by plate material x temperature (15, 70, 125 F), n = 4 per cell;
# published ANOVA (Table 5-5): material SS 10683.72 (df 2, F 7.91), temperature 39118.72
# (df 2, F 28.97), interaction 9613.78 (df 4, F 3.56), error 18230.75 (df 27, MS 675.21).
BATTERY = {
    1: {15: [130, 155, 74, 180], 70: [34, 40, 80, 75], 125: [20, 70, 82, 58]},
    2: {15: [150, 188, 159, 126], 70: [136, 122, 106, 115], 125: [25, 70, 58, 45]},
    3: {15: [138, 110, 168, 160], 70: [174, 120, 150, 139], 125: [96, 104, 82, 60]},
}

# Moore & Krupat (1971) conformity data (R package carData "Moore", as distributed by
# Rdatasets: partner status, conformity, authoritarianism category), an unbalanced 2 x 3 design.
# Type II table published in Fox, Applied Regression Analysis (3rd ed. 2016) and reproduced in
# the statsmodels documentation (anova_lm(typ=2) on the same data): fcategory SS 11.614700
# F 0.276958 p 0.759564; partner status SS 212.213778 F 10.120692 p 0.002874; interaction
# SS 175.488928 F 4.184623 p 0.022572; residual SS 817.763961 on 39 df.
MOORE = (
    "low 8 low|low 4 high|low 8 high|low 7 low|low 10 low|low 6 low|low 12 medium|low 4 medium|"
    "low 13 low|low 12 low|low 4 medium|low 13 high|low 7 low|low 9 medium|low 9 high|low 24 high|"
    "low 6 low|low 7 high|low 23 high|low 13 high|low 8 low|low 12 low|high 19 high|high 12 medium|"
    "high 21 low|high 9 high|high 23 low|high 7 high|high 17 medium|high 14 medium|high 11 high|"
    "high 16 medium|high 15 low|high 20 medium|high 8 medium|high 12 low|high 14 high|high 14 medium|"
    "high 17 medium|high 7 medium|high 17 medium|high 13 high|high 16 low|high 10 high|high 15 medium"
)


def _battery() -> pd.DataFrame:
    return pd.DataFrame([
        {"material": m, "temperature": t, "life": y}
        for m, temps in BATTERY.items() for t, ys in temps.items() for y in ys
    ])


def _moore() -> pd.DataFrame:
    rows = [item.split() for item in MOORE.split("|")]
    return pd.DataFrame({"partner_status": [r[0] for r in rows], "conformity": [float(r[1]) for r in rows],
                         "fcategory": [r[2] for r in rows]})


def test_two_way_anova_montgomery_battery() -> None:
    out = stats.two_way_anova(_battery(), "life", factors=("material", "temperature")).set_index("term")
    assert list(out.index) == ["material", "temperature", "material:temperature", "Residual"]
    assert out["df"].tolist() == [2, 2, 4, 27]
    np.testing.assert_allclose(out["sum_sq"], [10683.72, 39118.72, 9613.78, 18230.75], atol=0.006)
    np.testing.assert_allclose(out["F"].iloc[:3], [7.91, 28.97, 3.56], atol=0.006)
    assert out.loc["Residual", "mean_sq"] == pytest.approx(675.21, abs=0.006)
    assert out["sum_sq"].sum() == pytest.approx(77646.97, abs=0.01)  # published total
    assert out.loc["material", "p_value"] == pytest.approx(sps.f.sf(10683.72 / 2 / 675.21, 2, 27), rel=1e-3)
    assert out["mark"].tolist() == ["**", "****", "*", "n/a"]


def test_two_way_anova_unbalanced_type2_moore() -> None:
    moore = _moore()
    assert len(moore) == 45
    out = stats.two_way_anova(moore, "conformity", factors=("fcategory", "partner_status")).set_index("term")
    assert out["df"].tolist() == [2, 1, 2, 39]
    np.testing.assert_allclose(out["sum_sq"], [11.614700, 212.213778, 175.488928, 817.763961], rtol=1e-6)
    np.testing.assert_allclose(out["F"].iloc[:3], [0.276958, 10.120692, 4.184623], rtol=1e-5)
    np.testing.assert_allclose(out["p_value"].iloc[:3], [0.759564, 0.002874, 0.022572], rtol=1e-3)
    # Type II does not depend on the order of rows or of the factors
    shuffled = moore.sample(frac=1.0, random_state=3)
    swapped = stats.two_way_anova(shuffled, "conformity", factors=("partner_status", "fcategory"))
    np.testing.assert_allclose(swapped.set_index("term").loc[["fcategory", "partner_status"], "sum_sq"],
                               out.loc[["fcategory", "partner_status"], "sum_sq"], rtol=1e-10)


def test_two_way_anova_agrees_with_one_way_f(apoptosis: pd.DataFrame) -> None:
    # The 2 x 4 cells as one-way groups: residuals are the same, the three effects add up to the
    # between-cell sum of squares (balanced design), so the one-way F of scipy must be reproduced.
    out = stats.two_way_anova(apoptosis, "viable_pct").set_index("term")
    samples = apoptosis[apoptosis.role == "sample"]
    cells = [g["viable_pct"].to_numpy() for _, g in samples.groupby(["cell_line", "treatment"])]
    one_way = sps.f_oneway(*cells)
    effects = out.iloc[:3]
    f_cells = (effects["sum_sq"].sum() / effects["df"].sum()) / out.loc["Residual", "mean_sq"]
    assert effects["df"].sum() == len(cells) - 1
    assert f_cells == pytest.approx(one_way.statistic, rel=1e-10)
    # and a factor whose other factor has no effect at all reduces to scipy's one-way ANOVA
    # (here B is a balanced, irrelevant split of every cell: SS_B = SS_AB = 0 up to rounding)
    battery = _battery()
    battery["half"] = np.tile(["x", "y"], len(battery) // 2)
    collapsed = battery.groupby(["temperature", "half"])["life"].transform("mean")
    by_temperature = battery.groupby("temperature")["life"].transform("mean")
    battery["life_b0"] = battery["life"] - collapsed + by_temperature
    two = stats.two_way_anova(battery, "life_b0", factors=("temperature", "half")).set_index("term")
    assert two.loc["half", "sum_sq"] == pytest.approx(0.0, abs=1e-8)
    groups = [g["life_b0"].to_numpy() for _, g in battery.groupby("temperature")]
    ss_between = sum(g.size * (g.mean() - battery["life_b0"].mean()) ** 2 for g in groups)
    assert two.loc["temperature", "sum_sq"] == pytest.approx(ss_between, rel=1e-10)
    # with residual df N - 6 instead of N - 3, F differs from f_oneway by exactly that ratio
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    assert two.loc["Residual", "sum_sq"] == pytest.approx(ss_within, rel=1e-10)
    f_one = sps.f_oneway(*groups).statistic
    n = len(battery)
    assert two.loc["temperature", "F"] == pytest.approx(f_one * (n - 6) / (n - 3), rel=1e-10)


def test_two_way_anova_unbalanced_with_empty_cell() -> None:
    battery = _battery()
    battery = battery[~((battery.material == 3) & (battery.temperature == 125))]
    out = stats.two_way_anova(battery, "life", factors=("material", "temperature")).set_index("term")
    assert out["df"].tolist() == [2, 2, 3, 24]
    # Type II main effect: RSS(other factor only) - RSS(additive); check the additive model by hand
    y = battery["life"].to_numpy(float)
    temp = pd.get_dummies(battery["temperature"]).to_numpy(float)
    both = np.hstack([temp, pd.get_dummies(battery["material"]).to_numpy(float)[:, 1:]])

    def rss(x: np.ndarray) -> float:
        return float(np.sum((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2))

    assert out.loc["material", "sum_sq"] == pytest.approx(rss(temp) - rss(both), rel=1e-10)


def test_two_way_anova_errors(apoptosis: pd.DataFrame) -> None:
    with pytest.raises(DesignError, match=r"factor 'cell_line' needs at least two levels.*\['parental'\]"):
        stats.two_way_anova(apoptosis[apoptosis.cell_line == "parental"], "viable_pct")
    first = apoptosis[apoptosis.role == "sample"].groupby(["cell_line", "treatment"]).head(1)
    with pytest.raises(DesignError, match=r"no residual degrees of freedom \(8 usable values in 8 cells"):
        stats.two_way_anova(first, "viable_pct")
    with pytest.raises(DesignError, match=r"factors must be two different columns"):
        stats.two_way_anova(apoptosis, "viable_pct", factors=("cell_line",))


# --------------------------------------------------------------------------- Bliss
def test_bliss_planted_arm_means_exact(truth: dict) -> None:
    # replicates at mean -1, mean, mean + 1: arm means are exactly the planted ones
    out = stats.bliss(_planted_table(truth, "viable_pct"), "viable_pct").set_index("cell_line")
    combo = truth["arms"]["combination"]
    for cell_line in ("parental", "resistant"):
        row, planted = out.loc[cell_line], combo[cell_line]
        assert row.direction == "decrease"
        assert (row.fa_a, row.fa_b, row.fa_ab) == pytest.approx(
            (planted["fa_A"], planted["fa_B"], planted["fa_AB"]), abs=1e-12)
        assert row.bliss_expected == pytest.approx(planted["bliss_fa_AB"], abs=1e-12)
        assert row.bliss_excess == pytest.approx(planted["excess_over_bliss_pts"] / 100, abs=1e-12)
        hsa = planted["fa_AB"] - max(planted["fa_A"], planted["fa_B"])
        assert row.hsa_excess == pytest.approx(hsa, abs=1e-12)
        assert (row.n_vehicle, row.n_a, row.n_b, row.n_ab) == (3, 3, 3, 3)
    assert out.loc["parental", "call"] == "synergy"
    assert out.loc["resistant", "call"] == "additive"


def test_bliss_increase_direction_by_hand(truth: dict) -> None:
    out = stats.bliss(_planted_table(truth, "total_apoptotic_pct")).set_index("cell_line")
    arms = truth["arms"]["apoptosis"]["parental"]
    x = {k: v["early_apoptotic_pct"] + v["late_apoptotic_pct"] for k, v in arms.items()}
    fa = {k: (x[k] - x["vehicle"]) / (100 - x["vehicle"]) for k in ARMS[1:]}
    expected = fa["drugA"] + fa["drugB"] - fa["drugA"] * fa["drugB"]
    row = out.loc["parental"]
    assert row.direction == "increase" and row.measure == "total_apoptotic_pct"
    assert (row.fa_a, row.fa_b, row.fa_ab, row.bliss_expected) == pytest.approx(
        (fa["drugA"], fa["drugB"], fa["drugA+drugB"], expected), abs=1e-12)
    assert row.bliss_excess == pytest.approx(fa["drugA+drugB"] - expected, abs=1e-12)


@pytest.mark.parametrize("method", ["bootstrap-t", "delta-t"])
@pytest.mark.parametrize("measure", ["viable_pct", "total_apoptotic_pct"])
def test_bliss_example_experiment(apoptosis: pd.DataFrame, method: str, measure: str) -> None:
    # the committed example's realised (counted) percentages, three replicates per arm
    out = stats.bliss(apoptosis, measure, method=method).set_index("cell_line")
    assert list(out.reset_index().columns) == ["cell_line", *stats.BLISS_COLUMNS]
    parental, resistant = out.loc["parental"], out.loc["resistant"]
    assert parental.call == "synergy"
    assert parental.bliss_p < 0.05 and parental.bliss_ci_low > 0
    if measure == "viable_pct":  # the planted +18 points lie inside the interval
        assert parental.bliss_ci_low < 0.18 < parental.bliss_ci_high
    assert resistant.call == "additive"
    assert resistant.bliss_p > 0.05 and resistant.bliss_ci_low < 0 < resistant.bliss_ci_high
    assert resistant.bliss_ci_low < 0 < resistant.bliss_ci_high
    assert abs(resistant.bliss_excess) < 0.05


def test_bliss_bootstrap_is_seeded(apoptosis: pd.DataFrame) -> None:
    one = stats.bliss(apoptosis, "viable_pct", seed=5)
    pd.testing.assert_frame_equal(one, stats.bliss(apoptosis, "viable_pct", seed=5))
    other = stats.bliss(apoptosis, "viable_pct", seed=6)
    assert not np.allclose(one["bliss_ci_low"], other["bliss_ci_low"])
    pd.testing.assert_series_equal(one["bliss_excess"], other["bliss_excess"])


@pytest.mark.parametrize("direction", ["increase", "decrease"])
@pytest.mark.parametrize("kind", ["bliss", "hsa"])
def test_bliss_delta_gradient_matches_finite_differences(direction: str, kind: str) -> None:
    means = {"vehicle": 20.0, "a": 35.0, "b": 41.0, "ab": 68.0}
    if direction == "decrease":
        means = {k: 100 - v for k, v in means.items()}
    arrays = {k: np.asarray(v) for k, v in means.items()}
    _, gradient = stats._excess_and_gradient(arrays, direction, kind)  # type: ignore[arg-type]
    h = 1e-6
    for k in means:
        up = {**arrays, k: np.asarray(means[k] + h)}
        down = {**arrays, k: np.asarray(means[k] - h)}
        numeric = (stats._excess_and_gradient(up, direction, kind)[0]  # type: ignore[arg-type]
                   - stats._excess_and_gradient(down, direction, kind)[0]) / (2 * h)  # type: ignore[arg-type]
        assert float(gradient[k]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9), k


def test_bliss_arms_from_dose_columns(apoptosis: pd.DataFrame) -> None:
    table = apoptosis.copy()
    table["dose_a"] = table["treatment"].map({"drugA": 1.0, "drugA+drugB": 1.0}).fillna(0.0)
    table["dose_b"] = table["treatment"].map({"drugB": 0.5, "drugA+drugB": 0.5}).fillna(0.0)
    labels = {"vehicle": "DMSO", "drugA": "olaparib 1uM", "drugB": "ATRi 0.5uM", "drugA+drugB": "combo"}
    table["treatment"] = table["treatment"].map(labels).fillna("none")
    out = stats.bliss(table, "viable_pct", vehicle="DMSO")
    assert out[["arm_a", "arm_b", "arm_ab"]].iloc[0].tolist() == ["olaparib 1uM", "ATRi 0.5uM", "combo"]
    reference = stats.bliss(apoptosis, "viable_pct")
    np.testing.assert_allclose(out["bliss_excess"], reference["bliss_excess"])
    np.testing.assert_allclose(out["bliss_ci_low"], reference["bliss_ci_low"])
    # two doses of drug A alone: which one the combination used must be said
    low_dose = table[table.treatment == "olaparib 1uM"].assign(treatment="olaparib 0.1uM", dose_a=0.1)
    with pytest.raises(DesignError, match=r"no single-agent arm for drug A \(combination 'combo' is not two "
                                          r"names joined by '\+'\); several arms get only drug A: "
                                          r"'olaparib 1uM', 'olaparib 0.1uM'; .*pass a="):
        stats.bliss(pd.concat([table, low_dose]), "viable_pct", vehicle="DMSO")
    assert stats.bliss(pd.concat([table, low_dose]), "viable_pct", vehicle="DMSO",
                       a="olaparib 1uM")["bliss_excess"].tolist() == out["bliss_excess"].tolist()


def test_bliss_explicit_arms(apoptosis: pd.DataFrame) -> None:
    # naming a and b the other way round swaps fa_a and fa_b and leaves the excess unchanged
    swapped = stats.bliss(apoptosis, "viable_pct", a="drugB", b="drugA", combination="drugA+drugB")
    reference = stats.bliss(apoptosis, "viable_pct")
    np.testing.assert_allclose(swapped["fa_a"], reference["fa_b"])
    np.testing.assert_allclose(swapped["bliss_excess"], reference["bliss_excess"])


def test_bliss_design_errors(apoptosis: pd.DataFrame) -> None:
    found = r"arms found: 'vehicle' \(n=3\), 'drugA' \(n=3\), 'drugB' \(n=3\)"
    with pytest.raises(DesignError, match=r"bliss: cell_line='parental' has no combination arm "
                                          r"\(no treatment label contains '\+'.*" + found):
        stats.bliss(apoptosis[apoptosis.treatment != "drugA+drugB"], "viable_pct")
    with pytest.raises(DesignError, match=r"no single-agent arm 'drugB' \(from combination 'drugA\+drugB'\); "
                                          r"arms found: 'vehicle' \(n=3\), 'drugA' \(n=3\), 'drugA\+drugB' "
                                          r"\(n=3\); pass b="):
        stats.bliss(apoptosis[apoptosis.treatment != "drugB"], "viable_pct")
    with pytest.raises(DesignError, match=r"has no vehicle arm 'vehicle'; arms found: 'drugA' \(n=3\).*"
                                          r"pass vehicle="):
        stats.bliss(apoptosis[apoptosis.treatment != "vehicle"], "viable_pct")
    with pytest.raises(DesignError, match=r"has no vehicle arm 'DMSO'"):
        stats.bliss(apoptosis, "viable_pct", vehicle="DMSO")
    with pytest.raises(DesignError, match=r"has no combination arm 'A\+B'"):
        stats.bliss(apoptosis, "viable_pct", combination="A+B")
    two_combos = apoptosis.copy()
    extra = two_combos[two_combos.treatment == "drugA+drugB"].assign(treatment="drugA+drugC")
    with pytest.raises(DesignError, match=r"several combination arms .*'drugA\+drugB', 'drugA\+drugC'; "
                                          r"pass combination="):
        stats.bliss(pd.concat([two_combos, extra]), "viable_pct")
    all_failed = apoptosis.copy()
    all_failed.loc[all_failed.treatment == "drugA", "status"] = "error"
    with pytest.raises(DesignError, match=r"arm\(s\) 'drugA' have no usable values of 'viable_pct'"):
        stats.bliss(all_failed, "viable_pct")
    with pytest.raises(ValueError, match=r"direction must be 'increase' or 'decrease', got 'up'"):
        stats.bliss(apoptosis, "viable_pct", direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n_boot must be at least 100"):
        stats.bliss(apoptosis, "viable_pct", n_boot=10)


def test_bliss_single_replicates_are_undetermined(truth: dict) -> None:
    table = _planted_table(truth, "viable_pct").query("replicate == 2")
    out = stats.bliss(table, "viable_pct")
    assert out["call"].tolist() == ["undetermined", "undetermined"]
    assert out["bliss_p"].isna().all() and out["bliss_excess"].notna().all()


@pytest.mark.parametrize("method", ["bootstrap-t", "delta-t"])
def test_bliss_false_positive_rate_and_power(method: str) -> None:
    # 200 simulated triplicate experiments each: Bliss-independent truth (parental-like and
    # resistant-like arms) and a planted +18-point excess. Measured with these seeds:
    # bootstrap-t 2/200 and 5/200 false calls, 187/200 detected;
    # delta-t 7/200 and 9/200 false calls, 198/200 detected.
    false_calls = 0
    for seed, kwargs in ((11, {}), (12, {"vehicle": 92.0, "fa_a": 0.03, "fa_b": 0.22})):
        null = stats.bliss(_simulate_bliss(200, extra=0.0, seed=seed, **kwargs), "viable_pct",
                           by="experiment", method=method)  # type: ignore[arg-type]
        significant = null["bliss_p"] < 0.05
        assert significant.mean() <= 0.09
        false_calls += int(significant.sum())
        # the call follows the interval and agrees with the p-value
        assert ((null["call"] != "additive") == significant).all()
    assert 0.01 <= false_calls / 400 <= 0.08
    planted = stats.bliss(_simulate_bliss(200, extra=0.18, seed=13), "viable_pct", by="experiment",
                          method=method)  # type: ignore[arg-type]
    assert (planted["call"] == "synergy").mean() >= 0.9
    assert planted["bliss_excess"].mean() == pytest.approx(0.18, abs=0.01)


@pytest.mark.slow
def test_bliss_false_positive_rate_2000_experiments() -> None:
    # ~5 s. Measured with this seed: bootstrap-t 2.95%, delta-t 4.3% false calls.
    table = _simulate_bliss(2000, extra=0.0, seed=21)
    for method, (low, high) in (("bootstrap-t", (0.015, 0.06)), ("delta-t", (0.03, 0.065))):
        out = stats.bliss(table, "viable_pct", by="experiment", method=method)  # type: ignore[arg-type]
        assert low <= float((out["bliss_p"] < 0.05).mean()) <= high


# --------------------------------------------------------------------------- Chou-Talalay
def _median_effect(dose: np.ndarray, dm: float, m: float) -> np.ndarray:
    return 1.0 / (1.0 + (dm / dose) ** m)


def test_chou_talalay_recovers_exact_parameters() -> None:
    doses = np.array([0.1, 0.3, 1.0, 3.0, 10.0])
    fit = stats.chou_talalay(doses, _median_effect(doses, 1.7, 1.3))
    assert (fit.dm, fit.m, fit.r, fit.n) == pytest.approx((1.7, 1.3, 1.0, 5), rel=1e-10)
    assert fit.dose(0.5) == pytest.approx(1.7)
    assert fit.fa(fit.dose(0.9)) == pytest.approx(0.9)
    assert fit.summary() == {"dm": fit.dm, "m": fit.m, "r": fit.r, "n": 5}


def test_chou_talalay_loewe_additive_mixture_has_ci_one() -> None:
    fit_a = stats.chou_talalay([0.5, 1, 2, 4, 8], _median_effect(np.array([0.5, 1, 2, 4, 8]), 2.0, 1.0))
    fit_b = stats.chou_talalay([5, 10, 20, 40], _median_effect(np.array([5, 10, 20, 40.0]), 15.0, 2.5))
    # constant-ratio (1:10) mixture built under Loewe additivity: at each effect the total dose D
    # satisfies p D / Dx_a + (1 - p) D / Dx_b = 1
    fa = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    p = 1 / 11
    total = 1.0 / (p / fit_a.dose(fa) + (1 - p) / fit_b.dose(fa))
    out = stats.combination_index(fit_a, fit_b, p * total, (1 - p) * total, fa)
    np.testing.assert_allclose(out["ci"], 1.0, rtol=1e-10)
    assert set(out["call"]) == {"additive"}
    np.testing.assert_allclose(out["dri_a"], 1 / p / (total / fit_a.dose(fa)))
    # the same effect from half those doses is synergy: CI 0.5, each DRI doubled
    half = stats.combination_index(fit_a, fit_b, p * total / 2, (1 - p) * total / 2, fa)
    np.testing.assert_allclose(half["ci"], 0.5)
    np.testing.assert_allclose(half["dri_b"], 2 * out["dri_b"])
    assert set(half["call"]) == {"synergy"}


def test_chou_talalay_mixture_curve_with_equal_slopes() -> None:
    # with equal m, a Loewe-additive mixture is itself a median-effect curve with
    # 1 / Dm_mix = p / Dm_a + (1 - p) / Dm_b, which the fit must recover
    doses = np.array([0.25, 0.5, 1, 2, 4])
    dm_mix = 1.0 / (0.5 / 1.0 + 0.5 / 3.0)
    mix = stats.chou_talalay(doses, _median_effect(doses, dm_mix, 1.5))
    assert (mix.dm, mix.m) == pytest.approx((dm_mix, 1.5), rel=1e-10)
    fit_a = stats.chou_talalay(doses, _median_effect(doses, 1.0, 1.5))
    fit_b = stats.chou_talalay(doses, _median_effect(doses, 3.0, 1.5))
    fa = np.array([0.2, 0.5, 0.8])
    out = stats.combination_index(fit_a, fit_b, 0.5 * mix.dose(fa), 0.5 * mix.dose(fa), fa)
    np.testing.assert_allclose(out["ci"], 1.0, rtol=1e-10)


@pytest.mark.parametrize(("ci", "call"), [
    (0.5, "synergy"), (0.8999, "synergy"), (0.9, "additive"), (1.1, "additive"), (1.1001, "antagonism"),
    (math.nan, "undetermined"),
])
def test_ci_call(ci: float, call: str) -> None:
    assert stats.ci_call(ci) == call


def test_chou_talalay_errors() -> None:
    with pytest.raises(FitError, match=r"they look like percent"):
        stats.chou_talalay([1, 2, 4], [20, 45, 70])
    with pytest.raises(FitError, match=r"doses must be finite and > 0; got \[0.0\] at position\(s\) \[0\]"):
        stats.chou_talalay([0, 1, 2], [0.1, 0.2, 0.4])
    with pytest.raises(FitError, match=r"at least two distinct doses"):
        stats.chou_talalay([1, 1], [0.2, 0.3])
    with pytest.raises(FitError, match=r"3 doses but 2 effects"):
        stats.chou_talalay([1, 2, 3], [0.2, 0.3])
    fit = stats.chou_talalay([1, 2], [0.2, 0.4])
    with pytest.raises(FitError, match=r"fa must be strictly between 0 and 1"):
        stats.combination_index(fit, fit, 1.0, 1.0, 1.0)


def test_module_public_api() -> None:
    for name in stats.__all__:
        assert hasattr(stats, name), name
    assert Path(stats.__file__).name == "stats.py"
