"""The run journal: samples streamed to disk as they finish, safe entries, resumable runs."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cytoflow_res import Experiment
from cytoflow_res import experiment as exp_mod
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import CellCycleFit
from cytoflow_res.cli import main
from cytoflow_res.errors import CytoflowResError
from cytoflow_res.io.journal import FitStore, Journal, entry_key

EXAMPLE = Path(__file__).resolve().parents[1] / "example_fcs"
TABLES = ("apoptosis", "cellcycle", "summary", "comparisons", "synergy", "errors")


# ---------------------------------------------------------------------------- the journal itself
def test_entries_round_trip_and_keys_change_with_every_input(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    key = entry_key(file="a.fcs", sha256="0" * 64, settings="s")
    assert key not in journal and journal.load(key) is None
    payload = exp_mod._Outcome({"file": "a.fcs", "viable_pct": 91.5}, None, seconds=0.25)
    journal.save(key, payload)
    assert key in journal and list(journal.keys()) == [key]
    back = journal.load(key)
    assert isinstance(back, exp_mod._Outcome) and back.row == payload.row and back.seconds == 0.25
    others = {entry_key(file="b.fcs", sha256="0" * 64, settings="s"),
              entry_key(file="a.fcs", sha256="1" * 64, settings="s"),
              entry_key(file="a.fcs", sha256="0" * 64, settings="t")}
    assert key not in others and len(others) == 3
    assert not any(p.name.endswith(".tmp") for p in journal.folder.iterdir())


def test_a_hostile_or_broken_entry_is_ignored_not_run(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path / "j")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    bad = "a" * 64
    journal.path(bad).write_bytes(pickle.dumps({"magic": "cytoflow_res journal entry", "format": 1,
                                                "key": bad, "payload": Evil()}))
    truncated = "b" * 64
    journal.save(truncated, exp_mod._Outcome({"x": 1}))
    data = journal.path(truncated).read_bytes()
    journal.path(truncated).write_bytes(data[: len(data) // 2])
    wrong_key = "c" * 64
    journal.save("d" * 64, exp_mod._Outcome({"x": 1}))
    shutil.copy(journal.path("d" * 64), journal.path(wrong_key))  # an entry under another name
    with caplog.at_level(logging.WARNING, logger="cytoflow_res.io.journal"):
        assert journal.load(bad) is None
        assert journal.load(truncated) is None
        assert journal.load(wrong_key) is None
    assert not marker.exists()
    assert "os.system" in caplog.text or "posix.system" in caplog.text
    assert caplog.text.count("analysed again") == 3


def test_prune_keeps_only_the_keys_in_use(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    for k in ("a" * 64, "b" * 64):
        journal.save(k, exp_mod._Outcome({}))
    (journal.folder / ".x.pickle.1-ab.tmp").write_bytes(b"half")
    (journal.folder / "notes.txt").write_text("mine")
    assert journal.prune({"a" * 64}) == 2
    assert sorted(p.name for p in journal.folder.iterdir()) == ["a" * 64 + ".pickle", "notes.txt"]


def test_fit_store_reads_on_demand_and_says_when_an_entry_is_gone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.save("a" * 64, exp_mod._Outcome({}, fit="the fit"))
    kept = {"fit": "in memory"}
    store = FitStore(journal, ["a" * 64, None, kept])
    assert len(store) == 3 and store[0] == "the fit" and store[1] is None and store[2] is kept
    assert store[0:2] == ["the fit", None]
    journal.path("a" * 64).unlink()
    with pytest.raises(CytoflowResError, match="no longer in the run journal"):
        store[0]


def test_journal_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(CytoflowResError, match="cannot create the run journal folder"):
        Journal(tmp_path / "f")


# ---------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def small_experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One apoptosis group (3 controls, 6 samples) and 5 cell-cycle samples, one with no G2/M to place."""
    root = tmp_path_factory.mktemp("small")
    (root / "apoptosis").mkdir()
    (root / "cellcycle").mkdir()
    rows = []
    for role in ("unstained", "annexin_only", "pi_only"):
        name = f"apoptosis/parental_{role}.fcs"
        shutil.copy(EXAMPLE / name, root / name)
        rows.append({"file": name, "assay": "apoptosis", "cell_line": "parental", "treatment": "none",
                     "replicate": 1, "role": role, "group": "parental"})
    for arm in ("vehicle", "drugA"):
        for rep in (1, 2, 3):
            name = f"apoptosis/parental_{arm}_r{rep}.fcs"
            shutil.copy(EXAMPLE / name, root / name)
            rows.append({"file": name, "assay": "apoptosis", "cell_line": "parental", "treatment": arm,
                         "replicate": rep, "role": "sample", "group": "parental"})
    for i, prof in enumerate(("control", "control", "g2m_arrest", "control", "g1_arrest")):
        spec = sim.CellCycleSpec.profile(prof, n_events=12_000, cv=0.04)
        if i == 4:  # almost no G2/M: its linearity cannot be fitted and is shared from the others
            spec = sim.CellCycleSpec(n_events=12_000, g0g1=0.95, s=0.045, g2m=0.005, cv=0.04)
        name = f"cellcycle/s{i}.fcs"
        sim.write_cellcycle_sample(root / name, spec, seed=40 + i)
        rows.append({"file": name, "assay": "cellcycle", "cell_line": "parental",
                     "treatment": "vehicle" if i < 2 else "drugA", "replicate": i + 1, "role": "sample",
                     "group": "parental"})
    pd.DataFrame(rows).to_csv(root / "design.csv", index=False)
    return root / "design.csv"


@pytest.fixture(scope="module")
def in_memory(small_experiment: Path) -> exp_mod.ExperimentResult:
    return Experiment.from_design(small_experiment).run()


