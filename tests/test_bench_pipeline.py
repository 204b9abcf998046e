"""The pipeline benchmark runs end to end: a smoke test that checks what it prints, not its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_quick_run_prints_every_section(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dask.distributed")
    pytest.importorskip("flowkit")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_pipeline

    record = tmp_path / "bench.json"
    # one worker and one sample per assay in the cost model keep it short on a busy machine; the
    # executors' tables are still compared (tests/test_experiment.py runs two workers)
    code = bench_pipeline.main(["--quick", "--files", "4", "--jobs", "1", "--model-samples", "1",
                                "--workdir", str(tmp_path / "work"), "--json", str(record)])
    out = capsys.readouterr().out
    assert code == 0, out
    for expected in (
        "wrote 2 apoptosis + 2 cell-cycle samples x 5,000 events",
        "tables identical across serial, process and dask",
        "1. Full pipeline: Experiment.run + statistics + write tables; 4 samples, 20,000 events",
        "2. Per-sample cost model",
        "stage results equal the run's rows for 1 of 1 apoptosis and 1 of 1 cell-cycle samples",
        "wall(run + statistics + tables) ~ F + start-up + (N_apo x c_apo + N_cc x c_cc) / W",
        "3. Apoptosis part vs flowkit: 2 files, 10,000 events; counts identical in all 2 files",
    ):
        assert expected in out, f"{expected!r} not in the output:\n{out}"
    for executor in ("serial", "process", "dask"):
        assert any(line.startswith(executor) for line in out.splitlines()), executor

    saved = json.loads(record.read_text(encoding="utf-8"))
    assert saved["tables_identical"] is True
    assert saved["config"]["samples"] == {"apoptosis": 2, "cellcycle": 2}
    assert set(saved["cost_model"]["predicted_wall_s"]) == {"serial", "process", "dask"}
    assert set(saved["apoptosis_vs_flowkit"]["median_seconds"]) == {"ours", "flowkit", "ours_auto"}
    # the three executors wrote the same tables
    csv = {e: (tmp_path / "work" / "out" / f"{e}_1" / "apoptosis.csv").read_bytes()
           for e in ("serial", "process", "dask")}
    assert csv["serial"] == csv["process"] == csv["dask"]
