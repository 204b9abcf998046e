"""write_fcs round trips: through our reader, flowio and flowkit."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoflow_res import Spillover, read_fcs, write_fcs


def _data(n: int = 500, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.normal(50_000, 8_000, n), rng.normal(30_000, 5_000, n), rng.lognormal(6, 1.5, n) - 100]
    ).astype(np.float32)


def test_round_trip_float31(tmp_path: Path) -> None:
    data = _data()
    spill = Spillover(("FITC-A", "PE-A"), np.array([[1.0, 0.13], [0.01, 1.0]]))
    path = write_fcs(
        tmp_path / "s.fcs", data, ["FSC-A", "SSC-A", "FITC-A"], labels=["", "", "Annexin V|FITC"],
        keywords={"$CYT": "Simulated", "$SRC": "a/b|c"}, spillover=spill,
    )
    s = read_fcs(path)
    assert s.version == "FCS3.1"
    np.testing.assert_array_equal(s.raw, data)
    assert s.channel_names == ["FSC-A", "SSC-A", "FITC-A"]
    assert s.channel_labels == ["", "", "Annexin V|FITC"]  # delimiter inside a value survives
    assert s.keywords["$SRC"] == "a/b|c"
    assert s.spillover is not None
    np.testing.assert_array_equal(s.spillover.matrix, spill.matrix)
    assert s.spillover.channels == spill.channels
    # the Sample itself can be written again, identically
    again = read_fcs(write_fcs(tmp_path / "t.fcs", s))
    np.testing.assert_array_equal(again.raw, s.raw)
    assert again.channel_labels == s.channel_labels


def test_round_trip_dataframe_and_integer_log(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"FSC-H": rng.integers(0, 1024, 200), "FL1-H": rng.integers(0, 1024, 200)})
    path = write_fcs(
        tmp_path / "cal.fcs", frame, datatype="I", bits=16, ranges=[1024, 1024], log_decades=[0, 4],
        byteorder=">", version="2.0",
    )
    s = read_fcs(path)
    assert s.version == "FCS2.0"
    np.testing.assert_array_equal(s.raw, frame.to_numpy())
    np.testing.assert_allclose(s.column("FL1-H"), 10 ** (4 * frame["FL1-H"].to_numpy() / 1024))
    np.testing.assert_array_equal(s.column("FSC-H"), frame["FSC-H"].to_numpy())


def test_written_file_reads_in_flowio_and_flowkit(tmp_path: Path) -> None:
    data = _data(300)
    path = write_fcs(tmp_path / "x.fcs", data, ["FSC-A", "SSC-A", "FITC-A"], labels=["", "", "Annexin V"])
    flowio = pytest.importorskip("flowio")
    fd = flowio.FlowData(str(path))
    np.testing.assert_array_equal(np.asarray(fd.as_array(preprocess=False), dtype=np.float32), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flowkit's own deprecation chatter is not ours to fix
        flowkit = pytest.importorskip("flowkit")
        fk = flowkit.Sample(str(path))
        events = fk.get_events(source="raw")
    np.testing.assert_allclose(events, data, rtol=0, atol=0)
    assert list(fk.pnn_labels) == ["FSC-A", "SSC-A", "FITC-A"]


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need 3 channel names"):
        write_fcs(tmp_path / "a.fcs", np.zeros((2, 3)), ["A"])
    with pytest.raises(ValueError, match=r"\[0, \$PnR\)"):
        write_fcs(tmp_path / "b.fcs", np.array([[2000.0]]), ["A"], datatype="I", ranges=[1024])
    assert not (tmp_path / "b.fcs").exists()


def test_large_offsets_go_to_text_only(tmp_path: Path) -> None:
    # > 99,999,999 bytes cannot be written in the HEADER: it then holds 0 and TEXT has the offsets
    n = 100_000_000 // (4 * 26) + 10
    data = np.zeros((n, 26), dtype=np.float32)
    data[-1] = np.arange(26)
    path = write_fcs(tmp_path / "big.fcs", data, [f"C{i}" for i in range(26)])
    head = path.read_bytes()[:58]
    assert int(head[34:42]) == 0
    s = read_fcs(path)
    assert s.n_events == n
    np.testing.assert_array_equal(s.raw[-1], np.arange(26))