def _ctrl_c_after(n: int) -> Callable[[tuple], exp_mod._Outcome]:
    """A task runner that analyses ``n`` samples, then behaves as if the user pressed Ctrl-C."""
    real = exp_mod._run_task
    calls = {"n": 0}

    def run(task: tuple) -> exp_mod._Outcome:
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt
        return real(task)

    return run


def _csvs(result: exp_mod.ExperimentResult) -> dict[str, str]:
    return {name: frame.to_csv(index=False) for name, frame in result.tables().items() if name in TABLES}


def test_journal_run_equals_in_memory_run_and_keeps_no_fit_in_memory(
    small_experiment: Path, in_memory: exp_mod.ExperimentResult, tmp_path: Path,
) -> None:
    refit = in_memory.cellcycle.loc[4]
    assert "linearity fixed at" in refit["message"]  # the shared-linearity path is exercised
    gc.collect()
    before = sum(isinstance(o, CellCycleFit) for o in gc.get_objects())
    result = Experiment.from_design(small_experiment).run(journal=tmp_path / "journal")
    gc.collect()
    after = sum(isinstance(o, CellCycleFit) for o in gc.get_objects())
    assert after == before  # every fit went to disk; only rows stay
    assert isinstance(result.cellcycle_fits, FitStore)
    assert _csvs(result) == _csvs(in_memory)
    for i in range(5):
        got, want = result.cellcycle_fits[i], in_memory.cellcycle_fits[i]
        assert got.fractions == want.fractions and got.message == want.message
    entries = list(Journal(tmp_path / "journal").keys())
    assert len(entries) == 6 + 5 + 1  # every sample, plus the refit with the shared linearity
    assert result.run_record()["settings"]["journal"] == str(tmp_path / "journal")


def test_an_interrupted_run_resumes_where_it_stopped(
    small_experiment: Path, in_memory: exp_mod.ExperimentResult, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = tmp_path / "journal"
    real = exp_mod._run_task
    monkeypatch.setattr(exp_mod, "_run_task", _ctrl_c_after(7))
    with pytest.raises(KeyboardInterrupt):
        Experiment.from_design(small_experiment).run(journal=journal)
    monkeypatch.setattr(exp_mod, "_run_task", real)
    assert len(list(Journal(journal).keys())) == 7

    analysed: list[str] = []

    def counting(task: tuple) -> exp_mod._Outcome:
        analysed.append(task[1][1])
        return real(task)

    monkeypatch.setattr(exp_mod, "_run_task", counting)
    resumed = Experiment.from_design(small_experiment).run(journal=journal, resume=True)
    assert len(analysed) == 4  # only the samples the interrupted run had not finished
    assert int(resumed.files["from_journal"].sum()) == 7
    assert _csvs(resumed) == _csvs(in_memory)

    analysed.clear()
    again = Experiment.from_design(small_experiment).run(journal=journal, resume=True)
    assert analysed == []
    assert _csvs(again) == _csvs(in_memory)

    # Changed bytes of one file, or changed settings: those samples are analysed again.
    design_dir = small_experiment.parent
    changed = design_dir / "apoptosis/parental_vehicle_r1.fcs"
    shutil.copy(design_dir / "apoptosis/parental_vehicle_r2.fcs", changed)
    try:
        analysed.clear()
        Experiment.from_design(small_experiment).run(journal=journal, resume=True)
        assert analysed == ["apoptosis/parental_vehicle_r1.fcs"]
    finally:
        shutil.copy(EXAMPLE / "apoptosis/parental_vehicle_r1.fcs", changed)
    # r1's original entry went when the run with the changed file finished (a finished run keeps
    # only the entries it used), so r1 is analysed again too.
    analysed.clear()
    Experiment.from_design(small_experiment).run(journal=journal, resume=True, linearity="free")
    cellcycle = [f"cellcycle/s{i}.fcs" for i in range(5)]
    assert sorted(analysed) == ["apoptosis/parental_vehicle_r1.fcs", *cellcycle]


def test_failed_samples_are_retried_on_resume(small_experiment: Path, tmp_path: Path) -> None:
    root = tmp_path / "exp"
    shutil.copytree(small_experiment.parent, root)
    target = root / "cellcycle/s1.fcs"
    good = target.read_bytes()
    target.write_bytes(good[:300])  # truncated: an error row
    first = Experiment.from_design(root / "design.csv").run(journal=root / "out/journal")
    assert first.cellcycle.loc[1, "status"] == "error"
    target.write_bytes(good)  # the user fixes the file
    second = Experiment.from_design(root / "design.csv").run(journal=root / "out/journal", resume=True)
    assert second.cellcycle.loc[1, "status"] == "ok"
    assert not bool(second.files.loc[second.files["file"] == "cellcycle/s1.fcs", "from_journal"].iloc[0])


def test_resume_needs_a_journal(small_experiment: Path) -> None:
    with pytest.raises(ValueError, match="resume=True needs the journal"):
        Experiment.from_design(small_experiment).run(resume=True)


def test_cli_resume_reports_what_it_reused(small_experiment: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["run", str(small_experiment), "--out", str(out), "--no-report"]
    assert main(args) == 0
    first = (out / "cellcycle.csv").read_bytes()
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    text = capsys.readouterr().out
    assert "(11 samples taken from the journal)" in text
    assert (out / "cellcycle.csv").read_bytes() == first
    assert (out / "journal").is_dir()


def test_cli_ctrl_c_says_how_to_resume(small_experiment: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(exp_mod, "_run_task", _ctrl_c_after(2))
    out = tmp_path / "out"
    assert main(["run", str(small_experiment), "--out", str(out), "--no-report"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and str(out / "journal") in err
    assert len(list(Journal(out / "journal").keys())) == 2
