"""Experiment design sheets: which FCS file is which sample, and which controls apply to it.

A design sheet is a CSV, TSV or Excel table with one row per FCS file:

``file`` (or ``filename``, ``fcs_file``, ``path``)
    Path of the FCS file, relative to the sheet's folder (or absolute).
``assay``
    ``apoptosis`` or ``cellcycle``.
``cell_line``
    Required for samples.
``treatment``
    The arm label: ``vehicle``, ``trametinib``, ``SRCi``, ``trametinib+SRCi``. It may be left
    out when the sheet has drug columns instead: ``drug_a, dose_a, drug_b, dose_b, ...`` (any
    number of pairs; ``drug``/``dose`` or ``drug1``/``dose1`` work too). The label is then the
    drugs given at a non-zero dose joined with ``+``, or ``vehicle`` when none is.
``replicate``
    A whole number; numbered 1, 2, ... within each arm when the column is absent.
``role``
    ``sample`` (the default), or a control: ``unstained``, ``annexin_only``, ``pi_only``.
``group``
    Which controls apply to which samples (defaults to the cell line).

Any other column is carried through, unchanged, to every result table. Column names are
matched ignoring case, spaces and punctuation (``Cell line`` is ``cell_line``); a column whose
name is close to a known one that is absent (``Rol``, ``celline``, ``drugA``) is still carried
through, with a warning (shown with the errors too, if any) suggesting the known name.

Text sheets may be UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode text"),
Windows-1252 or Latin-1. Sheets are read within bounds (32 MiB, 100,000 rows, 500 columns);
Excel cells holding an error (``#REF!``) or a formula whose result was never saved are errors.

:func:`read_design` reads and validates a sheet and reports every problem at once, each with
the row number a spreadsheet shows (the header is row 1) and how to fix it.

Examples
--------
>>> from cytoflow_res.io.design import read_design
>>> design = read_design("example_fcs/design.csv")  # doctest: +SKIP
>>> design.groups("apoptosis")  # doctest: +SKIP
['parental', 'resistant']
>>> design.controls("parental")["unstained"]  # doctest: +SKIP
PosixPath('/.../example_fcs/apoptosis/parental_unstained.fcs')
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import logging
import math
import os
import re
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cytoflow_res.errors import DesignError

__all__ = ["ASSAYS", "CONTROL_ROLES", "ROLES", "VEHICLE_LABELS", "Design", "read_design"]

log = logging.getLogger(__name__)

#: The assays a row can belong to.
ASSAYS: tuple[str, ...] = ("apoptosis", "cellcycle")
#: Every allowed role; all but ``sample`` are controls (apoptosis only).
ROLES: tuple[str, ...] = ("sample", "unstained", "annexin_only", "pi_only")
CONTROL_ROLES: tuple[str, ...] = ROLES[1:]
#: Treatment labels (compared ignoring case) that mean "no drug".
VEHICLE_LABELS: frozenset[str] = frozenset({"vehicle", "dmso", "untreated", "control", "mock", "none"})

_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xlsm")
# Columns this module adds to the table; a sheet may not use them for anything else.
_RESERVED = ("path", "sheet_row")
_ALIASES = {"filename": "file", "file_name": "file", "fcs_file": "file", "cellline": "cell_line"}
_DRUG = re.compile(r"^drug(?:_([0-9a-z_]+)|([0-9]+))?$")
_DOSE = re.compile(r"^dose(?:_([0-9a-z_]+)|([0-9]+))?$")
_KNOWN = ("file", "assay", "cell_line", "treatment", "replicate", "role", "group")

# Bounds on what a design sheet may be (one row per FCS file: real ones are a few hundred rows).
_MAX_BYTES = 32 * 1024 * 1024
_MAX_UNPACKED = 16 * 1024 * 1024  # an .xlsx's parts, unzipped
_MAX_ROWS = 100_000
_MAX_COLUMNS = 500
_MAX_REPLICATE = 1_000_000
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_EXCEL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A",
                           "#GETTING_DATA", "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#UNKNOWN!"})


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class _Problem:
    """One error or warning: the sheet rows it concerns (none for the whole sheet) and what to do."""

    rows: tuple[int, ...]
    text: str
    #: A warning that likely explains errors (a misspelt column): shown with them.
    with_errors: bool = False

    def render(self, sheet_name: str) -> str:
        rows = sorted(set(self.rows))
        if not rows:
            return f"{sheet_name}: {self.text}"
        if len(rows) == 1:
            return f"{sheet_name} row {rows[0]}: {self.text}"
        listed = ", ".join(str(r) for r in rows[:-1])
        return f"{sheet_name} rows {listed} and {rows[-1]}: {self.text}"

    def key(self) -> tuple[int, str]:
        return (min(self.rows) if self.rows else 0, self.text)


def _design_error(sheet: Path, problems: Iterable[_Problem]) -> DesignError:
    """One error listing every problem, in row order, one per line."""
    ordered = sorted(problems, key=_Problem.key)
    noun = "problem" if len(ordered) == 1 else "problems"
    lines = [p.render(sheet.name) for p in ordered]
    msg = f"design sheet {sheet} has {len(ordered)} {noun}:\n" + "\n".join(lines)
    return DesignError(msg)


def _did_you_mean(value: str, options: Iterable[str]) -> str:
    by_lower = {option.lower(): option for option in options}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _file_hint(name: str, listing: Iterable[str]) -> str:
    """Suggest a file whose name differs only in case or extension (a near name is another sample)."""

    def key(text: str) -> str:
        return re.sub(r"\.(fcs|lmd)$", "", text.strip().lower())

    same = [other for other in listing if key(other) == key(name)]
    return f" (did you mean {same[0]!r}?)" if same else ""


# ---------------------------------------------------------------------------- the design


@dataclass(frozen=True, eq=False, repr=False)
class Design:
    """A validated design sheet.

    Parameters
    ----------
    table
        One row per file. Columns: ``sheet_row`` (row number in the sheet, header = 1),
        ``file`` (as written), ``path`` (absolute), ``assay``, ``role``, ``cell_line``,
        ``treatment``, ``replicate`` (nullable integer), ``group``, the drug and dose
        columns if the sheet had them, then every other column of the sheet.
    sheet
        The sheet's absolute path.
    warnings
        Things that are allowed but probably unintended (also logged when read).

    See Also
    --------
    read_design : Read and validate a sheet.
    """

    table: pd.DataFrame
    sheet: Path
    warnings: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        parts = []
        for assay in ASSAYS:
            rows = self.table[self.table["assay"] == assay]
            if rows.empty:
                continue
            n_samples = int((rows["role"] == "sample").sum())
            n_groups = len(self.groups(assay))
            parts.append(
                f"{assay}: {n_samples} samples + {len(rows) - n_samples} controls in {n_groups} groups"
            )
        return (f"Design({self.sheet.name!r}, {len(self.table)} files; {'; '.join(parts)}; "
                f"{len(self.warnings)} warnings)")

    # -------------------------------------------------------------- columns

    @property
    def drug_columns(self) -> list[tuple[str, str]]:
        """The ``(drug, dose)`` column pairs of the sheet, in sheet order (empty if none)."""
        cols = list(self.table.columns)
        pairs = []
        for name in cols:
            m = _DRUG.match(name)
            if m:
                dose = "dose" + name[len("drug"):]
                if dose in cols:
                    pairs.append((name, dose))
        return pairs

    @property
    def design_columns(self) -> list[str]:
        """The columns to carry into per-sample result tables.

        Everything that describes the sample (``cell_line``, ``treatment``, ``replicate``,
        ``group``, drug and dose columns, free columns), but not what the result tables
        already have or what only locates the file: ``file``, ``path``, ``sheet_row``,
        ``role`` (results are for samples) and ``assay`` (each result table is one assay).
        """
        skip = {"file", "path", "sheet_row", "role", "assay"}
        return [c for c in self.table.columns if c not in skip]

    # -------------------------------------------------------------- selections

    def _check_assay(self, assay: str) -> None:
        if assay not in ASSAYS:
            msg = f"unknown assay {assay!r}; use one of {', '.join(ASSAYS)}"
            raise DesignError(msg)

    def samples(self, assay: str | None = None) -> pd.DataFrame:
        """The sample rows (not controls), in sheet order.

        Parameters
        ----------
        assay
            ``apoptosis`` or ``cellcycle``; None for both.

        Returns
        -------
        pandas.DataFrame
            A copy of those rows of :attr:`table`.
        """
        mask = self.table["role"] == "sample"
        if assay is not None:
            self._check_assay(assay)
            mask &= self.table["assay"] == assay
        return self.table[mask].copy()

    def groups(self, assay: str | None = None) -> list[str]:
        """The groups that have samples, in order of first appearance.

        Parameters
        ----------
        assay
            Only groups with samples of this assay; None for any.

        Returns
        -------
        list of str
        """
        return list(dict.fromkeys(self.samples(assay)["group"].dropna().astype(str)))

    def cell_lines(self, assay: str | None = None) -> list[str]:
        """The cell lines that have samples, in order of first appearance.

        Parameters
        ----------
        assay
            Only cell lines with samples of this assay; None for any.

        Returns
        -------
        list of str
        """
        return list(dict.fromkeys(self.samples(assay)["cell_line"].dropna().astype(str)))

    def controls(self, group: str, assay: str = "apoptosis") -> dict[str, Path]:
        """The control files of one group.

        Parameters
        ----------
        group
            A group name (see :meth:`groups`).
        assay
            The assay whose controls are wanted (only apoptosis has controls).

        Returns
        -------
        dict
            ``{role: path}`` for the control roles present (``unstained``, ``annexin_only``,
            ``pi_only``); empty for a group without controls.

        Raises
        ------
        DesignError
            If the group has no rows of that assay.
        """
        self._check_assay(assay)
        rows = self.table[(self.table["assay"] == assay) & (self.table["group"] == group)]
        if rows.empty:
            known = list(dict.fromkeys(self.table.loc[self.table["assay"] == assay, "group"].dropna()))
            msg = (f"no {assay} rows in group {group!r} of {self.sheet.name}; groups are "
                   f"{', '.join(map(str, known)) or '(none)'}")
            raise DesignError(msg)
        ctrl = rows[rows["role"] != "sample"]
        return {str(role): Path(str(path)) for role, path in zip(ctrl["role"], ctrl["path"], strict=True)}

    def arms(self, cell_line: str, *, assay: str | None = None) -> list[str]:
        """The treatment arms of one cell line: vehicle first, then single agents, then combinations.

        Within each kind, arms keep their order of first appearance in the sheet.

        Parameters
        ----------
        cell_line
            A cell line (see :meth:`cell_lines`).
        assay
            Only arms with samples of this assay; None for any.

        Returns
        -------
        list of str
            Treatment labels.

        Raises
        ------
        DesignError
            If the cell line has no samples (of that assay).
        """
        rows = self.samples(assay)
        rows = rows[rows["cell_line"] == cell_line]
        if rows.empty:
            known = self.cell_lines(assay)
            where = f" in the {assay} samples" if assay else ""
            msg = (f"no cell line {cell_line!r}{where} of {self.sheet.name}; cell lines are "
                   f"{', '.join(known) or '(none)'}")
            raise DesignError(msg)
        labels = list(dict.fromkeys(rows["treatment"].dropna().astype(str)))
        return sorted(labels, key=lambda t: (0 if _is_vehicle(t) else len(_components(t)),
                                             labels.index(t)))

    # -------------------------------------------------------------- validation

    def validate(self, *, check_files: bool = True) -> tuple[str, ...]:
        """Check the design as a whole; :func:`read_design` runs this.

        Checks that files exist (if ``check_files``) and are not listed twice, that controls
        are apoptosis rows, that every apoptosis group with samples has exactly one
        ``unstained`` control (and at most one of each control), and that no arm repeats a
        replicate number. Cell-level checks (unknown roles, non-numeric doses, ...) happen
        while reading.

        Parameters
        ----------
        check_files
            Whether to check that the files exist.

        Returns
        -------
        tuple of str
            Warnings: combination arms whose single agents or vehicle are missing, unequal
            replicate counts, treatment labels that contradict the doses, controls in a group
            without samples.

        Raises
        ------
        DesignError
            Listing every problem, one per line, with its row number and fix.
        """
        errors, warns = _check_table(self.table, self.sheet, check_files=check_files)
        if errors:
            raise _design_error(self.sheet, errors)
        return tuple(w.render(self.sheet.name) for w in sorted(warns, key=_Problem.key))


# ---------------------------------------------------------------------------- reading


def read_design(
    path: str | os.PathLike[str],
    *,
    check_files: bool = True,
    worksheet: str | int = 0,
) -> Design:
    """Read and validate an experiment design sheet.

    Parameters
    ----------
    path
        A ``.csv`` (comma or semicolon separated), ``.tsv``/``.tab``/``.txt`` or ``.xlsx``
        file (Excel needs the optional package openpyxl). File paths in the sheet are relative
        to the sheet's folder; backslashes are read as folder separators.
    check_files
        Whether every listed file must exist.
    worksheet
        The Excel worksheet (name or 0-based position); ignored for text files.

    Returns
    -------
    Design
        The table with defaults filled in (role ``sample``; group = cell line; replicates
        numbered within each arm when the column is absent; treatment derived from the drug
        columns when absent) and the warnings found.

    Raises
    ------
    DesignError
        If the sheet cannot be read, or listing every problem found, one per line, each
        with its row number (header = row 1) and how to fix it.
    """
    sheet = Path(os.path.normpath(Path(path).expanduser().absolute()))
    raw = _read_raw(sheet, worksheet)
    table, errors, warns = _parse(raw, sheet)
    explain = [w for w in warns if w.with_errors]
    if table is None:
        raise _design_error(sheet, [*errors, *explain])
    more_errors, more_warns = _check_table(table, sheet, check_files=check_files)
    if errors or more_errors:
        raise _design_error(sheet, [*errors, *more_errors, *explain])
    rendered = tuple(w.render(sheet.name) for w in sorted([*warns, *more_warns], key=_Problem.key))
    for text in rendered:
        log.warning("%s", text)
    return Design(table=table, sheet=sheet, warnings=rendered)


def _read_raw(sheet: Path, worksheet: str | int) -> pd.DataFrame:
    """All cells as stripped strings ('' when empty), header row included, rows as in the sheet."""
    if sheet.is_dir():
        hint = " (it holds design.csv: pass that)" if (sheet / "design.csv").is_file() else ""
        msg = f"design sheet {sheet} is a folder, not a file{hint}"
        raise DesignError(msg)
    if not sheet.is_file():
        msg = f"design sheet {sheet} does not exist"
        raise DesignError(msg)
    suffix = sheet.suffix.lower()
    if suffix == ".xls":
        msg = f"design sheet {sheet}: old .xls workbooks are not read; save it as .xlsx or CSV"
        raise DesignError(msg)
    if suffix not in _SUFFIXES:
        msg = (f"design sheet {sheet}: unknown file type {suffix or '(no extension)'!r}; use "
               f"{', '.join(_SUFFIXES)}")
        raise DesignError(msg)
    try:
        with sheet.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        msg = f"design sheet {sheet} cannot be read ({exc.strerror or exc})"
        raise DesignError(msg) from None
    if len(data) > _MAX_BYTES:
        msg = (f"design sheet {sheet} is larger than {_MAX_BYTES // 2**20} MiB; a design sheet has one "
               "row per FCS file: check that this is the sheet")
        raise DesignError(msg)
    if suffix in (".xlsx", ".xlsm"):
        rows = _read_excel(sheet, data, worksheet)
    else:
        text = _read_text(sheet, data)
        sep = "\t" if suffix in (".tsv", ".tab") else _sniff_separator(text)
        rows = _split_text(sheet, text, sep)
    width = max((len(r) for r in rows), default=0)
    _check_size(sheet, len(rows), width)
    frame = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=str)
    return frame.fillna("").astype(str).apply(lambda col: col.str.strip())


def _check_size(sheet: Path, n_rows: int, width: int) -> None:
    if n_rows > _MAX_ROWS or width > _MAX_COLUMNS:
        msg = (f"design sheet {sheet} has {n_rows:,} rows and {width:,} columns; a design sheet has "
               f"one row per FCS file and at most {_MAX_ROWS:,} rows and {_MAX_COLUMNS} columns: delete "
               "the stray cells below or right of the table")
        raise DesignError(msg)


def _split_text(sheet: Path, text: str, sep: str) -> list[list[str]]:
    """Rows of cells of a CSV/TSV text; a quote left open is an error, not a swallowed file."""
    name = {"\t": "tab", ",": "comma", ";": "semicolon"}[sep]
    rows: list[list[str]] = []
    # The csv module, not pandas: rows may have more or fewer cells than the header, and a
    # blank line must still count as a row for the row numbers.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    width = 0
    try:
        for row in reader:
            rows.append(row)
            width = max(width, len(row))
            if len(rows) > _MAX_ROWS or width > _MAX_COLUMNS:
                _check_size(sheet, len(rows), width)
    except csv.Error as exc:
        problem = str(exc)
        if "unexpected end of data" in problem:
            problem = ('a cell opens a quote (") that is never closed; close it, or delete the stray '
                       "quote")
        elif "expected after" in problem:
            problem = ('a cell has text after its closing quote ("abc"def); quote the whole cell, or '
                       "delete the quotes")
        elif "field larger than field limit" in problem:
            problem = f"a cell is longer than {csv.field_size_limit():,} characters; check the file"
        msg = (f"design sheet {sheet} cannot be read as {name}-separated text: row {len(rows) + 1}: "
               f"{problem}")
        raise DesignError(msg) from None
    return rows


def _read_text(sheet: Path, data: bytes) -> str:
    """The text of a CSV/TSV sheet, from whichever encoding Excel or an editor wrote."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                msg = (f"design sheet {sheet} starts with a {codec.upper()} byte-order mark but is not "
                       f"{codec.upper()} text ({exc.reason} at byte {exc.start}); save it as CSV UTF-8")
                raise DesignError(msg) from None
    if b"\0" in data:
        if data.startswith(b"PK\x03\x04"):
            what = "an Excel workbook (or another zip file); rename it to .xlsx if it is a workbook"
        elif data.startswith(bytes.fromhex("D0CF11E0A1B11AE1")):
            what = "an old .xls or an encrypted Excel workbook; save it as .xlsx or CSV"
        elif len(data) > 1 and data[1::2].count(0) > len(data) // 4:
            what = "UTF-16 text without a byte-order mark; save it as CSV UTF-8"
        else:
            what = "a binary file (it holds NUL bytes); a design sheet is CSV, TSV or .xlsx"
        msg = f"design sheet {sheet} is not text: it looks like {what}"
        raise DesignError(msg)
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError:
        # Excel's plain "CSV" on Windows; latin-1 takes any byte.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _read_excel(sheet: Path, data: bytes, worksheet: str | int) -> list[list[str]]:
    """The cells of one worksheet as text, as a spreadsheet shows them, within the bounds."""
    try:
        import openpyxl
    except ImportError:
        msg = (f"design sheet {sheet} is an Excel workbook, and reading one needs openpyxl, which "
               "is not installed; `pip install openpyxl`, or save the sheet as CSV")
        raise DesignError(msg) from None
    cannot = f"design sheet {sheet} cannot be read as an Excel workbook"
    has_formulas = False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked <= _MAX_UNPACKED:
                # Formulas are looked for (a second reading) only in a workbook that has some.
                has_formulas = any(_FORMULA.search(archive.read(info)) for info in archive.infolist()
                                   if info.filename.startswith("xl/worksheets/"))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
        if data.startswith(bytes.fromhex("D0CF11E0A1B11AE1")):
            why = "it is encrypted, or an old .xls renamed; remove the password or save it as .xlsx or CSV"
        elif data.startswith(b"PK"):
            why = "it is a damaged zip file (an .xlsx is one); save it again from Excel"
        elif b"\0" not in data[:4096]:
            why = "it is text, not a workbook; give it a .csv or .tsv name"
        else:
            why = "it is not a zip file, as .xlsx files are; save it again from Excel"
        msg = f"{cannot}: {why}"
        raise DesignError(msg) from None
    if unpacked > _MAX_UNPACKED:
        msg = (f"{cannot}: it unpacks to {unpacked / 2**20:,.0f} MiB, more than a design sheet can be "
               f"({_MAX_UNPACKED // 2**20} MiB); save the table alone as CSV")
        raise DesignError(msg)
    # openpyxl warns about the styles, validations and extensions it skips; only values are read.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = _excel_values(openpyxl, sheet, data, worksheet, data_only=True)
            formulas = _excel_values(openpyxl, sheet, data, worksheet, data_only=False) if has_formulas \
                else []
        except DesignError:
            raise
        except Exception as exc:  # a damaged workbook can make openpyxl raise anything
            msg = f"{cannot}: {type(exc).__name__}: {exc}"
            raise DesignError(msg) from None
    problems: list[_Problem] = []
    rows: list[list[str]] = []
    for i in range(max(len(values), len(formulas))):
        row = values[i] if i < len(values) else []
        written = formulas[i] if i < len(formulas) else []
        for j in range(max(len(row), len(written))):
            value = row[j] if j < len(row) else None
            formula = written[j] if j < len(written) else None
            cell = f"{_col_letter(j)}{i + 1}"
            if isinstance(value, str) and value in _EXCEL_ERRORS:
                problems.append(_Problem((i + 1,), f"cell {cell} holds the Excel error {value}; fix its "
                                                   "formula or type the value"))
            elif value is None and isinstance(formula, str) and formula.startswith("="):
                problems.append(_Problem((i + 1,), f"cell {cell} holds a formula ({formula[:40]}) whose "
                                                   "result was never saved (the workbook was written by a "
                                                   "program); open and save it in Excel, or type the value"))
        rows.append([_excel_text(v) for v in row])
    if problems:
        raise _design_error(sheet, problems)
    return rows


