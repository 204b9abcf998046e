"""Whole-experiment runs: truth recovery, statistics, failures, exports and executors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cytoflow_res.cli import main
from cytoflow_res.errors import TemplateError
from cytoflow_res.experiment import Experiment, ExperimentResult

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "example_fcs"
QUADRANT_PCTS = ("viable_pct", "early_apoptotic_pct", "late_apoptotic_pct", "necrotic_pct")
PHASE_PCTS = ("g0g1_pct", "s_pct", "g2m_pct")


@pytest.fixture(scope="module")
def truth() -> dict:
    with open(EXAMPLE / "truth.json", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def example_run() -> ExperimentResult:
    return Experiment.from_design(EXAMPLE / "design.csv").run(progress=False)


ARMS = ("vehicle", "drugA", "drugB", "drugA+drugB")


def small_design(folder: Path, *, apoptosis_arms: tuple[str, ...] = ARMS, cellcycle: bool = True) -> Path:
    """A copy of part of the example (one cell line) in ``folder``, with its own design.csv."""
    design = pd.read_csv(EXAMPLE / "design.csv")
    keep = (design["cell_line"] == "parental") & (
        (design["role"] != "sample") | design["treatment"].isin(apoptosis_arms)
    )
    if not cellcycle:
        keep &= design["assay"] == "apoptosis"
    else:
        keep &= (design["assay"] == "apoptosis") | design["treatment"].isin(("vehicle", "drugA+drugB"))
    part = design[keep]
    for file in part["file"]:
        target = folder / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLE / file, target)
    part.to_csv(folder / "design.csv", index=False)
    return folder / "design.csv"


# ---------------------------------------------------------------------------- truth
def test_tables_have_one_row_per_sample_with_design_columns(example_run: ExperimentResult) -> None:
    design = pd.read_csv(EXAMPLE / "design.csv")
    samples = design[design["role"] == "sample"]
    apo, cc = example_run.apoptosis, example_run.cellcycle
    assert len(apo) == (samples["assay"] == "apoptosis").sum()
    assert len(cc) == (samples["assay"] == "cellcycle").sum()
    assert list(apo["file"]) == list(samples.loc[samples["assay"] == "apoptosis", "file"])
    for column in ("cell_line", "treatment", "replicate", "group", "drug_a", "dose_a", "drug_b", "dose_b"):
        assert column in apo.columns
        assert column in cc.columns
    assert apo.columns.get_loc("cell_line") < apo.columns.get_loc("viable_pct")
    assert example_run.ok
    assert example_run.errors.empty
    assert set(apo["status"]) <= {"ok", "warn"}
    assert set(cc["status"]) <= {"ok", "warn"}


def test_arm_means_within_two_points_of_the_truth(example_run: ExperimentResult, truth: dict) -> None:
    """Each arm's mean of the three replicates against the mean of what was planted in those files.

    The simulator draws each replicate's composition around the arm's population value
    (Dirichlet, concentration 250: biological scatter of about 1-2 points), then draws the
    events; ``planted`` is each file's composition, so the arm mean of ``planted`` is the truth
    the analysis of these files must recover. Sub-G1 is compared with the realised percentage
    of single cells (the simulator plants it as a percentage of all events).
    """
    summary = example_run.summary()
    checked = 0
    worst = 0.0
    arms: dict[tuple[str, str, str], list[dict]] = {}
    for info in truth["files"].values():
        if info["role"] == "sample":
            arms.setdefault((info["assay"], info["cell_line"], info["treatment"]), []).append(info)
    for (assay, line, arm), files in arms.items():
        expected = {m: np.mean([f["planted"][m] for f in files])
                    for m in (QUADRANT_PCTS if assay == "apoptosis" else PHASE_PCTS)}
        if assay == "cellcycle":
            expected["sub_g1_pct"] = np.mean([f["truth"]["subg1_pct_of_singlets"] for f in files])
        for measure, value in expected.items():
            row = summary[(summary["assay"] == assay) & (summary["cell_line"] == line)
                          & (summary["treatment"] == arm) & (summary["measure"] == measure)]
            assert len(row) == 1
            assert int(row["n"].iloc[0]) == len(files) == 3
            error = abs(float(row["mean"].iloc[0]) - value)
            checked += 1
            worst = max(worst, error)
            assert error <= 2.0, (assay, line, arm, measure, float(row["mean"].iloc[0]), value)
    assert checked == 8 * 4 + 8 * 4
    assert worst > 0.0  # estimated, not copied


def test_summary_statistics_are_the_textbook_ones(example_run: ExperimentResult) -> None:
    apo = example_run.apoptosis
    values = apo.loc[(apo["cell_line"] == "resistant") & (apo["treatment"] == "drugB"), "total_apoptotic_pct"]
    row = example_run.summary().query(
        "assay == 'apoptosis' and cell_line == 'resistant' and treatment == 'drugB' "
        "and measure == 'total_apoptotic_pct'")
    x = values.to_numpy(dtype=float)
    sem = x.std(ddof=1) / np.sqrt(x.size)
    assert float(row["mean"].iloc[0]) == pytest.approx(x.mean())
    assert float(row["sem"].iloc[0]) == pytest.approx(sem)
    assert float(row["ci95_high"].iloc[0]) == pytest.approx(x.mean() + sps.t.ppf(0.975, x.size - 1) * sem)


def test_bliss_finds_the_planted_synergy_and_not_the_additive_pair(
    example_run: ExperimentResult, truth: dict,
) -> None:
    synergy = example_run.synergy()
    viable = synergy[(synergy["assay"] == "apoptosis") & (synergy["measure"] == "viable_pct")]
    par = viable[viable["cell_line"] == "parental"].iloc[0]
    res = viable[viable["cell_line"] == "resistant"].iloc[0]
    planted = truth["arms"]["combination"]["parental"]["excess_over_bliss_pts"] / 100
    assert par["metric"] == "Bliss/HSA"
    assert par["bliss_excess"] > 0
    assert par["bliss_p"] < 0.05
    assert par["call"] == "synergy"
    assert par["bliss_excess"] == pytest.approx(planted, abs=0.05)
    assert res["bliss_p"] > 0.05
    assert res["call"] == "additive"
    assert abs(res["bliss_excess"]) < 0.05


def test_comparison_p_values_equal_scipy(example_run: ExperimentResult) -> None:
    apo = example_run.apoptosis
    comps = example_run.comparisons()
    line, measure = "parental", "total_apoptotic_pct"
    sub = apo[apo["cell_line"] == line]
    arms = {t: sub.loc[sub["treatment"] == t, measure].to_numpy(dtype=float)
            for t in ("vehicle", "drugA", "drugB", "drugA+drugB")}
    others = ["drugA", "drugB", "drugA+drugB"]
    dunnett = sps.dunnett(*(arms[t] for t in others), control=arms["vehicle"], rng=np.random.default_rng(0))
    got = comps[(comps["assay"] == "apoptosis") & (comps["comparison"] == "vs vehicle")
                & (comps["cell_line"] == line) & (comps["measure"] == measure)]
    for arm, p in zip(others, dunnett.pvalue, strict=True):
        row = got[(got["group1"] == arm) | (got["group2"] == arm)]
        assert len(row) == 1
        assert float(row["p_value"].iloc[0]) == pytest.approx(p, rel=1e-12)
    order = ["vehicle", *others]
    tukey = sps.tukey_hsd(*(arms[t] for t in order))
    got = comps[(comps["assay"] == "apoptosis") & (comps["comparison"] == "pairwise")
                & (comps["cell_line"] == line) & (comps["measure"] == measure)]
    assert len(got) == 6
    for _, row in got.iterrows():
        i, j = order.index(row["group1"]), order.index(row["group2"])
        assert float(row["p_value"]) == pytest.approx(tukey.pvalue[i, j], rel=1e-12)
    assert set(comps["comparison"]) >= {"vs vehicle", "pairwise", "combination vs single agents",
                                        "cell line x treatment"}
    assert comps["test"].notna().all()


# ---------------------------------------------------------------------------- failures
def test_corrupt_and_missing_files_are_recorded_and_exit_1(tmp_path: Path) -> None:
    sheet = small_design(tmp_path / "data")
    design = pd.read_csv(sheet)
    corrupt = tmp_path / "data" / "apoptosis" / "parental_drugA_r2.fcs"
    corrupt.write_bytes(corrupt.read_bytes()[:300])
    missing = tmp_path / "data" / "apoptosis" / "parental_drugB_r3.fcs"
    missing.unlink()
    out = tmp_path / "out"
    code = main(["run", str(sheet), "--out", str(out)])
    assert code == 1
    for name in ("apoptosis.csv", "cellcycle.csv", "summary.csv", "comparisons.csv", "synergy.csv",
                 "errors.csv", "results.xlsx", "run.json"):
        assert (out / name).is_file(), name
    errors = pd.read_csv(out / "errors.csv")
    assert sorted(errors["file"]) == ["apoptosis/parental_drugA_r2.fcs", "apoptosis/parental_drugB_r3.fcs"]
    messages = " ".join(errors["message"])
    assert "parental_drugA_r2.fcs" in messages
    assert "parental_drugB_r3.fcs" in messages
    apo = pd.read_csv(out / "apoptosis.csv")
    n_apo = int(((design["assay"] == "apoptosis") & (design["role"] == "sample")).sum())
    assert len(apo) == n_apo
    assert (apo["status"] == "error").sum() == 2
    assert apo.loc[apo["status"] != "error", "viable_pct"].notna().all()
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert sorted(e["file"] for e in record["errors"]) == sorted(errors["file"])
    by_file = {f["file"]: f for f in record["files"]}
    assert by_file["apoptosis/parental_drugB_r3.fcs"]["sha256"] is None
    summary = pd.read_csv(out / "summary.csv")
    drug_b = summary[(summary["treatment"] == "drugB") & (summary["measure"] == "viable_pct")]
    assert int(drug_b["n"].iloc[0]) == 2
    assert int(drug_b["n_excluded"].iloc[0]) == 1


def test_a_broken_control_fails_its_group_only(tmp_path: Path) -> None:
    sheet = small_design(tmp_path, cellcycle=True)
    (tmp_path / "apoptosis" / "parental_unstained.fcs").write_bytes(b"FCS3.0  garbage")
    result = Experiment.from_design(sheet).run(progress=False)
    assert not result.ok
    assert (result.apoptosis["status"] == "error").all()
    assert result.apoptosis["message"].str.contains("unstained control").all()
    assert set(result.cellcycle["status"]) <= {"ok", "warn"}
    controls = result.errors[result.errors["role"] == "unstained"]
    assert list(controls["file"]) == ["apoptosis/parental_unstained.fcs"]
    assert "error" in result.run_record()["thresholds"]["parental"]


def test_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sheet = small_design(tmp_path / "data", cellcycle=False)
    result = Experiment.from_design(sheet).run(progress=False)
    out = tmp_path / "out"
    result.write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    calls = {"n": 0}
    original = pd.DataFrame.to_csv

    def interrupted(self: pd.DataFrame, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.write(out)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # every file is whole: old or new, never half, and no temporary left


def test_bad_options_raise_clear_errors(tmp_path: Path) -> None:
    experiment = Experiment.from_design(small_design(tmp_path, cellcycle=False))
    with pytest.raises(ValueError, match="executor must be one of serial, process, dask"):
        experiment.run(executor="threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_jobs must be at least 1"):
        experiment.run(n_jobs=0)
    with pytest.raises(TemplateError, match="two apoptosis templates"):
        experiment.run(template=["generic_modern", "facscalibur"])


# ---------------------------------------------------------------------------- executors
def _comparable(result: ExperimentResult) -> dict[str, pd.DataFrame]:
    return {name: frame.reset_index(drop=True) for name, frame in result.tables().items()}


def test_process_executor_gives_the_serial_tables(tmp_path: Path) -> None:
    experiment = Experiment.from_design(small_design(tmp_path))
    serial = experiment.run(progress=False)
    parallel = experiment.run(executor="process", n_jobs=2, progress=False)
    for name, frame in _comparable(serial).items():
        pd.testing.assert_frame_equal(_comparable(parallel)[name], frame, check_exact=True, obj=name)
    assert list(parallel.files["sha256"]) == list(serial.files["sha256"])


@pytest.mark.slow
def test_dask_local_cluster_gives_the_serial_tables(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    experiment = Experiment.from_design(small_design(tmp_path))
    serial = experiment.run(progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        on_dask = experiment.run(executor="dask", scheduler=address, progress=False)
    assert on_dask.settings["scheduler"] == address
    for name, frame in _comparable(serial).items():
        pd.testing.assert_frame_equal(_comparable(on_dask)[name], frame, check_exact=True, obj=name)


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    sheet = small_design(tmp_path, cellcycle=False)
    code = main(["run", str(sheet), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 1


# ---------------------------------------------------------------------------- exports and CLI
def test_demo_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  example_run: ExperimentResult) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Bliss excess" in printed
    for name in ("apoptosis", "cellcycle", "summary", "comparisons", "synergy", "errors"):
        frame = pd.read_csv(out / f"{name}.csv")
        expected = example_run.tables()[name]
        assert len(frame) == len(expected), name
        assert list(frame.columns) == list(expected.columns), name
    workbook = pd.read_excel(out / "results.xlsx", sheet_name=None)
    assert set(workbook) >= {"apoptosis", "cellcycle", "summary", "comparisons", "synergy", "errors"}
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["environment"]["packages"]["numpy"] == np.__version__
    assert record["settings"]["executor"] == "process"
    assert set(record["thresholds"]) == {"parental", "resistant"}
    assert record["templates"]["apoptosis"]["name"] == "generic_modern"
    assert len(record["templates"]["apoptosis"]["sha256"]) == 64
    files = {f["file"]: f for f in record["files"]}
    assert len(files) == len(pd.read_csv(EXAMPLE / "design.csv"))
    import hashlib

    some = "apoptosis/parental_vehicle_r1.fcs"
    assert files[some]["sha256"] == hashlib.sha256((EXAMPLE / some).read_bytes()).hexdigest()


def test_rerun_gives_identical_tables(tmp_path: Path) -> None:
    sheet = small_design(tmp_path / "data")
    for name in ("a", "b"):
        assert main(["run", str(sheet), "--out", str(tmp_path / name)]) == 0
    for table in ("apoptosis", "cellcycle", "summary", "comparisons", "synergy", "errors"):
        first, second = (tmp_path / run / f"{table}.csv" for run in ("a", "b"))
        assert first.read_bytes() == second.read_bytes(), table


def test_run_usage_errors(tmp_path: Path) -> None:
    sheet = small_design(tmp_path, cellcycle=False)
    assert main(["run", str(sheet)]) == 2  # --out is required
    assert main(["run", str(sheet), "--out", str(tmp_path / "o"), "--jobs", "0"]) == 2
    assert main(["run", str(sheet), "--out", str(tmp_path / "o"), "--executor", "process",
                 "--scheduler", "tcp://x:1"]) == 2
