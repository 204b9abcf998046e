"""Simulated FCS data: determinism, ground truth, files that read back, recoverable quadrants.

The quadrant test is the contract other modules rely on: after removing debris and doublets
(with the simulator's own labels) and compensating with the true spillover matrix, thresholds
at the 99.5th percentile of the unstained control recover every quadrant within 1 point.
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoflow_res import read_fcs
from cytoflow_res.simulate import (
    APOPTOSIS_POPULATIONS,
    CELL_CYCLE_POPULATIONS,
    CELL_CYCLE_PROFILES,
    DEFAULT_SEED,
    ApoptosisSpec,
    CellCycleSpec,
    apoptosis_control_spec,
    dialect_channels,
    encode_events,
    events_from_truth,
    planted_arms,
    simulate_apoptosis,
    simulate_cell_cycle,
    write_apoptosis_sample,
    write_cellcycle_sample,
    write_experiment,
)

QUADRANTS = ("viable", "early_apoptotic", "late_apoptotic", "necrotic")
PHASES = ("g0g1", "s", "g2m")


def _spec(viable: float, early: float, late: float, *, n_events: int = 5000) -> ApoptosisSpec:
    return ApoptosisSpec(
        n_events=n_events, viable=viable, early_apoptotic=early, late_apoptotic=late,
        necrotic=round(1.0 - viable - early - late, 10),
        debris_fraction=0.03 + 0.08 * (1.0 - viable),
    )


# ----------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    spec = _spec(0.7, 0.15, 0.1, n_events=1000)
    # Same file name: $FIL and $SRC carry it.
    a, b, c = (tmp_path / d / "s.fcs" for d in ("a", "b", "c"))
    for p in (a, b, c):
        p.parent.mkdir()
    write_apoptosis_sample(a, spec, seed=7)
    write_apoptosis_sample(b, spec, seed=7)
    write_apoptosis_sample(c, spec, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    ev1, t1 = simulate_cell_cycle(seed=3)
    ev2, t2 = simulate_cell_cycle(seed=3)
    pd.testing.assert_frame_equal(ev1, ev2)
    assert t1 == t2


def test_experiment_is_byte_identical_when_regenerated(tmp_path: Path) -> None:
    kw = {"seed": 11, "n_apoptosis_events": 300, "n_cellcycle_events": 400}
    write_experiment(tmp_path / "one", **kw)
    write_experiment(tmp_path / "two", **kw)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 54 + 3  # FCS files + design.csv, truth.json, README.md
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "one", tmp_path / "two", [str(f) for f in files], shallow=False
    )
    assert not mismatch and not errors


def _assert_close(a: object, b: object, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), where
    else:
        assert a == b, where


def test_committed_example_matches_the_generator(tmp_path: Path, example_dir: Path) -> None:
    # Same process, same machine: byte-identical (test above). Against the committed copy,
    # allow last-bit float differences (another numpy build or CPU may round exp/log
    # differently); counts, names and keywords must match exactly.
    if not (example_dir / "truth.json").exists():
        pytest.fail(f"{example_dir} has no truth.json; run `cytoflow-res simulate example_fcs`")
    fresh = tmp_path / "ex"
    result = write_experiment(fresh)  # all defaults = the committed example
    assert result.truth["seed"] == DEFAULT_SEED
    names = sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file())
    committed = sorted(str(p.relative_to(example_dir)) for p in example_dir.rglob("*") if p.is_file())
    assert names == committed, "example_fcs is out of date: regenerate it"
    for name in ("design.csv", "README.md"):
        assert (fresh / name).read_text() == (example_dir / name).read_text(), name
    _assert_close(json.loads((fresh / "truth.json").read_text()),
                  json.loads((example_dir / "truth.json").read_text()), "truth")
    for name in names:
        if not name.endswith(".fcs"):
            continue
        new, old = read_fcs(fresh / name), read_fcs(example_dir / name)
        assert new.keywords == old.keywords, name
        np.testing.assert_allclose(np.asarray(new.raw, dtype=float), np.asarray(old.raw, dtype=float),
                                   rtol=1e-6, atol=1e-3, err_msg=name)


# ---------------------------------------------------------------------------- truth
@pytest.mark.parametrize("stains", [(True, True), (False, False), (True, False), (False, True)])
def test_apoptosis_truth_matches_labels(stains: tuple[bool, bool]) -> None:
    spec = dataclasses.replace(_spec(0.55, 0.2, 0.18, n_events=3000),
                               annexin_stain=stains[0], pi_stain=stains[1])
    events, truth = simulate_apoptosis(spec, seed=5)
    assert len(events) == truth["n_events"] == 3000
    assert list(events["population"].cat.categories) == list(APOPTOSIS_POPULATIONS)
    counts = events["population"].value_counts()
    singles = sum(int(counts[q]) for q in QUADRANTS)
    assert singles == truth["n_single_cells"]
    assert counts["debris"] == truth["n_debris"] and counts["doublet"] == truth["n_doublets"]
    for q in QUADRANTS:
        assert counts[q] == truth[f"n_{q}"]
        assert truth["population_pct"][q] == pytest.approx(100 * counts[q] / singles)
    assert sum(truth[f"{q}_pct"] for q in QUADRANTS) == pytest.approx(100.0, abs=1e-9)
    assert sum(truth["population_pct"].values()) == pytest.approx(100.0, abs=1e-9)
    ann_pos = truth["early_apoptotic_pct"] + truth["late_apoptotic_pct"]
    pi_pos = truth["late_apoptotic_pct"] + truth["necrotic_pct"]
    pop = truth["population_pct"]
    assert ann_pos == pytest.approx(
        (pop["early_apoptotic"] + pop["late_apoptotic"]) if stains[0] else 0.0
    )
    assert pi_pos == pytest.approx((pop["late_apoptotic"] + pop["necrotic"]) if stains[1] else 0.0)
    json.dumps(truth, allow_nan=False)


def test_cellcycle_truth_matches_labels() -> None:
    spec = CellCycleSpec.profile("g2m_arrest", subg1_fraction=0.1, cv=0.05)
    events, truth = simulate_cell_cycle(spec, seed=9)
    assert list(events["population"].cat.categories) == list(CELL_CYCLE_POPULATIONS)
    counts = events["population"].value_counts()
    cycling = sum(int(counts[p]) for p in PHASES)
    assert cycling == truth["n_cycling"]
    for p in PHASES:
        assert truth[f"{p}_pct"] == pytest.approx(100 * counts[p] / cycling)
    assert sum(truth[f"{p}_pct"] for p in PHASES) == pytest.approx(100.0, abs=1e-9)
    n = truth["n_events"]
    assert truth["subg1_pct"] == pytest.approx(100 * counts["subg1"] / n)
    assert truth["debris_pct"] == pytest.approx(100 * counts["debris"] / n)
    assert truth["doublet_pct"] == pytest.approx(100 * counts["doublet"] / n)
    assert truth["g2_mean"] == pytest.approx(truth["linearity"] * truth["g1_mean"])
    json.dumps(truth, allow_nan=False)

    pi_a = events["PI-A"].to_numpy()
    by = {p: pi_a[(events["population"] == p).to_numpy()] for p in CELL_CYCLE_POPULATIONS}
    g1, g2 = truth["g1_mean"], truth["g2_mean"]
    assert by["g0g1"].mean() == pytest.approx(g1, rel=0.01)
    assert by["g0g1"].std() / by["g0g1"].mean() == pytest.approx(truth["cv"], rel=0.1)
    assert by["g2m"].mean() == pytest.approx(g2, rel=0.01)
    assert by["g2m"].std() / by["g2m"].mean() == pytest.approx(truth["cv"], rel=0.15)
    assert g1 < np.median(by["s"]) < g2
    assert np.quantile(by["subg1"], 0.99) < g1 * (1 - 2 * truth["cv"])
    assert np.median(by["debris"]) < 0.2 * g1
    # Doublets: area adds up, width separates them from every singlet.
    width = events["PI-W"].to_numpy()
    singlet = events["population"].isin(["g0g1", "s", "g2m", "subg1"]).to_numpy()
    doublet = (events["population"] == "doublet").to_numpy()
    assert np.quantile(width[doublet], 0.005) > np.quantile(width[singlet], 0.995)
    assert np.median(pi_a[doublet]) > 1.5 * g1


@pytest.mark.parametrize("name", sorted(CELL_CYCLE_PROFILES))
def test_named_profiles(name: str) -> None:
    _, truth = simulate_cell_cycle(CellCycleSpec.profile(name, n_events=4000), seed=2)
    planted = CELL_CYCLE_PROFILES[name]
    for p in PHASES:
        assert truth[f"{p}_pct"] == pytest.approx(100 * planted[p], abs=3.0)


def test_s_shape_moves_s_phase() -> None:
    medians = {}
    for shape in ("early", "uniform", "late"):
        ev, truth = simulate_cell_cycle(CellCycleSpec.profile("s_arrest", s_shape=shape), seed=4)
        s = ev.loc[ev["population"] == "s", "PI-A"]
        medians[shape] = (s.median() - truth["g1_mean"]) / (truth["g2_mean"] - truth["g1_mean"])
    assert medians["early"] < 0.4 < medians["uniform"] < 0.6 < medians["late"]


# --------------------------------------------------------------------- files & reader
@pytest.mark.parametrize("dialect", ["modern", "facscalibur", "accuri"])
def test_files_read_back(tmp_path: Path, dialect: str) -> None:
    spec = _spec(0.6, 0.2, 0.15, n_events=1500)
    path = tmp_path / "apo.fcs"
    events, truth = write_apoptosis_sample(path, spec, seed=1, dialect=dialect)
    sample = read_fcs(path)
    declared = dialect_channels("apoptosis", dialect)
    assert sample.channel_names == [n for n, _ in declared] == truth["channels"]
    assert sample.n_events == 1500
    assert sample.channel("Annexin V").name == {"modern": "FITC-A", "facscalibur": "FL1-H",
                                                "accuri": "FL1-A"}[dialect]
    assert sample.channel("PI").name == {"modern": "PE-A", "facscalibur": "FL2-H",
                                         "accuri": "FL2-A"}[dialect]
    stored = encode_events(events, "apoptosis", dialect=dialect,
                           spillover=np.array(truth["spillover"]["matrix"]))
    np.testing.assert_allclose(np.asarray(sample.raw, dtype=float),
                               stored.to_numpy().astype(np.float32), rtol=0, atol=0)
    cyt = sample.keywords.get("$CYT", "")
    if dialect == "modern":
        assert sample.version == "FCS3.1" and sample.datatype == "F"
    elif dialect == "facscalibur":
        assert sample.version == "FCS2.0" and sample.datatype == "I" and cyt == "FACSCalibur"
        assert [ch.range for ch in sample.channels] == [1024.0] * 5
        assert [ch.log_decades for ch in sample.channels] == [0, 0, 4, 4, 4]
        assert int(sample.raw.max()) <= 1023
    else:
        assert sample.version == "FCS3.0" and sample.datatype == "I" and cyt == "Accuri C6"
        assert all(ch.range == 16_777_216 and ch.bits == 32 for ch in sample.channels)

    spill = sample.spillover
    if dialect == "facscalibur":
        # Hardware compensation: the file holds compensated data and no matrix.
        assert spill is None
        assert truth["spillover"]["keyword"] is None and truth["spillover"]["hardware_compensated"]
    else:
        assert spill is not None
        assert list(spill.channels) == truth["spillover"]["file_channels"]
        assert spill.channels == (("FITC-A", "PE-A") if dialect == "modern" else ("FL1-A", "FL2-A"))
        np.testing.assert_array_equal(spill.matrix, np.array([[1.0, 0.13], [0.01, 1.0]]))
        np.testing.assert_array_equal(spill.matrix, np.array(truth["spillover"]["matrix"]))

    cc_path = tmp_path / "cc.fcs"
    write_cellcycle_sample(cc_path, CellCycleSpec(n_events=1200), seed=2, dialect=dialect)
    cc = read_fcs(cc_path)
    assert cc.channel_names == [n for n, _ in dialect_channels("cellcycle", dialect)]
    assert cc.n_events == 1200
    assert cc.channel("PI").name == {"modern": "PI-A", "facscalibur": "FL2-A", "accuri": "FL2-A"}[dialect]


def test_independent_reader_agrees(tmp_path: Path) -> None:
    flowio = pytest.importorskip("flowio")
    path = tmp_path / "cal.fcs"
    events, truth = write_apoptosis_sample(path, _spec(0.5, 0.25, 0.2, n_events=800),
                                           seed=4, dialect="facscalibur")
    fd = flowio.FlowData(str(path))
    assert fd.event_count == 800
    assert fd.pnn_labels == truth["channels"]
    stored = encode_events(events, "apoptosis", dialect="facscalibur",
                           spillover=np.array(truth["spillover"]["matrix"]))
    np.testing.assert_array_equal(fd.as_array(preprocess=False), stored.to_numpy())
    # $PnE 4,1: value = 10 ** (4 * channel / 1024); the two readers agree on the decoding.
    np.testing.assert_allclose(read_fcs(path).events[:, 2], 10 ** (4 * stored["FL1-H"].to_numpy() / 1024))


def test_log_channel_encoding() -> None:
    ev = pd.DataFrame({c: [0.0] * 4 for c in ("FSC-H", "SSC-A", "PerCP-A")})
    ev["FITC-A"] = [-50.0, 25.0, 25 * 10.0**2, 25 * 1e6]  # /25 -> <1, 1, 100, >1e4
    ev["PE-A"] = 0.0
    out = encode_events(ev, "apoptosis", dialect="facscalibur", spillover=np.eye(2))
    assert out["FL1-H"].tolist() == [0, 0, 512, 1023]


# -------------------------------------------------------------- quadrant recovery
def _compensated_singlets(path: Path, events: pd.DataFrame, matrix: np.ndarray | None) -> np.ndarray:
    sample = read_fcs(path)  # .events: facscalibur log channels decoded to linear
    x = np.column_stack([sample.column("Annexin V"), sample.column("PI")]).astype(float)
    if matrix is not None:
        x = x @ np.linalg.inv(matrix)
    singles = (~events["population"].isin(["debris", "doublet"])).to_numpy()
    return x[singles]


@pytest.mark.parametrize("dialect", ["modern", "facscalibur"])
def test_threshold_quadrants_recover_truth(tmp_path: Path, dialect: str) -> None:
    arms = {
        "v90": (0.90, 0.04, 0.04),
        "v72": (0.72, 0.14, 0.10),
        "v55": (0.55, 0.18, 0.20),
        "v40": (0.40, 0.24, 0.28),
    }
    base = _spec(*arms["v90"])
    unstained = tmp_path / "unstained.fcs"
    ev_u, t_u = write_apoptosis_sample(unstained, apoptosis_control_spec("unstained", base),
                                       seed=[DEFAULT_SEED, 0], dialect=dialect)
    assert t_u["viable_pct"] == 100.0
    spill = t_u["spillover"]
    matrix = np.array(spill["matrix"]) if spill["keyword"] else None
    if dialect == "modern":
        assert matrix is not None
        assert read_fcs(unstained).spillover is not None
    thresholds = np.percentile(_compensated_singlets(unstained, ev_u, matrix), 99.5, axis=0)
    for i, (name, comp) in enumerate(arms.items()):
        path = tmp_path / f"{name}.fcs"
        events, truth = write_apoptosis_sample(path, _spec(*comp), seed=[DEFAULT_SEED, 1, i],
                                               dialect=dialect)
        x = _compensated_singlets(path, events, matrix)
        ann, pi = x[:, 0] > thresholds[0], x[:, 1] > thresholds[1]
        found = {
            "viable": 100 * np.mean(~ann & ~pi), "early_apoptotic": 100 * np.mean(ann & ~pi),
            "late_apoptotic": 100 * np.mean(ann & pi), "necrotic": 100 * np.mean(~ann & pi),
        }
        for q in QUADRANTS:
            assert found[q] == pytest.approx(truth[f"{q}_pct"], abs=1.0), (name, q)


@pytest.mark.parametrize("role", ["annexin_only", "pi_only"])
def test_single_stain_controls_have_a_clear_positive_population(role: str) -> None:
    events, truth = simulate_apoptosis(apoptosis_control_spec(role), seed=6)
    positive = truth["early_apoptotic_pct"] + truth["late_apoptotic_pct"] if role == "annexin_only" \
        else truth["late_apoptotic_pct"] + truth["necrotic_pct"]
    assert 40 < positive < 55
    assert truth["late_apoptotic_pct"] == 0.0
    col = "FITC-A" if role == "annexin_only" else "PE-A"
    singles = ~events["population"].isin(["debris", "doublet"])
    values = np.log10(np.clip(events.loc[singles, col], 1, None))
    low, high = np.quantile(values, [0.25, 0.75])
    assert high - low > 1.3  # two populations more than a decade apart


def test_scatter_separates_debris_and_doublets() -> None:
    events, _ = simulate_apoptosis(_spec(0.4, 0.24, 0.28), seed=8)
    ratio = events["FSC-A"] / events["FSC-H"]
    pop = events["population"]
    cells = pop.isin(QUADRANTS)
    assert ratio[pop == "doublet"].quantile(0.005) > ratio[cells].quantile(0.995)
    assert events.loc[pop == "late_apoptotic", "FSC-A"].quantile(0.01) > \
        events.loc[pop == "debris", "FSC-A"].quantile(0.95)
    # Apoptotic cells shrink but keep or raise their side scatter.
    median = events.groupby(pop, observed=True)[["FSC-A", "SSC-A"]].median()
    assert median.loc["early_apoptotic", "FSC-A"] < median.loc["viable", "FSC-A"]
    assert median.loc["early_apoptotic", "SSC-A"] > median.loc["viable", "SSC-A"]
    assert (events["FITC-A"] < 0).any()  # electronic noise reaches below zero


# ------------------------------------------------------------------------ experiment
def test_experiment_layout_truth_and_size(tmp_path: Path) -> None:
    result = write_experiment(tmp_path / "exp")
    out = result.outdir
    assert result.total_bytes < 10_000_000
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) == result.total_bytes
    design = pd.read_csv(out / "design.csv")
    assert list(design.columns) == ["file", "assay", "cell_line", "treatment", "drug_a", "dose_a",
                                    "drug_b", "dose_b", "replicate", "role", "group"]
    assert len(design) == result.n_files == 2 * (12 + 3) + 2 * 12
    assert all((out / f).is_file() for f in design["file"])
    assert set(design["treatment"]) == {"vehicle", "drugA", "drugB", "drugA+drugB", "none"}
    assert set(design["role"]) == {"sample", "unstained", "annexin_only", "pi_only"}
    assert (design.loc[design["role"] != "sample", "treatment"] == "none").all()
    assert (design["group"] == design["cell_line"]).all()
    combo = design[design["treatment"] == "drugA+drugB"]
    assert (combo["dose_a"] > 0).all() and (combo["dose_b"] > 0).all()
    assert (design.loc[design["treatment"] == "vehicle", ["dose_a", "dose_b"]] == 0).all().all()
    assert "apoptosis/parental_vehicle_r1.fcs" in set(design["file"])
    assert "apoptosis/resistant_unstained.fcs" in set(design["file"])

    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == DEFAULT_SEED
    assert set(truth["files"]) == set(design["file"])
    sample = read_fcs(out / "cellcycle" / "parental_drugB_r2.fcs")
    assert sample.n_events == 12000
    assert truth["files"]["cellcycle/parental_drugB_r2.fcs"]["truth"]["n_events"] == 12000
    assert read_fcs(out / "apoptosis" / "parental_vehicle_r1.fcs").n_events == 5000

    # Planted biology: parental synergy (well above Bliss), resistant exactly Bliss.
    comb = truth["arms"]["combination"]
    assert 15 <= comb["parental"]["excess_over_bliss_pts"] <= 20
    assert comb["resistant"]["fa_AB"] == pytest.approx(comb["resistant"]["bliss_fa_AB"], abs=1e-12)
    assert comb["resistant"]["fa_A"] < 0.05
    assert truth["arms"] == json.loads(json.dumps(planted_arms()))
    apo = truth["arms"]["apoptosis"]
    for line in ("parental", "resistant"):
        v = {t: apo[line][t]["viable_pct"] for t in ("vehicle", "drugA", "drugB", "drugA+drugB")}
        assert v["vehicle"] > v["drugA"] and v["vehicle"] > v["drugB"] > v["drugA+drugB"]
        for arm in apo[line].values():
            assert sum(arm[f"{q}_pct"] for q in QUADRANTS) == pytest.approx(100.0)
    cc = truth["arms"]["cellcycle"]["parental"]
    assert cc["drugA"]["g0g1_pct"] > cc["vehicle"]["g0g1_pct"]
    assert cc["drugB"]["g2m_pct"] > cc["vehicle"]["g2m_pct"]
    assert cc["drugA+drugB"]["subg1_pct"] > max(cc["drugA"]["subg1_pct"], cc["drugB"]["subg1_pct"])

    # Replicates vary around the arm means; each file records its planted and realised truth.
    reps = [truth["files"][f"apoptosis/parental_drugA_r{k}.fcs"] for k in (1, 2, 3)]
    planted = [r["planted"]["viable_pct"] for r in reps]
    assert len(set(planted)) == 3
    assert np.mean(planted) == pytest.approx(apo["parental"]["drugA"]["viable_pct"], abs=6)
    for r in reps:
        assert r["truth"]["viable_pct"] == pytest.approx(r["planted"]["viable_pct"], abs=4)
    for entry in truth["files"].values():
        t = entry["truth"]
        keys = QUADRANTS if entry["assay"] == "apoptosis" else PHASES
        assert sum(t[f"{k}_pct"] for k in keys) == pytest.approx(100.0, abs=1e-9)


def test_spec_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"population fractions must sum to 1.*sum 1\.1"):
        ApoptosisSpec(viable=1.0, early_apoptotic=0.1, late_apoptotic=0.0, necrotic=0.0)
    with pytest.raises(ValueError, match="cv must lie in"):
        CellCycleSpec(cv=0.5)
    with pytest.raises(ValueError, match="s_shape must be one of"):
        CellCycleSpec(s_shape="middle")
    with pytest.raises(ValueError, match="unknown cell-cycle profile 'x'; choose from control"):
        CellCycleSpec.profile("x")
    with pytest.raises(ValueError, match="unknown dialect 'cytof'; choose from modern"):
        dialect_channels("apoptosis", "cytof")
    with pytest.raises(ValueError, match="control role must be"):
        apoptosis_control_spec("isotype")


def test_events_rebuilt_from_experiment_truth(tmp_path: Path) -> None:
    result = write_experiment(tmp_path / "exp", n_apoptosis_events=400, n_cellcycle_events=500)
    for rel in ("apoptosis/resistant_drugB_r3.fcs", "apoptosis/parental_pi_only.fcs",
                "cellcycle/parental_drugA+drugB_r1.fcs"):
        entry = result.truth["files"][rel]
        events = events_from_truth(json.loads(json.dumps(entry["truth"])))
        sample = read_fcs(tmp_path / "exp" / rel)
        first = sample.channel_names[0]
        expected = events[first].to_numpy().astype(np.float32)
        np.testing.assert_array_equal(np.asarray(sample.raw[:, 0]), expected)
        counts = events["population"].value_counts()
        assert counts["doublet"] == entry["truth"]["n_doublets"]
