"""Annexin V / PI analysis against simulated truth, real files, and through the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytoflow_res as cr
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import APOPTOSIS_COLUMNS, QUADRANTS, ApoptosisGating, analyze_apoptosis
from cytoflow_res.cli import main
from cytoflow_res.errors import ChannelError, DesignError, FCSError, TemplateError
from cytoflow_res.gating.thresholds import valley_threshold
from tests.conftest import shared_file

# arms from 90% to 40% viable: (viable, early, late, necrotic)
ARMS = {
    "v90": (0.90, 0.04, 0.04, 0.02),
    "v75": (0.75, 0.12, 0.09, 0.04),
    "v60": (0.60, 0.15, 0.19, 0.06),
    "v40": (0.40, 0.20, 0.32, 0.08),
}
TEMPLATE = {"modern": "generic_modern", "facscalibur": "facscalibur", "accuri": "accuri_c6"}
# (dialect, FITC->PI spillover, compensation source)
SETUPS = [("modern", 0.12, "file"), ("modern", 0.15, "controls"), ("facscalibur", 0.13, "none"),
          ("accuri", 0.15, "file"), ("accuri", 0.12, "controls")]


def _base(spill: float) -> sim.ApoptosisSpec:
    # simulator defaults for debris (4%) and doublets (3%)
    return sim.ApoptosisSpec(n_events=12_000, fitc_to_pe=spill)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("apo")
    out = {}
    for k, (dialect, spill, comp) in enumerate(SETUPS):
        controls = {}
        for i, role in enumerate(("unstained", "annexin_only", "pi_only")):
            path = d / f"{k}_{role}.fcs"
            sim.write_apoptosis_sample(path, sim.apoptosis_control_spec(role, _base(spill)), seed=(k, i),
                                       dialect=dialect)
            controls[role] = cr.read_fcs(path)
        gating = ApoptosisGating.prepare(TEMPLATE[dialect], compensation=comp, **controls)
        arms = {}
        for j, (arm, (v, e, late, n)) in enumerate(ARMS.items()):
            spec = sim.ApoptosisSpec(n_events=12_000, viable=v, early_apoptotic=e, late_apoptotic=late,
                                     necrotic=n, fitc_to_pe=spill)
            path = d / f"{k}_{arm}.fcs"
            _ev, truth = sim.write_apoptosis_sample(path, spec, seed=(k, 10 + j), dialect=dialect)
            arms[arm] = (gating.analyze(cr.read_fcs(path)), truth)
        out[(dialect, spill, comp)] = (gating, arms)
    return out


@pytest.mark.parametrize("setup", SETUPS, ids=["-".join(map(str, s)) for s in SETUPS])
def test_quadrants_within_1_5_points_of_truth(experiment: dict, setup: tuple) -> None:
    _gating, arms = experiment[setup]
    for arm, (result, truth) in arms.items():
        for quadrant in QUADRANTS:
            got = result.percentages[quadrant]
            want = truth["population_pct"][quadrant]
            assert abs(got - want) <= 1.5, (setup, arm, quadrant, got, want)
        assert result.status == "ok", result.message
        assert sum(result.percentages.values()) == pytest.approx(100.0)


def test_compensation_from_controls_recovers_the_spillover(experiment: dict) -> None:
    gating, _ = experiment[("modern", 0.15, "controls")]
    comp = gating.compensation
    assert isinstance(comp, cr.Compensation) and comp.source == "controls"
    assert comp.spillover[0, 1] == pytest.approx(0.15, abs=0.01)  # FITC -> PE
    gating_file, _ = experiment[("modern", 0.12, "file")]
    assert gating_file.compensation == "file"


def test_thresholds_come_from_the_unstained_control_once(experiment: dict) -> None:
    gating, arms = experiment[("modern", 0.12, "file")]
    assert gating.thresholds.method == "percentile"
    assert "unstained" in gating.thresholds.source
    for result, _ in arms.values():  # applied unchanged to every sample of the group
        assert result.thresholds is gating.thresholds


def test_result_table_and_html(experiment: dict) -> None:
    _gating, arms = experiment[("modern", 0.12, "file")]
    result, truth = arms["v60"]
    frame = result.to_frame()
    assert list(frame.columns[: len(APOPTOSIS_COLUMNS)]) == APOPTOSIS_COLUMNS
    row = frame.iloc[0]
    assert row["events_total"] == truth["n_events"]
    assert row["events_total"] >= row["events_cells"] >= row["events_singlets"] > 0
    assert row["total_apoptotic_pct"] == pytest.approx(row["early_apoptotic_pct"] + row["late_apoptotic_pct"])
    assert sum(int(row[f"{q}_n"]) for q in QUADRANTS) == row["events_singlets"]
    assert "late apoptotic" in result._repr_html_()
    summary = result.summary()
    assert summary["counts"] == dict(result.counts)
    assert summary["compensation"]["source"] == "file"


def test_missing_controls_and_wrong_templates_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.fcs"
    sim.write_apoptosis_sample(path, sim.ApoptosisSpec(n_events=2000), seed=1)
    sample = cr.read_fcs(path)
    with pytest.raises(DesignError, match="needs the unstained control"):
        analyze_apoptosis(sample)
    with pytest.raises(DesignError, match="no annexin_only or pi_only control"):
        analyze_apoptosis(sample, compensation="controls", thresholds=(1e3, 1e3))
    with pytest.raises(TemplateError, match="cellcycle template"):
        analyze_apoptosis(sample, "generic_cellcycle", thresholds=(1e3, 1e3))
    with pytest.raises(DesignError, match="unknown control role"):
        analyze_apoptosis(sample, controls={"blank": sample})
    cal = tmp_path / "cal.fcs"
    sim.write_apoptosis_sample(cal, sim.ApoptosisSpec(n_events=2000), seed=1, dialect="facscalibur")
    with pytest.raises(ChannelError, match=r"role 'fsc_a' of template 'generic_modern'.*cal\.fcs"):
        analyze_apoptosis(cr.read_fcs(cal), "generic_modern", thresholds=(1e3, 1e3))
    keywords = {k: v for k, v in sample.keywords.items() if "SPILL" not in k.upper()}
    unspilled = cr.Sample(sample.raw, sample.channels, keywords, path=path)
    with pytest.raises(FCSError, match=r"s\.fcs: has no spillover keyword.*compensation: none"):
        analyze_apoptosis(unspilled, thresholds=(1e3, 1e3))
    fixed = analyze_apoptosis(sample, thresholds=(1e3, 1e3))
    assert fixed.thresholds.method == "fixed" and fixed.thresholds.annexin == 1e3


@pytest.mark.shared
def test_real_facscan_file_reads_with_the_facscalibur_template() -> None:
    # BD FACScan, FCS 2.0, 10-bit, FL1-H / FL2-H on 4-decade log amplifiers; no controls
    # exist for this file, so the thresholds are the density valleys of the file itself.
    sample = cr.read_fcs(shared_file("stains", "FlowIO_3FITC_4PE_004.fcs"))
    fl1 = sample.column("FL1-H")
    fl2 = sample.column("FL2-H")
    assert fl1.min() >= 1.0 and fl1.max() <= 1e4  # decoded from log channels, not 0..1023
    log4 = {"type": "log", "decades": 4, "t": 10000}
    thr = (valley_threshold(fl1, log4).value, valley_threshold(fl2, log4).value)
    result = analyze_apoptosis(sample, "facscalibur", thresholds=thr)
    assert result.channels["annexin"] == "FL1-H" and result.channels["pi"] == "FL2-H"
    assert result.compensation is None
    assert result.pregate.events_total == 94_569
    assert result.pregate.events_cells >= 0.9 * 94_569
    pct = result.percentages
    assert sum(pct.values()) == pytest.approx(100.0)
    # FL1 is cleanly bimodal (modes near 14 and 400): the valley splits off ~17% positives
    ann_pos = pct["early_apoptotic"] + pct["late_apoptotic"]
    assert 10 <= ann_pos <= 25
    assert 30 <= pct["viable"] <= 90


def test_cli_apoptosis_writes_the_table_and_records_failures(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ex = Path(__file__).resolve().parents[1] / "example_fcs" / "apoptosis"
    files = sorted(ex.glob("parental_drugA_r*.fcs"))
    bad = tmp_path / "broken.fcs"
    bad.write_bytes(b"FCS3.0    garbage")
    code = main(["apoptosis", *map(str, files), str(bad), "--control", str(ex / "parental_unstained.fcs"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.fcs" in err
    with open(tmp_path / "out" / "apoptosis.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[: len(APOPTOSIS_COLUMNS)] == APOPTOSIS_COLUMNS
    assert [r["status"] for r in rows] == ["ok"] * len(files) + ["error"]
    assert "broken.fcs" in rows[-1]["message"]
    table = pd.read_csv(tmp_path / "out" / "apoptosis.csv")
    assert table["annexin_threshold"].iloc[: len(files)].nunique() == 1
    # the same numbers as the library
    gating = ApoptosisGating.prepare("generic_modern", unstained=cr.read_fcs(ex / "parental_unstained.fcs"))
    lib = gating.analyze(cr.read_fcs(files[0])).to_frame().iloc[0]
    assert table["viable_pct"].iloc[0] == pytest.approx(lib["viable_pct"])


def test_cli_apoptosis_without_controls_is_a_data_error(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ex = Path(__file__).resolve().parents[1] / "example_fcs" / "apoptosis"
    code = main(["apoptosis", str(ex / "parental_vehicle_r1.fcs"), "--out", str(tmp_path)])
    assert code == 1
    assert "unstained" in capsys.readouterr().err
    assert np.isfinite(code)
