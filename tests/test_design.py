"""Design sheets: reading, defaults, derived treatments, and every validation message."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytoflow_res.errors import DesignError
from cytoflow_res.io.design import Design, read_design

HEADER = "file,assay,cell_line,treatment,replicate,role,group"


def apoptosis_rows(line: str = "p", arms: tuple[str, ...] = ("vehicle", "a", "b", "a+b"), reps: int = 2,
                   *, controls: tuple[str, ...] = ("unstained",)) -> list[str]:
    rows = [f"apo/{line}_{arm}_{r}.fcs,apoptosis,{line},{arm},{r},sample,{line}"
            for arm in arms for r in range(1, reps + 1)]
    rows += [f"apo/{line}_{role}.fcs,apoptosis,{line},none,1,{role},{line}" for role in controls]
    return rows


def write_sheet(folder: Path, lines: list[str], *, name: str = "design.csv", sep: str = ",",
                create: bool = True) -> Path:
    """Write a sheet (first line = header) and, unless told not to, the files it lists."""
    folder.mkdir(parents=True, exist_ok=True)
    sheet = folder / name
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if create:
        header = [h.strip().lower() for h in lines[0].split(sep)]
        col = header.index("file")
        for line in lines[1:]:
            rel = line.split(sep)[col].strip()
            if rel:
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
    return sheet


def problems(exc: pytest.ExceptionInfo[DesignError]) -> list[str]:
    """The problem lines of a DesignError (after its summary line)."""
    return str(exc.value).splitlines()[1:]


# ---------------------------------------------------------------------------- the shipped example


def test_example_sheet_reads(example_dir: Path) -> None:
    design = read_design(example_dir / "design.csv")
    assert isinstance(design, Design)
    assert len(design.table) == 54
    assert design.warnings == ()
    assert design.sheet == (example_dir / "design.csv").resolve()
    assert design.groups("apoptosis") == ["parental", "resistant"]
    assert design.groups("cellcycle") == ["parental", "resistant"]
    for group in design.groups("apoptosis"):
        ctrl = design.controls(group)
        assert set(ctrl) == {"unstained", "annexin_only", "pi_only"}
        assert all(p.is_absolute() and p.is_file() and group in p.name for p in ctrl.values())
    assert design.controls("parental", assay="cellcycle") == {}
    assert len(design.samples("apoptosis")) == 24
    assert len(design.samples("cellcycle")) == 24
    assert len(design.samples()) == 48
    assert design.arms("parental") == ["vehicle", "drugA", "drugB", "drugA+drugB"]
    assert design.cell_lines() == ["parental", "resistant"]
    assert design.drug_columns == [("drug_a", "dose_a"), ("drug_b", "dose_b")]
    assert design.design_columns == ["cell_line", "treatment", "replicate", "group",
                                     "drug_a", "dose_a", "drug_b", "dose_b"]
    assert all(Path(p).is_file() for p in design.table["path"])
    assert design.table["replicate"].dtype == "Int64"
    assert design.table["sheet_row"].tolist() == list(range(2, 56))
    assert "54 files" in repr(design)
    assert design.validate() == ()


# ---------------------------------------------------------------------------- reading and defaults


def test_paths_resolve_against_the_sheet_not_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sheet = write_sheet(tmp_path / "exp", [HEADER, *apoptosis_rows()])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    design = read_design(Path("..") / "exp" / "design.csv")
    assert design.sheet == sheet
    assert design.table["path"].iloc[0] == str(tmp_path / "exp" / "apo" / "p_vehicle_1.fcs")
    assert design.table["file"].iloc[0] == "apo/p_vehicle_1.fcs"


def test_absolute_and_backslash_paths(tmp_path: Path) -> None:
    target = tmp_path / "data" / "x.fcs"
    target.parent.mkdir()
    target.write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "y.fcs").write_bytes(b"")
    sheet = write_sheet(tmp_path, ["file,assay,cell_line,treatment",
                                   f"{target},cellcycle,p,vehicle",
                                   "sub\\y.fcs,cellcycle,p,vehicle"], create=False)
    design = read_design(sheet)
    assert design.table["path"].tolist() == [str(target), str(tmp_path / "sub" / "y.fcs")]


def test_column_names_ignore_case_space_and_punctuation(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path, [" File ,ASSAY, Cell line ,Treatment,Replicate,Role,Group",
                                   *apoptosis_rows()])
    design = read_design(sheet)
    assert list(design.table.columns[:9]) == ["sheet_row", "file", "path", "assay", "role", "cell_line",
                                              "treatment", "replicate", "group"]
    assert design.table["cell_line"].iloc[0] == "p"


def test_defaults_role_group_replicate(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment"]
    lines += [f"cc/{arm}_{r}.fcs,cellcycle,p,{arm}" for arm in ("vehicle", "a") for r in range(3)]
    lines += [f"cc/q_{arm}_{r}.fcs,cellcycle,q,{arm}" for arm in ("vehicle", "a") for r in range(3)]
    design = read_design(write_sheet(tmp_path, lines))
    table = design.table
    assert set(table["role"]) == {"sample"}
    assert table["group"].tolist() == table["cell_line"].tolist()
    assert table["replicate"].tolist() == [1, 2, 3] * 4
    assert design.groups("cellcycle") == ["p", "q"]


def test_replicates_numbered_within_each_arm_of_each_assay(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment,role"]
    lines += [f"cc/{arm}_{r}.fcs,cellcycle,p,{arm}," for arm in ("vehicle", "a") for r in range(3)]
    lines += [f"apo/{arm}_{r}.fcs,apoptosis,p,{arm}," for arm in ("a", "vehicle") for r in range(2)]
    lines += ["apo/u.fcs,apoptosis,p,,unstained", "apo/v.fcs,apoptosis,p,vehicle,"]
    table = read_design(write_sheet(tmp_path, lines)).table
    assert table["replicate"].tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 1, 2, pd.NA, 3]
    assert table["role"].tolist() == ["sample"] * 10 + ["unstained", "sample"]


def test_values_are_normalised(tmp_path: Path) -> None:
    lines = [HEADER,
             "a.fcs,Apoptosis,p,vehicle,1,,p",
             "b.fcs,apoptosis,p, a + b ,1,Sample,p",
             "c.fcs,apoptosis,p,none,1,Unstained,p",
             "d.fcs,apoptosis,p,none,1,Annexin only,p",
             "e.fcs,apoptosis,p,none,1,PI-only,p",
             "f.fcs,Cell cycle,p,vehicle,1,,p"]
    design = read_design(write_sheet(tmp_path, lines), check_files=False)
    assert design.table["role"].tolist() == ["sample", "sample", "unstained", "annexin_only", "pi_only",
                                             "sample"]
    assert design.table["assay"].tolist() == ["apoptosis"] * 5 + ["cellcycle"]
    assert design.table["treatment"].iloc[1] == "a+b"


def test_controls_without_cell_line_use_group(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment,role,group",
             "s1.fcs,apoptosis,p,vehicle,sample,day1",
             "u.fcs,apoptosis,,,unstained,day1"]
    design = read_design(write_sheet(tmp_path, lines))
    assert design.controls("day1") == {"unstained": tmp_path / "u.fcs"}
    assert design.groups("apoptosis") == ["day1"]


def test_treatment_derived_from_drug_columns(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,drug_a,dose_a,drug_b,dose_b,Drug C,Dose C",
             "v.fcs,cellcycle,p,trametinib,0,SRCi,0,x,0",
             "t.fcs,cellcycle,p,trametinib,10,SRCi,0,x,",
             "s.fcs,cellcycle,p,trametinib,0,SRCi,0.5,,",
             "ts.fcs,cellcycle,p,trametinib,10,SRCi,0.5,x,0",
             "tsx.fcs,cellcycle,p,trametinib,10,SRCi,0.5,x,2"]
    design = read_design(write_sheet(tmp_path, lines))
    assert design.table["treatment"].tolist() == ["vehicle", "trametinib", "SRCi", "trametinib+SRCi",
                                                  "trametinib+SRCi+x"]
    assert design.drug_columns == [("drug_a", "dose_a"), ("drug_b", "dose_b"), ("drug_c", "dose_c")]
    assert design.table["dose_c"].tolist() == [0.0, 0.0, 0.0, 0.0, 2.0]
    assert design.table["dose_a"].dtype == float
    assert design.arms("p") == ["vehicle", "trametinib", "SRCi", "trametinib+SRCi", "trametinib+SRCi+x"]
    assert design.warnings == ("design.csv row 6: cellcycle 'p': combination 'trametinib+SRCi+x' has no "
                               "'x' arm in this cell line, so it cannot be compared with its single "
                               "agents; add those samples",)


def test_doses_separate_arms_with_the_same_treatment(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,drug,dose"]
    lines += [f"{dose}_{r}.fcs,cellcycle,p,tram,{dose}" for dose in (0, 1, 10) for r in range(2)]
    design = read_design(write_sheet(tmp_path, lines))
    assert design.table["treatment"].tolist() == ["vehicle"] * 2 + ["tram"] * 4
    assert design.table["replicate"].tolist() == [1, 2] * 3
    assert design.warnings == ()


def test_free_columns_carried_through(tmp_path: Path) -> None:
    lines = [f"{HEADER},Time (h),operator,notes"]
    lines += [f"{row},{24 if i % 2 else 48},ana,{'' if i else 'first'}"
              for i, row in enumerate(apoptosis_rows())]
    design = read_design(write_sheet(tmp_path, lines))
    assert design.design_columns[-3:] == ["time_h", "operator", "notes"]
    assert design.table["time_h"].dtype.kind == "i"
    assert design.table["operator"].eq("ana").all()
    assert design.table["notes"].iloc[0] == "first"
    assert design.table["notes"].iloc[1:].isna().all()
    assert "time_h" in design.samples("apoptosis").columns


def test_tsv_and_semicolon_csv(tmp_path: Path) -> None:
    tsv = write_sheet(tmp_path / "t", [HEADER.replace(",", "\t"),
                                       *(r.replace(",", "\t") for r in apoptosis_rows())],
                      name="design.tsv", sep="\t")
    assert len(read_design(tsv).table) == 9
    # European Excel: semicolons and decimal commas
    semi = write_sheet(tmp_path / "s", ["file;assay;cell_line;drug_a;dose_a",
                                        "a.fcs;cellcycle;p;tram;0,5", "b.fcs;cellcycle;p;tram;0"],
                       sep=";")
    design = read_design(semi)
    assert design.table["dose_a"].tolist() == [0.5, 0.0]
    assert design.table["treatment"].tolist() == ["tram", "vehicle"]


def test_blank_rows_keep_spreadsheet_row_numbers(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment", "a.fcs,cellcycle,p,vehicle", ",,,", "",
             "b.fcs,cellcycle,p,vehicle", "c.fcs,cellcycle,p,vehicle"]
    sheet = write_sheet(tmp_path, lines)
    (tmp_path / "c.fcs").unlink()
    with pytest.raises(DesignError, match=r"design\.csv row 6: file 'c\.fcs' does not exist"):
        read_design(sheet)
    assert read_design(sheet, check_files=False).table["sheet_row"].tolist() == [2, 5, 6]


def test_excel_sheet(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    sheet = write_sheet(tmp_path, [HEADER, *apoptosis_rows()])
    frame = pd.read_csv(sheet)
    frame.columns = ["File", "Assay", "Cell line", "Treatment", "Replicate", "Role", "Group"]
    xlsx = tmp_path / "design.xlsx"
    frame.to_excel(xlsx, index=False)
    design = read_design(xlsx)
    assert len(design.table) == 9
    assert design.table["replicate"].tolist() == [1, 2] * 4 + [1]
    assert design.controls("p") == {"unstained": tmp_path / "apo" / "p_unstained.fcs"}


def test_excel_without_openpyxl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "design.xlsx").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # makes `import openpyxl` fail
    with pytest.raises(DesignError, match=r"pip install openpyxl`, or save the sheet as CSV"):
        read_design(tmp_path / "design.xlsx")


# ---------------------------------------------------------------------------- unreadable sheets


def test_unreadable_sheets(tmp_path: Path) -> None:
    with pytest.raises(DesignError, match=r"design sheet .*nope\.csv does not exist"):
        read_design(tmp_path / "nope.csv")
    write_sheet(tmp_path / "exp", [HEADER, *apoptosis_rows()])
    with pytest.raises(DesignError, match=r"is a folder, not a file \(it holds design\.csv: pass that\)"):
        read_design(tmp_path / "exp")
    (tmp_path / "design.json").write_text("{}")
    with pytest.raises(DesignError, match=r"unknown file type '\.json'; use \.csv, \.tsv"):
        read_design(tmp_path / "design.json")
    (tmp_path / "old.xls").write_bytes(b"")
    with pytest.raises(DesignError, match=r"save it as \.xlsx or CSV"):
        read_design(tmp_path / "old.xls")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DesignError, match=r"empty\.csv: the sheet is empty"):
        read_design(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(HEADER + "\n")
    with pytest.raises(DesignError, match=r"has a header but no rows"):
        read_design(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("file,assay,cell_line,treatment\na.fcs,cellcycle,p,vehicle,x\n")
    with pytest.raises(DesignError, match=r"ragged\.csv row 1: column E has values but no name; give it a "
                                          r"header"):
        read_design(tmp_path / "ragged.csv", check_files=False)


# ---------------------------------------------------------------------------- errors


def test_missing_required_columns(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "a", ["path_to_fcs,kind", "a.fcs,apoptosis"], create=False)
    with pytest.raises(DesignError, match=r"2 problems") as exc:
        read_design(sheet)
    assert problems(exc) == [
        "design.csv: no 'assay' column (columns are path_to_fcs, kind); add one",
        "design.csv: no 'file' column (columns are path_to_fcs, kind); add one",
    ]
    sheet = write_sheet(tmp_path / "b", ["file,assay", "a.fcs,cellcycle"])
    with pytest.raises(DesignError) as exc:
        read_design(sheet)
    assert problems(exc) == [
        "design.csv: no 'cell_line' column; add one (every sample needs its cell line)",
        "design.csv: no 'treatment' column and no drug/dose columns; add a treatment column (vehicle, "
        "trametinib, trametinib+SRCi, ...) or drug_a, dose_a, drug_b, dose_b, ... columns",
    ]


def test_column_header_problems(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path, ["file,assay,cell_line,Cell Line,treatment,,path,drug_a,dose (nM)",
                                   "a.fcs,cellcycle,p,p,vehicle,x,p,d,1"], create=False)
    with pytest.raises(DesignError) as exc:
        read_design(sheet)
    text = "\n".join(problems(exc))
    assert "row 1: columns C ('cell_line') and D ('Cell Line') both mean 'cell_line'; keep one" in text
    assert "row 1: column F has values but no name; give it a header" in text
    assert "row 1: column 'path' is reserved (the table adds 'path' itself); rename it" in text
    assert "row 1: drug column 'drug_a' has no dose column 'dose_a'" in text
    assert "row 1: dose column 'dose (nM)' has no drug column 'drug_nm'" in text


def test_unknown_assay_and_role(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(), "x.fcs,apoptosys,p,vehicle,3,sample,p",
             "y.fcs,apoptosis,p,none,1,annexin,p", "z.fcs,,p,vehicle,3,sample,p"]
    with pytest.raises(DesignError, match=r"3 problems") as exc:
        read_design(write_sheet(tmp_path, lines))
    assert problems(exc) == [
        "design.csv row 11: assay 'apoptosys' is not known (did you mean 'apoptosis'?); use apoptosis or "
        "cellcycle",
        "design.csv row 12: role 'annexin' is not known (did you mean 'annexin_only'?); use one of sample, "
        "unstained, annexin_only, pi_only (empty = sample)",
        "design.csv row 13: assay is empty; use apoptosis or cellcycle",
    ]


def test_control_in_cellcycle_row(tmp_path: Path) -> None:
    lines = [HEADER, "c1.fcs,cellcycle,p,vehicle,1,sample,p", "c2.fcs,cellcycle,p,none,1,unstained,p"]
    with pytest.raises(DesignError, match=r"row 3: role 'unstained' is an apoptosis control but the assay "
                                          r"is cellcycle; set role to sample, or assay to apoptosis"):
        read_design(write_sheet(tmp_path, lines))


def test_missing_files(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path, [HEADER, *apoptosis_rows()])
    (tmp_path / "apo" / "p_a_2.fcs").rename(tmp_path / "apo" / "p_A_2.fcs")
    (tmp_path / "apo" / "p_b_1.fcs").unlink()
    expected = (f"design.csv row 5: file 'apo/p_a_2.fcs' does not exist (looked for "
                f"{tmp_path / 'apo' / 'p_a_2.fcs'}) (did you mean 'p_A_2.fcs'?); fix the path or remove "
                "the row")
    with pytest.raises(DesignError, match=r"2 problems") as exc:
        read_design(sheet)
    assert problems(exc)[0] == expected
    # a near name is another sample, not a typo: no suggestion
    assert problems(exc)[1] == (f"design.csv row 6: file 'apo/p_b_1.fcs' does not exist (looked for "
                                f"{tmp_path / 'apo' / 'p_b_1.fcs'}); fix the path or remove the row")
    # a missing extension is suggested too
    sheet.write_text(sheet.read_text().replace("p_vehicle_1.fcs", "p_vehicle_1"))
    with pytest.raises(DesignError, match=r"row 2: file 'apo/p_vehicle_1' does not exist .* \(did you mean "
                                          r"'p_vehicle_1\.fcs'\?\)"):
        read_design(sheet)
    # not checking files lets a sheet be read before the data arrive
    assert len(read_design(sheet, check_files=False).table) == 9


def test_all_files_missing_hints_at_the_folder(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path, [HEADER, *apoptosis_rows()], create=False)
    with pytest.raises(DesignError, match=r"none of the 9 files exist under .*; paths are relative to the "
                                          r"sheet's folder"):
        read_design(sheet)


def test_duplicate_files(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(), "apo/./p_a_1.fcs,apoptosis,p,a,3,sample,p"]
    with pytest.raises(DesignError, match=r"design\.csv rows 4 and 11: the same file 'apo/\./p_a_1\.fcs' "
                                          r"is listed twice; each file goes in one row"):
        read_design(write_sheet(tmp_path, lines))


def test_apoptosis_group_without_unstained(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(controls=("annexin_only", "pi_only"))]
    with pytest.raises(DesignError, match=r"row 2: apoptosis group 'p' \(8 samples\) has no unstained "
                                          r"control; add a row with role unstained and group 'p'"):
        read_design(write_sheet(tmp_path, lines))


def test_misnamed_control_group_is_named_in_the_error(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(controls=()), "apo/u.fcs,apoptosis,p,none,1,unstained,P1"]
    with pytest.raises(DesignError, match=r"has no unstained control \(controls are in group\(s\) 'P1' with "
                                          r"no samples\)"):
        read_design(write_sheet(tmp_path, lines))


def test_two_controls_of_one_role(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(), "apo/u2.fcs,apoptosis,p,none,2,unstained,p"]
    with pytest.raises(DesignError, match=r"rows 10 and 11: group 'p' has 2 unstained controls; keep one"):
        read_design(write_sheet(tmp_path, lines))


def test_non_numeric_doses_and_replicates(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,drug_a,dose_a,replicate",
             "a.fcs,cellcycle,p,tram,10 nM,1",
             "b.fcs,cellcycle,p,tram,-1,1",
             "c.fcs,cellcycle,p,,5,1",
             "d.fcs,cellcycle,p,tram,nan,1",
             "e.fcs,cellcycle,p,tram,0,one",
             "f.fcs,cellcycle,p,tram,0,1.5",
             "g.fcs,cellcycle,p,tram,0,"]
    with pytest.raises(DesignError, match=r"7 problems") as exc:
        read_design(write_sheet(tmp_path, lines))
    assert problems(exc) == [
        "design.csv row 2: dose_a '10 nM' is not a number; write the number only (0 = not given; put the "
        "unit in a free column or the README)",
        "design.csv row 3: dose_a -1 is negative; doses are >= 0 (0 = not given)",
        "design.csv row 4: dose_a is 5 but drug_a is empty; name the drug or set dose_a to 0",
        "design.csv row 5: dose_a 'nan' is not a number; write the number only (0 = not given; put the "
        "unit in a free column or the README)",
        "design.csv row 6: replicate 'one' is not a whole number; number the replicates of each arm 1, 2, "
        "3, ...",
        "design.csv row 7: replicate '1.5' is not a whole number; number the replicates of each arm 1, 2, "
        "3, ...",
        "design.csv row 8: replicate is empty; give its number, or delete the replicate column to number "
        "replicates automatically",
    ]


def test_empty_cells_in_sample_rows(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment", ",cellcycle,p,vehicle", "b.fcs,cellcycle,,vehicle",
             "c.fcs,cellcycle,p,", "d.fcs,apoptosis,p,vehicle,", "e.fcs,apoptosis,,,"]
    sheet = write_sheet(tmp_path, lines)
    with pytest.raises(DesignError) as exc:
        read_design(sheet)
    text = "\n".join(problems(exc))
    assert "row 2: file is empty; give the FCS file's path relative to the sheet's folder" in text
    assert "row 3: cell_line is empty; every sample needs its cell line" in text
    assert "row 4: treatment is empty; give the arm label" in text


def test_duplicate_replicate_in_an_arm(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,drug,dose,replicate",
             "a.fcs,cellcycle,p,tram,10,1", "b.fcs,cellcycle,p,tram,10,1", "c.fcs,cellcycle,p,tram,1,1"]
    with pytest.raises(DesignError, match=r"rows 2 and 3: cellcycle 'p' tram \(dose=10\) replicate 1 "
                                          r"appears 2 times; give each replicate its own number"):
        read_design(write_sheet(tmp_path, lines))


def test_every_problem_is_listed_in_row_order(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(controls=()), "x.fcs,apoptosis,p,vehicle,1,blank,p",
             "c.fcs,cellcycle,p,none,1,pi_only,p"]
    sheet = write_sheet(tmp_path, lines)
    (tmp_path / "apo" / "p_b_2.fcs").unlink()
    with pytest.raises(DesignError, match=r"^design sheet .*design\.csv has 4 problems:\n") as exc:
        read_design(sheet)
    rows = [int(re.match(r"design\.csv rows? (\d+)", line).group(1)) for line in problems(exc)]  # type: ignore[union-attr]
    assert rows == [2, 7, 10, 11]


# ---------------------------------------------------------------------------- warnings


def test_combination_without_single_agent_or_vehicle_warns(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    lines = [HEADER, *apoptosis_rows(arms=("a", "a+b"))]
    with caplog.at_level(logging.WARNING, logger="cytoflow_res.io.design"):
        design = read_design(write_sheet(tmp_path, lines))
    assert design.warnings == (
        "design.csv row 4: apoptosis 'p': combination 'a+b' has no 'b' or 'vehicle' arm in this cell "
        "line, so it cannot be compared with its single agents; add those samples",
    )
    assert design.warnings[0] in caplog.text
    assert design.validate() == design.warnings


def test_unequal_replicates_warn(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows()[:-2], apoptosis_rows()[-1]]  # drop a+b replicate 2
    design = read_design(write_sheet(tmp_path, lines))
    assert design.warnings == (
        "design.csv: apoptosis 'p': unequal replicates per arm (vehicle: 2, a: 2, b: 2, a+b: 1); check "
        "for missing or mislabelled rows",
    )


def test_treatment_contradicting_doses_warns(tmp_path: Path) -> None:
    lines = ["file,assay,cell_line,treatment,drug_a,dose_a,drug_b,dose_b",
             "v.fcs,cellcycle,p,vehicle,tram,0,SRCi,0",
             "t.fcs,cellcycle,p,tram,tram,0,SRCi,1",
             "s.fcs,cellcycle,p,SRCi,tram,0,SRCi,1",
             "c.fcs,cellcycle,p,my combo,tram,1,SRCi,1"]  # a custom label is not second-guessed
    design = read_design(write_sheet(tmp_path, lines))
    assert design.warnings == (
        "design.csv row 3: treatment 'tram' but the doses give 'SRCi'; check the treatment or the doses",
    )
    assert design.table["treatment"].tolist() == ["vehicle", "tram", "SRCi", "my combo"]


def test_controls_in_a_group_without_samples_warn(tmp_path: Path) -> None:
    lines = [HEADER, *apoptosis_rows(), "apo/q_u.fcs,apoptosis,q,none,1,unstained,q"]
    design = read_design(write_sheet(tmp_path, lines))
    assert design.warnings == ("design.csv row 11: apoptosis controls in group 'q', which has no apoptosis "
                               "samples; they are not used",)


# ---------------------------------------------------------------------------- the Design object


def test_design_lookups_name_what_exists(example_dir: Path) -> None:
    design = read_design(example_dir / "design.csv")
    with pytest.raises(DesignError, match=r"no apoptosis rows in group 'parentl' of design\.csv; groups are "
                                          r"parental, resistant"):
        design.controls("parentl")
    with pytest.raises(DesignError, match=r"unknown assay 'flow'; use one of apoptosis, cellcycle"):
        design.samples("flow")
    with pytest.raises(DesignError, match=r"no cell line 'x' in the cellcycle samples of design\.csv; cell "
                                          r"lines are parental, resistant"):
        design.arms("x", assay="cellcycle")


def test_design_is_frozen(example_dir: Path) -> None:
    design = read_design(example_dir / "design.csv")
    with pytest.raises(AttributeError):
        design.sheet = Path("other.csv")  # type: ignore[misc]
