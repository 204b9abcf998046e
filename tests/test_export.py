"""Exports: Excel and JSON round trips, atomic replacement, checksums and run metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cytoflow_res.io import export
from cytoflow_res.io.export import (
    environment,
    hash_settings,
    sha256_file,
    write_csv_atomic,
    write_excel_atomic,
    write_json_atomic,
)


def strict_json(path: Path) -> Any:
    """Parse a file as standard JSON (no NaN / Infinity allowed)."""

    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def results_table() -> pd.DataFrame:
    return pd.DataFrame({
        "sample": ["a.fcs", "b.fcs", "c.fcs", "d.fcs"],
        "replicate": [1, 2, 3, 4],
        "apoptotic_pct": [12.5, np.nan, 7.25, 100.0],
        "fold_change": [1.0, np.inf, -np.inf, 0.5],
        "ok": [True, False, True, True],
    })


# ---------------------------------------------------------------------------- Excel


def test_excel_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    table = results_table()
    stats = pd.DataFrame({"group": ["p", "q"], "p_value": [0.01, 0.2]})
    path = write_excel_atomic({"apoptosis": table, "stats": stats}, tmp_path / "results.xlsx")
    assert path == tmp_path / "results.xlsx"
    assert sorted(os.listdir(tmp_path)) == ["results.xlsx"]

    back = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    assert list(back) == ["apoptosis", "stats"]
    # NaN comes back as an empty cell, ±inf through the text "inf" / "-inf"
    pd.testing.assert_frame_equal(back["apoptosis"], table)
    pd.testing.assert_frame_equal(back["stats"], stats)


def test_excel_sheet_names_are_sanitised_and_unique(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    one = pd.DataFrame({"x": [1]})
    names = ["a/b:c", "A_B_C", "treated [24 h]?", "x" * 40, "x" * 35, "'quoted'", "", "History", "plain"]
    path = write_excel_atomic({name: one.assign(x=i) for i, name in enumerate(names)}, tmp_path / "t.xlsx")
    back = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    assert list(back) == ["a_b_c", "A_B_C~2", "treated _24 h__", "x" * 31, "x" * 29 + "~2", "quoted",
                          "Sheet", "History_", "plain"]
    assert [frame["x"].item() for frame in back.values()] == list(range(len(names)))
    assert all(len(name) <= 31 and not set(name) & set("[]:*?/\\") for name in back)


def test_excel_object_and_awkward_cells(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    table = pd.DataFrame({
        "params": [[1, 2], {"g1": np.float64(1.5), "cv": np.nan}, (3, "x"), np.array([0.5, 1.0])],
        "text": ["=SUM(A1:A3)", "#N/A", "bell\x07here", None],
        "where": [Path("data") / "a.fcs", 3, 2.5, "plain"],
        "when": pd.to_datetime(["2024-05-01 10:00"] * 4).tz_localize("UTC"),
        "naive": pd.to_datetime(["2024-05-01 10:00"] * 4),
    })
    path = write_excel_atomic({"fits": table}, tmp_path / "t.xlsx")
    back = pd.read_excel(path, engine="openpyxl", keep_default_na=False, na_values=[""])

    params = back["params"].tolist()
    assert [json.loads(text) for text in params] == [[1, 2], {"g1": 1.5, "cv": None}, [3, "x"], [0.5, 1.0]]
    # text that looks like a formula or an error code stays text; control characters are replaced
    text = back["text"].tolist()
    assert text[:3] == ["=SUM(A1:A3)", "#N/A", "bell\N{REPLACEMENT CHARACTER}here"]
    assert pd.isna(text[3])
    assert back["where"].tolist() == [str(Path("data") / "a.fcs"), 3, 2.5, "plain"]
    assert back["when"].tolist()[0] == "2024-05-01T10:00:00+00:00"  # Excel has no time zones: ISO text
    assert back["naive"].tolist()[0] == pd.Timestamp("2024-05-01 10:00")

    import openpyxl

    book = openpyxl.load_workbook(path)
    try:
        sheet = book["fits"]
        assert sheet.freeze_panes == "A2"
        assert sheet["A1"].font.b
        assert sheet["B2"].data_type == "s"  # not a formula
    finally:
        book.close()


def test_excel_rejects_empty_and_oversized(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    with pytest.raises(ValueError, match="no tables to write"):
        write_excel_atomic({}, tmp_path / "t.xlsx")
    wide = pd.DataFrame(np.zeros((1, 16_385)))
    with pytest.raises(ValueError, match=r"table 'wide' has 1 rows and 16385 columns.*write it as CSV"):
        write_excel_atomic({"wide": wide}, tmp_path / "t.xlsx")
    assert os.listdir(tmp_path) == []


def test_excel_without_openpyxl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # makes `import openpyxl` fail
    with pytest.raises(ImportError, match=r"needs openpyxl.*`pip install openpyxl`"):
        write_excel_atomic({"t": results_table()}, tmp_path / "t.xlsx")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- atomicity


def test_excel_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openpyxl")
    path = tmp_path / "results.xlsx"
    path.write_bytes(b"old workbook")
    real_to_excel = pd.DataFrame.to_excel
    calls = []

    def failing_to_excel(self: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        calls.append(sorted(os.listdir(tmp_path)))
        if len(calls) == 2:  # the first worksheet is already in the temporary workbook
            raise OSError("disk full")
        return real_to_excel(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_excel", failing_to_excel)
    with pytest.raises(OSError, match="disk full"):
        write_excel_atomic({"one": results_table(), "two": results_table()}, path)
    # the temporary file sat beside the destination while writing ...
    assert len(calls[0]) == 2
    assert calls[0][0].startswith(".results.xlsx.") and calls[0][0].endswith(".tmp")
    # ... and is gone now; the old file is as it was
    assert os.listdir(tmp_path) == ["results.xlsx"]
    assert path.read_bytes() == b"old workbook"


def test_csv_interrupted_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.csv"
    path.write_text("old\n", encoding="utf-8")

    def half_then_interrupt(self: pd.DataFrame, buf: Any, **kwargs: Any) -> None:
        buf.write("sample,replicate\na.fcs,")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_csv_atomic(results_table(), path)
    assert os.listdir(tmp_path) == ["results.csv"]
    assert path.read_text(encoding="utf-8") == "old\n"


def test_csv_and_json_replace_failure_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run.json").write_text("{}\n", encoding="utf-8")

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match=r"cannot replace .*run\.json.*close it and write again"):
        write_json_atomic({"a": 1}, tmp_path / "run.json")
    with pytest.raises(PermissionError):
        write_csv_atomic(results_table(), tmp_path / "new.csv")
    assert os.listdir(tmp_path) == ["run.json"]
    assert (tmp_path / "run.json").read_text(encoding="utf-8") == "{}\n"


def test_csv_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("old\n", encoding="utf-8")
    assert write_csv_atomic(results_table(), path) == path
    assert os.listdir(tmp_path) == ["results.csv"]
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, results_table())


def test_missing_folder_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_json_atomic({}, tmp_path / "nope" / "run.json")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- JSON


class Colour:
    """Not JSON-able."""


def test_json_numpy_nan_paths_and_times(tmp_path: Path) -> None:
    obj = {
        "n_events": np.int64(10_000),
        "cv": np.float32(0.25),
        "gated": np.bool_(True),
        "fractions": np.array([0.5, np.nan, 0.25]),
        "matrix": np.eye(2, dtype=np.int32),
        "missing": float("nan"),
        "unbounded": np.inf,
        "source": Path("data") / "plate1" / "a01.fcs",
        "started": pd.Timestamp("2024-05-01 10:00:00", tz="UTC"),
        "day": dt.date(2024, 5, 1),
        "acquired": np.datetime64("2024-05-01T10:00:00.000000001"),
        "duration": pd.Timedelta(seconds=90),
        "not_a_time": pd.NaT,
        "na": pd.NA,
        "tags": ("a", "b"),
        "ids": {3, 1, 2},
        "table": pd.DataFrame({"x": [1, 2], "y": [0.5, np.nan]}),
        np.int64(7): "numpy key",
    }
    path = write_json_atomic(obj, tmp_path / "run.json")
    assert path.read_text(encoding="utf-8").endswith("}\n")
    back = strict_json(path)
    assert back == {
        "n_events": 10_000,
        "cv": 0.25,
        "gated": True,
        "fractions": [0.5, None, 0.25],
        "matrix": [[1, 0], [0, 1]],
        "missing": None,
        "unbounded": None,
        "source": str(Path("data") / "plate1" / "a01.fcs"),
        "started": "2024-05-01T10:00:00+00:00",
        "day": "2024-05-01",
        "acquired": "2024-05-01T10:00:00.000000001",
        "duration": "P0DT0H1M30S",
        "not_a_time": None,
        "na": None,
        "tags": ["a", "b"],
        "ids": [1, 2, 3],
        "table": [{"x": 1, "y": 0.5}, {"x": 2, "y": None}],
        "7": "numpy key",
    }
    assert os.listdir(tmp_path) == ["run.json"]


def test_json_options(tmp_path: Path) -> None:
    path = write_json_atomic({"b": 1, "a": [1, 2]}, tmp_path / "s.json", indent=None, sort_keys=True)
    assert path.read_bytes() == b'{"a": [1, 2], "b": 1}\n'
    path = write_json_atomic({"é": "µ"}, tmp_path / "s.json")
    assert path.read_bytes() == '{\n  "é": "µ"\n}\n'.encode()


def test_json_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"value at top level\['fits'\]\[1\] is a .*Colour.*convert it"):
        write_json_atomic({"fits": [1, Colour()]}, tmp_path / "run.json")
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="circular reference"):
        write_json_atomic(loop, tmp_path / "run.json")
    with pytest.raises(ValueError, match="both become '1'"):
        write_json_atomic({1: "a", "1": "b"}, tmp_path / "run.json")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- hashes, environment


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 3 * 4096 + 17])
def test_sha256_file(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    path = tmp_path / "blob.fcs"
    path.write_bytes(data)
    assert sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_sha256_file_rejects_bad_chunk(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match="chunk must be a positive number of bytes, not 0"):
        sha256_file(tmp_path / "f", chunk=0)


def test_hash_settings_ignores_key_order() -> None:
    a = {"gates": {"debris": {"fsc_min": 20_000, "ssc_max": 1e5}, "model": "watson"}, "channels": ["FL2-A"]}
    b = {"channels": ["FL2-A"], "gates": {"model": "watson", "debris": {"ssc_max": 1e5, "fsc_min": 20_000}}}
    assert hash_settings(a) == hash_settings(b)
    assert len(hash_settings(a)) == 64
    assert set(hash_settings(a)) <= set("0123456789abcdef")
    # numpy and Python spellings of the same value agree; a changed value does not
    numpy_spelling = {"x": np.float64(0.5), "y": np.array([1, 2])}
    assert hash_settings(numpy_spelling) == hash_settings({"x": 0.5, "y": [1, 2]})
    assert hash_settings(a) != hash_settings({**a, "channels": ["FL3-A"]})
    # the canonical form is documented: sorted keys, no spaces
    expected = hashlib.sha256(b'{"a":1,"b":[1,null]}').hexdigest()
    assert hash_settings({"b": [1, float("nan")], "a": 1}) == expected


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment()
    assert {"python", "implementation", "platform", "machine", "packages"} <= set(env)
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    packages = env["packages"]
    assert set(packages) == set(export.ENVIRONMENT_PACKAGES)
    assert {"cytoflow-res", "numpy", "scipy", "pandas", "matplotlib", "scikit-learn", "flowkit", "flowio",
            "openpyxl", "pyyaml", "dask", "distributed"} <= set(packages)
    assert packages["numpy"] == np.__version__
    assert packages["pandas"] == pd.__version__
    json.dumps(env)  # JSON-safe as it is

    missing = "no-such-distribution-cytoflow-res-test"
    monkeypatch.setattr(export, "ENVIRONMENT_PACKAGES", ("numpy", missing))
    assert environment()["packages"] == {"numpy": np.__version__, missing: None}
