"""The command line, run in-process through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cytoflow_res import __version__, write_fcs
from cytoflow_res.cli import main


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    good = write_fcs(
        tmp_path / "good.fcs", rng.normal(1000, 100, (50, 3)).astype(np.float32), ["FSC-A", "FITC-A", "PE-A"],
        labels=["", "Annexin V", "PI"], keywords={"$CYT": "TestCyt"},
        spillover=(["FITC-A", "PE-A"], np.array([[1.0, 0.13], [0.0, 1.0]])),
    )
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"this is not an FCS file, only some text " * 3)
    return good, bad


def test_info_text(two_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    good, _ = two_files
    assert main(["info", str(good)]) == 0
    out = capsys.readouterr().out
    assert "50 events" in out
    assert "3 channels" in out
    assert "TestCyt" in out
    assert "Annexin V" in out
    assert "$SPILLOVER (2 channels)" in out


def test_info_bad_file_keeps_going(two_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = two_files
    code = main(["info", str(bad), str(good)])
    captured = capsys.readouterr()
    assert code == 1
    assert "good.fcs" in captured.out  # the good file is still described
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err_lines) == 1
    assert "bad.fcs" in err_lines[0]
    assert "not an FCS file" in err_lines[0]


def test_info_json(two_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = two_files
    code = main(["info", "--json", str(good), str(bad)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["cytoflow_res_version"] == __version__
    first, second = doc["files"]
    assert first["n_events"] == 50
    assert [c["name"] for c in first["channels"]] == ["FSC-A", "FITC-A", "PE-A"]
    assert first["spillover"]["channels"] == ["FITC-A", "PE-A"]
    assert "not an FCS file" in second["error"]


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2
    assert main(["info"]) == 2
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cellcycle_command_keeps_going(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    import pandas as pd

    from cytoflow_res import simulate as sim

    cc = tmp_path / "cc.fcs"
    sim.write_cellcycle_sample(cc, sim.CellCycleSpec.profile("control", n_events=12_000), seed=3)
    _good, bad = two_files
    code = main(["cellcycle", str(cc), str(bad), "--bins", "256", "--out", str(tmp_path / "out")])
    assert code == 1  # one file could not be analysed
    table = pd.read_csv(tmp_path / "out" / "cellcycle.csv")
    assert list(table.columns[:19]) == [
        "sample_id", "file", "events_total", "events_singlets", "g0g1_pct", "s_pct", "g2m_pct",
        "sub_g1_pct", "debris_pct", "aggregates_pct", "g1_mean", "g2_mean", "g1_cv_pct", "g2_cv_pct",
        "linearity", "rcs", "model", "status", "message",
    ]
    first, second = table.iloc[0], table.iloc[1]
    assert first["status"] in ("ok", "warn")
    assert abs(first["g0g1_pct"] + first["s_pct"] + first["g2m_pct"] - 100) < 1e-6
    assert second["status"] == "error"
    assert "not an FCS file" in second["message"]


def test_info_describes_a_file_with_a_malformed_spillover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MACSQuant 3.1 exports write $SPILLOVER with names but no coefficients: still readable
    path = write_fcs(tmp_path / "macs.fcs", np.zeros((5, 2), dtype=np.float32), ["FL1-A", "FL2-A"],
                     keywords={"$SPILLOVER": "2,FL1-A,FL2-A"})
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    assert "5 events" in captured.out
    assert "spillover: malformed keyword" in captured.out
    assert captured.err == ""