def _excel_values(openpyxl: Any, sheet: Path, data: bytes, worksheet: str | int, *,
                  data_only: bool) -> list[list[Any]]:
    """The cell values of the worksheet, rows cut after their last value, within the limits.

    With ``data_only`` a formula cell gives its saved result; without, its formula (``=A1+1``).
    """
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=data_only)
    try:
        names = list(book.sheetnames)
        listed = ", ".join(map(repr, names))
        if isinstance(worksheet, int) and not isinstance(worksheet, bool):
            if not 0 <= worksheet < len(book.worksheets):
                msg = (f"design sheet {sheet} has no worksheet {worksheet} (counted from 0); its "
                       f"worksheets are {listed}")
                raise DesignError(msg)
            ws = book.worksheets[worksheet]
        else:
            if worksheet not in names:
                msg = (f"design sheet {sheet} has no worksheet named {worksheet!r}"
                       f"{_did_you_mean(str(worksheet), names)}; its worksheets are {listed}")
                raise DesignError(msg)
            ws = book[worksheet]
        if not hasattr(ws, "iter_rows"):
            msg = f"design sheet {sheet}: worksheet {ws.title!r} is a chart, not a table"
            raise DesignError(msg)
        # The used range the file declares (Excel writes it): a stray cell far away is refused here.
        if ws.max_row is not None and ws.max_column is not None:
            _check_size(sheet, ws.max_row, ws.max_column)
        # Some writers declare a wrong range ("A1"); read what is there, as pandas does, but only
        # one row and one column past the limits, so that a cell there is seen and refused.
        ws.reset_dimensions()
        out: list[tuple[Any, ...]] = []
        width = 0  # up to the last column with a value in any row
        for row in ws.iter_rows(max_row=_MAX_ROWS + 1, max_col=_MAX_COLUMNS + 1, values_only=True):
            if row[width:].count(None) != len(row) - width:
                width = max(j + 1 for j, value in enumerate(row) if value is not None)
            out.append(row)
        while out and out[-1].count(None) == len(out[-1]):
            out.pop()
        _check_size(sheet, len(out), width)
        return [list(row[:width]) for row in out]
    finally:
        book.close()


