"""Cell-cycle deconvolution against simulated truth, a published fit, and real files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import (
    CellCycleFit,
    DNAHistogram,
    ModelSpec,
    dna_histogram,
    fit_cell_cycle,
    fit_histogram,
)
from tests.conftest import shared_file

# simulated acceptance: 10,000+ events, CV up to 6%, 5% debris and 5% doublets before gating
CASES = [(p, cv) for p in ("control", "g1_arrest", "g2m_arrest", "s_arrest") for cv in (0.03, 0.06)]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, float], tuple[Path, dict]]:
    out = {}
    d = tmp_path_factory.mktemp("cc")
    for prof, cv in CASES:
        spec = sim.CellCycleSpec.profile(prof, n_events=20_000, cv=cv, debris_fraction=0.05,
                                         doublet_fraction=0.05)
        path = d / f"{prof}_{cv}.fcs"
        _ev, truth = sim.write_cellcycle_sample(path, spec, seed=11)
        out[(prof, cv)] = (path, truth)
    return out


@pytest.mark.parametrize(("profile", "cv"), CASES)
def test_simulated_truth_recovered(simulated: dict, profile: str, cv: float) -> None:
    path, truth = simulated[(profile, cv)]
    fit = fit_cell_cycle(read_fcs(path), bins=256, model=ModelSpec(debris="exponential", sub_g1=True))
    assert fit.status in ("ok", "warn"), fit.message
    assert abs(fit.g0g1_pct - truth["g0g1_pct"]) <= 1.5
    assert abs(fit.s_pct - truth["s_pct"]) <= 2.5
    assert abs(fit.g2m_pct - truth["g2m_pct"]) <= 1.5
    assert fit.g0g1_pct + fit.s_pct + fit.g2m_pct == pytest.approx(100.0, abs=1e-9)
    # the statistics are honest: a correct model gives RCS near 1
    assert 0.6 < fit.rcs < 1.8
    assert abs(fit.linearity - truth["linearity"]) < 0.03
    assert abs(fit.params["g1_cv"].value - truth["cv"]) < 0.006


def test_auto_model_chooses_by_aic(simulated: dict) -> None:
    path, truth = simulated[("control", 0.03)]
    fit = fit_cell_cycle(read_fcs(path), bins=256, model="auto")
    assert len(fit.candidates) >= 6
    assert fit.aic == min(c["aic"] for c in fit.candidates if c["status"] != "failed")
    assert abs(fit.g0g1_pct - truth["g0g1_pct"]) <= 1.5


def test_bins_and_axis_scaling_do_not_change_fractions(simulated: dict) -> None:
    path, _truth = simulated[("control", 0.03)]
    sample = read_fcs(path)
    spec = ModelSpec(debris="exponential", sub_g1=True)
    f256 = fit_cell_cycle(sample, bins=256, model=spec)
    f1024 = fit_cell_cycle(sample, bins=1024, model=spec)
    for key in ("g0g1_pct", "s_pct", "g2m_pct"):
        assert abs(f256.fractions[key] - f1024.fractions[key]) <= 1.0, key
    # multiplying the DNA axis by a constant (and the histogram range with it) changes nothing
    h = dna_histogram(sample, bins=256)
    scaled = dataclasses.replace(h, edges=h.edges * 3.7)
    a = fit_histogram(h, model=spec)
    b = fit_histogram(scaled, model=spec)
    for key in ("g0g1_pct", "s_pct", "g2m_pct"):
        assert a.fractions[key] == pytest.approx(b.fractions[key], abs=1e-6)


def test_result_api(simulated: dict) -> None:
    path, _ = simulated[("g1_arrest", 0.03)]
    fit = fit_cell_cycle(read_fcs(path), bins=256, model=ModelSpec(debris="exponential", sub_g1=True))
    row = fit.to_frame()
    assert list(row.columns[:15]) == [
        "events_total", "events_singlets", "g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct", "debris_pct",
        "aggregates_pct", "g1_mean", "g2_mean", "g1_cv_pct", "g2_cv_pct", "linearity", "rcs", "model",
    ]
    assert len(row) == 1
    comps = fit.eval_components()
    assert {"g1", "s", "g2", "total"} <= set(comps)
    np.testing.assert_allclose(sum(v for k, v in comps.items() if k != "total"), comps["total"])
    report = fit.fit_report()
    assert "reduced chi-square" in report and "g0g1_pct" in report
    assert "<table>" in fit._repr_html_()
    import json

    json.dumps(fit.summary())  # JSON-safe
    assert all(np.isfinite(fit.fraction_errors[k]) for k in ("g0g1_pct", "s_pct", "g2m_pct"))
    # doublets were removed by PI-W before fitting
    assert fit.histogram.doublet_channel == "PI-W"
    assert fit.histogram.events_singlets < fit.histogram.events_total


def test_watson_cross_check(simulated: dict) -> None:
    path, truth = simulated[("control", 0.03)]
    w = fit_cell_cycle(read_fcs(path), bins=256, model="watson")
    assert w.status == "ok"
    assert abs(w.g0g1_pct - truth["g0g1_pct"]) < 4
    assert abs(w.g2m_pct - truth["g2m_pct"]) < 4


def test_poor_input_is_a_status_not_an_exception() -> None:
    fit = fit_cell_cycle(np.zeros(256))
    assert fit.status == "failed"
    assert "too few events" in fit.message
    flat = fit_cell_cycle(np.random.default_rng(0).poisson(3.0, 256).astype(float))
    assert flat.status in ("warn", "failed")


@pytest.mark.shared
def test_reproduces_flowploidy_published_fit() -> None:
    # flowPloidy vignette, 188-15.LMD: FL3 INT LIN of the first data set, 256 bins, single-cut
    # debris, sample A + internal standard B, linearity free. Published: RCS 1.59; A G1 mean 99.0,
    # count 1443, CV 2.2%; B G1 mean 136.1, count 2820.6, CV 2.0%; linearity 1.98.
    sample = read_fcs(shared_file("dna", "flowPloidyData", "188-15.LMD"), dataset=0)
    hist = dna_histogram(sample, channel="FL3 INT LIN", bins=256, doublets="none")
    spec = ModelSpec(second_cycle=True, debris="single_cut", aggregates=True, linearity_bounds=(1.5, 2.5))
    fit = fit_histogram(hist, model=spec, g1_mean=99, b_g1_mean=136)
    s = fit.summary()
    assert abs(s["g1_mean"] - 99.0) <= 0.5
    assert abs(s["b_g1_mean"] - 136.1) <= 0.5
    assert fit.params["g1_area"].value == pytest.approx(1443, rel=0.02)
    assert fit.params["b_g1_area"].value == pytest.approx(2820.6, rel=0.02)
    assert abs(s["g1_cv_pct"] - 2.2) <= 0.15
    assert abs(s["b_g1_cv_pct"] - 2.0) <= 0.15
    assert abs(s["linearity"] - 1.98) <= 0.02
    assert abs(fit.rcs - 1.59) <= 0.3


REAL = [("zenodo_14928071", f) for f in (
    "Specimen_001_AI_0_001.fcs", "Specimen_001_AI_24_002.fcs", "Specimen_001_AI_48_003.fcs",
    "Specimen_001_AI_72_004.fcs", "Specimen_001_AX_0_005.fcs", "Specimen_001_AX_24_006.fcs",
    "Specimen_001_AX_48_007.fcs", "Specimen_001_AX_72_008.fcs")] + [
    ("flowExtra_synch", f"Data.{i:03d}") for i in range(1, 17)]


@pytest.mark.shared
@pytest.mark.parametrize(("folder", "name"), REAL)
def test_real_files_fit_without_crashing(folder: str, name: str) -> None:
    fit = fit_cell_cycle(read_fcs(shared_file("dna", folder, name)), bins=256, model="auto")
    assert fit.status in ("ok", "warn")
    if fit.status == "warn":
        assert fit.message  # a warning always says why
    assert fit.g0g1_pct + fit.s_pct + fit.g2m_pct == pytest.approx(100.0)
    for key in ("sub_g1_pct", "debris_pct", "aggregates_pct"):
        assert 0 <= fit.fractions[key] <= 100, key


def test_histogram_from_counts_and_errors() -> None:
    h = DNAHistogram.from_counts(np.ones(64))
    assert h.fit_range[0] >= 2 and h.fit_range[1] <= 63
    from cytoflow_res import FitError

    with pytest.raises(FitError, match="at least 16 bins"):
        DNAHistogram.from_counts(np.ones(4))
    with pytest.raises(FitError, match="s_degree must be 0, 1 or 2"):
        ModelSpec(s_degree=5)


def test_triplets_option_changes_the_aggregate_shape(simulated: dict) -> None:
    path, _ = simulated[("control", 0.03)]
    hist = dna_histogram(read_fcs(path), bins=256)
    doublets = fit_histogram(hist, model=ModelSpec(debris="exponential", sub_g1=True))
    triplets = fit_histogram(hist, model=ModelSpec(debris="exponential", sub_g1=True, triplets=True))
    assert triplets.spec.name.endswith("agg3+subG1")
    # compare the unit-area aggregate shapes the two models use (independent of the amplitude)
    def shape(fit: CellCycleFit) -> np.ndarray:
        basis, comps = fit._basis()
        return basis[[c.group for c in comps].index("aggregates")]

    a, b = shape(doublets), shape(triplets)
    assert a.sum() == pytest.approx(1.0) and b.sum() == pytest.approx(1.0)
    # doublets reach at most G2+G2 = 4x G1; three-cell aggregates lie further up (to 6x G1)
    x = hist.channel_centers
    g1 = triplets.params["g1_mean"].value
    beyond = x > 4.5 * g1
    assert b[beyond].sum() > 10 * a[beyond].sum()
    assert (x * b).sum() > (x * a).sum() + 0.2 * g1
    assert triplets.status in ("ok", "warn")
