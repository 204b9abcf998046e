"""Peak tails, implausible starts, and the batch-shared linearity (real Zenodo acceptance)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import ModelSpec, dna_histogram, fit_histogram
from cytoflow_res.cellcycle import lineshapes as ls
from cytoflow_res.cellcycle.batch import g2_is_placed, share_linearity
from cytoflow_res.cli import main
from tests.conftest import shared_file

ZENODO = [
    "Specimen_001_AI_0_001.fcs", "Specimen_001_AI_24_002.fcs", "Specimen_001_AI_48_003.fcs",
    "Specimen_001_AI_72_004.fcs", "Specimen_001_AX_0_005.fcs", "Specimen_001_AX_24_006.fcs",
    "Specimen_001_AX_48_007.fcs", "Specimen_001_AX_72_008.fcs",
]


@pytest.mark.parametrize("tail", [1e-4, 0.5, 5.0, 20.0])
def test_peak_tail_is_a_mirrored_exgaussian(tail: float) -> None:
    edges = np.arange(0.0, 401.0)
    got = ls.peak_bins(edges, 200.0, 8.0, tail)
    # X = 200 - (E + G): P(X <= e) = 1 - F(200 - e) for scipy's exponnorm (K = tail / sd)
    ref = 1 - stats.exponnorm(tail / 8.0, scale=8.0).cdf(200.0 - edges)
    np.testing.assert_allclose(got, np.diff(ref), atol=1e-12)
    centres = edges[:-1] + 0.5
    assert (got * centres).sum() / got.sum() == pytest.approx(200.0 - tail, abs=0.02)


def test_zero_tail_is_the_gaussian() -> None:
    edges = np.arange(0.0, 257.0)
    np.testing.assert_array_equal(ls.peak_bins(edges, 100.0, 4.0, 0.0), ls.gaussian_bins(edges, 100.0, 4.0))
    s_gauss = ls.broadened_s_phase(edges, 100.0, 195.0, 0.04)
    s_tail = ls.broadened_s_phase(edges, 100.0, 195.0, 0.04, tail=1e-9)
    np.testing.assert_allclose(s_tail, s_gauss, atol=1e-9)


def _left_tailed_histogram(seed: int = 3) -> tuple[np.ndarray, dict[str, float]]:
    """Counts of a cycling population seen with a Gaussian plus a left exponential tail."""
    rng = np.random.default_rng(seed)
    n = 30_000
    frac = {"g1": 0.6, "s": 0.25, "g2": 0.15}
    codes = rng.choice(3, size=n, p=list(frac.values()))
    dna = np.where(codes == 0, 1.0, np.where(codes == 2, 1.95, 1.0 + 0.95 * rng.random(n)))
    seen = dna * (1 + 0.035 * rng.standard_normal(n)) - dna * rng.exponential(0.03, n)
    counts, _ = np.histogram(seen * 200.0, bins=512, range=(0, 512))
    return counts.astype(float), {k: 100 * v for k, v in frac.items()}


def test_peak_tail_model_recovers_fractions_of_tailed_peaks() -> None:
    counts, truth = _left_tailed_histogram()
    from cytoflow_res.cellcycle import DNAHistogram

    hist = DNAHistogram.from_counts(counts)
    plain = fit_histogram(hist, model=ModelSpec(debris="none", aggregates=False))
    tailed = fit_histogram(hist, model=ModelSpec(debris="none", aggregates=False, peak_tail=True))
    assert tailed.aic < plain.aic - 50  # the data ask for the tail
    assert tailed.params["peak_tail"].value == pytest.approx(0.03, abs=0.006)
    assert tailed.spec.name.startswith("djf(poly2,tail)")
    for key, phase in (("g0g1_pct", "g1"), ("s_pct", "s"), ("g2m_pct", "g2")):
        assert abs(tailed.fractions[key] - truth[phase]) <= 1.5, key
    # the reported CV is the whole skewed peak's, comparable with a Gaussian fit's
    assert tailed.summary()["g1_cv_pct"] == pytest.approx(100 * np.hypot(0.035, 0.03) / 0.97, abs=0.5)


@pytest.fixture(scope="module")
def small_g2_batch(tmp_path_factory: pytest.TempPathFactory) -> list:
    d = tmp_path_factory.mktemp("batch")
    fits = []
    for i, prof in enumerate(("control", "control", "g2m_arrest", "control", "g1_arrest")):
        spec = sim.CellCycleSpec.profile(prof, n_events=20_000, cv=0.04)
        if i == 4:
            spec = sim.CellCycleSpec(n_events=20_000, g0g1=0.95, s=0.045, g2m=0.005, cv=0.04)
        path = d / f"s{i}.fcs"
        sim.write_cellcycle_sample(path, spec, seed=40 + i)
        fits.append(fit_histogram(dna_histogram(read_fcs(path)), model="auto"))
    return fits


def test_share_linearity_refits_only_unplaced_g2(small_g2_batch: list) -> None:
    fits = small_g2_batch
    placed = [g2_is_placed(f) for f in fits]
    assert placed[:4] == [True, True, True, True] and placed[4] is False
    shared = share_linearity(fits)
    median = float(np.median([f.linearity for f in fits[:4]]))
    assert shared[:4] == fits[:4]  # placed fits are untouched
    refit = shared[4]
    assert refit.linearity == pytest.approx(median)
    assert not refit.params["linearity"].vary
    assert "linearity fixed at" in refit.message and "median of 4 fits" in refit.message
    assert refit.g0g1_pct == pytest.approx(95.0, abs=1.5)
    # too few placed fits: nothing changes
    assert share_linearity(fits[3:]) == fits[3:]


@pytest.mark.shared
def test_zenodo_linearity_in_range_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(shared_file("dna", "zenodo_14928071", f)) for f in ZENODO]
    code = main(["cellcycle", *files, "--out", str(tmp_path)])
    capsys.readouterr()
    assert code == 0
    with open(tmp_path / "cellcycle.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(ZENODO)
    for row in rows:
        assert row["status"] in ("ok", "warn"), row["message"]
        if row["status"] == "warn":
            assert row["message"]
        assert 1.7 <= float(row["linearity"]) <= 1.95, (row["sample_id"], row["linearity"])
        g1 = float(row["g1_mean"])
        assert 180 <= g1 <= 225, (row["sample_id"], g1)  # the main peak, not the sub-G1 shoulder
    fixed = [r for r in rows if "linearity fixed at" in r["message"]]
    assert {r["sample_id"] for r in fixed} >= {"Specimen_001_AI_48_003", "Specimen_001_AI_72_004"}


def test_cli_rejects_a_bad_linearity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cellcycle", "x.fcs", "--linearity", "banana", "--out", str(tmp_path)]) == 2
    assert "--linearity must be" in capsys.readouterr().err


@pytest.mark.shared
def test_free_linearity_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(shared_file("dna", "zenodo_14928071", f)) for f in ZENODO[2:4]]
    assert main(["cellcycle", *files, "--linearity", "free", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    text = (tmp_path / "cellcycle.csv").read_text()
    assert "linearity fixed at" not in text


def test_cli_cellcycle_with_a_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = Path(__file__).resolve().parents[1] / "example_fcs" / "cellcycle"
    files = [str(p) for p in sorted(ex.glob("parental_vehicle_r*.fcs"))]
    assert main(["cellcycle", *files, "--template", "generic_cellcycle", "--out", str(tmp_path / "t")]) == 0
    assert main(["cellcycle", *files, "--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    with_t = list(csv.DictReader((tmp_path / "t" / "cellcycle.csv").read_text().splitlines()))
    plain = list(csv.DictReader((tmp_path / "plain" / "cellcycle.csv").read_text().splitlines()))
    # the template resolves PI-A with PI-W doublet discrimination and model auto: same numbers
    assert [r["g0g1_pct"] for r in with_t] == [r["g0g1_pct"] for r in plain]
    assert main(["cellcycle", *files, "--template", "generic_modern", "--out", str(tmp_path)]) == 2
    assert "cell-cycle template" in capsys.readouterr().err