def _excel_text(value: Any) -> str:
    """A cell as text: whole numbers without ``.0`` (``1`` not ``1.0``), as pandas reads them."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _sniff_separator(text: str) -> str:
    """Comma, unless the header line has more semicolons (European Excel) or tabs."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > counts[","] else ","


def _norm_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _col_letter(j: int) -> str:
    letters = ""
    j += 1
    while j:
        j, rem = divmod(j - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def _parse_number(text: str) -> float | None:
    """A finite number, accepting a decimal comma ("1,5"); None if it is not one."""
    try:
        value = float(text)
    except ValueError:
        if not re.fullmatch(r"[+-]?\d+,\d+", text):
            return None
        value = float(text.replace(",", "."))
    return value if math.isfinite(value) else None


def _format_number(value: float) -> str:
    return f"{value:g}"


def _components(treatment: str) -> list[str]:
    return [part.strip() for part in treatment.split("+") if part.strip()]


def _is_vehicle(treatment: str) -> bool:
    return treatment.strip().lower() in VEHICLE_LABELS


def _parse(
    raw: pd.DataFrame, sheet: Path
) -> tuple[pd.DataFrame | None, list[_Problem], list[_Problem]]:
    """Turn the raw cells into the design table; collect cell-level problems.

    Returns None for the table when the columns are too broken to read rows.
    """
    errors: list[_Problem] = []
    warns: list[_Problem] = []
    cells: list[list[str]] = raw.to_numpy(dtype=str).tolist()
    nonblank = [i for i, values in enumerate(cells) if any(values)]
    if not nonblank:
        errors.append(_Problem((), "the sheet is empty; it needs a header row (file, assay, ...) "
                                    "and one row per FCS file"))
        return None, errors, warns
    head = nonblank[0]
    header_row = head + 1
    body_idx = [i for i in nonblank if i > head]
    excel = sheet.suffix.lower() in (".xlsx", ".xlsm")

    def names_in(i: int) -> set[str]:
        return {"file" if n == "path" else _ALIASES.get(n, n) for n in map(_norm_name, cells[i])}

    if not {"file", "assay"} <= names_in(head):
        # A title or notes above the table: say where the header seems to be, not every column.
        below = next((i for i in nonblank[1:20] if {"file", "assay"} <= names_in(i)), None)
        if below is not None:
            errors.append(_Problem((header_row,), f"the header (file, assay, ...) is in row {below + 1}, not "
                                                  f"row {header_row}; delete the rows above it"))
            return None, errors, warns

    # ---- columns
    columns: dict[str, int] = {}  # canonical name -> position
    shown: dict[str, str] = {}  # canonical name -> as written
    for j, written in enumerate(cells[head]):
        letter = _col_letter(j)
        if not written:
            if any(cells[i][j] for i in body_idx):
                merged = " (a merged header cell names only its first column: unmerge it)" if excel else ""
                errors.append(_Problem((header_row,), f"column {letter} has values but no name; "
                                                      f"give it a header{merged}"))
            continue
        name = _norm_name(written)
        name = _ALIASES.get(name, name)
        if not name:
            errors.append(_Problem((header_row,), f"column {letter} header {written!r} has no letters or "
                                                  "digits; give it a name"))
            continue
        if name in columns:
            errors.append(_Problem((header_row,), f"columns {_col_letter(columns[name])} ({shown[name]!r}) "
                                                  f"and {letter} ({written!r}) both mean {name!r}; "
                                                  "keep one"))
            continue
        columns[name] = j
        shown[name] = written
    if "path" in columns and "file" not in columns:
        columns["file"] = columns.pop("path")
    for name in _RESERVED:
        if name in columns:
            errors.append(_Problem((header_row,), f"column {shown[name]!r} is reserved (the table adds "
                                                  f"{name!r} itself); rename it"))
    for name in ("file", "assay"):
        if name not in columns:
            errors.append(_Problem((), f"no {name!r} column (columns are "
                                       f"{', '.join(shown.values()) or 'none'}); add one"))

    drug_pairs: list[tuple[str, str]] = []
    for name in columns:
        m = _DRUG.match(name)
        if m:
            dose = "dose" + name[len("drug"):]
            if dose in columns:
                drug_pairs.append((name, dose))
            else:
                errors.append(_Problem((header_row,), f"drug column {shown[name]!r} has no dose column "
                                                      f"{dose!r}; add it (0 = not given), or rename the "
                                                      "column if it does not name a drug (drug and dose "
                                                      "columns come in pairs: drug_a, dose_a, ...)"))
        elif _DOSE.match(name) and "drug" + name[len("dose"):] not in columns:
            drug = "drug" + name[len("dose"):]
            errors.append(_Problem((header_row,), f"dose column {shown[name]!r} has no drug column "
                                                  f"{drug!r}; add it, naming the drug, and name each dose "
                                                  "column after its drug column (drug_a, dose_a; units "
                                                  "go elsewhere)"))
    # A free column that looks like a misspelt known one is carried through, as documented, with
    # a warning; read_design shows it with the errors too, as it may well be their cause.
    for written, meant in _near_misses(columns, shown):
        warns.append(_Problem((header_row,), f"column {written!r} is not a known column, so it is carried "
                                             f"through as a free column; if it is meant as {meant!r}, "
                                             "rename it", with_errors=True))
    if errors:
        return None, errors, warns
    if not body_idx:
        errors.append(_Problem((), "the sheet has a header but no rows; add one row per FCS file"))
        return None, errors, warns

    has_treatment = "treatment" in columns
    has_cell_line = "cell_line" in columns
    has_replicate = "replicate" in columns
    drug_cols = {c for pair in drug_pairs for c in pair}
    canonical = {"file", "assay", "role", "group", "cell_line", "treatment", "replicate"} | drug_cols
    free = [c for c in columns if c not in canonical]
    sheet_dir = sheet.parent

    def cell(i: int, name: str) -> str:
        return cells[i][columns[name]] if name in columns else ""

    records: list[dict[str, Any]] = []
    any_sample = False
    for i in body_idx:
        row = i + 1
        rec: dict[str, Any] = {"sheet_row": row}
        file_text = cell(i, "file").replace("\\", "/") if os.sep == "/" else cell(i, "file")
        rec["file"] = file_text
        if not file_text:
            errors.append(_Problem((row,), "file is empty; give the FCS file's path relative to the "
                                           "sheet's folder, or delete the row"))
            rec["path"] = None
        else:
            full = sheet_dir / Path(file_text).expanduser()
            rec["path"] = os.path.normpath(full)

        assay_text = cell(i, "assay")
        assay = re.sub(r"[^0-9a-z]", "", assay_text.lower())
        if assay not in ASSAYS:
            what = "is empty" if not assay_text else f"{assay_text!r} is not known"
            errors.append(_Problem((row,), f"assay {what}{_did_you_mean(assay, ASSAYS)}; use "
                                           f"{' or '.join(ASSAYS)}"))
        rec["assay"] = assay or None

        role_text = cell(i, "role")
        role = _norm_name(role_text) or "sample"
        if role not in ROLES:
            errors.append(_Problem((row,), f"role {role_text!r} is not known{_did_you_mean(role, ROLES)}; "
                                           f"use one of {', '.join(ROLES)} (empty = sample)"))
        rec["role"] = role
        is_sample = role == "sample"
        any_sample |= is_sample

        cell_line = cell(i, "cell_line") or None
        if is_sample and has_cell_line and cell_line is None:
            errors.append(_Problem((row,), "cell_line is empty; every sample needs its cell line"))
        rec["cell_line"] = cell_line

        # drugs and doses
        dose_ok = True
        given: list[str] = []
        for drug_col, dose_col in drug_pairs:
            drug = cell(i, drug_col)
            dose_text = cell(i, dose_col)
            amount = 0.0 if not dose_text else _parse_number(dose_text)
            if amount is None:
                dose_ok = False
                errors.append(_Problem((row,), f"{dose_col} {dose_text!r} is not a number; write the "
                                               "number only (0 = not given; put the unit in a free "
                                               "column or the README)"))
            elif amount < 0:
                dose_ok = False
                errors.append(_Problem((row,), f"{dose_col} {dose_text} is negative; doses are >= 0 "
                                               "(0 = not given)"))
            elif amount > 0 and not drug:
                dose_ok = False
                errors.append(_Problem((row,), f"{dose_col} is {dose_text} but {drug_col} is empty; "
                                               f"name the drug or set {dose_col} to 0"))
            elif amount > 0:
                given.append(drug)
            rec[drug_col] = drug or None
            rec[dose_col] = math.nan if amount is None else amount
        derived = "+".join(given) if given else "vehicle"

        treatment_text = "+".join(_components(cell(i, "treatment")))
        if treatment_text:
            rec["treatment"] = treatment_text
            if is_sample and drug_pairs and dose_ok:
                stated = {c.lower() for c in _components(treatment_text)}
                named = {d.lower() for d in (cell(i, dc) for dc, _ in drug_pairs) if d}
                # Only compare when the label is built from the drug names (not a custom label).
                if (stated <= named | VEHICLE_LABELS
                        and stated != {g.lower() for g in given}
                        and not (not given and all(s in VEHICLE_LABELS for s in stated))):
                    warns.append(_Problem((row,), f"treatment {treatment_text!r} but the doses give "
                                                  f"{derived!r}; check the treatment or the doses"))
        elif drug_pairs:
            rec["treatment"] = derived if dose_ok else None
        else:
            rec["treatment"] = None
            if is_sample and has_treatment:
                errors.append(_Problem((row,), "treatment is empty; give the arm label (vehicle, "
                                               "trametinib, trametinib+SRCi, ...)"))

        rep_text = cell(i, "replicate")
        rep: int | None = None
        if rep_text:
            value = _parse_number(rep_text)
            if value is None or value != int(value) or value < 0:
                errors.append(_Problem((row,), f"replicate {rep_text!r} is not a whole number; number "
                                               "the replicates of each arm 1, 2, 3, ..."))
            elif value > _MAX_REPLICATE:
                errors.append(_Problem((row,), f"replicate {rep_text!r} is not a plausible replicate "
                                               f"number (over {_MAX_REPLICATE:,}); number the replicates "
                                               "of each arm 1, 2, 3, ..."))
            else:
                rep = int(value)
        elif has_replicate and is_sample:
            errors.append(_Problem((row,), "replicate is empty; give its number, or delete the "
                                           "replicate column to number replicates automatically"))
        rec["replicate"] = rep

        group = cell(i, "group") or cell_line
        if group is None and not is_sample:
            errors.append(_Problem((row,), f"{role} control has neither group nor cell_line; fill in "
                                           "group to say which samples it applies to"))
        rec["group"] = group

        for name in free:
            rec[name] = cell(i, name)
        records.append(rec)

    if any_sample and not has_cell_line:
        errors.append(_Problem((), "no 'cell_line' column; add one (every sample needs its cell line)"))
    if any_sample and not has_treatment and not drug_pairs:
        errors.append(_Problem((), "no 'treatment' column and no drug/dose columns; add a treatment "
                                   "column (vehicle, trametinib, trametinib+SRCi, ...) or drug_a, "
                                   "dose_a, drug_b, dose_b, ... columns"))

    order = ["sheet_row", "file", "path", "assay", "role", "cell_line", "treatment", "replicate", "group",
             *[c for pair in drug_pairs for c in pair], *free]
    table = pd.DataFrame.from_records(records, columns=order)
    if not has_replicate:
        table = _number_replicates(table)
    table["replicate"] = table["replicate"].astype("Int64")
    for name in free:
        table[name] = _free_column(table[name])
    for _, dose_col in drug_pairs:
        table[dose_col] = table[dose_col].astype(float)
    return table, errors, warns


def _near_misses(columns: dict[str, int], shown: dict[str, str]) -> list[tuple[str, str]]:
    """(column as written, known column it is probably meant as) for free columns close to one."""
    absent = [name for name in _KNOWN if name not in columns]
    out = []
    for name, written in shown.items():
        if name in _KNOWN or name in _RESERVED or _DRUG.match(name) or _DOSE.match(name):
            continue
        glued = re.fullmatch(r"(drug|dose)([a-z])", name)  # drugA, doseA
        if glued:
            out.append((written, f"{glued.group(1)}_{glued.group(2)}"))
            continue
        close = difflib.get_close_matches(name, absent, n=1, cutoff=0.8)
        if close:
            out.append((written, close[0]))
    return out


def _free_column(values: pd.Series) -> pd.Series:
    """Numbers when every non-empty value is one (as pandas would read them), else text."""
    filled = values.mask(values == "")
    try:
        return pd.to_numeric(filled)
    except (ValueError, TypeError):
        return filled


def _arm_columns(table: pd.DataFrame) -> list[str]:
    """Columns that identify an arm: assay, cell line, treatment and every dose."""
    doses = [c for c in table.columns if _DOSE.match(c) and "drug" + c[len("dose"):] in table.columns]
    return ["assay", "cell_line", "treatment", *doses]


def _number_replicates(table: pd.DataFrame) -> pd.DataFrame:
    """Replicates 1, 2, ... in sheet order within each arm of samples; controls get none."""
    table = table.copy()
    samples = table[(table["role"] == "sample") & table["cell_line"].notna() & table["treatment"].notna()]
    keys = _arm_columns(table)
    numbers = samples.groupby(keys, dropna=False, sort=False).cumcount() + 1
    table["replicate"] = None
    table.loc[numbers.index, "replicate"] = numbers
    return table


def _arm_label(row: pd.Series, dose_cols: list[str]) -> str:
    """``trametinib`` or, with dose columns, ``trametinib (dose_a=10)``."""
    doses = [f"{c}={_format_number(float(row[c]))}" for c in dose_cols
             if pd.notna(row[c]) and float(row[c]) > 0]
    return f"{row['treatment']} ({', '.join(doses)})" if doses else str(row["treatment"])


# ---------------------------------------------------------------------------- checks


def _check_table(table: pd.DataFrame, sheet: Path, *, check_files: bool) -> tuple[list[_Problem],
                                                                                   list[_Problem]]:
    """Checks across rows: files, duplicates, controls, replicates, arms."""
    errors: list[_Problem] = []
    warns: list[_Problem] = []
    rows = table["sheet_row"].astype(int)

    # ---- files
    missing = 0
    seen: dict[str, int] = {}
    listings: dict[Path, list[str]] = {}  # folder -> its files, for "did you mean"
    for row, file_text, path in zip(rows, table["file"], table["path"], strict=True):
        if path is None or (isinstance(path, float) and math.isnan(path)):
            continue
        p = Path(str(path))
        if check_files and not p.is_file():
            missing += 1
            if p.is_dir():
                problem = f"file {file_text!r} is a folder ({p}), not an FCS file"
            else:
                problem = f"file {file_text!r} does not exist (looked for {p})"
            if p.parent not in listings:
                listings[p.parent] = ([q.name for q in p.parent.iterdir() if q.is_file()]
                                      if p.parent.is_dir() else [])
            hint = _file_hint(p.name, listings[p.parent])
            errors.append(_Problem((row,), f"{problem}{hint}; fix the path or remove the row"))
        key = os.path.normcase(str(p.resolve()) if p.exists() else str(p))
        if key in seen:
            errors.append(_Problem((seen[key], row), f"the same file {file_text!r} is listed twice; "
                                                     "each file goes in one row, delete the extra row"))
        else:
            seen[key] = row
    if check_files and missing > 1 and missing == len(table):
        errors.append(_Problem((), f"none of the {missing} files exist under {sheet.parent}; paths are "
                                   "relative to the sheet's folder: move the sheet there or fix the "
                                   "paths"))

    # ---- controls
    is_control = table["role"].isin(CONTROL_ROLES)
    wrong = table[is_control & (table["assay"] == "cellcycle")]
    for row, role in zip(wrong["sheet_row"], wrong["role"], strict=True):
        errors.append(_Problem((int(row),), f"role {role!r} is an apoptosis control but the assay is "
                                            "cellcycle; set role to sample, or assay to apoptosis"))
    apo = table[table["assay"] == "apoptosis"]
    apo_samples = apo[apo["role"] == "sample"]
    apo_controls = apo[apo["role"].isin(CONTROL_ROLES)]
    for group in dict.fromkeys(apo_samples["group"].dropna()):
        in_group = apo_samples[apo_samples["group"] == group]
        ctrl = apo_controls[apo_controls["group"] == group]
        if not (ctrl["role"] == "unstained").any():
            others = [g for g in dict.fromkeys(apo_controls["group"].dropna())
                      if g not in set(apo_samples["group"])]
            hint = f" (controls are in group(s) {', '.join(map(repr, others))} with no samples)" if others \
                else ""
            first = tuple(int(r) for r in in_group["sheet_row"].iloc[:1])
            n = len(in_group)
            errors.append(_Problem(first, f"apoptosis group {group!r} ({n} sample{'s' * (n != 1)}) has no "
                                          f"unstained control{hint}; add a row with role unstained and "
                                          f"group {group!r}"))
    for (group, role), ctrl in apo_controls.groupby(["group", "role"], sort=False):
        if len(ctrl) > 1:
            errors.append(_Problem(tuple(int(r) for r in ctrl["sheet_row"]),
                                   f"group {group!r} has {len(ctrl)} {role} controls; keep one, or put "
                                   "them in different groups"))
    for group, ctrl in apo_controls.groupby("group", sort=False):
        if group not in set(apo_samples["group"]):
            warns.append(_Problem(tuple(int(r) for r in ctrl["sheet_row"]),
                                  f"apoptosis controls in group {group!r}, which has no apoptosis "
                                  "samples; they are not used"))

    # ---- arms and replicates
    keys = _arm_columns(table)
    samples = table[(table["role"] == "sample") & table["assay"].isin(ASSAYS)
                    & table["cell_line"].notna() & table["treatment"].notna()]
    dose_cols = keys[3:]
    for _, arm in samples.groupby([*keys, "group"], dropna=False, sort=False):
        for rep, dup in arm[arm["replicate"].notna()].groupby("replicate", sort=False):
            if len(dup) > 1:
                one = dup.iloc[0]
                errors.append(_Problem(tuple(int(r) for r in dup["sheet_row"]),
                                       f"{one['assay']} {one['cell_line']!r} {_arm_label(one, dose_cols)} "
                                       f"replicate {rep} appears {len(dup)} times; give each replicate "
                                       "its own number"))
    for (assay, line), block in samples.groupby(["assay", "cell_line"], sort=False):
        arms = [arm for _, arm in block.groupby(keys[2:], dropna=False, sort=False)]
        if len({len(arm) for arm in arms}) > 1:
            listed = ", ".join(f"{_arm_label(arm.iloc[0], dose_cols)}: {len(arm)}" for arm in arms)
            warns.append(_Problem((), f"{assay} {line!r}: unequal replicates per arm ({listed}); "
                                      "check for missing or mislabelled rows"))
        labels = list(dict.fromkeys(block["treatment"].astype(str)))
        lower = {t.lower() for t in labels}
        has_vehicle = any(_is_vehicle(t) for t in labels)
        for treatment in labels:
            parts = _components(treatment)
            if len(parts) < 2:
                continue
            absent = [p for p in parts if p.lower() not in lower]
            if not has_vehicle:
                absent.append("vehicle")
            if absent:
                first_row = int(block.loc[block["treatment"] == treatment, "sheet_row"].iloc[0])
                warns.append(_Problem((first_row,), f"{assay} {line!r}: combination {treatment!r} has no "
                                                f"{' or '.join(map(repr, absent))} arm in this cell line, "
                                                "so it cannot be compared with its single agents; add "
                                                "those samples"))
    return errors, warns
